"""One run, every report: --junit, --json and --github with the table; -q, -v, --pdb; the reproduce
command whole at any width; a raising layer's error starts at the user's file and line."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from gradcheck.cli import cli

CLEAN_ENV = {"FORCE_COLOR": None, "NO_COLOR": None, "TTY_COMPATIBLE": None, "COLUMNS": None, "GITHUB_WORKSPACE": None}

MODULE = """\
import numpy as np


def forward(x):
    return np.tanh(x), x


def good_backward(dout, x):
    return dout * (1 - np.tanh(x) ** 2)


def wrong_backward(dout, x):
    return dout * (1 + np.tanh(x) ** 2)


def raising_backward(dout, x):
    return helper(dout, x)


def helper(dout, x):
    raise ValueError("boom in backward")
"""


def layers_yaml(*names):
    return "layers:\n" + "".join(
        f"""\
  - name: {name}
    impl: mine.py
    style: functions
    forward: forward
    backward: {name}_backward
    inputs: {{x: [N, D]}}
    dims: {{N: [1, 3], D: [1, 3]}}
"""
        for name in names
    )


def invoke(*args, env=None, **kwargs):
    return CliRunner(env={**CLEAN_ENV, **(env or {})}).invoke(
        cli, [str(a) for a in args], catch_exceptions=False, **kwargs
    )


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "mine.py").write_text(MODULE)
    (tmp_path / "layers.yaml").write_text(layers_yaml("good", "wrong", "raising"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- every report in one run ------------------------------------------------------------------
def test_junit_json_and_annotations_come_from_one_run_with_the_table(project):
    result = invoke("run", "all", "--seed", 5, "--junit", "out/junit.xml", "--json", "out/report.json", "--github")
    assert result.exit_code == 1
    suite = ET.parse(project / "out" / "junit.xml").getroot()
    assert len(suite.iter("testcase").__next__().attrib) > 0
    assert len(list(suite.iter("testcase"))) == 3
    report = json.loads((project / "out" / "report.json").read_text())
    assert [layer["status"] for layer in report["layers"]] == ["PASS", "FAIL", "ERROR"]
    lines = result.output.splitlines()
    annotations = [line for line in lines if line.startswith("::error")]
    assert len(annotations) == 2 and "wrong" in annotations[0]
    assert lines.index(annotations[-1]) < next(i for i, line in enumerate(lines) if "┃ layer" in line)
    assert "1 passed, 1 failed, 1 errors" in result.output


def test_format_and_output_still_work_beside_the_new_flags(project):
    result = invoke("run", "all", "--seed", 5, "--format", "junit", "--output", "a.xml", "--json", "b.json")
    assert result.exit_code == 1
    ET.parse(project / "a.xml")
    assert json.loads((project / "b.json").read_text())["layers"][0]["name"] == "good"
    assert "max abs err" in result.output  # the table still prints


def test_json_on_stdout_stays_one_document_with_junit_to_a_file(project):
    result = invoke("run", "all", "--seed", 5, "--format", "json", "--junit", "j.xml")
    json.loads(result.stdout)
    ET.parse(project / "j.xml")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "json", "--github"], "--github and --format json would both print on stdout"),
        (["--junit", "r.xml", "--json", "r.xml"], "two reports would be written to the same file"),
        (["--junit", "layers.yaml"], "--junit layers.yaml is the config"),
        (["--json", "mine.py"], "--json mine.py is a source file"),
        (["-q", "-v"], "--verbose and --quiet contradict each other"),
    ],
)
def test_impossible_report_combinations_exit_2_before_running(project, args, message):
    before = (project / "layers.yaml").read_text()
    result = invoke("run", "all", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert (project / "layers.yaml").read_text() == before


# -- how much the table says -----------------------------------------------------------------
def test_quiet_prints_the_failures_and_the_summary_only(project):
    result = invoke("run", "all", "--seed", 5, "-q")
    assert result.exit_code == 1
    assert "max abs err" not in result.stdout  # no table
    assert "wrong FAIL" in result.stdout and "raising ERROR" in result.stdout
    assert "good" not in result.stdout
    assert "1 passed, 1 failed, 1 errors" in result.stdout


def test_verbose_shows_every_example_and_the_users_traceback(project):
    result = invoke("run", "all", "--seed", 5, "-v")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    examples = [line for line in lines if "  seed " in line and " scale " in line]
    assert len(examples) > 3 and any(line.strip().endswith("PASS") for line in examples)
    assert "Traceback (most recent call last):" in result.stdout
    assert 'mine.py", line 21, in helper' in result.stdout
    assert "ValueError: boom in backward" in result.stdout
    assert "gradcheck/adapters.py" not in result.stdout  # the user's frames, not gradcheck's


def test_pdb_stops_at_the_users_frame(project):
    result = subprocess.run(
        [sys.executable, "-m", "gradcheck", "run", "raising", "--seed", "5", "--pdb"],
        input="p x.shape\nq\n",
        capture_output=True,
        text=True,
        cwd=project,
        timeout=300,
    )
    assert "--pdb: layer raising raised ValueError: boom in backward" in result.stderr
    assert "(Pdb)" in result.stdout
    assert "mine.py(21)helper()" in result.stdout  # the debugger's current frame is where the user raised
    assert "(1, 1)" in result.stdout or "(1," in result.stdout  # `p x.shape` ran in the user's frame
    assert result.returncode == 1


def test_a_raising_layers_error_starts_at_the_users_file_and_line(project):
    result = invoke("run", "raising", "--seed", 5, "--format", "json")
    message = json.loads(result.stdout)["layers"][0]["message"]
    assert message.startswith("mine.py:21: backward raised ValueError: boom in backward")


# -- the reproduce command is never wrapped -------------------------------------------------
def test_the_reproduce_command_is_whole_at_40_columns(tmp_path, monkeypatch):
    deep = tmp_path / "a-rather-long-folder-name" / "and-another-one"
    deep.mkdir(parents=True)
    (deep / "mine.py").write_text(MODULE)
    (deep / "layers.yaml").write_text(layers_yaml("wrong"))
    monkeypatch.chdir(tmp_path)
    config = "a-rather-long-folder-name/and-another-one/layers.yaml"
    expected = f"gradcheck check wrong --seed 5 --config {config}"
    in_process = invoke("run", "all", "--seed", 5, "--config", config, env={"COLUMNS": "40"})
    alone = subprocess.run(
        [sys.executable, "-m", "gradcheck", "run", "all", "--seed", "5", "--config", config],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "40"},
        timeout=300,
    )
    for output in (in_process.stdout, alone.stdout):
        assert f"  reproduce: {expected}" in output.splitlines()
    assert max(len(line) for line in in_process.stdout.splitlines() if "reproduce" not in line) <= 40


def test_github_annotates_configuration_errors_too(project):
    (project / "layers.yaml").write_text(layers_yaml("good").replace("style: functions", "style: funktions"))
    result = invoke("run", "all", "--github", "--junit", "j.xml")
    assert result.exit_code == 2
    assert result.stdout.startswith("::error file=") and "line=" in result.stdout
    assert not (project / "j.xml").exists()
