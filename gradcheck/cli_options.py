"""What the command line says: the flags of `run` and `check`, each checked as click reads it, and
the plan and outputs they resolve into."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import click

from gradcheck.errors import SettingError
from gradcheck.limits import check_setting
from gradcheck.memory import parse_size
from gradcheck.reporters import REPORTERS
from gradcheck.sharding import parse_shard
from gradcheck.spec import MODES, LayerSpec, Options


class Failure(click.ClickException):
    """A usage or configuration problem: its message on stderr, exit code 2, no traceback."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(self.message, err=True)


def _positive(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and value <= 0:
        raise click.BadParameter(f"must be positive, got {value}")
    return value


def _setting(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A numeric option checked by the same rules as layers.yaml, pyproject.toml and the API."""
    try:
        return check_setting(str(param.name), value)
    except SettingError as exc:
        raise click.BadParameter(str(exc)) from None


def _size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    try:
        return (parse_size(value) or 0) if value is not None else None  # 0: no limit, None: not given
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _shard(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    try:
        return parse_shard(value) if value is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


CONFIG_OPTION = click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The layers.yaml to read "
    "[default: [tool.gradcheck] config in the nearest pyproject.toml, else ./layers.yaml].",
)

# The options that `run` and `check` share, in the order --help lists them.
SHARED_OPTIONS = (
    CONFIG_OPTION,
    click.option(
        "--examples", type=int, callback=_setting, help="Property-based examples per layer (overrides the file)."
    ),
    click.option("--seed", type=int, help="Seed for the examples; the same seed reproduces the same run."),
    click.option(
        "--rtol",
        type=float,
        callback=_setting,
        help="Relative tolerance per element (overrides the file; built-in 1e-5).",
    ),
    click.option(
        "--atol",
        type=float,
        callback=_setting,
        help="Absolute tolerance per element (overrides the file; built-in 1e-7).",
    ),
    click.option(
        "--eps",
        type=float,
        callback=_setting,
        help="Finite-difference step, relative to max(1, |x|) (built-in 1e-6).",
    ),
    click.option(
        "--mode",
        type=click.Choice(MODES),
        help="How gradients are compared: full (every element), fast (random directions, every "
        "element on any doubt) or auto [default: auto, full up to 4096 elements while an "
        "example's full checks fit a budget of forwards].",
    ),
    click.option(
        "--format",
        "fmt",
        type=click.Choice(list(REPORTERS)),
        default="table",
        show_default=True,
        help="Report format: printed, or written to --output while the table prints.",
    ),
    click.option(
        "--output",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write the --format report to this file; the table still prints.",
    ),
    click.option(
        "--jobs", type=int, callback=_positive, help="Check layers in this many worker processes [default: 1]."
    ),
    click.option(
        "--shard",
        callback=_shard,
        metavar="K/N",
        help="Check only shard K of N (1-based), e.g. one job of a CI matrix.",
    ),
    click.option(
        "--timeout",
        type=float,
        callback=_setting,
        help="Seconds per layer before it is stopped and counts as ERROR (default 600).",
    ),
    click.option(
        "--memory-limit",
        callback=_size,
        metavar="SIZE",
        help="Memory each worker may use, e.g. 4G or 'none' (a layer beyond it is ERROR) "
        "[default: 3/4 of the machine's memory shared among the --jobs workers].",
    ),
    click.option("--fail-fast", is_flag=True, help="Stop after the first layer that fails."),
    click.option("--strict", is_flag=True, help="Also fail (exit 1) on warnings and unexpected passes (XPASS)."),
    click.option(
        "--junit",
        "junit",
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="PATH",
        help="Also write a JUnit XML report to PATH (combines with --json, --github and the table).",
    ),
    click.option(
        "--json",
        "json_path",
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="PATH",
        help="Also write the JSON report to PATH.",
    ),
    click.option("--github", is_flag=True, help="Also print GitHub annotations on stdout, before the table."),
    click.option(
        "--save-failures",
        type=click.Path(file_okay=False, path_type=Path),
        metavar="DIR",
        help="Write each layer that did not pass as DIR/NAME.npz (its failing example) and "
        "DIR/NAME.py (a script that replays it).",
    ),
    click.option(
        "-v",
        "--verbose",
        is_flag=True,
        help="Also show every example checked and the traceback of a layer that raised.",
    ),
    click.option("-q", "--quiet", is_flag=True, help="Print only the failures and the summary line."),
    click.option(
        "--pdb",
        is_flag=True,
        help="Drop into the debugger at the exception of each layer that raised (implies --jobs 1).",
    ),
)


def shared_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the options that `run` and `check` share."""
    return functools.reduce(lambda cmd, option: option(cmd), reversed(SHARED_OPTIONS), command)


@dataclass(frozen=True)
class RunFlags:
    """The flags that say what to check and how (None: not given, so settings or defaults decide)."""

    config: Path | None
    examples: int | None
    seed: int | None
    rtol: float | None
    atol: float | None
    eps: float | None
    mode: str | None
    jobs: int | None
    shard: tuple[int, int] | None
    timeout: float | None
    memory_limit: int | None
    fail_fast: bool
    strict: bool


@dataclass(frozen=True)
class Outputs:
    """Where the run's reports go besides the table, and how much the table says."""

    fmt: str = "table"
    output: Path | None = None
    junit: Path | None = None
    json_path: Path | None = None
    github: bool = False
    save_failures: Path | None = None
    verbose: bool = False
    quiet: bool = False
    pdb: bool = False

    def files(self) -> list[tuple[str, str, Path]]:
        """(format, flag, path) of every report written to a file."""
        wanted = [
            (self.fmt, "--output", self.output),
            ("junit", "--junit", self.junit),
            ("json", "--json", self.json_path),
        ]
        return [(fmt, flag, path) for fmt, flag, path in wanted if path is not None]

    def check(self) -> None:
        """Refuse combinations that cannot work, before anything runs."""
        if self.verbose and self.quiet:
            raise Failure("error: --verbose and --quiet contradict each other: give one of them")
        if self.github and self.fmt in ("json", "junit") and not self.output:
            raise Failure(
                f"error: --github and --format {self.fmt} would both print on stdout: "
                f"write the {self.fmt} report with --{self.fmt} PATH (or --output PATH) instead"
            )
        paths = [path.resolve() for _, _, path in self.files()]
        if len(set(paths)) < len(paths):
            raise Failure("error: two reports would be written to the same file: give each its own path")


def read_flags(flags: dict[str, Any]) -> tuple[RunFlags, Outputs]:
    """The shared options' values, split into what to check and where the reports go."""
    output_names = {field.name for field in fields(Outputs)}
    outputs = Outputs(**{name: value for name, value in flags.items() if name in output_names})
    return RunFlags(**{name: value for name, value in flags.items() if name not in output_names}), outputs


@dataclass(frozen=True)
class Plan:
    """What one `run` or `check` will do, resolved from the flags, pyproject.toml and the registry."""

    specs: list[LayerSpec]
    options: Options
    jobs: int
    shard: tuple[int, int] | None
    memory_limit: int | None = None
