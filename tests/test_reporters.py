"""Reporters: every --format has one; JSON matches its documented schema; JUnit and annotations are what CI reads."""

import inspect
import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradcheck.cli import cli
from gradcheck.registry import load_registry
from gradcheck.reporters import REPORTERS, render
from gradcheck.reporters.github import escape_data, escape_property
from gradcheck.reporters.json import SCHEMA
from gradcheck.results import LayerResult, RunResult, Status, TensorResult

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "cli"
CLEAN_ENV = {"FORCE_COLOR": None, "NO_COLOR": None, "GITHUB_WORKSPACE": None}


def run_cli(*args):
    return CliRunner(env=CLEAN_ENV).invoke(cli, [str(a) for a in args], catch_exceptions=False)


def report(fixture, fmt, *extra):
    return run_cli("run", "all", "--config", FIXTURES / f"{fixture}.yaml", "--seed", 7, "--format", fmt, *extra)


def validate(value, schema, path="$"):
    """The subset of JSON Schema that SCHEMA uses; raises AssertionError naming the offending path."""
    if "const" in schema:
        assert value == schema["const"], f"{path}: {value!r} != {schema['const']!r}"
    if "enum" in schema:
        assert value in schema["enum"], f"{path}: {value!r} not in {schema['enum']}"
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        checks = {
            "object": lambda v: isinstance(v, dict),
            "array": lambda v: isinstance(v, list),
            "string": lambda v: isinstance(v, str),
            "null": lambda v: v is None,
            "boolean": lambda v: isinstance(v, bool),
            "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        }
        assert any(checks[k](value) for k in kinds), f"{path}: {value!r} is not {kinds}"
    if "minimum" in schema and isinstance(value, (int, float)):
        assert value >= schema["minimum"], f"{path}: {value} < {schema['minimum']}"
    if isinstance(value, dict):
        for key in schema.get("required", []):
            assert key in value, f"{path}: missing {key!r}"
        for key, item in value.items():
            sub = schema.get("properties", {}).get(key, schema.get("additionalProperties", True))
            assert sub is not False, f"{path}: undocumented key {key!r}"
            if isinstance(sub, dict):
                validate(item, sub, f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            validate(item, schema["items"], f"{path}[{i}]")


def odd_run():
    """A run with every status, infinities, and characters that break XML and workflow commands."""
    bad = TensorResult(
        "W",
        "param",
        Status.FAIL,
        shape=(2, 3),
        max_abs_error=math.inf,
        max_rel_error=math.nan,
        worst_index=(1, 2),
        analytic=-math.inf,
        numeric=0.5,
        message="6 of 6 elements outside tolerance",
    )
    layers = [
        LayerResult(
            status.value.lower(),
            status,
            message="50% wrong, a:b\nnext\x00line",
            seed=3,
            tensors=(bad,) if status is Status.FAIL else (),
            source="layers.yaml:12",
            repro=f"gradcheck check {status.value.lower()} --seed 3",
            xfail="known" if status in (Status.XFAIL, Status.XPASS) else None,
        )
        for status in Status
    ]
    return RunResult(tuple(layers), 1.5, 3)


# -- every format has a reporter --------------------------------------------------------------
def test_every_format_choice_maps_to_a_reporter():
    choices = next(p for p in cli.commands["run"].params if p.name == "fmt").type.choices
    assert sorted(choices) == sorted(REPORTERS)
    for fmt in choices:
        assert render(fmt, odd_run()).strip(), fmt


@pytest.mark.parametrize("fmt", sorted(REPORTERS))
def test_every_reporter_takes_the_same_arguments(fmt):
    assert list(inspect.signature(REPORTERS[fmt]).parameters) == ["run", "strict", "locations"]


# -- JSON -------------------------------------------------------------------------------------
@pytest.mark.parametrize("fixture", ["layers", "failing", "lenient"])
def test_json_matches_the_schema(fixture):
    document = json.loads(report(fixture, "json").stdout)
    validate(document, SCHEMA)


def test_json_of_odd_values_stays_valid_json():
    document = json.loads(render("json", odd_run()))
    validate(document, SCHEMA)
    tensor = document["layers"][-2]["tensors"][0]
    assert (tensor["max_abs_error"], tensor["max_rel_error"], tensor["analytic"]) == ("inf", "nan", "-inf")


def test_json_reports_the_failure_and_the_summary():
    result = report("failing", "json")
    document = json.loads(result.stdout)
    layer = document["layers"][1]
    assert (layer["name"], layer["status"], layer["message"]) == ("bias-not-summed", "FAIL", "wrong gradient for b")
    failing = [t for t in layer["tensors"] if t["status"] == "FAIL"]
    assert [t["name"] for t in failing] == ["b"] and failing[0]["max_rel_error"] > 0.01
    assert layer["repro"].startswith("gradcheck check bias-not-summed --seed 7")
    assert layer["code"].endswith(f"cli_layers.py:{_line_of('BiasNotSummed')}")
    summary = document["summary"]
    assert (summary["pass"], summary["fail"], summary["total"], summary["exit_code"]) == (1, 1, 2, 1)
    assert summary["exit_code"] == result.exit_code


def test_schema_fields_are_documented():
    """Every field of the JSON schema appears in the user documentation."""
    documents = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
    docs = [p for p in documents if "schema_version" in p.read_text()]
    assert docs, "no documentation of the JSON report found"
    text = docs[0].read_text()

    def names(schema):
        for key, sub in schema.get("properties", {}).items():
            yield key
            yield from names(sub.get("items", sub))

    missing = [name for name in names(SCHEMA) if f"`{name}`" not in text]
    assert not missing, f"undocumented JSON fields: {missing}"


# -- JUnit ------------------------------------------------------------------------------------
def junit(fixture, *extra):
    return ET.fromstring(report(fixture, "junit", *extra).stdout.encode())


def test_junit_has_one_testcase_per_layer_with_the_right_verdicts():
    root = junit("failing")
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == load_registry(FIXTURES / "failing.yaml").names()
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "1", "0")
    assert list(cases[0]) == []  # a pass has no child
    (failure,) = cases[1].findall("failure")
    assert failure.get("type") == "FAIL" and "b[0] analytic" in failure.get("message")
    assert "worst element b[0]" in failure.text
    assert "reproduce: gradcheck check bias-not-summed --seed 7" in failure.text
    assert cases[1].get("file").endswith("cli_layers.py") and cases[1].get("line") == str(_line_of("BiasNotSummed"))


def test_junit_xfail_is_skipped_and_strict_turns_warnings_into_failures():
    cases = {c.get("name"): c for c in junit("layers").iter("testcase")}
    assert cases["wrong-sign-known"].find("skipped") is not None
    lenient = {c.get("name"): c for c in junit("lenient").iter("testcase")}
    assert lenient["mutates-dout"].find("failure") is None and lenient["mutates-dout"].find("system-out") is not None
    strict = junit("lenient", "--strict")
    assert strict.find("testsuite").get("failures") == "2"
    assert {c.get("name") for c in strict.iter("testcase") if c.find("failure") is not None} == {
        "mutates-dout",
        "square-marked-xfail",
    }


def test_junit_survives_control_characters():
    root = ET.fromstring(render("junit", odd_run()).encode())
    suite = root.find("testsuite")
    # SKIP fails the gate (nothing checked), so it is a failure there too; XFAIL stays skipped
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == (
        "7",
        "2",
        "1",
        "1",
    )


# -- GitHub annotations -----------------------------------------------------------------------
def test_github_annotation_points_at_the_backward_to_fix():
    lines = report("failing", "github").stdout.splitlines()
    errors = [line for line in lines if line.startswith("::error")]
    assert len(errors) == 1
    match = re.match(r"::error file=([^,]+),line=(\d+),title=([^:]+)::(.*)$", errors[0])
    assert match, errors[0]
    path, line, title, message = match.groups()
    assert Path(path).name == "cli_layers.py" and int(line) == _line_of("BiasNotSummed")
    assert "bias-not-summed" in title
    assert "worst element b[0]" in message and "%0A" in message and "\n" not in message


def test_github_falls_back_to_the_layers_yaml_entry_and_escapes():
    out = render("github", odd_run(), strict=True)
    assert "::error file=layers.yaml,line=12,title=gradcheck fail%3A FAIL::" in out
    assert "50%25 wrong, a:b%0Anext" in out
    assert "::warning" not in out  # under --strict, WARN and XPASS are errors
    assert "::warning" in render("github", odd_run())
    assert escape_property("a:b,c%") == "a%3Ab%2Cc%25" and escape_data("x\r\ny") == "x%0D%0Ay"


def test_github_paths_are_relative_to_the_workspace(monkeypatch, tmp_path):
    monkeypatch.setenv("GITHUB_WORKSPACE", str(FIXTURES.parent))
    locations = {"fail": str(FIXTURES / "cli_layers.py") + ":5"}
    assert "file=cli/cli_layers.py,line=5," in render("github", odd_run(), locations=locations)
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))  # code outside the repository: the yaml entry
    assert "file=layers.yaml,line=12," in render("github", odd_run(), locations=locations)


# -- table ------------------------------------------------------------------------------------
def test_table_text_has_every_layer_and_the_summary():
    text = render("table", odd_run())
    for status in Status:
        assert status.value.lower() in text
    assert "1 passed, 1 failed, 1 errors" in text and "\x1b[" not in text


def _line_of(name):
    """Line of `backward` of a fixture class."""
    source = (FIXTURES / "cli_layers.py").read_text().splitlines()
    start = next(i for i, line in enumerate(source) if line.startswith(f"class {name}"))
    return next(i for i in range(start, len(source)) if "def backward" in source[i]) + 1


# -- one failure account, rendered by every reporter ------------------------------------------
def two_bug_layer():
    """A layer failing in W at its smallest dims and in b at larger ones, with a passing x."""
    w = TensorResult(
        "W",
        "param",
        Status.FAIL,
        shape=(2, 3),
        max_abs_error=0.75,
        max_rel_error=0.6,
        worst_index=(1, 0),
        analytic=0.5,
        numeric=-0.25,
        message="6 of 6 elements outside tolerance",
        diagnosis="dW is the transpose of the right gradient",
        failing_dims={"N": 1, "D": 2},
        example={"dims": {"N": 1, "D": 2}, "seed": 11, "scale": 1.0},
    )
    b = TensorResult(
        "b",
        "param",
        Status.FAIL,
        shape=(3,),
        max_abs_error=2.0,
        max_rel_error=0.5,
        worst_index=(2,),
        analytic=1.0,
        numeric=3.0,
        message="3 of 3 elements outside tolerance",
        failing_dims={"N": 3, "D": 2},
        example={"dims": {"N": 3, "D": 2}, "seed": 12, "scale": 1.0},
    )
    x = TensorResult(
        "x",
        "input",
        Status.PASS,
        shape=(1, 2),
        max_abs_error=1e-9,
        max_rel_error=1e-9,
        worst_index=(0, 1),
        analytic=0.1,
        numeric=0.1,
    )
    return LayerResult(
        "affine",
        Status.FAIL,
        tensors=(x, w, b),
        message="wrong gradient for W, b",
        failing_dims={"N": 1, "D": 2},
        seed=4,
        repro="gradcheck check affine --seed 4",
        source="layers.yaml:3",
        warnings=("backward modified dout in place",),
    )


def test_the_account_holds_each_failing_tensor_once():
    account = two_bug_layer().account
    assert [t.name for t in account.tensors] == ["W", "b"]  # the passing x has nothing to account for
    w, b = account.tensors
    assert (str(w.worst), w.worst.values) == ("W[1, 0]", "analytic 0.5, numeric -0.25")
    assert w.cause == "dW is the transpose of the right gradient" and w.value_seed == 11
    assert not w.elsewhere and b.elsewhere  # b failed at N=3, not at the layer's smallest N=1
    assert account.smallest_dims == {"N": 1, "D": 2} and account.reproduce == "gradcheck check affine --seed 4"
    assert account.headline() == "wrong gradient for W, b: W[1, 0] analytic 0.5, numeric -0.25"


@pytest.mark.parametrize("fmt", sorted(REPORTERS))
def test_every_report_tells_the_worst_element_the_cause_and_how_to_reproduce(fmt):
    text = render(fmt, RunResult((two_bug_layer(),), 1.0, 4))
    if fmt == "json":
        layer = json.loads(text)["layers"][0]
        assert layer["repro"] == "gradcheck check affine --seed 4" and layer["failing_dims"] == {"N": 1, "D": 2}
        assert layer["tensors"][1]["worst_index"] == [1, 0] and "transpose" in layer["tensors"][1]["diagnosis"]
        return
    for fact in ("W[1, 0]", "analytic 0.5, numeric -0.25", "dW is the transpose", "gradcheck check affine --seed 4"):
        assert fact in text, (fmt, fact)


def test_every_renderer_renders_the_account_rather_than_the_fields(monkeypatch):
    """Change the account only: every text report (and the plugin and assert_ok) must follow it."""
    from gradcheck.pytest_plugin import LayerFailed, _outcome
    from gradcheck.results import FailureAccount

    layer = two_bug_layer()
    told = FailureAccount.of(layer)
    told = type(told)(
        told.layer,
        told.status,
        "as the account tells it",
        told.tensors[:1],
        {"N": 9},
        told.warnings,
        "gradcheck check affine --seed 99",
    )
    monkeypatch.setattr(LayerResult, "account", property(lambda self: told))
    run = RunResult((layer,), 1.0, 4)
    for fmt in ("table", "junit", "github"):
        text = render(fmt, run)
        assert "as the account tells it" in text and "--seed 99" in text, fmt
    document = json.loads(render("json", run))["layers"][0]
    assert document["repro"].endswith("--seed 99") and document["failing_dims"] == {"N": 9}
    with pytest.raises(LayerFailed, match="as the account tells it"):
        _outcome(layer)
    with pytest.raises(AssertionError, match="--seed 99"):
        layer.assert_ok()
