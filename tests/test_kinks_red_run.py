"""The red run's evidence: the larger example that diagnoses a failure compares every tensor, at a bounded cost."""

from __future__ import annotations

from pathlib import Path

from gradcheck.engine import _gather_evidence
from gradcheck.examples import Counter, check_example
from gradcheck.registry import load_registry
from gradcheck.results import Status
from gradcheck.sampling import Example
from gradcheck.spec import DEFAULT_TOLERANCES

ROOT = Path(__file__).resolve().parent.parent
GALLERY = load_registry(ROOT / "examples" / "buggy" / "layers.yaml")
TWO_BUGS = load_registry(ROOT / "tests" / "fixtures" / "realcode_report" / "twobugs.yaml").get("affine-two-bugs")


def _check(spec, dims: dict, only=None, mode="auto"):
    return check_example(spec, Example(tuple(dims.items()), 5, 1.0), DEFAULT_TOLERANCES, Counter(), mode, only)


def test_the_larger_example_checks_the_failing_tensors_in_full_and_the_others_by_directions():
    spec = GALLERY.get("bias-first-row")
    smallest = _check(spec, {"N": 2, "D": 1, "M": 1})
    assert [t.name for t in smallest.tensors if t.status is Status.FAIL] == ["b"]
    evidence = _gather_evidence(spec, [smallest], DEFAULT_TOLERANCES, Counter(), "auto")
    larger = evidence.larger
    assert larger is not None and [t.name for t in larger.tensors] == ["x", "w", "b"]  # every tensor, in order
    methods = {t.name: (t.method, t.status) for t in larger.tensors}
    assert methods == {"x": ("fast", Status.PASS), "w": ("fast", Status.PASS), "b": ("full", Status.FAIL)}


def test_a_second_bug_seen_only_at_the_larger_batch_is_still_found():
    """db averaged over the batch cannot fail at N=1: the smallest failure shows only dW's bug."""
    smallest = _check(TWO_BUGS, {"N": 1, "D": 2, "M": 2})
    assert {t.name: t.status for t in smallest.tensors} == {"x": Status.PASS, "W": Status.FAIL, "b": Status.PASS}
    counter = Counter()
    evidence = _gather_evidence(TWO_BUGS, [smallest], DEFAULT_TOLERANCES, counter, "auto")
    larger = {t.name: t for t in evidence.larger.tensors}
    assert larger["b"].status is Status.FAIL and larger["b"].method == "full"  # the directions' doubt went full
    assert larger["x"].status is Status.PASS and larger["W"].status is Status.FAIL


def test_only_compares_the_tensors_named_and_every_tensor_without_it():
    spec = GALLERY.get("bias-first-row")
    dims = {"N": 3, "D": 2, "M": 2}
    every = _check(spec, dims)
    assert [t.name for t in every.tensors] == ["x", "w", "b"] and every.status is Status.FAIL
    counted = Counter()
    just_b = check_example(spec, Example(tuple(dims.items()), 5, 1.0), DEFAULT_TOLERANCES, counted, only={"b"})
    assert [t.name for t in just_b.tensors] == ["b"] and just_b.status is Status.FAIL
    just_x = _check(spec, dims, only=frozenset({"x"}))
    assert [t.name for t in just_x.tensors] == ["x"] and just_x.status is Status.PASS
    assert counted.forward < 2 * (6 + 4)  # x's and w's numeric gradients were not taken


def test_a_check_of_some_tensors_still_checks_the_layers_hygiene(tmp_path):
    """Writing into its input fails the example, whichever tensors are compared."""
    (tmp_path / "writes.py").write_text(
        "def forward(x, w):\n    y = x @ w\n    x += 1.0\n    return y, (x, w)\n\n"
        "def backward(dout, cache):\n    x, w = cache\n    return dout @ w.T, x.T @ dout\n"
    )
    (tmp_path / "layers.yaml").write_text(
        "layers:\n  - name: writes\n    impl: writes.py\n    style: functions\n"
        "    forward: forward\n    backward: backward\n"
        "    inputs: {x: [N, D]}\n    params: {w: [D, M]}\n    dims: {N: [1, 3], D: [1, 3], M: [1, 3]}\n"
    )
    spec = load_registry(tmp_path / "layers.yaml").get("writes")
    outcome = _check(spec, {"N": 2, "D": 2, "M": 2}, only=frozenset({"w"}))
    assert outcome.status is Status.FAIL and not outcome.tensors and "input 'x' in place" in outcome.message
