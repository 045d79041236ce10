"""The engine: checking one layer over drawn examples, and shrinking any failure to its smallest case.

Two phases. First, examples drawn by a seeded numpy generator (`draw_examples`, ~20 µs each):
most layers pass, and for them nothing more runs. Once an example fails, the dims descent
(`descent.descend`) shrinks it: it proposes smaller examples, dim by dim, and each is checked
for real, for the tensors that failed only, within SHRINK_BUDGET. Hypothesis runs only when the
failure needs its values (value seed 0 does not repeat it), or when the `where` clauses defeat
the numpy sampler before `count` examples: it searches with the same seed, drawing values anew,
and shrinks what it finds. Every outcome is kept, so the failure reported is the smallest found.
"""

from __future__ import annotations

import contextlib
import numbers
import shlex
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from gradcheck.descent import descend
from gradcheck.diagnosis import Evidence, gather_evidence
from gradcheck.errors import GradcheckError
from gradcheck.examples import Counter, ExampleOutcome, check_example
from gradcheck.results import LayerResult, Status
from gradcheck.sampling import Example, draw_examples, examples_strategy
from gradcheck.smallest import smallest_failure, smallness
from gradcheck.spec import DEFAULT_EXAMPLES, DEFAULT_TOLERANCES, MODES, LayerSpec, Options
from gradcheck.summary import apply_xfail, summarise

SHRINK_BUDGET = 40  # examples the descent (or hypothesis) may check, after a failure, looking for a smaller one
REDRAWS = 2  # an example with points skipped at kinks is drawn again, with new values, this often at most
REDRAW_SEED_STEP = 7919  # a prime: a redraw's value seed lands far from the seeds the sampler draws next
SEEDS = 2**32  # value seeds wrap around here
Progress = Callable[[str, int, int, bool], None]  # (layer, examples done, of total, an example has failed)


class _ExampleFailed(Exception):
    """Raised inside the hypothesis test (when `where` defeats the sampler) so that it shrinks a failure."""


class _Timeout(BaseException):
    """The layer used up its time budget (a BaseException, so the layer's own `except Exception` cannot swallow it)."""


def check_layer(spec: LayerSpec, options: Options | None = None, progress: Progress | None = None) -> LayerResult:
    """Check one layer over property-based examples and return its verdict."""
    options = Options() if options is None else options
    seed = options.resolved_seed()
    tol = DEFAULT_TOLERANCES.merged(spec.tolerances).merged(options.tolerances)
    count = next(c for c in (options.examples, spec.examples, DEFAULT_EXAMPLES) if c is not None)
    timeout = options.timeout or spec.timeout
    _refuse_bad_options(count, options.mode, timeout)
    counter = Counter()
    started = time.perf_counter()
    deadline = started + timeout if timeout else None  # one deadline for the search and the evidence alike
    search = _Search(spec, tol, count, counter, progress, options.mode, deadline)
    try:
        with _time_limit(deadline):
            outcomes = search.run(seed)
    except _Timeout:
        outcomes = None
    evidence = Evidence()
    if outcomes is not None:
        with contextlib.suppress(_Timeout), _time_limit(deadline):  # past the deadline: the verdict stands, undiagnosed
            evidence = _gather_evidence(spec, outcomes, tol, counter, options.mode, deadline)
    timed_out = timeout if outcomes is None else None
    checked = outcomes if outcomes is not None else list(search.evaluated.values())
    result = summarise(spec, checked, time.perf_counter() - started, timed_out, evidence)
    return apply_xfail(_with_run_facts(result, spec, options, seed, search, counter, timed_out), spec)


def _with_run_facts(
    result: LayerResult,
    spec: LayerSpec,
    options: Options,
    seed: int | None,
    search: _Search,
    counter: Counter,
    timed_out: float | None,
) -> LayerResult:
    """The result with what the run itself knows: the seed, how to reproduce it, calls, every example checked."""
    repro = reproduce(spec.name, options, seed, timed_out)
    return replace(
        result,
        seed=seed,
        repro=repro if result.status is not Status.PASS else "",
        source=spec.source,
        impl=spec.impl,
        style=spec.style,
        xfail=spec.xfail,
        calls={"forward": counter.forward, "backward": counter.backward},
        examples=search.examples(),
        redrawn=search.redrawn,
        example=smallest_failure(search.evaluated.values()),
        trail=tuple(
            (o.example.dim_values, o.example.seed, o.example.scale, o.status.value) for o in search.evaluated.values()
        ),
    )


def reproduce(name: str, options: Options, seed: int | None, timed_out: float | None = None) -> str:
    """The command that checks one layer again as this run did: every option that shapes its verdict
    (the layer's own settings come back from the same config). `timed_out`: the limit that stopped it."""
    words = ["gradcheck", "check", name, "--seed", str(seed)]
    if options.examples:
        words += ["--examples", str(options.examples)]
    for flag in ("rtol", "atol", "eps"):
        value = getattr(options.tolerances, flag)
        if value is not None:
            words += [f"--{flag}", _exact(value)]
    if options.mode != Options().mode:
        words += ["--mode", options.mode]
    if options.config:
        words += ["--config", options.config]
    timeout = options.timeout or timed_out
    if timeout:
        words += ["--timeout", _exact(timeout)]
    return " ".join(shlex.quote(word) for word in words)


def _exact(value: float) -> str:
    """A number as short as it goes and still the same number (1e-05, not 1.00000e-05 nor a rounded 1.23457e-05)."""
    short = f"{value:g}"
    return short if float(short) == value else repr(float(value))


def _refuse_bad_options(count, mode: str, timeout) -> None:
    """The engine's own guard (entry points validate first): a count below 1 would search forever."""
    if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
        raise GradcheckError(f"examples must be a whole number >= 1, got {count!r}")
    if mode not in MODES:
        raise GradcheckError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if timeout is not None and not (isinstance(timeout, numbers.Real) and float(timeout) > 0):  # NaN fails `> 0` too
        raise GradcheckError(f"timeout must be a number of seconds > 0, got {timeout!r}")


def warm_up() -> None:
    """Pay hypothesis's one-time setup once, so that forked workers inherit it instead of each paying it."""
    from hypothesis import Phase, Verbosity, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st

    @settings(max_examples=1, database=None, deadline=None, phases=(Phase.generate,), verbosity=Verbosity.quiet)
    @given(st.integers(0, 1))
    def nothing(value: int) -> None:
        pass

    hypothesis_seed(0)(nothing)()


def _ignore_local_constants() -> None:
    """Stop hypothesis from drawing number constants it mines from "local" source files.

    Which files count as local depends on how gradcheck and the user's code are installed and on
    what happens to be imported, so with the mining on, the same seed drew different examples
    after any edit to gradcheck or an editable install. Versions without the mining need nothing.
    """
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:
        return
    if hasattr(providers, "_get_local_constants") and hasattr(providers, "Constants"):
        providers._get_local_constants = providers.Constants


class _Search:
    """Checks one layer's examples, numpy-drawn, then those the descent proposes after a failure (hypothesis's
    when `where` defeats the sampler); remembers every outcome."""

    def __init__(self, spec, tol, count, counter, progress, mode="auto", deadline: float | None = None):
        self.spec, self.tol, self.count, self.counter, self.progress = spec, tol, count, counter, progress
        self.mode, self.deadline = mode, deadline
        self.evaluated: dict[Example, ExampleOutcome] = {}
        self.failing = False  # once set, each new example spends SHRINK_BUDGET
        self.failed = False  # an example has failed: the layer's verdict is known, whatever shrinking finds
        self.shrinks = 0
        self.redrawn = 0  # examples drawn again because points were skipped at kinks
        self.redraws: set[Example] = set()  # those of them kept in `evaluated` (not counted as examples)
        self.only: frozenset[str] | None = (
            None  # once an example failed: the tensors it failed for, all later checks need
        )

    def run(self, seed: int) -> list[ExampleOutcome]:
        if not self._sample(seed) and not self._failed_at_the_minimum():
            if self.failed:
                self._descend()
            if not self.failed or not self._fails_at_other_values():
                # `where` defeated the sampler, or the failure needs its values: hypothesis explores
                self.failing = False  # its search is free until it meets a failure; its shrinking is not
                self._search(seed)
        return list(self.evaluated.values())

    def _fails_at_other_values(self) -> bool:
        """Whether the smallest failure fails again at value seed 0 (same dims, same magnitude): a
        systematic bug, which the dims descent has shrunk. A failure that needs its values (a loss
        that underflows only where some probability does) goes to hypothesis too, whose search draws
        values anew, with what is left of SHRINK_BUDGET (the descent has asked seed 0 already)."""
        start = min((o for o in self.evaluated.values() if o.failed), key=smallness).example
        again = replace(start, seed=0)
        if start.seed == 0 or (again not in self.evaluated and self.shrinks >= SHRINK_BUDGET):
            return True  # (the budget spent: nothing more is explored)
        return self.visit(again).failed

    def _failed_at_the_minimum(self) -> bool:
        """Whether the first example failed and no example is smaller: every dim at its minimum, unscaled,
        value seed 0 (the sampler's first). The descent would propose nothing."""
        if len(self.evaluated) != 1:
            return False
        outcome = next(iter(self.evaluated.values()))
        example = outcome.example
        lowest = {name: bounds[0] for name, bounds in self.spec.dims.items()}
        return outcome.failed and example.dim_values == lowest and example.scale == 1.0 and example.seed == 0

    def _sample(self, seed: int) -> bool:
        """Check `count` numpy-drawn examples; False as soon as one fails, or if `where` defeats the sampler."""
        passed = 0
        for example in draw_examples(self.spec, seed):
            if example in self.evaluated:
                continue
            if self.visit(example).failed:
                return False
            passed += 1
            if passed == self.count:
                return True
        return False

    def _descend(self) -> None:
        """Shrink the smallest failure found so far by the dims descent (`descent.descend`).

        Each candidate is checked through `visit`, for the tensors that failed only; from the
        first failure on, each new example spends SHRINK_BUDGET, and the descent stops when it is
        spent. Candidates already checked are answered from `self.evaluated`, free.
        """
        start = min((o for o in self.evaluated.values() if o.failed), key=smallness).example
        descend(self.spec, start, self._fails)

    def _fails(self, example: Example) -> bool | None:
        """The descent's question: whether `example` fails; None once the budget is spent."""
        if example not in self.evaluated and self.shrinks >= SHRINK_BUDGET:
            return None
        return self.visit(example).failed

    def _search(self, seed: int) -> None:
        """Let hypothesis search and shrink, when `where` defeated the numpy sampler before `count`
        examples; every example it checks lands in `self.evaluated`.

        Hypothesis generates up to `count` examples of its own (`where` by rejection, more patient
        than the sampler's); from its first failure on, each new example spends SHRINK_BUDGET, so
        such a layer costs at most 2 * count + SHRINK_BUDGET examples. Examples past the budget
        pass unchecked, so hypothesis stops shrinking there.
        """
        from hypothesis import HealthCheck, Phase, Verbosity, given, settings
        from hypothesis import seed as hypothesis_seed
        from hypothesis.errors import Flaky, Unsatisfiable

        @settings(
            max_examples=self.count,
            database=None,
            deadline=None,
            derandomize=False,
            suppress_health_check=list(HealthCheck),
            phases=(Phase.generate, Phase.shrink),
            verbosity=Verbosity.quiet,
            print_blob=False,
            report_multiple_bugs=False,
        )
        @given(examples_strategy(self.spec))
        def probe(example: Example) -> None:
            if self.visit(example).failed:
                raise _ExampleFailed

        _ignore_local_constants()
        try:
            hypothesis_seed(seed)(probe)()
        except _ExampleFailed:
            pass
        except Unsatisfiable:
            if not self.evaluated:
                self.evaluated[Example((), seed)] = ExampleOutcome(
                    Example((), seed), Status.ERROR, "no dims satisfy every 'where' clause within their ranges"
                )
        except Exception as exc:  # hypothesis could not replay a flaky failure: our record stands
            if not any(o.failed for o in self.evaluated.values()) and not isinstance(exc, Flaky):
                raise

    def visit(self, example: Example) -> ExampleOutcome:
        outcome = self.evaluated.get(example)
        if outcome is not None:
            self.failing = self.failing or outcome.failed  # shrinking from a known failure is charged too
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
            again = self._check(replace(example, seed=(example.seed + REDRAW_SEED_STEP * retry) % SEEDS))
            if again.failed or again.skipped < outcome.skipped:
                self.evaluated[again.example] = again
                self.redraws.add(again.example)
                outcome = again if again.failed else outcome
        self.evaluated[example] = outcome
        if outcome.failed and self.only is None:
            self.only = frozenset(t.name for t in outcome.tensors if t.status is Status.FAIL) or None
        self.failing = self.failing or outcome.failed
        self.failed = self.failed or outcome.failed
        if self.progress:  # told at once, before any shrinking: --fail-fast and the display need not wait
            self.progress(self.spec.name, min(self.examples(), self.count), self.count, self.failed)
        return outcome

    def examples(self) -> int:
        """Examples checked, not counting those drawn again at kinks."""
        return len(self.evaluated.keys() - self.redraws)

    def _check(self, example: Example) -> ExampleOutcome:
        _expire(self.deadline)
        # once the verdict is known, searching and shrinking need only the tensors that failed
        only = self.only if self.failed else None
        return _guarded_check(self.spec, example, self.tol, self.counter, self.mode, only)


def _guarded_check(spec, example, tol, counter, mode, only: frozenset[str] | None = None) -> ExampleOutcome:
    """check_example, with whatever escapes it made that example's ERROR (only a time limit or Ctrl-C go on)."""
    try:
        return check_example(spec, example, tol, counter, mode, only)
    except (KeyboardInterrupt, _Timeout):
        raise
    except Exception as exc:  # a bug in gradcheck itself: say so rather than blame the layer silently
        return ExampleOutcome(example, Status.ERROR, f"internal error in gradcheck: {exc!r} (please report it)")
    except BaseException as exc:  # SystemExit & co. come from the layer's code (its own Exceptions are verdicts)
        hint = " (sys.exit() in the layer?)" if isinstance(exc, SystemExit) else ""
        return ExampleOutcome(
            example, Status.ERROR, f"the layer raised {exc!r}{hint}: layer code must return or raise an Exception"
        )


def _expire(deadline: float | None) -> None:
    """Raise _Timeout if the layer's deadline has passed: the time limit where no alarm can interrupt."""
    if deadline is not None and time.perf_counter() > deadline:
        raise _Timeout()


@contextlib.contextmanager
def _time_limit(deadline: float | None):
    """Raise _Timeout in the main thread when `deadline` (a perf_counter time) passes, cutting off a
    pure-Python hang (see --jobs for the rest). Without SIGALRM, or outside the main thread, the
    deadline is checked between examples instead (`_expire`): a slow layer still stops, a hang does not."""
    if deadline is None or not _alarms():
        yield
        return

    def expire(signum, frame):
        raise _Timeout()

    remaining = deadline - time.perf_counter()
    if remaining <= 0:
        raise _Timeout()
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, remaining)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _alarms() -> bool:
    """Whether a timer signal can interrupt this thread: SIGALRM exists (not on Windows) and this is the main thread."""
    return (
        hasattr(signal, "SIGALRM")
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )


def _gather_evidence(spec, outcomes, tol, counter, mode, deadline: float | None = None) -> Evidence:
    """The extra examples diagnosis asks for around the smallest failure, run within the layer's deadline.

    Each compares every tensor, at a cost bounded by those that failed: they are checked in `mode`,
    the others in mode fast (the directions; a doubt still falls back to their full check), so a
    second bug that only the larger dims show is still found."""
    names = _tensor_names(spec, outcomes)
    focus = frozenset(t.name for o in outcomes if o.failed for t in o.tensors if t.status is Status.FAIL)
    others = frozenset(names) - focus

    def run(example: Example) -> ExampleOutcome:
        _expire(deadline)
        if not focus or not others:
            return _guarded_check(spec, example, tol, counter, mode)
        outcome = _guarded_check(spec, example, tol, counter, mode, focus)
        if not outcome.tensors:  # the layer misbehaved: that is the example's verdict
            return outcome
        _expire(deadline)
        return _merged(names, outcome, _guarded_check(spec, example, tol, counter, "fast", others))

    return gather_evidence(spec, outcomes, run)


def _tensor_names(spec: LayerSpec, outcomes: list[ExampleOutcome]) -> list[str]:
    """The differentiable inputs and the parameters, in the order an example compares them, then any
    parameter the layer held undeclared (found in the examples checked)."""
    names = [t.name for t in spec.differentiable_inputs] + [p.name for p in spec.params]
    return list(dict.fromkeys(names + [t.name for o in outcomes for t in o.tensors]))


def _merged(names: list[str], focused: ExampleOutcome, rest: ExampleOutcome) -> ExampleOutcome:
    """One example checked in two parts (the same arrays) as one outcome; a problem the second finds is its verdict."""
    if not rest.tensors and rest.failed:
        return rest
    order = {name: i for i, name in enumerate(names)}
    tensors = sorted(focused.tensors + rest.tensors, key=lambda t: order.get(t.name, len(order)))
    status = Status.FAIL if any(t.status is Status.FAIL for t in tensors) else Status.PASS
    warnings = list(dict.fromkeys(focused.warnings + rest.warnings))
    return replace(focused, status=status, tensors=tensors, warnings=warnings)
