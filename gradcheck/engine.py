"""The engine: property-based search over examples of a layer, and runs over many layers."""

from __future__ import annotations

import contextlib
import random
import signal
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Unsatisfiable

from gradcheck.diagnosis import diagnose, hyperparameter_dims
from gradcheck.examples import Counter, ExampleOutcome, TensorOutcome, check_example
from gradcheck.results import LayerResult, RunResult, Status, TensorResult, worst
from gradcheck.sampling import Example, examples_strategy, satisfies
from gradcheck.spec import DEFAULT_EXAMPLES, DEFAULT_TOLERANCES, LayerSpec, Tolerances

SHRINK_BUDGET = 40  # extra examples spent looking for a smaller failing case
REDRAWS = 2  # an example with points skipped at kinks is drawn again, with new values, this often at most
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Options:
    """How to run checks; None means 'the layer's own setting, else the default'."""

    examples: int | None = None
    seed: int | None = None
    tolerances: Tolerances = field(default_factory=Tolerances)
    fail_fast: bool = False
    timeout: float | None = None
    config: str | None = None  # shown in the reproduce command
    mode: str = "auto"  # "full": every element; "fast": random directions, full check on any doubt; "auto": full up to 4096 elements

    def resolved_seed(self) -> int:
        return self.seed if self.seed is not None else random.randrange(2**31)


class _ExampleFailed(Exception):
    """Raised inside the hypothesis test so that it shrinks towards a smaller failing example."""


class _Timeout(BaseException):
    """The layer used up its time budget (a BaseException, so the layer's own `except Exception` cannot swallow it)."""


def check_layer(spec: LayerSpec, options: Options = Options(), progress: Progress | None = None) -> LayerResult:
    """Check one layer over property-based examples and return its verdict."""
    seed = options.resolved_seed()
    tol = DEFAULT_TOLERANCES.merged(spec.tolerances).merged(options.tolerances)
    count = options.examples or spec.examples or DEFAULT_EXAMPLES
    counter = Counter()
    started = time.perf_counter()
    search = _Search(spec, tol, count, counter, progress, options.mode)
    timeout = options.timeout or spec.timeout
    try:
        with _time_limit(timeout):
            outcomes = search.run(seed)
    except _Timeout:
        outcomes = None
    evidence = _Evidence()
    if outcomes is not None:
        with contextlib.suppress(_Timeout), _time_limit(timeout):
            evidence = _gather_evidence(spec, outcomes, tol, counter, options.mode)
    seconds = time.perf_counter() - started
    result = _summarise(spec, outcomes if outcomes is not None else list(search.evaluated.values()), seconds,
                        timeout if outcomes is None else None, evidence)
    repro = f"gradcheck check {spec.name} --seed {seed}"
    if options.examples:
        repro += f" --examples {options.examples}"
    for flag, value in (("rtol", options.tolerances.rtol), ("atol", options.tolerances.atol), ("eps", options.tolerances.eps)):
        if value is not None:
            repro += f" --{flag} {value:g}"
    if options.mode != "auto":
        repro += f" --mode {options.mode}"
    if options.config:
        repro += f" --config {options.config}"
    result = replace(
        result, seed=seed, repro=repro if result.status not in (Status.PASS,) else "",
        source=spec.source, impl=spec.impl, style=spec.style, xfail=spec.xfail,
        calls={"forward": counter.forward, "backward": counter.backward},
    )
    return _apply_xfail(result, spec)


def check_layers(specs: list[LayerSpec], options: Options = Options(), progress: Progress | None = None) -> RunResult:
    """Check layers one after another, in order; stop at the first failure under fail_fast."""
    seed = options.resolved_seed()
    options = replace(options, seed=seed)
    started = time.perf_counter()
    results = []
    for spec in specs:
        result = check_layer(spec, options, progress)
        results.append(result)
        if options.fail_fast and result.status.is_failure():
            break
    return RunResult(tuple(results), time.perf_counter() - started, seed)


def warm_up() -> None:
    """Pay hypothesis's one-time setup once, so that forked workers inherit it instead of each paying it."""
    from hypothesis import strategies as st

    @settings(max_examples=1, database=None, deadline=None, phases=(Phase.generate,), verbosity=Verbosity.quiet)
    @given(st.integers(0, 1))
    def nothing(value: int) -> None:
        pass

    hypothesis_seed(0)(nothing)()


class _Search:
    """Drives hypothesis over one layer's examples, remembering every outcome."""

    def __init__(self, spec, tol, count, counter, progress, mode="auto"):
        self.spec, self.tol, self.count, self.counter, self.progress = spec, tol, count, counter, progress
        self.mode = mode
        self.evaluated: dict[Example, ExampleOutcome] = {}
        self.failing = False
        self.shrinks = 0
        self.redrawn = 0  # examples drawn again because points were skipped at kinks

    def run(self, seed: int) -> list[ExampleOutcome]:
        @settings(
            max_examples=self.count, database=None, deadline=None, derandomize=False,
            suppress_health_check=list(HealthCheck), phases=(Phase.generate, Phase.shrink),
            verbosity=Verbosity.quiet, print_blob=False, report_multiple_bugs=False,
        )
        @given(examples_strategy(self.spec))
        def probe(example: Example) -> None:
            if self.visit(example).failed:
                raise _ExampleFailed

        try:
            hypothesis_seed(seed)(probe)()
        except _ExampleFailed:
            pass
        except Unsatisfiable:
            if not self.evaluated:
                return [ExampleOutcome(Example((), seed), Status.ERROR,
                                       "no dims satisfy every 'where' clause within their ranges")]
        except Exception as exc:  # hypothesis could not replay a flaky failure: our record stands
            if not any(o.failed for o in self.evaluated.values()) and not _is_flaky(exc):
                raise
        return list(self.evaluated.values())

    def visit(self, example: Example) -> ExampleOutcome:
        outcome = self.evaluated.get(example)
        if outcome is not None:
            return outcome
        if self.failing:
            if self.shrinks >= SHRINK_BUDGET:
                return ExampleOutcome(example, Status.PASS)  # budget spent: stop shrinking here
            self.shrinks += 1
        outcome = self._check(example)
        for retry in range(1, REDRAWS + 1):
            if outcome.failed or not outcome.skipped or self.failing:
                break
            # points were skipped at kinks: the same dims with fresh values cover them again
            self.redrawn += 1
            again = self._check(replace(example, seed=(example.seed + 7919 * retry) % 2**32))
            if again.failed or again.skipped < outcome.skipped:
                self.evaluated[again.example] = again
                outcome = again if again.failed else outcome
        self.evaluated[example] = outcome
        self.failing = self.failing or outcome.failed
        if self.progress:
            self.progress(self.spec.name, min(len(self.evaluated), self.count), self.count)
        return outcome

    def _check(self, example: Example) -> ExampleOutcome:
        try:
            return check_example(self.spec, example, self.tol, self.counter, self.mode)
        except Exception as exc:  # a bug in gradcheck itself: say so rather than blame the layer silently
            return ExampleOutcome(example, Status.ERROR, f"internal error in gradcheck: {exc!r} (please report it)")


def _is_flaky(exc: Exception) -> bool:
    return "Flaky" in type(exc).__name__


@contextlib.contextmanager
def _time_limit(seconds: float | None):
    """Raise _Timeout in the main thread after `seconds` (pure-Python hangs; see --jobs for the rest)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise _Timeout()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _size(outcome: ExampleOutcome) -> tuple:
    dims = outcome.example.dim_values
    return (sum(dims.values()), tuple(dims.values()), outcome.example.scale != 1.0, outcome.example.seed)


@dataclass
class _Evidence:
    """Extra examples run after a failure, only to diagnose it."""

    larger: ExampleOutcome | None = None  # the same failure on larger shapes
    needs: dict[str, int] = field(default_factory=dict)  # hyperparameters whose trivial value passes


def _gather_evidence(spec, outcomes, tol, counter, mode) -> _Evidence:
    """Run a larger example and trivial-hyperparameter examples around the smallest failure."""
    failures = [o for o in outcomes if o.failed and o.tensors]
    if not failures:
        return _Evidence()
    smallest = min(failures, key=_size)
    dims, example = smallest.example.dim_values, smallest.example
    hypers = hyperparameter_dims(spec) - {spec.batch_dim}
    evidence = _Evidence()
    larger = _larger_dims(spec, dims, hypers)
    if larger is not None:
        outcome = check_example(spec, replace(example, dims=tuple(larger.items())), tol, counter, mode)
        evidence.larger = outcome if outcome.failed and outcome.tensors else None
    for name in sorted(hypers):
        lo = spec.dims[name][0]
        trivial = {**dims, name: lo}
        if dims[name] == lo or not satisfies(spec, trivial):
            continue
        if not check_example(spec, replace(example, dims=tuple(trivial.items())), tol, counter, mode).failed:
            evidence.needs[name] = dims[name]
    return evidence


def _larger_dims(spec, dims: dict[str, int], fixed: set[str]) -> dict[str, int] | None:
    """The failing dims raised to distinct sizes (batch 3, then 4, 5, ...), `where` permitting.

    Distinct sizes keep a factor of the batch apart from a factor of another dim.
    """
    for shrink in (0, 1, 2):
        larger, target = {}, 4
        for name, value in dims.items():
            if name in fixed:
                larger[name] = value
                continue
            wanted = 3 if name == spec.batch_dim else target
            target += name != spec.batch_dim
            larger[name] = max(value, min(wanted - shrink, spec.dims[name][1]))
        if larger != dims and satisfies(spec, larger):
            return larger
    return None


def _summarise(spec: LayerSpec, outcomes: list[ExampleOutcome], seconds: float, timed_out: float | None,
               evidence: _Evidence | None = None) -> LayerResult:
    """Fold the examples into one LayerResult: the smallest failure, or the worst passing errors."""
    skipped = sum(o.skipped for o in outcomes)
    base = dict(name=spec.name, examples=len(outcomes), seconds=seconds, kinks=skipped)
    if timed_out is not None:
        return LayerResult(status=Status.ERROR, message=f"timed out after {timed_out:g} s (a hang, or far too slow?)", **base)
    failures = [o for o in outcomes if o.failed]
    if failures:
        smallest = min(failures, key=_size)
        tensors = tuple(_tensor_result(spec, t, smallest, failures, evidence or _Evidence()) for t in smallest.tensors)
        message = smallest.message or "wrong gradient for " + ", ".join(t.name for t in tensors if t.failed)
        return LayerResult(status=smallest.status, tensors=tensors or _problem_tensor(spec, smallest),
                           message=message, failing_dims=_ordered(spec, smallest.example.dim_values),
                           warnings=_warnings(outcomes), **base)
    tensors = _passing_tensors(spec, outcomes)
    warnings = _warnings(outcomes)
    status = Status.WARN if warnings else worst(t.status for t in tensors)
    message = warnings[0] if warnings else ""
    if skipped:
        message = message or f"{skipped} point(s) skipped where the function is not smooth (kinks) or the reference is unsteady; examples with such points were drawn again"
    return LayerResult(status=status, tensors=tensors, message=message, warnings=warnings, **base)


def _ordered(spec: LayerSpec, dims: dict[str, int]) -> dict[str, int]:
    """Dims in the order layers.yaml lists them."""
    return {name: dims[name] for name in spec.dims if name in dims}


def _warnings(outcomes: list[ExampleOutcome]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(w for o in outcomes for w in o.warnings))


def _tensor_result(spec, tensor: TensorOutcome, example: ExampleOutcome, failures, evidence: _Evidence) -> TensorResult:
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
        diagnosis=_diagnosis(spec, tensor, example, failures, evidence) if failed else "",
        failing_dims=_ordered(spec, example.example.dim_values) if failed else None,
        error_map=tensor.abs_error if failed else None,
    )


def _problem_tensor(spec: LayerSpec, outcome: ExampleOutcome) -> tuple[TensorResult, ...]:
    """The one tensor a shape/None/mutation problem concerns, marked with the layer's status."""
    if outcome.tensor is None:
        return ()
    kind = "param" if outcome.tensor in {p.name for p in spec.params} else "input"
    return (TensorResult(outcome.tensor, kind, outcome.status, shape=outcome.shapes.get(outcome.tensor, ()),
                         message=outcome.message, failing_dims=_ordered(spec, outcome.example.dim_values)),)


def _diagnosis(spec, tensor: TensorOutcome, example: ExampleOutcome, failures, evidence: _Evidence) -> str:
    """Diagnose from a larger run of the same failure when there is one (one element fits any
    factor), else from the example shown, else from the largest failing example."""
    candidates = []
    if evidence.larger is not None:
        candidates += [(t, evidence.larger) for t in evidence.larger.tensors if t.name == tensor.name and t.status is Status.FAIL]
    candidates += [(tensor, example), _largest_failure(tensor.name, failures)]
    for candidate, outcome in candidates:
        guess = diagnose(spec, candidate, outcome)
        if guess:
            return guess
    return diagnose(spec, tensor, example, needs=evidence.needs)


def _largest_failure(name: str, failures: list[ExampleOutcome]) -> tuple[TensorOutcome, ExampleOutcome]:
    pairs = [(t, o) for o in failures for t in o.tensors if t.name == name and t.status is Status.FAIL]
    return max(pairs, key=lambda pair: pair[0].analytic.size)


def _passing_tensors(spec: LayerSpec, outcomes: list[ExampleOutcome]) -> tuple[TensorResult, ...]:
    """Per tensor, the largest errors seen over all examples."""
    names = [t.name for t in spec.differentiable_inputs] + [p.name for p in spec.params]
    results = []
    for name in names:
        seen = [t for o in outcomes for t in o.tensors if t.name == name]
        if not seen:
            continue
        checked = [t for t in seen if np.isfinite(t.numeric).any() or t.numeric.size == 0]
        if not checked:
            results.append(TensorResult(name, seen[0].kind, Status.SKIP, message="every point was a kink or unsteady"))
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
        ))
    return tuple(results)


def _pooled_relative_error(tensors: list[TensorOutcome]) -> float:
    """max |a - n| / max(|a| + |n|) pooled over all examples: an all-but-zero example's noise does not dominate."""
    scale = max(t.max_abs_error / t.max_rel_error if t.max_rel_error > 0 else 0.0 for t in tensors)
    largest = max(t.max_abs_error for t in tensors)
    return largest / scale if scale > 0 else (0.0 if largest == 0 else 1.0)


def _apply_xfail(result: LayerResult, spec: LayerSpec) -> LayerResult:
    """Expected failures: FAIL/ERROR becomes XFAIL; a pass becomes XPASS."""
    if not spec.xfail:
        return result
    if result.status in (Status.FAIL, Status.ERROR):
        return replace(result, status=Status.XFAIL, message=f"expected failure ({spec.xfail}): {result.message}")
    if result.status in (Status.PASS, Status.WARN):
        return replace(result, status=Status.XPASS, message=f"passed, but marked xfail: {spec.xfail}")
    return result
