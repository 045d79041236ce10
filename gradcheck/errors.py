"""Errors that stop a run before any layer is checked (exit code 2)."""

from __future__ import annotations


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
