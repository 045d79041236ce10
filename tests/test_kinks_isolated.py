"""A tie closer than the directions' step (two window elements of a max-pool within ~1e-6): the
retries keep crossing it, and rather than check the whole tensor element by element, the samples
that still doubt are halved, group by group, until only the few elements next to the switch get
the per-element check. A wrong gradient anywhere, next to the tie or not, still fails."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gradcheck import by_directions, direct
from gradcheck.comparison import Comparison
from gradcheck.examples import Counter, check_example
from gradcheck.registry import import_file, load_registry
from gradcheck.results import Status
from gradcheck.sampling import Example, draw_arrays
from gradcheck.spec import DEFAULT_TOLERANCES

ROOT = Path(__file__).resolve().parent
SPEC = load_registry(ROOT.parent / "layers.yaml").get("max-pool2d")
BUGS = import_file(ROOT / "fixtures" / "speed" / "pooling_bugs.py")
PLAIN = {"N": 6, "C": 6, "K": 2, "S": 2, "H": 16, "Wd": 16}  # non-overlapping 2x2 windows
TIE = 2e-6  # closer than this, the directions' step crosses the switch


def _tied() -> tuple[object, Example, int]:
    """max-pool2d with its input given: drawn as usual, then in one sample one window's runner-up
    raised to within TIE / 4 of its winner. Returns (spec, example, that sample)."""
    example = Example(tuple(PLAIN.items()), 0, 1.0)
    x = draw_arrays(SPEC, example)["x"]
    sample, window = 4, x[4, 3, 6:8, 10:12]  # a view: writing into it writes into x
    runner_up, winner = (np.unravel_index(i, (2, 2)) for i in np.argsort(window, axis=None)[-2:])
    window[runner_up] = window[winner] - TIE / 4
    given = direct._with_given(SPEC, {"x": x})
    return given, example, sample


def _run(spec, mode, example):
    counter = Counter()
    outcome = check_example(spec, example, DEFAULT_TOLERANCES, counter, mode)
    return outcome, counter.forward


def _spy_element_checks(monkeypatch) -> list[int]:
    """The number of elements each per-element check of some groups covers."""
    sizes: list[int] = []
    original = Comparison.in_groups

    def spied(self, name, kind, analytic, groups):
        sizes.append(sum(len(g) for g in groups))
        return original(self, name, kind, analytic, groups)

    monkeypatch.setattr(Comparison, "in_groups", spied)
    return sizes


@pytest.mark.parametrize("mode", ["fast", "auto"])
def test_a_tie_within_the_step_costs_a_few_elements_not_the_whole_tensor(mode, monkeypatch):
    spec, example, _ = _tied()
    sizes = _spy_element_checks(monkeypatch)
    outcome, forwards = _run(spec, mode, example)
    assert outcome.status is Status.PASS
    assert sizes and sum(sizes) <= 2 * by_directions.KINKED_GROUP  # the groups next to the tie, no more
    x = outcome.tensors[0]
    assert x.analytic.size == 6 * 6 * 16 * 16
    assert forwards < 100  # the whole tensor element by element took 139 (coloured)


def test_without_the_tie_the_directions_alone_pass():
    for seed in range(3):
        outcome, forwards = _run(SPEC, "fast", Example(tuple(PLAIN.items()), seed, 1.0))
        assert outcome.status is Status.PASS and outcome.tensors[0].method == "fast"
        assert forwards <= 2 + 3


@pytest.mark.parametrize("mode", ["fast", "auto"])
def test_a_wrong_max_pool_still_fails_where_a_tie_is(mode):
    spec, example, _ = _tied()
    outcome, _ = _run(replace(spec, target=BUGS.MaxPoolToEvery), mode, example)
    assert outcome.status is Status.FAIL and outcome.tensors[0].failing.any()


@pytest.mark.parametrize("mode", ["fast", "auto"])
@pytest.mark.parametrize("where", ["tied sample", "other sample"])
def test_one_wrong_element_is_found_beside_the_tie(mode, where):
    """One winner's gradient 1% off, in the sample with the tie or another: the halving reaches it."""
    spec, example, tied = _tied()
    sample = tied if where == "tied sample" else tied - 3
    x = spec.inputs[0].given
    block = x[sample, 1, 2:4, 2:4]  # another channel's window, away from the tie
    r, q = np.unravel_index(int(np.argmax(block)), (2, 2))
    wrong = (sample, 1, 2 + int(r), 2 + int(q))  # its winner

    class OneWinnerOff(spec.target):
        def backward(self, dout):
            dx = super().backward(dout)
            dx[wrong] *= 1.01
            return dx

    outcome, _ = _run(replace(spec, target=OneWinnerOff), mode, example)
    assert outcome.status is Status.FAIL
    assert outcome.tensors[0].worst_index == wrong


@pytest.mark.parametrize("mode", ["fast", "auto"])
def test_a_layer_taking_only_whole_batches_gets_its_groups_in_whole_copies(mode, monkeypatch):
    """A layer that takes K copies of its batch stacked, but no part of one (it splits its input
    into the batch size it was built for): its halves go through whole copies of the batch."""
    spec, example, _ = _tied()
    batch = PLAIN["N"]

    class WholeBatchesOnly(spec.target):
        def forward(self, x):
            if len(x) % batch:
                raise ValueError(f"a batch of {len(x)} samples: this layer takes multiples of {batch}")
            return super().forward(x)

    sizes = _spy_element_checks(monkeypatch)
    outcome, forwards = _run(replace(spec, target=WholeBatchesOnly), mode, example)
    assert outcome.status is Status.PASS, outcome.message
    assert sizes and sum(sizes) <= 2 * by_directions.KINKED_GROUP and forwards < 80


def test_first_groups_cover_only_the_samples_that_doubt():
    groups = by_directions._first_groups(6 * 10, np.array([False, True, False, False, True, False]))
    assert [g.tolist() for g in groups] == [list(range(10, 20)), list(range(40, 50))]
    whole = by_directions._first_groups(10_000, None)
    assert np.array_equal(np.concatenate(whole), np.arange(10_000)) and max(map(len, whole)) <= 4096


MODEL = load_registry(ROOT.parent / "examples" / "cs231n-two-layer-net" / "layers.yaml").get("two-layer-net")
# The shared directions' doubt: rounding in both rounds (seed 2); a kink, then a kink and a gap of
# 0.38 tolerance units no kink explains (seed 3: ReLUs switching at once can hide each other's kink)
MODEL_EXAMPLES = [Example((("N", 16), ("D", 196), ("H", 64), ("C", 10)), seed, 1.0) for seed in (2, 3)]


@pytest.mark.parametrize("example", MODEL_EXAMPLES, ids=["rounding", "marginal gap"])
def test_a_doubt_with_no_clear_error_sends_small_tensors_by_groups_in_fast_mode(example):
    """A whole model's loss, large next to each gradient: the shared directions doubt with no gap
    above one tolerance unit; b1, W2, b2 then went to the full check (1486 and 1478 forwards). By
    groups, their own directions settle it."""
    outcome, forwards = _run(MODEL, "fast", example)
    assert outcome.status is Status.PASS
    assert {t.name: t.method for t in outcome.tensors} == dict.fromkeys(["W1", "b1", "W2", "b2"], "fast")
    assert forwards < 300


@pytest.mark.parametrize("example", MODEL_EXAMPLES, ids=["rounding", "marginal gap"])
@pytest.mark.parametrize("tensor, index", [("W2", (5, 3)), ("b1", (7,))])
def test_a_wrong_element_of_a_small_tensor_still_fails_there_in_fast_mode(tensor, index, example):
    class OneOff(MODEL.target):
        def loss(self, X, y=None):
            loss, grads = super().loss(X, y)
            grads[tensor][index] *= 1.01
            return loss, grads

    outcome, _ = _run(replace(MODEL, target=OneOff), "fast", example)
    assert outcome.status is Status.FAIL
    assert [(t.name, t.worst_index) for t in outcome.tensors if t.status is Status.FAIL] == [(tensor, index)]


# 784-128-10 at seed 0: the first round's step, stretched to 64 eps by the loss's size, crosses ReLU
# switches of opposite curvature on its two sides, which cancel in the one-sided slopes: besides
# three kinked doubts, one gap of ~70 units that no kink explains.
MNIST_EXAMPLE = Example((("N", 16), ("D", 784), ("H", 128), ("C", 10)), 0, 1.0)


def test_kinks_that_hide_each_other_send_tensors_by_groups_not_the_full_check():
    """b1, W2 and b2 took the full check (3246 forwards, 4.7 s); by groups about 450."""
    outcome, forwards = _run(MODEL, "fast", MNIST_EXAMPLE)
    assert outcome.status is Status.PASS
    assert {t.name: t.method for t in outcome.tensors} == dict.fromkeys(["W1", "b1", "W2", "b2"], "fast")
    assert forwards < 1000


def test_a_wrong_element_is_still_found_where_kinks_hide_each_other():
    class OneOff(MODEL.target):
        def loss(self, X, y=None):
            loss, grads = super().loss(X, y)
            grads["W2"][100, 4] *= 1.01
            return loss, grads

    outcome, _ = _run(replace(MODEL, target=OneOff), "fast", MNIST_EXAMPLE)
    assert outcome.status is Status.FAIL
    assert [(t.name, t.worst_index) for t in outcome.tensors if t.status is Status.FAIL] == [("W2", (100, 4))]
