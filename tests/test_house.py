"""The house rules, checked: small classes and functions, and imports that point one way."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gradcheck"
MAX_CLASS = 250  # lines, docstrings included
MAX_FUNCTION = 60
# the checker and what it hands back: no click, rich or YAML in them
CHECKER = [
    "engine", "examples", "outcomes", "forwards", "batching", "hygiene", "gradients", "precision", "method_choice",
    "comparison", "by_directions", "finite_diff", "directions", "sampling", "summary", "smallest", "results",
    "diagnosis.evidence", "diagnosis.patterns", "user_code", "adapters", "adapters_class", "adapters_styles",
    "adapters_copies", "spec",
]  # fmt: skip
EDGE = {"click", "rich", "yaml"}
# reading layers.yaml knows nothing of finite differences
REGISTRY = ["registry", "registry_keys", "registry_values", "registry_styles", "registry_imports", "config_yaml"]
CHECK_PARTS = {"engine", "examples", "finite_diff", "directions", "comparison", "by_directions", "forwards"}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "layers" not in p.relative_to(PACKAGE).parts)


def _imports(module: str) -> set[str]:
    """Every module `module` imports, anywhere in its text (a function's late import counts too)."""
    tree = ast.parse((PACKAGE / (module.replace(".", "/") + ".py")).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_class_or_function_is_too_long_to_read(path):
    long = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            limit = MAX_CLASS if isinstance(node, ast.ClassDef) else MAX_FUNCTION
            length = node.end_lineno - node.lineno + 1
            if length > limit:
                long.append(f"{node.name}: {length} lines (at most {limit})")
    assert not long, f"{path.name}: " + "; ".join(long)


@pytest.mark.parametrize("module", CHECKER)
def test_the_checker_knows_nothing_of_the_edge(module):
    edge = {name for name in _imports(module) if name.split(".")[0] in EDGE}
    assert not edge, f"gradcheck.{module} imports {sorted(edge)}"


@pytest.mark.parametrize("module", REGISTRY)
def test_the_registry_knows_nothing_of_finite_differences(module):
    checker = {name for name in _imports(module) if name.startswith("gradcheck.") and name.split(".")[1] in CHECK_PARTS}
    assert not checker, f"gradcheck.{module} imports {sorted(checker)}"


def test_importing_gradcheck_and_its_settings_stays_light():
    code = (
        "import sys, gradcheck, gradcheck.settings, gradcheck.spec\n"
        "heavy = [m for m in ('numpy', 'hypothesis', 'gradcheck.engine', 'gradcheck.examples') if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
