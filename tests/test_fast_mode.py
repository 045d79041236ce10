"""Fast mode's random directions where rounding crowds them, and how auto chooses between them and
the full check: by size, and by what the full check would cost in forwards of the layer's size."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import gradcheck.by_directions as by_directions
import gradcheck.method_choice as method_choice
from gradcheck.directions import FAST_TIGHTNESS, MAX_STRETCH, directions_agree
from gradcheck.examples import Counter, check_example
from gradcheck.registry import load_registry
from gradcheck.results import Status
from gradcheck.sampling import Example
from gradcheck.spec import DEFAULT_TOLERANCES

BUILTINS = load_registry(Path(__file__).resolve().parent.parent / "layers.yaml")


def _run(spec, mode, seed=11, **dims):
    counter = Counter()
    outcome = check_example(spec, Example(tuple(dims.items()), seed, 1.0), DEFAULT_TOLERANCES, counter, mode)
    return outcome, counter.forward


def _methods(outcome) -> dict[str, str]:
    return {t.name: t.method for t in outcome.tensors}


def _spy_directions(monkeypatch, **overrides) -> list:
    """Record every DirectionalCheck the example's fast pass gets (with `overrides` passed in)."""
    found = []
    original = by_directions.directions_agree

    def spied(*args, **kwargs):
        found.append(original(*args, **{**kwargs, **overrides}))
        return found[-1]

    monkeypatch.setattr(by_directions, "directions_agree", spied)
    return found


LARGE = [("tanh", {"N": 1, "D": 4096}), ("linear", {"N": 16, "D": 64, "M": 64})]  # weighed whole


@pytest.mark.parametrize("name, dims", LARGE)
def test_directions_stretch_their_step_where_rounding_would_cloud_them(name, dims, monkeypatch):
    """Over thousands of outputs the rounding of a directional derivative taken at eps is a good
    part of the threshold, and no tensor has more room than another: the step is stretched
    beforehand, by what sum |R * out| foretells, and one round of directions settles it."""
    found = _spy_directions(monkeypatch)
    outcome, forwards = _run(BUILTINS.get(name), "fast", **dims)
    assert outcome.status is Status.PASS
    assert set(_methods(outcome).values()) == {"fast"}
    assert len(found) == 1 and found[0].agree
    assert 1.0 < found[0].stretch <= MAX_STRETCH
    assert forwards <= 2 + 2 * 4  # the reference, the probe, 4 directions both ways


def test_directions_weighed_per_sample_foretell_each_sample_s_rounding(monkeypatch):
    """The same 4096 outputs as 16 independent samples: each sample's share of the rounding is what
    counts, a sixteenth of the whole; the step need not stretch, and one round settles it."""
    found = _spy_directions(monkeypatch)
    outcome, forwards = _run(BUILTINS.get("tanh"), "fast", N=16, D=256)
    assert outcome.status is Status.PASS and set(_methods(outcome).values()) == {"fast"}
    assert len(found) == 1 and found[0].agree and found[0].stretch == 1.0
    assert forwards <= 2 + 2 * 4


@pytest.mark.parametrize("name, dims", LARGE)
def test_a_rounding_doubt_draws_the_directions_again_with_a_longer_step(name, dims, monkeypatch):
    """Without the foretelling (as when few outputs move), the first round's doubt is rounding
    alone and no tensor has more room: the same tensors go again, stretched."""
    found = _spy_directions(monkeypatch, weight=0.0, kinks=None)  # weighed whole, as a layer mixing samples is
    outcome, _ = _run(BUILTINS.get(name), "fast", **dims)
    assert outcome.status is Status.PASS and set(_methods(outcome).values()) == {"fast"}
    assert [f.agree for f in found] == [False, True] and found[0].rounding_only
    assert found[0].stretch == 1.0 < found[1].stretch <= MAX_STRETCH


@pytest.mark.parametrize("seed", range(4))
def test_an_element_wrong_by_a_few_tolerances_still_fails_where_the_directions_stretch(seed):
    spec = BUILTINS.get("tanh")

    class OneElementOff(spec.target):
        def backward(self, dout):
            dx = super().backward(dout)
            dx[3, 5] *= 1 + 5e-5  # five times rtol: the full check fails it
            return dx

    dims = {"N": 16, "D": 256}
    full, _ = _run(replace(spec, target=OneElementOff), "full", seed, **dims)
    fast, _ = _run(replace(spec, target=OneElementOff), "fast", seed, **dims)
    assert full.status is fast.status is Status.FAIL
    assert fast.tensors[0].worst_index == (3, 5)


def test_a_stretched_step_moves_the_farthest_element_that_many_steps():
    x = np.linspace(-3.0, 3.0, 50)
    moved = []

    def evaluate(copies):
        moved.append(copies["x"])
        return [copies["x"] ** 2]

    eps = 1e-6
    found = directions_agree(evaluate, {"x": x}, {"x": 2 * x}, [np.ones(50)], eps, 1e-5, 1e-7, 0, stretch=10.0)
    assert found.agree
    reach = np.abs(moved[0] - x).max() / (eps * max(1.0, np.abs(x).max()))  # in steps of the tensor's eps
    assert reach == pytest.approx(10.0, rel=1e-6)


SLOW_DIMS = {"N": 4, "D": 12, "M": 12}  # W: 144 elements, 288 forwards in the full check
# one forward there costs CALL_COST + 252 elements (x 48, W 144, b 12, out 48); the full checks of
# x (coloured: 24 forwards), W (288) and b (24) together 336 forwards, those of x and b 48
SLOW_FORWARD = method_choice.CALL_COST + 252


def test_auto_starts_with_the_directions_where_the_full_check_would_be_costly(monkeypatch):
    spec = BUILTINS.get("linear")
    monkeypatch.setattr(method_choice, "FULL_BUDGET", 100 * SLOW_FORWARD)  # W's 288 forwards do not fit
    outcome, forwards = _run(spec, "auto", **SLOW_DIMS)
    assert outcome.status is Status.PASS
    # b rides the directions W pays for; x, batch-leading, keeps its coloured check
    assert _methods(outcome) == {"x": "coloured", "W": "fast", "b": "fast"}
    assert forwards < 288 / 4
    monkeypatch.setattr(method_choice, "FULL_BUDGET", 336 * SLOW_FORWARD)  # everything fits: every tensor full
    every, _ = _run(spec, "auto", **SLOW_DIMS)
    assert _methods(every) == {"x": "coloured", "W": "full", "b": "full"}


def test_a_wrong_weight_element_still_fails_where_auto_starts_with_the_directions(monkeypatch):
    spec = BUILTINS.get("linear")
    monkeypatch.setattr(method_choice, "FULL_BUDGET", 100 * SLOW_FORWARD)

    class OneWrong(spec.target):
        def backward(self, dout):
            dx = super().backward(dout)
            self.dW[2, 7] *= 1.001
            return dx

    outcome, _ = _run(replace(spec, target=OneWrong), "auto", **SLOW_DIMS)
    assert outcome.status is Status.FAIL
    weight = next(t for t in outcome.tensors if t.name == "W")
    assert weight.status is Status.FAIL and weight.method == "full" and weight.worst_index == (2, 7)


@pytest.mark.parametrize("tensor, index", [("W", (2, 7)), ("b", (5,))])
def test_a_wrong_element_of_a_rider_or_a_costly_tensor_fails_by_its_groups(monkeypatch, tensor, index):
    """W (sent by the budget) and b (riding along) doubted by the shared directions go by groups:
    their own directions, then the per-element check of the group that doubts."""
    spec = BUILTINS.get("linear")
    monkeypatch.setattr(method_choice, "FULL_BUDGET", 100 * SLOW_FORWARD)

    class OneWrong(spec.target):
        def backward(self, dout):
            dx = super().backward(dout)
            getattr(self, "d" + tensor)[index] *= 1.01
            return dx

    groups = []
    original = by_directions.by_groups
    monkeypatch.setattr(by_directions, "by_groups", lambda c, name, *a: groups.append(name) or original(c, name, *a))
    outcome, _ = _run(replace(spec, target=OneWrong), "auto", **SLOW_DIMS)
    assert outcome.status is Status.FAIL and groups == ["W", "b"]
    failing = [t for t in outcome.tensors if t.status is Status.FAIL]
    assert [(t.name, t.method, t.worst_index) for t in failing] == [(tensor, "full", index)]


def test_a_shared_doubt_sends_costly_tensors_to_their_groups_not_the_full_check(monkeypatch):
    """Where the shared directions doubt (kinks elsewhere, say), a tensor the budget sent to them
    gets directions of its own, not the two forwards per element the budget had ruled out."""
    spec = BUILTINS.get("linear")
    monkeypatch.setattr(method_choice, "FULL_BUDGET", 100 * SLOW_FORWARD)
    monkeypatch.setattr(by_directions, "fast_pass", lambda *args: by_directions.Quick())  # the shared directions doubt
    outcome, forwards = _run(spec, "auto", **SLOW_DIMS)
    assert outcome.status is Status.PASS
    assert _methods(outcome) == {"x": "coloured", "W": "fast", "b": "fast"}
    assert forwards < 288  # W's full check alone


def test_the_built_in_layers_at_their_registry_shapes_fit_the_budget():
    """At the largest shapes layers.yaml draws, every built-in tensor gets the full check in auto."""
    for spec in BUILTINS.layers:
        dims = {name: hi for name, (lo, hi) in spec.dims.items()}
        outcome, _ = _run(spec, "auto", **dims)
        if outcome.tensors:  # `where` may rule the top of every range out together
            assert "fast" not in _methods(outcome).values(), spec.name


def test_a_tensor_passed_by_the_directions_reports_its_error_in_its_own_units():
    """The directions' error is measured in tolerance units; the report shows it times the tensor's
    rms tolerance, the size of a one-element error the directions would still let through."""
    outcome, _ = _run(BUILTINS.get("tanh"), "fast", N=16, D=256)
    (x,) = outcome.tensors
    assert x.method == "fast"
    assert 0.0 < x.max_abs_error <= FAST_TIGHTNESS * float(x.bound.max())
    assert x.max_rel_error < DEFAULT_TOLERANCES.rtol


def test_the_report_says_which_tensors_passed_by_the_directions_alone():
    import io
    import json

    from rich.console import Console

    from gradcheck.engine import Options, check_layer
    from gradcheck.reporters import render
    from gradcheck.reporters.table import print_run
    from gradcheck.results import RunResult

    big = replace(BUILTINS.get("linear"), dims={"N": (2, 2), "D": (64, 64), "M": (80, 80)})  # W: 5120 elements
    result = check_layer(big, Options(seed=0, examples=3))
    assert result.status is Status.PASS
    counts = {t.name: dict(t.checked_by) for t in result.tensors}
    assert counts["W"].get("fast", 0) >= 1 and sum(counts["W"].values()) == 3
    assert "fast" not in counts["x"] and sum(counts["x"].values()) == 3  # batch-leading: coloured
    document = json.loads(render("json", RunResult((result,), 1.0, 0)))
    assert {t["name"]: t["checked_by"] for t in document["layers"][0]["tensors"]} == counts

    buffer = io.StringIO()
    print_run(Console(file=buffer, width=200, no_color=True), RunResult((result,), 1.0, 0), detail=True)
    line = next(line for line in buffer.getvalue().splitlines() if "random directions" in line)
    assert f"W in {counts['W']['fast']} of 3" in line and " x in" not in line


def test_auto_keeps_the_whole_example_within_its_budget_not_each_tensor(monkeypatch):
    """rnn-cell at N=4, D=8, H=8: a forward costs CALL_COST + 232 elements; the full checks take 304
    forwards (Wx and Wh 128 each), 176 without Wx's. With a budget of 200 forwards the first of the
    two equal tensors starts with the directions and the rest fits; with 150, both do."""
    spec = BUILTINS.get("rnn-cell")
    per_forward = method_choice.CALL_COST + 232
    costly, original = [], method_choice.costly
    monkeypatch.setattr(method_choice, "costly", lambda *args: costly.append(original(*args)) or costly[-1])
    monkeypatch.setattr(method_choice, "FULL_BUDGET", 200 * per_forward)
    outcome, _ = _run(spec, "auto", N=4, D=8, H=8)
    assert outcome.status is Status.PASS
    assert _methods(outcome) == {"x": "coloured", "prev_h": "coloured", "Wx": "fast", "Wh": "fast", "b": "fast"}
    assert costly == [{"Wx"}]  # Wh and b only ride along
    monkeypatch.setattr(method_choice, "FULL_BUDGET", 150 * per_forward)
    costly.clear()
    outcome, _ = _run(spec, "auto", N=4, D=8, H=8)
    assert costly == [{"Wx", "Wh"}]
