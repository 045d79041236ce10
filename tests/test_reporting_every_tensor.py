"""Every failing tensor is reported at its own example; a table's shapes come from one example per layer."""

import json
import re
from pathlib import Path

import pytest

from gradcheck.engine import Options, check_layer
from gradcheck.registry import load_registry
from gradcheck.reporters.json import render_json
from gradcheck.reporters.table import render_table
from gradcheck.results import RunResult, Status

ROOT = Path(__file__).resolve().parent.parent
TWO_BUGS = load_registry(ROOT / "tests" / "fixtures" / "realcode_report" / "twobugs.yaml").get("affine-two-bugs")
BUILTINS = load_registry(ROOT / "layers.yaml")


@pytest.fixture(scope="module", params=[0, 1, 2])
def two_bugs(request):
    return check_layer(TWO_BUGS, Options(seed=request.param, examples=10))


def test_a_layer_with_two_bugs_reports_both_tensors(two_bugs):
    tensors = {t.name: t for t in two_bugs.tensors}
    assert two_bugs.status is Status.FAIL
    assert tensors["W"].status is Status.FAIL and tensors["b"].status is Status.FAIL
    assert tensors["x"].status is Status.PASS
    assert "W" in two_bugs.message and "b" in two_bugs.message


def test_each_failing_tensor_has_its_own_worst_element_and_example(two_bugs):
    b = next(t for t in two_bugs.tensors if t.name == "b")
    assert b.failing_dims["N"] >= 2  # an averaged db cannot fail at batch size 1
    assert b.example["dims"] == b.failing_dims and b.shape == (b.failing_dims["M"],)
    assert b.worst_index is not None and abs(b.analytic - b.numeric) > 1e-3
    assert "averages over the batch" in b.diagnosis  # diagnosed at its own example, not at N=1


def test_json_and_the_assertion_message_name_each_tensors_example(two_bugs):
    layer = json.loads(render_json(RunResult((two_bugs,), 1.0, 0)))["layers"][0]
    examples = {t["name"]: t["example"] for t in layer["tensors"]}
    assert examples["b"]["dims"]["N"] >= 2 and set(examples["b"]) == {"dims", "seed", "scale"}
    assert examples["W"]["dims"] == layer["failing_dims"]
    text = str(pytest.raises(AssertionError, two_bugs.assert_ok).value)
    assert "smallest failing dims of b: N=" in text and "smallest failing dims of W: N=" in text


def test_the_table_says_where_a_tensor_failed_away_from_the_smallest_dims(two_bugs):
    text = render_table(RunResult((two_bugs,), 1.0, 0))
    b = next(t for t in two_bugs.tensors if t.name == "b")
    dims = ", ".join(f"{k}={v}" for k, v in b.failing_dims.items())
    assert f"failed at {dims}" in text


def _row_shapes(text: str) -> dict[str, tuple[int, ...]]:
    return {name: tuple(int(n) for n in shape.split("x")) for name, shape in re.findall(r"│ (\w+) \(([\dx]+)\)", text)}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_passing_layers_rows_show_shapes_of_one_example(seed):
    """layer-norm: x (N x T x D) beside gamma (D): both rows must agree on D."""
    result = check_layer(BUILTINS.get("layer-norm"), Options(seed=seed, examples=10))
    shapes = _row_shapes(render_table(RunResult((result,), 1.0, seed)))
    assert result.status is Status.PASS and set(shapes) == {"x", "gamma", "beta"}
    assert shapes["x"][-1] == shapes["gamma"][0] == shapes["beta"][0], shapes


def test_a_failing_layers_rows_show_shapes_at_the_smallest_failing_dims(two_bugs):
    shapes = _row_shapes(render_table(RunResult((two_bugs,), 1.0, 0)))
    dims = two_bugs.failing_dims
    assert shapes == {"x": (dims["N"], dims["D"]), "W": (dims["D"], dims["M"]), "b": (dims["M"],)}
