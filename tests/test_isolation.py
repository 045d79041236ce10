"""Importing user code: exits, hangs, prints and shadowing files at import; one module per folder;
no fork: in-process instead of raising."""

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradcheck import importing
from gradcheck.cli import cli
from gradcheck.engine import Options
from gradcheck.parallel import run_layers
from gradcheck.registry import load_registry
from gradcheck.results import Status

HOSTILE = Path(__file__).parent / "fixtures" / "hostile"
GRADCHECK = [sys.executable, "-m", "gradcheck"]


def gradcheck(*args, timeout=180, **kwargs):
    """Run the CLI as a user would, in a fresh process (from a neutral folder, so no file shadows anything)."""
    return subprocess.run(
        [*GRADCHECK, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=HOSTILE.parent, **kwargs
    )


def test_an_import_that_exits_is_a_config_error_with_its_line():
    result = CliRunner().invoke(cli, ["run", "all", "--config", str(HOSTILE / "layers.yaml")])
    assert result.exit_code == 2
    assert "layers.yaml:7: cannot import 'exits.py': it called sys.exit(0) while importing" in result.stderr
    assert "layers.yaml:12: cannot import 'hard_exit.py': it ended the process (os._exit(0)?)" in result.stderr
    assert "Traceback" not in result.output


def test_an_import_that_hangs_is_cut_off_by_the_timeout():
    result = gradcheck("run", "all", "--config", HOSTILE / "sleeps.yaml", "--timeout", 2)
    assert result.returncode == 2
    assert "sleeps.yaml:3: cannot import 'sleeps.py': importing it did not finish within 2 s" in result.stderr
    assert "Traceback" not in result.stderr


def test_printing_or_closing_stdout_at_import_leaves_the_json_report_whole():
    result = gradcheck("run", "all", "--config", HOSTILE / "clean.yaml", "--format", "json", "--seed", 3)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert [(layer["name"], layer["status"]) for layer in document["layers"]] == [
        ("prints", "PASS"),
        ("closes", "PASS"),
        ("noisy", "PASS"),
    ]
    assert "noise at import" in result.stderr and "noise from forward" in result.stderr


def test_a_numpy_py_or_hypothesis_py_beside_layers_yaml_shadows_nothing():
    # both raise if imported
    result = gradcheck("run", "all", "--config", HOSTILE / "shadow" / "layers.yaml", "--seed", 3)
    assert result.returncode == 0, result.stderr
    assert "1 passed" in result.stdout


def test_printing_layers_keep_json_whole_in_process_too(capfd):
    registry = load_registry(HOSTILE / "clean.yaml")
    run = run_layers(registry.layers, Options(seed=3, examples=2), jobs=1)  # no timeout: this process
    assert [layer.status for layer in run.layers] == [Status.PASS] * 3
    out, err = capfd.readouterr()
    assert "noise" not in out and "noise from forward" in err


def _package(folder: Path, factor: int) -> Path:
    (folder / "pkg").mkdir(parents=True)
    (folder / "pkg" / "__init__.py").write_text("")
    (folder / "pkg" / "helper.py").write_text(f"FACTOR = {factor}\n")
    (folder / "pkg" / "mod.py").write_text(
        "from pkg.helper import FACTOR\n\n\nclass Square:\n    def forward(self, x):\n        self.x = x\n"
        "        return x * x\n\n    def backward(self, dout):\n        return FACTOR * self.x * dout\n"
    )
    (folder / "layers.yaml").write_text(
        "layers:\n  - name: sq\n    impl: pkg.mod:Square\n    inputs: {x: [N]}\n    dims: {N: [1, 3]}\n"
    )
    return folder / "layers.yaml"


def test_the_same_module_name_in_two_folders_is_each_folders_own(tmp_path):
    path_before = list(sys.path)
    right, wrong = _package(tmp_path / "right", 2), _package(tmp_path / "wrong", 3)
    statuses = [
        run_layers(load_registry(config).layers, Options(seed=1, examples=2)).layers[0].status
        for config in (right, wrong, right)
    ]
    assert statuses == [Status.PASS, Status.FAIL, Status.PASS]
    assert sys.path == path_before
    assert "pkg" not in sys.modules and "pkg.mod" not in sys.modules


def test_without_fork_imports_and_runs_happen_in_this_process(tmp_path, monkeypatch):
    (tmp_path / "sq.py").write_text(
        "class Square:\n    def forward(self, x):\n        self.x = x\n        return x * x\n"
        "    def backward(self, dout):\n        return 2 * self.x * dout\n"
    )
    (tmp_path / "layers.yaml").write_text(
        "layers:\n  - name: sq\n    impl: sq.py:Square\n    inputs: {x: [N]}\n    dims: {N: [1, 3]}\n    timeout: 30\n"
    )
    monkeypatch.delattr(os, "fork")
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    run = run_layers(load_registry(tmp_path / "layers.yaml").layers, Options(seed=1, examples=2), jobs=2)
    assert [layer.status for layer in run.layers] == [Status.PASS]


def test_the_import_time_limit_follows_the_run():
    importing.set_limits(seconds=3)
    try:
        with pytest.raises(importing.UserImportError, match="did not finish within 3 s"):
            importing.import_user("sleeps.py", HOSTILE)
    finally:
        importing.set_limits()
