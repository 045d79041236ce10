"""Small arithmetic and boolean expressions over dims, parsed safely (never eval-ed).

Everything a hostile file could use to stall or crash the checker is bounded: the length and
node count of an expression (before anything recurses over it), the arity of min/max/abs, and
the size of every integer met while evaluating (an exponent above MAX_EXPONENT or a value
beyond MAX_INT is an error, never a computation). `bounds` evaluates an expression over the
dims' ranges by interval arithmetic, so that the loader can refuse shapes that are always empty.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

MAX_LENGTH = 500  # characters: a shape or `where` clause is a short formula, not a program
MAX_NODES = 200
MAX_EXPONENT = 64
MAX_INT = 2**64  # beyond any array extent a machine can hold

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {"min": min, "max": max, "abs": abs}
_ARITY = {"min": (2, MAX_NODES), "max": (2, MAX_NODES), "abs": (1, 1)}
_WHOLE_OPS = (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod, ast.Pow)


class ExpressionError(ValueError):
    """An expression that is not one of the small forms gradcheck understands."""


@dataclass(frozen=True)
class Expression:
    """A parsed expression; `names` are the dims it refers to; `whole` ones must give integers."""

    source: str
    tree: ast.expr
    names: frozenset[str]
    whole: bool = False

    def evaluate(self, env: dict[str, Any]) -> Any:
        """Value of the expression with dims bound by `env`; an integer (or an error) when `whole`."""
        try:
            value = _evaluate(self.tree, env)
        except (ArithmeticError, ExpressionError) as exc:
            raise ExpressionError(f"{self.source!r} at {_dims_text(env, self.names)}: {exc}") from None
        if self.whole and (isinstance(value, bool) or not isinstance(value, int)):
            raise ExpressionError(f"{self.source!r} is {value!r} at {_dims_text(env, self.names)}, not a whole number")
        return value


def parse(source: str | int | float, whole: bool = False) -> Expression:
    """Parse `source` into an Expression, or raise ExpressionError saying what is wrong.

    `whole` expressions (shapes, integer bounds) must give whole numbers by their form: no `/`,
    no float constants, no comparisons.
    """
    text = str(source).strip()
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression of {len(text)} characters is too long (at most {MAX_LENGTH})")
    try:
        tree = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        raise ExpressionError(f"malformed expression {_short(text)!r}") from None
    nodes = sum(1 for _ in ast.walk(tree))
    if nodes > MAX_NODES:
        raise ExpressionError(f"expression {_short(text)!r} has {nodes} parts, too many (at most {MAX_NODES})")
    names = frozenset(_check(tree, _short(text)))
    if whole:
        _check_whole(tree, _short(text))
    return Expression(text, tree, names, whole)


def _short(text: str) -> str:
    """An expression as quoted in a message: cut short, so a long one cannot flood the message."""
    return text if len(text) <= 60 else text[:28] + "..." + text[-28:]


def _check(node: ast.AST, text: str) -> set[str]:
    """Reject any syntax outside the whitelist; return the names used."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
        return set()
    if isinstance(node, ast.Name):
        return {node.id}
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _check(node.left, text) | _check(node.right, text)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _check(node.operand, text)
    if isinstance(node, ast.BoolOp):
        return set().union(*(_check(v, text) for v in node.values))
    if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        return set().union(*(_check(v, text) for v in [node.left, *node.comparators]))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        names = set().union(set(), *(_check(a, text) for a in node.args))
        _check_arity(node, text)
        return names
    raise ExpressionError(
        f"unsupported syntax {_short(ast.unparse(node))!r} in {text!r} "
        "(allowed: numbers, dim names, + - * / // % **, comparisons, and/or/not, min/max/abs)"
    )


def _check_arity(node: ast.Call, text: str) -> None:
    name = cast(ast.Name, node.func).id
    least, most = _ARITY[name]
    if not least <= len(node.args) <= most:
        wanted = "one argument" if most == 1 else f"at least {least} arguments"
        raise ExpressionError(f"{name}() takes {wanted}, got {len(node.args)} in {text!r}")


def _check_whole(tree: ast.AST, text: str) -> None:
    """Refuse forms that can give a fraction (or a truth value) where a whole number is needed."""
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            raise ExpressionError(f"{text!r} divides with '/', which can give a fraction: use '//' for a whole number")
        if isinstance(node, ast.Constant) and type(node.value) is not int:
            raise ExpressionError(f"{text!r} contains {node.value!r}: a size must be a whole number")
        negation = isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)
        if isinstance(node, (ast.Compare, ast.BoolOp)) or negation:
            raise ExpressionError(f"{text!r} is a condition, not a size: conditions belong in 'where'")


def _dims_text(env: dict[str, Any], names) -> str:
    return ", ".join(f"{n}={env[n]}" for n in sorted(names) if n in env) or "no dims"


def _guarded(op, left: Any, right: Any) -> Any:
    """`op(left, right)`, refusing exponents and integers too large to compute quickly."""
    if op is operator.pow and isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT and abs(left) > 1:
        raise ExpressionError(f"exponent {right!r} is too large (at most {MAX_EXPONENT})")
    value = op(left, right)
    if isinstance(value, int) and abs(value) > MAX_INT:
        raise ExpressionError(f"a value beyond 2**64 ({left!r} {_SYMBOLS[op]} {right!r})")
    return value


_SYMBOLS = {
    operator.add: "+",
    operator.sub: "-",
    operator.mul: "*",
    operator.floordiv: "//",
    operator.truediv: "/",
    operator.mod: "%",
    operator.pow: "**",
}


def _evaluate(node: ast.AST, env: dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.BinOp):
        return _guarded(_BINARY[type(node.op)], _evaluate(node.left, env), _evaluate(node.right, env))
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_evaluate(node.operand, env))
    if isinstance(node, ast.BoolOp):
        values = (_evaluate(v, env) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Compare):
        left = _evaluate(node.left, env)
        for op, right_node in zip(node.ops, node.comparators, strict=False):
            right = _evaluate(right_node, env)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.Call):
        return _FUNCTIONS[cast(ast.Name, node.func).id](*(_evaluate(a, env) for a in node.args))
    raise ExpressionError(f"cannot evaluate {ast.unparse(node)!r}")


Interval = tuple[float, float] | None  # None: not known (a division by a range holding 0, ...)


def bounds(expr: Expression, ranges: dict[str, tuple[int, int]]) -> Interval:
    """An interval holding every value of `expr` over the dims' inclusive ranges, or None if unknown.

    Raises ExpressionError when some value in range is too large to compute (see `_guarded`).
    """
    try:
        if expr.whole:
            _check_exponents(expr.tree, ranges)
        return _bounds(expr.tree, ranges)
    except (ArithmeticError, ExpressionError) as exc:
        raise ExpressionError(f"{expr.source!r} over the dims' ranges: {exc}") from None


def _check_exponents(tree: ast.AST, ranges: dict[str, tuple[int, int]]) -> None:
    """In a whole expression, an exponent that may be negative gives a fraction: refuse it."""
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            exponent = _bounds(node.right, ranges)
            if exponent is None or exponent[0] < 0:
                raise ExpressionError(f"exponent {ast.unparse(node.right)!r} may be negative, which gives a fraction")


def _bounds(node: ast.AST, ranges: dict[str, tuple[int, int]]) -> Interval:
    if isinstance(node, ast.Constant):
        return cast(Interval, (node.value, node.value))
    if isinstance(node, ast.Name):
        return ranges[node.id]
    if isinstance(node, ast.BinOp):
        return _binary_bounds(node.op, _bounds(node.left, ranges), _bounds(node.right, ranges))
    if isinstance(node, ast.UnaryOp):
        inner = _bounds(node.operand, ranges)
        if inner is None or isinstance(node.op, ast.Not):
            return None if inner is None else (0, 1)
        return (-inner[1], -inner[0]) if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.Call):
        args = [_bounds(a, ranges) for a in node.args]
        known = cast(list[tuple[float, float]], args)
        return None if None in args else _call_bounds(cast(ast.Name, node.func).id, known)
    compare = cast(ast.Compare, node)
    children = node.values if isinstance(node, ast.BoolOp) else [compare.left, *compare.comparators]
    for child in children:  # a condition: only its parts' sizes are checked
        _bounds(child, ranges)
    return (0, 1)


def _binary_bounds(op: ast.operator, a: Interval, b: Interval) -> Interval:
    if a is None or b is None:
        return None
    if isinstance(op, ast.Add):
        return (_guarded(operator.add, a[0], b[0]), _guarded(operator.add, a[1], b[1]))
    if isinstance(op, ast.Sub):
        return (_guarded(operator.sub, a[0], b[1]), _guarded(operator.sub, a[1], b[0]))
    if isinstance(op, ast.Mod):
        if b[0] > 0:
            return (0, b[1] - 1) if isinstance(b[1], int) else (0, b[1])
        return (b[0], 0) if b[1] < 0 else None
    if isinstance(op, (ast.FloorDiv, ast.Div)) and b[0] <= 0 <= b[1]:
        return None
    if isinstance(op, ast.Pow) and (a[0] < 0 or b[0] < 0):
        return None
    corners = [_guarded(_BINARY[type(op)], x, y) for x in a for y in b]
    if any(isinstance(c, float) and math.isnan(c) for c in corners):
        return None
    return (min(corners), max(corners))


def _call_bounds(name: str, args: list[tuple[float, float]]) -> Interval:
    if name == "min":
        return (min(a[0] for a in args), min(a[1] for a in args))
    if name == "max":
        return (max(a[0] for a in args), max(a[1] for a in args))
    lo, hi = args[0]
    return (lo, hi) if lo >= 0 else (-hi, -lo) if hi <= 0 else (0, max(-lo, hi))
