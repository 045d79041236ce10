"""Project defaults from `[tool.gradcheck]` in the nearest pyproject.toml, and how they fill in a registry."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gradcheck.errors import SettingsError, suggest
from gradcheck.limits import RULES, check_setting, setting_problem, shown
from gradcheck.spec import DEFAULT_LAYER_TIMEOUT, MODES, LayerSpec, Tolerances

PYPROJECT = Path("pyproject.toml")


@dataclass(frozen=True)
class Settings:
    """[tool.gradcheck]; None means 'not set there'.

    `config`, `seed`, `jobs` and `mode` are defaults for the command-line flags. `examples`,
    `rtol`, `atol`, `eps` and `timeout` rank below layers.yaml (a layer's own value, then its
    `defaults:`) and above the built-in defaults.
    """

    config: str | None = None
    examples: int | None = None
    seed: int | None = None
    rtol: float | None = None
    atol: float | None = None
    eps: float | None = None
    timeout: float | None = None
    jobs: int | None = None
    mode: str | None = None
    memory_limit: str | int | None = None  # per worker: "4G", bytes, or "none"
    source: str | None = None  # the pyproject.toml these came from (not a key of the table)


_KINDS = {
    "config": "path",
    "examples": "limits",
    "seed": "integer",
    "rtol": "limits",
    "atol": "limits",
    "eps": "limits",
    "timeout": "limits",
    "jobs": "count",
    "mode": "mode",
    "memory_limit": "size",
}


def find_pyproject(start: Path | None = None) -> Path | None:
    """The pyproject.toml with a [tool.gradcheck] table nearest above `start` (the current folder), as
    pytest's rootdir and ruff find theirs: the search stops at the repository root (a folder holding
    .git) or the filesystem root. A pyproject.toml without the table is passed over."""
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        path = candidate / PYPROJECT
        if path.is_file() and _declares_gradcheck(path):
            return path.relative_to(Path.cwd().resolve()) if candidate == Path.cwd().resolve() else path
        if (candidate / ".git").exists():
            return None
    return None


def _declares_gradcheck(path: Path) -> bool:
    """Whether the file has a [tool.gradcheck] table (a broken file counts: load_settings reports it)."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError):
        return True
    tool = document.get("tool", {})
    return not isinstance(tool, dict) or "gradcheck" in tool  # `tool = 5` counts: load_settings reports it


def load_settings(path: Path | None = None) -> Settings:
    """The [tool.gradcheck] table of `path` (else the one find_pyproject finds); empty Settings if the
    file or the table is absent. A relative `config` in it is relative to that pyproject.toml."""
    path = find_pyproject() if path is None else path
    if path is None or not path.is_file():
        return Settings()
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    tool = document.get("tool", {})
    if not isinstance(tool, dict):
        raise SettingsError(f"{path}: [tool] must be a table, got {shown(tool)}")
    table = tool.get("gradcheck", {})
    if not isinstance(table, dict):
        raise SettingsError(f"{path}: [tool.gradcheck] must be a table, got {shown(table)}")
    problems = [f"{path}: [tool.gradcheck] {p}" for key, value in table.items() if (p := _problem(key, value))]
    if problems:
        raise SettingsError("\n".join(problems))
    settings = Settings(**{key: check_setting(key, value) if key in RULES else value for key, value in table.items()})
    if settings.config is not None:
        settings = replace(settings, config=str(_beside(path, settings.config)))
    return replace(settings, source=str(path))


def _beside(pyproject: Path, config: str) -> Path:
    """`config` relative to the pyproject.toml's folder, shown relative to the current folder where it is
    below it."""
    target = Path(config) if Path(config).is_absolute() else pyproject.parent / config
    try:
        return target.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return target.resolve()


def _problem(key: str, value: Any) -> str | None:
    """What is wrong with one entry, or None."""
    kind = _KINDS.get(key)
    if kind is None:
        return f"unknown key {shown(key)}{suggest(key, _KINDS)}: expected one of {', '.join(_KINDS)}"
    if kind == "limits":
        return setting_problem(key, value)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    wanted = {
        "path": (
            "a path to a layers.yaml",
            isinstance(value, str) and value.strip() != "" and all(c >= " " for c in value),
        ),
        "count": ("a whole number >= 1", number and isinstance(value, int) and value >= 1),
        "integer": ("a whole number", number and isinstance(value, int)),
        "mode": (f"one of {', '.join(MODES)}", value in MODES),
        "size": (
            'a size such as "4G", a number of bytes, or "none"',
            isinstance(value, (str, int)) and not isinstance(value, bool),
        ),
    }[kind]
    return None if wanted[1] else f"{key} must be {wanted[0]}, got {shown(value)}"


def with_settings(spec: LayerSpec, settings: Settings) -> LayerSpec:
    """`spec` with the project defaults filling whatever layers.yaml left unset."""
    project = Tolerances(rtol=settings.rtol, atol=settings.atol, eps=settings.eps)
    return replace(
        spec,
        tolerances=project.merged(spec.tolerances),
        examples=spec.examples if spec.examples is not None else settings.examples,
        timeout=next(t for t in (spec.timeout, settings.timeout, DEFAULT_LAYER_TIMEOUT) if t is not None),
    )
