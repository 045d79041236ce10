"""The FAIL is known at the first failing example: progress and --fail-fast hear of it before the shrink.

Only the news is early: the verdict, the smallest failing example and the call counts are those of a
run that nobody watched.
"""

import io
import multiprocessing
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from gradcheck import parallel
from gradcheck.engine import Options, check_layer
from gradcheck.parallel import _Pool, _Worker, run_layers
from gradcheck.registry import load_registry
from gradcheck.reporters.progress import ProgressDisplay
from gradcheck.results import LayerResult, Status

FIXTURES = Path(__file__).parent / "fixtures" / "cli"

LAYERS = '''
import numpy as np

FORWARDS = [0]


class Square:
    """y = x * x."""

    def forward(self, x):
        FORWARDS[0] += 1
        self.x = x
        return x * x

    def backward(self, dout):
        return 2 * self.x * dout


class WrongSign(Square):
    """The gradient's sign flipped from the second column on: the simplest example (D = 1) passes."""

    def backward(self, dout):
        grad = 2 * self.x * dout
        grad[:, 1:] *= -1
        return grad
'''

CONFIG = """
layers:
  - name: wrong-sign
    impl: counted.py:WrongSign
    inputs: {x: [N, D]}
    dims: {N: [1, 4], D: [1, 4]}
  - name: square
    impl: counted.py:Square
    inputs: {x: [N, D]}
    dims: {N: [1, 4], D: [1, 4]}
"""


@pytest.fixture
def counted(tmp_path):
    """The two layers above, and the module that counts their forwards."""
    (tmp_path / "counted.py").write_text(LAYERS)
    (tmp_path / "layers.yaml").write_text(CONFIG)
    specs = {spec.name: spec for spec in load_registry(tmp_path / "layers.yaml").layers}
    return specs, sys.modules[specs["square"].target.__module__].FORWARDS


def test_progress_hears_of_the_failure_before_the_shrink_runs(counted):
    specs, forwards = counted
    heard = []

    def progress(name, done, total, failed):
        heard.append((failed, forwards[0]))

    forwards[0] = 0
    result = check_layer(specs["wrong-sign"], Options(seed=7, examples=5), progress)
    assert result.status is Status.FAIL
    first = next(i for i, (failed, _) in enumerate(heard) if failed)
    assert first > 0 and not any(failed for failed, _ in heard[:first])  # the simplest example passed
    assert heard[first][1] < result.calls["forward"]  # the search, the shrink and the evidence came after
    assert len(heard) > first + 1  # the shrink checked examples of its own after the failure...
    assert all(failed for failed, _ in heard[first:])  # ...and the layer stayed failing meanwhile


def test_progress_of_a_passing_layer_never_says_failed(counted):
    specs, _ = counted
    heard = []
    result = check_layer(specs["square"], Options(seed=7, examples=5), lambda *news: heard.append(news))
    assert result.status is Status.PASS
    assert heard and not any(failed for _, _, _, failed in heard)


def test_listening_changes_neither_verdict_nor_example_nor_calls(counted):
    specs, _ = counted
    options = Options(seed=7, examples=5)
    quiet = check_layer(specs["wrong-sign"], options)
    heard = check_layer(specs["wrong-sign"], options, lambda *news: None)
    keep = ("status", "failing_dims", "example", "calls", "examples", "trail", "message")
    assert {k: getattr(heard, k) for k in keep} == {k: getattr(quiet, k) for k in keep}


# -- the pool --------------------------------------------------------------------------------
def _worker(spec, receiver):
    return _Worker(0, spec, multiprocessing.current_process(), receiver, time.perf_counter(), None)


@pytest.mark.parametrize("xfail, failing", [(None, True), ("known bug", False)])
def test_the_pool_marks_a_layer_failing_from_its_worker_news(counted, xfail, failing):
    specs, _ = counted
    receiver, sender = multiprocessing.get_context("fork").Pipe(duplex=False)
    worker = _worker(replace(specs["wrong-sign"], xfail=xfail), receiver)
    heard = []
    pool = _Pool(Options(fail_fast=True), 2, lambda *news: heard.append(news), None, False)
    sender.send(("progress", (1, 5, False)))
    assert pool.drain(worker) is None and not worker.failing
    sender.send(("progress", (2, 5, True)))
    assert pool.drain(worker) is None
    assert worker.failing is failing  # an expected failure stops nothing
    assert heard == [("wrong-sign", 1, 5, False), ("wrong-sign", 2, 5, True)]


def _wait(condition, seconds=20.0) -> bool:
    """Poll `condition` until true (True) or until `seconds` pass (False): a guard against a hang only."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_fail_fast_ends_the_other_layers_before_the_failing_one_has_shrunk(counted, tmp_path, monkeypatch):
    """The failing layer announces its first failing example, then (as if shrinking) waits for the other
    worker to be ended: only an early --fail-fast ends it; the old one waited for the failing result."""
    specs, _ = counted
    pid_file, finished = tmp_path / "other.pid", tmp_path / "other-finished"

    def fake_check(spec, options, progress):  # runs in the forked workers
        if spec.name == "square":
            pid_file.write_text(str(os.getpid()))
            _wait(lambda: False, 20)
            finished.write_text("the other layer ran to its end")
            return LayerResult(spec.name, Status.PASS)
        _wait(pid_file.exists)
        progress(spec.name, 1, 5, True)
        ended = _wait(lambda: not _alive(int(pid_file.read_text())))
        return LayerResult(spec.name, Status.FAIL, message="" if ended else "the other layer was still running")

    monkeypatch.setattr(parallel, "check_layer", fake_check)
    result = run_layers([specs["wrong-sign"], specs["square"]], Options(seed=7, fail_fast=True), jobs=2)
    assert [(layer.name, layer.status, layer.message) for layer in result.layers] == [("wrong-sign", Status.FAIL, "")]
    assert not finished.exists()


def test_fail_fast_with_jobs_keeps_the_failing_layers_whole_result(counted):
    specs, _ = counted
    options = Options(seed=7, examples=5)
    alone = check_layer(specs["wrong-sign"], options)
    run = run_layers([specs["square"], specs["wrong-sign"], specs["square"]], replace(options, fail_fast=True), jobs=2)
    failed = [layer for layer in run.layers if layer.status is Status.FAIL]
    keep = ("failing_dims", "example", "calls", "examples", "message")
    assert len(failed) == 1 and {k: getattr(failed[0], k) for k in keep} == {k: getattr(alone, k) for k in keep}


# -- the display -----------------------------------------------------------------------------
def _display_text(feed) -> str:
    buffer = io.StringIO()
    with ProgressDisplay(Console(file=buffer, force_terminal=True, width=120), layers=3, xfail=["known"]) as display:
        feed(display)
        display.refresh(force=True)
    return buffer.getvalue()


def test_the_display_shows_a_layer_failing_at_its_first_failing_example():
    text = _display_text(lambda d: (d.example("good", 1, 5), d.example("bad", 1, 5), d.example("bad", 2, 5, True)))
    assert "FAILING" in text and "1 failing" in text


def test_the_display_says_nothing_of_an_expected_failure_or_a_pass():
    text = _display_text(lambda d: (d.example("good", 1, 5), d.example("known", 1, 5, True)))
    assert "FAILING" not in text and "failing" not in text


def test_the_display_counts_a_layer_that_failed_without_news():
    def feed(display):
        display.example("hang", 1, 5)
        display.finished(LayerResult("hang", Status.ERROR, message="timed out"))

    assert "1 failing" in _display_text(feed)
