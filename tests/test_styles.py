"""Real-world layer styles registered with no glue code: right ones pass, wrong ones
fail on the right tensor; the documented example file works as written.

Layer names come from the YAML files under tests/fixtures, so adding a layer adds its tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from layer_expectations import assert_blamed_on, bug, failed_tensors, layer_names

from gradcheck import check_layer, run_config
from gradcheck.cli import cli
from gradcheck.results import LayerResult, Status, describe_failure

FIXTURES = Path(__file__).resolve().parent / "fixtures"
RIGHT = FIXTURES / "styles" / "layers.yaml"
WRONG = FIXTURES / "styles" / "buggy.yaml"
SPEC_EXAMPLE = FIXTURES / "spec_example" / "layers.yaml"
EXAMPLES = 10
SEED = 0

FAIL, ERROR = Status.FAIL, Status.ERROR

# Right layers PASS, except where the code is right but careless in a way the checker warns about.
RIGHT_STATUS = {
    "dlfs1-relu": Status.WARN,  # the book's Relu zeroes the upstream gradient in place
}


BUGS = {
    "cs231n-affine": bug({ERROR}, {"x"}, {"w", "b"}),  # dx not reshaped to x's shape
    "cs231n-relu": bug({FAIL}, {"x"}),  # forgets to multiply by dout
    "cs231n-conv": bug({FAIL}, {"w"}, {"x", "b"}),  # dw reset for every sample
    "cs231n-svm-loss": bug({FAIL}, {"x"}),  # -1 instead of -num_pos
    "cs231n-lstm-step": bug({FAIL}, {"prev_c"}, {"x", "prev_h", "Wx", "Wh", "b"}),
    "cs231n-batchnorm": bug({FAIL}, {"gamma"}, {"x", "beta"}),  # dgamma uses x, not xn
    "dlfs1-affine": bug({ERROR}, {"x"}, {"W", "b"}),  # dx not reshaped back
    "dlfs1-softmax-with-loss": bug({FAIL}, {"x"}),  # the book's log(y + 1e-7)
    "dlfs2-matmul": bug({FAIL}, {"W"}, {"x"}),  # rebinds dW, grads[0] stays zero
    "dlfs2-affine": bug({FAIL}, {"b"}, {"x", "W"}),  # never stores db
    "numpy-ml-fully-connected": bug({FAIL}, {"W"}, {"X"}),  # re-initialises each forward
    "tutorial-conv3x3": bug({FAIL}, {"image"}, {"filters"}),  # dx after the update
    "tutorial-softmax": bug({FAIL}, {"input", "weights", "biases"}),  # one-hot-only backward
}

SPEC_STATUS = {
    "affine": Status.PASS,
    "dense-numpy-ml-style": Status.PASS,
    "conv": Status.PASS,
    "softmax-loss": Status.PASS,
    "log": Status.XFAIL,  # xfail: "known: backward divides by x twice"
}


@pytest.fixture(scope="module")
def right_results() -> dict[str, LayerResult]:
    run = run_config(str(RIGHT), examples=EXAMPLES, seed=SEED)
    return {layer.name: layer for layer in run.layers}


@pytest.fixture(scope="module")
def wrong_results() -> dict[str, LayerResult]:
    run = run_config(str(WRONG), examples=EXAMPLES, seed=SEED)
    return {layer.name: layer for layer in run.layers}


def test_every_wrong_layer_has_a_right_version_under_the_same_name():
    assert set(layer_names(WRONG)) <= set(layer_names(RIGHT))


def test_every_wrong_layer_says_which_tensor_it_breaks():
    missing = set(layer_names(WRONG)) - set(BUGS)
    assert not missing, f"add these layers to BUGS in {Path(__file__).name}: {sorted(missing)}"


@pytest.mark.parametrize("name", layer_names(RIGHT))
def test_right_layer_passes(name, right_results):
    res = right_results[name]
    expected = RIGHT_STATUS.get(name, Status.PASS)
    assert res.status is expected, describe_failure(res)
    assert not failed_tensors(res), describe_failure(res)
    res.assert_ok()


def test_in_place_upstream_change_is_reported(right_results):
    res = right_results["dlfs1-relu"]
    assert res.warnings or any(t.status is Status.WARN for t in res.tensors), describe_failure(res)


@pytest.mark.parametrize("name", layer_names(WRONG))
def test_wrong_layer_fails_on_the_right_tensor(name, wrong_results):
    res = wrong_results[name]
    assert_blamed_on(res, BUGS.get(name, bug({FAIL, ERROR})))
    with pytest.raises(AssertionError):
        res.assert_ok()


@pytest.mark.parametrize("name", layer_names(SPEC_EXAMPLE))
def test_spec_example_layer(name):
    res = check_layer(name, config=str(SPEC_EXAMPLE), examples=EXAMPLES, seed=SEED)
    assert res.status is SPEC_STATUS[name], describe_failure(res)
    res.assert_ok()  # XFAIL is an expected outcome, not a failure


def test_spec_example_cli_exits_zero():
    args = ["run", "all", "--config", str(SPEC_EXAMPLE), "--examples", "3", "--seed", str(SEED)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output


# -- one adapter per style: the keys any style may use are the adapters' own --------------------------------
STYLES2 = FIXTURES / "styles2" / "layers.yaml"
SHARED_KEYS = ("onehot", "pack", "grad_outputs", "setup")


def test_each_layer_gets_the_one_adapter_of_its_style_whatever_shared_keys_it_uses():
    from gradcheck.adapters import adapter_for
    from gradcheck.adapters_class import ClassAdapter, FunctionsAdapter, LossAdapter
    from gradcheck.adapters_styles import ElementwiseAdapter, LossObjectAdapter, ModelFunctionsAdapter
    from gradcheck.registry import load_registry

    by_style = {
        "class": ClassAdapter,
        "functions": FunctionsAdapter,
        "loss": LossAdapter,
        "elementwise": ElementwiseAdapter,
        "loss-object": LossObjectAdapter,
    }
    specs = load_registry(STYLES2).layers
    shared = [spec for spec in specs if any(key in spec.options for key in SHARED_KEYS)]
    assert {key for spec in shared for key in SHARED_KEYS if key in spec.options} == set(SHARED_KEYS)
    for spec in specs:
        adapter = adapter_for(spec)
        expected = by_style.get(spec.style, ModelFunctionsAdapter if spec.style == "model" else None)
        if spec.style != "model" or spec.options.get("kind") != "object":
            assert type(adapter) is expected, spec.name
        assert not hasattr(adapter, "inner"), spec.name  # wraps no other adapter


def test_the_adapters_do_not_import_the_registry():
    package = Path(__file__).resolve().parent.parent / "gradcheck"
    for module in package.glob("adapters*.py"):
        assert "registry" not in module.read_text(), module.name
