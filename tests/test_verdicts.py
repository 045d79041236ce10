"""Verdicts you can trust: adversarial correct and buggy layers must get the right verdict.

Every layer in tests/fixtures/adversarial/*.yaml carries its expected verdict in its
`description`, so adding a layer to a YAML file adds a test:

    description: "expect PASS"
    description: "expect FAIL|ERROR; message: REGEX"
    description: "expect FAIL; diagnosis x: REGEX; diagnosis W: none"

`expect` lists the acceptable statuses; `message` must match the layer's message (and its
warnings); `diagnosis T` must match tensor T's diagnosis (`none`: no guess at all; `!RE`: must not match).
A failing test here is a regression test for an engine defect: keep it.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from gradcheck import check_layer, run_config
from gradcheck.cli import cli
from gradcheck.results import Status, describe_failure

HERE = Path(__file__).parent / "fixtures" / "adversarial"
SEED = 0
SLOW_SEEDS = (0, 1, 2)
SLOW_EXAMPLES = 500


@dataclass(frozen=True)
class Expectation:
    """What a layer's `description` promises about its verdict."""

    statuses: tuple[Status, ...]
    message: str | None = None
    diagnoses: tuple[tuple[str, str], ...] = ()


def parse_expectation(text: str) -> Expectation:
    """Read "expect STATUS[|STATUS]; message: RE; diagnosis T: RE" from a description."""
    parts = [p.strip() for p in text.split(";")]
    head = re.fullmatch(r"expect ([A-Z|]+)", parts[0])
    assert head, f"description must start with 'expect STATUS': {text!r}"
    statuses = tuple(Status(s) for s in head.group(1).split("|"))
    message, diagnoses = None, []
    for part in parts[1:]:
        key, _, value = part.partition(":")
        key, value = key.strip(), value.strip()
        if key == "message":
            message = value
        elif key.startswith("diagnosis "):
            diagnoses.append((key.split()[1], value))
        else:
            raise AssertionError(f"unknown clause {part!r} in {text!r}")
    return Expectation(statuses, message, tuple(diagnoses))


# Known gaps of the diagnosis, not of the verdict; strict, so a fixed gap must be un-marked.
DIAGNOSIS_GAPS: set[str] = set()
GAP = pytest.mark.xfail(strict=True, reason="known diagnosis gap")


def layers_in(*files: str) -> list:
    """pytest params (file, name, expectation) for every layer of the given YAML files."""
    params = []
    for file in files:
        doc = yaml.safe_load((HERE / file).read_text())
        for layer in doc["layers"]:
            expectation = parse_expectation(layer.get("description", ""))
            marks = [GAP] if layer["name"] in DIAGNOSIS_GAPS else []
            params.append(
                pytest.param(
                    HERE / file, layer["name"], expectation, id=f"{Path(file).stem}:{layer['name']}", marks=marks
                )
            )
    return params


ALL_FILES = sorted(p.name for p in HERE.glob("*.yaml"))
CORRECT_FILES = ("kinked.yaml", "scales.yaml")


def assert_verdict(result, expectation: Expectation) -> None:
    """The result has an expected status, message and diagnoses; otherwise say all about it."""
    report = describe_failure(result) + f"\n  (status {result.status.value}, seed {result.seed})"
    assert result.status in expectation.statuses, report
    if expectation.message:
        said = " ".join([result.message, *result.warnings])
        assert re.search(expectation.message, said, re.I | re.S), (
            f"message does not match /{expectation.message}/:\n{report}"
        )
    tensors = {t.name: t for t in result.tensors}
    for name, pattern in expectation.diagnoses:
        assert name in tensors, f"no tensor {name!r} in the result:\n{report}"
        diagnosis = tensors[name].diagnosis
        if pattern.startswith("!"):
            assert not re.search(pattern[1:], diagnosis, re.I), (
                f"diagnosis of {name!r} wrongly matches /{pattern[1:]}/: {diagnosis!r}\n{report}"
            )
        elif pattern == "none":
            assert diagnosis == "", f"confident guess for a patternless bug in {name!r}: {diagnosis!r}\n{report}"
        else:
            assert re.search(pattern, diagnosis, re.I), (
                f"diagnosis of {name!r} does not match /{pattern}/: {diagnosis!r}\n{report}"
            )


@pytest.mark.parametrize("config, name, expectation", layers_in(*ALL_FILES))
def test_verdict(config, name, expectation):
    """Every adversarial layer gets its expected verdict at the default example count."""
    result = check_layer(name, config=config, seed=SEED)
    assert_verdict(result, expectation)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SLOW_SEEDS)
@pytest.mark.parametrize("config, name, expectation", layers_in(*CORRECT_FILES))
def test_no_false_alarm_over_500_examples(config, name, expectation, seed):
    """Correct kinked and extreme-scale layers pass on every one of 500 drawn examples."""
    result = check_layer(name, config=config, examples=SLOW_EXAMPLES, seed=seed)
    assert_verdict(result, expectation)


@pytest.mark.parametrize("config", [HERE / f for f in CORRECT_FILES], ids=lambda p: p.stem)
def test_run_all_strict_has_no_false_alarm(config):
    """`gradcheck run all --strict` over correct layers exits 0."""
    result = CliRunner().invoke(cli, ["run", "all", "--strict", "--config", str(config), "--seed", str(SEED)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("config", [HERE / "batch.yaml", HERE / "scales_buggy.yaml"], ids=lambda p: p.stem)
def test_run_all_flags_every_bug(config):
    """Over a file of buggy layers every layer fails and the run exits 1."""
    run = run_config(config, seed=SEED)
    assert run.exit_code() == 1
    missed = [layer.name for layer in run.layers if layer.status is not Status.FAIL]
    assert not missed, f"bugs not flagged: {missed}"


def test_warn_exits_zero_unless_strict():
    """A backward that zeroes dout in place is WARN: exit 0, and 1 under --strict."""
    args = ["run", "dout-zeroed-in-place", "--config", str(HERE / "hygiene.yaml"), "--seed", str(SEED)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    assert CliRunner().invoke(cli, args + ["--strict"]).exit_code == 1


def test_run_continues_after_raising_and_nan_layers():
    """A layer that raises or returns NaN is a verdict; the layers after it are still checked."""
    names = [
        "forward-raises",
        "forward-nan",
        "backward-nan",
        "backward-returns-none",
        "one-tuple",
        "global-np-random-dropout",
    ]
    run = run_config(HERE / "hygiene.yaml", names=names, seed=SEED, examples=5)
    got = {layer.name: layer.status for layer in run.layers}
    assert list(got) == names
    assert got["forward-raises"] is Status.ERROR
    assert got["forward-nan"] in (Status.FAIL, Status.ERROR)
    assert got["backward-nan"] in (Status.FAIL, Status.ERROR)
    assert got["backward-returns-none"] is Status.ERROR
    assert got["one-tuple"] is Status.PASS and got["global-np-random-dropout"] is Status.PASS


REPORTED = [
    pytest.param("diagnosis.yaml", "diag-later-rows", "x", id="diag-later-rows"),
    pytest.param("batch.yaml", "affine-dw-transposed-square", "W", id="affine-dw-transposed-square"),
    pytest.param("diagnosis.yaml", "diag-conv-pad", "x", id="diag-conv-pad"),
]


@pytest.mark.parametrize("file, name, tensor", REPORTED)
def test_check_report_names_everything_and_reproduces(file, name, tensor):
    """`gradcheck check` names tensor, worst element, smallest dims, cause, and a working repro."""
    runner = CliRunner()
    config = str(HERE / file)
    first = runner.invoke(cli, ["check", name, "--config", config, "--seed", "7"])
    assert first.exit_code == 1, first.output
    text = " ".join(first.output.split())  # undo line wrapping
    worst = re.search(rf"{tensor}\[[\d, ]+\]: analytic \S+, numeric \S+", text)
    assert worst, text
    assert "smallest failing dims:" in text and "probable cause:" in text, text
    repro = re.search(r"reproduce: (gradcheck check .*?--config \S+)", text)
    assert repro, text
    argv = shlex.split(repro.group(1))[1:]
    again = runner.invoke(cli, argv)
    assert again.exit_code == 1, again.output
    assert worst.group(0) in " ".join(again.output.split()), again.output
