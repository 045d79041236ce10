"""Load and validate layers.yaml into LayerSpecs; every mistake becomes `file:LINE: message`."""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gradcheck import registry_styles
from gradcheck.errors import ConfigError
from gradcheck.expr import Expression, ExpressionError, parse
from gradcheck.spec import STYLES, LayerSpec, Location, Ref, TensorSpec, Tolerances

TOP_KEYS = ("defaults", "layers")
DEFAULT_KEYS = ("examples", "rtol", "atol", "eps", "timeout")
COMMON_KEYS = (
    "name", "impl", "style", "inputs", "dims", "where", "args", "batch", "batch_independent",
    "examples", "rtol", "atol", "eps", "xfail", "timeout", "description",
    "onehot", "pack",  # see registry_styles
)
STYLE_KEYS = {
    "class": ("init", "params", "params_at", "grads", "forward", "backward", "grad_outputs", "setup", "factory"),  # registry_styles
    "functions": ("forward", "backward", "params", "grad_outputs"),
    "loss": ("function",),
    **registry_styles.STYLE_KEYS,
}
TENSOR_KEYS = ("shape", "integers", "values", "range")


class LineDict(dict):
    """A YAML mapping that remembers the line of itself and of each key."""

    line: int = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.key_lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list):
    """A YAML sequence that remembers the line of itself and of each item."""

    line: int = 0
    item_lines: list[int]


class _Loader(yaml.SafeLoader):
    """SafeLoader that records line numbers and rejects duplicate keys."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    mapping = LineDict()
    mapping.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in mapping:
            loader.duplicates.append((line, f"duplicate key {key!r} (first on line {mapping.key_lines[key]})"))
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = line
    return mapping


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    items = LineList(loader.construct_object(child, deep=True) for child in node.value)
    items.line = node.start_mark.line + 1
    items.item_lines = [child.start_mark.line + 1 for child in node.value]
    return items


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
_Loader.add_constructor("!tuple", registry_styles.construct_tuple)  # pool_shape: !tuple [2, 2]


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


def suggest(name: str, choices) -> str:
    """A ' (did you mean X?)' suffix when `name` is close to one of `choices`."""
    choices = [str(c) for c in choices]
    close = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.6)
    if not close:  # ReLU for Relu: compare without case too
        lowered = {c.lower(): c for c in choices}
        close = [lowered[c] for c in difflib.get_close_matches(str(name).lower(), list(lowered), n=1, cutoff=0.6)]
    return f" (did you mean {close[0]!r}?)" if close else ""


def load_registry(path: str | os.PathLike) -> Registry:
    """Read, validate and import every layer of a layers.yaml, or raise ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"{path}: no such file (pass --config PATH to name a layers.yaml)"])
    loader = _Loader(path.read_text(encoding="utf-8"))
    loader.duplicates = []
    try:
        document = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ConfigError([f"{path}:{line}: invalid YAML: {exc.problem or exc.context}"]) from None
    finally:
        loader.dispose()
    reader = _Reader(path)
    for line, message in loader.duplicates:
        reader.error(line, message)
    registry = reader.read_document(document)
    if reader.problems:
        raise ConfigError(reader.problems)
    return registry


class _Reader:
    """Walks the parsed document, collecting problems rather than stopping at the first."""

    def __init__(self, path: Path):
        self.path = path
        self.base = path.resolve().parent
        self.problems: list[str] = []

    def error(self, line: int, message: str) -> None:
        self.problems.append(f"{self.path}:{line}: {message}")

    # -- document ---------------------------------------------------------------------------
    def read_document(self, doc: Any) -> Registry:
        if not isinstance(doc, LineDict):
            self.error(getattr(doc, "line", 1), "expected a mapping with a 'layers' list at the top level")
            return Registry(self.path, [])
        self.unknown_keys(doc, TOP_KEYS, "top-level key")
        defaults = self.read_defaults(doc.get("defaults", LineDict()), doc.line_of("defaults"))
        raw_layers = doc.get("layers")
        if not isinstance(raw_layers, LineList):
            self.error(doc.line_of("layers"), "missing key 'layers': expected a list of layers")
            return Registry(self.path, [], defaults)
        layers, seen = [], {}
        for line, entry in zip(raw_layers.item_lines, raw_layers):
            layer = self.read_layer(entry, line, defaults)
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

    def unknown_keys(self, raw: LineDict, allowed, what: str) -> None:
        for key in raw:
            if key not in allowed:
                self.error(raw.line_of(key), f"unknown {what} {key!r}{suggest(key, allowed)}")

    def number(self, raw: LineDict, key: str, integer: bool = False) -> float | int | None:
        value = raw[key]
        try:
            if isinstance(value, bool):
                raise ValueError
            number = int(value) if integer and float(value) == int(float(value)) else float(value)
            if integer and not isinstance(number, int):
                raise ValueError
        except (TypeError, ValueError):
            kind = "a whole number" if integer else "a number"
            self.error(raw.line_of(key), f"{key!r} must be {kind}, got {value!r}")
            return None
        if number < 0 or (integer and number == 0):
            self.error(raw.line_of(key), f"{key!r} must be positive, got {value!r}")
            return None
        return number

    # -- one layer --------------------------------------------------------------------------
    def read_layer(self, raw: Any, line: int, defaults: dict) -> LayerSpec | None:
        if not isinstance(raw, LineDict):
            self.error(line, "each entry of 'layers' must be a mapping with name, impl, style, inputs, dims")
            return None
        before = len(self.problems)
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            self.error(raw.line_of("name"), "missing key 'name' (a string naming the layer)")
            name = f"<layer on line {line}>"
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
        where = self.read_where(raw, dims)
        arrays = {t.name for t in inputs + params}
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
            source=f"{self.path}:{raw.line}", options=options, **targets,
        )

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

    def expression(self, source: Any, dims, line: int, what: str) -> Expression | None:
        if isinstance(source, bool) or not isinstance(source, (int, float, str)):
            self.error(line, f"{what}: expected a dim name, an integer or an expression, got {source!r}")
            return None
        try:
            expr = parse(source)
        except ExpressionError as exc:
            self.error(line, f"{what}: {exc}")
            return None
        for unknown in sorted(expr.names - set(dims)):
            self.error(line, f"{what}: dim {unknown!r} is used but has no range in 'dims'{suggest(unknown, dims)}")
        return expr

    def read_shape(self, shape: Any, dims, line: int, what: str) -> tuple[Expression, ...] | None:
        if not isinstance(shape, list):
            self.error(line, f"{what}: shape must be a list of dims, e.g. [N, D], got {shape!r}")
            return None
        exprs = [self.expression(item, dims, line, what) for item in shape]
        return None if None in exprs else tuple(exprs)

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
            lo, hi = (self.expression(b, dims, entry.line_of("integers"), what) for b in bounds)
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
        if str(self.base) not in sys.path:
            sys.path.insert(0, str(self.base))
        try:
            if text.endswith(".py"):
                return import_file(self.base / text)
            return importlib.import_module(text)
        except FileNotFoundError:
            self.error(line, f"impl file {text!r} not found (paths are relative to {self.path.name}'s folder)")
        except ModuleNotFoundError as exc:
            missing = exc.name or text
            hint = "" if missing != text else suggest(text, [p.stem for p in self.base.glob("*.py")])
            self.error(line, f"cannot import {text!r}: no module named {missing!r}{hint}")
        except Exception as exc:  # the user's module raised while importing: report, never crash
            self.error(line, f"cannot import {text!r}: {_describe_exception(exc)}")
        return None


_FILE_MODULES: dict[Path, Any] = {}


def import_file(path: Path):
    """Import a .py file by path (its folder importable, so sibling imports work); cached."""
    path = path.resolve()
    if path in _FILE_MODULES:
        return _FILE_MODULES[path]
    if not path.is_file():
        raise FileNotFoundError(path)
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    name = f"gradcheck_user_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    _FILE_MODULES[path] = module
    return module


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


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
