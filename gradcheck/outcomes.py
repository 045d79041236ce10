"""What checking one example found: per tensor, and for the example as a whole."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from gradcheck.finite_diff import TINY
from gradcheck.results import Status
from gradcheck.sampling import Example


@dataclass
class TensorOutcome:
    """One tensor in one example: analytic against numeric, element by element (read-only once made:
    its verdict and errors are computed once)."""

    name: str
    kind: str
    analytic: np.ndarray
    numeric: np.ndarray
    bound: np.ndarray
    failing: np.ndarray  # confirmed failing elements
    skipped: int = 0  # elements where the reference was not smooth (kink) or not steady
    # fast mode passed: the largest directional error in the tensor's units (in tolerance units
    # times its rms per-element tolerance, `bound`): the one-element error the directions allow
    directional: float | None = None
    method: str = "full"  # one of METHODS: "full", "coloured" (batch colouring) or "fast" (random directions)

    @cached_property
    def status(self) -> Status:
        return Status.FAIL if self.failing.any() else Status.PASS

    @cached_property
    def abs_error(self) -> np.ndarray:
        return np.abs(self.analytic - self.numeric)

    @cached_property
    def max_abs_error(self) -> float:
        if self.directional is not None:
            return self.directional
        return float(np.max(self._counted(self.abs_error), initial=0.0))

    @cached_property
    def max_rel_error(self) -> float:
        scale = np.max(self._counted(np.abs(self.analytic) + np.abs(self.numeric)), initial=0.0)
        return self.max_abs_error / max(float(scale), TINY)

    @cached_property
    def worst_index(self) -> tuple[int, ...]:
        """The element furthest outside its tolerance (or closest to it, when all pass)."""
        ratio = self._counted(self.abs_error / np.maximum(self.bound, TINY), fill=-1.0)
        return tuple(int(i) for i in np.unravel_index(int(np.argmax(ratio)), ratio.shape)) if ratio.size else ()

    def _counted(self, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Values with unreliable (skipped) elements blanked out."""
        return np.where(np.isfinite(self.numeric), values, fill)


@dataclass
class ExampleOutcome:
    """The verdict on one example."""

    example: Example
    status: Status
    message: str = ""
    tensors: list[TensorOutcome] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    tensor: str | None = None  # for an ERROR/FAIL without numbers: the tensor it concerns
    precision: str = "float64"  # the dtype whose precision the example was checked at (see precision.py)

    @property
    def failed(self) -> bool:
        return self.status in (Status.FAIL, Status.ERROR)

    @property
    def skipped(self) -> int:
        return sum(t.skipped for t in self.tensors)


class Counter:
    """Counts forward and backward calls, for the report and the benchmark."""

    def __init__(self):
        self.forward = 0
        self.backward = 0
