"""One set of rules for examples/rtol/atol/eps/timeout, applied alike on every entry point."""

import math
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradcheck import api
from gradcheck.cli import cli
from gradcheck.errors import ConfigError, SettingError
from gradcheck.limits import EPS_MIN, EXAMPLES_MAX, check_setting, setting_problem
from gradcheck.registry import load_registry
from gradcheck.results import Status

FIXTURES = Path(__file__).parent / "fixtures" / "config"

# Each of these, accepted before, let a wrong backward pass or made the run meaningless or endless.
BAD = [
    ("rtol", math.nan),
    ("rtol", math.inf),
    ("rtol", -1e-5),
    ("rtol", 1.0),
    ("atol", math.nan),
    ("atol", math.inf),
    ("atol", -1.0),
    ("eps", math.nan),
    ("eps", 0.0),
    ("eps", -1e-6),
    ("eps", 5e-324),
    ("eps", 1e-15),
    ("eps", 1.0),
    ("eps", math.inf),
    ("examples", 0),
    ("examples", -1),
    ("examples", 2.5),
    ("examples", math.inf),
    ("examples", math.nan),
    ("examples", EXAMPLES_MAX + 1),
    ("examples", 10**400),
    ("examples", True),
    ("timeout", math.nan),
    ("timeout", math.inf),
    ("timeout", 0.0),
    ("timeout", -5.0),
]
GOOD = [
    ("rtol", 0.0),
    ("rtol", 1e-5),
    ("atol", 0.0),
    ("atol", 1e-7),
    ("eps", 1e-6),
    ("eps", EPS_MIN),
    ("eps", 0.5),
    ("examples", 1),
    ("examples", 20.0),
    ("examples", EXAMPLES_MAX),
    ("timeout", 0.5),
    ("timeout", 600),
]


def _yaml_text(value) -> str:
    if isinstance(value, float) and math.isnan(value):
        return ".nan"
    if isinstance(value, float) and math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    return repr(value).lower() if isinstance(value, bool) else repr(value)


@pytest.fixture
def project(tmp_path, monkeypatch):
    for item in FIXTURES.iterdir():
        shutil.copy(item, tmp_path / item.name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("name, value", BAD)
def test_rule_refuses_and_names_the_value(name, value):
    problem = setting_problem(name, value)
    assert problem is not None and problem.startswith(f"{name} must be ")
    assert "got " in problem
    with pytest.raises(SettingError):
        check_setting(name, value)


@pytest.mark.parametrize("name, value", GOOD)
def test_rule_accepts_sensible_values(name, value):
    assert setting_problem(name, value) is None
    assert check_setting(name, value) == value


def test_setting_error_is_a_value_error():
    assert issubclass(SettingError, ValueError)


@pytest.mark.parametrize("name, value", BAD)
def test_command_line_refuses(project, name, value):
    result = CliRunner().invoke(cli, ["run", "all", f"--{name}", str(value)])
    assert result.exit_code == 2, result.output
    whole = isinstance(value, int) and not isinstance(value, bool)
    expected = "is not a valid integer" if name == "examples" and not whole else f"{name} must be "
    assert expected in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("where", ["defaults", "layer"])
@pytest.mark.parametrize("name, value", [b for b in BAD if not isinstance(b[1], int) or abs(b[1]) < 10**6])
def test_layers_yaml_refuses_with_its_line(project, where, name, value):
    text = (project / "layers.yaml").read_text()
    if where == "defaults":
        text, line = f"defaults:\n  {name}: {_yaml_text(value)}\n" + text, 2
    else:
        text, line = text + f"    {name}: {_yaml_text(value)}\n", text.count("\n") + 1
    (project / "layers.yaml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_registry(project / "layers.yaml")
    assert f"layers.yaml:{line}: {name} must be " in str(caught.value)


@pytest.mark.parametrize(
    "name, value", [b for b in BAD if not isinstance(b[1], bool) and (not isinstance(b[1], int) or abs(b[1]) < 10**6)]
)
def test_pyproject_refuses(project, name, value):
    toml_value = {"nan": "nan", "inf": "inf"}.get(str(value), str(value)).replace("-inf", "-inf")
    (project / "pyproject.toml").write_text(f"[tool.gradcheck]\n{name} = {toml_value}\n")
    result = CliRunner().invoke(cli, ["run", "all"])
    assert result.exit_code == 2, result.output
    assert f"pyproject.toml: [tool.gradcheck] {name} must be " in result.output


@pytest.mark.parametrize("name, value", BAD)
def test_python_api_refuses_before_checking(project, name, value):
    argument = {name: value}
    with pytest.raises(SettingError, match=f"{name} must be "):
        api.check_layer("affine", "layers.yaml", **argument)
    if name != "timeout":
        with pytest.raises(SettingError, match=f"{name} must be "):
            api.run_config("layers.yaml", **argument)


def test_yaml_number_written_without_a_dot_is_still_read(project):
    text = (project / "layers.yaml").read_text() + "    rtol: 1e-4\n    eps: 1e-5\n"
    (project / "layers.yaml").write_text(text)
    spec = load_registry(project / "layers.yaml").get("wrong-affine")
    assert spec.tolerances.rtol == 1e-4 and spec.tolerances.eps == 1e-5


def test_wrong_backward_still_fails_with_the_loosest_allowed_settings(project):
    """The limits exist so that no allowed value makes a wrong backward pass."""
    result = api.check_layer("wrong-affine", "layers.yaml", examples=3, seed=1, rtol=0.4, eps=0.5)
    assert result.status is Status.FAIL
