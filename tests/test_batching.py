"""Batch colouring and stacking: fewer forward calls, the same numbers, and a safe fallback.

A batch-independent layer has each element of one sample moved in every sample at once
(colouring), and the moved copies of the batch are stacked into one forward call (stacking).
Layers that take only one batch size, or whose samples depend on their position in the batch,
must be noticed and checked one forward per perturbation.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gradcheck import batching
from gradcheck.examples import Counter, check_example
from gradcheck.forwards import Forwards
from gradcheck.registry import load_registry
from gradcheck.results import Status
from gradcheck.sampling import Example
from gradcheck.spec import DEFAULT_TOLERANCES

ROOT = Path(__file__).resolve().parent.parent
BUILTINS = load_registry(ROOT / "layers.yaml")
STACKING = load_registry(ROOT / "tests" / "fixtures" / "adversarial" / "stacking.yaml")


def _run(spec, mode="full", **dims):
    counter = Counter()
    outcome = check_example(spec, Example(tuple(dims.items()), 11, 1.0), DEFAULT_TOLERANCES, counter, mode)
    return outcome, counter.forward


def _largest(spec) -> dict[str, int]:
    return {dim: hi for dim, (lo, hi) in spec.dims.items()}


def _numeric(outcome, name):
    return next(t for t in outcome.tensors if t.name == name).numeric


def test_forward_calls_do_not_grow_with_the_sample_size():
    tanh = BUILTINS.get("tanh")
    small = _run(tanh, N=4, D=2)
    large = _run(tanh, N=4, D=6)
    assert small[0].status is large[0].status is Status.PASS
    # the reference forward, then one stacked call for the probe (which also shows forward
    # repeatable: its middle copy must reproduce the reference) and every moved copy
    assert small[1] == large[1] == 2


def test_a_batch_of_one_is_stacked_too():
    outcome, forwards = _run(BUILTINS.get("tanh"), N=1, D=6)
    assert outcome.status is Status.PASS and forwards == 2


@pytest.mark.parametrize(
    "name, dims",
    [("tanh", {"N": 3, "D": 5}), ("linear", {"N": 3, "D": 4, "M": 2}), ("conv2d", None), ("attention", None)],
)
def test_stacked_and_unstacked_differences_agree(name, dims, monkeypatch):
    spec = BUILTINS.get(name)
    dims = dims or {dim: min(hi, max(lo, 3)) for dim, (lo, hi) in spec.dims.items()}
    stacked, stacked_calls = _run(spec, **dims)
    original = batching.probe
    monkeypatch.setattr(batching, "probe", lambda forwards, extra=None: (original(forwards)[0], False, None))
    plain, plain_calls = _run(spec, **dims)
    assert stacked.status is plain.status is Status.PASS
    assert stacked_calls < plain_calls
    for tensor in plain.tensors:
        np.testing.assert_allclose(_numeric(stacked, tensor.name), tensor.numeric, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("mode", ["full", "fast"])
@pytest.mark.parametrize("name", ["fixed-batch-affine", "scaled-by-batch", "mask-by-shape"])
def test_layers_that_defeat_stacking_are_checked_one_forward_at_a_time(name, mode, monkeypatch):
    stacked_calls = []  # stacked forwards whose outputs were used: plain ones, and probes that carried copies
    original, probe = Forwards.stacked, batching.probe
    monkeypatch.setattr(
        Forwards, "stacked", lambda self, moved: stacked_calls.append(len(moved)) or original(self, moved)
    )

    def spied_probe(forwards, extra=None):
        verdict = probe(forwards, extra)
        if verdict[2] is not None:
            stacked_calls.append(len(extra))
        return verdict

    monkeypatch.setattr(batching, "probe", spied_probe)
    spec = STACKING.get(name)
    outcome, _ = _run(spec, mode, **_largest(spec))
    assert outcome.status is Status.PASS
    assert stacked_calls == []
    tanh, _ = _run(BUILTINS.get("tanh"), N=4, D=3)  # the spy does see a layer that stacks
    assert tanh.status is Status.PASS and stacked_calls


@pytest.mark.parametrize("mode", ["full", "fast"])
@pytest.mark.parametrize("name", ["scaled-by-batch-wrong", "mask-by-shape-wrong", "fixed-batch-affine-wrong"])
def test_bugs_in_layers_that_defeat_stacking_still_fail(name, mode):
    spec = STACKING.get(name)
    outcome, _ = _run(spec, mode, **_largest(spec))
    assert outcome.status is Status.FAIL


def test_fast_mode_stacks_its_directions_for_a_layer_without_parameters():
    spec = BUILTINS.get("max-pool2d")
    outcome, forwards = _run(spec, mode="fast", **_largest(spec))
    assert outcome.status is Status.PASS and {t.method for t in outcome.tensors} == {"fast"}
    assert forwards == 2  # the reference, then 1 stacked call carrying the probe and all directions


@pytest.mark.parametrize("name, mode", [("tanh", "full"), ("max-pool2d", "fast"), ("conv2d", "full")])
def test_a_large_batch_is_stacked_in_several_calls_with_the_same_numbers(name, mode, monkeypatch):
    from gradcheck import finite_diff

    spec = BUILTINS.get(name)
    dims = _largest(spec)
    whole, whole_calls = _run(spec, mode, **dims)
    arrays_size = max(t.analytic.size for t in whole.tensors if t.kind == "input")
    monkeypatch.setattr(finite_diff, "BLOCK_ELEMENTS", 3 * arrays_size)  # about three copies per call
    split, split_calls = _run(spec, mode, **dims)
    assert whole.status is split.status is Status.PASS
    assert split_calls > whole_calls
    for tensor in whole.tensors:
        np.testing.assert_allclose(_numeric(split, tensor.name), tensor.numeric, rtol=1e-7, atol=1e-9)


def _attention_at_scale(spec, seed):
    """Attention at inputs of ~1e3: the softmax saturates, and q and k get gradients of exactly 0."""
    dims = (("N", 2), ("Tq", 3), ("Tk", 3), ("Dk", 3), ("Dv", 2))
    counter = Counter()
    outcome = check_example(spec, Example(dims, seed, 1000.0), DEFAULT_TOLERANCES, counter, "fast")
    return outcome, counter.forward


def test_fast_mode_sends_only_the_tensors_that_limit_its_step_to_the_full_check():
    """q and k, with gradients of 0, have tolerances of ~atol next to values of ~1e3: sharing
    their tiny step would drown v's directions in rounding. They are checked the full way; v
    still passes on its own directions."""
    spec = BUILTINS.get("attention")
    for seed in range(6):
        outcome, forwards = _attention_at_scale(spec, seed)
        methods = {t.name: t.method for t in outcome.tensors}
        assert outcome.status is Status.PASS and methods["v"] == "fast", (seed, methods)
        assert forwards <= 5  # the reference; the directions, then again for v alone; q and k, one stacked call each


@pytest.mark.parametrize("wrong", ["q", "v"])
def test_a_bug_in_a_tensor_fast_mode_splits_off_or_keeps_still_fails(wrong):
    spec = BUILTINS.get("attention")
    position = "qkv".index(wrong)

    class OffBy(spec.target):
        def backward(self, dout):
            grads = list(super().backward(dout))
            grads[position] = grads[position] + 1e-3  # q's true gradient is 0 here; v's is ~1
            return tuple(grads)

    buggy = replace(spec, target=OffBy)
    for seed in range(6):
        outcome, _ = _attention_at_scale(buggy, seed)
        failing = [t.name for t in outcome.tensors if t.status is Status.FAIL]
        assert outcome.status is Status.FAIL and failing == [wrong], (seed, failing)
