"""Centred finite differences in float64, with estimates of their own error."""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

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
    noise: np.ndarray


def steps(x: np.ndarray, eps: float) -> np.ndarray:
    """Step per element, relative to |x| so that large inputs keep their digits."""
    return eps * np.maximum(1.0, np.abs(x))


def weigh(upstream: Sequence, plus: Outputs, minus: Outputs, hidden: float = 0.0,
          grains: bool = True) -> tuple[float, float]:
    """sum_k sum(R_k * (plus_k - minus_k)), differencing each output before weighting, and its rounding."""
    total, rounding = weigh_per_sample(upstream, [p[None] for p in plus], [m[None] for m in minus], 1, hidden, grains)
    return float(total[0, 0]), float(rounding[0, 0])


def perturbed(x: np.ndarray, index: int, step: float) -> tuple[np.ndarray, float]:
    """A copy of x with one element moved by `step`, and the step actually taken."""
    moved = x.copy()
    flat = moved.reshape(-1)
    flat[index] = x.reshape(-1)[index] + step
    return moved, float(flat[index] - x.reshape(-1)[index])


def _centred(evaluate: Evaluate, x: np.ndarray, upstream: Sequence, index: int, h: float,
             hidden: float) -> tuple[float, float]:
    """One element's centred difference and its rounding."""
    xp, up = perturbed(x, index, h)
    xm, down = perturbed(x, index, -h)
    total, rounding = weigh(upstream, evaluate(xp), evaluate(xm), hidden)
    return total / (up - down), rounding / (up - down)


def numerical_gradient(evaluate: Evaluate, x: np.ndarray, upstream: Sequence, eps: float,
                       hidden: float = 0.0, each: EvaluateEach | None = None) -> Estimate:
    """dL/dx for L = sum_k sum(R_k * out_k), one centred difference per element.

    `each`, if given, evaluates many moved copies at once (see EvaluateEach).
    """
    each = each or _one_by_one(evaluate)
    value, noise = _column_differences(each, x.reshape(1, -1), x.shape, upstream, eps, hidden)
    return Estimate(value.reshape(x.shape), noise.reshape(x.shape))


def element_differences(each: EvaluateEach, x: np.ndarray, indices: np.ndarray, upstream: Sequence, eps: float,
                        hidden: float = 0.0) -> Estimate:
    """The plain per-element centred differences (and their rounding) of the flat `indices` of x only,
    their moved copies evaluated in blocks of about BLOCK_ELEMENTS (see _column_differences)."""
    flat = x.reshape(-1)
    h = steps(flat[indices], eps)
    value, noise = np.empty(len(indices)), np.empty(len(indices))
    outputs_size = sum(int(np.size(r)) for r in upstream)
    width = max(1, BLOCK_ELEMENTS // (2 * max(x.size, outputs_size, 1)))
    for start in range(0, len(indices), width):
        part = indices[start:start + width]
        count = len(part)
        copies = np.empty((count, 2, x.size))
        copies[...] = flat
        rows = np.arange(count)
        copies[rows, 0, part] += h[start:start + count]
        copies[rows, 1, part] -= h[start:start + count]
        taken = copies[rows, 0, part] - copies[rows, 1, part]
        outputs = [out.reshape((count, 2) + out.shape[1:]) for out in each(copies.reshape((2 * count,) + x.shape))]
        total, rounding = weigh_per_sample(upstream, [out[:, 0] for out in outputs], [out[:, 1] for out in outputs],
                                           1, hidden)
        value[start:start + count] = total[:, 0] / taken
        noise[start:start + count] = rounding[:, 0] / taken
    return Estimate(value, noise)


def centred_difference(evaluate: Evaluate, x: np.ndarray, upstream: Sequence, eps: float, index: int,
                       hidden: float = 0.0) -> tuple[float, float]:
    """The plain one-element centred difference and its rounding, for re-checking a suspect."""
    return _centred(evaluate, x, upstream, index, float(eps * max(1.0, abs(x.reshape(-1)[index]))), hidden)


def tolerance(numeric: Estimate, analytic: np.ndarray, rtol: float, atol: float, natural: float = 0.0) -> np.ndarray:
    """Allowed |a - n| per element: atol + rtol |n| + the reference's own rounding error.

    atol is never scaled up, but shrinks for tensors whose gradients are far below 1, so that a
    wrong gradient of 1e-8 still fails. It shrinks only as far as the layer's natural gradient
    scale (`natural`, output size over input size): a batch-norm over two samples at inputs of
    1e3 has true gradients of 1e-8 that its exact formula computes only to a few digits.
    """
    scale = max(float(np.abs(numeric.value).max(initial=0.0)), float(np.abs(analytic).max(initial=0.0)))
    scaled_atol = atol * min(1.0, max(scale, natural, ATOL_SCALE_FLOOR))
    return scaled_atol + rtol * np.abs(numeric.value) + numeric.noise


def is_steady(evaluate: Evaluate, x: np.ndarray, base: Outputs, upstream: Sequence, eps: float,
              index: int, analytic: float, numeric: float, hidden: float = 0.0) -> bool:
    """Whether the reference is smooth and steady at one element, so a gap to analytic is real.

    A step-size sweep: the centred differences at 2h, 0.37h (a step no pair of kinks lines up
    with), h/8 and h/64 must agree with the one at h, each within its own rounding, and the
    one-sided curvature (d+ - d-) must double from h to 2h as it does for a smooth function.
    Next to a kink the small steps see the local slope and the large ones an average, so the
    estimates drift towards the analytic value as the step shrinks; for a real bug they agree.
    """
    h = float(eps * max(1.0, abs(x.reshape(-1)[index])))
    g = {}
    for t in (h, 2 * h, ODD_STEP * h, h / 8, h / 64):
        for signed in (t, -t):
            moved, taken = perturbed(x, index, signed)
            total, rounding = weigh(upstream, evaluate(moved), base, hidden, grains=False)
            if not np.isfinite(total) or taken == 0.0:
                return False
            g[signed] = (total, taken, rounding)

    def centred(t: float) -> tuple[float, float]:
        (gp, tp, rp), (gm, tm, rm) = g[t], g[-t]
        return (gp - gm) / (tp - tm), (rp + rm) / (tp - tm)

    def curvature(t: float) -> float:  # d+ - d- at step t: t f'' when smooth
        (gp, tp, _), (gm, tm, _) = g[t], g[-t]
        return gp / tp - gm / tm

    drift = [abs(numeric - value) - 3 * rounding for value, rounding in map(centred, (2 * h, ODD_STEP * h, h / 8, h / 64))]
    spread = max(*drift, abs(curvature(2 * h) - 2 * curvature(h)))
    return spread <= STEADINESS * abs(analytic - numeric)


def weigh_per_sample(upstream: Sequence, plus: Outputs, minus: Outputs, batch: int,
                     hidden: float = 0.0, grains: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """`weigh` for K perturbations at once, summed within each sample (leading axis) separately.

    `plus[k]` and `minus[k]` stack output k of K forwards: shape (K, *shape of output k). Returns
    the weighted differences and their rounding, both of shape (K, batch); batch 1 sums whole outputs.

    Outputs that did change carry a few ulps of rounding each. An output that did not change
    may still hide a true change of up to an ulp (a saturated tanh or softmax). Where nothing
    in a sample moved at all, the change may hide below the last digit of an intermediate as
    large as `hidden` (lse - x[y] with both ~1e3 and their difference ~1e-11): that is the floor.
    An output that moved by only a few ulps of such an intermediate (QUANTA) moved in whole
    ulps of it: each side carries up to one of them (`grains`; the steadiness sweep leaves
    them out, so that such a staircase shows as unsteady rather than as explained).
    """
    count = len(plus[0]) if plus else 0
    unit = _UNIT.get()
    quantum = unit * hidden if grains else 0.0
    total, moved, still, coarse = (np.zeros((count, batch)) for _ in range(4))
    sizes = []  # per output: (|R|-weighted output sizes, |R|), for the floor of samples where nothing moved
    for r, p, m in zip(upstream, plus, minus):  # ufunc methods throughout: this runs for every tensor of every example
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
        unseen = sum(np.maximum(size, hidden * weight).sum(axis=2) for size, weight in sizes)
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


# Forwards whose outputs are weighed together: at most this many output elements per block.
BLOCK_ELEMENTS = 1 << 18


def _one_by_one(evaluate: Evaluate) -> EvaluateEach:
    return lambda copies: [np.stack(column) for column in zip(*(evaluate(x) for x in copies))]


def _column_differences(each: EvaluateEach, flat: np.ndarray, shape: tuple, upstream: Sequence, eps: float,
                        hidden: float) -> tuple[np.ndarray, np.ndarray]:
    """Centred differences moving column j of `flat` (batch, n) in every row at once, for each j.

    Row i's share of each change is weighed separately (`weigh_per_sample`), so a batch of 1 is
    the plain per-element difference. Columns go in blocks: the block's moved copies are
    evaluated together (`each`) and their outputs weighed in one vectorised pass. Blocks hold
    about BLOCK_ELEMENTS input or output elements (the upstream gradients give the outputs' size).
    Returns the estimate and its rounding, both shaped like `flat`.
    """
    batch, n = flat.shape
    h = steps(flat, eps)
    value, noise = np.empty_like(flat), np.empty_like(flat)
    outputs_size = sum(int(np.size(r)) for r in upstream)
    width = max(1, BLOCK_ELEMENTS // (2 * max(flat.size, outputs_size, 1)))
    for start in range(0, n, width):
        stop = min(n, start + width)
        count = stop - start
        # copies[c, 0] moves column start + c up in every row, copies[c, 1] down
        copies = np.empty((count, 2, batch, n))
        copies[...] = flat
        moved = _diagonal(copies, start)  # moved[c, s, i] is copies[c, s, i, start + c]
        moved[:, 0] += h[:, start:stop].T
        moved[:, 1] -= h[:, start:stop].T
        taken = (moved[:, 0] - moved[:, 1]).T
        outputs = [out.reshape((count, 2) + out.shape[1:]) for out in each(copies.reshape((2 * count,) + shape))]
        total, rounding = weigh_per_sample(upstream, [out[:, 0] for out in outputs], [out[:, 1] for out in outputs],
                                           batch, hidden)
        value[:, start:stop] = total.T / taken
        noise[:, start:stop] = rounding.T / taken
    return value, noise


def _diagonal(copies: np.ndarray, start: int) -> np.ndarray:
    """The view of copies (count, 2, batch, n) at [c, :, :, start + c]: each copy's moved column."""
    count, sides, batch, _ = copies.shape
    strides = copies.strides
    return np.ndarray((count, sides, batch), copies.dtype, copies, start * strides[3],
                      (strides[0] + strides[3], strides[1], strides[2]))


def coloured_gradient(evaluate: Evaluate, x: np.ndarray, upstream: Sequence, eps: float,
                      hidden: float = 0.0, each: EvaluateEach | None = None) -> Estimate:
    """dL/dx for a batch-independent layer: one element moved in every sample at once.

    Sample i's outputs depend only on sample i's input, so each sample's share of the change
    is its own centred difference: 2 forwards per element of one sample, not of the batch.
    """
    each = each or _one_by_one(evaluate)
    value, noise = _column_differences(each, x.reshape(x.shape[0], -1), x.shape, upstream, eps, hidden)
    return Estimate(value.reshape(x.shape), noise.reshape(x.shape))


# Fast mode: tensors pass only if every random direction agrees this tightly, measured in units
# of each tensor's rms per-element tolerance; any doubt sends them to the full per-element check.
FAST_DIRECTIONS = 4
FAST_TIGHTNESS = 0.1
# Where rounding would cloud the directions (foretold, or found and no tensor has more room than
# the rest), the step may stretch beyond eps * max(1, |x|), by at most this factor in all.
MAX_STRETCH = 64.0


@dataclass
class DirectionalCheck:
    """What the random directions found: whether they agree, and the largest error (in tolerance
    units, the reference's rounding included). When they do not, whether rounding alone may
    explain it (`rounding_only`: every gap within FAST_TIGHTNESS plus its rounding), how much
    rounding there was (`rounding`, in those units), and each tensor's room to move (`room`: the
    step it allows, in the directions' units; the smallest sets the shared step, and rounding
    shrinks as the step grows). `units`: each tensor's rms per-element tolerance, the unit of
    `error` in that tensor's own terms. `stretch`: how many times eps * max(1, |x|) the farthest
    element of the tensor with the least room moved."""

    agree: bool
    error: float
    rounding_only: bool = False
    rounding: float = 0.0
    room: dict = field(default_factory=dict)
    units: dict = field(default_factory=dict)
    stretch: float = 1.0
    passed: float = 0.0  # the largest error among the directions (per sample) that agreed

    def growth(self) -> float:
        """How much larger the step must be to bring rounding well under FAST_TIGHTNESS."""
        return max(2.0, 4.0 * self.rounding / FAST_TIGHTNESS)

    def roomy(self) -> list[str]:
        """The tensors that leave a step that much larger than the one the tightest tensor set."""
        needed = min(self.room.values()) * self.growth()
        return [name for name, room in self.room.items() if room >= needed]


def directions_agree(evaluate: Callable[[dict], list], points: dict, analytic: dict, upstream: Sequence, eps: float,
                     rtol: float, atol: float, rng: np.random.Generator | int,
                     natural: dict | None = None, stretch: float = 1.0, weight: float = 0.0,
                     kinks: Kinks | None = None) -> DirectionalCheck:
    """Compare directional derivatives along Gaussian directions through all tensors at once.

    Each tensor's share of a direction is z / s, with z standard normal (every orthant, both
    signs) and s the rms of that tensor's per-element tolerance (as `tolerance` has it: atol
    shrinks with the gradients, but only down to the tensor's `natural` scale), so a tensor with
    small gradients is not drowned by one with large ones. The directions agree when every
    |a.v - n_v| plus the reference's rounding stays within FAST_TIGHTNESS. One step is shared by
    all tensors, so the tensor with the least room (a small tolerance next to large values) sets
    it, and with it the rounding; a doubt that rounding may explain says so (see
    DirectionalCheck). `stretch` lets every element move that many times further; and `weight`,
    sum |R * out| at the drawn point, foretells the rounding when every output moves: where it
    would take half the threshold, the step stretches (up to MAX_STRETCH in all) to bring it to a
    quarter. `evaluate` takes {tensor: moved copies stacked along a new leading axis} and returns
    each output stacked the same way. `rng`: a generator, or a seed for one.

    With `kinks` (see Kinks), a doubt that only kinks crossed within the step explain draws the
    doubting directions again (see _retry_kinks), at most KINK_RETRIES times.
    """
    rng = np.random.default_rng(rng)
    units = {name: _unit(analytic[name], rtol, atol, (natural or {}).get(name, 0.0)) for name in points}
    found = _directions_round(evaluate, points, analytic, upstream, eps, units, rng, stretch, weight, kinks, None)
    return _retry_kinks(found, evaluate, points, analytic, upstream, eps, units, rng, stretch, weight, kinks)


# A direction whose one-sided slopes differ by at least its gap crossed a kink within its step (a
# switch of a max, a ReLU's corner): its samples' directions are drawn again, at most this often.
KINK_RETRIES = 3


@dataclass
class Kinks:
    """What the directions need to tell a kink crossed from a wrong gradient: `base`, forward's
    outputs at the drawn point; `samples()`, asked after the first evaluation, the batch size if
    the layer's samples are independent and every tensor moved is batch-leading (else 1: the
    directions are then weighed and drawn again whole); `weights`, sum |R * out| per sample."""

    base: Sequence[np.ndarray]
    samples: Callable[[], int] = lambda: 1
    weights: np.ndarray | None = None


@dataclass
class _Round:
    """One round of directions, weighed per sample: `doubts` (direction, sample) cells outside the
    threshold, `kinked` those of them a kink explains, `moving` the samples the round moved."""

    found: DirectionalCheck
    doubts: np.ndarray
    kinked: np.ndarray
    moving: np.ndarray | None


def _retry_kinks(first: _Round, evaluate, points, analytic, upstream, eps, units, rng, stretch, weight,
                 kinks) -> DirectionalCheck:
    """Draw the directions again where every doubt is a kink crossed: only in the doubting samples
    when samples are independent (their share of the rounding foretells a shorter step, which
    crosses fewer kinks), else everywhere. Each retry must agree on its own; one round whose
    doubts are not all kinks, or KINK_RETRIES spent, is a doubt (the full check follows)."""
    current, worst = first, first.found.passed
    for _ in range(KINK_RETRIES):
        if current.found.agree or kinks is None or not current.doubts.any() or not current.kinked.all():
            break
        moving = current.doubts.any(axis=0) if current.doubts.shape[1] > 1 else None
        share = kinks.weights[moving].max() if moving is not None and kinks.weights is not None else weight
        current = _directions_round(evaluate, points, analytic, upstream, eps, units, rng, stretch, share, kinks,
                                    moving)
        worst = max(worst, current.found.passed)
    found = current.found
    if found.agree:
        found.error = max(found.error, worst)
    return found


def _unit(a: np.ndarray, rtol: float, atol: float, natural: float) -> float:
    """A tensor's rms per-element tolerance (as `tolerance` has it, without the rounding)."""
    size = np.abs(a)
    scale = max(float(size.max(initial=0.0)), natural, ATOL_SCALE_FLOOR)
    per_element = size
    per_element *= rtol
    per_element += atol * min(1.0, scale)
    return float(np.sqrt(np.dot(per_element.reshape(-1), per_element.reshape(-1)) / a.size)) if a.size else 1.0


def _directions_round(evaluate, points, analytic, upstream, eps, units, rng, stretch, weight, kinks,
                      moving) -> _Round:
    """FAST_DIRECTIONS directions (only through the samples `moving`, if given), evaluated both ways
    and weighed per sample when kinks.samples() allows it."""
    count = FAST_DIRECTIONS
    rows, reach = {}, {}
    for name, x in points.items():
        drawn = rows[name] = rng.standard_normal((count, x.size))
        if moving is not None:
            drawn.reshape(count, len(moving), -1)[:, ~moving] = 0.0
        drawn /= max(units[name], 1e-300)  # one row per direction
        # how far each direction may go before some element moves by more than eps * max(1, |x|)
        widest = np.maximum(np.abs(drawn).max(axis=1, initial=0.0), 1e-300)
        reach[name] = max(1.0, float(np.abs(x).max(initial=0.0))) / widest
    t = eps * stretch * np.min(list(reach.values()), axis=0)  # one step per direction, shared by all tensors
    foretold = float((ROUNDING_SAFETY * _UNIT.get() * weight / (2 * t)).max())
    if foretold > FAST_TIGHTNESS / 2:  # in tolerance units
        more = min(4 * foretold / FAST_TIGHTNESS, MAX_STRETCH / stretch)
        t *= more
        stretch *= more
    moved = {}
    for name, x in points.items():  # direction k up at 2k, down at 2k + 1
        along = rows[name].reshape((count,) + x.shape) * t.reshape((-1,) + (1,) * x.ndim)
        copies = moved[name] = np.empty((2 * count,) + x.shape)
        np.add(x, along, out=copies[0::2])
        np.subtract(x, along, out=copies[1::2])
    outputs = evaluate(moved)
    samples = kinks.samples() if kinks is not None else 1
    if moving is not None and samples != len(moving):
        samples, moving = 1, None  # (never so: a retry by sample follows a round weighed by sample)
    return _weigh_round(upstream, outputs, rows, points, analytic, units, t, stretch, reach, samples, kinks, moving)


def _weigh_round(upstream, outputs, rows, points, analytic, units, t, stretch, reach, samples, kinks,
                 moving) -> _Round:
    """The round's verdict: |a.v - n_v| plus rounding per direction and sample, against FAST_TIGHTNESS."""
    count = len(t)
    predicted = sum((rows[name].reshape(count, samples, -1) * analytic[name].reshape(samples, -1)).sum(axis=2)
                    for name in points)
    plus, minus = [out[0::2] for out in outputs], [out[1::2] for out in outputs]
    total, rounding = weigh_per_sample(upstream, plus, minus, samples)
    taken = (2 * t)[:, None]
    numeric = total / taken
    gap, noise = np.abs(predicted - numeric), rounding / taken
    if moving is not None:  # samples the round left alone have nothing to say
        gap[:, ~moving] = 0.0
        noise[:, ~moving] = 0.0
    finite = bool(np.isfinite(numeric).all())
    doubts = ~(gap + noise <= FAST_TIGHTNESS)  # NaN doubts too
    error = float((gap + noise).max())
    if finite and not doubts.any():
        found = DirectionalCheck(True, error, units=units, stretch=stretch)
    else:
        found = DirectionalCheck(False, error, finite and bool(np.all(gap <= FAST_TIGHTNESS + noise)),
                                 float(noise.max()), {name: float(room.min()) for name, room in reach.items()},
                                 units, stretch)
    found.passed = float(np.where(doubts, 0.0, gap + noise).max(initial=0.0))
    kinked = np.zeros_like(doubts)
    if kinks is not None and finite and doubts.any():
        kinked = _kinked(upstream, plus, minus, kinks.base, samples, taken / 2, gap, noise)
    return _Round(found, doubts, kinked[doubts], moving)


def _kinked(upstream, plus, minus, base, samples, t, gap, noise) -> np.ndarray:
    """Cells whose doubt a kink crossed within the step explains: not rounding (gap beyond the
    threshold plus the noise), and one-sided slopes d+ = (f(x + tv) - f(x)) / t and
    d- = (f(x) - f(x - tv)) / t apart by at least the gap. A smooth function's differ by t f''
    only, whatever its gradient's error; one kink crossed at s in (0, t) puts them 2 * gap apart."""
    reference = [np.broadcast_to(out, p.shape) for out, p in zip(base, plus)]
    up, up_rounding = weigh_per_sample(upstream, plus, reference, samples)
    down, down_rounding = weigh_per_sample(upstream, reference, minus, samples)
    apart = np.abs(up - down) - up_rounding - down_rounding
    return (gap > FAST_TIGHTNESS + noise) & (apart / t >= gap)
