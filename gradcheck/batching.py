"""Whether a layer's samples are independent (batch colouring) and whether it takes copies of the batch stacked.

Colouring needs sample i's outputs to depend on sample i's inputs alone; stacking needs that too,
across copies of the whole batch, and a layer that takes any batch size. Both are probed with
large moves: one stacked forward, [moved; drawn; moved], whose middle copy must reproduce the
reference outputs; failing that, two plain forwards that move the first and the last sample
(batch-norm mixes samples: checked the full way).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gradcheck.adapters import LayerProblem
from gradcheck.sampling import clip_to_range

if TYPE_CHECKING:
    from gradcheck.forwards import Forwards

PROBE_COPIES = 3  # the probe's own copies of the batch: moved, drawn, moved
PROBE_MOVE = 0.1  # the probe moves each element by about this much of max(1, |x|): large, to show any coupling
# A batch of another size may take another BLAS kernel: a stacked copy reproduces the reference
# outputs when within this much of their largest |value|.
REPRODUCTION_TOLERANCE = 1e-12


class NotColoured(Exception):
    """Copies moving every sample at once were offered to a layer whose samples interact."""


class Unstacked(Exception):
    """A stacked forward's outputs did not have the stacked batch as their leading axis."""

    def __init__(self, outputs, expected: list[tuple]):
        super().__init__(expected)
        self.outputs, self.expected = outputs, expected


def colourable(forwards: Forwards) -> set[str]:
    """The inputs batching could colour: batch-leading, differentiated, their outputs batch-leading too."""
    size, spec = forwards.batch_size, forwards.spec
    if not size or spec.batch_independent is False or any(out.shape[:1] != (size,) for out in forwards.reference):
        return set()
    return {t.name for t in spec.differentiable_inputs if t.name in forwards.batch_leading}


def probe(forwards: Forwards, extra: dict[str, np.ndarray] | None = None) -> tuple[set[str], bool, list | None]:
    """(inputs to colour, whether copies stack); and if the probe's stacked forward also carried the
    moved copies `extra` (after its own three) and stacking holds, their outputs: one forward saved."""
    size, names = forwards.batch_size, colourable(forwards)
    if not names:
        return set(), False, None
    carried = _stacking_probe(forwards, sorted(names), extra)  # sorted: set order varies between processes
    if carried is not None:
        return names, True, carried if extra else None
    if size < 2:
        return set(), False, None
    independent = forwards.spec.batch_independent or _samples_independent(forwards, names)
    return (names if independent else set()), False, None


def _stacking_probe(forwards: Forwards, names: list[str], extra) -> list | None:
    """One forward of [moved; drawn; moved] (then `extra`'s copies) stacked along the batch axis:
    the outputs of `extra`'s copies ([] without) if the drawn copy came out as it did alone,
    which also shows forward repeatable (no second plain forward is needed then)."""
    moved = {}
    for name in names:
        x = forwards.arrays[name]
        stack = moved[name] = np.empty((PROBE_COPIES + (len(next(iter(extra.values()))) if extra else 0),) + x.shape)
        stack[1] = x
        shift = np.abs(x) + 1.0
        shift *= PROBE_MOVE
        np.multiply(shift, forwards.rng.standard_normal((2,) + x.shape), out=stack[0:3:2])
        stack[0:3:2] += x
        clip_to_range(forwards.spec, name, stack[0:3:2])
        if extra:
            stack[PROBE_COPIES:] = extra[name] if name in extra else x
    try:
        copies = forwards.forward_stacked(moved)
    except (LayerProblem, Unstacked):  # a layer built for one batch size may refuse another
        return None
    if not all(_reproduces(out[1], ref) for out, ref in zip(copies, forwards.reference, strict=False)):
        return None
    forwards.repeated = True
    return [out[PROBE_COPIES:] for out in copies]


def _samples_independent(forwards: Forwards, names: set[str]) -> bool:
    """Two plain forwards moving the first, then the last sample: the others must not change."""
    size, rng = forwards.batch_size, forwards.rng
    for sample, others in ((0, slice(1, None)), (size - 1, slice(0, size - 1))):
        inputs, params = forwards.fresh_copies()
        for position, tensor in enumerate(forwards.spec.inputs):
            if tensor.name in names:
                x = inputs[position]
                x[sample] += PROBE_MOVE * (np.abs(x[sample]) + 1.0) * rng.standard_normal(x[sample].shape)
                clip_to_range(forwards.spec, tensor.name, x[sample])
        try:
            probed = forwards.forward(inputs, params)[0]
        except LayerProblem:  # the large move left the layer's domain: no colouring, no verdict
            return False
        if not all(np.array_equal(p[others], b[others]) for p, b in zip(probed, forwards.reference, strict=False)):
            return False  # samples interact (batch-norm...): check the full way
    return True


def _reproduces(out: np.ndarray, reference: np.ndarray) -> bool:
    """Whether a stacked forward's copy matches the reference outputs, up to a matrix product's rounding."""
    scale = float(np.abs(reference).max(initial=0.0))
    return out.shape == reference.shape and bool((np.abs(out - reference) <= REPRODUCTION_TOLERANCE * scale).all())
