"""The command line as a CI gate: exit codes, usage errors, --output, config discovery, no terminal junk."""

import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradcheck import cli as cli_module
from gradcheck.cli import cli
from gradcheck.results import RunResult

FIXTURES = Path(__file__).parent / "fixtures" / "cli"
CLEAN_ENV = {"FORCE_COLOR": None, "NO_COLOR": None, "TTY_COMPATIBLE": None, "COLUMNS": None, "GITHUB_WORKSPACE": None}


def invoke(*args):
    """Run the CLI in-process; a crash inside it fails the test instead of becoming an exit code."""
    return CliRunner(env=CLEAN_ENV).invoke(cli, [str(a) for a in args], catch_exceptions=False)


def config(name):
    return FIXTURES / f"{name}.yaml"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A temporary project folder holding the fixture layers, as the current directory."""
    for item in FIXTURES.iterdir():
        if item.is_file():
            shutil.copy(item, tmp_path / item.name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- exit codes -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fixture, extra, code",
    [
        ("layers", [], 0),  # PASS and XFAIL
        ("layers", ["--strict"], 0),  # an expected failure stays fine under --strict
        ("failing", [], 1),  # a FAIL
        ("lenient", [], 0),  # WARN and XPASS pass...
        ("lenient", ["--strict"], 1),  # ...unless --strict
    ],
)
def test_exit_code_follows_the_worst_status(fixture, extra, code):
    result = invoke("run", "all", "--config", config(fixture), "--seed", 7, *extra)
    assert result.exit_code == code, result.output


@pytest.mark.parametrize("command", ["run", "check"])
def test_checking_commands_keep_freed_memory_for_reuse(command, monkeypatch):
    asked = []
    monkeypatch.setattr(cli_module, "keep_freed_memory", lambda: asked.append(True) or True)
    invoke(command, "square" if command == "check" else "all", "--config", config("layers"), "--seed", 7)
    assert asked == [True]


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "afine"], "no layer named 'afine'"),
        (["check", "squre"], "did you mean 'square'?"),
        (["run", "all", "--shard", "0/3"], "1 <= K <= N"),
        (["run", "all", "--shard", "4/3"], "1 <= K <= N"),
        (["run", "all", "--shard", "two"], "expected K/N"),
        (["run", "all", "--jobs", "0"], "must be positive"),
        (["run", "all", "--rtol", "-1"], "rtol must be a number >= 0 and < 1, got -1.0"),
        (["run", "all", "--format", "xml"], "'xml' is not one of"),
    ],
)
def test_usage_errors_exit_2_without_traceback(args, message):
    result = invoke(*args, "--config", config("layers"))
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_unknown_layer_message_names_the_file_and_the_closest_name():
    result = invoke("run", "affine", "afine", "--config", config("layers"))
    assert result.exit_code == 2
    assert f"no layer named 'afine' in {config('layers')} (did you mean 'affine'?)" in result.stderr
    assert result.stdout == ""  # nothing was checked


def test_missing_config_exits_2_and_points_at_init(project):
    (project / "layers.yaml").unlink()
    result = invoke("run", "all")
    assert result.exit_code == 2
    assert "layers.yaml: no such file" in result.stderr and "gradcheck init" in result.stderr
    assert "Traceback" not in result.output


def test_invalid_layers_yaml_exits_2_with_every_problem(project):
    (project / "layers.yaml").write_text(
        "layers:\n  - name: a\n    impl: cli_layers.py:Square\n    inputs: {x: [N, D]}\n"
        "    dims: {N: [1, 2]}\n    tolerance: 1\n"
    )
    result = invoke("run", "all", "--format", "github")
    assert result.exit_code == 2
    assert "layers.yaml:4: input 'x': dim 'D' is used but has no range in 'dims'" in result.stderr
    assert "layers.yaml:6: unknown key 'tolerance'" in result.stderr
    assert "2 problems in layers.yaml: nothing was checked" in result.stderr
    assert "::error file=layers.yaml,line=6," in result.stdout  # under --format github, annotations too


# -- formats and --output ---------------------------------------------------------------------
def test_output_writes_the_format_and_the_table_still_prints(tmp_path):
    report = tmp_path / "reports" / "gradcheck.xml"
    result = invoke("run", "all", "--config", config("failing"), "--seed", 7, "--format", "junit", "--output", report)
    assert result.exit_code == 1
    assert report.read_text().startswith("<?xml")
    assert "bias-not-summed" in result.stdout and "1 passed, 1 failed" in result.stdout
    assert "<testsuite" not in result.stdout


def test_json_on_stdout_is_the_only_thing_there():
    result = invoke("run", "all", "--config", config("layers"), "--seed", 7, "--format", "json")
    document = json.loads(result.stdout)
    assert [layer["status"] for layer in document["layers"]] == ["PASS", "PASS", "XFAIL"]


def test_github_format_prints_annotations_then_the_table():
    result = invoke("run", "all", "--config", config("failing"), "--seed", 7, "--format", "github")
    lines = result.stdout.splitlines()
    assert lines[0].startswith("::error file=") and "bias-not-summed" in lines[0]
    assert any(line.startswith("::notice title=gradcheck::") for line in lines)
    assert "1 passed, 1 failed" in result.stdout


# -- terminal behaviour -----------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["table", "json", "junit", "github"])
def test_no_colour_or_progress_off_a_terminal(fmt):
    result = invoke("run", "all", "--config", config("failing"), "--seed", 7, "--format", fmt)
    assert "\x1b[" not in result.output
    assert "\r" not in result.output
    assert "0:00:0" not in result.output  # the progress display's elapsed-time column


def test_forced_colour_does_not_bring_progress_into_a_log():
    """FORCE_COLOR (set by some CI systems) colours the table but a log never gets the progress display."""
    result = CliRunner(env=CLEAN_ENV | {"FORCE_COLOR": "1"}).invoke(
        cli, ["run", "all", "--config", str(config("layers")), "--seed", "7"], catch_exceptions=False
    )
    assert result.exit_code == 0
    assert "\x1b[" in result.stdout  # colour follows FORCE_COLOR, as rich decides
    assert "0:00:0" not in result.output and "layers" not in result.stderr


def test_progress_shows_on_a_terminal_and_never_on_stdout():
    """With stderr on a pseudo-terminal the progress display draws there; stdout stays clean."""
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV} | {"TERM": "xterm"}
    process = subprocess.Popen(
        [sys.executable, "-m", "gradcheck", "run", "all", "--config", config("layers"), "--seed", "7"],
        stdout=subprocess.PIPE,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    terminal, deadline = b"", time.monotonic() + 60
    try:  # read while it runs, so a full terminal buffer cannot block it
        while select.select([leader], [], [], max(0.0, deadline - time.monotonic()))[0]:
            if not (chunk := os.read(leader, 65536)):
                break
            terminal += chunk
    except OSError:  # every writer has closed the terminal: all has been read
        pass
    os.close(leader)
    if time.monotonic() > deadline:
        process.kill()
    stdout = process.communicate(timeout=60)[0]
    assert process.returncode == 0
    assert b"layers" in terminal and b"\x1b[" in terminal
    assert b"\x1b[" not in stdout and b"2 passed" in stdout


# -- options reach the engine -----------------------------------------------------------------
@pytest.fixture
def captured(monkeypatch):
    """Replace the runner: record what the CLI would run, run nothing."""
    seen = {}

    def fake_run_layers(specs, options, jobs=1, **kwargs):
        seen.update(specs={s.name: s for s in specs}, options=options, jobs=jobs)
        return RunResult((), 0.0, options.seed)

    monkeypatch.setattr(cli_module, "run_layers", fake_run_layers)
    return seen


@pytest.mark.parametrize("mode", ["auto", "full", "fast"])
def test_mode_is_passed_to_the_engine(captured, mode):
    assert invoke("check", "affine", "--config", config("layers"), "--mode", mode).exit_code == 0
    assert captured["options"].mode == mode


def test_pyproject_defaults_rank_below_layers_yaml_and_above_built_ins(project, captured):
    (project / "pyproject.toml").write_text(
        '[tool.gradcheck]\nconfig = "tolerance.yaml"\nrtol = 1e-2\nexamples = 9\nseed = 5\njobs = 3\n'
        'mode = "fast"\ntimeout = 30\n'
    )
    (project / "tolerance.yaml").write_text(
        (project / "tolerance.yaml").read_text().replace("layers:", "defaults:\n  examples: 4\nlayers:")
    )
    assert invoke("run", "all").exit_code == 0
    specs, options = captured["specs"], captured["options"]
    assert specs["off-default"].tolerances.rtol == 1e-2  # [tool.gradcheck] fills the gap
    assert specs["off-own-rtol"].tolerances.rtol == 1e-5  # the layer's own value wins
    assert specs["off-default"].examples == 4  # the file's defaults: win too
    assert specs["off-default"].timeout == 30
    assert (options.seed, captured["jobs"], options.mode) == (5, 3, "fast")
    assert options.tolerances.rtol is None and options.config is None  # no --config needed to reproduce

    assert invoke("run", "all", "--rtol", "0.5", "--seed", 1, "--jobs", 1, "--mode", "full").exit_code == 0
    assert captured["options"].tolerances.rtol == 0.5  # a flag overrides everything
    assert (captured["options"].seed, captured["jobs"], captured["options"].mode) == (1, 1, "full")


def test_pyproject_precedence_end_to_end(project):
    """A 0.1% error passes under [tool.gradcheck] rtol = 1e-2, except where layers.yaml or a flag is stricter."""
    (project / "pyproject.toml").write_text('[tool.gradcheck]\nrtol = 1e-2\nconfig = "tolerance.yaml"\n')
    result = invoke("run", "all", "--seed", 3, "--examples", 3, "--format", "json")
    statuses = {layer["name"]: layer["status"] for layer in json.loads(result.stdout)["layers"]}
    assert statuses == {"off-default": "PASS", "off-own-rtol": "FAIL"}
    result = invoke("run", "off-default", "--seed", 3, "--examples", 3, "--rtol", "1e-5")
    assert result.exit_code == 1


@pytest.mark.parametrize(
    "toml, message",
    [
        (
            '[tool.gradcheck]\nrtol = "abc"\n',
            "pyproject.toml: [tool.gradcheck] rtol must be a number >= 0 and < 1, got 'abc'",
        ),
        ("[tool.gradcheck]\nrtl = 1e-3\n", "unknown key 'rtl' (did you mean 'rtol'?)"),
        ("[tool.gradcheck]\njobs = 0\n", "jobs must be a whole number >= 1, got 0"),
        ('[tool.gradcheck]\nmode = "quick"\n', "mode must be one of auto, full, fast"),
        ("[tool.gradcheck\n", "pyproject.toml: invalid TOML"),
    ],
)
def test_bad_pyproject_exits_2(project, toml, message):
    (project / "pyproject.toml").write_text(toml)
    result = invoke("run", "all")
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_pyproject_without_a_gradcheck_table_changes_nothing(project):
    (project / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert invoke("run", "all", "--seed", 7).exit_code == 0


def test_list_reads_the_configured_file(project):
    (project / "pyproject.toml").write_text('[tool.gradcheck]\nconfig = "failing.yaml"\n')
    result = invoke("list")
    assert result.exit_code == 0
    assert "bias-not-summed" in result.stdout and "2 layers in failing.yaml" in result.stdout


def test_fail_fast_stops_at_the_first_failure():
    result = invoke(
        "run",
        "bias-not-summed",
        "affine",
        "--config",
        config("failing"),
        "--seed",
        7,
        "--fail-fast",
        "--format",
        "json",
        "--output",
        os.devnull,
    )
    assert result.exit_code == 1
    assert "1 layer(s) not checked" in result.stdout


def test_repro_command_reproduces_the_failure():
    result = invoke("run", "all", "--config", config("failing"), "--seed", 11, "--format", "json")
    layer = next(layer for layer in json.loads(result.stdout)["layers"] if layer["status"] == "FAIL")
    argv = layer["repro"].split()
    assert argv[:2] == ["gradcheck", "check"] and "--seed" in argv
    again = invoke(*argv[1:], "--format", "json")
    assert again.exit_code == 1
    assert json.loads(again.stdout)["layers"][0]["tensors"] == layer["tensors"]


@pytest.mark.parametrize("command", ["run", "check"])
def test_every_shared_option_is_read_into_the_run_or_its_outputs(command):
    from dataclasses import fields

    from gradcheck.cli_options import read_flags

    names = {param.name for param in cli.commands[command].params if param.name not in ("names", "name")}
    flags, outputs = read_flags(dict.fromkeys(names))
    assert {field.name for field in fields(flags)} | {field.name for field in fields(outputs)} == names
