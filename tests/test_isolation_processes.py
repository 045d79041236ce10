"""Signals and processes: SIGTERM/Ctrl-C end the workers and write the partial report; processes a layer
starts end with its worker; a worker over its memory limit is that layer's ERROR.

These start real processes: every wait polls with a generous limit (a loaded machine is slow), and
every process started is killed at the end whatever happens."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradcheck.cli import cli
from gradcheck.memory import parse_size

HOSTILE = Path(__file__).parent / "fixtures" / "hostile"
PATIENCE = 90.0  # seconds to wait for anything a process should do soon


def poll(condition, patience=PATIENCE):
    """Wait until condition() is true; whether it became true."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def alive(pid: int) -> bool:
    """Whether `pid` is a running process (not gone, not a zombie waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def pids(marker: Path) -> list[int]:
    return [int(line) for line in marker.read_text().split()] if marker.exists() else []


@pytest.fixture
def marker(tmp_path):
    """The file the fixture layers write their process ids to; every process named there is killed afterwards."""
    path = tmp_path / "pids"
    yield path
    for pid in pids(path):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def start(marker: Path, *args) -> subprocess.Popen:
    env = {**os.environ, "GRADCHECK_TEST_MARKER": str(marker)}
    return subprocess.Popen(
        [sys.executable, "-m", "gradcheck", "run", *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=HOSTILE.parent,
    )


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see processes")
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_ends_the_workers_and_writes_the_partial_report(signum, code, marker, tmp_path):
    report = tmp_path / "report.json"
    process = start(
        marker,
        "square",
        "sleeper",
        "--config",
        HOSTILE / "misc.yaml",
        "--seed",
        1,
        "--output",
        report,
        "--format",
        "json",
    )
    try:
        assert poll(lambda: pids(marker)), "the sleeping layer never started"
        process.send_signal(signum)
        out, err = process.communicate(timeout=PATIENCE)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == code, err
    assert "Traceback" not in err and "interrupted: 1 of 2 layer(s) checked" in err
    layers = json.loads(report.read_text())["layers"]
    assert [(layer["name"], layer["status"]) for layer in layers] == [("square", "PASS")]
    assert "square" in out  # the table of what finished
    assert poll(lambda: not any(alive(pid) for pid in pids(marker))), "a worker outlived gradcheck"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see processes")
def test_processes_a_layer_starts_end_with_it_and_a_pipe_never_waits_for_them(marker):
    process = start(marker, "spawner", "--config", HOSTILE / "misc.yaml", "--seed", 1, "--examples", 1)
    try:
        out, err = process.communicate(timeout=PATIENCE * 2)  # would wait 300 s for a process holding stdout
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0, err
    assert pids(marker) and poll(lambda: not any(alive(pid) for pid in pids(marker)))


def test_a_layer_over_the_memory_limit_is_its_error_and_the_others_go_on():
    result = CliRunner().invoke(
        cli,
        [
            "run",
            "square",
            "greedy",
            "--config",
            str(HOSTILE / "misc.yaml"),
            "--memory-limit",
            "400M",
            "--format",
            "json",
        ],
    )
    layers = {layer["name"]: layer for layer in json.loads(result.stdout)["layers"]}
    assert result.exit_code == 1
    assert layers["square"]["status"] == "PASS"
    assert layers["greedy"]["status"] == "ERROR"
    assert "memory limit of 400M" in layers["greedy"]["message"]


def test_the_limit_comes_from_pyproject_and_none_lifts_it(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text('[tool.gradcheck]\nmemory_limit = "400M"\n')
    monkeypatch.chdir(tmp_path)
    args = ["run", "greedy", "--config", str(HOSTILE / "misc.yaml"), "--format", "json"]
    limited = CliRunner().invoke(cli, args)
    assert limited.exit_code == 1 and "memory limit of 400M" in json.loads(limited.stdout)["layers"][0]["message"]
    lifted = CliRunner().invoke(cli, [*args, "--memory-limit", "none"])
    assert lifted.exit_code == 0, lifted.output


@pytest.mark.parametrize(
    "text, size",
    [("4G", 4 << 30), ("512M", 512 << 20), ("1.5GiB", 3 << 29), ("none", None), ("0", None), (1 << 30, 1 << 30)],
)
def test_memory_sizes_parse(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "-1G", "10K", "4X"])
def test_bad_memory_sizes_are_a_usage_error(text):
    result = CliRunner().invoke(cli, ["run", "square", "--config", str(HOSTILE / "misc.yaml"), "--memory-limit", text])
    assert result.exit_code == 2 and "--memory-limit" in result.stderr


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.skipif(
    not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists(), reason="needs /proc/PID/task/PID/children"
)
def test_sigterm_while_importing_ends_the_import_process_too(marker):
    process = start(marker, "all", "--config", HOSTILE / "sleeps.yaml")
    importer = []
    try:
        assert poll(lambda: importer.extend(children(process.pid)) or importer), "the import never started"
        process.terminate()
        _, err = process.communicate(timeout=PATIENCE)
        assert poll(lambda: not any(alive(pid) for pid in importer)), "the import's process outlived gradcheck"
    finally:
        process.kill()
        process.wait()
        for pid in filter(alive, importer):
            os.kill(pid, signal.SIGKILL)
    assert process.returncode == 143 and "Traceback" not in err
