"""Errors in user code are reported at the user's file and line, with the last frames of their traceback."""

import json
import os
from pathlib import Path

import pytest

from gradcheck.engine import Options, check_layer
from gradcheck.registry import load_registry
from gradcheck.reporters.json import render_json
from gradcheck.reporters.table import render_table
from gradcheck.results import RunResult, Status
from gradcheck.user_code import user_traceback

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "realcode_report" / "crash.py"
CRASH = load_registry(FIXTURE.with_suffix(".yaml"))


def _line(text: str) -> int:
    return next(i for i, line in enumerate(FIXTURE.read_text().splitlines(), 1) if text in line)


@pytest.fixture(scope="module")
def results():
    return {name: check_layer(CRASH.get(name), Options(seed=0, examples=5)) for name in ("wide-pool", "backward-typo")}


def test_an_error_below_a_numpy_call_points_at_the_users_line(results):
    result = results["wide-pool"]
    assert result.status is Status.ERROR
    where = f"{os.path.relpath(FIXTURE)}:{_line('np.stack([x[:, i:i + k]')}"
    assert result.message.startswith(f"{where}: forward raised ValueError"), result.message
    # the last frames of the user's traceback, innermost last; none of gradcheck's or numpy's
    chain = (
        f"crash.py:{_line('return _pool(x)')} in forward > crash.py:{_line('return _im2col(x, 3)')} in _pool"
        f" > crash.py:{_line('np.stack([x[:, i:i + k]')} in _im2col"
    )
    assert chain in result.message
    assert "adapters.py" not in result.message and "numpy" not in result.message


def test_generated_code_below_the_users_call_is_not_the_users_line():
    """numpy < 1.25 runs np.stack through a frame of '<__array_function__ internals>': not the user's."""
    internals: dict = {}
    exec(
        compile(
            "def stack(arrays):\n    raise ValueError('need at least one array to stack')\n",
            "<__array_function__ internals>",
            "exec",
        ),
        internals,
    )
    try:
        internals["stack"]([])
    except ValueError as exc:
        where, chain = user_traceback(exc)
    assert where.startswith(f"{os.path.relpath(__file__)}:"), where
    assert "internals" not in chain and "test_diagnosis_user_code.py:" in chain


def test_an_error_in_backward_names_backwards_helper(results):
    message = results["backward-typo"].message
    assert message.startswith(f"{os.path.relpath(FIXTURE)}:{_line('2 * dotu')}: backward raised NameError"), message
    assert message.endswith(
        f"(traceback: crash.py:{_line('return self._grad(dout)')} in backward > crash.py:{_line('2 * dotu')} in _grad)"
    )


def test_json_and_table_show_the_users_location_first(results):
    run = RunResult(tuple(results.values()), 1.0, 0)
    location = f"{os.path.relpath(FIXTURE)}:{_line('2 * dotu')}"
    layer = json.loads(render_json(run))["layers"][1]
    assert layer["message"].startswith(location)
    assert f"backward-typo ERROR  {location}" in render_table(run)
