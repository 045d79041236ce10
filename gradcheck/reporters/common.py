"""What several reporters share: where a layer's report points, and text made safe to print."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from gradcheck.results import LayerResult, RunResult

Locations = Mapping[str, str]  # layer name -> "/abs/path/file.py:LINE" of its backward (or class)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def split_location(text: str | None) -> tuple[str, int] | None:
    """'path:LINE' -> (path, LINE), or None when there is no usable line number."""
    path, _, line = (text or "").rpartition(":")
    return (path, int(line)) if path and line.isdigit() else None


def relative(path: str, base: Path) -> str | None:
    """`path` relative to `base` with forward slashes, or None when it lies outside `base`."""
    try:
        return Path(path).resolve().relative_to(base.resolve()).as_posix()
    except (ValueError, OSError):
        return None


def code_at(layer: LayerResult, locations: Locations | None) -> str | None:
    """'file.py:LINE' of the layer's code, relative to the current folder when inside it."""
    where = split_location((locations or {}).get(layer.name))
    return f"{relative(where[0], Path.cwd()) or where[0]}:{where[1]}" if where else None


def anchor(layer: LayerResult, locations: Locations | None, base: Path | None = None) -> tuple[str, int] | None:
    """Where to point for a layer: its code when that file is inside `base`, else its layers.yaml entry."""
    base = base or Path.cwd()
    code = split_location((locations or {}).get(layer.name))
    if code and (path := relative(code[0], base)):
        return path, code[1]
    entry = split_location(layer.source)
    if entry:
        return relative(entry[0], base) or entry[0], entry[1]
    return None


def workspace() -> Path:
    """The folder CI paths are relative to: $GITHUB_WORKSPACE on GitHub Actions, else the current one."""
    return Path(os.environ.get("GITHUB_WORKSPACE") or Path.cwd())


def xml_text(text: str) -> str:
    """Text with the characters XML 1.0 cannot hold replaced, so a layer's odd message cannot break the report."""
    return _NOT_XML.sub("\ufffd", text)


def printable(text: str) -> str:
    """Text with control characters (a terminal escape, NUL) and lone surrogates written as escapes,
    so a layer's name or message can neither drive the terminal nor fail to encode."""
    return _UNPRINTABLE.sub(lambda match: ascii(match.group())[1:-1], text)


def printable_run(run: RunResult) -> RunResult:
    """The run with every text the user's code or files supplied made printable."""

    def layer(result: LayerResult) -> LayerResult:
        tensors = tuple(
            replace(t, name=printable(t.name), message=printable(t.message), diagnosis=printable(t.diagnosis))
            for t in result.tensors
        )
        return replace(
            result,
            tensors=tensors,
            warnings=tuple(map(printable, result.warnings)),
            xfail=printable(result.xfail) if result.xfail else result.xfail,
            name=printable(result.name),
            message=printable(result.message),
            repro=printable(result.repro),
            source=printable(result.source),
            impl=printable(result.impl),
            style=printable(result.style),
        )

    return replace(run, layers=tuple(layer(result) for result in run.layers))
