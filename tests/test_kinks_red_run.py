"""The red run's evidence: the larger example that diagnoses a failure compares every tensor."""

from __future__ import annotations

import inspect
from pathlib import Path

import gradcheck.engine as engine
from gradcheck.engine import Options, check_layer
from gradcheck.registry import load_registry
from gradcheck.results import Status

GALLERY = load_registry(Path(__file__).resolve().parent.parent / "examples" / "buggy" / "layers.yaml")


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
    assert seen and all(extra == () for extra in seen)  # no run restricted to some tensors


def test_every_example_compares_every_tensor():
    """No hook restricts an example's check to some tensors: each verdict covers all of them."""
    from gradcheck.examples import check_example
    from gradcheck.sampling import Example
    from gradcheck.spec import DEFAULT_TOLERANCES

    assert "only" not in inspect.signature(check_example).parameters
    outcome = check_example(
        GALLERY.get("bias-first-row"), Example((("N", 3), ("D", 2), ("M", 2)), 5, 1.0), DEFAULT_TOLERANCES
    )
    assert [t.name for t in outcome.tensors] == ["x", "w", "b"] and outcome.status is Status.FAIL
