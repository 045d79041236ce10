"""A whole model with 10^5 parameters in mode auto (a two-layer ReLU net at 784-128-10): right,
it passes with a bounded number of forwards, not the two per element of its 100 352-element W1
that the full check would take; with a planted bug in any one of W1, b1, W2, b2, it fails on that
tensor alone."""

from pathlib import Path

import pytest

from gradcheck import examples
from gradcheck.api import check_layer
from gradcheck.results import Status

FIXTURES = Path(__file__).parent / "fixtures" / "big"
W1_SIZE = 784 * 128
BOUND = 20_000  # forwards for three examples: a tenth of W1's full check (measured: about 4-7 thousand)


# At the default 20 examples: the small tensors' full checks alone took 5 760 forwards (b1 256 and b2 20
# an example, the directions 12) before they rode the directions W1 pays for (measured: about 3 300).
BOUND_DEFAULT = 5_000


def _check(config: str, name: str = "two-layer-net", examples: int = 3):
    return check_layer(name, config=FIXTURES / config, examples=examples, seed=1, timeout=240)


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


def test_big_model_at_the_default_examples_lets_the_small_tensors_ride_the_directions():
    result = _check("layers.yaml", examples=20)
    assert result.status is Status.PASS, result.message
    assert result.calls["forward"] < BOUND_DEFAULT
    for tensor in result.tensors:  # every tensor passed by directions (shared, or its groups')
        assert dict(tensor.checked_by) == {"fast": 20}, tensor.name


@pytest.mark.parametrize("tensor", ["b1", "W2", "b2"])
def test_big_model_with_a_bug_in_one_small_tensor_fails_on_it_alone(tensor):
    result = _check("bugs.yaml", f"bug-in-{tensor}")
    assert result.status is Status.FAIL, result.message
    assert [t.name for t in result.tensors if t.status is Status.FAIL] == [tensor]
    assert result.calls["forward"] < BOUND
