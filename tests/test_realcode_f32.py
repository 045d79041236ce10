"""Real code as it is: float32 layers checked at float32 precision, parameters
moved where the layer reads them (aliases), and weights a class draws itself never silently skipped.

Fixture layers under tests/fixtures/realcode imitate those styles; each right one has a bugged twin.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from gradcheck import check_layer
from gradcheck.cli import cli
from gradcheck.errors import ConfigError
from gradcheck.finite_diff import precision_tolerances
from gradcheck.registry import load_registry
from gradcheck.results import Status, describe_failure
from gradcheck.spec import DEFAULT_TOLERANCES

HERE = Path(__file__).parent / "fixtures" / "realcode"
RIGHT, WRONG = HERE / "layers.yaml", HERE / "buggy.yaml"
SEEDS = (0, 1)
EXAMPLES = 20


def check(config: Path, name: str, seed: int = 0, examples: int = EXAMPLES):
    return check_layer(name, config, seed=seed, examples=examples)


def failed(result) -> set[str]:
    return {t.name for t in result.tensors if t.failed}


# -- 1. float32 ----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", ["time-embedding", "time-rnn", "time-affine"])
def test_float32_time_layers_pass_at_float32_precision(name, seed):
    result = check(RIGHT, name, seed)
    assert result.status is Status.PASS, describe_failure(result)
    assert result.precision == "float32"
    assert result.tensors and all(t.status is Status.PASS for t in result.tensors)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "name, tensors",
    [
        ("time-embedding-last-step", {"W"}),  # = instead of +=: a missing term
        ("time-rnn-no-recurrence", {"xs"}),  # the hidden state's gradient forgotten
        ("time-affine-transposed", {"x"}),  # W where W.T belongs
        ("time-affine-mean-bias", {"b"}),  # a 1/(N*T)
    ],
)
def test_float32_bugged_twins_fail_on_the_bugged_tensor(name, tensors, seed):
    result = check(WRONG, name, seed)
    assert result.status is Status.FAIL, describe_failure(result)
    assert tensors <= failed(result), describe_failure(result)
    assert result.precision == "float32"


def test_float32_tolerances_are_derived_from_the_dtype_and_never_tighter():
    d = DEFAULT_TOLERANCES
    eps32, rtol32, atol32 = precision_tolerances(np.dtype(np.float32), d.eps, d.rtol, d.atol)
    eps16, rtol16, _ = precision_tolerances(np.dtype(np.float16), d.eps, d.rtol, d.atol)
    assert d.eps < eps32 < eps16 and d.rtol < rtol32 < rtol16 and atol32 >= d.atol
    # wide enough for rounding (ulp / step), narrow enough that a 1/2 or a missing term fails
    assert np.finfo(np.float32).eps / eps32 < rtol32 < 0.01
    assert precision_tolerances(np.dtype(np.float32), 1e-2, 0.5, 0.5) == (1e-2, 0.5, 0.5)


def test_float64_layers_stay_at_float64_precision():
    result = check(RIGHT, "aliased-affine")
    assert result.status is Status.PASS and result.precision == "float64"


def test_a_quiet_cast_to_float32_inside_forward_is_named():
    result = check(RIGHT, "quiet-float32")
    assert result.status is Status.WARN
    assert result.precision == "float32"
    assert "float32" in result.message and "inside" in result.message


def test_precision_is_in_the_json_and_the_table():
    runner = CliRunner()
    args = ["run", "time-embedding", "aliased-affine", "--config", str(RIGHT), "--seed", "0", "--examples", "3"]
    table = runner.invoke(cli, args)
    assert table.exit_code == 0, table.output
    assert "checked at float32 precision: time-embedding" in " ".join(table.output.split())
    out = runner.invoke(cli, args + ["--format", "json"])
    layers = {layer["name"]: layer for layer in json.loads(out.output)["layers"]}
    assert layers["time-embedding"]["precision"] == "float32"
    assert layers["aliased-affine"]["precision"] == "float64"


# -- 2. aliases ----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", ["aliased-affine", "self-init-aliased", "self-init-aliased-attr", "aliased-dict"])
def test_aliased_parameters_are_moved_where_the_layer_reads_them(name, seed):
    result = check(RIGHT, name, seed)
    assert result.status is Status.PASS, describe_failure(result)
    assert "W" in {t.name for t in result.tensors if t.kind == "param"}


def test_aliased_bugged_twin_fails_on_the_bugged_parameter():
    result = check(WRONG, "aliased-affine-mean-grad")
    assert result.status is Status.FAIL and failed(result) == {"W"}, describe_failure(result)


def test_a_parameter_the_layer_does_not_read_is_an_error_naming_where_it_reads():
    result = check(RIGHT, "stale-copy")
    assert result.status is Status.ERROR, describe_failure(result)
    assert "never changed forward's outputs, but moving self.W did" in result.message
    assert "self.W" in result.message and "self.params[0]" in result.message


# -- 3. undeclared weights -----------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_weights_a_class_draws_itself_are_found_and_checked(seed):
    result = check(RIGHT, "linear", seed)
    assert result.status is Status.PASS, describe_failure(result)
    assert {t.name: t.kind for t in result.tensors} == {"x": "input", "W": "param", "b": "param"}


@pytest.mark.parametrize("seed", SEEDS)
def test_a_wrong_dW_of_undeclared_weights_fails(seed):
    result = check(WRONG, "linear-wrong-dw", seed)
    assert result.status is Status.FAIL, describe_failure(result)
    assert "W" in failed(result)


def test_found_weights_without_a_findable_gradient_are_named_not_passed():
    result = check(RIGHT, "odd-grad-name")
    assert result.status is Status.WARN
    assert "self.W" in result.message and "self.dW" in result.message
    assert "not checked" in result.message


def test_an_undeclared_entry_of_a_params_dict_is_named():
    result = check(RIGHT, "partly-declared")
    assert result.status is Status.WARN
    assert "self.params['b']" in result.message


def test_discovery_leaves_declared_params_their_gradients_and_running_statistics_alone():
    for name in ("linear-declared", "batchnorm-running", "time-rnn", "aliased-affine"):
        result = check(RIGHT, name, examples=5)
        assert result.status is Status.PASS and not result.warnings, (name, describe_failure(result))


def test_discover_false_turns_discovery_off():
    result = check(RIGHT, "linear-undiscovered")
    assert result.status is Status.PASS and [t.name for t in result.tensors] == ["x"]


def test_discover_must_be_a_boolean(tmp_path):
    config = tmp_path / "layers.yaml"
    config.write_text(RIGHT.read_text().replace("discover: false", "discover: sometimes"))
    (tmp_path / "own_weights.py").write_text((HERE / "own_weights.py").read_text())
    (tmp_path / "time_layers.py").write_text((HERE / "time_layers.py").read_text())
    with pytest.raises(ConfigError) as raised:
        load_registry(config)
    assert any("'discover' must be true or false" in p for p in raised.value.problems)
