"""Checking tensors along random directions (mode fast, or auto for large or costly tensors), whole or in groups."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from gradcheck import method_choice
from gradcheck.comparison import Comparison
from gradcheck.directions import MAX_STRETCH, DirectionalCheck, Kinks, directions_agree
from gradcheck.outcomes import TensorOutcome

ATTEMPTS = 2  # rounds of directions before a doubt sends tensors to the per-element check
# A group whose gaps rounding alone explains passes while that rounding stays under this many tolerance units.
GROUP_ROUNDING = 1.0
# A group whose doubt kinks alone explain is halved, and each half gets directions of its own, down
# to this many elements: only the few elements next to a switch get the per-element check.
KINKED_GROUP = 16
# A doubt whose every gap stays under this many tolerance units (ten times the threshold) shows no
# clear error: the tensors go by groups; a larger gap with no kink among the doubts sends them to
# the full check, for a whole report.
MARGINAL_GAP = 1.0
GROUP_KINK_RETRIES = 0  # a group whose doubt kinks explain is halved at once: fewer forwards than drawing again


@dataclass
class Quick:
    """What the shared directions settled: the tensors they passed (`agreed`: each with the
    directions' error in tolerance units and its unit, see DirectionalCheck); the tensors whose
    doubt only rounding or kinks crossed within the step explain (`unsettled`: they go by groups,
    see by_groups); and, where a kinked doubt was weighed sample by sample, the samples still
    doubting (`samples`; the others agreed, with errors up to `passed` in each tensor's `units`)."""

    agreed: dict[str, tuple[float, float]] = field(default_factory=dict)
    unsettled: frozenset[str] = frozenset()
    samples: np.ndarray | None = None
    passed: float = 0.0
    units: dict[str, float] = field(default_factory=dict)


def fast_pass(compare: Comparison, names: list[str], analytic: dict, mode: str) -> Quick:
    """Tensors that pass the random-direction check, each with the directions' error in tolerance
    units and its unit (see DirectionalCheck).

    The directions share one step, which the tensor with the least room sets (a tight
    tolerance next to large values); the rounding grows as the step shrinks. A doubt that
    rounding may explain sets the tensors with little room aside and draws the directions once
    more for the others, with a step large enough to leave rounding well under the threshold;
    when every tensor is that tight (one tensor alone, or all alike), the same tensors go again
    with the step stretched beyond eps (at most MAX_STRETCH times). Any other doubt sends the
    remaining tensors to the full check, unless every gap is under MARGINAL_GAP or some doubt is
    a kink (kinks of opposite curvature on the two sides of a long step cancel in the one-sided
    slopes, and leave a gap no kink seems to explain). Tensors set aside, or whose doubt only
    rounding explains after both rounds, kinks (a switch of a max crossed, retries spent) or
    marginal gaps are unsettled: they go by groups (see by_groups), whose per-element check
    still confirms any failure.
    """
    eligible = method_choice.directions_first(compare.forwards, names, mode)
    stretch, found = 1.0, None
    unsettled: set[str] = set()
    for _ in range(ATTEMPTS):
        if not eligible:
            break
        found = _shared_directions(compare, eligible, analytic, stretch)
        if found.agree:
            return Quick({n: (found.error, found.units[n]) for n in eligible}, frozenset(unsettled))
        if found.kinked:
            unsettled |= set(eligible)
            return Quick({}, frozenset(unsettled), found.kinked_samples, found.passed, found.units)
        if not found.rounding_only:
            if found.error <= MARGINAL_GAP or found.crossed:  # no clear bug, or kinks that may hide each other
                unsettled |= set(eligible)
            break
        roomy = found.roomy()
        unsettled |= set(eligible) - set(roomy)
        if roomy:
            eligible = roomy
        elif found.stretch * found.growth() <= MAX_STRETCH:
            stretch = found.stretch * found.growth()
        else:
            break  # (every tensor tight, the step at its longest: rounding alone explains the doubt)
    if found is not None and found.rounding_only:  # a doubt that rounding alone explains, attempts spent
        unsettled |= set(eligible)
    return Quick(unsettled=frozenset(unsettled))


def _shared_directions(compare: Comparison, names: list[str], analytic: dict, stretch: float) -> DirectionalCheck:
    """One directions_agree through the tensors `names` at once."""
    forwards, tol, kinks = compare.forwards, compare.tol, _kinks(compare, names)
    return directions_agree(
        forwards.evaluate_copies,
        {n: forwards.arrays[n] for n in names},
        analytic,
        compare.upstream,
        tol.eps,
        tol.rtol,
        tol.atol,
        forwards.rng,
        {n: compare.natural(n) for n in names},
        stretch=stretch,
        weight=_foretelling(compare, kinks, names),
        kinks=kinks,
    )


def _foretelling(compare: Comparison, kinks: Kinks, names: list[str]) -> float:
    """The output weight that foretells the directions' rounding: per sample (the largest sample's)
    where they will be weighed sample by sample, else the whole outputs'."""
    verdict = compare.forwards.batching_verdict
    may_colour = verdict is None or set(names) <= verdict[0]
    if kinks.weights is None or not may_colour or not set(names) <= compare.forwards.batch_leading:
        return compare.output_weight
    return float(kinks.weights.max())


def passed(name: str, kind: str, analytic: np.ndarray, directional: float, bound: np.ndarray) -> TensorOutcome:
    """The outcome of a tensor the directions passed: numeric taken as analytic, `directional` the
    one-element error they allow, `bound` its per-element tolerance unit."""
    zeros = np.zeros(analytic.shape, bool)
    return TensorOutcome(name, kind, analytic, analytic.copy(), bound, zeros, directional=directional, method="fast")


def by_groups(
    compare: Comparison, name: str, kind: str, analytic: np.ndarray, quick: Quick | None = None
) -> TensorOutcome:
    """A tensor the shared directions doubted (see method_choice.checked_in_groups, or kinks alone
    explained the doubt): its elements in disjoint groups of at most FULL_MAX, each checked by
    directions of its own (its own tolerance unit, step and rounding: a group moves fewer elements,
    so crosses fewer kinks). A group whose doubt kinks alone explain is halved, down to KINKED_GROUP
    elements, each half checked the same way: the halves away from the switch pass. Only the groups
    that still doubt get the per-element check, one group at a time, until one confirms a failure.
    The forwards stay bounded by the groups that doubt, never the whole tensor's two per element.
    Where `quick` tells the samples that still doubt (see Quick), only their elements are grouped."""
    x = compare.forwards.arrays[name]
    doubted, directional, bound = [], 0.0, np.empty(x.size)
    samples = quick.samples if quick is not None and name in quick.units else None
    if quick is not None and samples is not None:  # the other samples agreed already
        bound[:] = quick.units[name]
        directional = quick.passed * quick.units[name]
    pending, kinks = _first_groups(x.size, samples), _kinks(compare, [name])  # one reference for every group
    while pending:
        group = pending.pop(0)
        found = _group_directions(compare, name, analytic, group, kinks)
        bound[group] = found.units[name]
        if found.agree:
            directional = max(directional, found.error * found.units[name])
        elif found.kinked and len(group) > KINKED_GROUP:
            pending[:0] = np.array_split(group, 2)  # depth first, in order
        else:
            doubted.append(group)
    if not doubted:
        return passed(name, kind, analytic, directional, bound.reshape(x.shape))
    return compare.in_groups(name, kind, analytic, doubted)


def _first_groups(size: int, samples: np.ndarray | None) -> list[np.ndarray]:
    """Disjoint groups of at most FULL_MAX flat indices: of the whole tensor, or of `samples` only."""
    if samples is None:
        return np.array_split(np.arange(size), -(-size // method_choice.FULL_MAX))
    per_sample = size // len(samples)
    return [
        part
        for sample in np.flatnonzero(samples)
        for part in np.array_split(
            np.arange(sample * per_sample, (sample + 1) * per_sample), -(-per_sample // method_choice.FULL_MAX)
        )
    ]


def _group_directions(
    compare: Comparison, name: str, analytic: np.ndarray, group: np.ndarray, kinks: Kinks
) -> DirectionalCheck:
    """The random directions through one group of a tensor's elements (the others stay put).
    They agree, or rounding alone explains every gap while it stays under GROUP_ROUNDING tolerance
    units: no looser than the per-element check, whose bound holds each element's own rounding
    (larger than the directions' for the same output). The step is not stretched ahead of the
    rounding (a long step crosses kinks and curvature); only as far as GROUP_ROUNDING needs.
    A batch-leading input's group is weighed sample by sample, and only its samples go through
    the forwards, where the samples proved independent and copies stack (see _GroupView)."""
    forwards, tol = compare.forwards, compare.tol
    view = _GroupView.of(compare, name, analytic, group, kinks)
    stretch = 1.0
    for _ in range(ATTEMPTS):
        found = directions_agree(
            view.evaluate,
            {name: view.x},
            {name: view.analytic},
            view.upstream,
            tol.eps,
            tol.rtol,
            tol.atol,
            forwards.rng,
            {name: compare.natural(name)},
            stretch=stretch,
            kinks=view.kinks,
            groups={name: view.group},
            retries=GROUP_KINK_RETRIES,
        )
        if found.agree or not found.rounding_only:
            return found
        if found.rounding <= GROUP_ROUNDING:
            found.agree = True
            return found
        stretch = min(MAX_STRETCH, stretch * 2 * found.rounding / GROUP_ROUNDING)
    return found


@dataclass
class _GroupView:
    """What the directions through one group see: the tensor, its gradient, the upstream gradients,
    the kinks' reference and how to evaluate moved copies; `group` indexes the flat `x`."""

    evaluate: Callable[[dict], list]
    x: np.ndarray
    analytic: np.ndarray
    upstream: list
    kinks: Kinks
    group: np.ndarray

    @classmethod
    def of(cls, compare: Comparison, name: str, analytic: np.ndarray, group: np.ndarray, kinks: Kinks) -> _GroupView:
        """The whole example; or, for a batch-leading input whose samples proved independent and whose
        copies stack, only the samples the group reaches: a forward of their copies costs that share
        of the batch's."""
        forwards = compare.forwards
        x = forwards.arrays[name]
        whole = cls(forwards.evaluate_copies, x, analytic, list(compare.upstream), kinks, group)
        verdict, size = forwards.batching_verdict, forwards.batch_size
        if verdict is None or not verdict[1] or name not in verdict[0] or kinks.samples() != size:
            return whole
        per_sample = x.size // size
        samples = np.unique(group // per_sample)
        if len(samples) == size:
            return whole
        local = (np.searchsorted(samples, group // per_sample) * per_sample + group % per_sample).astype(np.intp)
        weights = kinks.weights[samples] if kinks.weights is not None else None
        return cls(
            forwards.in_samples(samples),
            x[samples],
            analytic[samples],
            [_rows_of(r, samples, out.shape) for r, out in zip(compare.upstream, compare.reference, strict=False)],
            Kinks([out[samples] for out in compare.reference], lambda: len(samples), weights),
            local,
        )


def _rows_of(r, samples: np.ndarray, shape: tuple) -> np.ndarray:
    """An upstream gradient (an array of the output's shape, or a scalar) for some samples only."""
    return np.broadcast_to(r, shape)[samples]


def _kinks(compare: Comparison, names: list[str]) -> Kinks:
    """What the directions need to tell kinks from errors (see directions.Kinks): per sample
    where the layer's samples proved independent (the probe rides in the directions' first
    stacked forward) and only batch-leading inputs move."""
    forwards, reference = compare.forwards, compare.reference
    size = forwards.batch_size

    def samples() -> int:
        verdict = forwards.batching_verdict
        independent = verdict is not None and set(names) <= verdict[0]
        return size if independent and size > 1 else 1

    if size < 2 or any(out.shape[:1] != (size,) for out in reference):
        return Kinks(reference)
    weights = sum(
        np.abs(np.multiply(r, out)).reshape(size, -1).sum(axis=1)
        for r, out in zip(compare.upstream, reference, strict=False)
    )
    return Kinks(reference, samples, weights)
