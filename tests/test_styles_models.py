"""Whole models: the two examples, the `gradcheck init --style model` starter, and a model of
10^5 parameters, which auto mode checks with few forwards (counted, never timed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradcheck import check_layer
from gradcheck.cli import cli
from gradcheck.results import Status, describe_failure

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CS231N = EXAMPLES / "cs231n-two-layer-net"
TUTORIAL = EXAMPLES / "tutorial-two-layer-net"


def invoke(*args):
    return CliRunner(env={"FORCE_COLOR": None}).invoke(cli, [str(a) for a in args], catch_exceptions=False)


def planted(folder: Path, tmp_path: Path, module: str, old: str, new: str) -> Path:
    """A copy of an example folder with one line of its model changed; its layers.yaml."""
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    source = (copy / module).read_text()
    assert old in source
    (copy / module).write_text(source.replace(old, new, 1))
    return copy / "layers.yaml"


@pytest.mark.parametrize("config, name", [(CS231N, "two-layer-net"), (TUTORIAL, "planar-two-layer-net")])
def test_example_model_passes(config, name):
    res = check_layer(name, config=config / "layers.yaml", examples=6, seed=0)
    assert res.status is Status.PASS, describe_failure(res)
    assert {t.name for t in res.tensors} == {"W1", "b1", "W2", "b2"}


@pytest.mark.parametrize(
    "folder, name, module, old, new, blamed",
    [
        (CS231N, "two-layer-net", "two_layer_net.py", "+ self.reg * W2", "", "W2"),  # regularisation forgotten
        (CS231N, "two-layer-net", "two_layer_net.py", "(hidden_in > 0)", "(hidden_in >= -1)", "W1"),  # relu mask
        (TUTORIAL, "planar-two-layer-net", "planar_net.py", "(1 - A1**2)", "(1 - A1)", "b1"),  # tanh'
        (
            TUTORIAL,
            "planar-two-layer-net",
            "planar_net.py",
            "db2 = np.sum(dZ2, axis=1, keepdims=True) / m",
            "db2 = np.mean(dZ2, axis=1, keepdims=True) / m",
            "b2",
        ),  # divided by m twice
    ],
)
def test_example_model_with_a_planted_bug_fails_on_that_parameter(tmp_path, folder, name, module, old, new, blamed):
    config = planted(folder, tmp_path, module, old, new)
    res = check_layer(name, config=config, examples=6, seed=0)
    report = describe_failure(res)
    assert res.status is Status.FAIL, report
    assert blamed in {t.name for t in res.tensors if t.failed}, report
    assert f"{blamed}[" in report  # the element, with its analytic and numeric values


def test_example_cli_exit_codes(tmp_path):
    assert (
        invoke(
            "run", "planar-two-layer-net", "--config", TUTORIAL / "layers.yaml", "--examples", 3, "--seed", 0
        ).exit_code
        == 0
    )
    config = planted(TUTORIAL, tmp_path, "planar_net.py", "(1 - A1**2)", "(1 - A1)")
    assert invoke("run", "all", "--config", config, "--examples", 3, "--seed", 0).exit_code == 1


BIG = Path(__file__).resolve().parent / "fixtures" / "styles2" / "big.yaml"


def test_a_model_of_a_hundred_thousand_parameters_needs_few_forwards():
    res = check_layer("dlfs-mnist-size", config=BIG, examples=1, seed=0)
    assert res.status is Status.PASS, describe_failure(res)
    sizes = {t.name: int(__import__("numpy").prod(t.shape)) for t in res.tensors}
    assert sum(sizes.values()) > 10**5
    weights = {t.name: t for t in res.tensors}
    assert weights["W1"].by_directions == 1  # 100352 elements: random directions, not 2 forwards each
    assert res.calls["forward"] < 2 * (sizes["b1"] + sizes["b2"] + sizes["W2"]) + 100


def test_init_writes_a_model_starter_that_passes_and_catches_a_bug(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("init", "--style", "model")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layers.yaml", "mymodel.py"]
    assert invoke("run", "all", "--seed", 0, "--examples", 5).exit_code == 0
    broken = tmp_path / "broken"  # another folder: a module is imported once per path
    assert invoke("init", "--style", "model", broken).exit_code == 0
    model = broken / "mymodel.py"
    model.write_text(model.read_text().replace("+ self.reg * W1", ""))
    assert invoke("run", "all", "--config", broken / "layers.yaml", "--seed", 0, "--examples", 5).exit_code == 1


def test_init_without_style_still_writes_the_layer_starter(tmp_path):
    assert invoke("init", tmp_path).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layers.yaml", "mylayers.py"]
