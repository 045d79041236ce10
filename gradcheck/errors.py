"""Errors that stop a run before any layer is checked (exit code 2)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

CLOSE_ENOUGH = 0.6  # difflib's similarity above which a name counts as a likely typo


class GradcheckError(Exception):
    """Base class: a usage or configuration problem, reported without a traceback."""

    exit_code = 2


class ConfigError(GradcheckError):
    """One or more mistakes in a layers.yaml file, each as `path:LINE: message`."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class UnknownLayerError(GradcheckError):
    """A layer name given on the command line that the registry does not have."""


class SettingError(GradcheckError, ValueError):
    """A numeric setting (examples, rtol, atol, eps, timeout) outside what can check anything."""


class UserImportError(GradcheckError):
    """The user's layer code could not be imported (it raised, exited, hung or is missing): one line."""


class SettingsError(GradcheckError):
    """A mistake in [tool.gradcheck] of pyproject.toml."""


class StarterExistsError(GradcheckError):
    """`gradcheck init` would overwrite files."""


def suggest(name: str, choices: Iterable[object]) -> str:
    """A ' (did you mean X?)' suffix when `name` is close to one of `choices`."""
    names = [str(c) for c in choices]
    close = difflib.get_close_matches(str(name), names, n=1, cutoff=CLOSE_ENOUGH)
    if not close:  # ReLU for Relu: compare without case too
        lowered = {c.lower(): c for c in names}
        close = [
            lowered[c] for c in difflib.get_close_matches(str(name).lower(), list(lowered), n=1, cutoff=CLOSE_ENOUGH)
        ]
    return f" (did you mean {close[0]!r}?)" if close else ""
