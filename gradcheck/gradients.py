"""The analytic gradients: backward called once on the reference forward's handle, and what it gave checked."""

from __future__ import annotations

import numpy as np

from gradcheck.adapters import UPDATE_LEARNING_RATE, LayerProblem
from gradcheck.diagnosis import upstream_label
from gradcheck.forwards import Forwards, unchecked_warning
from gradcheck.hygiene import FirstCall, check_unchanged, param_changed, same
from gradcheck.results import Status


def analytic_gradients(forwards: Forwards, first: FirstCall, upstream: list, warnings: list[str]) -> dict:
    """Gradients from backward (on the reference forward's handle), after checking what it touched."""
    spec = forwards.spec
    douts = [np.copy(r) if isinstance(r, np.ndarray) else r for r in upstream]
    forwards.counter.backward += 1
    grads = forwards.adapter.backward(first.handle, douts)
    for position, (passed, original) in enumerate(zip(douts, upstream, strict=False)):
        if isinstance(original, np.ndarray) and not same(passed, original):
            label = "dout" if len(upstream) == 1 else upstream_label(spec, position, len(upstream))
            warnings.append(
                f"backward modified {label} in place (the gradient is right, but a network sharing that array "
                "would see it change)"
            )
    updates = spec.grads.kind == "update"  # such a backward changes its parameters on purpose
    check_unchanged(forwards, first.inputs, {} if updates else first.params, "backward")
    found = dict(grads.inputs)
    if spec.style == "class":
        found.update(_class_param_grads(forwards, grads, warnings))
    else:
        found.update(grads.params)
    return {name: _validated(forwards, name, value) for name, value in found.items()}


def _class_param_grads(forwards: Forwards, grads, warnings: list[str]) -> dict[str, np.ndarray]:
    """A class layer's parameter gradients, where it stores them (or its own update step, undone)."""
    spec, out = forwards.spec, {}
    for position, param in enumerate(spec.params):
        before, after = forwards.arrays[param.name], grads.params_after[param.name]
        if spec.grads.kind == "update":
            if after is None or np.shape(after) != before.shape:
                raise LayerProblem(Status.ERROR, f"after backward, {param.name!r} is missing or changed shape")
            out[param.name] = (before - np.asarray(after, dtype=np.float64)) / UPDATE_LEARNING_RATE
            continue
        if not same(after, before):
            raise LayerProblem(Status.FAIL, param_changed("backward", param.name))
        value = grads.params[param.name]
        if value is None and param.name in forwards.adapter.adopted:  # found, but not its gradient: say so
            warnings.append(unchecked_warning([f"self.{param.name} (no gradient at self.d{param.name})"]))
            continue
        if value is None:
            place = spec.grads.describe(param.name, position)
            raise LayerProblem(
                Status.ERROR, f"backward did not set the gradient of {param.name!r}: {place} is missing", param.name
            )
        out[param.name] = value
    return out


def _validated(forwards: Forwards, name: str, value) -> np.ndarray:
    """A gradient as a float64 array of its tensor's shape, or the ERROR/FAIL saying what is wrong with it."""
    expected = forwards.arrays[name].shape
    if value is None:
        raise LayerProblem(
            Status.ERROR, f"backward returned None for d{name}; expected an array of shape {expected}", name
        )
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.floating):
        raise LayerProblem(
            Status.ERROR, f"d{name} has dtype {array.dtype}; expected a float array of shape {expected}", name
        )
    if array.shape != expected:
        hint = _shape_hint(array.shape, expected)
        message = f"d{name} has shape {array.shape}; expected {expected}, the shape of {name}{hint}"
        raise LayerProblem(Status.ERROR, message, name)
    if not np.isfinite(array).all():
        raise LayerProblem(Status.FAIL, f"d{name} contains non-finite values (inf/nan)", name)
    if array.dtype.itemsize < 8:  # a float32 gradient: checked at float32 precision
        forwards.adapter.dtypes.add(array.dtype)
    return array.astype(np.float64)


def _shape_hint(got: tuple, expected: tuple) -> str:
    """What a gradient of the wrong shape most likely did wrong."""
    if len(got) == len(expected) == 2 and got == expected[::-1] and got != expected:
        return " (transposed?)"
    if got == (1,) + expected:
        return " (a leading axis of 1 that broadcasting would hide: .sum(axis=0) without keepdims)"
    if len(got) == len(expected) + 1 and got[1:] == expected:
        return " (sum over the batch axis: .sum(axis=0))"
    if int(np.prod(got)) == int(np.prod(expected)):
        return " (same size: reshape to the tensor's shape)"
    return ""
