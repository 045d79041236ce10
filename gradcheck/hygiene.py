"""What a layer must never do, whatever its gradients: write into what it is given, give other
outputs for the same inputs, return non-finite values, or read a parameter somewhere gradcheck cannot move it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcheck.adapters import LayerProblem
from gradcheck.diagnosis import float_errors, nonfinite_cause, output_label
from gradcheck.forwards import Forwards
from gradcheck.results import Status

NOT_DETERMINISTIC = (
    "forward is not deterministic: two calls with the same inputs gave different outputs. "
    "If it draws a random mask, draw it from np.random (gradcheck reseeds it before every "
    "forward) or from a generator seeded in the layer, e.g. np.random.default_rng(seed)"
)


@dataclass
class FirstCall:
    """The reference forward at the drawn point: what it was given, its outputs, and the handle backward needs."""

    inputs: list[np.ndarray]
    params: dict[str, np.ndarray]
    handle: Any
    outputs: tuple[np.ndarray, ...]


def reference_forward(forwards: Forwards) -> FirstCall:
    """Forward at the drawn point: finite, leaving its inputs alone. Its handle is kept for backward.

    Whether a second call gives the same outputs is settled before the verdict: by the stacking
    probe, whose middle copy of the batch must reproduce these outputs, or else by
    `check_repeatable`, which calls forward again.
    """
    inputs, params = forwards.fresh_copies()
    outputs, handle = forwards.forward(inputs, params)
    if forwards.adapter.adopted:
        _drop_state(forwards, handle, params)
    check_unchanged(forwards, inputs, params, "forward")
    if forwards.spec.style == "class":
        _params_kept(forwards, handle, "forward")
    for position, out in enumerate(outputs):
        if not np.isfinite(out).all():
            raise _nonfinite_outputs(forwards, position, len(outputs))
    forwards.reference, forwards.output_shapes = outputs, [out.shape for out in outputs]
    return FirstCall(inputs, params, handle, outputs)


def _nonfinite_outputs(forwards: Forwards, position: int, count: int) -> LayerProblem:
    """The FAIL for a forward that returned inf/nan for finite inputs, with what overflowed where it can tell."""
    magnitude = max((forwards.largest.get(t.name, 0.0) for t in forwards.spec.inputs), default=0.0)
    hint = f" ({nonfinite_cause(float_errors(lambda: forwards.forward(*forwards.fresh_copies())))})"
    which = f" {output_label(position, count)}" if count > 1 else ""
    return LayerProblem(
        Status.FAIL,
        f"forward{which} returned non-finite values (inf/nan) for finite inputs of magnitude ~{magnitude:.0e}{hint}",
    )


def _drop_state(forwards: Forwards, handle, params: dict) -> None:
    """Found arrays that forward changed are state (a call counter, running statistics), not
    parameters: they are not checked."""
    spec, adapter = forwards.spec, forwards.class_adapter
    position = {p.name: i for i, p in enumerate(spec.params)}
    changed = [
        name
        for name in adapter.adopted
        if not same(adapter.read(handle, spec.params_at, position[name]), forwards.arrays[name])
    ]
    for name in changed:
        del params[name]
    if changed:
        forwards.forget_params(changed)


def _params_kept(forwards: Forwards, obj, who: str) -> None:
    """A class layer's parameters, read where it holds them, must still be the drawn ones."""
    spec = forwards.spec
    changed = [
        p.name
        for i, p in enumerate(spec.params)
        if not same(forwards.class_adapter.read(obj, spec.params_at, i), forwards.arrays[p.name])
    ]
    if changed:
        raise LayerProblem(Status.FAIL, f"{who} changed the parameter(s) {', '.join(changed)}", changed[0])


def check_repeatable(forwards: Forwards) -> None:
    """A second forward at the drawn point must give exactly the reference outputs."""
    again, _ = forwards.forward(*forwards.fresh_copies())
    forwards.repeated = True
    reference = forwards.reference
    if len(again) != len(reference) or not all(same(a, b) for a, b in zip(reference, again, strict=False)):
        raise LayerProblem(Status.ERROR, NOT_DETERMINISTIC)


def check_unchanged(forwards: Forwards, inputs, params, who: str) -> None:
    """The arrays a call was given must hold the drawn values still: a layer must not write into them."""
    for tensor, passed in zip(forwards.spec.inputs, inputs, strict=False):
        if not same(passed, forwards.arrays[tensor.name]):
            where = "" if who == "forward" else " (an input kept in the cache and changed by backward)"
            raise LayerProblem(Status.FAIL, f"{who} modified its input {tensor.name!r} in place{where}")
    changed = [name for name, passed in params.items() if not same(passed, forwards.arrays[name])]
    if changed:
        raise LayerProblem(Status.FAIL, param_changed(who, ", ".join(changed)), changed[0])


def check_read_where_moved(forwards: Forwards, name: str) -> None:
    """An ERROR for a parameter whose moves never reach forward's outputs while another array
    the layer holds does: the layer reads it there (a copy, or an array reassigned)."""
    spec = forwards.spec
    position = [p.name for p in spec.params].index(name)
    others = forwards.class_adapter.read_elsewhere(
        position, forwards.shared_inputs, forwards.shared_params, forwards.seed, forwards.reference
    )
    if not others:
        return
    place = spec.params_at.describe(name, position)
    raise LayerProblem(
        Status.ERROR,
        (
            f"moving {name} at {place} never changed forward's outputs, but moving {', '.join(others)} did: the "
            f"layer reads {name} there. gradcheck writes the values into the array at {place}, so a layer that "
            "keeps a copy of the parameter, or reassigns it (self.W = ...) instead of updating it in place "
            "(self.W[...] = ...), cannot be checked: point params_at to where forward reads it"
        ),
        name,
    )


def param_changed(who: str, name: str) -> str:
    """The message for a call that changed parameters; backward's names the usual cause."""
    if who != "backward":
        return f"{who} changed the parameter(s) {name}"
    return (
        f"backward changed the parameter(s) {name} (an SGD step inside backward?): backward must only "
        "compute gradients; if the layer applies its own update, declare grads: update:ARG"
    )


def same(a, b) -> bool:
    """Whether two arrays hold the same values (NaN equal to NaN): bytes first, which is the usual answer."""
    if a is None or b is None:
        return a is b
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    return (a.dtype == b.dtype and a.tobytes() == b.tobytes()) or np.array_equal(a, b, equal_nan=True)
