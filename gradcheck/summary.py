"""Folding a layer's examples into one LayerResult: the smallest failure, or the worst passing errors."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from gradcheck.diagnosis import Evidence, probable_cause
from gradcheck.examples import ExampleOutcome, TensorOutcome
from gradcheck.results import LayerResult, Status, TensorResult, worst
from gradcheck.smallest import ordered_dims, smallness
from gradcheck.spec import METHODS, LayerSpec


def summarise(spec: LayerSpec, outcomes: list[ExampleOutcome], seconds: float, timed_out: float | None,
               evidence: Evidence | None = None) -> LayerResult:
    """Fold the examples into one LayerResult: the smallest failure, or the worst passing errors."""
    skipped = sum(o.skipped for o in outcomes)
    base = dict(name=spec.name, examples=len(outcomes), seconds=seconds, kinks=skipped,
                precision=min((o.precision for o in outcomes), key=lambda p: np.finfo(p).nmant, default="float64"))
    if timed_out is not None:
        return LayerResult(status=Status.ERROR, message=f"timed out after {timed_out:g} s (a hang, or far too slow?)", **base)
    failures = [o for o in outcomes if o.failed]
    if failures:
        smallest = min(failures, key=smallness)
        evidence = evidence or Evidence()
        tensors = tuple(replace(_tensor_result(spec, t, seen, failures, evidence), checked_by=_checked_by(t.name, outcomes))
                        for t, seen in _own_failures(spec, smallest, failures + [o for o in [evidence.larger] if o]))
        wrong = ", ".join(t.name for t in tensors if t.failed)
        message = (f"{smallest.message}; wrong gradient for {wrong} too" if wrong else smallest.message) \
            if smallest.message else "wrong gradient for " + wrong
        return LayerResult(status=smallest.status, tensors=(_problem_tensor(spec, smallest) if not smallest.tensors else ()) + tensors,
                           message=message, failing_dims=ordered_dims(spec, smallest.example.dim_values),
                           warnings=_warnings(outcomes), shapes=dict(smallest.shapes), **base)
    tensors = _passing_tensors(spec, outcomes)
    warnings = _warnings(outcomes)
    unchecked = _unchecked(spec, tensors)
    status = Status.SKIP if unchecked else Status.WARN if warnings else worst(t.status for t in tensors)
    message = unchecked or (warnings[0] if warnings else "")
    if skipped:
        message = message or f"{skipped} point(s) skipped where the function is not smooth (kinks) or the reference is unsteady; examples with such points were drawn again"
    largest = max(outcomes, key=smallness, default=None)
    return LayerResult(status=status, tensors=tensors, message=message, warnings=warnings,
                       shapes=dict(largest.shapes) if largest else {}, **base)


def _own_failures(spec, smallest: ExampleOutcome, pool: list[ExampleOutcome]) -> list[tuple[TensorOutcome, ExampleOutcome]]:
    """Each tensor with the example to report it at: the smallest where it failed, else `smallest`.

    A layer with two bugs reports both, each at its own example, even when the smallest failing
    example shows only one (a db averaged over the batch cannot fail at batch size 1).
    """
    failed: dict[str, tuple[TensorOutcome, ExampleOutcome]] = {}
    for outcome in sorted(pool, key=smallness):
        for tensor in outcome.tensors:
            if tensor.status is Status.FAIL and tensor.name not in failed:
                failed[tensor.name] = (tensor, outcome)
    shown = [failed.get(t.name, (t, smallest)) for t in smallest.tensors]
    names = [t.name for t in spec.differentiable_inputs] + [p.name for p in spec.params]
    extra = [failed[name] for name in names if name in failed and name not in {t.name for t in smallest.tensors}]
    return shown + extra


def _example(outcome: ExampleOutcome, spec: LayerSpec) -> dict:
    example = outcome.example
    return {"dims": ordered_dims(spec, example.dim_values), "seed": example.seed, "scale": example.scale}


def _unchecked(spec: LayerSpec, tensors: tuple[TensorResult, ...]) -> str:
    """Why some gradient was never checked ("" if every one was): the reason a layer is SKIP, not PASS."""
    if not tensors:
        return ("nothing was checked: the layer has no differentiable input and no parameter"
                if not spec.differentiable_inputs and not spec.params else "nothing was checked: no example ran")
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


def _tensor_result(spec, tensor: TensorOutcome, example: ExampleOutcome, failures, evidence: Evidence) -> TensorResult:
    """A failing (or passing) tensor as seen in the smallest failing example."""
    index = tensor.worst_index
    analytic = float(tensor.analytic[index]) if index is not None and tensor.analytic.size else None
    numeric = float(tensor.numeric[index]) if index is not None and tensor.numeric.size else None
    failed = tensor.status is Status.FAIL
    return TensorResult(
        name=tensor.name, kind=tensor.kind, status=tensor.status, shape=tensor.analytic.shape,
        max_abs_error=tensor.max_abs_error, max_rel_error=tensor.max_rel_error,
        worst_index=index, analytic=analytic, numeric=numeric,
        message=f"{int(np.sum(tensor.abs_error > tensor.bound))} of {tensor.analytic.size} elements outside tolerance" if failed else "",
        diagnosis=probable_cause(spec, tensor, example, failures, evidence) if failed else "",
        failing_dims=ordered_dims(spec, example.example.dim_values) if failed else None,
        error_map=tensor.abs_error if failed else None, example=_example(example, spec),
    )


def _problem_tensor(spec: LayerSpec, outcome: ExampleOutcome) -> tuple[TensorResult, ...]:
    """The one tensor a shape/None/mutation problem concerns, marked with the layer's status."""
    if outcome.tensor is None:
        return ()
    kind = "param" if outcome.tensor in {p.name for p in spec.params} else "input"
    return (TensorResult(outcome.tensor, kind, outcome.status, shape=outcome.shapes.get(outcome.tensor, ()),
                         message=outcome.message, failing_dims=ordered_dims(spec, outcome.example.dim_values)),)


def _passing_tensors(spec: LayerSpec, outcomes: list[ExampleOutcome]) -> tuple[TensorResult, ...]:
    """Per tensor, the largest errors seen over all examples."""
    names = [t.name for t in spec.differentiable_inputs] + [p.name for p in spec.params]
    names += list(dict.fromkeys(t.name for o in outcomes for t in o.tensors if t.name not in names))  # discovered parameters
    results = []
    for name in names:
        seen = [t for o in outcomes for t in o.tensors if t.name == name]
        if not seen:
            continue
        checked = [t for t in seen if np.isfinite(t.numeric).any()]
        if not checked:
            empty = all(t.numeric.size == 0 for t in seen)
            message = "it had no elements in any example" if empty else "every point was a kink or unsteady"
            results.append(TensorResult(name, seen[0].kind, Status.SKIP, shape=seen[0].analytic.shape, message=message))
            continue
        top = max(checked, key=lambda t: t.max_abs_error / max(float(np.max(t.bound, initial=0.0)), 1e-300))
        index = top.worst_index
        results.append(TensorResult(
            name=name, kind=top.kind, status=Status.PASS, shape=top.analytic.shape,
            max_abs_error=max(t.max_abs_error for t in checked),
            max_rel_error=_pooled_relative_error(checked),
            worst_index=index or None,
            analytic=float(top.analytic[index]) if top.analytic.size else None,
            numeric=float(top.numeric[index]) if top.numeric.size else None,
            checked_by=_checked_by(name, outcomes),
            example=next(_example(o, spec) for o in outcomes if any(t is top for t in o.tensors)),
        ))
    return tuple(results)


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
