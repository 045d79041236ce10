"""The engine's honesty: one deadline per layer (with or without SIGALRM), one reproduce command that
carries every option, nothing checked is never a PASS, and a layer's own exits stay its ERROR."""

from __future__ import annotations

import itertools
import shlex
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

import gradcheck.engine as engine
from gradcheck import api
from gradcheck.engine import Options, check_layer, reproduce
from gradcheck.errors import GradcheckError
from gradcheck.parallel import error_result
from gradcheck.registry import load_registry
from gradcheck.reporters.table import summary_line
from gradcheck.results import LayerResult, RunResult, Status
from gradcheck.spec import Tolerances

ROOT = Path(__file__).resolve().parent
BUILTINS = load_registry(ROOT.parent / "layers.yaml")
TRUST = ROOT / "fixtures" / "engine" / "trust.yaml"
LAYERS = load_registry(TRUST)


def _fake_clock(monkeypatch) -> list[float]:
    """time.perf_counter as a clock that only the returned list moves (in seconds)."""
    now = [1000.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    return now


def _taking(spec, now: list[float], seconds: float, wrong: bool = False):
    """The layer, each forward taking `seconds` on the fake clock; its backward off by 1% if `wrong`."""

    class Timed(spec.target):
        def forward(self, *args, **kwargs):
            now[0] += seconds
            return super().forward(*args, **kwargs)

        def backward(self, dout):
            dx = super().backward(dout)
            return dx * 1.01 if wrong else dx

    return replace(spec, target=Timed)


def _no_alarms(monkeypatch) -> None:
    """A platform without SIGALRM (Windows)."""
    monkeypatch.delattr(signal, "SIGALRM")
    monkeypatch.delattr(signal, "setitimer")


# -- time limits ------------------------------------------------------------------------------
def test_without_sigalrm_a_timeout_still_stops_a_slow_layer_between_examples(monkeypatch):
    _no_alarms(monkeypatch)
    now = _fake_clock(monkeypatch)
    result = check_layer(_taking(BUILTINS.get("tanh"), now, 1.0), Options(seed=1, examples=20, timeout=5.0))
    assert result.status is Status.ERROR and "timed out after 5 s" in result.message
    assert 1 <= result.examples < 20
    assert result.repro.endswith("--timeout 5")


def test_outside_the_main_thread_a_timeout_still_stops_a_slow_layer(monkeypatch):
    now = _fake_clock(monkeypatch)
    spec = _taking(BUILTINS.get("tanh"), now, 1.0)
    found = []
    worker = threading.Thread(target=lambda: found.append(check_layer(spec, Options(seed=1, examples=20, timeout=5.0))))
    worker.start()
    worker.join()
    (result,) = found
    assert result.status is Status.ERROR and "timed out" in result.message


def _evidence_spans(monkeypatch, now) -> list[tuple[float, float]]:
    """Record when the evidence phase starts and ends on the fake clock."""
    spans = []
    original = engine._gather_evidence

    def spied(*args, **kwargs):
        start = now[0]
        try:
            return original(*args, **kwargs)
        finally:
            spans.append((start, now[0]))

    monkeypatch.setattr(engine, "_gather_evidence", spied)
    return spans


def test_the_evidence_after_a_failure_gets_what_is_left_of_the_deadline_not_a_new_one(monkeypatch):
    """The search ends just past the deadline (its last example started before it): the verdict
    stands, and the evidence that would diagnose it is not gathered on a fresh time limit."""
    _no_alarms(monkeypatch)
    now = _fake_clock(monkeypatch)
    spans = _evidence_spans(monkeypatch, now)
    wrong = _taking(BUILTINS.get("linear"), now, 1.0, wrong=True)
    free = check_layer(wrong, Options(seed=1, examples=5))
    (evidence,) = spans
    search = evidence[0] - (now[0] - free.seconds)
    assert evidence[1] > evidence[0]  # the evidence takes forwards (seconds on this clock)
    limited = check_layer(wrong, Options(seed=1, examples=5, timeout=search - 0.5))
    assert limited.status is Status.FAIL  # the verdict stands, less diagnosed
    assert spans[1][1] == spans[1][0]  # no evidence forward ran
    assert limited.seconds == search < free.seconds


# -- the reproduce command --------------------------------------------------------------------
EVERY_OPTION = Options(
    seed=9,
    examples=7,
    tolerances=Tolerances(rtol=1.2345678e-5, atol=3e-8, eps=2.5e-7),
    timeout=42.5,
    config="my layers/layers.yaml",
    mode="fast",
)


def test_the_reproduce_command_carries_every_option_that_shapes_the_verdict_exactly():
    argv = shlex.split(reproduce("odd name", EVERY_OPTION, 9))
    assert argv[:3] == ["gradcheck", "check", "odd name"]
    flags = dict(zip(argv[3::2], argv[4::2], strict=True))
    assert flags == {
        "--seed": "9",
        "--examples": "7",
        "--rtol": "1.2345678e-05",
        "--atol": "3e-08",
        "--eps": "2.5e-07",
        "--mode": "fast",
        "--config": "my layers/layers.yaml",
        "--timeout": "42.5",
    }


def test_the_engine_and_a_worker_that_died_give_the_same_reproduce_command():
    spec = BUILTINS.get("tanh")

    class Wrong(spec.target):
        def backward(self, dout):
            return super().backward(dout) * 1.01

    failed = check_layer(replace(spec, target=Wrong), EVERY_OPTION)
    assert failed.status is Status.FAIL
    assert failed.repro == error_result(spec, EVERY_OPTION, "killed").repro == reproduce("tanh", EVERY_OPTION, 9)


# -- nothing checked is never a PASS ----------------------------------------------------------
def test_skip_does_not_pass_the_gate_and_the_summary_counts_it():
    run = RunResult((LayerResult("a", Status.PASS), LayerResult("b", Status.SKIP, message="nothing")), 1.0, 0)
    assert run.exit_code() == 1
    line = summary_line(run)
    assert "1 skip" in line.plain and "red" in str(line.style)


@pytest.mark.parametrize(
    "name, reason",
    [
        ("always-empty", "x (it had no elements in any example)"),
        ("nothing-differentiable", "no differentiable input and no parameter"),
    ],
)
def test_a_layer_with_nothing_to_compare_is_skip_with_its_reason(name, reason):
    """layers.yaml refuses both at load; a LayerSpec built in Python reaches the engine all the same."""
    result = check_layer(_unloadable(name), Options(seed=2, examples=5))
    assert result.status is Status.SKIP
    assert reason in result.message
    assert not result.ok


def _unloadable(name: str):
    """`double` with an input that is empty for every dim, or with only an integer (data) input."""
    from gradcheck.expr import parse
    from gradcheck.spec import TensorSpec

    double = LAYERS.get("double")
    if name == "always-empty":
        x = TensorSpec("x", (parse("N"), parse("D - D")))
    else:
        x = TensorSpec("idx", (parse("N"),), kind="integers", integers=(parse(0), parse(7)))
    return replace(double, name=name, inputs=(x,))


def test_a_forward_returning_an_empty_tuple_is_the_layers_error_naming_what_was_expected():
    result = check_layer(LAYERS.get("returns-nothing"), Options(seed=2, examples=5))
    assert result.status is Status.ERROR
    assert "forward returned an empty tuple; expected an array" in result.message
    assert "internal error" not in result.message


# -- the Python API ----------------------------------------------------------------------------
@pytest.mark.parametrize("count", [-1, 0, 2.5])
def test_the_engine_refuses_an_example_count_below_one(count, monkeypatch):
    finite = lambda spec, seed, original=engine.draw_examples: itertools.islice(original(spec, seed), 50)  # noqa: E731
    monkeypatch.setattr(engine, "draw_examples", finite)  # so that an engine without the guard ends too
    with pytest.raises(GradcheckError, match="examples"):
        check_layer(BUILTINS.get("tanh"), Options(seed=1, examples=count))
    with pytest.raises(GradcheckError, match="examples"):
        api.check_layer("double", TRUST, examples=count)


def test_a_layers_sys_exit_is_its_error_and_does_not_escape_the_api():
    result = api.check_layer("exits", TRUST, seed=1, examples=3)
    assert result.status is Status.ERROR and "SystemExit" in result.message
    run = api.run_config(TRUST, ["exits", "double"], seed=1, examples=3)
    assert [layer.status for layer in run.layers] == [Status.ERROR, Status.PASS]


def test_run_config_takes_timeout_mode_and_jobs():
    run = api.run_config(
        ROOT.parent / "layers.yaml", ["linear", "tanh"], seed=1, examples=2, timeout=120, mode="fast", jobs=2
    )
    assert [layer.status for layer in run.layers] == [Status.PASS, Status.PASS]
    assert all(dict(t.checked_by).get("fast") == 2 for layer in run.layers for t in layer.tensors)
    assert all("--timeout" not in layer.repro for layer in run.layers)  # a pass has none
