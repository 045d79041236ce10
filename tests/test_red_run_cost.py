"""After the first failure the verdict is known: shrinking costs little, and changes no verdict."""

from __future__ import annotations

from pathlib import Path

import pytest

import gradcheck.engine as engine
from gradcheck.engine import Options, check_layer
from gradcheck.registry import load_registry
from gradcheck.results import Status

ROOT = Path(__file__).resolve().parent.parent
GALLERY = load_registry(ROOT / "examples" / "buggy" / "layers.yaml")
KEEP = ("status", "failing_dims", "example", "calls", "examples", "trail", "message")


def _shrinks(monkeypatch) -> list[str]:
    """Record which shrink runs: the dims descent ("descend") or hypothesis ("search")."""
    runs: list[str] = []
    descend, search = engine._Search._descend, engine._Search._search

    def counted_descend(self):
        runs.append("descend")
        return descend(self)

    def counted_search(self, seed):
        runs.append("search")
        return search(self, seed)

    monkeypatch.setattr(engine._Search, "_descend", counted_descend)
    monkeypatch.setattr(engine._Search, "_search", counted_search)
    return runs


@pytest.mark.parametrize("name", ["sigmoid-wrong-sign", "mul-swapped-inputs", "lstm-forget-gate"])
def test_a_failure_at_the_smallest_example_skips_the_descent_and_changes_nothing(name, monkeypatch):
    spec = GALLERY.get(name)
    runs = _shrinks(monkeypatch)
    quick = check_layer(spec, Options(seed=1))
    assert quick.status is Status.FAIL and quick.examples == 1 and runs == []
    assert quick.failing_dims == {n: bounds[0] for n, bounds in spec.dims.items()}
    monkeypatch.setattr(engine._Search, "_failed_at_the_minimum", lambda self: False)
    searched = check_layer(spec, Options(seed=1))
    assert runs == ["descend"]  # the descent ran this time, and found nothing new
    assert {k: getattr(quick, k) for k in KEEP} == {k: getattr(searched, k) for k in KEEP}
    assert [(t.name, t.status, t.diagnosis) for t in quick.tensors] == [
        (t.name, t.status, t.diagnosis) for t in searched.tensors
    ]


def test_a_failure_above_the_smallest_example_is_shrunk_by_the_descent_not_hypothesis(monkeypatch):
    runs = _shrinks(monkeypatch)
    result = check_layer(GALLERY.get("bias-first-row"), Options(seed=1))
    assert result.status is Status.FAIL and runs == ["descend"]
    assert result.failing_dims["N"] == 2  # a bias kept from the first row only: wrong from batch 2


def _checks(monkeypatch, drop_only: bool = False) -> list:
    """Each example check's (dims, tensors compared); with drop_only every check compares every tensor."""
    seen = []
    original = engine.check_example

    def spied(spec, example, tol, counter, mode, only=None):
        outcome = original(spec, example, tol, counter, mode, None if drop_only else only)
        seen.append((example.dim_values, only, [t.name for t in outcome.tensors]))
        return outcome

    def evidence(*args):
        seen.append(None)  # the search ends here
        return gather(*args)

    gather = engine.gather_evidence
    monkeypatch.setattr(engine, "check_example", spied)
    monkeypatch.setattr(engine, "gather_evidence", evidence)
    return seen


@pytest.mark.parametrize("name", ["bias-first-row", "batch-mean", "conv-stride", "conv-pad-misaligned"])
def test_shrinking_compares_only_the_tensors_that_failed_and_finds_the_same_example(name, monkeypatch):
    spec = GALLERY.get(name)
    seen = _checks(monkeypatch)
    cheap = check_layer(spec, Options(seed=1))
    search = seen[: seen.index(None)]
    first = next(i for i, (_, only, _) in enumerate(search) if only is not None)
    assert first > 0 and all(only is None for _, only, _ in search[:first])  # the numpy sample compared every tensor
    failing = {t.name for t in cheap.tensors if t.failed}
    assert all(only == failing for _, only, _ in search[first:])  # then the shrink compared only the failing ones
    assert all(set(names) <= failing for _, _, names in search[first:])
    monkeypatch.undo()
    _checks(monkeypatch, drop_only=True)
    whole = check_layer(spec, Options(seed=1))
    assert cheap.calls["forward"] < whole.calls["forward"]
    assert (cheap.status, cheap.failing_dims, cheap.example) == (whole.status, whole.failing_dims, whole.example)
    assert [(t.name, t.status, t.failing_dims, t.diagnosis) for t in cheap.tensors] == [
        (t.name, t.status, t.failing_dims, t.diagnosis) for t in whole.tensors
    ]


def test_the_tensors_the_shrink_left_out_are_reported_from_full_examples():
    result = check_layer(GALLERY.get("bias-first-row"), Options(seed=1))
    rows = {t.name: t for t in result.tensors}
    assert list(rows) == ["x", "w", "b"]
    assert rows["b"].status is Status.FAIL and rows["b"].example["dims"] == result.failing_dims
    for name in ("x", "w"):  # passing, read from an example that compared them
        assert rows[name].status is Status.PASS and rows[name].max_abs_error is not None
        assert rows[name].example is not None and rows[name].shape != ()


def test_a_failure_that_needs_its_values_is_explored_by_hypothesis_after_the_descent(monkeypatch):
    """A softmax loss taking log of a probability fails only where some probability underflows (a
    few draws at magnitude 1000); the descent keeps the failure's values, and no smaller dims fail
    with them. Value seed 0 does not repeat it, so hypothesis, drawing values anew, searches after."""
    spec = load_registry(ROOT / "tests" / "fixtures" / "realcode_report" / "losses.yaml").get(
        "softmax-loss-log-of-probability"
    )
    runs = _shrinks(monkeypatch)
    explored = check_layer(spec, Options(seed=1))
    assert explored.status is Status.FAIL and runs == ["descend", "search"]
    monkeypatch.setattr(engine._Search, "_search", lambda self, seed: None)
    descended = check_layer(spec, Options(seed=1))
    assert descended.status is Status.FAIL
    assert sum(explored.failing_dims.values()) < sum(descended.failing_dims.values())


def test_a_systematic_failure_is_not_handed_to_hypothesis(monkeypatch):
    runs = _shrinks(monkeypatch)
    for name in ("bias-first-row", "conv-stride", "batch-mean"):
        assert check_layer(GALLERY.get(name), Options(seed=1)).status is Status.FAIL
    assert runs == ["descend"] * 3
