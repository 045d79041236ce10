"""Which tensors mode `auto` checks by random directions first, and which element by element.

Tensors up to FULL_MAX elements get the full per-element check, as long as the example's full
checks together (two forwards per element; for a batch-leading input, per element of one sample)
cost at most FULL_BUDGET: else the costliest start with the directions, until the rest fit. A
forward costs CALL_COST plus the elements it reads and writes (inputs, parameters, outputs): sizes
only, never time, so the same seed checks the same way on any machine. (On the machine the budget
was set on, a built-in forward took about 4-50 ns an element: the budget is a few tenths of a
second to a few seconds there.) Once some tensor starts with the directions, the others but
batch-leading inputs ride them too, at no extra forward. A tensor the shared directions doubt is
checked in groups of at most FULL_MAX elements, each by directions of its own first (see
by_directions.by_groups): in mode auto whenever it started with the directions, in mode fast
above FULL_MAX; only the groups those doubt get the per-element check.
"""

from __future__ import annotations

import numpy as np

from gradcheck.forwards import Forwards

FULL_MAX = 4096
CALL_COST = 1000  # a forward's fixed cost (Python calls, copies), in elements
FULL_BUDGET = 5e7  # element-forwards per example


def directions_first(forwards: Forwards, names: list[str], mode: str) -> list[str]:
    """The tensors that start with the random directions: all in mode fast; in mode auto the costly
    ones (see costly) and, when there are any, every other tensor but batch-leading inputs: the
    example pays for the shared directions anyway, and they move the small tensors at no extra
    forward (a doubt sends them to their groups, see checked_in_groups)."""
    if mode != "auto":
        return list(names) if mode == "fast" else []
    first = costly(forwards, names)
    if not first:
        return []
    return [n for n in names if n in first or n not in forwards.batch_leading]


def costly(forwards: Forwards, names: list[str]) -> set[str]:
    """The tensors mode auto does not start with the full check: those above FULL_MAX elements,
    then, costliest first, as many as it takes to bring the others' full checks within FULL_BUDGET."""
    first = {n for n in names if forwards.arrays[n].size > FULL_MAX}
    full = {n: _full_forwards(forwards, n) for n in names if n not in first}
    total = sum(full.values())
    per_forward = _forward_cost(forwards)
    for name in sorted(full, key=full.__getitem__, reverse=True):  # stable: the earlier of equal tensors first
        if total * per_forward <= FULL_BUDGET:
            break
        total -= full[name]
        first.add(name)
    return first


def checked_in_groups(forwards: Forwards, name: str, names: list[str], mode: str) -> bool:
    """Whether a tensor the directions doubted is checked group by group rather than whole, unless
    batch-leading (those go stacked or coloured): in mode fast above FULL_MAX elements; in mode auto
    every tensor that started with the directions (see directions_first), never by the full check
    the budget had ruled out for the costly ones."""
    if mode == "full" or name in forwards.batch_leading:
        return False
    if mode == "auto":
        return name in directions_first(forwards, names, mode)
    return forwards.arrays[name].size > FULL_MAX


def _forward_cost(forwards: Forwards) -> float:
    """What one forward costs the budget: CALL_COST plus the elements of its arrays and outputs."""
    elements = sum(a.size for a in forwards.arrays.values()) + sum(int(np.prod(s)) for s in forwards.output_shapes)
    return CALL_COST + elements


def _full_forwards(forwards: Forwards, name: str) -> float:
    """Forwards the full check of tensor `name` takes: two per element, per element of one
    sample for a batch-leading input (whose moved copies go through stacked or coloured)."""
    size = forwards.arrays[name].size
    per_copy = forwards.batch_size if name in forwards.batch_leading and forwards.batch_size else 1
    return 2 * size / per_copy
