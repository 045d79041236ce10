"""Load and validate layers.yaml into LayerSpecs; every mistake becomes `file:LINE: message`.

Reading the YAML is config_yaml's job, each key's checking registry_keys' table, importing the
code registry_imports'; here the document's top level is read and the parts put together.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradcheck import importing, registry_values
from gradcheck.config_yaml import LineDict, LineList, load_yaml
from gradcheck.registry_keys import read_layer
from gradcheck.registry_values import Problems
from gradcheck.spec import LayerSpec

__all__ = ["LineDict", "LineList", "Registry", "import_file", "load_registry", "read_entry"]

TOP_KEYS = ("defaults", "layers")
DEFAULT_KEYS = ("examples", "rtol", "atol", "eps", "timeout")


@dataclass
class Registry:
    """The layers of one layers.yaml, in file order."""

    path: Path
    layers: list[LayerSpec]
    defaults: dict[str, Any] = field(default_factory=dict)

    def names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def get(self, name: str) -> LayerSpec | None:
        return next((layer for layer in self.layers if layer.name == name), None)


def load_registry(path: str | os.PathLike) -> Registry:
    """Read, validate and import every layer of a layers.yaml, or raise ConfigError."""
    path = Path(path)
    document, duplicates = load_yaml(path)
    problems = Problems(path)
    for line, message in duplicates:
        problems.error(line, message)
    registry = _read_document(problems, document)
    problems.raise_any()
    return registry


def read_entry(raw: LineDict, where: Path, targets: dict[str, Any]) -> tuple[LayerSpec | None, list[str]]:
    """One layer entry on its own, its code given rather than imported (gradcheck.check's keywords):
    the LayerSpec, or None, and the problems found, each as `WHERE:0: message`."""
    problems = Problems(where)
    spec = read_layer(problems, raw, 0, {}, targets)
    return spec, problems.problems


def _read_document(problems: Problems, doc: Any) -> Registry:
    """The registry of the whole document: its defaults, then each layer in order."""
    path = problems.path
    if not isinstance(doc, LineDict):
        problems.error(getattr(doc, "line", 1), "expected a mapping with a 'layers' list at the top level")
        return Registry(path, [])
    registry_values.unknown_keys(problems, doc, TOP_KEYS, "top-level key", templates=True)
    defaults = _read_defaults(problems, doc.get("defaults", LineDict()), doc.line_of("defaults"))
    raw_layers = doc.get("layers")
    if not isinstance(raw_layers, LineList):
        problems.error(doc.line_of("layers"), "missing key 'layers': expected a list of layers")
        return Registry(path, [], defaults)
    if not raw_layers:
        problems.error(doc.line_of("layers"), "'layers' is empty: list at least one layer to check")
    return Registry(path, _read_layers(problems, raw_layers, defaults), defaults)


def _read_layers(problems: Problems, raw_layers: LineList, defaults: dict[str, Any]) -> list[LayerSpec]:
    layers: list[LayerSpec] = []
    seen: dict[str, int] = {}
    for line, entry in zip(raw_layers.item_lines, raw_layers, strict=False):
        problems.layer = entry if isinstance(entry, LineDict) else None  # for keys merged from an anchor
        layer = read_layer(problems, entry, line, defaults)
        problems.layer = None
        if layer is None:
            continue
        if layer.name in seen:
            problems.error(line, f"duplicate layer name {layer.name!r} (first on line {seen[layer.name]})")
        seen[layer.name] = line
        layers.append(layer)
    return layers


def _read_defaults(problems: Problems, raw: Any, line: int) -> dict[str, Any]:
    if not isinstance(raw, LineDict):
        problems.error(line, "'defaults' must be a mapping of examples/rtol/atol/eps/timeout")
        return {}
    registry_values.unknown_keys(problems, raw, DEFAULT_KEYS, "key in defaults")
    return {key: registry_values.number(problems, raw, key) for key in raw if key in DEFAULT_KEYS}


def import_file(path: Path):
    """Import a .py file by path (its folder importable while it imports); cached."""
    path = Path(path).resolve()
    return importing.import_user(path.name, path.parent)
