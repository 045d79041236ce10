"""The rich table: a row per tensor, failures explained below it, a one-line summary."""

from __future__ import annotations

import io

import numpy as np
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from gradcheck.reporters.common import Locations, code_at, printable, printable_run
from gradcheck.results import LayerResult, RunResult, Status, TensorAccount, TensorResult, dims_text

STYLES = {
    Status.PASS: "green",
    Status.XFAIL: "yellow",
    Status.SKIP: "dim",
    Status.WARN: "yellow",
    Status.XPASS: "magenta",
    Status.FAIL: "bold red",
    Status.ERROR: "bold red",
}
HEATMAP_MAX = 24  # rows/columns beyond which a heat-map would not fit a terminal


def _status(status: Status) -> Text:
    return Text(status.value, style=STYLES[status])


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.2e}"


def results_table(run: RunResult) -> Table:
    """Layer, tensor, examples, max abs error, max rel error, status, time."""
    table = Table(title=None, show_lines=False, header_style="bold")
    table.add_column("layer", overflow="fold")
    table.add_column("tensor", overflow="fold")
    for number in ("examples", "max abs err", "max rel err"):
        table.add_column(number, justify="right", min_width=8)  # a header may wrap, a number never
    table.add_column("status", no_wrap=True, min_width=6)
    table.add_column("time", justify="right", min_width=6)
    for layer in run.layers:
        rows = layer.tensors or (None,)
        for position, tensor in enumerate(rows):
            first = position == 0
            table.add_row(  # Text, not str: a name such as "[/]" is not rich markup
                Text(layer.name if first else ""),
                Text(_tensor_label(tensor, layer.shapes)),
                str(layer.examples) if first else "",
                _number(tensor.max_abs_error) if tensor and tensor.worst_index is not None else "",
                _number(tensor.max_rel_error) if tensor and tensor.worst_index is not None else "",
                _status(tensor.status if tensor and layer.status in (Status.PASS, Status.FAIL) else layer.status),
                f"{layer.seconds:.2f}s" if first else "",
            )
    return table


def _tensor_label(tensor: TensorResult | None, shapes: dict | None = None) -> str:
    """'x (3x5)', with every row of a layer showing its shape in the same example (`shapes`)."""
    if tensor is None:
        return "-"
    shape = tuple((shapes or {}).get(tensor.name, tensor.shape))
    return f"{tensor.name} ({'x'.join(str(s) for s in shape) if shape else 'scalar'})"


def layer_details(layer: LayerResult, heatmap: bool = False, code: str | None = None) -> Group:
    """Why a layer did not pass (its failure account), and what else a closer look shows: which
    tensors passed by random directions only, points skipped at kinks, where the layer is defined."""
    account = layer.account
    parts = [Text.assemble((f"{layer.name}", "bold"), " ", _status(layer.status), f"  {account.message}")]
    for tensor in account.tensors:
        parts += _tensor_details(tensor, heatmap)
    parts += _directions(layer)
    if account.smallest_dims:
        parts.append(Text(f"  smallest failing dims: {dims_text(account.smallest_dims)}"))
    parts += [Text(f"  warning: {warning}", style="yellow") for warning in account.warnings]
    if layer.kinks:
        redrawn = f"; {layer.redrawn} example(s) drawn again with fresh values" if layer.redrawn else ""
        parts.append(
            Text(
                f"  {layer.kinks} point(s) skipped: the function is not smooth there (kink) or the "
                f"reference was unsteady{redrawn}",
                style="dim",
            )
        )
    if account.reproduce:
        parts.append(repro_line(account.reproduce))
    if layer.source:
        parts.append(Text(f"  defined at {layer.source}", style="dim"))
    if code:
        parts.append(Text(f"  code at {code}", style="dim"))
    return Group(*parts)


def _tensor_details(tensor: TensorAccount, heatmap: bool) -> list[Text]:
    """A failing tensor: its worst element (or what is wrong with it), the probable cause, a heat-map."""
    if tensor.status is Status.ERROR:
        return [Text(f"  {tensor.name}: {tensor.message}")]
    if tensor.status is not Status.FAIL:
        return []
    if tensor.worst is None:
        parts = [Text(f"  {tensor.name}: {tensor.message}")]
    else:
        parts = [
            Text(
                f"  {tensor.worst}: {tensor.worst.values}  ({tensor.message}; max rel error "
                f"{tensor.max_rel_error:.2e}){_seen_at(tensor)}"
            )
        ]
    if tensor.cause:
        parts.append(Text(f"  probable cause: {tensor.cause}", style="yellow"))
    if heatmap and tensor.error_map is not None:
        parts.extend(_heatmap(tensor))
    return parts


def _directions(layer: LayerResult) -> list[Text]:
    """Which tensors passed along random directions in some examples, not element by element."""
    directions = [
        f"{t.name} in {t.by_directions} of {sum(n for _, n in t.checked_by)}" for t in layer.tensors if t.by_directions
    ]
    if not directions:
        return []
    return [
        Text(
            f"  passed along random directions, not element by element: {', '.join(directions)} "
            "example(s) (--mode full checks every element)",
            style="dim",
        )
    ]


def repro_line(command: str) -> Text:
    """The reproduce command: print it with soft_wrap=True, so that no width wraps or cuts it (a
    command broken over two lines fails when pasted back)."""
    return Text(f"  reproduce: {command}", style="cyan", no_wrap=True, overflow="ignore")


def trail_lines(layer: LayerResult) -> list[Text]:
    """One line per example checked (-v): dims, value seed, magnitude and verdict."""
    lines = [Text(f"  {layer.name}: {len(layer.trail)} example(s) checked", style="dim")]
    for dims, seed, scale, status in layer.trail:
        shown = ", ".join(f"{k}={v}" for k, v in dims.items()) or "no dims"
        lines.append(Text.assemble(f"    {shown}  seed {seed}  scale {scale:g}  ", _status(Status(status))))
    return lines


def _seen_at(tensor: TensorAccount) -> str:
    """Where a tensor failed, when not at the layer's smallest failing dims (each bug at its own example)."""
    if not tensor.elsewhere or not tensor.failing_dims:
        return ""
    shape = "x".join(str(s) for s in tensor.shape) or "scalar"
    return (
        f"\n    failed at {dims_text(tensor.failing_dims)} ({tensor.name} of shape {shape}), "
        "not at the smallest failing dims"
    )


def _heatmap(tensor: TensorAccount) -> list[Text]:
    """Element-wise |a - n| of a small tensor as coloured cells: the pattern shows the bug."""
    errors = np.asarray(tensor.error_map, dtype=float)
    label = tensor.name
    if errors.ndim > 2 and tensor.worst is not None:
        # the 2-D slice (last two axes) through the worst element: a conv's x[n, c, :, :]
        lead = tuple(tensor.worst.index[: errors.ndim - 2])
        errors = errors[lead]
        label = f"{tensor.name}[{', '.join(map(str, lead))}, :, :]"
    if errors.ndim == 1:
        errors = errors[None, :]
    if errors.ndim != 2 or errors.size == 0 or max(errors.shape) > HEATMAP_MAX:
        return []
    peak = float(np.nanmax(errors)) if np.isfinite(errors).any() else 0.0
    lines = [Text(f"  |analytic - numeric| of {label} (darker = larger, . = exact):", style="dim")]
    for row in errors:
        line = Text("    ")
        for value in row:
            level = 0 if peak == 0 or not np.isfinite(value) else value / peak
            char, style = (
                (".", "green")
                if level < 1e-6
                else ("░", "yellow")
                if level < 0.1
                else ("▒", "red")
                if level < 0.5
                else ("█", "bold red")
            )
            line.append(char * 2, style=style)
        lines.append(line)
    return lines


def precision_note(run: RunResult) -> Text | None:
    """Which layers were checked at float32 (float16) precision, and what that means."""
    reduced: dict[str, list[str]] = {}
    for layer in run.layers:
        if layer.precision != "float64":
            reduced.setdefault(layer.precision, []).append(layer.name)
    if not reduced:
        return None
    lines = [
        f"checked at {dtype} precision: {', '.join(names)} (its outputs or gradients are {dtype}: step and "
        "tolerances widened to what it supports, so errors under about 0.1% of a gradient cannot be told from "
        "rounding; bugs such as a transposed weight, a missing term or a 1/N still fail)"
        for dtype, names in reduced.items()
    ]
    return Text("\n".join(lines), style="dim")


def summary_line(run: RunResult, strict: bool = False) -> Text:
    """'3 passed, 1 failed, 0 errors in 1.20s (seed 7)' with the other statuses when present."""
    counts = run.counts()
    parts = [f"{counts['PASS']} passed", f"{counts['FAIL']} failed", f"{counts['ERROR']} errors"]
    for status in (Status.WARN, Status.XFAIL, Status.XPASS, Status.SKIP):
        if counts[status.value]:
            parts.append(f"{counts[status.value]} {status.value.lower()}")
    style = "bold red" if run.exit_code(strict) else "bold green"
    return Text(", ".join(parts) + f" in {run.seconds:.2f}s (seed {run.seed})", style=style)


def print_run(
    console: Console,
    run: RunResult,
    strict: bool = False,
    detail: bool = False,
    locations: Locations | None = None,
    not_run: int = 0,
    verbose: bool = False,
    quiet: bool = False,
    tracebacks: dict[str, str] | None = None,
) -> None:
    """Print the table, the details of every layer that did not pass, and the summary. `quiet`: only
    the failures and the summary; `verbose`: also every example and the user's traceback (by layer name)."""
    names = [layer.name for layer in run.layers]
    run = printable_run(run)
    if not quiet:
        console.print(results_table(run))
        note = precision_note(run)
        if note:
            console.print(note)
    for name, layer in zip(names, run.layers, strict=True):
        if verbose:
            console.print(*trail_lines(layer), sep="\n")
        shown = (
            layer.status.is_failure(strict)
            if quiet
            else layer.status is not Status.PASS
            or (detail and (layer.kinks or any(t.by_directions for t in layer.tensors)))
        )
        if shown:
            code = code_at(layer, locations)
            for part in layer_details(layer, heatmap=detail, code=code and printable(code)).renderables:
                console.print(part, soft_wrap=getattr(part, "no_wrap", None) is True)  # the reproduce line, whole
        user_traceback = (tracebacks or {}).get(name)
        if verbose and user_traceback:
            console.print(*(Text(printable(line), style="red") for line in user_traceback.splitlines()), sep="\n")
    if not_run:
        console.print(
            Text(f"stopped at the first failure (--fail-fast): {not_run} layer(s) not checked", style="yellow")
        )
    console.print(summary_line(run, strict))


def render_table(run: RunResult, strict: bool = False, locations: Locations | None = None) -> str:
    """The table as plain text, for --output files."""
    buffer = io.StringIO()
    print_run(Console(file=buffer, width=120, no_color=True, force_terminal=False), run, strict, locations=locations)
    return buffer.getvalue()
