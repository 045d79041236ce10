"""Which extra examples to run after a failure, and how to read them with the failing ones."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from gradcheck.diagnosis.patterns import diagnose
from gradcheck.results import Status
from gradcheck.sampling import Example, satisfies
from gradcheck.smallest import ordered_dims, smallness
from gradcheck.spec import LayerSpec

if TYPE_CHECKING:
    from gradcheck.examples import ExampleOutcome, TensorOutcome

RunExample = Callable[[Example], "ExampleOutcome"]
LARGER_BATCH = 3  # the batch of the larger example: above 2, so that a factor N is not a factor 2
FIRST_LARGER_SIZE = 4  # the other dims get distinct sizes from here up, so that their factors stay apart
SHRINKS = 3  # times the larger sizes are lowered by one when `where` refuses them


@dataclass
class Evidence:
    """Extra examples run after a failure, only to diagnose it."""

    larger: ExampleOutcome | None = None  # the same failure on larger shapes
    needs: dict[str, int] = field(default_factory=dict)  # hyperparameters whose trivial value passes


def gather_evidence(spec: LayerSpec, outcomes: list[ExampleOutcome], run: RunExample) -> Evidence:
    """Run (with `run`) a larger example and trivial-hyperparameter examples around the smallest failure."""
    failures = [o for o in outcomes if o.failed and o.tensors]
    if not failures:
        return Evidence()
    smallest = min(failures, key=smallness)
    hypers = hyperparameter_dims(spec) - {spec.batch_dim}
    evidence = Evidence()
    larger = larger_dims(spec, smallest.example.dim_values, hypers)
    if larger is not None:
        # every tensor, not only those failing at the smallest dims: a bug seen only at a batch above 1
        # (a bias averaged where the smallest failure had N=1) is found here and reported too
        outcome = run(replace(smallest.example, dims=tuple(larger.items())))
        evidence.larger = outcome if outcome.failed and outcome.tensors else None
    evidence.needs = _needed_hyperparameters(spec, smallest.example, hypers, run)
    return evidence


def _needed_hyperparameters(spec: LayerSpec, example: Example, hypers: set[str], run: RunExample) -> dict[str, int]:
    """The hyperparameter dims whose trivial value (the low end of its range) passes on the same values."""
    dims, needs = example.dim_values, {}
    for name in sorted(hypers):
        lo = spec.dims[name][0]
        trivial = {**dims, name: lo}
        if dims[name] == lo or not satisfies(spec, trivial):
            continue
        if not run(replace(example, dims=tuple(trivial.items()))).failed:
            needs[name] = dims[name]
    return needs


def larger_dims(spec: LayerSpec, dims: dict[str, int], fixed: set[str]) -> dict[str, int] | None:
    """The failing dims raised to distinct sizes (batch 3, then 4, 5, ...), `where` permitting.

    Distinct sizes keep a factor of the batch apart from a factor of another dim.
    """
    for shrink in range(SHRINKS):
        larger, target = {}, FIRST_LARGER_SIZE
        for name, value in dims.items():
            if name in fixed:
                larger[name] = value
                continue
            wanted = LARGER_BATCH if name == spec.batch_dim else target
            target += name != spec.batch_dim
            larger[name] = max(value, min(wanted - shrink, spec.dims[name][1]))
        if larger != dims and satisfies(spec, larger):
            return larger
    return None


def hyperparameter_dims(spec: LayerSpec) -> set[str]:
    """Dims used in args/init (stride, pad, ...) rather than in array shapes."""
    used_in_shapes = {n for t in spec.inputs + spec.params for e in t.shape for n in e.names}
    return set(spec.dims) - used_in_shapes


def probable_cause(
    spec: LayerSpec, tensor: TensorOutcome, shown: ExampleOutcome, failures: list[ExampleOutcome], evidence: Evidence
) -> str:
    """The diagnosis of a failing tensor shown at example `shown`.

    Read from a larger run of the same failure when there is one (one element fits any factor),
    else from the example shown, else from the largest failing example; a guess read elsewhere
    says where it was seen.
    """
    larger = [evidence.larger] if evidence.larger is not None else []
    candidates = [(t, o) for o in larger for t in _failed(tensor.name, o)]
    candidates += [(tensor, shown)] + [pair for pair in [_largest_failure(tensor.name, failures)] if pair]
    seen = [(t, o) for o in failures + larger for t in _failed(tensor.name, o)]
    for candidate, outcome in candidates:
        guess = diagnose(spec, candidate, outcome, others=[(t, o) for t, o in seen if t is not candidate])
        if guess and outcome is not shown:  # the numbers shown are another example's: say where it was seen
            dims = ", ".join(f"{k}={v}" for k, v in ordered_dims(spec, outcome.example.dim_values).items())
            return f"{guess} (seen at {dims})"
        if guess:
            return guess
    return diagnose(spec, tensor, shown, needs=evidence.needs)


def _failed(name: str, outcome: ExampleOutcome) -> list[TensorOutcome]:
    return [t for t in outcome.tensors if t.name == name and t.status is Status.FAIL]


def _largest_failure(name: str, failures: list[ExampleOutcome]) -> tuple[TensorOutcome, ExampleOutcome] | None:
    """The example where tensor `name` failed with the most elements (None: it failed in the evidence run only)."""
    pairs = [(t, o) for o in failures for t in _failed(name, o)]
    return max(pairs, key=lambda pair: pair[0].analytic.size, default=None)
