"""The pytest plugin: `pytest --gradcheck` turns each layer of a layers.yaml into a test item."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GALLERY = ROOT / "examples" / "buggy" / "layers.yaml"

LAYERS = """\
layers:
  - name: good
    impl: mine.py:Scale
    inputs: {x: [N, D]}
    dims: {N: [1, 3], D: [1, 3]}
  - name: bad
    impl: mine.py:WrongScale
    inputs: {x: [N, D]}
    dims: {N: [1, 3], D: [1, 3]}
  - name: known-bad
    impl: mine.py:WrongScale
    inputs: {x: [N, D]}
    dims: {N: [1, 3], D: [1, 3]}
    xfail: the factor is wrong, fixed next week
  - name: crashes
    impl: mine.py:Crashes
    inputs: {x: [N, D]}
    dims: {N: [1, 3], D: [1, 3]}
  - name: fixed-still-marked
    impl: mine.py:Scale
    inputs: {x: [N, D]}
    dims: {N: [1, 3], D: [1, 3]}
    xfail: was wrong once
"""

CODE = """\
class Scale:
    def forward(self, x):
        return 3.0 * x

    def backward(self, dout):
        return 3.0 * dout


class WrongScale(Scale):
    def backward(self, dout):
        return 2.0 * dout


class Crashes(Scale):
    def backward(self, dout):
        raise RuntimeError("backward is not written yet")
"""


def write_project(where: Path) -> Path:
    (where / "layers.yaml").write_text(LAYERS)
    (where / "mine.py").write_text(CODE)
    (where / "pyproject.toml").write_text("[tool.gradcheck]\nexamples = 3\nseed = 0\n")
    return where


@pytest.fixture
def project(tmp_path):
    return write_project(tmp_path)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """One `pytest --gradcheck --junitxml` run over the four layers: (project, its stdout)."""
    where = write_project(tmp_path_factory.mktemp("project"))
    return where, pytest_run(where, "--gradcheck", "--junitxml", "report.xml")


def pytest_run(where: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "120", "PYTEST_ADDOPTS": ""}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", *args],
        cwd=where,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_off_unless_asked(project):
    result = pytest_run(project)
    assert result.returncode == 5, result.stdout  # no tests collected
    assert "layers.yaml::" not in result.stdout


def test_each_layer_is_an_item_with_its_verdict(full_run):
    result = full_run[1]
    out = result.stdout
    assert result.returncode == 1, out
    assert "PASSED layers.yaml::good" in out
    assert "FAILED layers.yaml::bad" in out and "FAILED layers.yaml::crashes" in out
    assert "XFAIL layers.yaml::known-bad" in out
    assert "XPASS layers.yaml::fixed-still-marked" in out
    assert "1 passed" in out and "2 failed" in out and "1 xfailed" in out and "1 xpassed" in out


def test_a_failure_reads_as_the_account(full_run):
    out = full_run[1].stdout
    section = out[out.index("_ layers.yaml::bad _") : out.index("_ layers.yaml::crashes _")]
    assert "bad: FAIL - wrong gradient for x" in section and "worst element x[" in section
    assert "reproduce: gradcheck check bad --seed 0" in section
    assert "Traceback" not in section and "gradcheck/" not in section.replace("gradcheck check", "")
    assert len(section) < 1500


def test_an_error_names_what_the_layer_raised(full_run):
    assert re.search(r"mine\.py:\d+: backward raised RuntimeError: backward is not written yet", full_run[1].stdout)


def test_junit_has_one_testcase_per_layer(full_run):
    cases = {case.get("name"): case for case in ET.parse(full_run[0] / "report.xml").iter("testcase")}
    assert set(cases) == {"good", "bad", "known-bad", "crashes", "fixed-still-marked"}
    assert cases["bad"].find("failure") is not None and cases["good"].find("failure") is None
    assert "worst element" in cases["bad"].find("failure").get("message")


def test_k_selects_layers_by_name(project):
    out = pytest_run(project, "--gradcheck", "-k", "good or crashes").stdout
    assert "1 passed" in out and "1 failed" in out and "3 deselected" in out


def test_fail_fast(project):
    out = pytest_run(project, "--gradcheck", "-x").stdout
    assert "FAILED layers.yaml::bad" in out and "crashes" not in out.split("short test summary")[1]


def test_a_broken_file_is_one_clear_collection_error(project):
    (project / "layers.yaml").write_text(LAYERS.replace("impl: mine.py:Scale", "impl: mine.py:Scael"))
    out = pytest_run(project, "--gradcheck").stdout
    assert "layers.yaml:3: 'mine.py' has no 'Scael' (did you mean 'Scale'?)" in out
    assert "Traceback" not in out


def test_a_config_outside_the_test_paths(project, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    result = pytest_run(elsewhere, "--gradcheck-config", str(project / "layers.yaml"), "-k", "good")
    assert result.returncode == 0, result.stdout
    assert "1 passed" in result.stdout


def test_the_gallery_fails_layer_by_layer_in_two_workers(tmp_path):
    pytest.importorskip("xdist")
    (tmp_path / "pyproject.toml").write_text("[tool.gradcheck]\nexamples = 2\nseed = 7\n")
    result = pytest_run(tmp_path, "--gradcheck-config", str(GALLERY), "-n", "2", "-k", "bias or batch-mean or none")
    assert result.returncode == 1
    last = result.stdout.splitlines()[-1]
    assert "5 failed" in last and "passed" not in last, result.stdout[-2000:]
    for name in ("bias-first-row", "bias-unsummed", "bias-keepdims", "batch-mean", "returns-none"):
        assert re.search(rf"FAILED \S*layers.yaml::{name}\b", result.stdout), name


def test_the_repositorys_layers_pass(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.gradcheck]\nexamples = 1\nseed = 0\n")
    result = pytest_run(tmp_path, "--gradcheck-config", str(ROOT / "layers.yaml"))
    assert result.returncode == 0, result.stdout[-3000:]
    assert "22 passed" in result.stdout


def test_a_warning_is_a_pytest_warning(tmp_path):
    (tmp_path / "layers.yaml").write_text(
        textwrap.dedent("""\
        layers:
          - name: unsteady
            impl: mine.py:Scale
            inputs: {x: [N]}
            dims: {N: [2, 2]}
        """)
    )
    (tmp_path / "mine.py").write_text(CODE)
    from gradcheck import pytest_plugin
    from gradcheck.results import LayerResult, Status

    with pytest.warns(pytest_plugin.GradcheckWarning, match="unsteady: forward is not repeatable"):
        pytest_plugin._outcome(LayerResult("unsteady", Status.WARN, warnings=("forward is not repeatable",)))


def test_a_layer_of_which_nothing_was_checked_fails_its_test_item():
    """SKIP must not pass a gate, under pytest as under `gradcheck run`."""
    from gradcheck.pytest_plugin import LayerFailed, _outcome
    from gradcheck.results import LayerResult, Status

    with pytest.raises(LayerFailed, match="nothing was checked: x had no elements"):
        _outcome(LayerResult("empty", Status.SKIP, message="x had no elements in any example"))
