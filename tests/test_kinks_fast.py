"""Fast mode at kinks: directions that cross a switch of a max within their step are drawn again
(only in the samples that doubted), instead of sending the whole tensor to the full check; a wrong
gradient at a kinked layer still fails."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import gradcheck.directions as directions
from gradcheck.directions import Kinks, directions_agree
from gradcheck.examples import Counter, check_example
from gradcheck.registry import import_file, load_registry
from gradcheck.results import Status
from gradcheck.sampling import Example
from gradcheck.spec import DEFAULT_TOLERANCES

ROOT = Path(__file__).resolve().parent
BUILTINS = load_registry(ROOT.parent / "layers.yaml")
BUGS = import_file(ROOT / "fixtures" / "speed" / "pooling_bugs.py")
OVERLAPPING = {"N": 6, "C": 6, "K": 3, "S": 2, "H": 17, "Wd": 16}  # a real network's max-pool


def _run(spec, mode, seed, dims=OVERLAPPING):
    counter = Counter()
    outcome = check_example(spec, Example(tuple(dims.items()), seed, 1.0), DEFAULT_TOLERANCES, counter, mode)
    return outcome, counter.forward


def test_overlapping_max_pool_passes_on_the_directions_alone():
    """At these sizes a direction crosses a switch of some window's maximum in about a third of the
    examples; those samples' directions go again, so no example needs the full check."""
    spec = BUILTINS.get("max-pool2d")
    for seed in range(6):
        outcome, forwards = _run(spec, "fast", seed)
        assert outcome.status is Status.PASS
        assert outcome.tensors[0].method == "fast", seed
        assert forwards <= 2 + directions.KINK_RETRIES


@pytest.mark.parametrize("bug", ["MaxPoolToEvery", "MaxPoolAssigns"])
@pytest.mark.parametrize("mode", ["fast", "auto"])
def test_a_wrong_max_pool_still_fails_at_real_sizes(bug, mode):
    spec = replace(BUILTINS.get("max-pool2d"), target=getattr(BUGS, bug))
    for seed in range(2):
        outcome, _ = _run(spec, mode, seed)
        assert outcome.status is Status.FAIL
        assert outcome.tensors[0].failing.any()


def test_the_bugs_are_seen_at_small_sizes_too():
    spec = BUILTINS.get("max-pool2d")
    small = {"N": 2, "C": 1, "K": 3, "S": 1, "H": 5, "Wd": 5}
    for bug in ("MaxPoolToEvery", "MaxPoolAssigns"):
        outcome, _ = _run(replace(spec, target=getattr(BUGS, bug)), "full", 3, small)
        assert outcome.status is Status.FAIL
    right, _ = _run(spec, "full", 3, small)
    assert right.status is Status.PASS


def _counting(f):
    calls = []

    def evaluate(copies):
        calls.append(1)
        return [f(copies["x"])]

    return evaluate, calls


def test_a_smooth_layer_with_a_wrong_gradient_gets_no_second_round():
    """A wrong gradient leaves the one-sided slopes together (a smooth function's differ by t f''
    only): that is no kink, and the doubt goes to the full check at once."""
    x = np.random.default_rng(0).standard_normal((8, 20))
    evaluate, calls = _counting(lambda c: c**2)
    found = directions_agree(
        evaluate,
        {"x": x},
        {"x": 2.01 * x},
        [np.ones((8, 20))],
        1e-6,
        1e-5,
        1e-7,
        0,
        kinks=Kinks([x**2], lambda: 8, (x**2).sum(axis=1)),
    )
    assert not found.agree and len(calls) == 1


def test_a_kink_crossed_within_the_step_is_drawn_again_and_a_wrong_gradient_is_not_forgiven():
    """|x| with one element of one sample next to 0: the first round doubts that sample; it goes
    again alone, with the step its own rounding allows. The same layer with a wrong gradient fails
    every round."""
    x = np.random.default_rng(1).standard_normal((8, 20))
    x[3, 7] = 2e-5  # within the first round's step (stretched by the large weight), beyond a step of eps
    base, upstream = [np.abs(x)], [np.ones((8, 20))]
    kinks = Kinks(base, lambda: 8, np.abs(x).sum(axis=1))
    wrong_there = np.sign(x)
    wrong_there[3, 0] *= 1 + 5e-5  # five tolerances off, in the sample with the kink: the second round sees it
    for analytic, agrees in ((np.sign(x), True), (np.sign(x) * 1.01, False), (wrong_there, False)):
        evaluate, calls = _counting(np.abs)
        found = directions_agree(
            evaluate,
            {"x": x},
            {"x": analytic},
            upstream,
            1e-6,
            1e-5,
            1e-7,
            0,
            weight=float(np.abs(x).sum()) * 1e6,
            kinks=kinks,
        )
        assert found.agree is agrees
        if analytic is not wrong_there:  # (that one doubts in the first round or the second)
            assert len(calls) == (2 if agrees else 1)
    evaluate, calls = _counting(np.abs)
    without = directions_agree(
        evaluate, {"x": x}, {"x": np.sign(x)}, upstream, 1e-6, 1e-5, 1e-7, 0, weight=float(np.abs(x).sum()) * 1e6
    )
    assert not without.agree and len(calls) == 1


def test_an_error_spread_over_every_sample_still_fails_when_weighed_per_sample():
    """Per sample, a direction sees only that sample's share of a diffuse error: still many
    tolerances wide when every element is off by a few."""
    spec = BUILTINS.get("tanh")

    class AllSlightlyOff(spec.target):
        def backward(self, dout):
            return super().backward(dout) * (1 + 3e-5)  # three times rtol everywhere

    for seed in range(2):
        outcome, _ = _run(replace(spec, target=AllSlightlyOff), "fast", seed, {"N": 16, "D": 256})
        assert outcome.status is Status.FAIL
