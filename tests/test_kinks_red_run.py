"""The red run's evidence: the larger example that diagnoses a failure compares only the tensors
that failed (the others' full checks there are not used)."""

from __future__ import annotations

from pathlib import Path

import gradcheck.engine as engine
from gradcheck.engine import Options, check_layer
from gradcheck.examples import Counter, check_example
from gradcheck.registry import load_registry
from gradcheck.results import Status
from gradcheck.sampling import Example
from gradcheck.spec import DEFAULT_TOLERANCES

GALLERY = load_registry(Path(__file__).resolve().parent.parent / "examples" / "buggy" / "layers.yaml")


def test_only_the_named_tensors_are_compared_and_the_rest_of_the_checks_still_run():
    spec = GALLERY.get("bias-first-row")
    example = Example((("N", 3), ("D", 2), ("M", 2)), 5, 1.0)
    every, some = Counter(), Counter()
    whole = check_example(spec, example, DEFAULT_TOLERANCES, every)
    only_b = check_example(spec, example, DEFAULT_TOLERANCES, some, only=frozenset({"b"}))
    assert [t.name for t in whole.tensors] == ["x", "w", "b"]
    assert [t.name for t in only_b.tensors] == ["b"] and only_b.status is Status.FAIL
    assert only_b.tensors[0].failing.any()
    assert some.forward < every.forward


def test_the_larger_example_of_the_evidence_compares_every_tensor(monkeypatch):
    """A second bug may show only at the larger dims: the evidence run must not skip it."""
    spec = GALLERY.get("bias-first-row")
    seen = []
    original = engine._guarded_check

    def spied(*args):
        seen.append(args[5:])
        return original(*args)

    monkeypatch.setattr(engine, "_guarded_check", spied)
    result = check_layer(spec, Options(seed=1))
    assert result.status is Status.FAIL
    assert seen and all(extra in ((), (None,)) for extra in seen)  # no run restricted to some tensors
