#!/usr/bin/env python
"""Benchmark gradcheck: wall time, calls, layer-vs-checker share, batch scaling, and torch's gradcheck.

A plain script, not a test: it measures and prints markdown tables (and, with --json, the raw
numbers), and never fails on a missed target. Sections:

  layers    per built-in layer, `check_layer` as `gradcheck run all` runs it: wall time,
            forward/backward calls, and where the time goes (the layer's own code, the
            checker's per-example work, hypothesis and summarising around it)
  run-all   `gradcheck run all` end to end in a subprocess (startup, imports, table), --jobs 1 and 2
  scaling   batch-independent layers on one fixed example at batch B and 2B: the input check's cost
  torch     torch.autograd.gradcheck (float64, CPU; slow and fast mode) against gradcheck on the
            same layer, shapes and values
  medium    one fixed example per layer at medium shapes (MEDIUM_DIMS): the layer's share there
  large     one fixed example per layer at the shapes of a small real network (LARGE_DIMS): wall
            time, forwards and how each tensor was checked (opt-in: --sections large)
  floor     the checker's own cost, measured on layers that do nothing (bench/floor/): per example
            and per forward call, and so how long a forward must take for the layer's code to be
            80% of a check
  profile   cProfile of every layer's check, top functions (opt-in: --sections profile)

Run from the repository root:  .venv/bin/python bench/run_bench.py
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import inspect
import io
import json
import os
import platform
import pstats
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

import gradcheck
import gradcheck.adapters
import gradcheck.engine
import gradcheck.examples
from gradcheck.engine import Options, check_layer
from gradcheck.examples import Counter, check_example
from gradcheck.registry import load_registry

try:
    from gradcheck.memory import keep_freed_memory
except ImportError:  # an engine from before it
    keep_freed_memory = None
from gradcheck.sampling import Example, draw_arrays, satisfies
from gradcheck.spec import DEFAULT_TOLERANCES, LayerSpec

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("layers", "run-all", "scaling", "medium", "torch", "large", "floor", "profile")
DEFAULT_SECTIONS = ("layers", "run-all", "scaling", "medium", "torch", "floor")
FLOOR_CONFIG = ROOT / "bench" / "floor" / "layers.yaml"
FLOOR_WIDTHS = (1, 4, 16, 64)  # D for the floor section's layers, at N = 4

# Fixed "medium" shapes: large enough that a layer's own arithmetic is not negligible, small
# enough that slow-mode torch gradcheck (one backward per output element) finishes quickly.
MEDIUM_DIMS: dict[str, dict[str, int]] = {
    "linear": {"N": 8, "D": 16, "M": 16},
    "relu": {"N": 8, "D": 32},
    "leaky-relu": {"N": 8, "D": 32},
    "sigmoid": {"N": 8, "D": 32},
    "tanh": {"N": 8, "D": 32},
    "gelu": {"N": 8, "D": 32},
    "softmax": {"N": 8, "C": 16},
    "log-softmax": {"N": 8, "C": 16},
    "softmax-cross-entropy": {"N": 8, "C": 10},
    "mse": {"N": 8, "D": 16},
    "bce-with-logits": {"N": 8, "D": 16},
    "conv2d": {"N": 2, "C": 3, "F": 4, "KH": 3, "KW": 3, "S": 2, "P": 1, "H": 8, "Wd": 8},
    "max-pool2d": {"N": 2, "C": 3, "K": 2, "S": 2, "H": 8, "Wd": 8},
    "avg-pool2d": {"N": 2, "C": 3, "K": 2, "S": 2, "H": 8, "Wd": 8},
    "batch-norm": {"N": 8, "D": 16},
    "layer-norm": {"N": 4, "T": 4, "D": 8},
    "dropout": {"N": 8, "D": 32},
    "embedding": {"N": 4, "T": 8, "V": 10, "D": 8},
    "rnn-cell": {"N": 4, "D": 8, "H": 8},
    "lstm-cell": {"N": 4, "D": 8, "H": 8},
    "attention": {"N": 2, "Tq": 4, "Tk": 4, "Dk": 8, "Dv": 8},
    "flatten": {"N": 4, "C": 3, "H": 4, "Wd": 4},
}
# Fixed "large" shapes: what a small real network feeds a layer. The full check of these takes
# minutes on some layers (conv2d: two forwards of the batch per weight element), so the `large`
# section is opt-in and runs mode full once.
LARGE_DIMS: dict[str, dict[str, int]] = {
    "linear": {"N": 32, "D": 128, "M": 64},
    "tanh": {"N": 32, "D": 512},
    "softmax-cross-entropy": {"N": 64, "C": 100},
    "conv2d": {"N": 8, "C": 8, "F": 16, "KH": 3, "KW": 3, "S": 1, "P": 1, "H": 16, "Wd": 16},
    "batch-norm": {"N": 64, "D": 128},
    "layer-norm": {"N": 8, "T": 16, "D": 64},
    "rnn-cell": {"N": 16, "D": 64, "H": 64},
    "lstm-cell": {"N": 16, "D": 32, "H": 32},
    "attention": {"N": 4, "Tq": 16, "Tk": 16, "Dk": 32, "Dv": 32},
}
SHAPE_SETS = {"medium": MEDIUM_DIMS, "large": LARGE_DIMS}
# Rows never interact in these, so the checker may perturb every sample at once (batch colouring).
BATCH_INDEPENDENT = (
    "linear",
    "relu",
    "leaky-relu",
    "sigmoid",
    "tanh",
    "gelu",
    "softmax",
    "log-softmax",
    "conv2d",
    "max-pool2d",
    "avg-pool2d",
    "layer-norm",
    "dropout",
    "rnn-cell",
    "lstm-cell",
    "attention",
    "flatten",
)


# -- statistics and tables ---------------------------------------------------------------------
def median(values) -> float:
    """Median of a non-empty sequence of numbers."""
    return float(statistics.median(values))


def spread(values) -> float:
    """(max - min) / median: how much repeats of the same work disagree (machine noise)."""
    mid = median(values)
    return (max(values) - min(values)) / mid if mid else 0.0


def fmt_s(seconds: float | None) -> str:
    """Seconds with a unit that keeps three significant digits."""
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:.2f}"


def load_note() -> str:
    """Other work on the machine while measuring: 1-minute load average and CPU pressure."""
    parts = []
    with contextlib.suppress(OSError):
        parts.append("load average " + Path("/proc/loadavg").read_text().split()[0] + f" on {os.cpu_count()} cores")
    with contextlib.suppress(OSError, IndexError, ValueError):
        some = Path("/proc/pressure/cpu").read_text().split()[1]
        parts.append(f"CPU pressure (some, avg10) {some.split('=')[1]}%")
    return "\n(machine at the end of this table: " + ", ".join(parts) + ")\n" if parts else ""


def table(headers: list[str], rows: list[list[Any]], title: str = "") -> str:
    """A markdown table, columns padded so that it also reads well in a terminal."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    left = [all(not _numeric(r[i]) for r in cells[1:]) for i in range(len(headers))]

    def line(row):
        return (
            "| "
            + " | ".join(c.ljust(w) if flush else c.rjust(w) for c, w, flush in zip(row, widths, left, strict=False))
            + " |"
        )

    sep = "|" + "|".join(("-" * (w + 1) + ("-" if flush else ":")) for w, flush in zip(widths, left, strict=True)) + "|"
    out = [line(cells[0]), sep] + [line(r) for r in cells[1:]]
    return (f"\n### {title}\n\n" if title else "\n") + "\n".join(out) + "\n"


def _numeric(text: str) -> bool:
    return (
        text[:1].isdigit()
        or text[:1] == "-"
        and text[1:2].isdigit()
        or text.endswith(("s", "%"))
        and text[:1].isdigit()
    )


# -- instrumentation ---------------------------------------------------------------------------
@dataclass
class Event:
    """One call into the layer's code: when, which, and the positional arguments it got."""

    start: float
    end: float
    what: str
    args: tuple


@dataclass
class LayerTimer:
    """Accumulates perf_counter time spent inside user callables (everything call_layer runs)."""

    record: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    def add(self, what: str, start: float, end: float, args: tuple) -> None:
        kind = category(what)
        self.seconds[kind] = self.seconds.get(kind, 0.0) + (end - start)
        self.calls[kind] = self.calls.get(kind, 0) + 1
        if self.record:
            self.events.append(Event(start, end, what, args))


def category(what: str) -> str:
    """forward / backward / constructor, from call_layer's `what` label."""
    if what.startswith("backward"):
        return "backward"
    if what.startswith("forward") or "loss function" in what:
        return "forward"
    if "constructor" in what:
        return "constructor"
    return "other"


@contextlib.contextmanager
def timing_layer_code(timer: LayerTimer):
    """Patch call_layer (every user call goes through it) in each gradcheck module that holds it."""
    original = gradcheck.adapters.call_layer

    def timed_call_layer(what, function, *args, **kwargs):
        def timed(*a, **k):
            start = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                timer.add(what, start, time.perf_counter(), a if timer.record else ())

        return original(what, timed, *args, **kwargs)

    patched = [
        m
        for name, m in list(sys.modules.items())
        if name.startswith("gradcheck") and getattr(m, "call_layer", None) is original
    ]
    for module in patched:
        module.call_layer = timed_call_layer
    try:
        yield timer
    finally:
        for module in patched:
            module.call_layer = original


@contextlib.contextmanager
def timing_examples(box: list[float]):
    """Patch the engine's check_example to accumulate time spent checking single examples."""
    original = getattr(gradcheck.engine, "check_example", None)
    if original is None:
        yield box
        return

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            box[0] += time.perf_counter() - start

    gradcheck.engine.check_example = timed
    try:
        yield box
    finally:
        gradcheck.engine.check_example = original


# -- running gradcheck ---------------------------------------------------------------------------
def options_for(mode: str, **kwargs) -> Options:
    """Options with `mode`; "default" leaves the engine's own default in place."""
    return Options(**kwargs) if mode == "default" else Options(mode=mode, **kwargs)


def mode_label(mode: str) -> str:
    """ "default (auto)" for the engine's default mode, else the mode itself."""
    return f"default ({getattr(Options(), 'mode', 'full')})" if mode == "default" else mode


def tolerances(spec: LayerSpec):
    return DEFAULT_TOLERANCES.merged(spec.tolerances)


def _check_example_takes(name: str) -> bool:
    return name in inspect.signature(check_example).parameters


def run_fixed(spec: LayerSpec, dims: dict[str, int], mode: str, seed: int) -> tuple[float, dict, str, str]:
    """Check one fixed example (values drawn from `seed`, scale 1); return (seconds, calls, status, how).

    The engine's check_example is called directly, with `mode` if it takes one. On an engine
    whose check_example takes no mode, "full" is its only behaviour; another mode then goes
    through check_layer with every dim pinned to one value and one example (which adds
    hypothesis' cost of drawing that example).
    """
    example = Example(tuple(dims.items()), seed, 1.0)
    counter = Counter()
    kwargs: dict[str, Any] = {}
    if mode == "full" and not _check_example_takes("mode") and not _check_example_takes("options"):
        mode = "default"  # an engine without modes checks every element: full is its default
    if mode != "default" and _check_example_takes("mode"):
        kwargs["mode"] = mode
    elif mode != "default" and _check_example_takes("options"):
        kwargs["options"] = options_for(mode)
    if mode == "default" or kwargs:
        start = time.perf_counter()
        outcome = check_example(spec, example, tolerances(spec), counter, **kwargs)
        seconds = time.perf_counter() - start
        return (
            seconds,
            {"forward": counter.forward, "backward": counter.backward},
            outcome.status.value,
            "check_example",
        )
    pinned = replace(spec, dims={k: (v, v) for k, v in dims.items()}, examples=1, xfail=None)
    start = time.perf_counter()
    result = check_layer(pinned, options_for(mode, examples=1, seed=seed))
    seconds = time.perf_counter() - start
    return seconds, dict(result.calls), result.status.value, "check_layer, dims pinned, 1 example"


def supported_modes(modes: list[str], specs: list[LayerSpec], seed: int, keep_inert: bool) -> list[str]:
    """The modes the engine knows and acts on; an unknown or inert mode is reported and dropped.

    "default" (the engine's default) and "full" are always kept; so is any mode in the engine's
    MODES. On an engine without MODES, another mode is inert when, on a probe layer at medium
    shapes (one with parameters, if any is selected), it makes exactly the calls of mode "full"
    (as "fast" did while Options.mode was only a placeholder).
    """
    known = getattr(gradcheck.examples, "MODES", None)
    # a layer with parameters: without them, full and fast may both take the same 2 stacked calls
    candidates = [s for s in specs if s.name in MEDIUM_DIMS and s.differentiable_inputs]
    probe = next((s for s in candidates if s.params), candidates[0] if candidates else None)
    full_calls = None
    kept = []
    for mode in modes:
        if mode in ("default", "full"):
            kept.append(mode)
            continue
        if known is not None:  # the engine lists its modes: trust the list
            if mode in known:
                kept.append(mode)
            else:
                print(f"note: mode {mode!r} skipped: the engine knows only {', '.join(known)}")
            continue
        if probe and not keep_inert:
            if full_calls is None:
                full_calls = run_fixed(probe, MEDIUM_DIMS[probe.name], "full", seed)[1]
            if run_fixed(probe, MEDIUM_DIMS[probe.name], mode, seed)[1] == full_calls and mode != "auto":
                print(
                    f"note: mode {mode!r} skipped: on {probe.name} it makes exactly the calls of mode 'full', so "
                    "the engine does not act on it (--keep-inert-modes measures it anyway)"
                )
                continue
        kept.append(mode)
    return kept


# -- section: per layer ------------------------------------------------------------------------
def bench_layers(specs: list[LayerSpec], modes: list[str], repeats: int, seed: int, examples: int | None) -> dict:
    """Per layer and mode: wall time, calls, and the split between layer code and checker.

    Modes are interleaved within each repeat, so that load from elsewhere on the machine
    falls on every mode alike.
    """
    samples = {mode: {spec.name: _Samples() for spec in specs} for mode in modes}
    if specs:  # not counted: a process's first check pays hypothesis' and numpy's one-off set-up
        check_layer(specs[0], Options(seed=seed, examples=examples))
    for spec in specs:
        for _ in range(repeats):
            for mode in modes:
                samples[mode][spec.name].take(spec, options_for(mode, seed=seed, examples=examples))
    out: dict[str, Any] = {}
    for mode in modes:
        raw = [samples[mode][spec.name].summary(spec.name) for spec in specs]
        totals = _layer_totals(raw)
        rows = [
            [
                r["name"],
                r["status"],
                r["examples"],
                r["calls"]["forward"],
                r["calls"]["backward"],
                fmt_s(r["wall"]),
                fmt_s(r["wall_min"]),
                fmt_pct(r["spread"]),
                fmt_s(r["cpu"]),
                fmt_pct(r["layer_share"]),
                fmt_pct(r["example_overhead_share"]),
                fmt_pct(r["outer_share"]),
                fmt_pct(r["overhead_share"]),
                fmt_s(r["overhead_per_forward"]),
            ]
            for r in raw + [totals]
        ]
        headers = [
            "layer",
            "status",
            "examples",
            "forward",
            "backward",
            "wall (median)",
            "wall (min)",
            "spread",
            "cpu (median)",
            "in layer code",
            "checker: per-example",
            "checker: search/summary",
            "checker total",
            "checker cpu per forward",
        ]
        print(
            table(headers, rows, f"Per layer, mode={mode_label(mode)} (seed {seed}, {repeats} repeats)") + load_note(),
            flush=True,
        )
        calls_differ = [r["name"] for r in raw if r["calls_vary"]]
        if calls_differ:
            print(
                f"note: call counts varied between repeats for {', '.join(calls_differ)} (same seed: should not happen)"
            )
        out[mode] = raw + [totals]
    _note_mode_effect(out)
    return out


class _Samples:
    """Repeated measurements of one layer in one mode: plain, then instrumented."""

    def __init__(self):
        self.walls, self.cpus, self.inst_walls, self.layer, self.per_example, self.calls = [], [], [], [], [], []
        self.result = None

    def take(self, spec: LayerSpec, options: Options) -> None:
        start, cpu = time.perf_counter(), time.process_time()
        self.result = check_layer(spec, options)
        self.walls.append(time.perf_counter() - start)
        self.cpus.append(time.process_time() - cpu)
        timer, box = LayerTimer(), [0.0]
        with timing_layer_code(timer), timing_examples(box):
            start = time.perf_counter()
            check_layer(spec, options)
            self.inst_walls.append(time.perf_counter() - start)
        self.layer.append(timer.total)
        self.per_example.append(box[0])
        self.calls.append((self.result.calls.get("forward", 0), self.result.calls.get("backward", 0)))

    def summary(self, name: str) -> dict:
        shares = [lay / w for lay, w in zip(self.layer, self.inst_walls, strict=True)]
        example_shares = [
            max(e - lay, 0.0) / w for e, lay, w in zip(self.per_example, self.layer, self.inst_walls, strict=True)
        ]
        forward, cpu = self.calls[0][0], median(self.cpus)
        overhead = 1 - median(shares)
        timed_examples = any(self.per_example)
        return {
            "name": name,
            "status": self.result.status.value,
            "examples": self.result.examples,
            "calls": {"forward": forward, "backward": self.calls[0][1]},
            "calls_vary": len(set(self.calls)) > 1,
            "wall": median(self.walls),
            "wall_min": min(self.walls),
            "walls": self.walls,
            "spread": spread(self.walls),
            "cpu": cpu,
            "instrumented_wall": median(self.inst_walls),
            "layer_seconds": median(self.layer),
            "layer_share": median(shares),
            "example_overhead_share": median(example_shares) if timed_examples else None,
            "outer_share": (overhead - median(example_shares)) if timed_examples else None,
            "overhead_share": overhead,
            "overhead_per_forward": overhead * cpu / forward if forward else None,
        }


def _layer_totals(raw: list[dict]) -> dict:
    wall = sum(r["wall"] for r in raw)
    inst = sum(r["instrumented_wall"] for r in raw)
    layer = sum(r["layer_seconds"] for r in raw)
    forward = sum(r["calls"]["forward"] for r in raw)
    cpu = sum(r["cpu"] for r in raw)
    share = layer / inst if inst else 0.0
    ex = [r["example_overhead_share"] for r in raw]
    example_share = (
        (sum(s * r["instrumented_wall"] for s, r in zip(ex, raw, strict=True)) / inst) if None not in ex else None
    )
    return {
        "name": "TOTAL (sum)",
        "status": "",
        "examples": sum(r["examples"] for r in raw),
        "calls": {"forward": forward, "backward": sum(r["calls"]["backward"] for r in raw)},
        "calls_vary": False,
        "wall": wall,
        "wall_min": sum(r["wall_min"] for r in raw),
        "walls": [],
        "spread": None,
        "cpu": cpu,
        "instrumented_wall": inst,
        "layer_seconds": layer,
        "layer_share": share,
        "example_overhead_share": example_share,
        "outer_share": (1 - share - example_share) if example_share is not None else None,
        "overhead_share": 1 - share,
        "overhead_per_forward": (1 - share) * cpu / forward if forward else None,
    }


def _note_mode_effect(out: dict) -> None:
    if "full" not in out:
        return
    full = {r["name"]: r["calls"] for r in out["full"]}
    for mode, rows in out.items():
        if mode not in ("full", "default", "auto") and all(full.get(r["name"]) == r["calls"] for r in rows):
            print(
                f"note: mode={mode!r} made exactly the calls of mode='full' on every layer: "
                "does check_layer hand Options.mode on to the search?"
            )


# -- section: run all ----------------------------------------------------------------------------
def bench_run_all(config: Path, modes: list[str], repeats: int, seed: int, examples: int | None) -> dict:
    """`gradcheck run all` in a fresh interpreter: what a user waits for."""
    base = [sys.executable, "-m", "gradcheck", "run", "all", "--config", str(config), "--seed", str(seed)]
    if examples:
        base += ["--examples", str(examples)]
    choices = _cli_mode_choices()
    results, rows = {}, []
    startup = _time_command([sys.executable, "-c", "import gradcheck.cli"], repeats)
    rows.append(
        [
            "python -c 'import gradcheck.cli' (startup + imports)",
            "-",
            fmt_s(startup["median"]),
            fmt_pct(startup["spread"]),
            fmt_s(startup["cpu"]),
            "",
        ]
    )
    results["startup"] = startup
    cli_modes = ["default"] + [m for m in modes if m != "default" and m in choices]
    skipped = [m for m in modes if m != "default" and m not in choices]
    if skipped:
        print(f"note: `gradcheck run` has no --mode {'/'.join(skipped)}: run end to end with its default mode only")
    for mode in cli_modes:
        for jobs in (1, 2):
            flags = ["--jobs", str(jobs)] + (["--mode", mode] if mode != "default" else [])
            timing = _time_command(base + flags, repeats)
            rows.append(
                [
                    "gradcheck run all " + " ".join(flags),
                    mode,
                    fmt_s(timing["median"]),
                    fmt_pct(timing["spread"]),
                    fmt_s(timing["cpu"]),
                    ",".join(sorted(set(map(str, timing["exit_codes"])))),
                ]
            )
            results[f"{mode}/jobs{jobs}"] = timing
    print(
        table(
            ["command", "mode", "wall (median)", "spread", "cpu (median)", "exit"],
            rows,
            f"gradcheck run all, end to end (seed {seed}, {repeats} repeats, target: well under 30 s on 2 cores)",
        )
        + load_note(),
        flush=True,
    )
    return results


def _cli_mode_choices() -> list[str]:
    """The values `gradcheck run --mode` accepts, read from its --help (none if it has no --mode)."""
    helptext = subprocess.run(
        [sys.executable, "-m", "gradcheck", "run", "--help"], capture_output=True, text=True, cwd=ROOT
    ).stdout
    found = re.search(r"--mode\s*\[([^\]]+)\]", helptext)
    return found.group(1).split("|") if found else []


def _time_command(command: list[str], repeats: int) -> dict:
    """Wall time and CPU time (user + system, the command and its workers) of a command."""
    times, cpus, codes = [], [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        codes.append(done.returncode)
    return {"median": median(times), "spread": spread(times), "cpu": median(cpus), "times": times, "exit_codes": codes}


# -- section: batch scaling ------------------------------------------------------------------------
def bench_scaling(specs: list[LayerSpec], modes: list[str], repeats: int, seed: int, batch: int) -> dict:
    """Input-check cost at batch B and 2B, other dims fixed, for batch-independent layers."""
    chosen = [s for s in specs if s.batch_independent] or [s for s in specs if s.name in BATCH_INDEPENDENT]
    out: dict[str, Any] = {}
    for mode in modes:
        rows, raw = [], []
        for spec in chosen:
            if spec.name not in MEDIUM_DIMS or spec.batch_dim is None:
                continue
            small = _scaling_point(spec, {**MEDIUM_DIMS[spec.name], spec.batch_dim: batch}, mode, repeats, seed)
            large = _scaling_point(spec, {**MEDIUM_DIMS[spec.name], spec.batch_dim: 2 * batch}, mode, repeats, seed)
            raw.append({"name": spec.name, "B": small, "2B": large})
            in_forwards = [_ratio(point["input_span"], point["one_forward"]) for point in (small, large)]
            rows.append(
                [
                    spec.name,
                    small["input_forwards"],
                    large["input_forwards"],
                    fmt_ratio(_ratio(large["input_forwards"], small["input_forwards"])),
                    fmt_s(small["input_span"]),
                    fmt_s(large["input_span"]),
                    fmt_ratio(_ratio(large["input_span"], small["input_span"])),
                    fmt_s(small["one_forward"]),
                    fmt_s(large["one_forward"]),
                    *(f"{v:.1f}" if v is not None else "-" for v in in_forwards),
                    fmt_s(small["seconds"]),
                    fmt_s(large["seconds"]),
                    fmt_ratio(_ratio(large["seconds"], small["seconds"])),
                ]
            )
        headers = [
            "layer",
            "input fwd @B",
            "input fwd @2B",
            "ratio",
            "input check @B",
            "input check @2B",
            "ratio",
            "one forward @B",
            "one forward @2B",
            "input check in forwards @B",
            "@2B",
            "whole example @B",
            "whole example @2B",
            "ratio",
        ]
        print(
            table(
                headers,
                rows,
                f"Batch scaling, mode={mode_label(mode)}: B={batch} vs 2B={2 * batch}, other dims fixed "
                f"(target: input-check ratio well below 2)",
            )
            + load_note(),
            flush=True,
        )
        out[mode] = raw
    return out


def _ratio(a, b):
    return a / b if a is not None and b else None


def _scaling_point(spec, dims, mode, repeats, seed) -> dict:
    """Median cost of one fixed example, and of the part of it that perturbs inputs."""
    seconds, spans, inside, counts, singles = [], [], [], [], []
    for _ in range(repeats):
        timer = LayerTimer(record=True)
        with timing_layer_code(timer):
            elapsed, calls, status, via = run_fixed(spec, dims, mode, seed)
        forwards = [e for e in timer.events if category(e.what) == "forward" and not e.what.startswith("forward (")]
        perturbed = [e for e in forwards[1:] if not _same_args(e.args, forwards[0].args)]
        seconds.append(elapsed)
        counts.append(len(perturbed))
        spans.append(perturbed[-1].end - perturbed[0].start if perturbed else 0.0)
        inside.append(sum(e.end - e.start for e in perturbed))
        singles.append(min(e.end - e.start for e in forwards[:2]))  # the reference forwards: one plain call
    return {
        "dims": dims,
        "seconds": median(seconds),
        "input_forwards": counts[0],
        "input_span": median(spans),
        "input_layer_seconds": median(inside),
        "one_forward": median(singles),
        "status": status,
        "via": via,
        "spread": spread(seconds),
    }


def _same_args(a: tuple, b: tuple) -> bool:
    """Whether a forward got the reference inputs (so it perturbed a parameter, or none)."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if np.shape(x) != np.shape(y) or not np.array_equal(x, y, equal_nan=True):
                return False
    return True


# -- section: torch ----------------------------------------------------------------------------
def torch_cases(torch, F) -> dict[str, Callable]:
    """Per gradcheck layer: a function (arrays, dims) -> (torch function, tensors) doing the same."""

    def t(a, grad=True):
        return torch.tensor(a, dtype=torch.float64, requires_grad=grad)

    def two_layer_net(a, d):
        """examples/cs231n-two-layer-net (reg 0.1): X and y are data, the four parameters are checked."""
        X, y = t(a["X"], grad=False), torch.tensor(a["y"], dtype=torch.long)

        def loss(W1, b1, W2, b2):
            return F.cross_entropy(F.relu(X @ W1 + b1) @ W2 + b2, y) + 0.05 * ((W1 * W1).sum() + (W2 * W2).sum())

        return loss, (t(a["W1"]), t(a["b1"]), t(a["W2"]), t(a["b2"]))

    return {
        "linear": lambda a, d: (lambda x, W, b: F.linear(x, W.t(), b), (t(a["x"]), t(a["W"]), t(a["b"]))),
        "relu": lambda a, d: (F.relu, (t(a["x"]),)),
        "tanh": lambda a, d: (torch.tanh, (t(a["x"]),)),
        "softmax": lambda a, d: (lambda x: F.softmax(x, dim=-1), (t(a["x"]),)),
        "softmax-cross-entropy": lambda a, d: (
            lambda x, y: F.cross_entropy(x, y),
            (t(a["x"]), torch.tensor(a["y"], dtype=torch.long)),
        ),
        "mse": lambda a, d: (F.mse_loss, (t(a["pred"]), t(a["target"], grad=False))),
        "conv2d": lambda a, d: (
            lambda x, W, b: F.conv2d(x, W, b, stride=d["S"], padding=d["P"]),
            (t(a["x"]), t(a["W"]), t(a["b"])),
        ),
        "max-pool2d": lambda a, d: (lambda x: F.max_pool2d(x, d["K"], d["S"]), (t(a["x"]),)),
        "batch-norm": lambda a, d: (
            lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True, eps=1e-5),
            (t(a["x"]), t(a["gamma"]), t(a["beta"])),
        ),
        "layer-norm": lambda a, d: (
            lambda x, g, b: F.layer_norm(x, (d["D"],), g, b, eps=1e-5),
            (t(a["x"]), t(a["gamma"]), t(a["beta"])),
        ),
        "rnn-cell": lambda a, d: (
            lambda x, h, Wx, Wh, b: torch.rnn_tanh_cell(x, h, Wx.t(), Wh.t(), b, None),
            (t(a["x"]), t(a["prev_h"]), t(a["Wx"]), t(a["Wh"]), t(a["b"])),
        ),
        # torch orders the gates i, f, g, o (ours: i, f, o, g): same shapes and work, other values.
        "lstm-cell": lambda a, d: (
            lambda x, h, c, Wx, Wh, b: tuple(torch.lstm_cell(x, [h, c], Wx.t(), Wh.t(), b, None)),
            (t(a["x"]), t(a["prev_h"]), t(a["prev_c"]), t(a["Wx"]), t(a["Wh"]), t(a["b"])),
        ),
        "attention": lambda a, d: (F.scaled_dot_product_attention, (t(a["q"]), t(a["k"]), t(a["v"]))),
        "two-layer-net": two_layer_net,
    }


def registry_dims(spec: LayerSpec) -> dict[str, int] | None:
    """The largest shapes `run all` draws: every dim at the top of its range (if `where` allows)."""
    dims = {name: hi for name, (lo, hi) in spec.dims.items()}
    return dims if satisfies(spec, dims) else None


def bench_torch(
    specs: list[LayerSpec], modes: list[str], repeats: int, seed: int, shape_sets: list[str], threads: int
) -> dict:
    """torch.autograd.gradcheck (slow, fast) against gradcheck (full, fast) on the same inputs."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print(
            "\nnote: torch is not importable: torch comparison skipped "
            "(install it with: .venv/bin/pip install torch==2.13.0, see bench/README.md)"
        )
        return {}
    if threads:
        # On a shared 2-core machine torch's intra-op thread pool waits on busy cores: 10x swings
        # on tiny tensors. One thread is also what numpy uses on arrays this small.
        torch.set_num_threads(threads)
    cases = torch_cases(torch, F)
    by_name = {s.name: s for s in specs}
    out, rows = [], []
    for shape_set in shape_sets:
        for name, build in cases.items():
            spec = by_name.get(name)
            if spec is None:
                continue
            dims = registry_dims(spec) if shape_set == "registry-max" else SHAPE_SETS[shape_set].get(name)
            if dims is None:
                continue
            # slow modes at large shapes take minutes (torch builds a Jacobian of 10^4 x 10^4): fast only
            row = _torch_row(torch, spec, dims, build, modes, repeats, seed, slow=shape_set != "large")
            row["shapes"] = shape_set
            out.append(row)
            g = row["gradcheck"]
            g.setdefault("full", g.get("default"))
            rows.append(
                [
                    name,
                    shape_set,
                    row["elements"],
                    fmt_s(row["torch_slow"]),
                    fmt_s(g.get("full")),
                    fmt_ratio(_ratio(g.get("full"), row["torch_slow"])),
                    fmt_s(row["torch_fast"]),
                    fmt_s(g.get("fast")),
                    fmt_ratio(_ratio(g.get("fast"), row["torch_fast"])),
                    f"{fmt_s(row['forward_ours'])} / {fmt_s(row['forward_torch'])}",
                    row["torch_ok"],
                    "/".join(row["gradcheck_status"].values()),
                ]
            )
    headers = [
        "layer",
        "shapes",
        "elements checked",
        "torch slow",
        "gradcheck full",
        "full/slow",
        "torch fast",
        "gradcheck fast",
        "fast/fast",
        "one forward: numpy / torch",
        "torch slow/fast verdict",
        "gradcheck verdict",
    ]
    print(
        table(
            headers,
            rows,
            f"gradcheck vs torch.autograd.gradcheck (float64, CPU, {torch.get_num_threads()} "
            f"torch thread(s), medians of {repeats}; target: ratios <= 1)",
        )
        + load_note(),
        flush=True,
    )
    vias = {v for r in out for v in r["via"].values()}
    print("gradcheck ran via: " + "; ".join(sorted(vias)))
    return {"rows": out, "torch_version": torch.__version__, "torch_threads": torch.get_num_threads()}


def _torch_row(torch, spec, dims, build, modes, repeats, seed, slow: bool = True) -> dict:
    """One layer and shape: torch slow/fast and gradcheck per mode, interleaved so noise hits all
    alike; without `slow`, torch's fast mode and gradcheck's fast mode only."""
    arrays = draw_arrays(spec, Example(tuple(dims.items()), seed, 1.0))
    function, tensors = build(arrays, dims)
    checked = {t.name for t in spec.differentiable_inputs} | {p.name for p in spec.params}
    elements = sum(a.size for n, a in arrays.items() if n in checked)

    def torch_check(fast: bool):
        try:
            return torch.autograd.gradcheck(function, tensors, fast_mode=fast, raise_exception=False)
        except Exception as exc:  # an unsupported op in one mode should not end the benchmark
            return f"error: {type(exc).__name__}"

    runners = {"torch slow": lambda: torch_check(False), "torch fast": lambda: torch_check(True)}
    ours = [m for m in modes if m in ("full", "fast")] or modes[:1]
    if not slow:
        del runners["torch slow"]
        ours = [m for m in ours if m != "full"]
    for mode in ours:
        runners[mode] = lambda mode=mode: run_fixed(spec, dims, mode, seed)
    times: dict[str, list[float]] = {k: [] for k in runners}
    last: dict[str, Any] = {}
    for attempt in range(repeats + 1):  # the first round warms caches and kernels and is not counted
        for key, runner in runners.items():
            start = time.perf_counter()
            last[key] = runner()
            if attempt:
                times[key].append(time.perf_counter() - start)
    ours = [k for k in runners if not k.startswith("torch")]
    with torch.no_grad():
        torch_forward = _median_call(lambda: function(*tensors), 50)
    verdicts = [last.get("torch slow", "-"), last["torch fast"]]
    ok = "/".join("pass" if v is True else "FAIL" if v is False else str(v) for v in verdicts)
    return {
        "name": spec.name,
        "dims": dims,
        "elements": elements,
        "torch_slow": median(times["torch slow"]) if slow else None,
        "torch_fast": median(times["torch fast"]),
        "torch_ok": ok,
        "gradcheck": {m: median(times[m]) for m in ours},
        "gradcheck_status": {m: last[m][2] for m in ours},
        "via": {m: last[m][3] for m in ours},
        "times": times,
        "forward_ours": layer_forward_time(spec, dims, arrays, seed, 50),
        "forward_torch": torch_forward,
    }


def _median_call(call: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return median(times)


def layer_forward_time(spec: LayerSpec, dims: dict[str, int], arrays: dict, seed: int, repeats: int) -> float:
    """Median time of one call of the layer's own forward on the drawn arrays (inside call_layer only)."""
    adapter = gradcheck.adapters.adapter_for(spec)
    adapter.prepare({**dims, **arrays}, seed)
    inputs = [arrays[t.name] for t in spec.inputs]
    timer = LayerTimer(record=True)
    with timing_layer_code(timer):
        for _ in range(repeats):
            adapter.forward([x.copy() for x in inputs], {p.name: arrays[p.name].copy() for p in spec.params}, seed)
    return median([e.end - e.start for e in timer.events if category(e.what) == "forward"])


def timed_runs(run: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    """`run` called `runs` times: the median wall time, the median share of it in the layer's own
    code, and the last call's result."""
    walls, shares, result = [], [], None
    for _ in range(runs):
        timer = LayerTimer()
        with timing_layer_code(timer):
            start = time.perf_counter()
            result = run()
            walls.append(time.perf_counter() - start)
        shares.append(timer.total / walls[-1] if walls[-1] else 0.0)
    return median(walls), median(shares), result


# -- section: medium -------------------------------------------------------------------------------
def bench_medium(specs: list[LayerSpec], modes: list[str], repeats: int, seed: int) -> dict:
    """The layer's share of one fixed example's wall time at medium shapes (scale 1)."""
    out: dict[str, Any] = {}
    for mode in modes:
        rows, raw, total, inside = [], [], 0.0, 0.0
        for spec in specs:
            if spec.name not in MEDIUM_DIMS:
                continue
            dims = MEDIUM_DIMS[spec.name]
            run_fixed(spec, dims, mode, seed)  # warm-up
            wall, share, (_, calls, _, _) = timed_runs(
                lambda spec=spec, dims=dims, mode=mode: run_fixed(spec, dims, mode, seed), repeats
            )
            total, inside = total + wall, inside + wall * share
            raw.append({"name": spec.name, "dims": dims, "wall": wall, "layer_share": share, "calls": calls})
            rows.append(
                [
                    spec.name,
                    " ".join(f"{k}={v}" for k, v in dims.items()),
                    calls["forward"],
                    fmt_s(wall),
                    f"{share:.0%}",
                    f"{1 - share:.0%}",
                ]
            )
        rows.append(
            [
                "TOTAL (sum)",
                "",
                "",
                fmt_s(total),
                f"{inside / total:.0%}" if total else "-",
                f"{1 - inside / total:.0%}" if total else "-",
            ]
        )
        print(
            table(
                ["layer", "dims", "forward", "wall (median)", "in layer code", "checker"],
                rows,
                f"One example per layer at medium shapes, mode={mode_label(mode)} (seed {seed}, {repeats} repeats)",
            )
            + load_note(),
            flush=True,
        )
        out[mode] = raw
    return out


# -- section: large --------------------------------------------------------------------------------
def bench_large(specs: list[LayerSpec], modes: list[str], repeats: int, seed: int) -> dict:
    """One fixed example per layer at LARGE_DIMS (scale 1): wall time, forwards, the share of the
    time in the layer's own code, and how each tensor was checked. Mode full runs once per layer
    (on an engine without the cost model, auto took minutes on conv2d too)."""
    out: dict[str, Any] = {}
    for mode in modes:
        rows, raw, total, inside = [], [], 0.0, 0.0
        for spec in specs:
            if spec.name not in LARGE_DIMS:
                continue
            dims = LARGE_DIMS[spec.name]
            kwargs = {"mode": mode} if mode != "default" and _check_example_takes("mode") else {}

            def check(spec=spec, dims=dims, kwargs=kwargs):
                counter = Counter()
                outcome = check_example(
                    spec, Example(tuple(dims.items()), seed, 1.0), tolerances(spec), counter, **kwargs
                )
                return outcome, counter

            wall, share, (outcome, counter) = timed_runs(check, 1 if mode == "full" else repeats)
            methods = {t.name: getattr(t, "method", "full") for t in outcome.tensors}
            elements = sum(int(np.prod(t.analytic.shape)) for t in outcome.tensors)
            total, inside = total + wall, inside + wall * share
            raw.append(
                {
                    "name": spec.name,
                    "dims": dims,
                    "wall": wall,
                    "layer_share": share,
                    "forward": counter.forward,
                    "elements": elements,
                    "methods": methods,
                    "status": outcome.status.value,
                }
            )
            rows.append(
                [
                    spec.name,
                    " ".join(f"{k}={v}" for k, v in dims.items()),
                    elements,
                    counter.forward,
                    fmt_s(wall),
                    f"{share:.0%}",
                    " ".join(f"{k}:{v}" for k, v in methods.items()),
                    outcome.status.value,
                ]
            )
        rows.append(["TOTAL (sum)", "", "", "", fmt_s(total), f"{inside / total:.0%}" if total else "-", "", ""])
        print(
            table(
                [
                    "layer",
                    "dims",
                    "elements checked",
                    "forward",
                    "wall (median)",
                    "in layer code",
                    "method per tensor",
                    "status",
                ],
                rows,
                f"One example per layer at large shapes, mode={mode_label(mode)} (seed {seed}, "
                f"{'1 run' if mode == 'full' else f'{repeats} repeats'})",
            )
            + load_note(),
            flush=True,
        )
        out[mode] = raw
    return out


# -- section: floor --------------------------------------------------------------------------------
def bench_floor(modes: list[str], repeats: int, seed: int) -> dict:
    """The checker's own cost: one example of layers that do nothing (out = x; out = x + b) at
    N = 4 and growing D. `shift`'s parameter b takes two forwards per element, so a straight line
    through its checker time against its forward calls (least squares) gives the checker's cost
    per forward (slope) and per example (intercept); from those, how long a forward must take for
    the layer's own code to be 80% of a check that makes k forward calls. Fast mode makes the
    same calls at every D: no line, the table alone."""
    specs = {s.name: s for s in load_registry(FLOOR_CONFIG).layers}
    loops = 20  # examples per timed run: one takes a fraction of a millisecond
    out: dict[str, Any] = {}
    for mode in modes:
        rows, raw = [], []
        for name, spec in specs.items():
            for width in FLOOR_WIDTHS:
                dims = {"N": 4, "D": width}
                run_fixed(spec, dims, mode, seed)  # warm-up
                wall, share, runs = timed_runs(
                    lambda spec=spec, dims=dims, mode=mode: [run_fixed(spec, dims, mode, seed) for _ in range(loops)],
                    repeats,
                )
                forwards = runs[-1][1]["forward"]
                checker = wall * (1 - share) / loops
                raw.append(
                    {
                        "name": name,
                        "dims": dims,
                        "wall": wall / loops,
                        "layer_share": share,
                        "forward": forwards,
                        "checker": checker,
                    }
                )
                rows.append([name, f"N=4 D={width}", forwards, fmt_s(wall / loops), f"{share:.0%}", fmt_s(checker)])
        out[mode] = {"rows": raw}
        text = table(
            ["layer", "dims", "forward", "wall per example", "in layer code", "checker per example"],
            rows,
            f"The checker's own cost, mode={mode_label(mode)} (seed {seed}, medians of {repeats} runs of "
            f"{loops} examples)",
        )
        shift = [r for r in raw if r["name"] == "shift"]  # checker time = per example + per forward * forwards
        if len({r["forward"] for r in shift}) > 1:
            per_forward, per_example = (
                float(c) for c in np.polyfit([r["forward"] for r in shift], [r["checker"] for r in shift], 1)
            )
            needed = {k: 4 * (per_forward + per_example / k) for k in (2, 10, 30, 100)}
            out[mode]["fit"] = {"per_example": per_example, "per_forward": per_forward, "needed": needed}
            text += (
                f"\nFrom shift: the checker costs about {fmt_s(per_example)} per example plus "
                f"{fmt_s(per_forward)} per forward call. For the layer's own code to take 80% of a check of k "
                "forward calls, each forward must take at least 4 x (per forward + per example / k): "
                + ", ".join(f"{fmt_s(v)} at k = {k}" for k, v in needed.items())
                + ".\n"
            )
        print(text + load_note(), flush=True)
    return out


# -- section: profile ------------------------------------------------------------------------------
def bench_profile(specs: list[LayerSpec], seed: int, examples: int | None, top: int) -> dict:
    """cProfile over every layer's check; the functions that cost most, by own and cumulative time."""
    profiler = cProfile.Profile()
    options = Options(seed=seed, examples=examples)
    profiler.enable()
    for spec in specs:
        check_layer(spec, options)
    profiler.disable()
    out = {}
    for key in ("tottime", "cumulative"):
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats(key).print_stats(top)
        text = stream.getvalue()
        print(f"\n### cProfile, top {top} by {key} (seed {seed})\n\n```\n{_trim_profile(text)}\n```")
        out[key] = text
    return out


def _trim_profile(text: str) -> str:
    lines = text.splitlines()
    start = next((i for i, text_line in enumerate(lines) if "ncalls" in text_line), 0)
    total = next((text_line.strip() for text_line in lines if "function calls" in text_line), "")
    return "\n".join([total] + lines[start:]).replace(str(ROOT) + "/", "").replace(sys.prefix + "/", "")


# -- machine ---------------------------------------------------------------------------------------
def machine() -> dict:
    """What the numbers were measured on."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info = {
        "nproc": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu": cpu,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "gradcheck": getattr(gradcheck, "__version__", "?"),
        "hypothesis": _version("hypothesis"),
        "torch": _version("torch"),
        "platform": platform.platform(),
        "gradcheck source": str(Path(gradcheck.__file__).resolve().parent),
        "git": _git_head(),
    }
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        info[var] = os.environ.get(var)
    return info


def _git_head() -> str | None:
    """The commit the measured gradcheck comes from, marked dirty if gradcheck/ has local changes."""
    where = Path(gradcheck.__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=where, check=True
        )
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], capture_output=True, text=True, cwd=where)
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + (" (gradcheck/ has uncommitted changes)" if dirty.stdout.strip() else "")


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


# -- main ------------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark gradcheck (wall time, calls, layer-vs-checker share, batch scaling) "
        "and compare it with torch.autograd.gradcheck. Prints markdown tables."
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=ROOT / "layers.yaml",
        help="layers.yaml to benchmark (default: the repository's top-level one).",
    )
    parser.add_argument(
        "--sections",
        default=",".join(DEFAULT_SECTIONS),
        help=f"Comma-separated sections to run, from {', '.join(SECTIONS)} (default: %(default)s).",
    )
    parser.add_argument(
        "--modes",
        default="default,full,fast",
        help="Comma-separated engine modes (Options.mode) to measure; 'default' is the "
        "engine's own default (default: %(default)s).",
    )
    parser.add_argument(
        "--keep-inert-modes",
        action="store_true",
        help="Measure a mode even when it makes exactly the calls of mode 'full'.",
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="Repeats per measurement; medians are reported (default: 5)."
    )
    parser.add_argument("--seed", type=int, default=1, help="Seed for examples and drawn values (default: 1).")
    parser.add_argument("--examples", type=int, help="Examples per layer (default: the registry's).")
    parser.add_argument(
        "--layers",
        nargs="+",
        metavar="NAME",
        help="Only these layers (default: every layer); the run-all section always runs `run all`.",
    )
    parser.add_argument(
        "--batch", type=int, default=4, help="B for the batch-scaling section, compared with 2B (default: 4)."
    )
    parser.add_argument(
        "--shapes",
        choices=("registry-max", "medium", "both", "large", "all"),
        default="both",
        help="Shapes for the torch comparison: the top of each layers.yaml range, the fixed "
        "medium shapes in this script, both, the large shapes (fast modes only), or "
        "all three (default: both).",
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch.set_num_threads for the comparison; 0 keeps torch's default (default: 1).",
    )
    parser.add_argument(
        "--no-keep-memory",
        action="store_true",
        help="Leave malloc as it is; by default the benchmark asks it to keep freed memory, "
        "as the gradcheck CLI does (gradcheck.memory).",
    )
    parser.add_argument("--profile-top", type=int, default=25, help="Rows of the cProfile listing (default: 25).")
    parser.add_argument("--label", default="", help="A note printed in the header, e.g. the commit measured.")
    parser.add_argument("--json", type=Path, help="Also write every raw number to this JSON file.")
    args = parser.parse_args(argv)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    if args.repeats < 1 or args.batch < 1:
        parser.error("--repeats and --batch must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    registry = load_registry(args.config)
    specs = registry.layers
    if args.layers:
        missing = sorted(set(args.layers) - set(registry.names()))
        if missing:
            print(f"error: no layer(s) named {', '.join(missing)} in {args.config}", file=sys.stderr)
            return 2
        specs = [s for s in specs if s.name in args.layers]
    modes = supported_modes(
        [m.strip() for m in args.modes.split(",") if m.strip()], specs, args.seed, args.keep_inert_modes
    )
    info = machine()
    info["keeps freed memory"] = (
        keep_freed_memory()
        if keep_freed_memory and not args.no_keep_memory
        else "no (--no-keep-memory)"
        if keep_freed_memory
        else "no (engine without it)"
    )
    if args.label:
        info["label"] = args.label
    print("# gradcheck benchmark\n\n" + "\n".join(f"- {k}: {v}" for k, v in info.items()), flush=True)
    report: dict[str, Any] = {"machine": info, "args": {k: str(v) for k, v in vars(args).items()}}
    started = time.perf_counter()
    if "layers" in args.sections:
        report["layers"] = bench_layers(specs, modes, args.repeats, args.seed, args.examples)
    if "run-all" in args.sections:
        report["run_all"] = bench_run_all(args.config, modes, args.repeats, args.seed, args.examples)
    if "scaling" in args.sections:
        report["scaling"] = bench_scaling(specs, modes, args.repeats, args.seed, args.batch)
    if "medium" in args.sections:
        report["medium"] = bench_medium(specs, modes, args.repeats, args.seed)
    if "torch" in args.sections:
        shape_sets = {"both": ["registry-max", "medium"], "all": ["registry-max", "medium", "large"]}.get(
            args.shapes, [args.shapes]
        )
        report["torch"] = bench_torch(specs, modes, args.repeats, args.seed, shape_sets, args.torch_threads)
    if "large" in args.sections:
        report["large"] = bench_large(specs, modes, args.repeats, args.seed)
    if "floor" in args.sections:
        report["floor"] = bench_floor(modes, args.repeats, args.seed)
    if "profile" in args.sections:
        report["profile"] = bench_profile(specs, args.seed, args.examples, args.profile_top)
    print(f"\nbenchmark took {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8")
        print(f"raw numbers written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
