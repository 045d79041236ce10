"""The same seed gives the same report on any machine: nothing that shapes a check depends on time;
and what forward returns is the checker's own copy, whatever buffer the layer hands out."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from gradcheck.engine import Options, check_layer
from gradcheck.registry import load_registry
from gradcheck.reporters import render
from gradcheck.results import RunResult, Status

ROOT = Path(__file__).resolve().parent
BUILTINS = load_registry(ROOT.parent / "layers.yaml")
WORKSPACE = load_registry(ROOT / "fixtures" / "engine" / "workspace.yaml")


def _report(result) -> dict:
    """The JSON report of one layer, times removed."""
    document = json.loads(render("json", RunResult((result,), 0.0, result.seed)))

    def timeless(value):
        if isinstance(value, dict):
            return {k: timeless(v) for k, v in value.items() if k != "seconds"}
        if isinstance(value, list):
            return [timeless(v) for v in value]
        return value

    return timeless(document)


def _slowed(spec, monkeypatch):
    """The layer, its forward made 100x slower as every clock sees it: each call advances
    time.perf_counter (and time.monotonic, time.time) by 99 times what it really took."""
    offset = [0.0]
    clocks = {name: getattr(time, name) for name in ("perf_counter", "monotonic", "time")}
    for name, real in clocks.items():
        monkeypatch.setattr(time, name, lambda real=real: real() + offset[0])

    class Slow(spec.target):
        def forward(self, *args, **kwargs):
            start = clocks["perf_counter"]()
            out = super().forward(*args, **kwargs)
            offset[0] += 99 * (clocks["perf_counter"]() - start)
            return out

    return replace(spec, target=Slow)


# linear with a weight of 4096 elements (FULL_MAX): its full check takes 8192 forwards, which auto
# kept while they took under a second and sent to the random directions once the forward was slower
EDGE = {"N": (2, 2), "D": (64, 64), "M": (64, 64)}


@pytest.mark.parametrize("name, dims", [("linear", EDGE), ("rnn-cell", None)])
def test_the_same_seed_gives_the_same_report_when_forward_is_100x_slower(name, dims, monkeypatch):
    spec = BUILTINS.get(name)
    spec = replace(spec, dims=dims) if dims else spec
    options = Options(seed=5, examples=2)
    quick = check_layer(spec, options)
    slow = check_layer(_slowed(spec, monkeypatch), options)
    assert quick.status is Status.PASS
    assert _report(slow) == _report(quick)
    assert slow.calls == quick.calls


def test_the_report_is_the_same_when_forward_is_slow_and_the_layer_fails(monkeypatch):
    spec = replace(BUILTINS.get("linear"), dims=EDGE)

    class Wrong(spec.target):
        def backward(self, dout):
            dx = super().backward(dout)
            self.dW[3, 5] *= 1.001
            return dx

    wrong = replace(spec, target=Wrong)
    options = Options(seed=5, examples=2)
    quick = check_layer(wrong, options)
    slow = check_layer(_slowed(wrong, monkeypatch), options)
    assert quick.status is Status.FAIL
    assert _report(slow) == _report(quick)


def test_a_forward_returning_the_same_buffer_every_call_is_checked_on_copies():
    result = check_layer(WORKSPACE.get("workspace-affine"), Options(seed=3, examples=5))
    assert result.status is Status.PASS, result.message
    assert {t.name for t in result.tensors} == {"x", "W", "b"}


def test_a_workspace_does_not_hide_a_forward_that_is_not_deterministic():
    result = check_layer(WORKSPACE.get("workspace-drifting"), Options(seed=3, examples=5))
    assert result.status is Status.ERROR
    assert "not deterministic" in result.message
