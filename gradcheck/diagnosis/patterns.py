"""Name the probable bug behind a failing gradient, only when the numbers fit clearly."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from gradcheck.spec import LayerSpec

if TYPE_CHECKING:
    from gradcheck.examples import ExampleOutcome, TensorOutcome

FIT = 1e-3  # relative residual below which a pattern "fits clearly"
RESIDUAL = 0.02  # a fitted ratio must explain all but this fraction of the error
FAR_FROM_ONE = 0.05  # a ratio closer to 1 is reported as measured, not named a factor
SAME_RATIO = 1e-3  # two fitted ratios closer than this (relatively) are one factor
FEWEST_FOR_CONSTANT = 3  # with fewer nonzero elements any constant factor fits: no guess
MOST_PERMUTATIONS = 24  # axis orders tried when looking for a transposed gradient
EPS_SCALE = 100  # inputs of at least this magnitude push a probability below a `+ eps` inside log
TINY = 1e-300  # keeps a scale of all-zero numbers from dividing by zero


Others = Sequence[tuple["TensorOutcome", "ExampleOutcome"]]


def diagnose(
    spec: LayerSpec,
    tensor: TensorOutcome,
    example: ExampleOutcome,
    needs: dict[str, int] | None = None,
    others: Others = (),
) -> str:
    """A one-sentence guess at the bug, or '' when no pattern fits clearly.

    `needs` holds hyperparameter dims (stride, pad) whose trivial value was tried and passed;
    `others` the same tensor failing in other examples: a factor is named only if every one shows it too.
    """
    a, n = _finite(tensor)
    batch = example.example.dim_values.get(spec.batch_dim or "", None)
    for check in (_zeros, _swapped, _transposed, _factor, _later_samples, _ignored_eps):
        guess = check(spec, tensor, example, a, n, batch, others)
        if guess:
            return guess
    if needs:
        shown = ", ".join(f"{k}={v}" for k, v in needs.items())
        trivial = ", ".join(f"{k}={spec.dims[k][0]}" for k in needs)
        return (
            f"fails with {shown} but passes with {trivial} on the same values: "
            "the bug is in how that hyperparameter is handled"
        )
    return ""


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    scale = max(float(np.max(np.abs(b), initial=0.0)), TINY)
    return float(np.max(np.abs(a - b), initial=0.0)) <= FIT * scale


def _zeros(spec, tensor, example, a, n, batch, others=()) -> str:
    if not np.any(a) and np.any(n):
        return f"d{tensor.name} is all zeros: the gradient is never written (or written to a copy)"
    return ""


def _factor(spec, tensor, example, a, n, batch, others=()) -> str:
    """A named factor (sign, 1/N, N, 2) or a constant one, only if one ratio explains every element
    of this example and of every other example where the tensor failed."""
    c = _fitted_ratio(a, n)
    if c is None:
        return ""
    key, text = _named_factor(spec, example, c, batch)
    ratios, keys = [c], {key}
    for other, outcome in others:
        c_other = _fitted_ratio(*_finite(other))
        if c_other is None:
            return ""  # the ratio changes from element to element there: no constant factor
        other_batch = outcome.example.dim_values.get(spec.batch_dim or "", None)
        ratios.append(c_other)
        keys.add(_named_factor(spec, outcome, c_other, other_batch)[0])
    if all(abs(r - c) <= SAME_RATIO * abs(c) for r in ratios):
        if len(keys) > 1:  # the same ratio at several batch sizes: not the batch's doing
            key, text = _named_factor(spec, example, c, None)
    elif len(keys) > 1 or key == "constant":
        return ""  # the ratio changes from example to example, and not as the batch size does
    if key != "constant":
        return text
    if np.count_nonzero(n) < FEWEST_FOR_CONSTANT:
        return ""
    if abs(c - 1.0) < FAR_FROM_ONE:
        return f"analytic = {c:.6g} x numeric in every element checked: off by {abs(c - 1) * 100:.2g}% throughout"
    return f"analytic = {c:.4g} x numeric in every element checked: a constant factor is off"


def _finite(tensor) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(tensor.numeric)
    return np.where(ok, tensor.analytic, 0.0), np.where(ok, tensor.numeric, 0.0)


def _fitted_ratio(a: np.ndarray, n: np.ndarray) -> float | None:
    """The one ratio c with a = c * n that explains the error in every element, else None.

    The fit must leave a residual far below the error itself, not merely below a tolerance:
    a 0.03% mismatch is smaller than any tolerance and would fit every ratio near 1.
    """
    nn = float(np.sum(n * n))
    error = float(np.max(np.abs(a - n), initial=0.0))
    if nn == 0.0 or error == 0.0:
        return None
    c = float(np.sum(a * n)) / nn
    residual = float(np.max(np.abs(a - c * n), initial=0.0))
    return c if residual <= RESIDUAL * error and _close(a, c * n) else None


def _named_factor(spec, example, c: float, batch) -> tuple[str, str]:
    """('sign' | 'batch-mean' | ... | 'constant', sentence) for a fitted ratio c."""
    names = [(-1.0, "sign", "wrong sign: analytic = -numeric")]
    if batch and batch >= 2:
        alike = [k for k, v in example.example.dim_values.items() if k != spec.batch_dim and v == batch]
        also = "".join(f", or by {k}={batch}" for k in alike) + (", or a plain factor of 2" if batch == 2 else "")
        names.append(
            (
                1.0 / batch,
                "batch-mean",
                f"analytic = numeric / {batch}: backward averages over the batch (N={batch}) while forward sums{also}",
            )
        )
        names.append(
            (
                float(batch),
                "batch-sum",
                f"analytic = {batch} x numeric: a mean over the batch (N={batch}) "
                f"in forward without the 1/N in backward{also}",
            )
        )
    names += [
        (2.0, "twice", "analytic = 2 x numeric: a factor of 2 too many"),
        (0.5, "half", "analytic = numeric / 2: a factor of 2 missing"),
    ]
    for value, key, text in names:
        if abs(c - value) <= SAME_RATIO * abs(value):
            return key, text
    return "constant", ""


def _transposed(spec, tensor, example, a, n, batch, others=()) -> str:
    if a.ndim == 2 and a.shape[0] == a.shape[1] and a.shape[0] > 1 and _close(a, n.T):
        return f"d{tensor.name} is the transpose of the right gradient"
    if a.ndim >= 2 and a.size > 1:
        for axes in _permutations(a.ndim):
            moved = np.transpose(n, axes)
            if moved.shape == a.shape and _close(a, moved):
                return f"d{tensor.name} has its axes permuted {axes}: transposed?"
    return ""


def _permutations(ndim: int):
    return [p for p in itertools.permutations(range(ndim)) if p != tuple(range(ndim))][:MOST_PERMUTATIONS]


def _swapped(spec, tensor, example, a, n, batch, others=()) -> str:
    if np.count_nonzero(n) < 2:
        return ""
    for other in example.tensors:
        if other.name != tensor.name and other.numeric.shape == a.shape and np.any(a):
            if _close(a, np.where(np.isfinite(other.numeric), other.numeric, 0.0)):
                return f"d{tensor.name} holds the gradient of {other.name!r}: gradients of two inputs swapped?"
    return ""


def _later_samples(spec, tensor, example, a, n, batch, others=()) -> str:
    if tensor.kind != "input" or not batch or batch < 3 or a.shape[:1] != (batch,):
        return ""
    # every element of every later sample wrong (not just some: a wrong slope for negative
    # inputs leaves a first sample of positive inputs right by chance)
    wrong = np.abs(a - n) > FIT * max(float(np.max(np.abs(n), initial=0.0)), TINY)
    if not wrong[:1].any() and wrong[1:].all():
        return "only samples after the first are wrong: backward mixes samples across the batch"
    return ""


def _ignored_eps(spec, tensor, example, a, n, batch, others=()) -> str:
    """Per sample, numeric = r x analytic with 0 <= r < 1, and only at inputs of magnitude >= 100:
    the loss flattens where a probability falls below an eps added inside log, and backward's
    p - y does not know it."""
    scales = [example.example.scale] + [o.example.scale for _, o in others]
    if tensor.kind != "input" or a.ndim < 2 or min(scales) < EPS_SCALE:
        return ""
    rows = [(ra, rn) for ra, rn in zip(a.reshape(len(a), -1), n.reshape(len(n), -1), strict=True) if not _close(ra, rn)]
    for ra, rn in rows:
        aa = float(np.sum(ra * ra))
        r = float(np.sum(ra * rn)) / aa if aa else -1.0
        if not 0.0 <= r < 1.0 - FIT or float(np.max(np.abs(rn - r * ra))) > RESIDUAL * float(np.max(np.abs(ra - rn))):
            return ""
    if not rows:
        return ""
    return (
        "numeric = r x analytic with 0 <= r < 1 in each failing sample, only at inputs of magnitude >= 1e2: "
        "backward ignores a `+ eps` (or a clip) inside log, as in log(p + 1e-7), which flattens the loss where p < eps"
    )
