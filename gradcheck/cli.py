"""The command line: parse, call the engine, print. Only this module exits."""

from __future__ import annotations

import os

# One BLAS thread for the layers' arithmetic, here and in the workers, unless the user chose: numpy
# reads these once, when first imported, which must come after (the package imports it lazily).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import contextlib
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from gradcheck import importing
from gradcheck.cli_options import CONFIG_OPTION, Failure, Outputs, Plan, RunFlags, read_flags, shared_options
from gradcheck.cli_output import after_run, console, drop_stdout, open_std_streams, report_run, stdout_guard
from gradcheck.errors import ConfigError, GradcheckError, suggest
from gradcheck.memory import default_limit, keep_freed_memory, parse_size
from gradcheck.parallel import Terminated, max_jobs, run_layers
from gradcheck.registry import Registry, load_registry
from gradcheck.reporters.common import printable
from gradcheck.reporters.github import annotation
from gradcheck.reporters.progress import ProgressDisplay
from gradcheck.results import LayerResult, RunResult
from gradcheck.settings import Settings, load_settings, with_settings
from gradcheck.sharding import select_shard
from gradcheck.sources import code_files
from gradcheck.spec import LayerSpec, Options, Tolerances
from gradcheck.starter import write_starter

DEFAULT_CONFIG = Path("layers.yaml")
INTERRUPTED = {KeyboardInterrupt: 130, Terminated: 143}  # 128 + SIGINT, 128 + SIGTERM


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gradcheck")
def cli() -> None:
    """Check hand-written numpy backward passes against centred finite differences."""


@cli.command()
@click.argument("names", nargs=-1, required=True)
@shared_options
def run(names: tuple[str, ...], **flags: Any) -> None:
    """Check every layer (`run all`) or the named ones, one table."""
    _execute(list(dict.fromkeys(names)), detail=False, **flags)


@cli.command()
@click.argument("name")
@shared_options
def check(name: str, **flags: Any) -> None:
    """Check one layer in depth: worst element, diagnosis, heat-map, reproduce command."""
    _execute([name], detail=True, **flags)


@cli.command(name="list")
@CONFIG_OPTION
def list_layers(config: Path | None) -> None:
    """List the registered layers with their style and source."""
    settings = _settings()
    registry = _load(config or Path(settings.config or DEFAULT_CONFIG), fmt="table")
    table = Table(header_style="bold")
    for column in ("layer", "style", "impl", "defined at"):
        table.add_column(column, no_wrap=column == "layer")
    for layer in registry.layers:
        table.add_row(*(Text(printable(text)) for text in (layer.name, layer.style, layer.impl, layer.source)))
    with stdout_guard():
        stdout = console()
        stdout.print(table)
        stdout.print(f"{len(registry.layers)} layers in {escape(printable(str(registry.path)))}")


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--force", is_flag=True, help="Overwrite layers.yaml and mylayers.py if they exist.")
@click.option(
    "--style",
    "starter",
    type=click.Choice(["layers", "model"]),
    default="layers",
    show_default=True,
    help="Start from layers (mylayers.py) or from a whole model (mymodel.py).",
)
def init(directory: Path, force: bool, starter: str) -> None:
    """Write a commented starter layers.yaml and a passing mylayers.py into DIRECTORY (default: here)."""
    try:
        written = write_starter(directory, force=force, style=starter)
    except GradcheckError as exc:
        raise Failure(str(exc)) from None
    for path in written:
        click.echo(f"wrote {path}")
    where = "" if directory == Path(".") else f"cd {directory} && "
    click.echo(f"next: {where}gradcheck run all   (then add your own layers to layers.yaml)")


def _execute(names: list[str], detail: bool, **values: Any) -> NoReturn:
    """`run` and `check`: plan, run, report every way asked, and exit with the verdict."""
    flags, outputs = read_flags(values)
    outputs.check()
    keep_freed_memory()  # large layers: no page faults for memory a forward frees and the next takes again
    plan, registry = _plan(names, flags, outputs)
    result, interrupted = _run(plan, flags.strict)
    if interrupted:
        _stop_signals()  # a second Ctrl-C must not cut the partial report short
    report_run(result, plan, outputs, flags.strict, detail)
    if interrupted:
        click.echo(f"interrupted: {len(result.layers)} of {len(plan.specs)} layer(s) checked", err=True)
        sys.exit(INTERRUPTED[interrupted])
    after_run(result, plan, outputs, registry)
    sys.exit(result.exit_code(flags.strict))


def _plan(names: list[str], flags: RunFlags, outputs: Outputs) -> tuple[Plan, Registry]:
    """The layers to check and how: the flags over [tool.gradcheck] over the built-in defaults."""
    settings = _settings()
    jobs = 1 if outputs.pdb else _jobs(flags.jobs or settings.jobs or 1)
    memory = _memory_limit(flags.memory_limit, settings, jobs)
    importing.set_limits(flags.timeout or settings.timeout, memory)
    registry = _load(
        flags.config or Path(settings.config or DEFAULT_CONFIG), "github" if outputs.github else outputs.fmt
    )
    specs = [with_settings(spec, settings) for spec in _select(registry, names)]
    for _, flag, path in outputs.files():
        _refuse_to_overwrite(path, registry, specs, settings, flag)
    options = _options(flags, settings, registry)
    selected = select_shard(specs, *flags.shard) if flags.shard else specs
    return Plan(selected, options, jobs, flags.shard, memory), registry


def _options(flags: RunFlags, settings: Settings, registry: Registry) -> Options:
    """The checker's options, with the seed fixed now so that a partial report shows it too."""
    repro_config = None if registry.path == Path(settings.config or DEFAULT_CONFIG) else str(registry.path)
    options = Options(
        examples=flags.examples,
        seed=flags.seed if flags.seed is not None else settings.seed,
        tolerances=Tolerances(rtol=flags.rtol, atol=flags.atol, eps=flags.eps),
        fail_fast=flags.fail_fast,
        timeout=flags.timeout,
        config=repro_config,
        mode=flags.mode or settings.mode or Options().mode,
    )
    return replace(options, seed=options.resolved_seed())


def _jobs(jobs: int) -> int:
    """--jobs, capped at what the machine can use (saying so)."""
    if jobs > max_jobs():
        click.echo(
            f"--jobs {jobs} is more than this machine can use: running {max_jobs()} at a time "
            f"(twice its {os.cpu_count() or 1} CPU(s), at least 8)",
            err=True,
        )
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


def _refuse_to_overwrite(
    output: Path | None, registry: Registry, specs: list[LayerSpec], settings: Settings, flag: str = "--output"
) -> None:
    """Exit 2 before running when a report file (--output, --junit, --json) names the config or a file
    of the layers' code."""
    if output is None:
        return
    target = output.resolve()
    config = registry.path.resolve()
    precious = [config, *code_files(registry.layers), Path(settings.source or "pyproject.toml").resolve()]
    if target in precious:
        what = "the config" if target == config else "a source file"
        raise Failure(
            f"error: {flag} {printable(str(output))} is {what} "
            "of this run: it would be overwritten; name another file for the report"
        )


def _run(plan: Plan, strict: bool) -> tuple[RunResult, type[BaseException] | None]:
    """Run the plan, with a progress display when stderr is a terminal; on Ctrl-C or SIGTERM, the layers
    finished so far and which of the two it was."""
    finished: list[LayerResult] = []
    started = time.perf_counter()
    xfail = [spec.name for spec in plan.specs if spec.xfail]
    display = ProgressDisplay(Console(stderr=True), len(plan.specs), xfail) if sys.stderr.isatty() else None

    def on_result(result: LayerResult) -> None:
        finished.append(result)
        if display:
            display.finished(result)

    try:
        with _signals_raise(), display or contextlib.nullcontext():
            result = run_layers(
                plan.specs,
                plan.options,
                jobs=plan.jobs,
                strict=strict,
                progress=display.example if display else None,
                on_result=on_result,
                memory_limit=plan.memory_limit,
            )
        return result, None
    except (KeyboardInterrupt, Terminated) as exc:
        order = {spec.name: i for i, spec in enumerate(plan.specs)}
        layers = tuple(sorted(finished, key=lambda layer: order.get(layer.name, 0)))
        return RunResult(layers, time.perf_counter() - started, plan.options.seed), type(exc)


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """SIGTERM raises Terminated meanwhile (Ctrl-C raises KeyboardInterrupt), so workers get ended."""

    def terminate(signum: int, frame: object) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_signals() -> None:
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)


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
    specs = []
    for name in names:
        spec = registry.get(name)
        if spec is None:
            hint = suggest(name, registry.names()) or " (`gradcheck list` shows the names; `run all` checks every one)"
            raise Failure(f"error: no layer named {name!r} in {registry.path}{hint}")
        specs.append(spec)
    return specs


def main() -> None:
    """Entry point of the `gradcheck` console script."""
    open_std_streams()
    try:
        with _signals_raise():  # SIGTERM while importing layer code also ends that import's process
            cli()
    except (BrokenPipeError, KeyboardInterrupt, Terminated) as exc:  # outside a run: a closed pipe, or a signal
        with contextlib.suppress(OSError):
            drop_stdout()
        sys.exit(INTERRUPTED.get(type(exc), 1))
