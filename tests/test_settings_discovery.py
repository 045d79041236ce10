"""[tool.gradcheck] is found upward from the current folder to the repository root; its paths are
relative to its pyproject.toml; no run leaves hypothesis's example database in the project."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradcheck.cli import cli
from gradcheck.settings import find_pyproject, load_settings

CLEAN_ENV = {"FORCE_COLOR": None, "NO_COLOR": None, "COLUMNS": None, "GITHUB_WORKSPACE": None}
GALLERY = Path(__file__).resolve().parent.parent / "examples" / "buggy"

MODULE = """\
import numpy as np


def forward(x):
    return np.tanh(x), x


def good_backward(dout, x):
    return dout * (1 - np.tanh(x) ** 2)


def wrong_backward(dout, x):
    return dout * (1 + np.tanh(x) ** 2)
"""


def layers_yaml(name):
    return f"""layers:
  - name: {name}
    impl: mine.py
    style: functions
    forward: forward
    backward: {name}_backward
    inputs: {{x: [N, D]}}
    dims: {{N: [1, 3], D: [1, 3]}}
"""


def invoke(*args):
    return CliRunner(env=CLEAN_ENV).invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """repo/.git, repo/pyproject.toml naming checks/layers.yaml, and a deep subfolder as the current folder."""
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    (root / "checks").mkdir()
    (root / "checks" / "mine.py").write_text(MODULE)
    (root / "checks" / "layers.yaml").write_text(layers_yaml("wrong"))
    (root / "pyproject.toml").write_text('[tool.gradcheck]\nconfig = "checks/layers.yaml"\nseed = 11\n')
    deep = root / "src" / "pkg"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    return root


def test_settings_are_found_from_a_subfolder_with_paths_relative_to_the_pyproject(repo):
    assert find_pyproject().resolve() == repo / "pyproject.toml"
    settings = load_settings()
    assert Path(settings.config).resolve() == repo / "checks" / "layers.yaml"
    result = invoke("run", "all")
    assert result.exit_code == 1  # the wrong layer of checks/layers.yaml ran
    assert "wrong" in result.stdout and "(seed 11)" in result.stdout


def test_a_pyproject_without_the_table_is_passed_over(repo):
    (repo / "src" / "pyproject.toml").write_text('[project]\nname = "pkg"\n')
    assert find_pyproject().resolve() == repo / "pyproject.toml"


def test_a_nearer_table_wins(repo):
    (repo / "src" / "pyproject.toml").write_text("[tool.gradcheck]\nseed = 3\n")
    assert load_settings().seed == 3


def test_the_search_stops_at_the_repository_root(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text("[tool.gradcheck]\nseed = 3\n")  # outside the repository
    inner = tmp_path / "repo" / "sub"
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    inner.mkdir()
    monkeypatch.chdir(inner)
    assert find_pyproject() is None
    assert load_settings().seed is None


def test_a_broken_pyproject_found_upward_is_still_reported(repo):
    (repo / "pyproject.toml").write_text("[tool.gradcheck\n")
    result = invoke("run", "all")
    assert result.exit_code == 2
    assert "pyproject.toml: invalid TOML" in result.stderr


def test_output_may_not_overwrite_the_pyproject_found_upward(repo):
    result = invoke("run", "all", "--output", repo / "pyproject.toml")
    assert result.exit_code == 2 and "is a source file" in result.stderr


# -- hypothesis's example database ----------------------------------------------------------
def _project(tmp_path: Path) -> Path:
    (tmp_path / "mine.py").write_text(MODULE)
    (tmp_path / "layers.yaml").write_text(layers_yaml("wrong"))  # a failure: hypothesis searches and shrinks
    (tmp_path / ".git").mkdir()
    return tmp_path


def test_the_command_line_leaves_no_hypothesis_folder(tmp_path):
    project = _project(tmp_path)
    ran = subprocess.run(
        [sys.executable, "-m", "gradcheck", "run", "all", "--seed", "1"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 1, ran.stderr
    assert not (project / ".hypothesis").exists()


def test_the_pytest_plugin_leaves_no_hypothesis_folder(tmp_path):
    project = _project(tmp_path)
    env = {**os.environ, "HYPOTHESIS_PROFILE": ""}
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--gradcheck"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert ran.returncode == 1 and "1 failed" in ran.stdout, ran.stdout
    assert not (project / ".hypothesis").exists()


def test_the_python_api_leaves_no_hypothesis_folder(tmp_path, monkeypatch):
    project = _project(tmp_path)
    monkeypatch.chdir(project)
    from gradcheck.api import run_config

    assert run_config("layers.yaml", seed=1).exit_code() == 1
    assert not (project / ".hypothesis").exists()
