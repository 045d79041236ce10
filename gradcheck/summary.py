"""Folding a layer's examples into one LayerResult: the smallest failure, or the worst passing errors."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from gradcheck.diagnosis import Evidence, probable_cause
from gradcheck.examples import ExampleOutcome, TensorOutcome
from gradcheck.results import LayerResult, Status, TensorResult, worst
from gradcheck.smallest import ordered_dims, smallness
from gradcheck.spec import METHODS, LayerSpec

TINY = 1e-300  # keeps a ratio to an all-zero tolerance from dividing by zero
KINKS_NOTE = (
    "{} point(s) skipped where the function is not smooth (kinks) or the reference is unsteady; "
    "examples with such points were drawn again"
)

Shown = tuple[TensorOutcome, ExampleOutcome]  # a tensor with the example it is reported at


def summarise(
    spec: LayerSpec,
    outcomes: list[ExampleOutcome],
    seconds: float,
    timed_out: float | None,
    evidence: Evidence | None = None,
) -> LayerResult:
    """Fold the examples into one LayerResult: the smallest failure, or the worst passing errors."""
    precision = min((o.precision for o in outcomes), key=lambda p: np.finfo(p).nmant, default="float64")
    base = LayerResult(
        name=spec.name,
        status=Status.PASS,
        examples=len(outcomes),
        seconds=seconds,
        kinks=sum(o.skipped for o in outcomes),
        precision=precision,
    )
    if timed_out is not None:
        return replace(base, status=Status.ERROR, message=f"timed out after {timed_out:g} s (a hang, or far too slow?)")
    failures = [o for o in outcomes if o.failed]
    if failures:
        return _failed(spec, base, outcomes, failures, evidence or Evidence())
    return _passed(spec, base, outcomes)


def _failed(
    spec: LayerSpec,
    base: LayerResult,
    outcomes: list[ExampleOutcome],
    failures: list[ExampleOutcome],
    evidence: Evidence,
) -> LayerResult:
    """A failing layer, reported at its smallest failing example, each wrong gradient at its own."""
    smallest = min(failures, key=smallness)
    pool = failures + ([evidence.larger] if evidence.larger else [])
    tensors = tuple(
        replace(_tensor_result(spec, t, seen, failures, evidence), checked_by=_checked_by(t.name, outcomes))
        for t, seen in _own_failures(spec, smallest, pool, outcomes)
    )
    wrong = ", ".join(t.name for t in tensors if t.failed)
    if not smallest.message:
        message = "wrong gradient for " + wrong
    else:
        message = f"{smallest.message}; wrong gradient for {wrong} too" if wrong else smallest.message
    problem = _problem_tensor(spec, smallest) if not smallest.tensors else ()
    return replace(
        base,
        status=smallest.status,
        tensors=problem + tensors,
        message=message,
        failing_dims=ordered_dims(spec, smallest.example.dim_values),
        warnings=_warnings(outcomes),
        shapes=dict(smallest.shapes),
    )


def _passed(spec: LayerSpec, base: LayerResult, outcomes: list[ExampleOutcome]) -> LayerResult:
    """A layer with no failing example: PASS, WARN, or SKIP when some gradient was never checked."""
    tensors = _passing_tensors(spec, outcomes)
    warnings = _warnings(outcomes)
    unchecked = _unchecked(spec, tensors)
    status = Status.SKIP if unchecked else Status.WARN if warnings else worst(t.status for t in tensors)
    message = unchecked or (warnings[0] if warnings else "")
    if base.kinks:
        message = message or KINKS_NOTE.format(base.kinks)
    largest = max(outcomes, key=smallness, default=None)
    return replace(
        base,
        status=status,
        tensors=tensors,
        message=message,
        warnings=warnings,
        shapes=dict(largest.shapes) if largest else {},
    )


def _own_failures(
    spec: LayerSpec, smallest: ExampleOutcome, pool: list[ExampleOutcome], outcomes: list[ExampleOutcome]
) -> list[Shown]:
    """Each tensor with the example to report it at: the smallest where it failed, else `smallest`.

    A layer with two bugs reports both, each at its own example, even when the smallest failing
    example shows only one (a db averaged over the batch cannot fail at batch size 1).
    """
    failed: dict[str, Shown] = {}
    for outcome in sorted(pool, key=smallness):
        for tensor in outcome.tensors:
            if tensor.status is Status.FAIL and tensor.name not in failed:
                failed[tensor.name] = (tensor, outcome)
    rows = _rows(spec, smallest, outcomes)
    shown = [failed.get(t.name, (t, seen)) for t, seen in rows]
    at_smallest = {t.name for t, _ in rows}
    extra = [failed[name] for name in _names(spec) if name in failed and name not in at_smallest]
    return shown + extra


def _rows(spec: LayerSpec, smallest: ExampleOutcome, outcomes: list[ExampleOutcome]) -> list[Shown]:
    """The tensors compared at the smallest failing example, each with the example it is read from.

    Shrinking compares only the tensors that failed: a tensor the smallest example left out is
    read from the smallest example that compared it (one checked in full before the shrink)."""
    if not smallest.tensors:
        return []
    rows: dict[str, Shown] = {t.name: (t, smallest) for t in smallest.tensors}
    for outcome in sorted(outcomes, key=smallness):
        for tensor in outcome.tensors:
            rows.setdefault(tensor.name, (tensor, outcome))
    names = _names(spec)
    return [rows[n] for n in names + [n for n in rows if n not in names] if n in rows]


def _names(spec: LayerSpec) -> list[str]:
    """The differentiable inputs and the parameters, in the order reports list them."""
    return [t.name for t in spec.differentiable_inputs] + [p.name for p in spec.params]


def _example(outcome: ExampleOutcome, spec: LayerSpec) -> dict[str, Any]:
    example = outcome.example
    return {"dims": ordered_dims(spec, example.dim_values), "seed": example.seed, "scale": example.scale}


def _unchecked(spec: LayerSpec, tensors: tuple[TensorResult, ...]) -> str:
    """Why some gradient was never checked ("" if every one was): the reason a layer is SKIP, not PASS."""
    if not tensors:
        return (
            "nothing was checked: the layer has no differentiable input and no parameter"
            if not spec.differentiable_inputs and not spec.params
            else "nothing was checked: no example ran"
        )
    skipped = [t for t in tensors if t.status is Status.SKIP]
    if not skipped:
        return ""
    return "nothing was checked for " + "; ".join(f"{t.name} ({t.message})" for t in skipped)


def _checked_by(name: str, outcomes: list[ExampleOutcome]) -> tuple[tuple[str, int], ...]:
    """How many examples checked tensor `name` each way, in METHODS order."""
    methods = [t.method for o in outcomes for t in o.tensors if t.name == name]
    return tuple((method, methods.count(method)) for method in METHODS if method in methods)


def _warnings(outcomes: list[ExampleOutcome]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(w for o in outcomes for w in o.warnings))


def _tensor_result(
    spec: LayerSpec, tensor: TensorOutcome, example: ExampleOutcome, failures: list[ExampleOutcome], evidence: Evidence
) -> TensorResult:
    """A failing (or passing) tensor as seen in the smallest failing example."""
    index = tensor.worst_index
    analytic = float(tensor.analytic[index]) if index is not None and tensor.analytic.size else None
    numeric = float(tensor.numeric[index]) if index is not None and tensor.numeric.size else None
    result = TensorResult(
        name=tensor.name,
        kind=tensor.kind,
        status=tensor.status,
        shape=tensor.analytic.shape,
        max_abs_error=tensor.max_abs_error,
        max_rel_error=tensor.max_rel_error,
        worst_index=index,
        analytic=analytic,
        numeric=numeric,
        example=_example(example, spec),
    )
    if tensor.status is not Status.FAIL:
        return result
    outside = int(np.sum(tensor.abs_error > tensor.bound))
    return replace(
        result,
        message=f"{outside} of {tensor.analytic.size} elements outside tolerance",
        diagnosis=probable_cause(spec, tensor, example, failures, evidence),
        failing_dims=ordered_dims(spec, example.example.dim_values),
        error_map=tensor.abs_error,
    )


def _problem_tensor(spec: LayerSpec, outcome: ExampleOutcome) -> tuple[TensorResult, ...]:
    """The one tensor a shape/None/mutation problem concerns, marked with the layer's status."""
    if outcome.tensor is None:
        return ()
    kind = "param" if outcome.tensor in {p.name for p in spec.params} else "input"
    return (
        TensorResult(
            outcome.tensor,
            kind,
            outcome.status,
            shape=outcome.shapes.get(outcome.tensor, ()),
            message=outcome.message,
            failing_dims=ordered_dims(spec, outcome.example.dim_values),
        ),
    )


def _passing_tensors(spec: LayerSpec, outcomes: list[ExampleOutcome]) -> tuple[TensorResult, ...]:
    """Per tensor, the largest errors seen over all examples."""
    names = _names(spec)
    names += list(dict.fromkeys(t.name for o in outcomes for t in o.tensors if t.name not in names))  # discovered
    results = []
    for name in names:
        seen = [t for o in outcomes for t in o.tensors if t.name == name]
        if seen:
            results.append(_passing_tensor(spec, name, seen, outcomes))
    return tuple(results)


def _passing_tensor(
    spec: LayerSpec, name: str, seen: list[TensorOutcome], outcomes: list[ExampleOutcome]
) -> TensorResult:
    """One tensor over every example it was seen in: its worst element, or SKIP when nothing was checked."""
    checked = [t for t in seen if np.isfinite(t.numeric).any()]
    if not checked:
        empty = all(t.numeric.size == 0 for t in seen)
        message = "it had no elements in any example" if empty else "every point was a kink or unsteady"
        return TensorResult(name, seen[0].kind, Status.SKIP, shape=seen[0].analytic.shape, message=message)
    top = max(checked, key=lambda t: t.max_abs_error / max(float(np.max(t.bound, initial=0.0)), TINY))
    index = top.worst_index
    return TensorResult(
        name=name,
        kind=top.kind,
        status=Status.PASS,
        shape=top.analytic.shape,
        max_abs_error=max(t.max_abs_error for t in checked),
        max_rel_error=_pooled_relative_error(checked),
        worst_index=index or None,
        analytic=float(top.analytic[index]) if top.analytic.size else None,
        numeric=float(top.numeric[index]) if top.numeric.size else None,
        checked_by=_checked_by(name, outcomes),
        example=next(_example(o, spec) for o in outcomes if any(t is top for t in o.tensors)),
    )


def _pooled_relative_error(tensors: list[TensorOutcome]) -> float:
    """max |a - n| / max(|a| + |n|) pooled over all examples: an all-but-zero example's noise does not dominate."""
    scale = max(t.max_abs_error / t.max_rel_error if t.max_rel_error > 0 else 0.0 for t in tensors)
    largest = max(t.max_abs_error for t in tensors)
    return largest / scale if scale > 0 else (0.0 if largest == 0 else 1.0)


def apply_xfail(result: LayerResult, spec: LayerSpec) -> LayerResult:
    """Expected failures: FAIL/ERROR becomes XFAIL; a pass becomes XPASS."""
    if not spec.xfail:
        return result
    if result.status in (Status.FAIL, Status.ERROR):
        return replace(result, status=Status.XFAIL, message=f"expected failure ({spec.xfail}): {result.message}")
    if result.status in (Status.PASS, Status.WARN):
        return replace(result, status=Status.XPASS, message=f"passed, but marked xfail: {spec.xfail}")
    return result
