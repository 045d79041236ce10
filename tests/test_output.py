"""Output that never breaks: markup and XML escaped, odd text printable, stdout closed/full/a closed
pipe, --jobs capped, --output never overwriting code and always whole."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradcheck import cli as cli_module
from gradcheck.cli import cli
from gradcheck.reporters import REPORTERS, render
from gradcheck.results import LayerResult, RunResult, Status, TensorResult

HOSTILE = Path(__file__).parent / "fixtures" / "hostile"
ODD = "[/] [bold]x\x1b[31m\x00 ]]> \udc80"


def gradcheck_shell(command: str, timeout: int = 180) -> subprocess.CompletedProcess:
    """`command` in sh, with $GC the CLI as a user runs it."""
    env = {**os.environ, "GC": f"{sys.executable} -m gradcheck"}
    return subprocess.run(
        ["sh", "-c", command],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=HOSTILE.parent,
        env=env,
        errors="backslashreplace",
    )


def odd_run() -> RunResult:
    tensor = TensorResult(ODD, "input", Status.FAIL, (2,), 1.0, 0.5, (1,), 1.0, 2.0, message=ODD, diagnosis=ODD)
    layer = LayerResult(
        ODD,
        Status.FAIL,
        (tensor,),
        examples=1,
        message=ODD,
        warnings=(ODD,),
        repro=ODD,
        source=ODD,
        impl=ODD,
        style="class",
    )
    error = LayerResult("e" + ODD, Status.ERROR, examples=1, message=ODD)
    return RunResult((layer, error), 1.0, 7)


@pytest.mark.parametrize("fmt", list(REPORTERS))
def test_every_format_holds_names_and_messages_that_are_markup_escapes_and_surrogates(fmt):
    text = render(fmt, odd_run())
    text.encode("utf-8")  # a lone surrogate would fail here
    assert "\x1b" not in text or fmt == "json"
    if fmt == "json":
        assert json.loads(text)["layers"][0]["name"] == ODD
    if fmt == "junit":
        root = ET.fromstring(text.encode("utf-8"))
        assert root.find(".//testcase").get("name").startswith("[/] [bold]x")
        assert "]]>" in root.find(".//failure").text
    if fmt == "table":
        assert "[/] [bold]x\\x1b[31m\\x00 ]]> \\udc80" in text


def test_the_table_and_json_survive_markup_names_and_a_surrogate_raised_by_a_layer():
    runner = CliRunner()
    table = runner.invoke(cli, ["run", "all", "--config", str(HOSTILE / "markup.yaml"), "--seed", 1])
    assert table.exit_code == 1, table.output
    assert "[/]" in table.stdout and "[bold]x[/bold]" in table.stdout and "\\udc80" in table.stdout
    listed = runner.invoke(cli, ["list", "--config", str(HOSTILE / "markup.yaml")])
    assert listed.exit_code == 0 and "[/]" in listed.stdout
    as_json = runner.invoke(cli, ["run", "all", "--config", str(HOSTILE / "markup.yaml"), "--format", "json"])
    assert [layer["status"] for layer in json.loads(as_json.stdout)["layers"]] == ["PASS", "ERROR"]


@pytest.mark.parametrize("redirect", [">&-", "> /dev/full", "| true"])  # true reads nothing: a closed pipe
def test_stdout_closed_full_or_a_closed_pipe_is_no_traceback(redirect, tmp_path):
    command = f"$GC run surrogate square --config hostile/misc.yaml --seed 1 2>{tmp_path}/err"
    gradcheck_shell(
        f"( {command}; echo $? > {tmp_path}/rc ) {redirect}"
        if "|" in redirect
        else f"{command} {redirect}; echo $? > {tmp_path}/rc"
    )
    err = (tmp_path / "err").read_text(errors="backslashreplace")
    assert "Traceback" not in err and "Exception ignored" not in err
    assert (tmp_path / "rc").read_text().strip() == "1", err  # the verdict: surrogate is an ERROR
    if redirect == "> /dev/full":
        assert "error: cannot write to stdout: No space left on device" in err


def test_too_many_jobs_are_capped_and_said_so():
    result = CliRunner().invoke(cli, ["run", "square", "--config", str(HOSTILE / "misc.yaml"), "--jobs", "10000"])
    assert result.exit_code == 0
    assert "--jobs 10000 is more than this machine can use: running" in result.stderr


@pytest.mark.parametrize("target", ["misc.yaml", "square.py"])
def test_output_never_overwrites_the_config_or_the_layer_code(target, tmp_path):
    for name in ("misc.yaml", "square.py"):
        (tmp_path / name).write_bytes((HOSTILE / name).read_bytes())
    before = (tmp_path / target).read_bytes()
    result = CliRunner().invoke(
        cli, ["run", "square", "--config", str(tmp_path / "misc.yaml"), "--output", str(tmp_path / target)]
    )
    assert result.exit_code == 2
    assert f"--output {tmp_path / target} is" in result.stderr and "would be overwritten" in result.stderr
    assert (tmp_path / target).read_bytes() == before


def test_an_unwritable_output_still_prints_the_table_and_the_verdict(tmp_path):
    (tmp_path / "file").write_text("")
    result = CliRunner().invoke(
        cli,
        [
            "run",
            "square",
            "surrogate",
            "--config",
            str(HOSTILE / "misc.yaml"),
            "--output",
            str(tmp_path / "file" / "report.json"),
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 1  # surrogate's ERROR, not 2
    assert "error: cannot write --output" in result.stderr
    assert "square" in result.stdout and "1 passed" in result.stdout


def test_the_report_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    report = tmp_path / "report.json"
    report.write_text("the previous report")

    def fail(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli_module.os, "replace", fail)
    result = CliRunner().invoke(
        cli, ["run", "square", "--config", str(HOSTILE / "misc.yaml"), "--output", str(report), "--format", "json"]
    )
    assert result.exit_code == 0 and "No space left on device" in result.stderr
    assert report.read_text() == "the previous report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary file left behind
    monkeypatch.undo()
    result = CliRunner().invoke(
        cli, ["run", "square", "--config", str(HOSTILE / "misc.yaml"), "--output", str(report), "--format", "json"]
    )
    assert json.loads(report.read_text())["layers"][0]["status"] == "PASS"


def test_the_progress_display_shows_a_markup_name_as_written():
    import io

    from rich.console import Console

    from gradcheck.reporters.progress import ProgressDisplay

    buffer = io.StringIO()
    with ProgressDisplay(Console(file=buffer, force_terminal=True, width=80), layers=1) as display:
        display.example("[/]\x1b", 1, 2)
    assert "[/]\\x1b" in buffer.getvalue()
