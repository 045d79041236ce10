"""Where a layer's code lives, so reports can point at the backward to fix."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from gradcheck.spec import LayerSpec


def backward_location(spec: LayerSpec) -> str | None:
    """'/abs/path/file.py:LINE' of the layer's backward (a loss's function), or None if unknown."""
    backwards = {"class": getattr(spec.target, "backward", None), "functions": spec.backward, "loss": spec.function}
    function: Any = backwards.get(spec.style)
    if spec.style == "class" and "backward" not in vars(spec.target):
        function = spec.target  # inherited backward: point at the class that was registered
    try:
        function = inspect.unwrap(function)
        path = inspect.getsourcefile(function)
        _, line = inspect.getsourcelines(function)
    except (TypeError, OSError, ValueError):  # builtins, C extensions, code without a file
        return None
    return f"{Path(path).resolve()}:{max(line, 1)}" if path else None


def backward_locations(specs: list[LayerSpec]) -> dict[str, str]:
    """Layer name -> location of its backward, for every layer where it is known."""
    found = {spec.name: backward_location(spec) for spec in specs}
    return {name: where for name, where in found.items() if where}


def code_files(specs: list[LayerSpec]) -> set[Path]:
    """The resolved paths of the files that define the layers' classes and functions."""
    files = set()
    for spec in specs:
        for code in (spec.target, spec.forward, spec.backward, spec.function):
            try:
                path = inspect.getsourcefile(inspect.unwrap(code)) if code is not None else None
            except (TypeError, OSError, ValueError):
                path = None
            if path:
                files.add(Path(path).resolve())
    return files
