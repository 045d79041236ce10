"""Small arithmetic and boolean expressions over dims, parsed safely (never eval-ed)."""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass
from typing import Any

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_FUNCTIONS = {"min": min, "max": max, "abs": abs}


class ExpressionError(ValueError):
    """An expression that is not one of the small forms gradcheck understands."""


@dataclass(frozen=True)
class Expression:
    """A parsed expression; `names` are the dims it refers to."""

    source: str
    tree: ast.expr
    names: frozenset[str]

    def evaluate(self, env: dict[str, Any]) -> Any:
        """Value of the expression with dims bound by `env`."""
        return _evaluate(self.tree, env)


def parse(source: str | int | float) -> Expression:
    """Parse `source` into an Expression, or raise ExpressionError saying what is wrong."""
    text = str(source).strip()
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError:
        raise ExpressionError(f"malformed expression {text!r}") from None
    names = frozenset(_check(tree, text))
    return Expression(text, tree, names)


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
        return set().union(set(), *(_check(a, text) for a in node.args))
    raise ExpressionError(
        f"unsupported syntax {ast.unparse(node)!r} in {text!r} "
        "(allowed: numbers, dim names, + - * / // % **, comparisons, and/or/not, min/max/abs)"
    )


def _evaluate(node: ast.AST, env: dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_evaluate(node.left, env), _evaluate(node.right, env))
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_evaluate(node.operand, env))
    if isinstance(node, ast.BoolOp):
        values = (_evaluate(v, env) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Compare):
        left = _evaluate(node.left, env)
        for op, right_node in zip(node.ops, node.comparators):
            right = _evaluate(right_node, env)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.Call):
        return _FUNCTIONS[node.func.id](*(_evaluate(a, env) for a in node.args))
    raise ExpressionError(f"cannot evaluate {ast.unparse(node)!r}")
