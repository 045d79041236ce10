"""Checking one drawn example of one layer, top-down: forward, backward, finite differences, hygiene.

Each step is a call into the part that owns it: forwards.py (counted calls, copies, stacking),
hygiene.py (what a layer must never do), gradients.py (backward), precision.py, method_choice.py
(directions or element by element), by_directions.py and comparison.py (the numbers compared).
"""

from __future__ import annotations

import numpy as np

from gradcheck import by_directions, finite_diff, hygiene
from gradcheck.adapters import LayerProblem
from gradcheck.comparison import Comparison
from gradcheck.forwards import Forwards
from gradcheck.gradients import analytic_gradients
from gradcheck.method_choice import FULL_BUDGET, FULL_MAX, checked_in_groups
from gradcheck.outcomes import Counter, ExampleOutcome, TensorOutcome
from gradcheck.precision import checked_precision
from gradcheck.results import Status
from gradcheck.sampling import Example, draw_arrays, draw_upstream
from gradcheck.spec import LayerSpec, Tolerances

__all__ = ["FULL_BUDGET", "FULL_MAX", "Counter", "ExampleOutcome", "TensorOutcome", "check_example"]


def check_example(
    spec: LayerSpec,
    example: Example,
    tol: Tolerances,
    counter: Counter | None = None,
    mode: str = "auto",
    only: frozenset[str] | None = None,
) -> ExampleOutcome:
    """Run every check on one drawn example; a misbehaving layer is a verdict. `only`: compare just
    these tensors' gradients (the others' numeric gradients are skipped; hygiene is checked in full)."""
    rng = np.random.default_rng(example.seed)  # one generator per example: the arrays, then R, probes, directions
    arrays = draw_arrays(spec, example, rng)
    shapes = {name: a.shape for name, a in arrays.items()}
    warnings: list[str] = []
    try:
        # a layer's overflow warnings are its verdict's business, not the console's
        with np.errstate(all="ignore"), finite_diff.rounding_unit():
            forwards = Forwards(spec, example, arrays, counter or Counter(), rng)
            tensors, precision = _check(forwards, tol, mode, warnings, only)
    except LayerProblem as problem:
        return ExampleOutcome(example, problem.status, problem.message, shapes=shapes, tensor=problem.tensor)
    status = Status.FAIL if any(t.status is Status.FAIL for t in tensors) else Status.PASS
    return ExampleOutcome(example, status, "", tensors, warnings, shapes, precision=precision)


def _check(
    forwards: Forwards, tol: Tolerances, mode: str, warnings: list[str], only: frozenset[str] | None = None
) -> tuple[list[TensorOutcome], str]:
    """The check's steps in order: (the outcome of every tensor, the precision checked at). A step
    that finds the layer at fault raises LayerProblem, which is the example's verdict."""
    warnings += forwards.prepare()  # build the layer; undeclared parameters it holds are checked too
    # Forward at the drawn point: finite, and leaving what it is given alone.
    reference = hygiene.reference_forward(forwards)
    upstream = draw_upstream(reference.outputs, forwards.rng)
    # Backward once, on the reference forward's handle: gradients of the right shapes and dtypes.
    analytic = analytic_gradients(forwards, reference, upstream, warnings)
    # A layer computing in float32 inside is checked at float32's step and tolerances.
    precision, steps = checked_precision(forwards.adapter, reference.outputs, forwards.magnitude, tol, warnings)
    compare = Comparison(forwards, steps, upstream)
    tensors = [(n, kind) for n, kind in _compared_tensors(forwards.spec, analytic) if only is None or n in only]
    # Random directions first where the mode or the cost asks for them; the others element by element.
    names = [name for name, _ in tensors]
    quick = by_directions.fast_pass(compare, names, analytic, mode)
    outcomes = [_compare(compare, name, kind, analytic[name], quick, mode, names) for name, kind in tensors]
    # Forward gives the same outputs twice (unless a stacked probe already showed it) ...
    if not forwards.repeated:
        hygiene.check_repeatable(forwards)
    # ... and never wrote into the copies every call shared (a later call may where the first did not).
    hygiene.check_unchanged(forwards, forwards.shared_inputs, forwards.shared_params, "forward")
    return outcomes, precision


def _compared_tensors(spec: LayerSpec, analytic: dict) -> list[tuple[str, str]]:
    """(name, kind) of every tensor compared: the differentiated inputs, and the parameters backward gave."""
    tensors = [(t.name, "input") for t in spec.differentiable_inputs]
    return tensors + [(p.name, "param") for p in spec.params if p.name in analytic]


def _compare(
    compare: Comparison,
    name: str,
    kind: str,
    analytic: np.ndarray,
    quick: by_directions.Quick,
    mode: str,
    names: list[str],
) -> TensorOutcome:
    """One tensor's verdict (`names`: every tensor compared): passed by the directions, checked group
    by group, or element by element."""
    if name in quick.agreed:
        error, unit = quick.agreed[name]
        return by_directions.passed(name, kind, analytic, error * unit, np.full(analytic.shape, unit))
    if name in quick.unsettled or checked_in_groups(compare.forwards, name, names, mode):
        return by_directions.by_groups(compare, name, kind, analytic, quick)
    return compare.element_by_element(name, kind, analytic)
