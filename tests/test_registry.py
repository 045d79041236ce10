"""layers.yaml validation: every mistake is `layers.yaml:LINE: message`, exit 2, no traceback."""

import ast
import re
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradcheck.cli import cli
from gradcheck.errors import ConfigError
from gradcheck.expr import ExpressionError, parse
from gradcheck.registry import LineDict, LineList, load_registry, read_entry
from gradcheck.registry_keys import allowed_keys, key_of
from gradcheck.spec import STYLES

LAYER_FILE = textwrap.dedent(
    """
    import numpy as np

    class Affine:
        def __init__(self, W, b):
            self.W, self.b = W, b
        def forward(self, x):
            self.x = x
            return x @ self.W + self.b
        def backward(self, dout):
            self.dW = self.x.T @ dout
            self.db = dout.sum(axis=0)
            return dout @ self.W.T

    def affine_forward(x, w, b):
        return x @ w + b, (x, w)

    def affine_backward(dout, cache):
        x, w = cache
        return dout @ w.T, x.T @ dout, dout.sum(axis=0)

    not_callable = 3
    """
)

GOOD = """\
layers:
  - name: affine
    impl: mylayers.py:Affine
    style: class
    init: {W: $W, b: $b}
    params: {W: [D, M], b: [M]}
    inputs: {x: [N, D]}
    dims: {N: [1, 4], D: [1, 3], M: [1, 3]}
"""

# (yaml text, line expected in the message, words expected in the message)
BAD = {
    "unknown-key": (GOOD + "    colour: blue\n", 9, ["unknown key 'colour'"]),
    "typo-key": (GOOD.replace("params:", "parms:"), 6, ["unknown key 'parms'", "did you mean 'params'"]),
    "missing-impl": (GOOD.replace("    impl: mylayers.py:Affine\n", ""), 2, ["missing key 'impl'"]),
    "missing-inputs": (GOOD.replace("    inputs: {x: [N, D]}\n", ""), 2, ["missing key 'inputs'"]),
    "dim-without-range": (GOOD.replace("inputs: {x: [N, D]}", "inputs: {x: [N, K]}"), 7, ["dim 'K'", "no range"]),
    "bad-expression": (GOOD.replace("inputs: {x: [N, D]}", "inputs: {x: [N, D +* 2]}"), 7, ["malformed expression"]),
    "no-eval": (
        GOOD.replace("inputs: {x: [N, D]}", "inputs: {x: [N, \"__import__('os')\"]}"),
        7,
        ["unsupported syntax"],
    ),
    "import-fails": (GOOD.replace("mylayers.py", "nolayers.py"), 3, ["not found"]),
    "module-missing": (
        GOOD.replace("mylayers.py:Affine", "nosuchpkg.layers:Affine"),
        3,
        ["cannot import", "nosuchpkg"],
    ),
    "object-missing": (GOOD.replace(":Affine", ":Afine"), 3, ["has no 'Afine'", "did you mean 'Affine'"]),
    "bad-style": (GOOD.replace("style: class", "style: klass"), 4, ["unknown style 'klass'", "did you mean 'class'"]),
    "dim-and-param": (GOOD.replace("M: [1, 3]}", "M: [1, 3], W: [1, 2]}"), 8, ["both a dim and an input or parameter"]),
    "bad-range": (GOOD.replace("N: [1, 4]", "N: [4, 1]"), 8, ["0 <= lo <= hi"]),
    "range-not-list": (GOOD.replace("N: [1, 4]", "N: one"), 8, ["inclusive range"]),
    "unknown-ref": (GOOD.replace("b: $b}", "b: $c}"), 5, ["'$c' names no dim"]),
    "bad-grads": (GOOD + "    grads: somewhere\n", 9, ["'grads'", "attr:"]),
    "bad-rtol": (GOOD + "    rtol: small\n", 9, ["rtol must be a number >= 0 and < 1, got 'small'"]),
    "bad-examples": (GOOD + "    examples: 0\n", 9, ["examples must be a whole number from 1 to 100000, got 0"]),
    "duplicate-name": (GOOD + GOOD.split("layers:\n")[1], 9, ["duplicate layer name 'affine'"]),
    "duplicate-key": (GOOD + "    dims: {N: [1, 2]}\n", 9, ["duplicate key 'dims'"]),
    "invalid-yaml": (GOOD.replace("inputs: {x: [N, D]}", "inputs: {x: [N, D]"), 8, ["invalid YAML"]),
    "top-level-typo": ("layer:\n  - name: a\n", 1, ["unknown top-level key 'layer'", "did you mean 'layers'"]),
    "batch-not-dim": (GOOD + "    batch: B\n", 9, ["batch 'B' is not a dim"]),
    "where-unknown-dim": (GOOD + '    where: ["Q > 1"]\n', 9, ["dim 'Q'"]),
    "integers-malformed": (
        GOOD.replace("inputs: {x: [N, D]}", "inputs: {x: {shape: [N], integers: 3}}"),
        7,
        ["'integers' must be [lo, hi]"],
    ),
    "functions-missing-backward": (
        GOOD.replace("style: class", "style: functions")
        .replace("mylayers.py:Affine", "mylayers.py")
        .replace("    init: {W: $W, b: $b}\n", "    forward: affine_forward\n"),
        2,
        ["missing key 'backward'"],
    ),
    "class-key-on-functions": (
        GOOD.replace("style: class", "style: functions")
        .replace("mylayers.py:Affine", "mylayers.py")
        .replace(
            "    init: {W: $W, b: $b}\n", "    forward: affine_forward\n    backward: affine_backward\n    init: {}\n"
        ),
        7,
        ["unknown key 'init'", "belongs to style 'class'"],
    ),
    "not-callable": (
        GOOD.replace("style: class", "style: loss")
        .replace("mylayers.py:Affine", "mylayers.py")
        .replace("    init: {W: $W, b: $b}\n    params: {W: [D, M], b: [M]}\n", "    function: not_callable\n"),
        5,
        ["not callable"],
    ),
    "no-forward-method": (
        GOOD.replace("mylayers.py:Affine", "mylayers.py:affine_forward"),
        3,
        ["has no forward() method"],
    ),
}


@pytest.fixture
def project(tmp_path):
    (tmp_path / "mylayers.py").write_text(LAYER_FILE)
    return tmp_path


def test_good_file_loads(project):
    (project / "layers.yaml").write_text(GOOD)
    registry = load_registry(project / "layers.yaml")
    assert registry.names() == ["affine"]
    spec = registry.get("affine")
    assert [t.name for t in spec.inputs] == ["x"] and [p.name for p in spec.params] == ["W", "b"]
    assert spec.source.endswith("layers.yaml:2")


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_file_reports_line_and_exits_2(project, case):
    text, line, words = BAD[case]
    path = project / "layers.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_registry(path)
    message = str(caught.value)
    assert f"layers.yaml:{line}:" in message, message
    for word in words:
        assert word in message, message
    result = CliRunner().invoke(cli, ["run", "all", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"layers.yaml:{line}:" in result.output


def test_import_error_inside_user_module_is_reported(project):
    (project / "broken.py").write_text("import numpy as np\nraise RuntimeError('boom')\n")
    (project / "layers.yaml").write_text(GOOD.replace("mylayers.py", "broken.py"))
    with pytest.raises(
        ConfigError, match=r"layers.yaml:3: cannot import 'broken.py': RuntimeError: boom \(broken.py:2\)"
    ):
        load_registry(project / "layers.yaml")


def test_syntax_error_inside_user_module_is_reported(project):
    (project / "broken.py").write_text("def f(:\n")
    (project / "layers.yaml").write_text(GOOD.replace("mylayers.py", "broken.py"))
    with pytest.raises(ConfigError, match=r"SyntaxError"):
        load_registry(project / "layers.yaml")


def test_sibling_imports_work(project):
    (project / "helpers.py").write_text("SCALE = 1.0\n")
    (project / "withsibling.py").write_text("import helpers\nfrom mylayers import Affine\n")
    (project / "layers.yaml").write_text(GOOD.replace("mylayers.py", "withsibling.py"))
    assert load_registry(project / "layers.yaml").get("affine") is not None


def test_missing_config_is_usage_error(tmp_path):
    result = CliRunner().invoke(cli, ["run", "all", "--config", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "no such file" in result.output


def test_several_mistakes_are_all_reported(project):
    text = GOOD.replace("parms", "params").replace("params:", "parms:") + "    colour: blue\n"
    (project / "layers.yaml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_registry(project / "layers.yaml")
    assert len(caught.value.problems) >= 2


@pytest.mark.parametrize(
    "source,env,value",
    [
        ("H + 2*P", {"H": 5, "P": 1}, 7),
        ("C - 1", {"C": 4}, 3),
        ("(H + 2*P - K) % S == 0", {"H": 5, "P": 1, "K": 3, "S": 2}, True),
        ("4*H", {"H": 3}, 12),
        ("max(N, 2) // 2", {"N": 5}, 2),
        ("N > 1 and not D == 3", {"N": 2, "D": 3}, False),
    ],
)
def test_expressions_evaluate(source, env, value):
    assert parse(source).evaluate(env) == value


@pytest.mark.parametrize(
    "source", ["__import__('os')", "x.y", "[1, 2]", "lambda: 1", "a if b else c", "f(x)", "'text'"]
)
def test_expressions_reject_anything_else(source):
    with pytest.raises(ExpressionError):
        parse(source)


# -- the registry's parts: each key's checking findable, the YAML apart, no long class or function --------
PACKAGE = Path(__file__).resolve().parent.parent / "gradcheck"
REGISTRY_MODULES = [
    "registry.py",
    "registry_keys.py",
    "registry_values.py",
    "registry_styles.py",
    "registry_imports.py",
    "config_yaml.py",
]
MAX_CLASS_LINES, MAX_FUNCTION_LINES = 250, 60


def _sizes(module: str) -> list[tuple[str, int]]:
    tree = ast.parse((PACKAGE / module).read_text())
    kinds = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return [
        (f"{module}:{node.name}", node.end_lineno - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, kinds)
    ]


@pytest.mark.parametrize("module", REGISTRY_MODULES)
def test_no_class_or_function_of_the_registry_is_long(module):
    for name, lines in _sizes(module):
        limit = MAX_CLASS_LINES if name.split(":")[1][0].isupper() else MAX_FUNCTION_LINES
        assert lines <= limit, f"{name} has {lines} lines"


def test_yaml_is_read_in_one_module_only():
    for module in REGISTRY_MODULES:
        imports_yaml = re.search(r"^import yaml", (PACKAGE / module).read_text(), re.MULTILINE) is not None
        assert imports_yaml == (module == "config_yaml.py"), module


def test_every_key_a_style_allows_has_a_row_with_what_it_expects_and_its_reader():
    for style in STYLES:
        for name in allowed_keys(style):
            row = key_of(name, style)
            assert style in row.styles and row.expects and callable(row.read), (style, name)


@pytest.mark.parametrize("key,value", [("discover", "maybe"), ("batch_independent", 3), ("xfail", [1])])
def test_a_wrong_value_is_reported_with_what_the_table_says_the_key_expects(project, key, value):
    (project / "layers.yaml").write_text(GOOD + f"    {key}: {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_registry(project / "layers.yaml")
    assert caught.value.problems == [f"{project / 'layers.yaml'}:9: {key!r} must {key_of(key, 'class').expects}"]


def test_one_entry_reads_on_its_own_with_its_code_given():
    raw = LineDict(
        name="f", style="loss", impl="m:f", inputs=LineDict(x=LineList(["N"])), dims=LineDict(N=3), colour="blue"
    )
    raw["inputs"]["x"].item_lines = [0]
    spec, problems = read_entry(raw, Path("here"), {"function": len})
    assert spec is None and problems == ["here:0: unknown key 'colour' for a layer of style 'loss'"]
    del raw["colour"]
    spec, problems = read_entry(raw, Path("here"), {"function": len})
    assert problems == [] and spec.function is len and spec.dims == {"N": (3, 3)}
