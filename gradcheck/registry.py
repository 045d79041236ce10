"""Load and validate layers.yaml into LayerSpecs; every mistake becomes `file:LINE: message`.

Reading the YAML is config_yaml's job, each key's checking registry_keys' table, importing the
code registry_imports'; here are the recipes: the document's top level, then each layer's.
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradcheck import importing, registry_styles, registry_values
from gradcheck.config_yaml import LineDict, LineList, is_control, load_yaml
from gradcheck.errors import suggest
from gradcheck.limits import shown
from gradcheck.registry_imports import import_targets
from gradcheck.registry_keys import KEYS, LAYER_KEYS, Entry, allowed_keys
from gradcheck.registry_values import Problems
from gradcheck.spec import STYLES, LayerSpec, Tolerances

__all__ = ["LineDict", "LineList", "Registry", "import_file", "load_registry", "read_entry"]

TOP_KEYS = ("defaults", "layers")
MAX_NAME = 200  # characters in a layer name: it heads a table row and names a test case
INVISIBLE = ("Cf", "Zl", "Zp")  # format characters and line/paragraph separators, which no name needs
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


def read_layer(problems: Problems, raw: Any, line: int, defaults: dict, targets: dict | None = None):
    """The LayerSpec of one entry of `layers`, or None after reporting its problems.

    `targets` gives the layer's code instead of importing what `impl` names (gradcheck.check)."""
    if not isinstance(raw, LineDict):
        problems.error(line, "each entry of 'layers' must be a mapping with name, impl, style, inputs, dims")
        return None
    before = len(problems.problems)
    entry = Entry(problems, raw, raw.get("style", "class"), defaults)
    name = _name(entry, line)
    style = entry.style
    if style not in STYLES:
        problems.error(
            raw.line_of("style"),
            f"unknown style {style!r}{suggest(style, STYLES)}: expected one of {', '.join(STYLES)}",
        )
        return None
    _check_keys_known(entry)
    _check_keys_present(entry, name)
    for key in LAYER_KEYS:
        entry.values[key.name] = key.read(entry)
    options = registry_styles.read_options(entry)
    if len(problems.problems) > before:
        return None
    found = import_targets(problems, raw, style) if targets is None else targets
    return None if found is None else _layer_spec(entry, name, options, found)


def _name(entry: Entry, line: int) -> str:
    """The layer's name; a stand-in naming its line after reporting a problem with it."""
    raw = entry.raw
    name = raw.get("name")
    if "name" not in raw:
        entry.problems.error(raw.line, "missing key 'name' (a string naming the layer)")
    elif not isinstance(name, str) or not name.strip():
        entry.must("name", got=shown(name))
    elif len(name) > MAX_NAME:
        entry.error("name", f"'name' has {len(name)} characters, at most {MAX_NAME}")
    elif any(is_control(c) or unicodedata.category(c) in INVISIBLE for c in name):
        entry.error("name", f"'name' {name!r} contains a control or invisible character")
    else:
        return name
    return f"<layer on line {line}>"


def _check_keys_known(entry: Entry) -> None:
    allowed = allowed_keys(entry.style)
    for key in entry.raw:
        if key not in allowed:
            other = [s for s in STYLES if key in allowed_keys(s)]
            hint = f" (it belongs to style {other[0]!r})" if other else suggest(key, allowed)
            entry.error(key, f"unknown key {key!r} for a layer of style {entry.style!r}{hint}")


def _check_keys_present(entry: Entry, name: str) -> None:
    for key in KEYS:
        if entry.style in key.required_in and key.name not in entry.raw:
            entry.problems.error(entry.raw.line, f"layer {name!r}: missing key {key.name!r}")


def _layer_spec(entry: Entry, name: str, options: dict[str, Any], targets: dict[str, Any]) -> LayerSpec:
    values, raw = entry.values, entry.raw
    return LayerSpec(
        name=name,
        style=entry.style,
        impl=str(raw["impl"]),
        inputs=values["inputs"],
        params=values["params"],
        dims=values["dims"],
        init=values["init"],
        args=values["args"],
        params_at=values["params_at"],
        grads=values["grads"],
        where=values["where"],
        batch=values["batch"],
        batch_independent=values["batch_independent"],
        examples=values["examples"],
        tolerances=Tolerances(rtol=values["rtol"], atol=values["atol"], eps=values["eps"]),
        xfail=values["xfail"],
        timeout=values["timeout"],
        source=f"{entry.problems.path}:{raw.line}",
        discover=values["discover"] is not False,
        options=options,
        **targets,
    )


def import_file(path: Path):
    """Import a .py file by path (its folder importable while it imports); cached."""
    path = Path(path).resolve()
    return importing.import_user(path.name, path.parent)
