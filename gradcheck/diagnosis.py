"""Name the probable bug behind a failing gradient, only when the numbers fit clearly."""

from __future__ import annotations

import itertools

import numpy as np

from gradcheck.spec import LayerSpec

FIT = 1e-3  # relative residual below which a pattern "fits clearly"


def diagnose(spec: LayerSpec, tensor, example, needs: dict[str, int] | None = None) -> str:
    """A one-sentence guess at the bug, or '' when no pattern fits clearly.

    `needs` holds hyperparameter dims (stride, pad) whose trivial value was tried and passed.
    """
    a, n = tensor.analytic, tensor.numeric
    ok = np.isfinite(n)
    a, n = np.where(ok, a, 0.0), np.where(ok, n, 0.0)
    batch = example.example.dim_values.get(spec.batch_dim or "", None)
    for check in (_zeros, _swapped, _transposed, _factor, _later_samples):
        guess = check(spec, tensor, example, a, n, batch)
        if guess:
            return guess
    if needs:
        shown = ", ".join(f"{k}={v}" for k, v in needs.items())
        trivial = ", ".join(f"{k}={spec.dims[k][0]}" for k in needs)
        return f"fails with {shown} but passes with {trivial} on the same values: the bug is in how that hyperparameter is handled"
    return ""


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    scale = max(float(np.max(np.abs(b), initial=0.0)), 1e-300)
    return float(np.max(np.abs(a - b), initial=0.0)) <= FIT * scale


def _zeros(spec, tensor, example, a, n, batch) -> str:
    if not np.any(a) and np.any(n):
        return f"d{tensor.name} is all zeros: the gradient is never written (or written to a copy)"
    return ""


def _factor(spec, tensor, example, a, n, batch) -> str:
    nn = float(np.sum(n * n))
    if nn == 0.0:
        return ""
    c = float(np.sum(a * n)) / nn
    if abs(c - 1.0) < 1e-6 or not _close(a, c * n):
        return ""
    names = [(-1.0, "wrong sign: analytic = -numeric")]
    if batch and batch >= 2:
        alike = [k for k, v in example.example.dim_values.items() if k != spec.batch_dim and v == batch]
        also = "".join(f", or by {k}={batch}" for k in alike) + (", or a plain factor of 2" if batch == 2 else "")
        names.append((1.0 / batch, f"analytic = numeric / {batch}: backward averages over the batch (N={batch}) "
                                   f"while forward sums{also}"))
        names.append((float(batch), f"analytic = {batch} x numeric: a mean over the batch (N={batch}) in forward "
                                    f"without the 1/N in backward{also}"))
    names += [(2.0, "analytic = 2 x numeric: a factor of 2 too many"), (0.5, "analytic = numeric / 2: a factor of 2 missing")]
    for value, text in names:
        if abs(c - value) <= 1e-3 * abs(value):
            return text
    if np.count_nonzero(n) < 3:
        return ""  # with one or two elements any factor fits: no guess
    return f"analytic = {c:.4g} x numeric everywhere: a constant factor is off"


def _transposed(spec, tensor, example, a, n, batch) -> str:
    if a.ndim == 2 and a.shape[0] == a.shape[1] and a.shape[0] > 1 and _close(a, n.T):
        return f"d{tensor.name} is the transpose of the right gradient"
    if a.ndim >= 2 and a.size > 1:
        for axes in _permutations(a.ndim):
            moved = np.transpose(n, axes)
            if moved.shape == a.shape and _close(a, moved):
                return f"d{tensor.name} has its axes permuted {axes}: transposed?"
    return ""


def _permutations(ndim: int):
    return [p for p in itertools.permutations(range(ndim)) if p != tuple(range(ndim))][:24]


def _swapped(spec, tensor, example, a, n, batch) -> str:
    if np.count_nonzero(n) < 2:
        return ""
    for other in example.tensors:
        if other.name != tensor.name and other.numeric.shape == a.shape and np.any(a):
            if _close(a, np.where(np.isfinite(other.numeric), other.numeric, 0.0)):
                return f"d{tensor.name} holds the gradient of {other.name!r}: gradients of two inputs swapped?"
    return ""


def _later_samples(spec, tensor, example, a, n, batch) -> str:
    if tensor.kind != "input" or not batch or batch < 3 or a.shape[:1] != (batch,):
        return ""
    # every element of every later sample wrong (not just some: a wrong slope for negative
    # inputs leaves a first sample of positive inputs right by chance)
    wrong = np.abs(a - n) > FIT * max(float(np.max(np.abs(n), initial=0.0)), 1e-300)
    if not wrong[:1].any() and wrong[1:].all():
        return "only samples after the first are wrong: backward mixes samples across the batch"
    return ""


def hyperparameter_dims(spec: LayerSpec) -> set[str]:
    """Dims used in args/init (stride, pad, ...) rather than in array shapes."""
    used_in_shapes = {n for t in spec.inputs + spec.params for e in t.shape for n in e.names}
    return set(spec.dims) - used_in_shapes
