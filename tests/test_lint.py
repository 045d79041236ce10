"""Lint, format and types as configured in pyproject.toml: the suite (and so CI) fails on a violation."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CHECKS = {
    "ruff check": ["ruff", "check", "--no-fix", "--output-format", "concise", "."],
    "ruff format": ["ruff", "format", "--check", "."],
    "mypy": ["mypy"],
}


def _run(tool: list[str]) -> subprocess.CompletedProcess[str]:
    """The tool as a module of this interpreter, so it sees the same installed packages as the tests."""
    if importlib.util.find_spec(tool[0]) is None:
        pytest.skip(f"{tool[0]} is not installed: pip install -e '.[test]' installs the pinned version")
    return subprocess.run([sys.executable, "-m", *tool], cwd=ROOT, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("tool", CHECKS.values(), ids=list(CHECKS))
def test_the_repository_is_clean(tool):
    done = _run(tool)
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        pytest.fail(f"`{' '.join(tool)}` exited {done.returncode}:\n{output}", pytrace=False)


def test_the_public_names_are_listed_once_and_each_imports():
    import gradcheck

    assert sorted(gradcheck.__all__) == sorted(gradcheck._EXPORTS)
    assert all(getattr(gradcheck, name) is not None for name in gradcheck.__all__)


def test_importing_the_package_leaves_the_checker_unloaded():
    """`import gradcheck` stays light: the command line starts without numpy or hypothesis."""
    code = "import sys, gradcheck; print(sorted(m for m in ('numpy', 'hypothesis') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
