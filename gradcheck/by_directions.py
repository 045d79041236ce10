"""Checking tensors along random directions (mode fast, or auto for large or costly tensors), whole or in groups."""

from __future__ import annotations

import numpy as np

from gradcheck import method_choice
from gradcheck.comparison import Comparison
from gradcheck.directions import MAX_STRETCH, DirectionalCheck, Kinks, directions_agree
from gradcheck.outcomes import TensorOutcome

ATTEMPTS = 2  # rounds of directions before a doubt sends tensors to the per-element check
# A group whose gaps rounding alone explains passes while that rounding stays under this many tolerance units.
GROUP_ROUNDING = 1.0


def fast_pass(compare: Comparison, names: list[str], analytic: dict, mode: str) -> dict[str, tuple[float, float]]:
    """Tensors that pass the random-direction check, each with the directions' error in tolerance
    units and its unit (see DirectionalCheck).

    The directions share one step, which the tensor with the least room sets (a tight
    tolerance next to large values); the rounding grows as the step shrinks. A doubt that
    rounding may explain sends the tensors with little room to the full check and draws the
    directions once more for the others, with a step large enough to leave rounding well
    under the threshold; when every tensor is that tight (one tensor alone, or all alike), the
    same tensors go again with the step stretched beyond eps (at most MAX_STRETCH times). Any
    other doubt, or a second one, sends the remaining tensors to the full check.
    """
    forwards, tol = compare.forwards, compare.tol
    eligible = method_choice.directions_first(forwards, names, mode)
    stretch = 1.0
    for _ in range(ATTEMPTS):
        if not eligible:
            break
        points = {n: forwards.arrays[n] for n in eligible}
        natural = {n: compare.natural(n) for n in points}
        found = directions_agree(
            forwards.evaluate_copies,
            points,
            analytic,
            compare.upstream,
            tol.eps,
            tol.rtol,
            tol.atol,
            forwards.rng,
            natural,
            stretch=stretch,
            weight=compare.output_weight,
            kinks=_kinks(compare, eligible),
        )
        if found.agree:
            return {n: (found.error, found.units[n]) for n in eligible}
        if not found.rounding_only:
            break
        roomy = found.roomy()
        if roomy:
            eligible = roomy
        elif found.stretch * found.growth() <= MAX_STRETCH:
            stretch = found.stretch * found.growth()
        else:
            break
    return {}


def passed(name: str, kind: str, analytic: np.ndarray, directional: float, bound: np.ndarray) -> TensorOutcome:
    """The outcome of a tensor the directions passed: numeric taken as analytic, `directional` the
    one-element error they allow, `bound` its per-element tolerance unit."""
    zeros = np.zeros(analytic.shape, bool)
    return TensorOutcome(name, kind, analytic, analytic.copy(), bound, zeros, directional=directional, method="fast")


def by_groups(compare: Comparison, name: str, kind: str, analytic: np.ndarray) -> TensorOutcome:
    """A tensor the shared directions doubted (see method_choice.checked_in_groups): its elements
    in disjoint groups of at most FULL_MAX, each checked by directions of its own (its own
    tolerance unit, step and rounding: a group moves fewer elements, so crosses fewer kinks); only
    the groups those doubt get the per-element check, one group at a time, until one confirms a
    failure. The forwards stay bounded by the groups that doubt, never the whole tensor's two per
    element."""
    x = compare.forwards.arrays[name]
    flat_analytic = analytic.reshape(-1)
    groups = np.array_split(np.arange(x.size), -(-x.size // method_choice.FULL_MAX))
    doubted, directional, bound = [], 0.0, np.empty(x.size)
    for group in groups:
        found = _group_directions(compare, name, flat_analytic[group], group)
        bound[group] = found.units["part"]
        if found.agree:
            directional = max(directional, found.error * found.units["part"])
        else:
            doubted.append(group)
    if not doubted:
        return passed(name, kind, analytic, directional, bound.reshape(x.shape))
    return compare.in_groups(name, kind, analytic, doubted)


def _group_directions(compare: Comparison, name: str, analytic: np.ndarray, group: np.ndarray) -> DirectionalCheck:
    """The random directions through one group of a tensor's elements (the others stay put).
    They agree, or rounding alone explains every gap while it stays under GROUP_ROUNDING tolerance
    units: no looser than the per-element check, whose bound holds each element's own rounding
    (larger than the directions' for the same output). The step is not stretched ahead of the
    rounding (a long step crosses kinks and curvature); only as far as GROUP_ROUNDING needs."""
    forwards, tol = compare.forwards, compare.tol
    x = forwards.arrays[name]

    def evaluate(moved):
        part = moved["part"]
        copies = np.empty((len(part),) + x.shape)
        copies[...] = x
        copies.reshape(len(part), -1)[:, group] = part
        return forwards.evaluate_copies({name: copies})

    point, natural, stretch = {"part": x.reshape(-1)[group]}, {"part": compare.natural(name)}, 1.0
    for _ in range(ATTEMPTS):
        found = directions_agree(
            evaluate,
            point,
            {"part": analytic},
            compare.upstream,
            tol.eps,
            tol.rtol,
            tol.atol,
            forwards.rng,
            natural,
            stretch=stretch,
            kinks=_kinks(compare, [name]),
        )
        if found.agree or not found.rounding_only:
            return found
        if found.rounding <= GROUP_ROUNDING:
            found.agree = True
            return found
        stretch = min(MAX_STRETCH, stretch * 2 * found.rounding / GROUP_ROUNDING)
    return found


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
