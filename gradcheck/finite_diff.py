"""Centred finite differences in float64, with estimates of their own error."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

EPS64 = float(np.finfo(np.float64).eps)
# Each forward output carries a few ulps of rounding; differencing two of them doubles it.
ROUNDING_SAFETY = 8.0
# An output that moved by at most this many ulps of the largest intermediate may be quantised by it.
QUANTA = 64
# A failing element is a real failure only if the reference is this much steadier than the gap.
STEADINESS = 0.1
# A step incommensurate with h and 2h, for the steadiness sweep.
ODD_STEP = 0.37
# The steps, in units of h, whose centred differences the steadiness sweep compares with the one at h;
# each may differ from it by this many times its own rounding.
SWEEP = (2.0, ODD_STEP, 1 / 8, 1 / 64)
SWEEP_ROUNDING_MARGIN = 3.0
# Forwards whose outputs are weighed together: at most this many output elements per block.
BLOCK_ELEMENTS = 1 << 18
# Guards divisions by a size that may be zero.
TINY = 1e-300
# atol is never scaled up, but shrinks for tensors whose gradients are all far below 1.
ATOL_SCALE_FLOOR = 1e-6

# The relative rounding unit of the outputs being differenced: float64's eps, unless the layer
# computes in float32/float16 (see `rounding_unit` and `precision_tolerances`).
_UNIT = contextvars.ContextVar("rounding_unit", default=EPS64)
# At reduced precision the step is the cube root of the dtype's eps (times max(1, |x|)), which
# balances rounding (unit / h) against truncation (h**2); rtol is this many times its square
# (the truncation error of a smooth function), atol a tenth of rtol; both at most MAX_REDUCED_RTOL.
REDUCED_RTOL_FACTOR = 40.0
MAX_REDUCED_RTOL = 0.1


@contextlib.contextmanager
def rounding_unit(unit: float = EPS64) -> Iterator[None]:
    """Within the block, outputs carry rounding of `unit` relative (set_rounding_unit may change it)."""
    token = _UNIT.set(unit)
    try:
        yield
    finally:
        _UNIT.reset(token)


def set_rounding_unit(unit: float) -> None:
    """Outputs carry rounding of `unit` relative, from now to the end of the enclosing rounding_unit block."""
    _UNIT.set(unit)


def current_rounding_unit() -> float:
    """The relative rounding unit of the outputs being differenced now."""
    return _UNIT.get()


def precision_tolerances(dtype: np.dtype, eps: float, rtol: float, atol: float) -> tuple[float, float, float]:
    """(eps, rtol, atol) for a layer computing in `dtype`: never tighter than the ones given."""
    unit = float(np.finfo(dtype).eps)
    step = unit ** (1 / 3)
    reduced = min(MAX_REDUCED_RTOL, REDUCED_RTOL_FACTOR * step**2)
    return max(eps, step), max(rtol, reduced), max(atol, reduced / 10)


Outputs = Sequence[np.ndarray]
Evaluate = Callable[[np.ndarray], Outputs]
# Outputs for K moved copies at once: copies stacked along a new leading axis, (K, *x.shape), in;
# each output stacked the same way, (K, *out.shape), out. A caller may run them as one forward.
EvaluateEach = Callable[[np.ndarray], list]


@dataclass
class Estimate:
    """A numerical gradient and the rounding error it may carry, element by element."""

    value: np.ndarray
    rounding: np.ndarray


def steps(x: np.ndarray, eps: float) -> np.ndarray:
    """Step per element, relative to |x| so that large inputs keep their digits."""
    return eps * np.maximum(1.0, np.abs(x))


def weigh(
    upstream: Sequence, plus: Outputs, minus: Outputs, magnitude: float = 0.0, grains: bool = True
) -> tuple[float, float]:
    """sum_k sum(R_k * (plus_k - minus_k)), differencing each output before weighting, and its rounding."""
    total, rounding = weigh_per_sample(
        upstream, [p[None] for p in plus], [m[None] for m in minus], 1, magnitude, grains
    )
    return float(total[0, 0]), float(rounding[0, 0])


def perturbed(x: np.ndarray, index: int, step: float) -> tuple[np.ndarray, float]:
    """A copy of x with one element moved by `step`, and the step actually taken."""
    moved = x.copy()
    flat = moved.reshape(-1)
    flat[index] = x.reshape(-1)[index] + step
    return moved, float(flat[index] - x.reshape(-1)[index])


def numerical_gradient(
    evaluate: Evaluate,
    x: np.ndarray,
    upstream: Sequence,
    eps: float,
    magnitude: float = 0.0,
    each: EvaluateEach | None = None,
    by_sample: bool = False,
) -> Estimate:
    """dL/dx for L = sum_k sum(R_k * out_k), one centred difference per element.

    `by_sample` (batch colouring, for a layer whose samples are independent): one element moved in
    every sample at once, each sample's share of the change its own difference, so 2 forwards per
    element of one sample, not of the batch. `each`, if given, evaluates many moved copies at once.
    """
    rows = x.reshape(x.shape[0] if by_sample else 1, -1)
    value, rounding = _differences(
        each or _each_from_single(evaluate), rows, np.arange(rows.shape[1]), x.shape, upstream, eps, magnitude
    )
    return Estimate(value.reshape(x.shape), rounding.reshape(x.shape))


def element_differences(
    each: EvaluateEach, x: np.ndarray, indices: np.ndarray, upstream: Sequence, eps: float, magnitude: float = 0.0
) -> Estimate:
    """The plain per-element centred differences (and their rounding) of the flat `indices` of x only."""
    value, rounding = _differences(each, x.reshape(1, -1), indices, x.shape, upstream, eps, magnitude)
    return Estimate(value[0], rounding[0])


def centred_difference(
    evaluate: Evaluate, x: np.ndarray, upstream: Sequence, eps: float, index: int, magnitude: float = 0.0
) -> tuple[float, float]:
    """The plain one-element centred difference and its rounding, for re-checking a suspect."""
    h = float(eps * max(1.0, abs(x.reshape(-1)[index])))
    xp, up = perturbed(x, index, h)
    xm, down = perturbed(x, index, -h)
    total, rounding = weigh(upstream, evaluate(xp), evaluate(xm), magnitude)
    return total / (up - down), rounding / (up - down)


def tolerance(numeric: Estimate, analytic: np.ndarray, rtol: float, atol: float, natural: float = 0.0) -> np.ndarray:
    """Allowed |a - n| per element: atol + rtol |n| + the reference's own rounding error.

    atol is never scaled up, but shrinks for tensors whose gradients are far below 1, so that a
    wrong gradient of 1e-8 still fails. It shrinks only as far as the layer's natural gradient
    scale (`natural`, output size over input size): a batch-norm over two samples at inputs of
    1e3 has true gradients of 1e-8 that its exact formula computes only to a few digits.
    """
    scale = max(float(np.abs(numeric.value).max(initial=0.0)), float(np.abs(analytic).max(initial=0.0)))
    scaled_atol = atol * min(1.0, max(scale, natural, ATOL_SCALE_FLOOR))
    return scaled_atol + rtol * np.abs(numeric.value) + numeric.rounding


def is_steady(
    evaluate: Evaluate,
    x: np.ndarray,
    base: Outputs,
    upstream: Sequence,
    eps: float,
    index: int,
    analytic: float,
    numeric: float,
    magnitude: float = 0.0,
) -> bool:
    """Whether the reference is smooth and steady at one element, so a gap to analytic is real.

    A step-size sweep: the centred differences at 2h, 0.37h (a step no pair of kinks lines up
    with), h/8 and h/64 must agree with the one at h, each within its own rounding, and the
    one-sided curvature (d+ - d-) must double from h to 2h as it does for a smooth function.
    Next to a kink the small steps see the local slope and the large ones an average, so the
    estimates drift towards the analytic value as the step shrinks; for a real bug they agree.
    """
    h = float(eps * max(1.0, abs(x.reshape(-1)[index])))
    g = {}
    for t in (h, *(factor * h for factor in SWEEP)):
        for signed in (t, -t):
            moved, taken = perturbed(x, index, signed)
            total, rounding = weigh(upstream, evaluate(moved), base, magnitude, grains=False)
            if not np.isfinite(total) or taken == 0.0:
                return False
            g[signed] = (total, taken, rounding)

    def centred(t: float) -> tuple[float, float]:
        (gp, tp, rp), (gm, tm, rm) = g[t], g[-t]
        return (gp - gm) / (tp - tm), (rp + rm) / (tp - tm)

    def curvature(t: float) -> float:  # d+ - d- at step t: t f'' when smooth
        (gp, tp, _), (gm, tm, _) = g[t], g[-t]
        return gp / tp - gm / tm

    sweep = (centred(factor * h) for factor in SWEEP)
    drift = [abs(numeric - value) - SWEEP_ROUNDING_MARGIN * rounding for value, rounding in sweep]
    spread = max(*drift, abs(curvature(2 * h) - 2 * curvature(h)))
    return spread <= STEADINESS * abs(analytic - numeric)


def weigh_per_sample(
    upstream: Sequence, plus: Outputs, minus: Outputs, batch: int, magnitude: float = 0.0, grains: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """`weigh` for K perturbations at once, summed within each sample (leading axis) separately.

    `plus[k]` and `minus[k]` stack output k of K forwards: shape (K, *shape of output k). Returns
    the weighted differences and their rounding, both of shape (K, batch); batch 1 sums whole outputs.

    Outputs that did change carry a few ulps of rounding each. An output that did not change
    may still hide a true change of up to an ulp (a saturated tanh or softmax). Where nothing
    in a sample moved at all, the change may hide below the last digit of an intermediate as
    large as `magnitude` (lse - x[y] with both ~1e3 and their difference ~1e-11): that is the floor.
    An output that moved by only a few ulps of such an intermediate (QUANTA) moved in whole
    ulps of it: each side carries up to one of them (`grains`; the steadiness sweep leaves
    them out, so that such a staircase shows as unsteady rather than as explained).
    """
    count = len(plus[0]) if plus else 0
    unit = current_rounding_unit()
    quantum = unit * magnitude if grains else 0.0
    total, moved, still, coarse = (np.zeros((count, batch)) for _ in range(4))
    sizes = []  # per output: (|R|-weighted output sizes, |R|), for the floor of samples where nothing moved
    for r, p, m in zip(
        upstream, plus, minus, strict=False
    ):  # ufunc methods throughout: this runs for every tensor of every example
        delta = np.subtract(p, m).reshape(count, batch, -1)
        per_sample = _rows(r, p.shape[1:], batch)  # R of this output, row by sample
        total += np.multiply(per_sample, delta).sum(axis=2)
        weight = np.abs(per_sample)
        size = np.maximum(np.abs(p), np.abs(m)).reshape(count, batch, -1)
        size *= weight
        changed = delta != 0
        moved_here = size.sum(axis=2, where=changed)
        moved += moved_here
        still += np.maximum(size.sum(axis=2) - moved_here, 0.0)
        sizes.append((size, weight))
        if quantum:
            steps_taken = np.abs(delta)
            if steps_taken.min(where=changed, initial=np.inf) <= QUANTA * quantum:  # some output moved a grain
                grain = steps_taken <= QUANTA * quantum
                grain &= changed
                coarse += np.multiply(grain, weight).sum(axis=2)
    rounding = moved * (ROUNDING_SAFETY * unit)
    nothing_moved = moved == 0.0
    if nothing_moved.any():
        unseen = sum(np.maximum(size, magnitude * weight).sum(axis=2) for size, weight in sizes)
        still = np.where(nothing_moved, unseen, still)
    rounding += unit * still
    if quantum:
        rounding += 2 * quantum * coarse
    return total, rounding


def _rows(r, shape: tuple, batch: int) -> np.ndarray:
    """An upstream gradient (an array of the output's shape, or a scalar) as rows by sample: (batch, -1)."""
    if type(r) is np.ndarray and r.shape == shape:
        return r.reshape(batch, -1)
    return np.broadcast_to(r, shape).reshape(batch, -1)


def _each_from_single(evaluate: Evaluate) -> EvaluateEach:
    """An EvaluateEach that runs one forward per moved copy."""
    return lambda copies: [np.stack(column) for column in zip(*(evaluate(x) for x in copies), strict=False)]


def _differences(
    each: EvaluateEach,
    rows: np.ndarray,
    columns: np.ndarray,
    shape: tuple,
    upstream: Sequence,
    eps: float,
    magnitude: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Centred differences moving column j of `rows` (batch, n) in every row at once, for each j in `columns`.

    Row i's share of each change is weighed separately (`weigh_per_sample`), so a single row is
    the plain per-element difference. Columns go in blocks: the block's moved copies are
    evaluated together (`each`) and their outputs weighed in one vectorised pass. Blocks hold
    about BLOCK_ELEMENTS input or output elements (the upstream gradients give the outputs' size).
    Returns the estimate and its rounding, both (batch, len(columns)).
    """
    batch, n = rows.shape
    h = steps(rows, eps)
    value, rounding = np.empty((batch, len(columns))), np.empty((batch, len(columns)))
    outputs_size = sum(int(np.size(r)) for r in upstream)
    width = max(1, BLOCK_ELEMENTS // (2 * max(rows.size, outputs_size, 1)))
    for start in range(0, len(columns), width):
        part = columns[start : start + width]
        count = len(part)
        copies = np.empty((count, 2, batch, n))  # copies[c, 0] moves column part[c] up in every row, copies[c, 1] down
        copies[...] = rows
        block = np.arange(count)
        copies[block, 0, :, part] += h[:, part].T
        copies[block, 1, :, part] -= h[:, part].T
        taken = copies[block, 0, :, part] - copies[block, 1, :, part]
        outputs = [out.reshape((count, 2) + out.shape[1:]) for out in each(copies.reshape((2 * count,) + shape))]
        total, weighed_rounding = weigh_per_sample(
            upstream, [out[:, 0] for out in outputs], [out[:, 1] for out in outputs], batch, magnitude
        )
        value[:, start : start + count] = (total / taken).T
        rounding[:, start : start + count] = (weighed_rounding / taken).T
    return value, rounding
