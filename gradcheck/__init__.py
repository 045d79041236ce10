"""gradcheck: check hand-written numpy backward passes against centred finite differences."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"  # the one place the version is written: pyproject.toml reads it from here

# Public names and the modules that define them: imported on first use, so that `import gradcheck`
# (and the command line's start) does not pay for numpy, hypothesis and the checker up front.
_EXPORTS = {
    "check": "gradcheck.direct",
    "CheckResult": "gradcheck.direct",
    "check_layer": "gradcheck.api",
    "run_config": "gradcheck.api",
    "layer_names": "gradcheck.api",
    "load_registry": "gradcheck.registry",
    "LayerResult": "gradcheck.results",
    "RunResult": "gradcheck.results",
    "Status": "gradcheck.results",
    "TensorResult": "gradcheck.results",
}
__all__ = [
    "check",
    "CheckResult",
    "check_layer",
    "run_config",
    "layer_names",
    "load_registry",
    "LayerResult",
    "RunResult",
    "Status",
    "TensorResult",
]

if TYPE_CHECKING:
    from gradcheck.api import check_layer, layer_names, run_config
    from gradcheck.direct import CheckResult, check
    from gradcheck.registry import load_registry
    from gradcheck.results import LayerResult, RunResult, Status, TensorResult


def __getattr__(name: str) -> object:
    """Import a public name's module on first use, then keep the name here."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gradcheck' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
