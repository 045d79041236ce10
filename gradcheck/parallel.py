"""Running layers in worker processes, so a hang or a crash in one never takes down the run."""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import replace

from gradcheck.engine import Options, Progress, check_layer, check_layers
from gradcheck.results import LayerResult, RunResult, Status
from gradcheck.spec import LayerSpec

POLL_SECONDS = 0.05


def run_layers(specs: list[LayerSpec], options: Options, jobs: int = 1, progress: Progress | None = None) -> RunResult:
    """Check layers in-process (jobs=1) or across `jobs` processes, results in registry order."""
    if jobs <= 1 or len(specs) <= 1:
        return check_layers(specs, options, progress)
    options = replace(options, seed=options.resolved_seed())
    started = time.perf_counter()
    results: dict[int, LayerResult] = {}
    context = multiprocessing.get_context("fork")
    pending = list(enumerate(specs))
    running: dict[int, tuple] = {}
    while pending or running:
        while pending and len(running) < jobs and not (options.fail_fast and _failed(results)):
            index, spec = pending.pop(0)
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(target=_worker, args=(spec, options, sender), daemon=True)
            process.start()
            sender.close()
            running[index] = (process, receiver, time.perf_counter(), spec)
        if not running:
            break
        for index in list(running):
            result = _collect(*running[index], options)
            if result is not None:
                results[index] = result
                del running[index]
                if progress:
                    progress(result.name, 1, 1)
        time.sleep(POLL_SECONDS)
    ordered = tuple(results[i] for i in sorted(results))
    return RunResult(ordered, time.perf_counter() - started, options.seed)


def _failed(results: dict[int, LayerResult]) -> bool:
    return any(r.status.is_failure() for r in results.values())


def _worker(spec: LayerSpec, options: Options, sender) -> None:
    try:
        result = check_layer(spec, replace(options, timeout=None))
    except BaseException as exc:  # report, never let a worker die silently
        result = LayerResult(spec.name, Status.ERROR, message=f"gradcheck crashed checking this layer: {exc!r}")
    sender.send(result)
    sender.close()


def _collect(process, receiver, started: float, spec: LayerSpec, options: Options) -> LayerResult | None:
    """The worker's result if it is done, an ERROR if it died or ran out of time, else None."""
    if receiver.poll():
        try:
            result = receiver.recv()
        except EOFError:
            result = None
        process.join()
        if result is not None:
            return result
    elif process.is_alive():
        timeout = options.timeout or spec.timeout
        if not timeout or time.perf_counter() - started < timeout:
            return None
        process.kill()
        process.join()
        return _error(spec, f"timed out after {timeout:g} s (a hang, or far too slow?)", started)
    return _error(spec, f"the layer's process died (exit code {process.exitcode}): it crashed the interpreter", started)


def _error(spec: LayerSpec, message: str, started: float) -> LayerResult:
    return LayerResult(spec.name, Status.ERROR, message=message, seconds=time.perf_counter() - started,
                       source=spec.source, impl=spec.impl, style=spec.style)
