"""The command line: parse, call the engine, print. Only this module exits."""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.markup import escape
from rich.text import Text

from gradcheck import importing
from gradcheck.errors import ConfigError, GradcheckError, SettingError, suggest
from gradcheck.failures import replay_raises, save_failures, user_traceback_text
from gradcheck.importing import stdout_to_stderr
from gradcheck.parallel import Terminated, max_jobs, run_layers
from gradcheck.registry import Registry, load_registry
from gradcheck.reporters import REPORTERS, render
from gradcheck.reporters.common import printable
from gradcheck.reporters.github import annotation
from gradcheck.reporters.progress import ProgressDisplay
from gradcheck.reporters.table import print_run
from gradcheck.results import RunResult, Status
from gradcheck.limits import check_setting
from gradcheck.memory import default_limit, keep_freed_memory, parse_size
from gradcheck.settings import Settings, load_settings, with_settings
from gradcheck.sharding import parse_shard, select_shard
from gradcheck.sources import backward_locations, code_files
from gradcheck.spec import MODES, LayerSpec, Options, Tolerances
from gradcheck.starter import write_starter

DEFAULT_CONFIG = Path("layers.yaml")


class Failure(click.ClickException):
    """A usage or configuration problem: its message on stderr, exit code 2, no traceback."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(self.message, err=True)


def _positive(ctx, param, value):
    if value is not None and value <= 0:
        raise click.BadParameter(f"must be positive, got {value}")
    return value


def _setting(ctx, param, value):
    """A numeric option checked by the same rules as layers.yaml, pyproject.toml and the API."""
    try:
        return check_setting(param.name, value)
    except SettingError as exc:
        raise click.BadParameter(str(exc)) from None


def _size(ctx, param, value):
    try:
        return (parse_size(value) or 0) if value is not None else None  # 0: no limit, None: not given
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _shard(ctx, param, value):
    try:
        return parse_shard(value) if value is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


CONFIG_OPTION = click.option(
    "--config", type=click.Path(dir_okay=False, path_type=Path),
    help="The layers.yaml to read [default: [tool.gradcheck] config in the nearest pyproject.toml, else ./layers.yaml].")


def shared_options(command):
    """Options that `run` and `check` share."""
    options = [
        CONFIG_OPTION,
        click.option("--examples", type=int, callback=_setting,
                     help="Property-based examples per layer (overrides the file)."),
        click.option("--seed", type=int, help="Seed for the examples; the same seed reproduces the same run."),
        click.option("--rtol", type=float, callback=_setting,
                     help="Relative tolerance per element (overrides the file; built-in 1e-5)."),
        click.option("--atol", type=float, callback=_setting,
                     help="Absolute tolerance per element (overrides the file; built-in 1e-7)."),
        click.option("--eps", type=float, callback=_setting,
                     help="Finite-difference step, relative to max(1, |x|) (built-in 1e-6)."),
        click.option("--mode", type=click.Choice(MODES),
                     help="How gradients are compared: full (every element), fast (random directions, every "
                          "element on any doubt) or auto [default: auto, full up to 4096 elements while an "
                          "example's full checks fit a budget of forwards]."),
        click.option("--format", "fmt", type=click.Choice(list(REPORTERS)), default="table", show_default=True,
                     help="Report format: printed, or written to --output while the table prints."),
        click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
                     help="Write the --format report to this file; the table still prints."),
        click.option("--jobs", type=int, callback=_positive,
                     help="Check layers in this many worker processes [default: 1]."),
        click.option("--shard", callback=_shard, metavar="K/N",
                     help="Check only shard K of N (1-based), e.g. one job of a CI matrix."),
        click.option("--timeout", type=float, callback=_setting,
                     help="Seconds per layer before it is stopped and counts as ERROR (default 600)."),
        click.option("--memory-limit", callback=_size, metavar="SIZE",
                     help="Memory each worker may use, e.g. 4G or 'none' (a layer beyond it is ERROR) "
                          "[default: 3/4 of the machine's memory shared among the --jobs workers]."),
        click.option("--fail-fast", is_flag=True, help="Stop after the first layer that fails."),
        click.option("--strict", is_flag=True, help="Also fail (exit 1) on warnings and unexpected passes (XPASS)."),
        click.option("--junit", "junit", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
                     help="Also write a JUnit XML report to PATH (combines with --json, --github and the table)."),
        click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
                     help="Also write the JSON report to PATH."),
        click.option("--github", is_flag=True, help="Also print GitHub annotations on stdout, before the table."),
        click.option("--save-failures", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
                     help="Write each layer that did not pass as DIR/NAME.npz (its failing example) and "
                          "DIR/NAME.py (a script that replays it)."),
        click.option("-v", "--verbose", is_flag=True,
                     help="Also show every example checked and the traceback of a layer that raised."),
        click.option("-q", "--quiet", is_flag=True, help="Print only the failures and the summary line."),
        click.option("--pdb", is_flag=True,
                     help="Drop into the debugger at the exception of each layer that raised (implies --jobs 1)."),
    ]
    return functools.reduce(lambda cmd, option: option(cmd), reversed(options), command)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gradcheck")
def cli():
    """Check hand-written numpy backward passes against centred finite differences."""


@cli.command()
@click.argument("names", nargs=-1, required=True)
@shared_options
def run(names, **opts):
    """Check every layer (`run all`) or the named ones, one table."""
    _execute(list(dict.fromkeys(names)), detail=False, **opts)


@cli.command()
@click.argument("name")
@shared_options
def check(name, **opts):
    """Check one layer in depth: worst element, diagnosis, heat-map, reproduce command."""
    _execute([name], detail=True, **opts)


@cli.command(name="list")
@CONFIG_OPTION
def list_layers(config):
    """List the registered layers with their style and source."""
    settings = _settings()
    registry = _load(config or Path(settings.config or DEFAULT_CONFIG), fmt="table")
    table = Table(header_style="bold")
    for column in ("layer", "style", "impl", "defined at"):
        table.add_column(column, no_wrap=column == "layer")
    for layer in registry.layers:
        table.add_row(*(Text(printable(text)) for text in (layer.name, layer.style, layer.impl, layer.source)))
    with _stdout_guard():
        console = _console()
        console.print(table)
        console.print(f"{len(registry.layers)} layers in {escape(printable(str(registry.path)))}")


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--force", is_flag=True, help="Overwrite layers.yaml and mylayers.py if they exist.")
@click.option("--style", "starter", type=click.Choice(["layers", "model"]), default="layers", show_default=True,
              help="Start from layers (mylayers.py) or from a whole model (mymodel.py).")
def init(directory, force, starter):
    """Write a commented starter layers.yaml and a passing mylayers.py into DIRECTORY (default: here)."""
    try:
        written = write_starter(directory, force=force, style=starter)
    except GradcheckError as exc:
        raise Failure(str(exc)) from None
    for path in written:
        click.echo(f"wrote {path}")
    where = "" if directory == Path(".") else f"cd {directory} && "
    click.echo(f"next: {where}gradcheck run all   (then add your own layers to layers.yaml)")


@dataclass(frozen=True)
class _Plan:
    """What one `run` or `check` will do, resolved from the flags, pyproject.toml and the registry."""

    specs: list[LayerSpec]
    options: Options
    jobs: int
    shard: tuple[int, int] | None
    memory_limit: int | None = None


@dataclass(frozen=True)
class _Outputs:
    """Where the run's reports go besides the table, and how much the table says."""

    fmt: str = "table"
    output: Path | None = None
    junit: Path | None = None
    json: Path | None = None
    github: bool = False
    save_failures: Path | None = None
    verbose: bool = False
    quiet: bool = False
    pdb: bool = False

    def files(self) -> list[tuple[str, str, Path]]:
        """(format, flag, path) of every report written to a file."""
        wanted = [(self.fmt, "--output", self.output), ("junit", "--junit", self.junit), ("json", "--json", self.json)]
        return [(fmt, flag, path) for fmt, flag, path in wanted if path is not None]

    def check(self) -> None:
        """Refuse combinations that cannot work, before anything runs."""
        if self.verbose and self.quiet:
            raise Failure("error: --verbose and --quiet contradict each other: give one of them")
        if self.github and self.fmt in ("json", "junit") and not self.output:
            raise Failure(f"error: --github and --format {self.fmt} would both print on stdout: "
                          f"write the {self.fmt} report with --{self.fmt} PATH (or --output PATH) instead")
        paths = [path.resolve() for _, _, path in self.files()]
        if len(set(paths)) < len(paths):
            raise Failure("error: two reports would be written to the same file: give each its own path")


INTERRUPTED = {KeyboardInterrupt: 130, Terminated: 143}  # 128 + SIGINT, 128 + SIGTERM


def _execute(names, detail, config, examples, seed, rtol, atol, eps, mode, fmt, output, jobs, shard, timeout,
             memory_limit, fail_fast, strict, junit, json_path, github, save_failures, verbose, quiet, pdb):
    outputs = _Outputs(fmt, output, junit, json_path, github, save_failures, verbose, quiet, pdb)
    outputs.check()
    keep_freed_memory()  # large layers: no page faults for memory a forward frees and the next takes again
    settings = _settings()
    jobs = 1 if pdb else _jobs(jobs or settings.jobs or 1)
    memory = _memory_limit(memory_limit, settings, jobs)
    importing.set_limits(timeout or settings.timeout, memory)
    registry = _load(config or Path(settings.config or DEFAULT_CONFIG), "github" if github else fmt)
    specs = [with_settings(spec, settings) for spec in _select(registry, names)]
    for _, flag, path in outputs.files():
        _refuse_to_overwrite(path, registry, specs, settings, flag)
    repro_config = None if registry.path == Path(settings.config or DEFAULT_CONFIG) else str(registry.path)
    options = Options(examples=examples, seed=seed if seed is not None else settings.seed,
                      tolerances=Tolerances(rtol=rtol, atol=atol, eps=eps), fail_fast=fail_fast, timeout=timeout,
                      config=repro_config, mode=mode or settings.mode or Options().mode)
    options = replace(options, seed=options.resolved_seed())  # a partial report shows it too
    plan = _Plan(select_shard(specs, *shard) if shard else specs, options, jobs, shard, memory)
    result, interrupted = _run(plan, strict)
    if interrupted:
        _stop_signals()  # a second Ctrl-C must not cut the partial report short
    _report(result, plan, outputs, strict, detail)
    if not interrupted:
        _after_run(result, plan, outputs, registry)
    if interrupted:
        click.echo(f"interrupted: {len(result.layers)} of {len(plan.specs)} layer(s) checked", err=True)
        sys.exit(INTERRUPTED[interrupted])
    sys.exit(result.exit_code(strict))


def _after_run(result: RunResult, plan: _Plan, outputs: _Outputs, registry: Registry) -> None:
    """--save-failures and --pdb: the failing examples, replayed in this process."""
    if outputs.save_failures:
        _save_failures(result, plan, outputs.save_failures, registry)
    if outputs.pdb:
        _debug(result, plan)


def _save_failures(result: RunResult, plan: _Plan, directory: Path, registry: Registry) -> None:
    specs = {spec.name: spec for spec in plan.specs}
    try:
        with stdout_to_stderr():  # what the layer prints must not mix with a report on stdout
            saved = save_failures(list(result.layers), specs, directory, registry.path, plan.options.tolerances)
    except OSError as exc:
        click.echo(f"error: cannot write --save-failures {printable(str(directory))}: {exc.strerror or exc}", err=True)
        return
    for item in saved:
        click.echo(f"saved {printable(str(item.data))}; replay it: python {printable(str(item.script))}", err=True)


def _raised(result: RunResult, plan: _Plan) -> list[tuple[str, BaseException]]:
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


def _tracebacks(result: RunResult, plan: _Plan) -> dict[str, str]:
    """-v: the user's traceback of each layer that raised."""
    return {name: user_traceback_text(exc) for name, exc in _raised(result, plan)}


def _debug(result: RunResult, plan: _Plan) -> None:
    """--pdb: a post-mortem debugger at each raising layer's exception, in the user's frame."""
    import pdb

    raised = _raised(result, plan)
    if not raised:
        click.echo("--pdb: no layer raised an exception", err=True)
    for name, exc in raised:
        click.echo(f"--pdb: layer {printable(name)} raised {type(exc).__name__}: {printable(str(exc))}", err=True)
        pdb.post_mortem(exc.__traceback__)


def _jobs(jobs: int) -> int:
    """--jobs, capped at what the machine can use (saying so)."""
    if jobs > max_jobs():
        click.echo(f"--jobs {jobs} is more than this machine can use: running {max_jobs()} at a time "
                   f"(twice its {os.cpu_count() or 1} CPU(s), at least 8)", err=True)
    return min(jobs, max_jobs())


def _memory_limit(flag: int | None, settings: Settings, jobs: int) -> int | None:
    """Bytes each worker may use: --memory-limit, else [tool.gradcheck] memory_limit, else a share of the machine."""
    if flag is not None:
        return flag or None
    configured = getattr(settings, "memory_limit", None)
    if configured is None:
        return default_limit(jobs)
    try:
        return parse_size(configured)
    except ValueError as exc:
        raise Failure(f"error: pyproject.toml: [tool.gradcheck] memory_limit: {exc}") from None


def _refuse_to_overwrite(output: Path | None, registry: Registry, specs: list[LayerSpec], settings: Settings,
                        flag: str = "--output") -> None:
    """Exit 2 before running when a report file (--output, --junit, --json) names the config or a file
    of the layers' code."""
    if output is None:
        return
    target = output.resolve()
    precious = [registry.path.resolve(), *code_files(registry.layers), Path(settings.source or "pyproject.toml").resolve()]
    if target in precious:
        what = "the config" if target == precious[0] else "a source file"
        raise Failure(f"error: {flag} {printable(str(output))} is {what} "
                      "of this run: it would be overwritten; name another file for the report")


def _run(plan: _Plan, strict: bool) -> tuple[RunResult, type | None]:
    """Run the plan, with a progress display when stderr is a terminal; on Ctrl-C or SIGTERM, the layers
    finished so far and which of the two it was."""
    finished, started = [], time.perf_counter()
    xfail = [spec.name for spec in plan.specs if spec.xfail]
    display = ProgressDisplay(Console(stderr=True), len(plan.specs), xfail) if sys.stderr.isatty() else None

    def on_result(result):
        finished.append(result)
        if display:
            display.finished(result)

    try:
        with _signals_raise(), display or contextlib.nullcontext():
            return run_layers(plan.specs, plan.options, jobs=plan.jobs, strict=strict,
                              progress=display.example if display else None, on_result=on_result,
                              memory_limit=plan.memory_limit), None
    except (KeyboardInterrupt, Terminated) as exc:
        order = {spec.name: i for i, spec in enumerate(plan.specs)}
        layers = tuple(sorted(finished, key=lambda layer: order.get(layer.name, 0)))
        return RunResult(layers, time.perf_counter() - started, plan.options.seed), type(exc)


@contextlib.contextmanager
def _signals_raise():
    """SIGTERM raises Terminated meanwhile (Ctrl-C raises KeyboardInterrupt), so workers get ended."""
    def terminate(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_signals() -> None:
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)


def _report(result: RunResult, plan: _Plan, outputs: _Outputs, strict: bool, detail: bool) -> None:
    """Print (and write) the run in every format asked for; the table goes to stdout unless another
    format is the one printed there."""
    locations = backward_locations(plan.specs)
    fmt, output = outputs.fmt, outputs.output
    for file_fmt, flag, path in outputs.files():
        _write(path, render(file_fmt, result, strict, locations), flag)
    with _stdout_guard():
        if outputs.github and not (fmt == "github" and not output):
            click.echo(render("github", result, strict, locations), nl=False)
        if not output and fmt != "table":
            click.echo(render(fmt, result, strict, locations), nl=False)
        if output or fmt in ("table", "github"):  # annotations vanish from the log: the table stays readable there
            print_run(_console(), result, strict=strict, detail=detail, locations=locations,
                      not_run=len(plan.specs) - len(result.layers), verbose=outputs.verbose,
                      quiet=outputs.quiet, tracebacks=_tracebacks(result, plan) if outputs.verbose else None)
    if plan.shard and not plan.specs:
        click.echo(f"shard {plan.shard[0]}/{plan.shard[1]} is empty: there are fewer layers than shards", err=True)


def _write(path: Path, text: str, flag: str = "--output") -> None:
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
def _stdout_guard():
    """A stdout that is full or a closed pipe (`| head -1`) ends the output, never in a traceback."""
    try:
        yield
        sys.stdout.flush()
    except SystemExit:  # rich's answer to a closed pipe (stdout is already /dev/null): the verdict still counts
        pass
    except OSError as exc:
        _drop_stdout()
        if exc.errno != errno.EPIPE:
            click.echo(f"error: cannot write to stdout: {exc.strerror or exc}", err=True)


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so that what is still buffered cannot fail again at exit."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, sys.stdout.fileno() if hasattr(sys.stdout, "fileno") and _has_fd(sys.stdout) else 1)
    os.close(null)


def _has_fd(stream) -> bool:
    try:
        stream.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):
        return False
    return True


def _console() -> Console:
    """stdout's console: the terminal's width, else $COLUMNS, else 120 (a log)."""
    return Console(file=sys.stdout, width=None if sys.stdout.isatty() or _columns() else 120)


def _columns() -> int | None:
    value = os.environ.get("COLUMNS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def _settings() -> Settings:
    try:
        return load_settings()
    except GradcheckError as exc:
        raise Failure(str(exc)) from None


def _load(config: Path, fmt: str) -> Registry:
    """The registry, or exit 2 listing every problem (as annotations too under --format github)."""
    if not config.is_file():
        raise Failure(f"error: {config}: no such file; pass --config PATH, or run `gradcheck init` to start one")
    try:
        return load_registry(config)
    except ConfigError as exc:
        if fmt == "github":
            click.echo("\n".join(_config_annotation(problem) for problem in exc.problems))
        count = len(exc.problems)
        raise Failure(f"{exc}\n{count} problem{'s' * (count != 1)} in {config}: nothing was checked") from None
    except GradcheckError as exc:
        raise Failure(str(exc)) from None


def _config_annotation(problem: str) -> str:
    path, line, message = (problem.split(":", 2) + ["", ""])[:3]
    where = (path, int(line)) if line.isdigit() else None
    return annotation("error", message.strip() if where else problem, "gradcheck: layers.yaml", where)


def _select(registry: Registry, names: list[str]) -> list[LayerSpec]:
    if names == ["all"]:
        return list(registry.layers)
    specs = [registry.get(name) for name in names]
    for name, spec in zip(names, specs):
        if spec is None:
            hint = suggest(name, registry.names()) or " (`gradcheck list` shows the names; `run all` checks every one)"
            raise Failure(f"error: no layer named {name!r} in {registry.path}{hint}")
    return specs


def _open_std_streams() -> None:
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


def main():
    """Entry point of the `gradcheck` console script."""
    _open_std_streams()
    try:
        with _signals_raise():  # SIGTERM while importing layer code also ends that import's process
            cli()
    except (BrokenPipeError, KeyboardInterrupt, Terminated) as exc:  # outside a run: a closed pipe, or a signal
        with contextlib.suppress(OSError):
            _drop_stdout()
        sys.exit(INTERRUPTED.get(type(exc), 1))
