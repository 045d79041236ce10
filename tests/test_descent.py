"""The dims descent that shrinks a failure: its moves on their own, then inside check_layer."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from layer_expectations import wrong_from_three_features

import gradcheck.engine as engine
from gradcheck.descent import descend
from gradcheck.engine import SHRINK_BUDGET, Options, check_layer
from gradcheck.expr import parse
from gradcheck.registry import load_registry
from gradcheck.results import Status
from gradcheck.sampling import Example, satisfies
from gradcheck.smallest import size

ROOT = Path(__file__).resolve().parent.parent
GALLERY = load_registry(ROOT / "examples" / "buggy" / "layers.yaml")
REGISTRY = load_registry(ROOT / "layers.yaml")
LINEAR = REGISTRY.get("linear")  # dims N, D, M, no `where`
CONV = GALLERY.get("conv-stride")  # where: (H + 2*P - K) % S == 0, (Wd + 2*P - K) % S == 0


def _example(seed: int = 12345, scale: float = 100.0, **dims: int) -> Example:
    return Example(tuple(dims.items()), seed, scale)


def _asked(rule, budget: int | None = None):
    """A `fails` for descend that answers by `rule(example)` and records each question; None past `budget`."""
    asked: list[Example] = []

    def fails(example: Example) -> bool | None:
        if budget is not None and len(asked) >= budget:
            return None
        asked.append(example)
        return rule(example)

    return fails, asked


# -- the descent on its own: a rule stands in for the layer -----------------------------------------
def test_each_dim_is_bisected_down_to_the_smallest_failing_value_then_scale_and_seed():
    fails, asked = _asked(lambda e: e.dim_values["D"] >= 3)
    best = descend(LINEAR, _example(N=4, D=5, M=5), fails)
    assert best == _example(seed=0, scale=1.0, N=1, D=3, M=1)
    assert len(asked) == len(set(asked))  # never asked twice
    assert _example(N=1, D=5, M=5) in asked and _example(N=1, D=1, M=5) in asked  # each dim's lowest first


def test_a_failure_that_needs_its_magnitude_and_seed_keeps_them():
    start = _example(N=3, D=2, M=2, seed=77, scale=1000.0)
    fails, _ = _asked(lambda e: e.scale == 1000.0 and e.seed == 77)
    assert descend(LINEAR, start, fails) == _example(N=1, D=1, M=1, seed=77, scale=1000.0)


def test_the_lowest_value_seeds_that_fail_are_found():
    fails, _ = _asked(lambda e: e.seed in (7, 1))  # seed 0 passes: the values matter
    assert descend(LINEAR, _example(N=4, D=5, M=5, seed=7), fails) == _example(N=1, D=1, M=1, seed=1, scale=1.0)


def test_when_the_values_matter_smaller_dims_are_tried_at_other_seeds():
    """N=1 passes at the failure's seed 7 but fails at seed 1: found once seed 0 proved the values matter."""
    rule = lambda e: (e.seed == 7 and e.dim_values["N"] >= 3) or (e.seed == 1 and e.dim_values["N"] == 1)  # noqa: E731
    fails, asked = _asked(rule)
    best = descend(LINEAR, _example(N=4, D=1, M=1, seed=7, scale=1.0), fails)
    assert best == _example(N=1, D=1, M=1, seed=1, scale=1.0)
    assert asked.index(_example(N=3, D=1, M=1, seed=0, scale=1.0)) < asked.index(best)  # seed 0 passed first


def test_where_is_respected_and_coupled_dims_move_together():
    """conv with stride 2 is only allowed at odd H - K: K and H can only go down together."""
    start = _example(N=1, C=1, F=1, K=2, S=2, P=0, H=4, Wd=4, seed=0, scale=1.0)
    fails, asked = _asked(lambda e: e.dim_values["S"] == 2)  # wrong only with a stride above 1
    best = descend(CONV, start, fails)
    assert best.dim_values == {"N": 1, "C": 1, "F": 1, "K": 1, "S": 2, "P": 0, "H": 3, "Wd": 3}
    assert all(satisfies(CONV, e.dim_values) for e in asked)


def test_the_descent_stops_when_its_budget_is_spent_and_keeps_its_best():
    start = _example(N=4, D=5, M=5)
    fails, asked = _asked(lambda e: e.dim_values["D"] >= 3, budget=3)
    best = descend(LINEAR, start, fails)
    assert len(asked) == 3
    failures = [e for e in asked if e.dim_values["D"] >= 3]
    assert best == min([start, *failures], key=size)


@pytest.mark.parametrize("rule", [lambda e: True, lambda e: e.dim_values["N"] % 2 == 0, lambda e: e.seed % 3 == 0])
def test_only_ever_proposes_smaller_examples_and_returns_a_failure(rule):
    start = _example(N=4, D=5, M=5, seed=12)
    fails, asked = _asked(rule)
    best = descend(LINEAR, start, fails)
    assert all(size(e) < size(start) for e in asked)
    assert best == start or (best in asked and rule(best))


def test_the_same_start_asks_the_same_questions():
    runs = []
    for _ in range(2):
        fails, asked = _asked(lambda e: sum(e.dim_values.values()) % 2 == 1)
        runs.append((descend(LINEAR, _example(N=4, D=5, M=4), fails), asked))
    assert runs[0] == runs[1]


# -- inside check_layer: real checks ----------------------------------------------------------------
def _first_failure(result) -> int:
    """Where the first failing example stands in the trail of examples checked."""
    return next(i for i, (_, _, _, status) in enumerate(result.trail) if status in ("FAIL", "ERROR"))


def test_conv_stride_is_reported_at_stride_2_and_its_smallest_image():
    result = check_layer(CONV, Options(seed=1))
    assert result.status is Status.FAIL
    assert result.failing_dims == {"N": 1, "C": 1, "F": 1, "K": 1, "S": 2, "P": 0, "H": 3, "Wd": 3}


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("name", GALLERY.names())
def test_the_report_is_never_larger_than_the_first_failure_and_the_budget_holds(name, seed):
    result = check_layer(GALLERY.get(name), Options(seed=seed))
    assert result.status in (Status.FAIL, Status.ERROR)
    first = _first_failure(result)
    dims, value_seed, scale, _ = result.trail[first]
    reported = Example(tuple(result.example["dims"].items()), result.example["seed"], result.example["scale"])
    assert size(reported) <= size(Example(tuple(dims.items()), value_seed, scale))
    assert len(result.trail) - first - 1 <= SHRINK_BUDGET


def test_a_small_budget_caps_the_examples_after_the_failure(monkeypatch):
    monkeypatch.setattr(engine, "SHRINK_BUDGET", 2)
    result = check_layer(GALLERY.get("batch-mean"), Options(seed=1))
    assert result.status is Status.FAIL
    assert len(result.trail) - _first_failure(result) - 1 == 2


@pytest.mark.parametrize("name", ["conv-stride", "batch-mean", "softmax-overflow"])
def test_the_same_seed_gives_the_same_trail_and_report(name):
    first, again = (check_layer(GALLERY.get(name), Options(seed=3)) for _ in range(2))
    assert first.trail == again.trail and len(first.trail) > 1
    keep = ("status", "failing_dims", "example", "calls", "examples", "message")
    assert {k: getattr(first, k) for k in keep} == {k: getattr(again, k) for k in keep}
    assert [(t.name, t.status, t.failing_dims) for t in first.tensors] == [
        (t.name, t.status, t.failing_dims) for t in again.tensors
    ]


def test_a_failure_inside_a_where_region_is_found_and_shrunk():
    spec = replace(LINEAR, target=wrong_from_three_features(LINEAR.target), where=(parse("D != M"),))
    result = check_layer(spec, Options(seed=0))
    assert result.status is Status.FAIL
    assert result.failing_dims == {"N": 1, "D": 3, "M": 1}


def test_where_that_defeats_the_sampler_leaves_the_search_to_hypothesis(monkeypatch):
    """K <= 3 out of 1..100000: rejection almost never draws it; hypothesis still finds D=3 wrong."""
    runs = []
    search = engine._Search._search
    monkeypatch.setattr(engine._Search, "_search", lambda self, seed: runs.append(seed) or search(self, seed))
    dims = {**LINEAR.dims, "K": (1, 100000)}
    spec = replace(LINEAR, target=wrong_from_three_features(LINEAR.target), dims=dims, where=(parse("K <= 3"),))
    result = check_layer(spec, Options(seed=1))
    assert runs == [1]
    assert result.status is Status.FAIL
    assert result.failing_dims["D"] == 3 and result.failing_dims["K"] <= 3
