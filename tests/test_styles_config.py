"""layers.yaml keys of the newer styles: each mistake is one `layers.yaml:LINE: message` line
(exit 2, no traceback), and a layer that does not fit its declaration is that layer's ERROR
with a message naming the key that would fix it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gradcheck import check_layer
from gradcheck.cli import cli
from gradcheck.errors import ConfigError
from gradcheck.registry import load_registry
from gradcheck.results import Status

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "styles2"

MODEL = f"""\
layers:
  - name: net
    impl: {FIXTURES}/cs231n_models.py:TwoLayerNet
    style: model
    init: {{input_dim: $D, hidden_dim: $H, num_classes: $C}}
    params: {{W1: [D, H], b1: [H], W2: [H, C], b2: [C]}}
    inputs:
      X: {{shape: [N, D], range: [-1, 1]}}
      y: {{shape: [N], integers: [0, C - 1]}}
    dims: {{N: [1, 3], D: [1, 3], H: [1, 3], C: [2, 3]}}
"""
TUTORIAL = f"""\
layers:
  - name: net
    impl: {FIXTURES}/tutorial_models.py
    style: model
    forward: forward_propagation
    cost: compute_cost
    backward: backward_propagation
    params: {{W1: [H, D], b1: [H, 1], W2: [1, H], b2: [1, 1]}}
    inputs:
      X: {{shape: [D, M], range: [-1, 1]}}
      Y: {{shape: [1, M], values: [0, 1]}}
    batch: M
    dims: {{M: [1, 3], D: [1, 3], H: [1, 3]}}
"""
ELEMENTWISE = f"""\
layers:
  - name: act
    impl: {FIXTURES}/activations.py
    style: elementwise
    function: sigmoid
    derivative: sigmoid_grad
    inputs: {{x: [N, D]}}
    dims: {{N: [1, 3], D: [1, 3]}}
"""
DENSE = f"""\
layers:
  - name: dense
    impl: {FIXTURES}/renamed_layers.py:Dense
    style: class
    forward: forward_pass
    backward: backward_pass
    init: {{n_units: $M, input_dim: $D}}
    params: {{W: [D, M], w0: [1, M]}}
    grads: attr:grad_{{name}}
    inputs: {{X: [N, D]}}
    dims: {{N: [1, 3], D: [1, 3], M: [1, 3]}}
"""
LOSS = f"""\
layers:
  - name: loss
    impl: {FIXTURES}/more_layers.py:CrossEntropy
    style: loss-object
    differentiate: p
    onehot: [y]
    inputs:
      y: {{shape: [N], integers: [0, C - 1]}}
      p: {{shape: [N, C], range: [0.05, 0.95]}}
    dims: {{N: [1, 3], C: [2, 3]}}
"""
CELL = f"""\
layers:
  - name: cell
    impl: {FIXTURES}/more_layers.py:TanhCell
    init: {{n_in: $D, n_out: $H}}
    params: {{W: [D, H]}}
    params_at: dict:parameters
    grads: dict:gradients
    grad_outputs: [0]
    inputs: {{X: [N, D]}}
    dims: {{N: [1, 3], D: [1, 3], H: [1, 3]}}
"""
SETUP = f"""\
layers:
  - name: dense
    impl: {FIXTURES}/setup_layers.py:Dense
    init: {{n_units: $M}}
    setup:
      set_input_shape: [[$D]]
      initialize: {{scale: 1.0}}
    params: {{W: [D, M], w0: [1, M]}}
    grads: attr:grad_{{name}}
    inputs: {{X: [N, D]}}
    dims: {{N: [1, 3], D: [1, 3], M: [1, 3]}}
"""
OPTIMIZER = f"""\
layers:
  - name: dense
    impl: {FIXTURES}/optimizer_layers.py:Dense
    forward: forward_pass
    backward: backward_pass
    init: {{n_units: $M}}
    setup:
      set_input_shape: [[$D]]
      initialize: [$optimizer]
    grads: optimizer:update
    params: {{W: [D, M], w0: [1, M]}}
    inputs: {{X: [N, D]}}
    dims: {{N: [1, 3], D: [1, 3], M: [1, 3]}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "layers.yaml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_registry(write(tmp_path, text))
    return caught.value.problems


def one_problem(tmp_path: Path, text: str, line: int) -> str:
    found = problems(tmp_path, text)
    assert len(found) == 1, found
    assert found[0].startswith(f"{tmp_path / 'layers.yaml'}:{line}: "), found[0]
    return found[0]


@pytest.mark.parametrize("text", [MODEL, TUTORIAL, ELEMENTWISE, DENSE, LOSS, CELL, SETUP, OPTIMIZER])
def test_the_base_files_are_valid(tmp_path, text):
    assert load_registry(write(tmp_path, text)).names()


CASES = [  # (base, old, new, line, words the message must contain)
    (MODEL, "    params: {W1: [D, H], b1: [H], W2: [H, C], b2: [C]}\n", "", 2, ["needs 'params'"]),
    (MODEL, "    style: model\n", "    style: model\n    loss: los\n", 5, ["no los() method", "did you mean 'loss'"]),
    (
        MODEL,
        "    style: model\n",
        "    style: model\n    forward: predict\n",
        5,
        ["functional model", "'loss' and 'gradient'"],
    ),
    (MODEL, "    style: model\n", "    style: model\n    grad_names: d_\n", 5, ["{name}"]),
    (MODEL, "    style: model\n", "    style: modle\n", 4, ["did you mean 'model'"]),
    (TUTORIAL, "    cost: compute_cost\n", "", 2, ["missing cost"]),
    (TUTORIAL, "    cost: compute_cost\n", "    cost: compute_cots\n", 6, ["did you mean 'compute_cost'"]),
    (
        TUTORIAL,
        "    backward: backward_propagation\n",
        "    backward: {function: backward_propagation, args: [params, cahce, X, Y]}\n",
        7,
        ["'cahce'", "did you mean 'cache'"],
    ),
    (TUTORIAL, "    style: model\n", "    style: model\n    init: {a: 1}\n", 5, ["model object"]),
    (ELEMENTWISE, "    derivative: sigmoid_grad\n", "", 2, ["'function' and 'derivative'"]),
    (
        ELEMENTWISE,
        "    derivative: sigmoid_grad\n",
        "    derivative: sigmoid_grd\n",
        6,
        ["did you mean 'sigmoid_grad'"],
    ),
    (ELEMENTWISE, "    inputs: {x: [N, D]}\n", "    inputs: {x: [N, D], y: [N, D]}\n", 7, ["exactly one float input"]),
    (
        ELEMENTWISE,
        "    derivative: sigmoid_grad\n",
        "    derivative: sigmoid_grad\n    derivative_of: outptu\n",
        7,
        ["input or output"],
    ),
    (DENSE, "    backward: backward_pass\n", "    backward: backward_pas\n", 6, ["did you mean 'backward_pass'"]),
    (DENSE, "    style: class\n", "    style: class\n    grad_outputs: [0, 0]\n", 5, ["distinct positions"]),
    (
        DENSE,
        "    style: class\n",
        "    style: class\n    onehot: [X]\n",
        5,
        ["'X' is not an input declared with integers"],
    ),
    (SETUP, "      initialize: {scale: 1.0}\n", "      initialize: 1.0\n", 5, ["a list of positional"]),
    (
        SETUP.replace(":Dense", ":make_scale"),
        "    params:",
        "    factory: true\n    forward: forward\n    params:",
        9,
        ["factory function"],
    ),
    (SETUP.replace(":Dense", ":make_scale"), "    params:", "    params:", 3, ["add factory: true"]),
    (SETUP, "    params:", "    factory: true\n    params:", 8, ["is a class"]),
    (SETUP, "      set_input_shape: [[$D]]\n", "      set_input_shape: [[$DD]]\n", 6, ["did you mean 'D'"]),
    (OPTIMIZER, "      initialize: [$optimizer]\n", "      initialize: [1]\n", 10, ["$optimizer in setup"]),
    (LOSS, "    differentiate: p\n", "    differentiate: pp\n", 5, ["did you mean 'p'"]),
    (LOSS, "    differentiate: p\n", "    differentiate: p\n    reduction: men\n", 6, ["did you mean 'mean'"]),
    (LOSS, "    onehot: [y]\n", "    onehot: [yy]\n", 6, ["did you mean 'y'"]),
    (
        LOSS,
        "    style: loss-object\n",
        "    style: loss-object\n    gradient: gradiant\n",
        5,
        ["did you mean 'gradient'"],
    ),
]


@pytest.mark.parametrize("base, old, new, line, words", CASES)
def test_mistakes_are_one_line_each(tmp_path, base, old, new, line, words):
    assert old in base
    message = one_problem(tmp_path, base.replace(old, new), line)
    for word in words:
        assert word in message, message


def test_cli_reports_a_mistake_with_exit_2_and_no_traceback(tmp_path):
    path = write(tmp_path, MODEL.replace("    style: model\n", "    style: model\n    loss: los\n"))
    result = CliRunner().invoke(cli, ["run", "all", "--config", str(path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output and f"{path}:5:" in result.output


def test_gradient_names_that_match_nothing_are_an_error_naming_grad_names(tmp_path):
    path = write(tmp_path, MODEL.replace("    style: model\n", "    style: model\n    grad_names: grad_{name}\n"))
    res = check_layer("net", config=path, examples=2, seed=0)
    assert res.status is Status.ERROR and "grad_names" in res.message and "'grad_W1'" in res.message


def test_explicit_grad_names_template(tmp_path):
    path = write(tmp_path, TUTORIAL.replace("    style: model\n", "    style: model\n    grad_names: d{name}\n"))
    assert check_layer("net", config=path, examples=2, seed=0).status is Status.PASS


def test_a_model_missing_a_declared_parameter_is_an_error(tmp_path):
    path = write(tmp_path, MODEL.replace("b2: [C]}", "b2: [C], W3: [C, C]}"))
    res = check_layer("net", config=path, examples=2, seed=0)
    assert res.status is Status.ERROR and "W3" in res.message and "params_at" in res.message


def test_a_derivative_of_the_wrong_shape_is_an_error(tmp_path):
    text = ELEMENTWISE.replace("derivative: sigmoid_grad", "derivative: tanh_grad_from_output").replace(
        "function: sigmoid", "function: relu"
    )
    (tmp_path / "sum_grad.py").write_text(
        "import numpy as np\ndef f(x):\n    return x * x\ndef df(x):\n    return 2 * x.sum(axis=0)\n"
    )
    text = text.replace(f"{FIXTURES}/activations.py", "sum_grad.py").replace("function: relu", "function: f")
    path = write(tmp_path, text.replace("derivative: tanh_grad_from_output", "derivative: df"))
    res = check_layer("act", config=path, examples=2, seed=0)
    assert res.status is Status.ERROR and "expected" in res.message and "Jacobian" in res.message


def test_a_backward_taking_fewer_gradients_than_outputs_hints_at_grad_outputs(tmp_path):
    path = write(tmp_path, CELL.replace("    grad_outputs: [0]\n", ""))
    res = check_layer("cell", config=path, examples=2, seed=0)
    assert res.status is Status.ERROR and "grad_outputs: [0]" in res.message, res.message


def test_grad_outputs_past_the_last_output_is_an_error(tmp_path):
    path = write(tmp_path, CELL.replace("grad_outputs: [0]", "grad_outputs: [2]"))
    res = check_layer("cell", config=path, examples=2, seed=0)
    assert res.status is Status.ERROR and "2 output(s)" in res.message, res.message


def test_an_unreduced_loss_with_reduction_none_is_an_error(tmp_path):
    path = write(tmp_path, LOSS.replace("    differentiate: p\n", "    differentiate: p\n    reduction: none\n"))
    res = check_layer("loss", config=path, examples=2, seed=0)
    assert res.status is Status.ERROR and "reduction: sum or mean" in res.message, res.message


def test_a_setup_call_the_layer_does_not_have_is_an_error(tmp_path):
    path = write(tmp_path, SETUP.replace("initialize: {scale: 1.0}", "initialise: {scale: 1.0}"))
    res = check_layer("dense", config=path, examples=2, seed=0)
    assert res.status is Status.ERROR and "initialise()" in res.message, res.message


def test_without_its_setup_calls_the_layer_has_no_parameters(tmp_path):
    """The setup calls are what creates W: without them the check cannot find it."""
    path = write(tmp_path, SETUP.replace("      initialize: {scale: 1.0}\n", ""))
    res = check_layer("dense", config=path, examples=2, seed=0)
    assert res.status is Status.ERROR, res.message


def test_a_layer_that_hands_the_optimizer_nothing_is_an_error(tmp_path):
    (tmp_path / "frozen.py").write_text(
        f"import sys\nsys.path.insert(0, {str(FIXTURES)!r})\nfrom optimizer_layers import Dense as Base\n"
        "class Dense(Base):\n    def __init__(self, n_units):\n        super().__init__(n_units)\n"
        "        self.trainable = False\n"
    )
    path = write(tmp_path, OPTIMIZER.replace(f"{FIXTURES}/optimizer_layers.py", "frozen.py"))
    res = check_layer("dense", config=path, examples=2, seed=0)
    assert res.status is Status.ERROR and "update()" in res.message, res.message


def test_a_misspelt_optimizer_location_is_reported_on_its_line(tmp_path):
    found = problems(tmp_path, OPTIMIZER.replace("grads: optimizer:update", "grads: optimiser:update"))
    assert found[0].startswith(f"{tmp_path / 'layers.yaml'}:10: 'grads'") and "optimizer:..." in found[0]


TUPLE = f"""\
layers:
  - name: reshape
    impl: {FIXTURES}/tuple_layers.py:Reshape
    forward: forward_pass
    backward: backward_pass
    init: {{shape: !tuple [$C, $H]}}
    inputs: {{X: [N, C * H]}}
    dims: {{N: [1, 3], C: [1, 3], H: [1, 3]}}
"""


def test_tuple_tag_passes_a_tuple_where_a_list_would_break_the_layer(tmp_path):
    assert check_layer("reshape", config=write(tmp_path, TUPLE), examples=3, seed=0).status is Status.PASS
    listed = tmp_path / "listed"
    listed.mkdir()
    res = check_layer("reshape", config=write(listed, TUPLE.replace("!tuple ", "")), examples=3, seed=0)
    assert res.status is Status.ERROR and "TypeError" in res.message


def test_tuple_tag_on_a_scalar_is_a_yaml_error_with_its_line(tmp_path):
    message = one_problem(tmp_path, TUPLE.replace("!tuple [$C, $H]", "!tuple 3"), 6)
    assert "!tuple must tag a list" in message


PACK = f"""\
layers:
  - name: multiply
    impl: {FIXTURES}/list_layers.py:Multiply
    pack: [A, B]
    inputs: {{A: [N, D], B: [N, D], C: [N, D]}}
    dims: {{N: [1, 3], D: [1, 3]}}
"""


@pytest.mark.parametrize(
    "old, new, words",
    [
        ("pack: [A, B]", "pack: [A, BB]", ["did you mean 'B'"]),
        ("pack: [A, B]", "pack: [A]", ["two or more"]),
        ("pack: [A, B]", "pack: [A, C]", ["next to each other"]),
    ],
)
def test_pack_mistakes(tmp_path, old, new, words):
    message = one_problem(tmp_path, PACK.replace(old, new), 4)
    assert all(word in message for word in words), message
