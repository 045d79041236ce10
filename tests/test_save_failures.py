"""--save-failures: a failing example written as arrays and a script that replays it alone."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import gradcheck
from gradcheck.api import check_layer, run_config
from gradcheck.cli import cli

GALLERY = Path(__file__).resolve().parent.parent / "examples" / "buggy"
CLEAN_ENV = {"FORCE_COLOR": None, "NO_COLOR": None, "COLUMNS": None, "GITHUB_WORKSPACE": None}

MODULE = """\
import numpy as np


def forward(x):
    return np.tanh(x), x


def good_backward(dout, x):
    return dout * (1 - np.tanh(x) ** 2)


def wrong_backward(dout, x):
    return dout * (1 + np.tanh(x) ** 2)


def raising_backward(dout, x):
    return helper(dout, x)


def helper(dout, x):
    raise ValueError("boom in backward")
"""

LAYERS = "layers:\n" + "".join(
    f"""\
  - name: {name}
    impl: mine.py
    style: functions
    forward: forward
    backward: {name}_backward
    inputs: {{x: [N, D]}}
    dims: {{N: [1, 3], D: [1, 3]}}
"""
    for name in ("good", "wrong", "raising")
)


def invoke(*args):
    return CliRunner(env=CLEAN_ENV).invoke(cli, [str(a) for a in args], catch_exceptions=False)


def replay(script: Path, cwd: Path) -> subprocess.CompletedProcess:
    """Run a saved script alone, from another folder, as a user would."""
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "mine.py").write_text(MODULE)
    (tmp_path / "layers.yaml").write_text(LAYERS)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "name, tensor",
    [
        ("sigmoid-wrong-sign", "x"),  # functions style
        ("transposed-weight-square", "W"),  # class style, parameters on the object
        ("softmax-loss-not-averaged", "x"),  # loss style
    ],
)
def test_a_gallery_bug_is_saved_and_its_script_reproduces_it_alone(tmp_path, name, tensor):
    out = tmp_path / "failures"
    result = invoke("run", name, "--config", GALLERY / "layers.yaml", "--seed", 3, "--save-failures", out)
    assert result.exit_code == 1, result.output
    script, data = out / f"{name}.py", out / f"{name}.npz"
    assert script.is_file() and data.is_file()
    ran = replay(script, cwd=tmp_path)
    assert ran.returncode == 1, ran.stderr
    assert f"{tensor}: MISMATCH" in ran.stdout


@pytest.mark.parametrize("name", ["sigmoid-wrong-sign", "transposed-weight-square", "softmax-loss-not-averaged"])
def test_the_fixed_twin_writes_nothing(tmp_path, name):
    out = tmp_path / "failures"
    result = invoke("run", name, "--config", GALLERY / "fixed.yaml", "--seed", 3, "--save-failures", out)
    assert result.exit_code == 0, result.output
    assert not out.exists() or not any(out.iterdir())


def test_the_npz_holds_the_whole_failing_example(project):
    result = invoke("run", "all", "--seed", 5, "--save-failures", "out")
    assert result.exit_code == 1
    assert sorted(p.name for p in (project / "out").iterdir()) == ["raising.npz", "raising.py", "wrong.npz", "wrong.py"]
    saved = np.load(project / "out" / "wrong.npz")
    x = saved["input/x"]
    assert x.shape == (int(saved["dims/N"]), int(saved["dims/D"]))
    assert {"seed", "scale", "upstream/0", "analytic/x", "numeric/x"} <= set(saved.files)
    upstream = saved["upstream/0"]
    np.testing.assert_allclose(saved["numeric/x"], upstream * (1 - np.tanh(x) ** 2), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(saved["analytic/x"], upstream * (1 + np.tanh(x) ** 2))


def test_a_raising_layers_script_raises_the_users_exception_at_the_users_line(project, tmp_path):
    invoke("run", "raising", "--seed", 5, "--save-failures", "out")
    ran = replay(project / "out" / "raising.py", cwd=tmp_path.parent)
    assert ran.returncode == 1
    assert "ValueError: boom in backward" in ran.stderr
    assert 'mine.py", line 21, in helper' in ran.stderr  # the user's frame, not gradcheck's verdict


def test_a_layer_name_is_made_a_safe_file_name(tmp_path):
    from gradcheck.failures import file_stem

    assert file_stem("../etc/passwd") == "_etc_passwd"
    assert file_stem("a b/c") == "a_b_c"


def test_the_api_saves_failures_too(tmp_path):
    out = tmp_path / "api"
    layer = check_layer("sigmoid-wrong-sign", GALLERY / "layers.yaml", seed=3, save_failures=out)
    assert not layer.ok
    assert "x: MISMATCH" in replay(out / "sigmoid-wrong-sign.py", cwd=tmp_path).stdout
    run = run_config(GALLERY / "fixed.yaml", ["sigmoid-wrong-sign"], seed=3, save_failures=tmp_path / "fixed")
    assert run.exit_code() == 0 and not (tmp_path / "fixed").exists()


def test_gradcheck_check_saves_the_given_arrays(tmp_path):
    def forward(x, w):
        return x @ w, (x, w)

    def backward(dout, cache):
        x, w = cache
        return dout @ w.T, 2 * x.T @ dout  # BUG: dw doubled

    x, w = np.random.default_rng(0).standard_normal((2, 3)), np.random.default_rng(1).standard_normal((3, 2))
    result = gradcheck.check((forward, backward), x, w, save_failures=tmp_path)
    assert not result.passed
    saved = np.load(tmp_path / "forward.npz")
    np.testing.assert_array_equal(saved["input/x"], x)
    ran = replay(tmp_path / "forward.py", cwd=tmp_path)
    assert ran.returncode == 1 and "w: MISMATCH" in ran.stdout and "x: ok" in ran.stdout


def test_compare_handles_a_scalar_parameter_and_non_finite_values(tmp_path, capsys):
    from gradcheck.failures import compare

    np.savez(
        tmp_path / "s.npz",
        **{
            "numeric/w": np.array(0.5),
            "numeric/x": np.array([1.0, np.nan]),
            "rtol": np.array(1e-5),
            "atol": np.array(1e-7),
        },
    )
    saved = np.load(tmp_path / "s.npz")
    assert compare({"w": np.array(0.5), "x": np.array([1.0, 2.0])}, saved) == 1
    out = capsys.readouterr().out
    assert "w: ok" in out and "x: MISMATCH" in out  # a NaN is never a match
    assert compare({"w": np.array(1.0), "x": np.array([1.0, 2.0])}, saved) == 1
    assert "w: MISMATCH" in capsys.readouterr().out


def test_json_on_stdout_stays_valid_while_failures_are_saved(project):
    import json

    (project / "mine.py").write_text(
        MODULE.replace("def wrong_backward(dout, x):\n", "def wrong_backward(dout, x):\n    print('noise')\n")
    )
    result = invoke("run", "all", "--seed", 5, "--format", "json", "--save-failures", "out")
    assert json.loads(result.stdout)["layers"][1]["status"] == "FAIL"
    assert "saved out/wrong.npz; replay it: python out/wrong.py" in result.stderr
    assert (project / "out" / "wrong.py").is_file()


def test_a_spec_made_in_python_gets_a_script_of_the_saved_numbers(project, tmp_path):
    from dataclasses import replace

    from gradcheck.registry import load_registry

    spec = replace(load_registry("layers.yaml").get("wrong"), source="")
    check_layer(spec, seed=5, save_failures=tmp_path / "made")
    ran = replay(tmp_path / "made" / "wrong.py", cwd=tmp_path)
    assert ran.returncode == 1 and "x: MISMATCH" in ran.stdout


def test_a_layer_that_exits_cannot_end_the_run_green_while_saved_or_shown(project):
    (project / "mine.py").write_text(MODULE + "\n\ndef exiting_backward(dout, x):\n    import sys\n    sys.exit(0)\n")
    (project / "layers.yaml").write_text(LAYERS.replace("raising_backward", "exiting_backward"))
    result = invoke("run", "raising", "--seed", 5, "--save-failures", "out", "-v")
    assert result.exit_code == 1
    assert (project / "out" / "raising.py").is_file()
