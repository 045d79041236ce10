"""Which failing example a report shows: the smallest, by its dims."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from gradcheck.spec import LayerSpec

if TYPE_CHECKING:
    from gradcheck.examples import ExampleOutcome
    from gradcheck.sampling import Example


def smallness(outcome: ExampleOutcome) -> tuple:
    """Sort key of an example's outcome, smallest first: the `size` of its example."""
    return size(outcome.example)


def size(example: Example) -> tuple:
    """Sort key of an example, smallest first: total of its dims, then the dims in order, then
    unscaled before scaled values, then the value seed (so that ties are broken the same way every run)."""
    dims = example.dim_values
    return (sum(dims.values()), tuple(dims.values()), example.scale != 1.0, example.seed)


def smallest_failure(outcomes: Iterable[ExampleOutcome]) -> dict[str, Any] | None:
    """The smallest failing example that has dims, as plain data to draw its arrays again from, or None."""
    failures = [o for o in outcomes if o.failed and o.example.dims]
    if not failures:
        return None
    example = min(failures, key=smallness).example
    return {"dims": example.dim_values, "seed": example.seed, "scale": example.scale}


def ordered_dims(spec: LayerSpec, dims: dict[str, int]) -> dict[str, int]:
    """Dims in the order layers.yaml lists them, as every report shows them."""
    return {name: dims[name] for name in spec.dims if name in dims}
