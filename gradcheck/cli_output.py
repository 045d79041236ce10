"""Where a run's output goes: the reports printed and written, the failures saved or debugged, and
streams that stay writable when stdout is a closed pipe."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import click
from rich.console import Console

from gradcheck.cli_options import Outputs, Plan
from gradcheck.failures import replay_raises, save_failures, user_traceback_text
from gradcheck.importing import stdout_to_stderr
from gradcheck.registry import Registry
from gradcheck.reporters import render
from gradcheck.reporters.common import printable
from gradcheck.reporters.table import print_run
from gradcheck.results import RunResult, Status
from gradcheck.sources import backward_locations

LOG_WIDTH = 120  # columns of the table when stdout is neither a terminal nor given $COLUMNS


def report_run(result: RunResult, plan: Plan, outputs: Outputs, strict: bool, detail: bool) -> None:
    """Print (and write) the run in every format asked for; the table goes to stdout unless another
    format is the one printed there."""
    locations = backward_locations(plan.specs)
    fmt, output = outputs.fmt, outputs.output
    for file_fmt, flag, path in outputs.files():
        write_report(path, render(file_fmt, result, strict, locations), flag)
    with stdout_guard():
        if outputs.github and not (fmt == "github" and not output):
            click.echo(render("github", result, strict, locations), nl=False)
        if not output and fmt != "table":
            click.echo(render(fmt, result, strict, locations), nl=False)
        if output or fmt in ("table", "github"):  # annotations vanish from the log: the table stays readable there
            print_run(
                console(),
                result,
                strict=strict,
                detail=detail,
                locations=locations,
                not_run=len(plan.specs) - len(result.layers),
                verbose=outputs.verbose,
                quiet=outputs.quiet,
                tracebacks=_tracebacks(result, plan) if outputs.verbose else None,
            )
    if plan.shard and not plan.specs:
        click.echo(f"shard {plan.shard[0]}/{plan.shard[1]} is empty: there are fewer layers than shards", err=True)


def after_run(result: RunResult, plan: Plan, outputs: Outputs, registry: Registry) -> None:
    """--save-failures and --pdb: the failing examples, replayed in this process."""
    if outputs.save_failures:
        _save_failures(result, plan, outputs.save_failures, registry)
    if outputs.pdb:
        _debug(result, plan)


def _save_failures(result: RunResult, plan: Plan, directory: Path, registry: Registry) -> None:
    specs = {spec.name: spec for spec in plan.specs}
    try:
        with stdout_to_stderr():  # what the layer prints must not mix with a report on stdout
            saved = save_failures(list(result.layers), specs, directory, registry.path, plan.options.tolerances)
    except OSError as exc:
        click.echo(f"error: cannot write --save-failures {printable(str(directory))}: {exc.strerror or exc}", err=True)
        return
    for item in saved:
        click.echo(f"saved {printable(str(item.data))}; replay it: python {printable(str(item.script))}", err=True)


def _raised(result: RunResult, plan: Plan) -> list[tuple[str, BaseException]]:
    """(layer name, exception) for each layer whose code raised, replayed in this process."""
    specs = {spec.name: spec for spec in plan.specs}
    found = []
    for layer in result.layers:
        spec = specs.get(layer.name)
        if layer.status is Status.ERROR and layer.example and spec and " raised " in layer.message:
            with stdout_to_stderr():
                exc = replay_raises(spec, layer.example)
            if exc is not None:
                found.append((layer.name, exc))
    return found


def _tracebacks(result: RunResult, plan: Plan) -> dict[str, str]:
    """-v: the user's traceback of each layer that raised."""
    return {name: user_traceback_text(exc) for name, exc in _raised(result, plan)}


def _debug(result: RunResult, plan: Plan) -> None:
    """--pdb: a post-mortem debugger at each raising layer's exception, in the user's frame."""
    import pdb

    raised = _raised(result, plan)
    if not raised:
        click.echo("--pdb: no layer raised an exception", err=True)
    for name, exc in raised:
        click.echo(f"--pdb: layer {printable(name)} raised {type(exc).__name__}: {printable(str(exc))}", err=True)
        pdb.post_mortem(exc.__traceback__)


def write_report(path: Path, text: str, flag: str = "--output") -> None:
    """Write the report whole (a temporary file in the same folder, then renamed over `path`); on failure
    say so on stderr and go on: the table still prints and the verdict's exit code still comes out."""
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with open(handle, "w", encoding="utf-8", errors="backslashreplace") as file:
            file.write(text)
        os.replace(temporary, path)
    except OSError as exc:
        click.echo(f"error: cannot write {flag} {printable(str(path))}: {exc.strerror or exc}", err=True)
        if temporary:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


@contextlib.contextmanager
def stdout_guard() -> Iterator[None]:
    """A stdout that is full or a closed pipe (`| head -1`) ends the output, never in a traceback."""
    try:
        yield
        sys.stdout.flush()
    except SystemExit:  # rich's answer to a closed pipe (stdout is already /dev/null): the verdict still counts
        pass
    except OSError as exc:
        drop_stdout()
        if exc.errno != errno.EPIPE:
            click.echo(f"error: cannot write to stdout: {exc.strerror or exc}", err=True)


def drop_stdout() -> None:
    """Point stdout at /dev/null, so that what is still buffered cannot fail again at exit."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, sys.stdout.fileno() if hasattr(sys.stdout, "fileno") and _has_fd(sys.stdout) else 1)
    os.close(null)


def _has_fd(stream: IO[str]) -> bool:
    try:
        stream.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):
        return False
    return True


def console() -> Console:
    """stdout's console: the terminal's width, else $COLUMNS, else LOG_WIDTH (a log)."""
    return Console(file=sys.stdout, width=None if sys.stdout.isatty() or _columns() else LOG_WIDTH)


def _columns() -> int | None:
    value = os.environ.get("COLUMNS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def open_std_streams() -> None:
    """Give a closed stdin/stdout/stderr (`>&-`) /dev/null, so no file the run opens takes its number
    and writing never fails; and let any text (a lone surrogate) print."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)
            if opened != fd:
                os.dup2(opened, fd)
                os.close(opened)
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = getattr(sys, name)
        if stream is None:
            setattr(sys, name, open(fd, "w", closefd=False, errors="backslashreplace"))
        elif hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
