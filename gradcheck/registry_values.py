"""Checks of the values layers.yaml keys share: numbers, expressions over dims, shapes, tensors,
`$` references and locations. Each reports through Problems, so reading goes on past a mistake."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from gradcheck.config_yaml import LayerNode, LineDict
from gradcheck.errors import ConfigError, suggest
from gradcheck.expr import Expression, ExpressionError, parse
from gradcheck.expr import bounds as value_bounds
from gradcheck.limits import setting_problem, shown
from gradcheck.spec import Location, Ref, TensorSpec

TENSOR_KEYS = ("shape", "integers", "values", "range")
VALUE_KINDS = ("integers", "values", "range")  # how a tensor's values are drawn, besides floats


class Problems:
    """The mistakes found in one layers.yaml, each as `path:LINE: message`, collected rather than raised."""

    def __init__(self, path: Path):
        self.path = path
        self.base = path.resolve().parent  # where relative impl paths start
        self.problems: list[str] = []
        self.layer: LineDict | None = None  # the layer being read

    def error(self, line: int, message: str) -> None:
        layer = self.layer
        if layer is not None and not layer.line <= line <= layer.end_line:  # written in a `<<: *anchor`
            message += f" (merged into the layer on line {layer.line})"
        self.problems.append(f"{self.path}:{line}: {message}")

    def raise_any(self) -> None:
        """Stop with every problem found, if there is one."""
        if self.problems:
            raise ConfigError(self.problems)


def unknown_keys(problems: Problems, raw: LineDict, allowed, what: str, templates: bool = False) -> None:
    """Report each key of `raw` not in `allowed` (with `x-` template keys allowed when `templates`)."""
    for key in raw:
        if key not in allowed and not (templates and str(key).startswith(TEMPLATE_PREFIX)):
            problems.error(raw.line_of(key), f"unknown {what} {key!r}{suggest(key, allowed)}")


TEMPLATE_PREFIX = "x-"  # top-level keys left for YAML anchors that layers merge with `<<: *name`


def number(problems: Problems, raw: LineDict, key: str) -> float | int | None:
    """raw[key] checked by the rules every entry point shares (limits.py); None after an error."""
    value = raw[key]
    if isinstance(value, str):  # YAML reads 1e-5 (no dot) as a string
        value = _as_number(value)
    problem = setting_problem(key, value)
    if problem:
        problems.error(raw.line_of(key), problem)
        return None
    return int(value) if key == "examples" else float(value)


def expression(problems: Problems, source: Any, dims, line: int, what: str, whole: bool = False) -> Expression | None:
    """A parsed expression over `dims`, its values bounded over their ranges; None after an error."""
    if isinstance(source, bool) or not isinstance(source, (int, float, str)):
        problems.error(line, f"{what}: expected a dim name, an integer or an expression, got {shown(source)}")
        return None
    try:
        expr = parse(source, whole=whole)
    except ExpressionError as exc:
        problems.error(line, f"{what}: {exc}")
        return None
    for unknown in sorted(expr.names - set(dims)):
        problems.error(line, f"{what}: dim {unknown!r} is used but has no range in 'dims'{suggest(unknown, dims)}")
    if expr.names <= set(dims):
        try:
            value_bounds(expr, dims)
        except ExpressionError as exc:
            problems.error(line, f"{what}: {exc}")
            return None
    return expr


def shape(problems: Problems, written: Any, dims, line: int, what: str) -> tuple[Expression, ...] | None:
    """A tensor's shape: a list of expressions, none of which is always zero."""
    if not isinstance(written, list):
        problems.error(line, f"{what}: shape must be a list of dims, e.g. [N, D], got {shown(written)}")
        return None
    parsed = [expression(problems, item, dims, line, what, whole=True) for item in written]
    exprs = [expr for expr in parsed if expr is not None]
    if len(exprs) < len(parsed):
        return None
    for expr in exprs:
        extent = value_bounds(expr, dims) if expr.names <= set(dims) else None
        if extent is not None and extent[1] <= 0:
            over = ", ".join(f"{n} in {list(dims[n])}" for n in sorted(expr.names)) or "every example"
            problems.error(
                line,
                f"{what}: extent {expr.source!r} is at most {extent[1]} for {over}: "
                "the tensor would always be empty, so nothing would be checked",
            )
            return None
    return tuple(exprs)


def tensors(problems: Problems, raw: LineDict, key: str, dims, allow_data: bool) -> tuple[TensorSpec, ...]:
    """The tensors of `inputs` or `params`: name to shape, or to a mapping with shape and values."""
    spec = raw.get(key, LineDict())
    if not isinstance(spec, LineDict):
        problems.error(raw.line_of(key), f"{key!r} must be a mapping of name to shape, e.g. {{x: [N, D]}}")
        return ()
    found = []
    for name, entry in spec.items():
        line, what = spec.line_of(name), f"{key[:-1]} {name!r}"
        if not str(name).isidentifier():
            problems.error(line, f"{what}: name must be a Python identifier")
            continue
        tensor = _tensor(problems, str(name), entry, dims, line, what, allow_data)
        if tensor is not None:
            found.append(tensor)
    return tuple(found)


def _tensor(problems: Problems, name, entry, dims, line, what, allow_data) -> TensorSpec | None:
    if isinstance(entry, list):
        written = shape(problems, entry, dims, line, what)
        return None if written is None else TensorSpec(name, written)
    if not isinstance(entry, LineDict):
        problems.error(line, f"{what}: expected a shape list or a mapping with 'shape', got {entry!r}")
        return None
    unknown_keys(problems, entry, TENSOR_KEYS if allow_data else ("shape", "range"), f"key in {what}")
    if "shape" not in entry:
        problems.error(entry.line, f"{what}: missing key 'shape'")
        return None
    extents = shape(problems, entry["shape"], dims, entry.line_of("shape"), what)
    kinds = [k for k in VALUE_KINDS if k in entry]
    if len(kinds) > 1:
        problems.error(entry.line, f"{what}: use only one of integers, values, range (got {', '.join(kinds)})")
        return None
    if extents is None:
        return None
    if "integers" in entry:
        return _integers(problems, name, entry, extents, dims, what)
    if "values" in entry:
        values = entry["values"]
        if not isinstance(values, list) or not values:
            problems.error(entry.line_of("values"), f"{what}: 'values' must be a non-empty list")
            return None
        return TensorSpec(name, extents, "values", values=tuple(values))
    if "range" in entry:
        return _ranged(problems, name, entry, extents, what)
    return TensorSpec(name, extents)


def _integers(problems: Problems, name, entry, extents, dims, what) -> TensorSpec | None:
    """A tensor of whole numbers drawn from [lo, hi], each bound an expression over dims."""
    bounds = entry["integers"]
    if not isinstance(bounds, list) or len(bounds) != 2:
        problems.error(entry.line_of("integers"), f"{what}: 'integers' must be [lo, hi], got {bounds!r}")
        return None
    lo, hi = (expression(problems, b, dims, entry.line_of("integers"), what, whole=True) for b in bounds)
    return None if lo is None or hi is None else TensorSpec(name, extents, "integers", integers=(lo, hi))


def _ranged(problems: Problems, name, entry, extents, what) -> TensorSpec | None:
    """A float tensor drawn from [lo, hi) rather than around zero."""
    bounds = entry["range"]
    ok = isinstance(bounds, list) and len(bounds) == 2 and all(_is_number(b) for b in bounds)
    ok = ok and all(math.isfinite(float(b)) for b in bounds)
    if not ok or float(bounds[0]) >= float(bounds[1]):
        problems.error(entry.line_of("range"), f"{what}: 'range' must be [lo, hi] with lo < hi, got {bounds!r}")
        return None
    return TensorSpec(name, extents, range=(float(bounds[0]), float(bounds[1])))


def refs(problems: Problems, raw: LineDict, key: str, names: set[str]) -> Any:
    """raw[key] (init, args, setup) with each `$name` as a Ref and each `!layer` as a LayerArg."""
    from gradcheck.registry_styles import read_layer_arg  # it reads its own refs through here

    def walk(value: Any, line: int) -> Any:
        if isinstance(value, str) and value.startswith("$"):
            ref = value[1:]
            if ref not in names:
                problems.error(line, f"{key}: {value!r} names no dim, input or parameter{suggest(ref, names)}")
            return Ref(ref)
        if isinstance(value, LayerNode):  # another layer object, as an argument
            return read_layer_arg(problems, value.raw, key, names)
        if isinstance(value, LineDict):
            return {k: walk(v, value.line_of(k)) for k, v in value.items()}
        if isinstance(value, tuple):
            return tuple(walk(v, line) for v in value)
        if isinstance(value, list):
            lines = getattr(value, "item_lines", [line] * len(value))
            return [walk(v, ln) for v, ln in zip(value, lines, strict=False)]
        return value

    value = raw.get(key, {})
    if not isinstance(value, dict):
        problems.error(raw.line_of(key), f"{key!r} must be a mapping of argument name to value")
        return {}
    return walk(value, raw.line_of(key))


def location(problems: Problems, raw: LineDict, key: str, default: str, kinds) -> Location:
    """Where parameters or gradients live: `kind:target`, the target a template or dotted path."""
    text = raw.get(key, default)
    kind, _, target = str(text).partition(":")
    if kind not in kinds or not target:
        forms = ", ".join(f"{k}:..." for k in kinds)
        problems.error(raw.line_of(key), f"{key!r}: expected one of {forms} (e.g. attr:d{{name}}), got {text!r}")
        return Location("attr", "{name}")
    if kind == "attr":
        try:
            target.format(name="x")
        except (KeyError, IndexError, ValueError):
            problems.error(raw.line_of(key), f"{key!r}: template {target!r} may only use {{name}}")
    _check_path(problems, raw, key, kind, target)
    return Location(kind, target)


def _check_path(problems: Problems, raw, key: str, kind: str, target: str) -> None:
    """A dotted location (dict:_base_layer.parameters) must be a path of attribute names."""
    if kind in ("update", "optimizer") or "." not in target:
        return
    path = target.replace("{name}", "x") if kind == "attr" else target
    if not all(part.isidentifier() for part in path.split(".")):
        problems.error(
            raw.line_of(key),
            f"{key!r}: {target!r} is not a dotted path of attribute names "
            f"(e.g. {kind}:_base_layer.{'{name}' if kind == 'attr' else 'parameters'})",
        )


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
