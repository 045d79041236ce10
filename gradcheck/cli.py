"""The command line: parse, call the engine, print. Only this module exits."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gradcheck.engine import Options
from gradcheck.errors import GradcheckError, UnknownLayerError
from gradcheck.parallel import run_layers
from gradcheck.registry import Registry, load_registry, suggest
from gradcheck.reporters import REPORTERS
from gradcheck.reporters.table import print_run
from gradcheck.sharding import parse_shard, select_shard
from gradcheck.spec import Tolerances


def _positive(ctx, param, value):
    if value is not None and value <= 0:
        raise click.BadParameter(f"must be positive, got {value}")
    return value


def shared_options(command):
    """Options that `run` and `check` share (SPEC §5)."""
    options = [
        click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path), default="layers.yaml",
                     show_default=True, help="The layers.yaml to read."),
        click.option("--examples", type=int, callback=_positive, help="Property-based examples per layer (overrides the file)."),
        click.option("--seed", type=int, help="Seed for the examples; the same seed reproduces the same run."),
        click.option("--rtol", type=float, help="Relative tolerance per element (default 1e-5)."),
        click.option("--atol", type=float, help="Absolute tolerance per element (default 1e-7)."),
        click.option("--eps", type=float, callback=_positive, help="Finite-difference step, relative to max(1, |x|) (default 1e-6)."),
        click.option("--format", "fmt", type=click.Choice(sorted(REPORTERS)), default="table", show_default=True,
                     help="Output format printed to stdout."),
        click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
                     help="Also write the chosen format to this file (the table still prints)."),
        click.option("--jobs", type=int, default=1, callback=_positive, show_default=True,
                     help="Check layers in this many parallel processes."),
        click.option("--shard", help="Check only shard K of N (K/N, 1-based), for a CI matrix."),
        click.option("--timeout", type=float, callback=_positive, help="Seconds per layer before it counts as ERROR."),
        click.option("--fail-fast", is_flag=True, help="Stop after the first layer that fails."),
        click.option("--strict", is_flag=True, help="Also fail on warnings and unexpected passes."),
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
    _execute(list(names), detail=False, **opts)


@cli.command()
@click.argument("name")
@shared_options
def check(name, **opts):
    """Check one layer in depth: worst element, diagnosis, heat-map, reproduce command."""
    _execute([name], detail=True, **opts)


@cli.command(name="list")
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path), default="layers.yaml", show_default=True,
              help="The layers.yaml to read.")
def list_layers(config):
    """List the registered layers with their style and source."""
    registry = _load(config)
    table = Table(header_style="bold")
    for column in ("layer", "style", "impl", "defined at"):
        table.add_column(column, no_wrap=column == "layer")
    for layer in registry.layers:
        table.add_row(layer.name, layer.style, layer.impl, layer.source)
    console = _console()
    console.print(table)
    console.print(f"{len(registry.layers)} layers in {config}")


def _console(stderr: bool = False) -> Console:
    file = sys.stderr if stderr else sys.stdout
    return Console(file=file, width=None if file.isatty() else 120)


def _load(config: Path) -> Registry:
    try:
        return load_registry(config)
    except GradcheckError as exc:
        _fail_usage(str(exc))


def _fail_usage(message: str):
    click.echo(message, err=True)
    sys.exit(2)


def _select(registry: Registry, names: list[str], shard: str | None):
    if names == ["all"]:
        specs = list(registry.layers)
    else:
        specs = []
        for name in names:
            spec = registry.get(name)
            if spec is None:
                _fail_usage(f"error: no layer named {name!r} in {registry.path}{suggest(name, registry.names())}")
            specs.append(spec)
    if shard:
        try:
            specs = select_shard(specs, *parse_shard(shard))
        except ValueError as exc:
            _fail_usage(f"error: --shard: {exc}")
    return specs


def _execute(names, detail, config, examples, seed, rtol, atol, eps, fmt, output, jobs, shard, timeout, fail_fast, strict):
    registry = _load(config)
    specs = _select(registry, names, shard)
    options = Options(examples=examples, seed=seed, tolerances=Tolerances(rtol=rtol, atol=atol, eps=eps),
                      fail_fast=fail_fast, timeout=timeout, config=None if str(config) == "layers.yaml" else str(config))
    console = _console()
    with _progress(len(specs), enabled=console.is_terminal and fmt == "table") as advance:
        result = run_layers(specs, options, jobs=jobs, progress=advance)
    if fmt == "table":
        print_run(console, result, strict=strict, detail=detail)
    else:
        click.echo(REPORTERS[fmt](result, strict=strict), nl=False)
    if output:
        output.write_text(REPORTERS[fmt](result, strict=strict), encoding="utf-8")
        if fmt != "table":
            print_run(_console(stderr=True), result, strict=strict, detail=detail)
    sys.exit(result.exit_code(strict))


class _progress:
    """A rich progress bar on a terminal (per layer, examples done); nothing otherwise."""

    def __init__(self, layers: int, enabled: bool):
        self.layers, self.enabled = layers, enabled

    def __enter__(self):
        if not self.enabled:
            return None
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            transient=True)
        self.bar.start()
        self.tasks: dict[str, int] = {}
        return self.advance

    def advance(self, name: str, done: int, total: int) -> None:
        if name not in self.tasks:
            self.tasks[name] = self.bar.add_task(name, total=total)
        self.bar.update(self.tasks[name], completed=done, total=total)

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.stop()
        return False


def main():
    """Entry point of the `gradcheck` console script."""
    try:
        cli(standalone_mode=True)
    except UnknownLayerError as exc:
        _fail_usage(f"error: {exc}")
