"""Drawing examples: dims, a value seed and a magnitude, then the arrays themselves.

Examples come two ways with one distribution. `draw_examples` draws them from a seeded numpy
generator, for about 20 µs each: the engine checks a layer over these, since most layers pass
and hypothesis's own engine costs over 1 ms per example; a failure among them is shrunk by the
engine's dims descent. `examples_strategy` is the same distribution as a hypothesis strategy,
used only when the `where` clauses defeat the numpy sampler (hypothesis rejects more patiently).
Array values always come from a numpy generator seeded with the example's seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np

from gradcheck.spec import LayerSpec, TensorSpec

if TYPE_CHECKING:  # hypothesis is imported only when a search needs it: it takes ~0.2 s to import
    from hypothesis import strategies as st

# Input magnitudes drawn per example: mostly unit scale, sometimes tiny or huge, so that a
# forward that overflows (exp without max-subtraction) meets inputs of magnitude ~1e3.
SCALES = (1.0, 0.01, 100.0, 1000.0)
GIVEN_JUMP = 0x9E3779B97F4A7C15  # how far a given array moves the example's generator (what it would have drawn)
MAX_TRIES = 1000  # dims drawn per example before the `where` clauses count as unsatisfiable
SEEDS = 2**32  # value seeds are drawn from range(SEEDS), as hypothesis draws them
EXTREMES_STREAM = 14  # mixed into the seed so that the extremes' generator is its own
RANGE_MARGIN = 0.01  # share of a declared range left out at each end: finite-difference steps stay inside


@dataclass(frozen=True)
class Example:
    """One drawn case: dims, a seed for the values, and the magnitude of float inputs."""

    dims: tuple[tuple[str, int], ...]
    seed: int
    scale: float = 1.0

    @property
    def dim_values(self) -> dict[str, int]:
        return dict(self.dims)


def satisfies(spec: LayerSpec, dims: dict[str, int]) -> bool:
    """Whether drawn dims meet every `where` clause and give non-negative shapes."""
    try:
        if not all(bool(w.evaluate(dims)) for w in spec.where):
            return False
        return all(int(e.evaluate(dims)) >= 0 for t in spec.inputs + spec.params for e in t.shape)
    except (ZeroDivisionError, ArithmeticError, ValueError):
        return False


def draw_examples(spec: LayerSpec, seed: int) -> Iterator[Example]:
    """Examples drawn like `examples_strategy`, deterministically from `seed`, without end.

    Like hypothesis, it tries the boundaries first: every dim at its minimum, then every dim at
    its maximum (each only if it satisfies `where`), both at scale 1, then the maximum again at
    the largest magnitude: the most values of ~1e3 that any example draws, so that an exp without
    max-subtraction meets one above 709 all but surely (a few small examples at ~1e3 can all be
    negative). When `where` rejects a corner, `extremes` follows with examples that reach every
    dim's minimum and maximum (and batch size 1) all the same, wherever `where` allows them. The
    minimum has value seed 0, the seed the descent shrinks towards: should it fail, nothing
    smaller exists. The next examples take every magnitude
    of SCALES once, in a random order; after that the magnitude is drawn like the rest. Stops
    early only when MAX_TRIES draws in a row miss the `where` clauses.
    """
    rng = np.random.default_rng(seed % 2**64)  # --seed may be negative
    reached: list[dict[str, int]] = []
    for corner in (0, 1):
        dims = {name: bounds[corner] for name, bounds in spec.dims.items()}
        if satisfies(spec, dims):
            reached.append(dims)
            yield Example(tuple(dims.items()), 0 if corner == 0 else int(rng.integers(SEEDS)))
            if corner == 1:
                yield Example(tuple(dims.items()), int(rng.integers(SEEDS)), max(SCALES))
    for dims in extremes(spec, reached, seed):
        yield Example(tuple(dims.items()), int(rng.integers(SEEDS)))
    first_scales = [SCALES[i] for i in rng.permutation(len(SCALES))]
    while (drawn := _draw_dims(spec, rng)) is not None:
        scale = first_scales.pop() if first_scales else SCALES[rng.integers(len(SCALES))]
        yield Example(tuple(drawn.items()), int(rng.integers(SEEDS)), scale)


def extreme_targets(spec: LayerSpec) -> list[tuple[str, int]]:
    """(dim, value) pairs some example must reach: each dim's minimum and maximum, and batch size 1."""
    targets = [(name, bounds[corner]) for corner in (0, 1) for name, bounds in spec.dims.items()]
    batch_dim = spec.batch_dim or ""
    batch = spec.dims.get(batch_dim)
    if batch is not None and batch[0] <= 1 <= batch[1]:
        targets.insert(0, (batch_dim, 1))
    return list(dict.fromkeys(targets))


def extremes(spec: LayerSpec, reached: list[dict[str, int]], seed: int) -> Iterator[dict[str, int]]:
    """Allowed dims reaching every extreme that `reached` misses, when `where` allows one at all.

    When `where` rejects the all-minimum (or all-maximum) corner, that corner's extremes would
    otherwise be left to chance: a forward that crashes at C=1 could pass at one seed and fail at
    another. Each candidate fixes one missing extreme (taking them in turn) and draws the other
    dims, keeping each at the same end of its range half the time, so that one example tends to
    reach several extremes. MAX_TRIES candidates in all, deterministic for a seed; the generator
    is its own, so the examples drawn after these are those of a layer whose corners `where` allows.
    """
    missing = [t for t in extreme_targets(spec) if not any(d[t[0]] == t[1] for d in reached)]
    rng = np.random.default_rng([seed % 2**64, EXTREMES_STREAM])
    for attempt in range(MAX_TRIES):
        if not missing:
            return
        name, value = missing[attempt % len(missing)]
        dims = _candidate(spec, name, value, rng)
        if satisfies(spec, dims):
            yield dims
            missing = [(k, v) for k, v in missing if dims[k] != v]


def _candidate(spec: LayerSpec, name: str, value: int, rng: np.random.Generator) -> dict[str, int]:
    """Dims with `name` at `value`; each other dim at the same end of its range, or uniform, by a coin."""
    end = 0 if value == spec.dims[name][0] else 1
    keep, drawn = rng.random((2, len(spec.dims))).tolist()
    dims = {}
    for k, coin, x in zip(spec.dims, keep, drawn, strict=True):
        lo, hi = spec.dims[k]
        dims[k] = (lo, hi)[end] if coin < 0.5 else lo + min(int(x * (hi - lo + 1)), hi - lo)
    dims[name] = value
    return dims


def _draw_dims(spec: LayerSpec, rng: np.random.Generator) -> dict[str, int] | None:
    """Dims as `dims_strategy` draws them, by rejection; None when MAX_TRIES draws miss `where`.

    One uniform draw per dim, plus a coin for a batch dim that may be 1 (1 half the time, else
    uniform over 2..hi), all in one call to the generator.
    """
    names = list(spec.dims)
    batch_lo, batch_hi = spec.dims.get(spec.batch_dim or "", (0, 0))
    coin = spec.batch_dim if batch_lo <= 1 < batch_hi else None  # the batch dim, when it may be 1 or more
    for _ in range(MAX_TRIES):
        u = rng.random(len(names) + 1).tolist()
        dims = {}
        for name, x in zip(names, u, strict=False):  # u[-1] is the batch coin
            lo, hi = spec.dims[name]
            if name == coin:
                dims[name] = 1 if u[-1] < 0.5 else 2 + min(int(x * (hi - 1)), hi - 2)
            else:
                dims[name] = lo + min(int(x * (hi - lo + 1)), hi - lo)
        if satisfies(spec, dims):
            return dims
    return None


def dims_strategy(spec: LayerSpec) -> st.SearchStrategy[dict[str, int]]:
    """Dims within their inclusive ranges; the batch dim is 1 about half the time."""
    from hypothesis import strategies as st

    batch = spec.batch_dim
    parts = {}
    for name, (lo, hi) in spec.dims.items():
        if name == batch and lo <= 1 < hi:
            parts[name] = st.one_of(st.just(1), st.integers(2, hi))
        else:
            parts[name] = st.integers(lo, hi)
    return st.fixed_dictionaries(parts).filter(lambda dims: satisfies(spec, dims))


def examples_strategy(spec: LayerSpec) -> st.SearchStrategy[Example]:
    """Whole examples: dims, a value seed and an input magnitude."""
    from hypothesis import strategies as st

    return st.builds(
        lambda dims, seed, scale: Example(tuple(dims.items()), seed, scale),
        dims_strategy(spec),
        st.integers(0, SEEDS - 1),
        st.sampled_from(SCALES),
    )


def shape_of(tensor: TensorSpec, dims: dict[str, int]) -> tuple[int, ...]:
    """A tensor's concrete shape for the drawn dims."""
    return tuple(int(e.evaluate(dims)) for e in tensor.shape)


def draw_tensor(tensor: TensorSpec, dims: dict[str, int], rng: np.random.Generator, scale: float) -> np.ndarray:
    """Values for one input or parameter (a copy of the array given to gradcheck.check, if one was)."""
    given = getattr(tensor, "given", None)
    if given is not None:  # the stream jumps far on: the upstream gradient must not repeat the user's own draws
        cast(np.random.PCG64, rng.bit_generator).advance(GIVEN_JUMP)
        return given.copy()
    shape = shape_of(tensor, dims)
    if tensor.kind == "integers":
        assert tensor.integers is not None  # the registry gives every integers tensor its bounds
        lo, hi = (int(e.evaluate(dims)) for e in tensor.integers)
        return rng.integers(lo, max(lo, hi) + 1, size=shape)
    if tensor.kind == "values":
        assert tensor.values is not None  # the registry gives every values tensor its choices
        choice = rng.integers(0, len(tensor.values), size=shape)
        return np.asarray(tensor.values)[choice]
    if tensor.range is not None:
        low, high = tensor.range
        margin = RANGE_MARGIN * (high - low)
        return rng.uniform(low + margin, high - margin, size=shape)
    return rng.standard_normal(shape) * scale


def clip_to_range(spec: LayerSpec, name: str, values: np.ndarray) -> None:
    """Clip moved values of input `name` into its declared `range`, in place: forward never sees others."""
    for tensor in spec.inputs:
        if tensor.name == name and tensor.range is not None:
            np.clip(values, *tensor.range, out=values)


def draw_arrays(spec: LayerSpec, example: Example, rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """Every input and parameter for one example; parameters keep unit scale.

    `rng` is the example's generator (seeded with example.seed), if the caller goes on drawing from it.
    """
    dims = example.dim_values
    rng = np.random.default_rng(example.seed) if rng is None else rng
    arrays = {t.name: draw_tensor(t, dims, rng, example.scale) for t in spec.inputs}
    arrays.update({p.name: draw_tensor(p, dims, rng, 1.0) for p in spec.params})
    return arrays


def draw_upstream(outputs: tuple[np.ndarray, ...], rng: np.random.Generator | int) -> list:
    """Gaussian upstream gradients, one per output; exactly 1 for a scalar output.

    A one-element array (a loss returned as np.array([loss])) counts as a scalar too. `rng` is a
    generator or a seed for one.
    """
    if all(out.ndim == 0 or out.shape == (1,) for out in outputs):  # a loss: no generator needed
        return [1.0 if out.ndim == 0 else np.ones(1) for out in outputs]
    rng = np.random.default_rng(rng)
    return [
        1.0 if out.ndim == 0 else np.ones(1) if out.shape == (1,) else rng.standard_normal(out.shape) for out in outputs
    ]
