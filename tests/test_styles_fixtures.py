"""Layer styles beyond the three originals, registered with no adapter file: whole models,
elementwise derivative functions, renamed methods... Right versions pass, each planted bug
fails on the tensor it breaks, through the Python API and the CLI.

Layer names come from tests/fixtures/styles2, so adding a layer there adds its tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from layer_expectations import assert_blamed_on, bug, failed_tensors

from gradcheck import check_layer, run_config
from gradcheck.cli import cli
from gradcheck.registry import load_registry
from gradcheck.results import LayerResult, Status, describe_failure

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "styles2"
RIGHT, WRONG = FIXTURES / "layers.yaml", FIXTURES / "buggy.yaml"
EXAMPLES, SEED = 8, 0


def layer_names(path: Path) -> list[str]:
    """Layer names in file order, read by gradcheck itself (the files use its !tuple tag)."""
    return load_registry(path).names()


FAIL, ERROR = Status.FAIL, Status.ERROR

BUGS = {
    "cs231n-two-layer-net": bug({FAIL}, {"W1"}, {"b1", "W2", "b2"}),  # regularisation left out of dW1
    "dlfs-two-layer-net": bug({FAIL}, {"b1"}, {"W1", "W2", "b2"}),  # db1 averaged over the batch
    "tutorial-two-layer-net": bug({FAIL}, {"W1", "b1"}, {"W2", "b2"}),  # tanh' as 1 - A1
    "numpy-ml-sigmoid": bug({FAIL}, {"z"}),  # s * (1 + s)
    "mlfs-tanh": bug({FAIL}, {"x"}),  # 1 - y
    "mlfs-leaky-relu": bug({FAIL}, {"x"}),  # negative slope's sign
    "mlfs-softmax": bug({FAIL}, {"x"}),  # the Jacobian's diagonal alone
    "dlfs1-sigmoid": bug({FAIL}, {"x"}),
    "dlfs1-relu": bug({FAIL}, {"x"}),
    "tanh-derivative-of-output": bug({FAIL}, {"x"}),
    "mlfs-dense": bug({FAIL}, {"X"}, {"W", "w0"}),  # a stray factor 2 in dX
    "numpy-ml-tanh-cell": bug({FAIL}, {"X", "W"}),  # tanh' as 1 - A
    "mlfs-cross-entropy": bug({FAIL}, {"p"}),  # sign of a term
    "numpy-ml-squared-error": bug({FAIL}, {"y_pred"}),  # sign
    "mean-squared-error": bug({FAIL}, {"y_pred"}),  # the mean's 1/N left out
    "dlfs-softmax-with-loss": bug({FAIL}, {"x"}),  # not divided by the batch
    "mlfs-dense-set-up": bug({FAIL}, {"w0"}, {"X", "W"}),  # bias gradient averaged
    "factory-scale": bug({FAIL}, {"x"}),  # the factor forgotten
    "mlfs-dense-optimizer": bug({FAIL}, {"W"}, {"X", "w0"}),  # grad_w averaged
    "mlfs-reshape": bug({FAIL}, {"X"}),  # reshaped back in another element order
    "numpy-ml-multiply": bug({FAIL}, {"B", "C"}, {"A"}),  # always leaves out the first input
    "dlfs-dropout-net": bug({FAIL}, {"W1", "b1"}, {"W2", "b2"}),  # the dropout mask forgotten in backward
}


@pytest.fixture(scope="module")
def right_results() -> dict[str, LayerResult]:
    return {layer.name: layer for layer in run_config(str(RIGHT), examples=EXAMPLES, seed=SEED).layers}


@pytest.fixture(scope="module")
def wrong_results() -> dict[str, LayerResult]:
    return {layer.name: layer for layer in run_config(str(WRONG), examples=EXAMPLES, seed=SEED).layers}


def test_the_two_files_register_the_same_layers():
    assert layer_names(WRONG) == layer_names(RIGHT)
    assert set(BUGS) == set(layer_names(WRONG)), "say in BUGS which tensor each planted bug breaks"


@pytest.mark.parametrize("name", layer_names(RIGHT))
def test_right_layer_passes(name, right_results):
    res = right_results[name]
    assert res.status is Status.PASS, describe_failure(res)
    assert res.tensors and not failed_tensors(res)
    res.assert_ok()


@pytest.mark.parametrize("name", layer_names(WRONG))
def test_planted_bug_fails_on_its_tensor(name, wrong_results):
    res = wrong_results[name]
    assert_blamed_on(res, BUGS[name])
    with pytest.raises(AssertionError):
        res.assert_ok()


def test_model_report_names_the_parameter_and_element(wrong_results):
    report = describe_failure(wrong_results["cs231n-two-layer-net"])
    assert "W1[" in report and "analytic" in report and "numeric" in report


def test_a_model_checks_only_its_parameters(right_results):
    names = {t.name for t in right_results["cs231n-two-layer-net"].tensors}
    assert names == {"W1", "b1", "W2", "b2"}  # X and y are data


@pytest.mark.parametrize("name", ["tutorial-two-layer-net", "mlfs-softmax"])
def test_check_layer_by_name(name):
    assert check_layer(name, config=str(RIGHT), examples=3, seed=SEED).status is Status.PASS
    assert check_layer(name, config=str(WRONG), examples=3, seed=SEED).status is Status.FAIL


def test_cli_exit_codes_and_json():
    runner = CliRunner()
    args = ["--examples", "3", "--seed", str(SEED), "--format", "json"]
    right = runner.invoke(cli, ["run", "all", "--config", str(RIGHT), *args])
    assert right.exit_code == 0, right.output
    wrong = runner.invoke(cli, ["run", "cs231n-two-layer-net", "mlfs-softmax", "--config", str(WRONG), *args])
    assert wrong.exit_code == 1, wrong.output
    statuses = {layer["name"]: layer["status"] for layer in json.loads(wrong.stdout)["layers"]}
    assert statuses == {"cs231n-two-layer-net": "FAIL", "mlfs-softmax": "FAIL"}


def test_only_the_named_argument_of_a_loss_object_is_differentiated(right_results):
    assert {t.name for t in right_results["numpy-ml-squared-error"].tensors} == {"y_pred"}
    assert {t.name for t in right_results["mlfs-cross-entropy"].tensors} == {"p"}
