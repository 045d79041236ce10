"""Shrinking a failure: a deterministic descent over its dims, then its magnitude and value seed.

Once an example fails, the report wants the smallest failing example (by `smallest.size`). The
descent proposes candidates one at a time, each smaller than the best failure so far; the caller
checks each for real and answers whether it failed, so a failing candidate is a real failure and
becomes the new best. Per dim, in the order layers.yaml lists them, it tries the lowest value
that `where` allows, then bisects between the highest value known to pass and the lowest known to
fail (the other dims, the value seed and the magnitude as in the best); then magnitude 1, then
value seeds 0, 1, 2, at the best's dims. A failure that seed 0 does not repeat needs its values
(an overflow at magnitude 1000 needs one large value): from then on, smaller dims that pass at
the best's seed are tried at seeds 0, 1, 2 too. When none of that helps, a joint move lowers a
dim together with one or two others, for `where` clauses that allow no dim to move alone.
Passes repeat until one improves nothing, or until the caller answers None (its budget spent).
No candidate is asked twice, and the same start gives the same candidates, in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

from gradcheck.sampling import Example, satisfies
from gradcheck.smallest import size
from gradcheck.spec import LayerSpec

LOW_SEEDS = (0, 1, 2)  # value seeds tried at the best's dims (and, when values matter, at smaller dims)
JOINT_REACH = 4  # how far below the best a joint move takes each dim it moves (where's divisibility needs few)
Verdict = Callable[[Example], bool | None]  # True: it failed; False: it passed; None: stop, no more checks


class _Spent(Exception):
    """The caller checks no more candidates."""


def descend(spec: LayerSpec, start: Example, fails: Verdict) -> Example:
    """The smallest failing example the descent finds from the failing `start` (`start` itself at worst)."""
    descent = _Descent(spec, start, fails)
    try:
        while descent.one_pass():
            pass
    except _Spent:
        pass
    return descent.best


class _Descent:
    """The best failure so far, and the moves that try to make it smaller."""

    def __init__(self, spec: LayerSpec, start: Example, fails: Verdict):
        self.spec, self.best, self.fails = spec, start, fails
        self.reseeds: tuple[int, ...] = ()  # LOW_SEEDS once the failure proved to need its values
        self.known: dict[Example, bool] = {}  # every candidate's answer: none is asked twice
        self.floors: dict[str, int] = {}  # per dim, the highest value seen to pass in this pass (others as the best)

    def one_pass(self) -> bool:
        """Every dim lowered in turn, then magnitude 1, then low value seeds; when none of these helps,
        one joint move: whether the best changed (or the values proved to matter: a pass more)."""
        before, reseeds = self.best, self.reseeds
        self.floors = {name: lo - 1 for name, (lo, _) in self.spec.dims.items()}
        for name in self.spec.dims:
            self._lower(name)
        if self.best.scale != 1.0:
            self._try(replace(self.best, scale=1.0))
        self._lower_seed()
        return self.best != before or self.reseeds != reseeds or self._joint_move()

    def _lower_seed(self) -> None:
        """Value seeds LOW_SEEDS at the best's dims, lowest first. Should seed 0 pass where the best's
        seed fails, the failure needs its values: from then on, dims that pass are tried at LOW_SEEDS too."""
        for seed in LOW_SEEDS:
            if seed >= self.best.seed or self._try(replace(self.best, seed=seed)):
                return
            self.reseeds = LOW_SEEDS

    def _lower(self, name: str) -> None:
        """Bisect dim `name` between the highest value known to pass and the lowest known to fail."""
        passed, failed = self.floors[name], self.best.dim_values[name]
        order = _lowest_first  # the lowest value `where` allows first, then bisection
        while (value := self._next(name, passed, failed, order)) is not None:
            if self._try_dims(self._with(name, value)):
                failed = value
            else:
                passed = value
            order = _middle_first
        self.floors[name] = passed

    def _joint_move(self) -> bool:
        """Lower a dim to a value `where` rejects on its own, with one or two other dims lowered so that
        `where` allows it (conv's "(H + 2*P - K) % S == 0" lowers K only with H); whether one failed.

        Per dim in order, the highest such value, with the fewest other dims moved, least far, in
        order; dims seen to pass lower (`floors`) are not moved, nor moved below that value."""
        for name in self.spec.dims:
            candidate = next(self._joint_candidates(name), None)
            if candidate is not None and self._try_dims(candidate):
                return True
        return False

    def _joint_candidates(self, name: str) -> Iterator[Example]:
        """The examples `_joint_move` may try for dim `name`, best first (JOINT_REACH values below each dim)."""
        best = self.best.dim_values
        others = [k for k in self.spec.dims if k != name]
        for value in self._below(name):
            if satisfies(self.spec, {**best, name: value}):
                continue  # a move of this dim alone: the bisection's
            singles = [{name: value, k: v} for k in others for v in self._below(k)]
            pairs = [
                {**a, **b} for i, a in enumerate(singles) for b in singles[i + 1 :] if len(a.keys() | b.keys()) == 3
            ]
            for move in singles + sorted(pairs, key=lambda move: -sum(move.values())):
                if satisfies(self.spec, {**best, **move}):
                    yield replace(self.best, dims=tuple((k, move.get(k, v)) for k, v in self.best.dims))

    def _below(self, name: str) -> range:
        """The values of dim `name` a joint move may give it: above its floor, at most JOINT_REACH below the best's."""
        value = self.best.dim_values[name]
        return range(value - 1, max(self.floors[name], value - 1 - JOINT_REACH), -1)

    def _next(self, name: str, passed: int, failed: int, order: Callable[[int, int], Iterator[int]]) -> int | None:
        """The first value strictly between `passed` and `failed`, in `order`, that `where` allows."""
        best = self.best.dim_values
        return next((v for v in order(passed, failed) if satisfies(self.spec, {**best, name: v})), None)

    def _with(self, name: str, value: int) -> Example:
        return replace(self.best, dims=tuple((k, value if k == name else v) for k, v in self.best.dims))

    def _try_dims(self, candidate: Example) -> bool:
        """Whether smaller dims fail: at the best's value seed, then at `reseeds` (when the values matter)."""
        seeds = [candidate.seed] + [seed for seed in self.reseeds if seed != candidate.seed]
        return any(self._try(replace(candidate, seed=seed)) for seed in seeds)

    def _try(self, candidate: Example) -> bool:
        """Have the candidate checked; a failure smaller than the best becomes the best."""
        failed = self.known.get(candidate)
        if failed is None:
            failed = self.fails(candidate)
            if failed is None:
                raise _Spent
            self.known[candidate] = failed
        if failed and size(candidate) < size(self.best):
            self.best = candidate
        return failed


def _lowest_first(passed: int, failed: int) -> Iterator[int]:
    """The values strictly between, lowest first."""
    return iter(range(passed + 1, failed))


def _middle_first(passed: int, failed: int) -> Iterator[int]:
    """The values strictly between, from the middle outwards (the lower of two equally near first)."""
    middle = (passed + failed) // 2
    for offset in range(failed - passed):
        for value in (middle - offset, middle + offset + 1):
            if passed < value < failed:
                yield value
