"""A whole model with 10^5 parameters in mode auto (a two-layer ReLU net at 784-128-10): right,
it passes with a bounded number of forwards, not the two per element of its 100 352-element W1
that the full check would take; with a planted bug in dW1 (no regularisation term), it fails."""

from pathlib import Path

from gradcheck import examples
from gradcheck.api import check_layer
from gradcheck.results import Status

FIXTURES = Path(__file__).parent / "fixtures" / "big"
W1_SIZE = 784 * 128
BOUND = 20_000  # forwards for three examples: a tenth of W1's full check (measured: about 4-7 thousand)


def _check(config: str):
    return check_layer("two-layer-net", config=FIXTURES / config, examples=3, seed=1, timeout=240)


def test_the_fallback_concerns_this_model():
    assert W1_SIZE > examples.FULL_MAX  # W1 is checked by directions, then by groups if they doubt


def test_big_model_passes_with_bounded_forwards():
    result = _check("layers.yaml")
    assert result.status is Status.PASS, result.message
    assert result.examples == 3
    assert result.calls["forward"] < BOUND


def test_big_model_with_bug_in_dW1_fails_with_bounded_forwards():
    result = _check("bugged.yaml")
    assert result.status is Status.FAIL, result.message
    assert "W1" in result.message
    assert result.calls["forward"] < BOUND
