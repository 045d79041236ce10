"""Malformed and hostile layers.yaml and pyproject.toml: one clear line each, exit 2, no traceback, no hang."""

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from gradcheck import api
from gradcheck.cli import cli
from gradcheck.errors import ConfigError, UnknownLayerError
from gradcheck.expr import ExpressionError, bounds, parse
from gradcheck.registry import load_registry
from gradcheck.results import Status

FIXTURES = Path(__file__).parent / "fixtures" / "config"
GOOD = (FIXTURES / "layers.yaml").read_text()
AFFINE = GOOD.split("  - name: wrong-affine")[0]  # one layer, lines 1-7


def _bomb(levels: int = 9) -> str:
    text = "x-a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for i in range(1, levels + 1):
        text += f"x-a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n"
    return text + AFFINE


def _with_where(clause: str) -> str:
    return AFFINE + f"    where: [{clause!r}]\n"


def _with_shape(extent: str) -> str:
    return AFFINE.replace("inputs: {x: [N, D]}", f"inputs: {{x: [N, {extent!r}]}}")


# name: (file content as bytes or text, line expected in the message or None, words expected)
CASES = {
    "not-utf8": (AFFINE.encode().replace(b"affine\n", b"aff\xe9ine\n", 1), 2, ["not UTF-8"]),
    "nul": (AFFINE.replace("affine\n", "aff\x00ine\n", 1), 2, ["control character U+0000"]),
    "bell": (AFFINE.replace("D: [1, 3]", "D: [1, 3]\x07"), 7, ["control character U+0007"]),
    "unhashable-key": ("[1, 2]: x\n" + AFFINE, 1, ["a key must be a plain value", "[1, 2]"]),
    "mapping-as-key": ("? {a: 1}\n: x\n" + AFFINE, 1, ["a key must be a plain value"]),
    "nested-brackets": ("layers: " + "[" * 5000 + "]" * 5000 + "\n", 1, ["nested deeper than"]),
    "nested-mapping": (
        "layers:\n" + "".join("  " * i + f"- k{i}:\n" for i in range(1, 80)),
        None,
        ["nested deeper than"],
    ),
    "billion-laughs": (_bomb(), None, ["once aliases are expanded"]),
    "wide-alias-depth": (
        "".join(f"x-d{i}: &d{i} [{'*d' + str(i - 1) if i else 0}]\n" for i in range(300)) + AFFINE,
        None,
        ["once aliases are expanded"],
    ),
    "huge-integer": (AFFINE + "    examples: " + "9" * 5000 + "\n", 8, ["integer of 5000 digits"]),
    "long-expression": (_with_shape(" + ".join(["D"] * 3000)), 6, ["too long"]),
    "deep-expression": (_with_shape("(" * 210 + "D" + ")" * 210), 6, ["malformed expression"]),
    "many-parts": (_with_shape("+".join(["D"] * 240)), 6, ["too many"]),
    "power-tower": (_with_where("N < 10**10**10"), 8, ["exponent", "too large"]),
    "power-of-dim": (_with_where("2 ** (N * 100) > 1"), 8, ["exponent", "too large"]),
    "product-overflow": (_with_where("N * 99999999999 * 99999999999 > 1"), 8, ["beyond 2**64"]),
    "min-one-argument": (_with_where("min(N) > 1"), 8, ["min() takes at least 2 arguments"]),
    "abs-two-arguments": (_with_where("abs(N, D) > 0"), 8, ["abs() takes one argument"]),
    "max-no-argument": (_with_shape("max()"), 6, ["max() takes at least 2 arguments"]),
    "starred": (_with_shape("max(*N)"), 6, ["unsupported syntax"]),
    "keyword": (_with_shape("min(N, key=D)"), 6, ["unsupported syntax"]),
    "attribute": (_with_shape("N.__class__"), 6, ["unsupported syntax"]),
    "lambda": (_with_shape("(lambda: 1)()"), 6, ["unsupported syntax"]),
    "string-constant": (_with_shape("'a' * 10"), 6, ["unsupported syntax"]),
    "control-in-name": (AFFINE.replace("name: affine", 'name: "aff\\x07ine"'), 2, ["control or invisible"]),
    "newline-in-name": (AFFINE.replace("name: affine", 'name: "aff\\nine"'), 2, ["control or invisible"]),
    "bidi-in-name": (AFFINE.replace("name: affine", 'name: "aff\\u202eine"'), 2, ["control or invisible"]),
    "number-as-name": (AFFINE.replace("name: affine", "name: 5"), 2, ["'name' must be a non-empty string"]),
    "empty-layers": ("layers: []\n", 1, ["'layers' is empty"]),
    "empty-file": ("", 1, ["expected a mapping with a 'layers' list"]),
    "only-comment": ("# nothing here\n", 1, ["expected a mapping with a 'layers' list"]),
    "layers-null": ("layers:\n", 1, ["expected a list of layers"]),
    "true-division": (_with_shape("D / 4"), 6, ["use '//'"]),
    "float-extent": (_with_shape("D * 1.5"), 6, ["whole number"]),
    "condition-extent": (_with_shape("D > 1"), 6, ["condition"]),
    "negative-exponent": (_with_shape("D ** (N - 3)"), 6, ["may be negative"]),
    "always-empty": (_with_shape("D - 3"), 6, ["always be empty"]),
    "always-empty-literal": (_with_shape("0"), 6, ["always be empty"]),
    "always-empty-zero-dim": (
        AFFINE.replace("M: [1, 3]", "M: [0, 0]").replace("b: [M]", "b: [1]"),
        5,
        ["always be empty"],
    ),
    "nothing-differentiable": (
        AFFINE.replace("impl: mylayers.py:Affine", "impl: mylayers.py:Lookup")
        .replace("    init: {W: $W, b: $b}\n    params: {W: [D, M], b: [M]}\n", "")
        .replace("inputs: {x: [N, D]}", "inputs: {idx: {shape: [N], integers: [0, D]}}"),
        4,
        ["nothing to differentiate"],
    ),
    "nan-range": (
        AFFINE.replace("inputs: {x: [N, D]}", "inputs: {x: {shape: [N, D], range: [.nan, 1]}}"),
        6,
        ["'range' must be [lo, hi]"],
    ),
    "alias-cycle": ("x-a: &a [*a]\n" + AFFINE, 1, ["invalid YAML"]),
    "undefined-alias": (AFFINE + "    rtol: *nowhere\n", 8, ["invalid YAML"]),
}


@pytest.fixture
def project(tmp_path, monkeypatch):
    shutil.copy(FIXTURES / "mylayers.py", tmp_path / "mylayers.py")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_layers_yaml_is_one_clear_problem(project, case):
    content, line, words = CASES[case]
    path = project / "layers.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ConfigError) as caught:
        load_registry(path)
    problems = caught.value.problems
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}:{line}: " if line else f"{path}:"), problems
    for word in words:
        assert word in problems[0], problems
    assert len(problems[0]) < 400 and "\n" not in problems[0]
    result = CliRunner().invoke(cli, ["run", "all"], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_a_name_with_brackets_and_slash_is_allowed(project):
    (project / "layers.yaml").write_text(AFFINE.replace("name: affine", 'name: "[/]"'))
    assert load_registry(project / "layers.yaml").names() == ["[/]"]


MERGED = """\
x-affine: &affine
  impl: mylayers.py:Affine
  init: {W: $W, b: $b}
  params: {W: [D, M], b: [M]}
  inputs: {x: [N, D]}
  dims: {N: [1, 4], D: [1, 3], M: [1, 3]}
layers:
  - <<: *affine
    name: affine
  - <<: *affine
    name: wrong
    impl: mylayers.py:WrongAffine
    dims: {N: [1, 2], D: [1, 2], M: [1, 2]}
"""


def test_merge_keys_work_and_own_keys_override(project):
    (project / "layers.yaml").write_text(MERGED)
    registry = load_registry(project / "layers.yaml")
    assert registry.names() == ["affine", "wrong"]
    assert registry.get("affine").dims == {"N": (1, 4), "D": (1, 3), "M": (1, 3)}
    assert registry.get("wrong").dims == {"N": (1, 2), "D": (1, 2), "M": (1, 2)}
    assert registry.get("wrong").target.__name__ == "WrongAffine"
    assert registry.get("wrong").source.endswith("layers.yaml:10")
    assert api.run_config("layers.yaml", examples=2, seed=3).layers[1].status is Status.FAIL


def test_merge_key_errors_point_at_the_written_line_and_the_layer(project):
    (project / "layers.yaml").write_text(
        MERGED.replace("inputs: {x: [N, D]}", "inputs: {x: [N, Q]}") + "    rtol: -1.0\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_registry(project / "layers.yaml")
    problems = [p.split("layers.yaml", 1)[1] for p in caught.value.problems]
    assert problems == [
        ":5: input 'x': dim 'Q' is used but has no range in 'dims' (merged into the layer on line 8)",
        ":5: input 'x': dim 'Q' is used but has no range in 'dims' (merged into the layer on line 10)",
        ":14: rtol must be a number >= 0 and < 1, got -1.0",
    ]


def test_a_key_written_twice_in_one_layer_is_still_a_duplicate(project):
    (project / "layers.yaml").write_text(MERGED + "    name: again\n")
    with pytest.raises(ConfigError, match=r"layers.yaml:14: duplicate key 'name' \(first on line 11\)"):
        load_registry(project / "layers.yaml")


PYPROJECT = {
    "tool-not-table": ("tool = 5\n", "pyproject.toml: [tool] must be a table, got 5"),
    "gradcheck-not-table": ("[tool]\ngradcheck = 5\n", "pyproject.toml: [tool.gradcheck] must be a table, got 5"),
    "gradcheck-list": ("[tool]\ngradcheck = [1, 2]\n", "[tool.gradcheck] must be a table"),
    "not-utf8": (b"[tool.gradcheck]\nseed = 1 # \xe9\n", "pyproject.toml: invalid TOML"),
    "nul": ("[tool.gradcheck]\nseed = 1\x00\n", "pyproject.toml: invalid TOML"),
    "nan-eps": ("[tool.gradcheck]\neps = nan\n", "pyproject.toml: [tool.gradcheck] eps must be"),
    "huge-examples": ("[tool.gradcheck]\nexamples = 1_000_000_000\n", "[tool.gradcheck] examples must be"),
    "nul-in-config-path": ('[tool.gradcheck]\nconfig = "a\\u0000b"\n', "config must be a path to a layers.yaml"),
    "control-key": ('[tool.gradcheck]\n"a\\u0007b" = 1\n', "unknown key 'a\\x07b'"),
}


@pytest.mark.parametrize("case", sorted(PYPROJECT))
def test_hostile_pyproject_is_one_clear_line(project, case):
    content, message = PYPROJECT[case]
    (project / "layers.yaml").write_text(AFFINE)
    (project / "pyproject.toml").write_bytes(content if isinstance(content, bytes) else content.encode())
    result = CliRunner().invoke(cli, ["run", "all"], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_expression_is_never_evaluated_by_python():
    for text in ["__import__('os').system('true')", "open('x')", "[N for N in D]", "N if D else 1", "N := 3"]:
        with pytest.raises(ExpressionError):
            parse(text)


def test_evaluation_bounds_integer_sizes():
    with pytest.raises(ExpressionError, match="exponent"):
        parse("N ** N").evaluate({"N": 10**6})
    with pytest.raises(ExpressionError, match="beyond 2\\*\\*64"):
        parse("N * N * N").evaluate({"N": 10**9})
    assert parse("N ** 2").evaluate({"N": 3}) == 9


def test_a_fraction_at_draw_time_is_an_error_never_truncated():
    expr = parse("D ** (N - 2)", whole=True)  # refused at load; built by hand here
    with pytest.raises(ExpressionError, match="not a whole number"):
        expr.evaluate({"D": 2, "N": 1})
    assert expr.evaluate({"D": 2, "N": 3}) == 2


def test_a_layer_whose_shapes_give_a_fraction_is_an_error_not_a_pass(project):
    shutil.copy(FIXTURES / "layers.yaml", project / "layers.yaml")
    spec = load_registry(project / "layers.yaml").get("affine")
    x = spec.inputs[0]
    fractional = replace(x, shape=(x.shape[0], parse("D ** (N - 2)", whole=True)))
    spec = replace(spec, inputs=(fractional,), dims={"N": (1, 1), "D": (2, 2), "M": (1, 2)})
    assert api.check_layer(spec, examples=2, seed=0).status is Status.ERROR


def test_bounds_over_ranges():
    ranges = {"N": (1, 8), "D": (0, 3)}
    assert bounds(parse("N - D"), ranges) == (-2, 8)
    assert bounds(parse("N // 2 + D * 2", whole=True), ranges) == (0, 10)
    assert bounds(parse("min(N, D) - abs(D - 5)"), ranges) == (-5, 1)
    assert bounds(parse("N % 3"), ranges) == (0, 2)
    assert bounds(parse("N // D"), ranges) is None  # D may be 0: unknown, never a guess


def test_run_config_names_an_unknown_layer_with_a_suggestion(project):
    (project / "layers.yaml").write_text(MERGED)
    with pytest.raises(UnknownLayerError, match=r"no layer named 'afine'.*did you mean 'affine'"):
        api.run_config("layers.yaml", names=["afine"], examples=1, seed=1)


ODD_VALUES = [None, 5, True, "x", [], {}, [1], {"a": 1}, [[]], {"a": [None]}]
BASES = {
    "class": (FIXTURES, "layers.yaml"),
    "model": (Path(__file__).parent.parent / "examples" / "tutorial-two-layer-net", "layers.yaml"),
}


@pytest.mark.parametrize("base", sorted(BASES))
def test_every_key_given_an_odd_value_is_a_clear_problem_never_a_crash(tmp_path, monkeypatch, base):
    """Each key of a real layer set to values of every other YAML type: loaded, or refused as
    `layers.yaml:LINE: ...`; never another exception (a traceback for the user)."""
    folder, name = BASES[base]
    for source in folder.glob("*.py"):
        shutil.copy(source, tmp_path / source.name)
    monkeypatch.chdir(tmp_path)
    layer = yaml.safe_load((folder / name).read_text())["layers"][0]
    crashes = []
    for key in layer:
        for value in ODD_VALUES:
            (tmp_path / "layers.yaml").write_text(yaml.safe_dump({"layers": [{**layer, key: value}]}))
            try:
                load_registry(tmp_path / "layers.yaml")
            except ConfigError as exc:
                assert all(
                    p.startswith(str(tmp_path / "layers.yaml")) or p.startswith("layers.yaml") for p in exc.problems
                )
            except Exception as exc:  # noqa: BLE001 - the point is to catch anything else
                crashes.append(f"{key}: {value!r} -> {exc!r}")
    assert not crashes, "\n".join(crashes)
