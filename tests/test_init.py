"""Adoption: `gradcheck init` makes a project that passes, the pre-commit hook, the documented pytest pattern."""

import tomllib
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from gradcheck import check_layer, layer_names
from gradcheck.cli import cli
from gradcheck.starter import FILES

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "cli"


def invoke(*args):
    return CliRunner(env={"FORCE_COLOR": None}).invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_a_fresh_project_from_init_passes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("init")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layers.yaml", "mylayers.py"]
    assert "gradcheck run all" in result.stdout
    run = invoke("run", "all", "--seed", 0)  # as the user will: the starter's own 20 examples per layer
    assert run.exit_code == 0, run.output
    assert "2 passed, 0 failed, 0 errors" in run.stdout


def test_the_starter_catches_a_bug(tmp_path, monkeypatch):
    """The starter is a real check: break its bias gradient and the run fails."""
    monkeypatch.chdir(tmp_path)
    invoke("init")
    layers = tmp_path / "mylayers.py"
    layers.write_text(layers.read_text().replace("dout.sum(axis=0)", "dout.mean(axis=0)"))
    assert invoke("run", "all", "--seed", 0, "--examples", 8).exit_code == 1


def test_init_refuses_to_overwrite_without_force(tmp_path):
    (tmp_path / "layers.yaml").write_text("mine\n")
    result = invoke("init", tmp_path)
    assert result.exit_code == 2
    assert "layers.yaml already exists" in result.stderr and "--force" in result.stderr
    assert (tmp_path / "layers.yaml").read_text() == "mine\n"
    assert not (tmp_path / "mylayers.py").exists()  # nothing was written
    assert invoke("init", tmp_path, "--force").exit_code == 0
    assert (tmp_path / "layers.yaml").read_text() == FILES["layers.yaml"]


def test_init_into_a_new_folder(tmp_path):
    result = invoke("init", tmp_path / "project")
    assert result.exit_code == 0
    assert f"cd {tmp_path / 'project'} && gradcheck run all" in result.stdout
    assert layer_names(tmp_path / "project" / "layers.yaml") == ["affine", "relu"]


def test_pre_commit_hook_runs_the_whole_registry():
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "gradcheck" and hook["language"] == "python"
    assert hook["entry"] == "gradcheck run all" and hook["pass_filenames"] is False
    command, *args = hook["entry"].split()
    assert command in _console_scripts()
    assert invoke(*args, "--help").exit_code == 0


def _console_scripts():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


# -- the pytest pattern of the documentation ----------------------------------------------------
CONFIG = FIXTURES / "layers.yaml"


@pytest.mark.parametrize("name", layer_names(CONFIG))
def test_documented_pytest_pattern(name):
    check_layer(name, CONFIG, seed=0, examples=3).assert_ok()


def test_pytest_pattern_fails_readably_on_a_bug():
    with pytest.raises(AssertionError, match=r"bias-not-summed: FAIL(.|\n)*worst element b\[0\]"):
        check_layer("bias-not-summed", FIXTURES / "failing.yaml", seed=0, examples=3).assert_ok()


def test_layer_names_keeps_file_order():
    assert layer_names(FIXTURES / "unruly.yaml") == ["square", "hang", "exits", "killed", "affine"]
