"""A layer object as an argument (`!layer`) and dotted locations (`dict:_base_layer.parameters`):
numpy-ml's Dropout(wrapped_layer, p) with no adapter file. Right versions pass, each planted bug
fails on the tensors it breaks, through the Python API and the CLI; mistakes are one line each."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from textwrap import dedent

import pytest
from click.testing import CliRunner
from layer_expectations import assert_blamed_on, bug, failed_tensors

import gradcheck
from gradcheck import check_layer, run_config
from gradcheck.cli import cli
from gradcheck.errors import ConfigError
from gradcheck.registry import load_registry
from gradcheck.results import LayerResult, Status, describe_failure

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "styles3"
RIGHT, WRONG = FIXTURES / "layers.yaml", FIXTURES / "buggy.yaml"
EXAMPLES, SEED = 8, 0
FAIL = Status.FAIL

BUGS = {
    "numpy-ml-dropout-dense": bug({FAIL}, {"X", "W", "b"}),  # backward forgets to scale by 1 / (1 - p)
    "scaled-dense-in-list": bug({FAIL}, {"W", "b"}, {"X"}),  # the wrapped layer's gradients not scaled
    "stack-of-tanh": bug({FAIL}, {"X"}),  # tanh' as 1 - y
}


def names(path: Path) -> list[str]:
    return load_registry(path).names()  # the files use gradcheck's own !layer tag


@pytest.fixture(scope="module")
def right_results() -> dict[str, LayerResult]:
    return {layer.name: layer for layer in run_config(str(RIGHT), examples=EXAMPLES, seed=SEED).layers}


@pytest.fixture(scope="module")
def wrong_results() -> dict[str, LayerResult]:
    return {layer.name: layer for layer in run_config(str(WRONG), examples=EXAMPLES, seed=SEED).layers}


def test_the_two_files_register_the_same_layers():
    assert names(WRONG) == names(RIGHT) and set(BUGS) == set(names(RIGHT))


@pytest.mark.parametrize("name", names(RIGHT))
def test_right_layer_passes(name, right_results):
    res = right_results[name]
    assert res.status is Status.PASS, describe_failure(res)
    assert res.tensors and not failed_tensors(res)


@pytest.mark.parametrize("name", names(WRONG))
def test_planted_bug_fails_on_its_tensors(name, wrong_results):
    assert_blamed_on(wrong_results[name], BUGS[name])


def test_the_wrapped_layers_parameters_are_checked(right_results):
    assert {t.name for t in right_results["numpy-ml-dropout-dense"].tensors} == {"X", "W", "b"}


def test_each_example_builds_a_fresh_wrapped_layer():
    spec = load_registry(RIGHT).get("numpy-ml-dropout-dense")
    from gradcheck.adapters import resolve

    first, second = (resolve(spec.init, {"M": 3})["wrapped_layer"] for _ in range(2))
    assert first is not second and first.n_out == second.n_out == 3


def test_check_layer_by_name():
    assert check_layer("numpy-ml-dropout-dense", config=str(RIGHT), examples=3, seed=SEED).status is Status.PASS
    assert check_layer("numpy-ml-dropout-dense", config=str(WRONG), examples=3, seed=SEED).status is FAIL


def test_cli_exit_codes_and_json():
    runner = CliRunner()
    args = ["--examples", "3", "--seed", str(SEED), "--format", "json"]
    right = runner.invoke(cli, ["run", "all", "--config", str(RIGHT), *args])
    assert right.exit_code == 0, right.output
    wrong = runner.invoke(cli, ["run", "numpy-ml-dropout-dense", "--config", str(WRONG), *args])
    assert wrong.exit_code == 1, wrong.output
    assert [layer["status"] for layer in json.loads(wrong.stdout)["layers"]] == ["FAIL"]


@pytest.mark.parametrize("module, status", [("wrapped_layers", Status.PASS), ("wrapped_layers_buggy", FAIL)])
def test_dotted_locations_with_a_layer_object_in_python(module, status, monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES))
    sys.modules.pop(module, None)
    code = __import__(module)
    result = gradcheck.check(
        code.Dropout(code.Dense(3), 0.25),
        dims={"N": [1, 4], "D": [1, 3]},
        inputs={"X": ["N", "D"]},
        params={"W": ["D", 3], "b": [1, 3]},
        params_at="dict:_base_layer.parameters",
        grads="dict:_base_layer.gradients",
        examples=3,
        seed=SEED,
    )
    assert result.status is status


# -- mistakes ----------------------------------------------------------------------------------
BASE = f"""\
layers:
  - name: wrapped
    impl: {FIXTURES}/wrapped_layers.py:Dropout
    init:
      wrapped_layer: !layer {{impl: {FIXTURES}/wrapped_layers.py:Dense, init: {{n_out: $M}}}}
      p: 0.25
    params: {{W: [D, M], b: [1, M]}}
    params_at: dict:_base_layer.parameters
    grads: dict:_base_layer.gradients
    inputs: {{X: [N, D]}}
    dims: {{N: [1, 3], D: [1, 3], M: [1, 3]}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "layers.yaml"
    path.write_text(dedent(text))
    return path


def test_the_base_file_is_valid(tmp_path):
    assert load_registry(write(tmp_path, BASE)).names() == ["wrapped"]


@pytest.mark.parametrize(
    "old, new, line, words",
    [
        ("Dense, init", "Dens, init", 5, ["has no 'Dens'", "did you mean 'Dense'"]),
        ("wrapped_layers.py:Dense", "wrapped_layers.py", 5, ["!layer needs impl: file.py:Class"]),
        ("init: {n_out", "int: {n_out", 5, ["unknown key 'int' in !layer", "did you mean 'init'"]),
        ("n_out: $M", "n_out: $MM", 5, ["'$MM' names no dim", "did you mean 'M'"]),
        ("dict:_base_layer.parameters", "dict:_base_layer..parameters", 8, ["not a dotted path of attribute names"]),
        ("!layer {impl", "!layer [impl", 5, ["!layer must tag a mapping"]),
    ],
)
def test_mistakes_are_one_line_each(tmp_path, old, new, line, words):
    text = BASE.replace(old, new, 1)
    if new.startswith("!layer ["):
        text = text.replace("$M}}", "$M}]", 1)
    with pytest.raises(ConfigError) as caught:
        load_registry(write(tmp_path, text))
    assert len(caught.value.problems) == 1, caught.value.problems
    problem = caught.value.problems[0]
    assert f"layers.yaml:{line}:" in problem and all(w in problem for w in words), problem


def test_cli_reports_a_mistake_with_exit_2_and_no_traceback(tmp_path):
    path = write(tmp_path, BASE.replace("Dense, init", "Dens, init"))
    result = CliRunner().invoke(cli, ["run", "all", "--config", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "layers.yaml:5:" in result.output and "did you mean 'Dense'" in result.output


def test_a_wrapped_layer_whose_constructor_raises_is_that_layers_error(tmp_path):
    path = write(tmp_path, BASE.replace("init: {n_out: $M}", "init: {n_out: $M, nope: 1}"))
    res = check_layer("wrapped", config=str(path), examples=2, seed=SEED)
    assert res.status is Status.ERROR and "!layer" in res.message and "nope" in res.message


def test_a_dotted_location_that_reaches_nothing_is_an_error_naming_it(tmp_path):
    path = write(tmp_path, BASE.replace("dict:_base_layer.parameters", "dict:_base_layer.params"))
    res = check_layer("wrapped", config=str(path), examples=2, seed=SEED)
    assert res.status is Status.ERROR and "self._base_layer.params['W']" in res.message


@pytest.mark.parametrize("module, status", [("wrapped_layers", Status.PASS), ("wrapped_layers_buggy", FAIL)])
def test_a_layer_argument_nests(tmp_path, module, status):
    """Dropout(Scaled([Dense(M)])): the dotted path reads through Scaled's `parameters` property."""
    inner = f"!layer {{impl: {FIXTURES}/{module}.py:Dense, init: {{n_out: $M}}}}"
    text = BASE.replace(
        f"!layer {{impl: {FIXTURES}/wrapped_layers.py:Dense, init: {{n_out: $M}}}}",
        f"!layer {{impl: {FIXTURES}/{module}.py:Scaled, init: {{layers: [{inner}]}}}}",
    )
    res = check_layer("wrapped", config=str(write(tmp_path, text)), examples=4, seed=SEED)
    assert res.status is status, describe_failure(res)
    assert {t.name for t in res.tensors} == {"X", "W", "b"}
    assert ({t.name for t in res.tensors if t.failed} == {"W", "b"}) is (status is FAIL)


SET_UP = """\
layers:
  - name: scaled-stack
    impl: {folder}/{module}.py:Scaled
    init:
      layers: [!layer {{impl: {folder}/{module}.py:Stack,
                        setup: {{{method}: [!layer {{impl: {folder}/{module}.py:Tanh}}]}}}}]
    inputs: {{X: [N, D]}}
    dims: {{N: [1, 3], D: [1, 3]}}
"""


@pytest.mark.parametrize("module, status", [("wrapped_layers", Status.PASS), ("wrapped_layers_buggy", FAIL)])
def test_a_layer_argument_is_set_up_by_its_own_setup_calls(tmp_path, module, status):
    text = SET_UP.format(folder=FIXTURES, module=module, method="add")
    res = check_layer("scaled-stack", config=str(write(tmp_path, text)), examples=4, seed=SEED)
    assert res.status is status and {t.name for t in res.tensors} == {"X"}, describe_failure(res)


def test_a_setup_call_the_layer_argument_lacks_is_an_error_naming_it(tmp_path):
    text = SET_UP.format(folder=FIXTURES, module="wrapped_layers", method="append")
    res = check_layer("scaled-stack", config=str(write(tmp_path, text)), examples=2, seed=SEED)
    assert res.status is Status.ERROR and "append()" in res.message and "Stack" in res.message


def test_a_layer_argument_where_no_object_belongs_is_shown_as_written(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_registry(write(tmp_path, BASE.replace("inputs: {X: [N, D]}", "inputs: {X: !layer {impl: a.py:B}}")))
    assert "layers.yaml:10:" in caught.value.problems[0] and "!layer {'impl': 'a.py:B'}" in caught.value.problems[0]
