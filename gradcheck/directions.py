"""Random-direction checks: directional derivatives through every tensor at once, and kinks told from errors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from gradcheck.finite_diff import ATOL_SCALE_FLOOR, ROUNDING_SAFETY, TINY, current_rounding_unit, weigh_per_sample

# A direction whose one-sided slopes differ by at least its gap crossed a kink within its step (a
# switch of a max, a ReLU's corner): its samples' directions are drawn again, at most this often.
KINK_RETRIES = 3

# Fast mode: tensors pass only if every random direction agrees this tightly, measured in units
# of each tensor's rms per-element tolerance; any doubt sends them to the full per-element check.
FAST_DIRECTIONS = 4
FAST_TIGHTNESS = 0.1
# Where rounding would cloud the directions (foretold, or found and no tensor has more room than
# the rest), the step may stretch beyond eps * max(1, |x|), by at most this factor in all.
MAX_STRETCH = 64.0
# A step stretched against rounding is stretched to leave it at most 1/ROUNDING_SHARE of FAST_TIGHTNESS.
ROUNDING_SHARE = 4.0


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
    kinked: bool = False  # a doubt that kinks crossed within the step explain, every retry spent
    crossed: bool = False  # some doubt a kink explains (the others' gaps may be kinks that hid each other)
    kinked_samples: np.ndarray | None = None  # weighed per sample: those still doubting (the others agreed)

    def growth(self) -> float:
        """How much larger the step must be to bring rounding well under FAST_TIGHTNESS."""
        return max(2.0, ROUNDING_SHARE * self.rounding / FAST_TIGHTNESS)

    def roomy(self) -> list[str]:
        """The tensors that leave a step that much larger than the one the tightest tensor set."""
        needed = min(self.room.values()) * self.growth()
        return [name for name, room in self.room.items() if room >= needed]


def directions_agree(
    evaluate: Callable[[dict], list],
    points: dict,
    analytic: dict,
    upstream: Sequence,
    eps: float,
    rtol: float,
    atol: float,
    rng: np.random.Generator | int,
    natural: dict | None = None,
    stretch: float = 1.0,
    weight: float = 0.0,
    kinks: Kinks | None = None,
    groups: dict | None = None,
    retries: int = KINK_RETRIES,
) -> DirectionalCheck:
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
    each output stacked the same way. `rng`: a generator, or a seed for one. `groups`: {tensor:
    flat indices}, the only elements of that tensor the directions move (its unit is theirs).

    With `kinks` (see Kinks), a doubt that only kinks crossed within the step explain draws the
    doubting directions again (see _retry_kinks), at most `retries` times; if kinks still explain
    every doubt then, the result says so (`kinked`).
    """
    groups = groups or {}
    units = {
        name: _unit(_within(analytic[name], groups.get(name)), rtol, atol, (natural or {}).get(name, 0.0))
        for name in points
    }
    task = _Task(evaluate, points, analytic, upstream, eps, units, np.random.default_rng(rng), kinks, groups)
    moving = task.touched() if groups else None
    first = _directions_round(task, stretch, weight if moving is None else task.share(moving), moving)
    return _retry_kinks(first, task, stretch, weight, retries)


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
class _Task:
    """What every round of one directions_agree shares (see there)."""

    evaluate: Callable[[dict], list]
    points: dict
    analytic: dict
    upstream: Sequence
    eps: float
    units: dict
    rng: np.random.Generator
    kinks: Kinks | None
    groups: dict

    def touched(self) -> np.ndarray | None:
        """The samples the groups reach, when the round is weighed per sample (else None: all)."""
        samples = self.kinks.samples() if self.kinks is not None else 1
        if samples < 2:
            return None
        reached = np.zeros(samples, bool)
        for name, x in self.points.items():
            where = np.zeros(x.size, bool)
            where[self.groups.get(name, slice(None))] = True
            reached |= where.reshape(samples, -1).any(axis=1)
        return reached

    def share(self, moving: np.ndarray | None) -> float:
        """The moving samples' largest sum |R * out|: the rounding weight of a round that moves only them."""
        weights = self.kinks.weights if self.kinks is not None else None
        return float(weights[moving].max()) if moving is not None and weights is not None else 0.0


def _within(a: np.ndarray, group: np.ndarray | None) -> np.ndarray:
    return a if group is None else a.reshape(-1)[group]


@dataclass
class _Round:
    """One round of directions, weighed per sample: `doubts` (direction, sample) cells outside the
    threshold, `kinked` those of them a kink explains, `moving` the samples the round moved."""

    found: DirectionalCheck
    doubts: np.ndarray
    kinked: np.ndarray
    moving: np.ndarray | None

    def doubting(self) -> np.ndarray | None:
        """The samples with a doubt, when the round was weighed sample by sample (else None)."""
        return np.asarray(self.doubts.any(axis=0)) if self.doubts.shape[1] > 1 else None


def _retry_kinks(first: _Round, task: _Task, stretch: float, weight: float, retries: int) -> DirectionalCheck:
    """Draw the directions again where every doubt is a kink crossed: only in the doubting samples
    when samples are independent (their share of the rounding foretells a shorter step, which
    crosses fewer kinks), else everywhere. Each retry must agree on its own; one round whose
    doubts are not all kinks, or `retries` spent, is a doubt (the full check follows)."""
    current, worst = first, first.found.passed
    for _ in range(retries):
        if current.found.agree or task.kinks is None or not current.doubts.any() or not current.kinked.all():
            break
        moving = current.doubting()
        share = weight if moving is None or task.kinks.weights is None else task.share(moving)
        current = _directions_round(task, stretch, share, moving)
        worst = max(worst, current.found.passed)
    found = current.found
    if found.agree:
        found.error = max(found.error, worst)
    else:
        found.kinked = bool(current.doubts.any() and current.kinked.all())
        found.crossed = bool(current.kinked.any())
        if found.kinked:
            found.kinked_samples, found.passed = current.doubting(), worst
    return found


def _unit(a: np.ndarray, rtol: float, atol: float, natural: float) -> float:
    """A tensor's rms per-element tolerance (as `tolerance` has it, without the rounding)."""
    size = np.abs(a)
    scale = max(float(size.max(initial=0.0)), natural, ATOL_SCALE_FLOOR)
    per_element = size
    per_element *= rtol
    per_element += atol * min(1.0, scale)
    return float(np.sqrt(np.dot(per_element.reshape(-1), per_element.reshape(-1)) / a.size)) if a.size else 1.0


def _draw(task: _Task, name: str, count: int) -> np.ndarray:
    """Standard normal rows (one per direction) over a tensor's elements, zero outside its group."""
    x, group = task.points[name], task.groups.get(name)
    if group is None:
        return task.rng.standard_normal((count, x.size))
    drawn = np.zeros((count, x.size))
    drawn[:, group] = task.rng.standard_normal((count, len(group)))
    return drawn


def _directions_round(task: _Task, stretch: float, weight: float, moving: np.ndarray | None) -> _Round:
    """FAST_DIRECTIONS directions (only through the samples `moving`, if given), evaluated both ways
    and weighed per sample when kinks.samples() allows it."""
    count, units, eps = FAST_DIRECTIONS, task.units, task.eps
    rows, reach = {}, {}
    for name, x in task.points.items():
        drawn = rows[name] = _draw(task, name, count)
        if moving is not None:
            drawn.reshape(count, len(moving), -1)[:, ~moving] = 0.0
        drawn /= max(units[name], TINY)  # one row per direction
        # how far each direction may go before some element moves by more than eps * max(1, |x|)
        widest = np.maximum(np.abs(drawn).max(axis=1, initial=0.0), TINY)
        reach[name] = max(1.0, float(np.abs(_within(x, task.groups.get(name))).max(initial=0.0))) / widest
    t = eps * stretch * np.min(list(reach.values()), axis=0)  # one step per direction, shared by all tensors
    foretold = float((ROUNDING_SAFETY * current_rounding_unit() * weight / (2 * t)).max())
    if foretold > FAST_TIGHTNESS / 2:  # in tolerance units
        more = min(ROUNDING_SHARE * foretold / FAST_TIGHTNESS, MAX_STRETCH / stretch)
        t *= more
        stretch *= more
    moved = {}
    for name, x in task.points.items():  # direction k up at 2k, down at 2k + 1
        along = rows[name].reshape((count,) + x.shape) * t.reshape((-1,) + (1,) * x.ndim)
        copies = moved[name] = np.empty((2 * count,) + x.shape)
        np.add(x, along, out=copies[0::2])
        np.subtract(x, along, out=copies[1::2])
    outputs = task.evaluate(moved)
    samples = task.kinks.samples() if task.kinks is not None else 1
    if moving is not None and samples != len(moving):
        samples, moving = 1, None  # (never so: a round by sample is weighed by sample)
    return _weigh_round(task, outputs, rows, t, stretch, reach, samples, moving)


def _weigh_round(task: _Task, outputs, rows, t, stretch, reach, samples, moving) -> _Round:
    """The round's verdict: |a.v - n_v| plus rounding per direction and sample, against FAST_TIGHTNESS."""
    points, analytic, units, upstream, kinks = task.points, task.analytic, task.units, task.upstream, task.kinks
    count = len(t)
    predicted = sum(
        (rows[name].reshape(count, samples, -1) * analytic[name].reshape(samples, -1)).sum(axis=2) for name in points
    )
    plus, minus = [out[0::2] for out in outputs], [out[1::2] for out in outputs]
    total, rounding = weigh_per_sample(upstream, plus, minus, samples)
    taken = (2 * t)[:, None]
    numeric = total / taken
    gap, gap_rounding = np.abs(predicted - numeric), rounding / taken
    if moving is not None:  # samples the round left alone have nothing to say
        gap[:, ~moving] = 0.0
        gap_rounding[:, ~moving] = 0.0
    finite = bool(np.isfinite(numeric).all())
    doubts = ~(gap + gap_rounding <= FAST_TIGHTNESS)  # NaN doubts too
    error = float((gap + gap_rounding).max())
    if finite and not doubts.any():
        found = DirectionalCheck(True, error, units=units, stretch=stretch)
    else:
        found = DirectionalCheck(
            False,
            error,
            finite and bool(np.all(gap <= FAST_TIGHTNESS + gap_rounding)),
            float(gap_rounding.max()),
            {name: float(room.min()) for name, room in reach.items()},
            units,
            stretch,
        )
    found.passed = float(np.where(doubts, 0.0, gap + gap_rounding).max(initial=0.0))
    kinked = np.zeros_like(doubts)
    if kinks is not None and finite and doubts.any():
        kinked = _kinked(upstream, plus, minus, kinks.base, samples, taken / 2, gap, gap_rounding)
    return _Round(found, doubts, kinked[doubts], moving)


def _kinked(upstream, plus, minus, base, samples, t, gap, gap_rounding) -> np.ndarray:
    """Cells whose doubt a kink crossed within the step explains: not rounding (gap beyond the
    threshold plus its rounding), and one-sided slopes d+ = (f(x + tv) - f(x)) / t and
    d- = (f(x) - f(x - tv)) / t apart by at least the gap. A smooth function's differ by t f''
    only, whatever its gradient's error; one kink crossed at s in (0, t) puts them 2 * gap apart."""
    reference = [np.broadcast_to(out, p.shape) for out, p in zip(base, plus, strict=False)]
    up, up_rounding = weigh_per_sample(upstream, plus, reference, samples)
    down, down_rounding = weigh_per_sample(upstream, reference, minus, samples)
    apart = np.abs(up - down) - up_rounding - down_rounding
    return (gap > FAST_TIGHTNESS + gap_rounding) & (apart / t >= gap)
