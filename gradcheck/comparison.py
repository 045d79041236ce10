"""Numeric against analytic gradients, element by element: tolerances, suspects re-derived, kinks swept away."""

from __future__ import annotations

import numpy as np

from gradcheck import batching
from gradcheck.finite_diff import (
    TINY,
    Estimate,
    centred_difference,
    element_differences,
    is_steady,
    numerical_gradient,
    tolerance,
)
from gradcheck.forwards import Forwards
from gradcheck.hygiene import check_read_where_moved
from gradcheck.outcomes import TensorOutcome
from gradcheck.precision import Steps
from gradcheck.results import Status

CONFIRM_CHUNK = 256  # a doubted group's elements get the per-element check this many at a time


class Comparison:
    """Comparing one example's tensors: its forwards, tolerances, reference outputs and upstream gradients."""

    def __init__(self, forwards: Forwards, tol: Steps, upstream: list):
        self.forwards, self.tol, self.upstream = forwards, tol, upstream
        self.reference = forwards.reference
        weighted = [np.abs(np.multiply(r, out)) for r, out in zip(upstream, self.reference, strict=False)]
        # the largest |R * out|: over an input's size, the layer's natural gradient scale (see `tolerance`)
        self.natural_output = max(float(w.max(initial=0.0)) for w in weighted)
        self.output_weight = sum(float(w.sum()) for w in weighted)  # sum |R * out|: foretells the directions' rounding

    def natural(self, name: str) -> float:
        """The layer's natural gradient scale for a tensor: the largest |R * out| over the tensor's size."""
        return self.natural_output / max(1.0, self.forwards.largest[name])

    def element_by_element(self, name: str, kind: str, analytic: np.ndarray) -> TensorOutcome:
        """Every element's centred difference (coloured where samples are independent), then the verdict."""
        x = self.forwards.arrays[name]
        estimate, coloured = self._numerical(name, x)
        return self._confirm(name, kind, x, analytic, estimate, coloured)

    def in_groups(self, name: str, kind: str, analytic: np.ndarray, groups: list[np.ndarray]) -> TensorOutcome:
        """The per-element check for some groups of flat indices only, a chunk at a time until one fails;
        the other elements count as agreeing (their directions did), their numeric set to analytic."""
        x = self.forwards.arrays[name]
        numeric, rounding = analytic.copy(), np.zeros(x.shape)
        outcome = None
        for group in (chunk for g in groups for chunk in np.array_split(g, -(-len(g) // CONFIRM_CHUNK))):
            each = self.forwards.evaluate_each(name)
            part = element_differences(each, x, group, self.upstream, self.tol.eps, self.forwards.magnitude)
            numeric.reshape(-1)[group], rounding.reshape(-1)[group] = part.value, part.rounding
            estimate = Estimate(numeric.copy(), rounding.copy())
            outcome = self._confirm(name, kind, x, analytic, estimate, False)
            if outcome.status is Status.FAIL:
                break
        assert outcome is not None  # a doubted tensor has at least one group
        return outcome

    def _numerical(self, name: str, x: np.ndarray) -> tuple[Estimate, bool]:
        """The numerical gradient of one tensor, and whether it was batch-coloured.

        While the layer's batching is not yet probed, a batch-leading input's coloured estimate is
        tried first: its stacked forward carries the probe (see Forwards.evaluate_copies), one forward
        saved; if the probe finds that samples interact, the plain estimate is taken instead.
        """
        forwards, eps, magnitude = self.forwards, self.tol.eps, self.forwards.magnitude
        evaluate = forwards.evaluate(name)
        if forwards.batching_verdict is None and name in batching.colourable(forwards):
            try:
                each = forwards.evaluate_each(name, coloured=True)
                return numerical_gradient(evaluate, x, self.upstream, eps, magnitude, each, by_sample=True), True
            except batching.NotColoured:
                pass
        each = forwards.evaluate_each(name)
        coloured = name in forwards.batching()[0]
        return numerical_gradient(evaluate, x, self.upstream, eps, magnitude, each, by_sample=coloured), coloured

    def _confirm(self, name, kind, x, analytic, estimate: Estimate, coloured: bool) -> TensorOutcome:
        """The verdict on a numerical estimate: suspects, the worst first, re-derived and swept for
        steadiness; one steady failure settles it, and a suspect that is not steady is not counted."""
        numeric = estimate.value
        bound = tolerance(estimate, analytic, self.tol.rtol, self.tol.atol, self.natural(name))
        unreliable = ~np.isfinite(numeric)
        gap = np.abs(analytic - numeric)
        suspects = np.flatnonzero(gap > bound)  # never where numeric is not finite: gap > bound is then False
        if suspects.size > 1:  # the worst first
            suspects = suspects[np.argsort(-(gap / np.maximum(bound, TINY)).reshape(-1)[suspects])]
        confirmed = np.zeros(x.shape, dtype=bool)
        for index in suspects:
            if coloured and self._rederived_agrees(name, x, analytic, estimate, bound, int(index)):
                continue
            if self._steady(name, x, analytic, numeric, int(index)):
                confirmed.reshape(-1)[index] = True
                break  # one steady failure settles the verdict; no need to re-examine the rest
            unreliable.reshape(-1)[index] = True
        numeric[unreliable] = np.nan
        if kind == "param" and self.forwards.spec.style == "class" and confirmed.any():
            if not numeric[np.isfinite(numeric)].any():
                check_read_where_moved(self.forwards, name)
        method = "coloured" if coloured else "full"
        return TensorOutcome(name, kind, analytic, numeric, bound, confirmed, int(unreliable.sum()), method=method)

    def _rederived_agrees(self, name, x, analytic, estimate: Estimate, bound, index: int) -> bool:
        """A coloured suspect re-derived the plain way (its numeric and bound updated in place): whether it agrees."""
        value, rounding = centred_difference(
            self.forwards.evaluate(name), x, self.upstream, self.tol.eps, index, self.forwards.magnitude
        )
        flat_bound = bound.reshape(-1)
        flat_bound[index] += rounding - estimate.rounding.reshape(-1)[index]
        estimate.value.reshape(-1)[index] = value
        return abs(analytic.reshape(-1)[index] - value) <= flat_bound[index]

    def _steady(self, name, x, analytic, numeric, index: int) -> bool:
        """Whether the reference is steady at a suspect, so its gap is a real failure (see is_steady)."""
        return is_steady(
            self.forwards.evaluate(name),
            x,
            self.reference,
            self.upstream,
            self.tol.eps,
            index,
            float(analytic.reshape(-1)[index]),
            float(numeric.reshape(-1)[index]),
            self.forwards.magnitude,
        )
