"""Load and validate layers.yaml into LayerSpecs; every mistake becomes `file:LINE: message`."""

from __future__ import annotations

import inspect
import math
import os
import unicodedata
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gradcheck import importing, registry_styles
from gradcheck.errors import ConfigError, UserImportError, suggest
from gradcheck.expr import Expression, ExpressionError, parse
from gradcheck.expr import bounds as value_bounds
from gradcheck.limits import setting_problem, shown
from gradcheck.spec import STYLES, LayerSpec, Location, Ref, TensorSpec, Tolerances

TOP_KEYS = ("defaults", "layers")
TEMPLATE_PREFIX = "x-"  # top-level keys left for YAML anchors that layers merge with `<<: *name`
DEFAULT_KEYS = ("examples", "rtol", "atol", "eps", "timeout")
COMMON_KEYS = (
    "name", "impl", "style", "inputs", "dims", "where", "args", "batch", "batch_independent",
    "examples", "rtol", "atol", "eps", "xfail", "timeout", "description",
    "onehot", "pack",  # see registry_styles
)
STYLE_KEYS = {
    "class": ("init", "params", "params_at", "grads", "discover", "forward", "backward", "grad_outputs", "setup",
              "factory"),  # registry_styles
    "functions": ("forward", "backward", "params", "grad_outputs"),
    "loss": ("function",),
    **registry_styles.STYLE_KEYS,
}
TENSOR_KEYS = ("shape", "integers", "values", "range")
MAX_NAME = 200  # characters in a layer name: it heads a table row and names a test case


class LineDict(dict):
    """A YAML mapping that remembers the line of itself and of each key."""

    line: int = 0
    end_line: int = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.key_lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list):
    """A YAML sequence that remembers the line of itself and of each item."""

    line: int = 0
    item_lines: list[int]


# Bounds on what a layers.yaml may expand to: a real one is a few hundred nodes a few levels deep.
MAX_NESTING = 50  # levels of brackets or indentation, as written
MAX_NODES = 100_000  # nodes once every alias is expanded (a "billion laughs" file expands to 10**9)
MAX_EXPANDED_DEPTH = 200  # levels once every alias is expanded
MAX_DIGITS = 100  # of an integer: Python refuses to read one of over 4300 at all


class _Loader(yaml.SafeLoader):
    """SafeLoader that records line numbers, rejects duplicate keys and bounds nesting and aliases.

    The composer builds each node once, children first, so the size and depth each node would have
    with its aliases expanded are counted as it goes, without ever expanding anything.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self.duplicates: list[tuple[int, str]] = []
        self.nesting = 0
        self.measures: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded nodes, expanded depth)

    def compose_node(self, parent, index):
        if self.nesting >= MAX_NESTING:
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {MAX_NESTING} levels", self.peek_event().start_mark)
        self.nesting += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self.nesting -= 1
        self.measure(node)
        return node

    def measure(self, node: yaml.Node) -> None:
        if id(node) in self.measures:
            return
        children = node.value if isinstance(node, yaml.SequenceNode) else []
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        if any(id(child) not in self.measures for child in children):
            raise yaml.composer.ComposerError(
                None, None, "an alias refers to the node that contains it (a cycle)", node.start_mark)
        sizes = [self.measures[id(child)] for child in children]
        size = 1 + sum(n for n, _ in sizes)
        depth = 1 + max((d for _, d in sizes), default=0)
        if size > MAX_NODES or depth > MAX_EXPANDED_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"over {MAX_NODES} values or {MAX_EXPANDED_DEPTH} levels once aliases are expanded "
                "(an alias repeats too much)", node.start_mark)
        self.measures[id(node)] = (size, depth)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    explicit = sum(1 for key_node, _ in node.value if key_node.tag != "tag:yaml.org,2002:merge")
    loader.flatten_mapping(node)
    merged = len(node.value) - explicit  # `<<: *base` pairs come first; the mapping's own keys override them
    mapping, own = LineDict(), set()
    mapping.line, mapping.end_line = node.start_mark.line + 1, node.end_mark.line + 1
    for position, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, Hashable):
            loader.duplicates.append((line, f"a key must be a plain value such as a name, got {shown(key)}"))
            continue
        if key in own:
            loader.duplicates.append((line, f"duplicate key {shown(key)} (first on line {mapping.key_lines[key]})"))
        if position >= merged:
            own.add(key)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = line
    return mapping


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    items = LineList(loader.construct_object(child, deep=True) for child in node.value)
    items.line = node.start_mark.line + 1
    items.item_lines = [child.start_mark.line + 1 for child in node.value]
    return items


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    if len(node.value) > MAX_DIGITS:
        raise yaml.constructor.ConstructorError(
            None, None, f"an integer of {len(node.value)} digits (at most {MAX_DIGITS})", node.start_mark)
    return loader.construct_yaml_int(node)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
_Loader.add_constructor("!tuple", registry_styles.construct_tuple)  # pool_shape: !tuple [2, 2]
_Loader.add_constructor("!layer", registry_styles.construct_layer)  # wrapped_layer: !layer {impl: ...}


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
    if not path.is_file():
        raise ConfigError([f"{path}: no such file (pass --config PATH to name a layers.yaml)"])
    document, duplicates = _parse_yaml(path, _read_text(path))
    reader = _Reader(path)
    for line, message in duplicates:
        reader.error(line, message)
    registry = reader.read_document(document)
    if reader.problems:
        raise ConfigError(reader.problems)
    return registry


def _read_text(path: Path) -> str:
    """The file as text: UTF-8, without control characters other than tab and line breaks."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problem = f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}): save the file as UTF-8"
        raise ConfigError([problem]) from None
    text = text.removeprefix("\ufeff")  # a byte-order mark some editors write
    for line_number, line in enumerate(text.split("\n"), start=1):
        bad = next((c for c in line if _is_control(c) and c not in "\t\r"), None)
        if bad is not None:
            raise ConfigError([f"{path}:{line_number}: control character U+{ord(bad):04X} is not allowed "
                               "(only tab and line breaks are)"])
    deep = _deep_line(text)
    if deep is not None:
        raise ConfigError([f"{path}:{deep}: invalid YAML: nested deeper than {MAX_NESTING} levels"])
    return text


def _deep_line(text: str) -> int | None:
    """The first line where brackets outside quotes nest deeper than MAX_NESTING, or None.

    Checked before parsing because PyYAML's scanner slows down quadratically on deep flow nesting
    (5000 brackets take seconds before the composer ever sees a node).
    """
    depth, quote, line, previous = 0, "", 1, " "
    for char in text:
        if char == "\n":
            line += 1
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"" and previous in " \t\n[{,:":
            quote = char
        elif char in "[{":
            depth += 1
            if depth > MAX_NESTING:
                return line
        elif char in "]}":
            depth = max(depth - 1, 0)
        previous = char
    return None


def _is_control(char: str) -> bool:
    """Control, surrogate and private characters, which no name or value in a layers.yaml needs."""
    return unicodedata.category(char) in ("Cc", "Cs", "Co")


def _parse_yaml(path: Path, text: str) -> tuple[Any, list[tuple[int, str]]]:
    """The YAML document and its duplicate-key problems, or ConfigError with the line at fault."""
    loader = _Loader(text)
    try:
        return loader.get_single_data(), loader.duplicates
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ConfigError([f"{path}:{line}: invalid YAML: {exc.problem or exc.context}"]) from None
    except (yaml.YAMLError, ValueError, RecursionError) as exc:  # e.g. an integer of over 4300 digits
        raise ConfigError([f"{path}: invalid YAML: {shown(str(exc))}"]) from None
    finally:
        loader.dispose()


class _Reader:
    """Walks the parsed document, collecting problems rather than stopping at the first."""

    def __init__(self, path: Path):
        self.path = path
        self.base = path.resolve().parent
        self.problems: list[str] = []
        self.layer: LineDict | None = None  # the layer being read

    def error(self, line: int, message: str) -> None:
        layer = self.layer
        if layer is not None and not layer.line <= line <= layer.end_line:  # written in a `<<: *anchor`
            message += f" (merged into the layer on line {layer.line})"
        self.problems.append(f"{self.path}:{line}: {message}")

    # -- document ---------------------------------------------------------------------------
    def read_document(self, doc: Any) -> Registry:
        if not isinstance(doc, LineDict):
            self.error(getattr(doc, "line", 1), "expected a mapping with a 'layers' list at the top level")
            return Registry(self.path, [])
        self.unknown_keys(doc, TOP_KEYS, "top-level key", templates=True)
        defaults = self.read_defaults(doc.get("defaults", LineDict()), doc.line_of("defaults"))
        raw_layers = doc.get("layers")
        if not isinstance(raw_layers, LineList):
            self.error(doc.line_of("layers"), "missing key 'layers': expected a list of layers")
            return Registry(self.path, [], defaults)
        if not raw_layers:
            self.error(doc.line_of("layers"), "'layers' is empty: list at least one layer to check")
        layers, seen = [], {}
        for line, entry in zip(raw_layers.item_lines, raw_layers):
            self.layer = entry if isinstance(entry, LineDict) else None
            layer = self.read_layer(entry, line, defaults)
            self.layer = None
            if layer is None:
                continue
            if layer.name in seen:
                self.error(line, f"duplicate layer name {layer.name!r} (first on line {seen[layer.name]})")
            seen[layer.name] = line
            layers.append(layer)
        return Registry(self.path, layers, defaults)

    def read_defaults(self, raw: Any, line: int) -> dict[str, Any]:
        if not isinstance(raw, LineDict):
            self.error(line, "'defaults' must be a mapping of examples/rtol/atol/eps/timeout")
            return {}
        self.unknown_keys(raw, DEFAULT_KEYS, "key in defaults")
        out = {}
        for key in raw:
            if key in DEFAULT_KEYS:
                out[key] = self.number(raw, key, integer=(key == "examples"))
        return out

    def unknown_keys(self, raw: LineDict, allowed, what: str, templates: bool = False) -> None:
        for key in raw:
            if key not in allowed and not (templates and str(key).startswith(TEMPLATE_PREFIX)):
                self.error(raw.line_of(key), f"unknown {what} {key!r}{suggest(key, allowed)}")

    def number(self, raw: LineDict, key: str, integer: bool = False) -> float | int | None:
        """raw[key] checked by the rules every entry point shares (`integer` is implied by the rule)."""
        value = raw[key]
        if isinstance(value, str):  # YAML reads 1e-5 (no dot) as a string
            value = _as_number(value)
        problem = setting_problem(key, value)
        if problem:
            self.error(raw.line_of(key), problem)
            return None
        return int(value) if key == "examples" else float(value)

    # -- one layer --------------------------------------------------------------------------
    def read_layer(self, raw: Any, line: int, defaults: dict) -> LayerSpec | None:
        if not isinstance(raw, LineDict):
            self.error(line, "each entry of 'layers' must be a mapping with name, impl, style, inputs, dims")
            return None
        before = len(self.problems)
        name = self.read_name(raw, line)
        style = raw.get("style", "class")
        if style not in STYLES:
            self.error(raw.line_of("style"), f"unknown style {style!r}{suggest(style, STYLES)}: expected one of {', '.join(STYLES)}")
            return None
        allowed = COMMON_KEYS + STYLE_KEYS[style]
        for key in raw:
            if key not in allowed:
                other = [s for s in STYLES if key in STYLE_KEYS[s]]
                hint = f" (it belongs to style {other[0]!r})" if other else suggest(key, allowed)
                self.error(raw.line_of(key), f"unknown key {key!r} for a layer of style {style!r}{hint}")
        for key in ("impl", "inputs") + {"functions": ("forward", "backward")}.get(style, ()):
            if key not in raw:
                self.error(raw.line, f"layer {name!r}: missing key {key!r}")
        dims = self.read_dims(raw)
        inputs = self.read_tensors(raw, "inputs", dims, allow_data=True)
        params = self.read_tensors(raw, "params", dims, allow_data=False)
        self.check_name_clashes(raw, dims, inputs, params)
        self.check_differentiable(raw, style, inputs, params)
        where = self.read_where(raw, dims)
        arrays = {str(name) for key in ("inputs", "params") if isinstance(raw.get(key), dict) for name in raw[key]}
        init = self.read_refs(raw, "init", set(dims) | arrays)
        args = self.read_refs(raw, "args", set(dims) | arrays)
        params_at = self.read_location(raw, "params_at", "attr:{name}", ("attr", "dict", "list"))
        grads = self.read_location(raw, "grads", "attr:d{name}", ("attr", "dict", "list", "update", "optimizer"))
        batch = raw.get("batch")
        if batch is not None and batch not in dims:
            self.error(raw.line_of("batch"), f"batch {batch!r} is not a dim{suggest(batch, dims)}")
        tolerances = Tolerances(
            **{k: self.number(raw, k) if k in raw else defaults.get(k) for k in ("rtol", "atol", "eps")}
        )
        examples = self.number(raw, "examples", integer=True) if "examples" in raw else defaults.get("examples")
        timeout = self.number(raw, "timeout") if "timeout" in raw else defaults.get("timeout")
        xfail = raw.get("xfail")
        if xfail is not None and not isinstance(xfail, (str, bool)):
            self.error(raw.line_of("xfail"), "'xfail' must be a string giving the reason")
        batch_independent = raw.get("batch_independent")
        if batch_independent is not None and not isinstance(batch_independent, bool):
            self.error(raw.line_of("batch_independent"), "'batch_independent' must be true or false")
        discover = raw.get("discover", True)
        if not isinstance(discover, bool):
            self.error(raw.line_of("discover"), "'discover' must be true or false")
        options = registry_styles.read_options(self, raw, style, inputs, params)
        if len(self.problems) > before:
            return None
        targets = self.import_targets(raw, style)
        if targets is None:
            return None
        return LayerSpec(
            name=name, style=style, impl=str(raw["impl"]), inputs=inputs, params=params, dims=dims,
            init=init, args=args, params_at=params_at, grads=grads, where=where, batch=batch,
            batch_independent=batch_independent, examples=examples, tolerances=tolerances,
            xfail=("expected failure" if xfail is True else xfail) or None, timeout=timeout,
            source=f"{self.path}:{raw.line}", discover=discover is not False, options=options, **targets,
        )

    def read_name(self, raw: LineDict, line: int) -> str:
        name = raw.get("name")
        if "name" not in raw:
            self.error(raw.line, "missing key 'name' (a string naming the layer)")
        elif not isinstance(name, str) or not name.strip():
            self.error(raw.line_of("name"), f"'name' must be a non-empty string, got {shown(name)}")
        elif len(name) > MAX_NAME:
            self.error(raw.line_of("name"), f"'name' has {len(name)} characters, at most {MAX_NAME}")
        elif any(_is_control(c) or unicodedata.category(c) in ("Cf", "Zl", "Zp") for c in name):
            self.error(raw.line_of("name"), f"'name' {name!r} contains a control or invisible character")
        else:
            return name
        return f"<layer on line {line}>"

    def read_dims(self, raw: LineDict) -> dict[str, tuple[int, int]]:
        spec = raw.get("dims", LineDict())
        if not isinstance(spec, LineDict):
            self.error(raw.line_of("dims"), "'dims' must be a mapping like {N: [1, 8], D: [1, 6]}")
            return {}
        dims = {}
        for name, bounds in spec.items():
            line = spec.line_of(name)
            ok = (
                isinstance(bounds, list) and len(bounds) == 2
                and all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)
            )
            if isinstance(bounds, int) and not isinstance(bounds, bool):
                bounds, ok = [bounds, bounds], True
            if not ok or not str(name).isidentifier():
                self.error(line, f"dim {name!r} must be an inclusive range of two integers [lo, hi], got {bounds!r}")
            elif bounds[0] > bounds[1] or bounds[0] < 0:
                self.error(line, f"dim {name!r}: range {list(bounds)} must satisfy 0 <= lo <= hi")
            else:
                dims[name] = (bounds[0], bounds[1])
        return dims

    def expression(self, source: Any, dims, line: int, what: str, whole: bool = False) -> Expression | None:
        """A parsed expression over `dims`, its values bounded over their ranges; None after an error."""
        if isinstance(source, bool) or not isinstance(source, (int, float, str)):
            self.error(line, f"{what}: expected a dim name, an integer or an expression, got {shown(source)}")
            return None
        try:
            expr = parse(source, whole=whole)
        except ExpressionError as exc:
            self.error(line, f"{what}: {exc}")
            return None
        for unknown in sorted(expr.names - set(dims)):
            self.error(line, f"{what}: dim {unknown!r} is used but has no range in 'dims'{suggest(unknown, dims)}")
        if expr.names <= set(dims):
            try:
                value_bounds(expr, dims)
            except ExpressionError as exc:
                self.error(line, f"{what}: {exc}")
                return None
        return expr

    def read_shape(self, shape: Any, dims, line: int, what: str) -> tuple[Expression, ...] | None:
        if not isinstance(shape, list):
            self.error(line, f"{what}: shape must be a list of dims, e.g. [N, D], got {shown(shape)}")
            return None
        exprs = [self.expression(item, dims, line, what, whole=True) for item in shape]
        if None in exprs:
            return None
        for expr in exprs:
            extent = value_bounds(expr, dims) if expr.names <= set(dims) else None
            if extent is not None and extent[1] <= 0:
                over = ", ".join(f"{n} in {list(dims[n])}" for n in sorted(expr.names)) or "every example"
                self.error(line, f"{what}: extent {expr.source!r} is at most {extent[1]} for {over}: "
                                 "the tensor would always be empty, so nothing would be checked")
                return None
        return tuple(exprs)

    def read_tensors(self, raw: LineDict, key: str, dims, allow_data: bool) -> tuple[TensorSpec, ...]:
        spec = raw.get(key, LineDict())
        if not isinstance(spec, LineDict):
            self.error(raw.line_of(key), f"{key!r} must be a mapping of name to shape, e.g. {{x: [N, D]}}")
            return ()
        tensors = []
        for name, entry in spec.items():
            line, what = spec.line_of(name), f"{key[:-1]} {name!r}"
            if not str(name).isidentifier():
                self.error(line, f"{what}: name must be a Python identifier")
                continue
            tensor = self.read_tensor(str(name), entry, dims, line, what, allow_data)
            if tensor is not None:
                tensors.append(tensor)
        return tuple(tensors)

    def read_tensor(self, name, entry, dims, line, what, allow_data) -> TensorSpec | None:
        if isinstance(entry, list):
            shape = self.read_shape(entry, dims, line, what)
            return None if shape is None else TensorSpec(name, shape)
        if not isinstance(entry, LineDict):
            self.error(line, f"{what}: expected a shape list or a mapping with 'shape', got {entry!r}")
            return None
        allowed = TENSOR_KEYS if allow_data else ("shape", "range")
        self.unknown_keys(entry, allowed, f"key in {what}")
        if "shape" not in entry:
            self.error(entry.line, f"{what}: missing key 'shape'")
            return None
        shape = self.read_shape(entry["shape"], dims, entry.line_of("shape"), what)
        kinds = [k for k in ("integers", "values", "range") if k in entry]
        if len(kinds) > 1:
            self.error(entry.line, f"{what}: use only one of integers, values, range (got {', '.join(kinds)})")
            return None
        if shape is None:
            return None
        if "integers" in entry:
            bounds = entry["integers"]
            if not isinstance(bounds, list) or len(bounds) != 2:
                self.error(entry.line_of("integers"), f"{what}: 'integers' must be [lo, hi], got {bounds!r}")
                return None
            lo, hi = (self.expression(b, dims, entry.line_of("integers"), what, whole=True) for b in bounds)
            return None if lo is None or hi is None else TensorSpec(name, shape, "integers", integers=(lo, hi))
        if "values" in entry:
            values = entry["values"]
            if not isinstance(values, list) or not values:
                self.error(entry.line_of("values"), f"{what}: 'values' must be a non-empty list")
                return None
            return TensorSpec(name, shape, "values", values=tuple(values))
        if "range" in entry:
            bounds = entry["range"]
            ok = isinstance(bounds, list) and len(bounds) == 2 and all(_is_number(b) for b in bounds)
            ok = ok and all(math.isfinite(float(b)) for b in bounds)
            if not ok or float(bounds[0]) >= float(bounds[1]):
                self.error(entry.line_of("range"), f"{what}: 'range' must be [lo, hi] with lo < hi, got {bounds!r}")
                return None
            return TensorSpec(name, shape, range=(float(bounds[0]), float(bounds[1])))
        return TensorSpec(name, shape)

    def check_name_clashes(self, raw: LineDict, dims, inputs, params) -> None:
        seen = set()
        for tensor in inputs + params:
            if tensor.name in dims:
                self.error(raw.line_of("dims"), f"{tensor.name!r} is both a dim and an input or parameter: rename one")
            if tensor.name in seen:
                self.error(raw.line_of("params"), f"{tensor.name!r} is both an input and a parameter")
            seen.add(tensor.name)

    def check_differentiable(self, raw: LineDict, style: str, inputs, params) -> None:
        """A layer with no float input (a loss: first input) and no parameter has nothing to check."""
        if "inputs" not in raw or len(inputs) < len(raw.get("inputs") or ()):
            return  # already reported
        floats = inputs[:1] if style == "loss" else inputs
        if not any(t.differentiable for t in floats) and not params:
            which = "its first input" if style == "loss" else "any input"
            self.error(raw.line_of("inputs"), f"nothing to differentiate: neither {which} is a float tensor "
                                              "nor is there a parameter (inputs with integers/values are data)")

    def read_where(self, raw: LineDict, dims) -> tuple[Expression, ...]:
        where = raw.get("where", [])
        if isinstance(where, str):
            where = [where]
        if not isinstance(where, list):
            self.error(raw.line_of("where"), "'where' must be a list of boolean expressions over dims")
            return ()
        exprs = [self.expression(w, dims, raw.line_of("where"), "where") for w in where]
        return tuple(e for e in exprs if e is not None)

    def read_refs(self, raw: LineDict, key: str, names: set[str]) -> Any:
        def walk(value: Any, line: int) -> Any:
            if isinstance(value, str) and value.startswith("$"):
                ref = value[1:]
                if ref not in names:
                    self.error(line, f"{key}: {value!r} names no dim, input or parameter{suggest(ref, names)}")
                return Ref(ref)
            if isinstance(value, registry_styles.LayerNode):  # another layer object, as an argument
                return registry_styles.read_layer_arg(self, value.raw, key, names)
            if isinstance(value, LineDict):
                return {k: walk(v, value.line_of(k)) for k, v in value.items()}
            if isinstance(value, tuple):
                return tuple(walk(v, line) for v in value)
            if isinstance(value, list):
                lines = getattr(value, "item_lines", [line] * len(value))
                return [walk(v, ln) for v, ln in zip(value, lines)]
            return value

        value = raw.get(key, {})
        if not isinstance(value, dict):
            self.error(raw.line_of(key), f"{key!r} must be a mapping of argument name to value")
            return {}
        return walk(value, raw.line_of(key))

    def read_location(self, raw: LineDict, key: str, default: str, kinds) -> Location:
        text = raw.get(key, default)
        kind, _, target = str(text).partition(":")
        if kind not in kinds or not target:
            forms = ", ".join(f"{k}:..." for k in kinds)
            self.error(raw.line_of(key), f"{key!r}: expected one of {forms} (e.g. attr:d{{name}}), got {text!r}")
            return Location("attr", "{name}")
        if kind == "attr":
            try:
                target.format(name="x")
            except (KeyError, IndexError, ValueError):
                self.error(raw.line_of(key), f"{key!r}: template {target!r} may only use {{name}}")
        registry_styles.check_path(self, raw, key, kind, target)
        return Location(kind, target)

    # -- imports ----------------------------------------------------------------------------
    def import_targets(self, raw: LineDict, style: str) -> dict[str, Any] | None:
        impl = str(raw["impl"])
        line = raw.line_of("impl")
        module_part, _, object_name = impl.partition(":")
        module = self.import_module(module_part, line)
        if module is None:
            return None
        if style in registry_styles.STYLE_KEYS:
            return registry_styles.import_targets(self, raw, style, module, object_name)
        if style == "class":
            if not object_name:
                self.error(line, f"impl {impl!r}: name the class, as file.py:Class or package.module:Class")
                return None
            target = self.lookup(module, object_name, impl, line)
            target = None if target is None else registry_styles.class_target(self, raw, target)
            if target is None:
                return None
            for method in ("forward", "backward"):
                if not callable(getattr(target, method, None)):
                    self.error(line, f"impl {impl!r}: {object_name} has no {method}() method (style class needs forward and backward)")
                    return None
            return {"target": target}
        if style == "functions":
            owner = self.lookup(module, object_name, impl, line) if object_name else module
            found = {k: self.lookup(owner, raw.get(k), impl, raw.line_of(k)) for k in ("forward", "backward")}
            return None if None in found.values() else found
        function_name = raw.get("function") or object_name
        if not function_name:
            self.error(raw.line, "style loss needs 'function' (or impl as module:function)")
            return None
        function = self.lookup(module, function_name, impl, raw.line_of("function"))
        return None if function is None else {"function": function}

    def lookup(self, owner: Any, name: Any, impl: str, line: int) -> Any:
        if not isinstance(name, str) or not name:
            self.error(line, f"expected the name of a function or class in {impl!r}, got {name!r}")
            return None
        if not hasattr(owner, name):
            public = [n for n in dir(owner) if not n.startswith("_")]
            where = impl.partition(":")[0] if owner is not None and not isinstance(owner, type) else impl
            self.error(line, f"{where!r} has no {name!r}{suggest(name, public)}")
            return None
        value = getattr(owner, name)
        if not callable(value):
            self.error(line, f"{name!r} in {impl!r} is not callable")
            return None
        return value

    def import_module(self, text: str, line: int):
        try:
            return importing.import_user(text, self.base)
        except UserImportError as exc:
            self.error(line, str(exc))
        return None


_FILE_MODULES: dict[Path, Any] = {}


def import_file(path: Path):
    """Import a .py file by path (its folder importable while it imports); cached."""
    path = Path(path).resolve()
    return importing.import_user(path.name, path.parent)


def _describe_exception(exc: BaseException) -> str:
    """One line naming the exception and, when it came from user code, where."""
    where = ""
    if isinstance(exc, SyntaxError):
        where = f" ({Path(exc.filename or '?').name}:{exc.lineno})"
    else:
        frames = inspect.getinnerframes(exc.__traceback__) if exc.__traceback__ else []
        if frames:
            where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})"
    return f"{type(exc).__name__}: {exc}{where}"


def _as_number(text: str) -> Any:
    """A number written as text (`1e-5`), or the text itself when it is not one."""
    try:
        return float(text)
    except ValueError:
        return text


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
