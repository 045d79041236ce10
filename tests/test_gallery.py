"""The bug gallery: every buggy layer fails, on the tensor its bug breaks; every fixed twin passes.

Layer names come from examples/buggy/layers.yaml and fixed.yaml, so adding a layer there
adds its tests; BUGS below says which tensor each bug must be blamed on.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from layer_expectations import assert_blamed_on, bug, failed_tensors, layer_names

from gradcheck import run_config
from gradcheck.cli import cli
from gradcheck.results import LayerResult, Status, describe_failure

GALLERY = Path(__file__).resolve().parent.parent / "examples" / "buggy"
BUGGY = GALLERY / "layers.yaml"
FIXED = GALLERY / "fixed.yaml"
EXAMPLES = 10
SEED = 0

FAIL, ERROR = Status.FAIL, Status.ERROR


# Wrong shapes and None are ERROR, wrong values and a changed parameter FAIL.
BUGS = {
    "transposed-weight": bug({ERROR}, {"W"}, {"x", "b"}),
    "transposed-weight-square": bug({FAIL}, {"W"}, {"x", "b"}),
    "bias-first-row": bug({FAIL}, {"b"}, {"x", "w"}),
    "bias-unsummed": bug({ERROR}, {"b"}, {"x", "w"}),
    "bias-keepdims": bug({ERROR}, {"b"}, {"x", "w"}),
    "batch-mean": bug({FAIL}, {"W", "b"}, {"x"}),
    "sigmoid-wrong-sign": bug({FAIL}, {"x"}),
    "tanh-missing-square": bug({FAIL}, {"x"}),
    # The forward returns nan for large inputs: no gradient to blame, FAIL or ERROR.
    "softmax-overflow": bug({FAIL, ERROR}),
    "batchnorm-constant-stats": bug({FAIL}, {"x"}, {"gamma", "beta"}),
    "conv-stride": bug({FAIL}, {"x"}, {"W", "b"}),
    # W is changed by backward (its stored dW is right); dx, made with the new W, is wrong.
    "sgd-in-backward": bug({FAIL}, {"W"}),
    "returns-none": bug({ERROR}, {"x"}),
    "dropout-no-mask": bug({FAIL}, {"x"}),
    "dropout-no-scale": bug({FAIL}, {"x"}),
    "mul-swapped-inputs": bug({FAIL}, {"x", "y"}),
    "conv-pad-uncropped": bug({ERROR}, {"x"}, {"w", "b"}),
    "conv-pad-misaligned": bug({FAIL}, {"x"}, {"w", "b"}),
    "conv-pad-negative-slice": bug({ERROR}, {"x"}, {"w", "b"}),
    "leaky-relu-slope": bug({FAIL}, {"x"}),
    "embedding-overwrite": bug({FAIL}, {"W"}),
    "lstm-forget-gate": bug({FAIL}, {"x", "prev_h", "Wx", "Wh", "b"}, {"prev_c"}),
    "softmax-loss-not-averaged": bug({FAIL}, {"x"}),
}


@pytest.fixture(scope="module")
def buggy_results() -> dict[str, LayerResult]:
    run = run_config(str(BUGGY), examples=EXAMPLES, seed=SEED)
    return {layer.name: layer for layer in run.layers}


@pytest.fixture(scope="module")
def fixed_results() -> dict[str, LayerResult]:
    run = run_config(str(FIXED), examples=EXAMPLES, seed=SEED)
    return {layer.name: layer for layer in run.layers}


def test_every_bug_has_a_fixed_twin_under_the_same_name():
    assert layer_names(BUGGY) == layer_names(FIXED)


def test_every_bug_says_which_tensor_it_breaks():
    missing = set(layer_names(BUGGY)) - set(BUGS)
    assert not missing, f"add these layers to BUGS in {Path(__file__).name}: {sorted(missing)}"


def test_run_config_keeps_file_order(buggy_results):
    assert list(buggy_results) == layer_names(BUGGY)


@pytest.mark.parametrize("name", layer_names(BUGGY))
def test_buggy_layer_fails_on_the_right_tensor(name, buggy_results):
    res = buggy_results[name]
    assert_blamed_on(res, BUGS.get(name, bug({FAIL, ERROR})))
    with pytest.raises(AssertionError, match=re.escape(name)):
        res.assert_ok()


@pytest.mark.parametrize("name", layer_names(FIXED))
def test_fixed_twin_passes(name, fixed_results):
    res = fixed_results[name]
    res.assert_ok(strict=True)
    assert res.status is Status.PASS, describe_failure(res)
    assert not failed_tensors(res), describe_failure(res)


def run_cli(config: Path, tmp_path: Path, *extra: str):
    """Invoke `gradcheck run all --config ...` in-process with a JSON report; return (result, report)."""
    report = tmp_path / "report.json"
    args = ["run", "all", "--config", str(config), "--seed", str(SEED)]
    args += ["--format", "json", "--output", str(report), *extra]
    result = CliRunner().invoke(cli, args)
    return result, json.loads(report.read_text()) if report.exists() else None


def test_cli_fails_every_buggy_layer(tmp_path):
    result, report = run_cli(BUGGY, tmp_path, "--examples", str(EXAMPLES))
    assert result.exit_code == 1, result.output
    assert report is not None, result.output
    statuses = {layer["name"]: layer["status"] for layer in report["layers"]}
    assert list(statuses) == layer_names(BUGGY)
    passed = [name for name, status in statuses.items() if status not in ("FAIL", "ERROR")]
    assert not passed, f"buggy layers not failed by the CLI: {passed}"


def test_cli_passes_every_fixed_twin(tmp_path):
    result, report = run_cli(FIXED, tmp_path, "--examples", "3")
    assert result.exit_code == 0, result.output
    assert report is not None, result.output
    assert {layer["status"] for layer in report["layers"]} == {"PASS"}


def test_a_diagnosis_read_off_another_example_says_where(buggy_results):
    """The numbers shown are the smallest failure's; a batch size named in the diagnosis that is
    not that example's must come with the dims where it was seen."""
    checked = 0
    for layer in buggy_results.values():
        for tensor in layer.tensors:
            named = re.search(r"\(N=(\d+)\)", tensor.diagnosis or "")
            if not named or not tensor.failing_dims or tensor.failing_dims.get("N") == int(named.group(1)):
                continue
            checked += 1
            seen = re.search(r"\(seen at ([^)]*)\)", tensor.diagnosis)
            assert seen and f"N={named.group(1)}" in seen.group(1).split(", "), tensor.diagnosis
    assert checked  # batch-mean, at this seed, is diagnosed from its larger rerun


def test_the_readme_excerpt_is_what_the_command_prints():
    """README.md shows a real run of the gallery; it must stay what that command prints (times aside)."""
    readme = (GALLERY.parent.parent / "README.md").read_text()
    section = readme[readme.index("## What a caught bug looks like") :]
    command = re.search(r"`gradcheck (run [^`]*)`:", section).group(1)
    shown = re.search(r"```\w*\n(.*?)\n```", section, re.S).group(1)
    result = CliRunner().invoke(cli, command.split(), env={"COLUMNS": "120"})
    assert _stable(result.output) == _stable(shown)


def _stable(text: str) -> str:
    """The text with what varies between machines blanked out: times, and numbers at rounding level.

    A PASS row's error is rounding (1e-11 on one CPU, 1e-10 or an exact 0 on another BLAS build);
    how many examples hypothesis's search tries after a failure changes with its version.
    Statuses, failing elements and errors far above rounding are what the excerpt promises.
    """
    text = re.sub(r" +\d+\.\d+s\b", " T", text.rstrip("\n"))
    text = re.sub(r"│ +\d+ │", "│ N │", text)  # the examples column: the only cell that is a bare count
    return re.sub(r"[-+]?\d\.\d+e-(0[7-9]|[1-9]\d)|\b0\.0+e[-+]00", "~0", text)


README_ROW = "│ batch-mean               │ x (2x1) │       16 │    2.84e-12 │    0.00e+00 │ PASS   │  2.10s │"


@pytest.mark.parametrize(
    "row",
    [
        README_ROW.replace("2.84e-12", "1.19e-10"),  # another BLAS's rounding
        README_ROW.replace("0.00e+00", "1.39e-17"),  # not exactly 0 elsewhere
        README_ROW.replace("      16 │", "       6 │").replace(" 2.10s", "12.10s"),  # older hypothesis, slower CPU
    ],
)
def test_the_excerpt_comparison_ignores_what_varies_between_machines(row):
    assert _stable(row) == _stable(README_ROW)


@pytest.mark.parametrize(
    "row",
    [
        README_ROW.replace("PASS  ", "FAIL  "),
        README_ROW.replace("2.84e-12", "2.84e-02"),  # an error far above rounding
        README_ROW.replace("x (2x1)", "x (1x2)"),
    ],
)
def test_the_excerpt_comparison_still_sees_what_the_excerpt_promises(row):
    assert _stable(row) != _stable(README_ROW)
