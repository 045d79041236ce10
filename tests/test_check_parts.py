"""The check of one example is a short recipe over parts of one job each, and those parts do their job."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import numpy as np
import pytest

import gradcheck.examples as examples
from gradcheck import batching, hygiene, method_choice
from gradcheck.examples import Counter, check_example
from gradcheck.precision import Steps
from gradcheck.registry import load_registry
from gradcheck.results import Status
from gradcheck.sampling import Example
from gradcheck.spec import DEFAULT_TOLERANCES, Tolerances

ROOT = Path(__file__).resolve().parent.parent
BUILTINS = load_registry(ROOT / "layers.yaml")
PARTS = ["examples", "outcomes", "forwards", "batching", "hygiene", "gradients", "precision", "method_choice",
         "comparison", "by_directions", "directions", "finite_diff"]  # fmt: skip
RECIPE_LINES = 40  # check_example and the steps it calls, without docstrings
PART_LINES = 310
FUNCTION_LINES = 50


def _longest_function(tree: ast.AST) -> tuple[str, int]:
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    return max(((f.name, f.end_lineno - f.lineno + 1) for f in functions), key=lambda item: item[1])


@pytest.mark.parametrize("part", PARTS)
def test_each_part_is_small_and_has_no_long_function(part):
    source = (ROOT / "gradcheck" / f"{part}.py").read_text()
    assert len(source.splitlines()) <= PART_LINES
    name, lines = _longest_function(ast.parse(source))
    assert lines <= FUNCTION_LINES, name


def test_check_example_is_a_short_recipe_of_calls():
    body = inspect.getsource(examples.check_example) + inspect.getsource(examples._check)
    code = [line for line in body.splitlines() if line.strip() and not line.strip().startswith(('"""', "#"))]
    assert len(code) <= RECIPE_LINES
    assert "_ExampleRun" not in dir(examples)


def test_examples_keeps_exporting_what_the_rest_of_the_package_imports():
    for name in ("check_example", "Counter", "ExampleOutcome", "TensorOutcome", "FULL_MAX", "FULL_BUDGET"):
        assert name in examples.__all__ and hasattr(examples, name)
    assert examples.FULL_MAX == method_choice.FULL_MAX and examples.FULL_BUDGET == method_choice.FULL_BUDGET


def test_same_treats_nan_as_equal_and_shapes_as_different():
    a = np.array([1.0, np.nan])
    assert hygiene.same(a, a.copy())
    assert not hygiene.same(a, np.array([1.0, 2.0]))
    assert not hygiene.same(np.zeros(2), np.zeros((1, 2)))
    assert hygiene.same(None, None) and not hygiene.same(None, np.zeros(1))


def test_a_stacked_copy_reproduces_only_within_a_matrix_products_rounding():
    reference = np.array([1.0, -2.0])
    assert batching._reproduces(reference * (1 + batching.REPRODUCTION_TOLERANCE / 4), reference)
    assert not batching._reproduces(reference + 1e3 * batching.REPRODUCTION_TOLERANCE, reference)
    assert not batching._reproduces(reference[:1], reference)


def test_unset_tolerances_are_refused_with_a_message():
    with pytest.raises(ValueError, match="DEFAULT_TOLERANCES"):
        Steps.of(Tolerances(rtol=1e-5))
    assert Steps.of(DEFAULT_TOLERANCES) == Steps(eps=1e-6, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("mode, methods", [("full", {"full", "coloured"}), ("fast", {"fast"})])
def test_the_mode_picks_the_method_of_every_tensor(mode, methods):
    spec = BUILTINS.get("linear")
    outcome = check_example(spec, Example((("N", 4), ("D", 3), ("M", 2)), 3, 1.0), DEFAULT_TOLERANCES, Counter(), mode)
    assert outcome.status is Status.PASS
    assert {t.method for t in outcome.tensors} <= methods
