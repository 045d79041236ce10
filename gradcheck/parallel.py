"""Running layers in order, or in worker processes so that a hang or a crash in one never ends the run."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import cast

from gradcheck.engine import Progress, check_layer, warm_up
from gradcheck.importing import default_signals, held_signals, stdout_to_stderr
from gradcheck.memory import describe_size, limit_memory
from gradcheck.results import LayerResult, RunResult, Status
from gradcheck.spec import LayerSpec, Options

POLL_SECONDS = 0.1  # longest wait for news from the workers before checking deadlines again
OnResult = Callable[[LayerResult], None]


class Terminated(BaseException):
    """SIGTERM arrived: raised in the main process (like KeyboardInterrupt for Ctrl-C) so workers are ended."""


def max_jobs() -> int:
    """The most worker processes worth running at once: twice the CPUs, at least 8."""
    return max(8, 2 * (os.cpu_count() or 1))


def run_layers(
    specs: list[LayerSpec],
    options: Options,
    jobs: int = 1,
    progress: Progress | None = None,
    on_result: OnResult | None = None,
    strict: bool = False,
    memory_limit: int | None = None,
) -> RunResult:
    """Check layers, results in registry order; in worker processes when jobs > 1 or a timeout applies.
    `memory_limit` (bytes) caps each worker; runs in this process have none."""
    options = replace(options, seed=options.resolved_seed())
    started = time.perf_counter()
    jobs = min(jobs, max_jobs())
    if isolated(specs, options, jobs):
        warm_up()
        results = _Pool(options, jobs, progress, on_result, strict, memory_limit).run(specs)
    else:
        results = _in_process(specs, options, progress, on_result, strict)
    return RunResult(tuple(results), time.perf_counter() - started, options.seed)


def isolated(specs: list[LayerSpec], options: Options, jobs: int) -> bool:
    """Whether layers run in their own processes: for --jobs, and to cut off any hang under a timeout."""
    wanted = jobs > 1 or bool(options.timeout) or any(spec.timeout for spec in specs)
    return wanted and "fork" in multiprocessing.get_all_start_methods()


def _in_process(specs, options, progress, on_result, strict) -> list[LayerResult]:
    results = []
    for spec in specs:
        with stdout_to_stderr():  # what the layer prints must not mix with a report on stdout
            results.append(check_layer(spec, options, progress))
        if on_result:
            on_result(results[-1])
        if options.fail_fast and results[-1].status.is_failure(strict):
            break
    return results


@dataclass
class _Worker:
    """One layer being checked in a child process."""

    index: int
    spec: LayerSpec
    process: BaseProcess
    receiver: Connection  # the parent's end of the pipe
    started: float
    timeout: float | None
    done: int = 0
    failing: bool = False  # an example has failed (and the layer is not xfail): its verdict is a failure


class _Pool:
    """Up to `jobs` children at a time, one per layer; the parent enforces each layer's deadline."""

    def __init__(self, options: Options, jobs: int, progress, on_result, strict: bool, memory_limit: int | None = None):
        self.options, self.jobs, self.progress, self.on_result, self.strict = options, jobs, progress, on_result, strict
        self.memory_limit = memory_limit
        self.context = multiprocessing.get_context("fork")  # specs hold user code imported by path: not picklable

    def run(self, specs: list[LayerSpec]) -> list[LayerResult]:
        pending = list(enumerate(specs))
        running: list[_Worker] = []
        results: dict[int, LayerResult] = {}
        try:
            while pending or running:
                if self.stopping(running, results):
                    pending.clear()
                    running = self.abandon(running)
                    if not running:
                        break
                while pending and len(running) < self.jobs:
                    with held_signals():  # an interrupt now must find the new worker in `running`
                        running.append(self.start(*pending.pop(0)))
                wait([w.receiver for w in running] + [w.process.sentinel for w in running], timeout=POLL_SECONDS)
                for worker in list(running):
                    result = self.poll(worker)
                    if result is not None:
                        running.remove(worker)
                        results[worker.index] = result
                        if self.on_result:
                            self.on_result(result)
        finally:
            for worker in running:  # abandoned by an interrupt
                _end(worker.process)
        return [results[i] for i in sorted(results)]

    def stopping(self, running: list[_Worker], results: dict[int, LayerResult]) -> bool:
        """--fail-fast, and a layer has failed: a failing result, or a failing example in a layer still running."""
        return self.options.fail_fast and (
            any(w.failing for w in running) or any(r.status.is_failure(self.strict) for r in results.values())
        )

    @staticmethod
    def abandon(running: list[_Worker]) -> list[_Worker]:
        """End every worker but those of failing layers, which go on to shrink their failure and report it."""
        for worker in running:
            if not worker.failing:
                _end(worker.process)
        return [worker for worker in running if worker.failing]

    def start(self, index: int, spec: LayerSpec) -> _Worker:
        receiver, sender = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=_work,
            args=(spec, self.options, sender, self.memory_limit),
            daemon=True,
            name=f"gradcheck {spec.name}",
        )
        process.start()
        with contextlib.suppress(OSError):
            os.setpgid(
                cast(int, process.pid), cast(int, process.pid)
            )  # its own group (the child does the same): ended as one
        sender.close()
        timeout = self.options.timeout or spec.timeout
        return _Worker(index, spec, process, receiver, time.perf_counter(), timeout)

    def poll(self, worker: _Worker) -> LayerResult | None:
        """The worker's result if it has one, an ERROR if it died or ran out of time, else None."""
        alive = worker.process.is_alive()  # read before draining, so a result sent just before exit is seen
        try:
            result = self.drain(worker)
        except (EOFError, OSError):
            result, alive = None, False
        except Exception as exc:  # a result that cannot be unpickled
            result = self.error(worker, f"gradcheck could not read this layer's result: {exc!r}")
        if result is not None or alive and not self.expired(worker):
            if result is not None:
                worker.process.join()
                _end(worker.process)  # processes the layer started and left running
            return result
        _end(worker.process)
        if alive:
            return self.error(
                worker,
                f"timed out after {worker.timeout:g} s, {worker.done} example(s) done (a hang, or far too slow?)",
                timed_out=True,
            )
        return self.error(worker, _death(worker.process.exitcode, self.memory_limit))

    def drain(self, worker: _Worker) -> LayerResult | None:
        while worker.receiver.poll():
            kind, payload = worker.receiver.recv()
            if kind == "result":
                return payload
            worker.done = payload[0]
            worker.failing = worker.failing or (payload[2] and not worker.spec.xfail)
            if self.progress:
                self.progress(worker.spec.name, *payload)
        return None

    def expired(self, worker: _Worker) -> bool:
        return worker.timeout is not None and 0 < worker.timeout < time.perf_counter() - worker.started

    def error(self, worker: _Worker, message: str, timed_out: bool = False) -> LayerResult:
        return error_result(
            worker.spec,
            self.options,
            message,
            examples=worker.done,
            seconds=time.perf_counter() - worker.started,
            timeout=worker.timeout if timed_out else None,
        )


def error_result(
    spec: LayerSpec,
    options: Options,
    message: str,
    examples: int = 0,
    seconds: float = 0.0,
    timeout: float | None = None,
) -> LayerResult:
    """An ERROR (XFAIL if so marked) for a layer whose check could not finish, shaped like the engine's results."""
    from gradcheck.engine import reproduce  # (here, not at the top: one hunk in this function)

    repro = reproduce(spec.name, options, options.seed, timeout)
    status = Status.ERROR
    if spec.xfail:
        status, message = Status.XFAIL, f"expected failure ({spec.xfail}): {message}"
    return LayerResult(
        spec.name,
        status,
        examples=examples,
        seconds=seconds,
        message=message,
        seed=options.seed,
        repro=repro,
        source=spec.source,
        impl=spec.impl,
        style=spec.style,
        xfail=spec.xfail,
    )


def _end(process) -> None:
    """Kill a worker and every process of its group (what the layer started), and reap it."""
    with contextlib.suppress(OSError):
        os.killpg(process.pid, signal.SIGKILL)
    process.kill()
    process.join()


def _work(spec: LayerSpec, options: Options, sender, memory_limit: int | None = None) -> None:
    """Child process: check one layer, sending progress and then the result through the pipe."""

    def report(name: str, done: int, total: int, failed: bool) -> None:
        sender.send(("progress", (done, total, failed)))

    with contextlib.suppress(OSError):
        os.setpgid(0, 0)  # Ctrl-C on the terminal reaches only the parent, which ends the group
    default_signals()
    limited = limit_memory(memory_limit)
    # The parent keeps the deadline (it can also stop C code), so the child runs without a timer.
    try:
        with stdout_to_stderr():
            result = check_layer(replace(spec, timeout=None), replace(options, timeout=None), report)
    except BaseException as exc:  # SystemExit from the layer, or a bug: report it, never die silently
        result = error_result(spec, options, f"checking this layer raised {exc!r}")
    if limited and memory_limit and result.status is Status.ERROR and "MemoryError" in result.message:
        result = replace(
            result,
            message=f"{result.message} (over the worker's memory limit of "
            f"{describe_size(memory_limit)}: --memory-limit raises it)",
        )
    try:
        sender.send(("result", result))
    except Exception as exc:  # something in the result does not pickle
        sender.send(
            (
                "result",
                replace(
                    result,
                    status=Status.ERROR,
                    tensors=(),
                    message=f"gradcheck could not send this layer's result: {exc!r}",
                ),
            )
        )
    sender.close()


def _death(exitcode: int | None, memory_limit: int | None = None) -> str:
    """Why a child ended without reporting, from its exit code."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        limit = f" of {describe_size(memory_limit)}" if memory_limit else ""
        return (
            f"the layer's process was killed by {name} before it reported "
            f"(a crash in C code, running out of memory{limit}, or a kill)"
        )
    return f"the layer's process exited with code {exitcode} before it reported (os._exit() in the layer?)"
