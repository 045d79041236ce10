"""Result objects: what a check found, as frozen data for reporters to render."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Status(enum.Enum):
    """Verdict of a tensor or a layer, from best to worst for aggregation."""

    PASS = "PASS"
    XFAIL = "XFAIL"
    SKIP = "SKIP"
    WARN = "WARN"
    XPASS = "XPASS"
    FAIL = "FAIL"
    ERROR = "ERROR"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    def is_failure(self, strict: bool = False) -> bool:
        """Whether this status makes the run exit non-zero (SKIP too: nothing checked is never a pass)."""
        if self in (Status.FAIL, Status.ERROR, Status.SKIP):
            return True
        return strict and self in (Status.WARN, Status.XPASS)


_SEVERITY = {s: i for i, s in enumerate(Status)}


def worst(statuses, default: Status = Status.PASS) -> Status:
    """The most severe of several statuses."""
    return max(statuses, key=lambda s: s.severity, default=default)


@dataclass(frozen=True)
class TensorResult:
    """How one differentiable input or parameter fared over all examples."""

    name: str
    kind: str  # "input" or "param"
    status: Status
    shape: tuple[int, ...] = ()
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0
    worst_index: tuple[int, ...] | None = None
    analytic: float | None = None
    numeric: float | None = None
    message: str = ""
    diagnosis: str = ""
    failing_dims: dict[str, int] | None = None
    error_map: Any = None  # element-wise |a - n| of the smallest failing example (ndarray)
    # how many examples checked it each way: ("full", 17), ("coloured", ...), ("fast", 3) (random directions)
    checked_by: tuple[tuple[str, int], ...] = ()
    # the example this row's shape and worst element come from: {"dims": {...}, "seed": s, "scale": x}
    example: dict[str, Any] | None = None

    @property
    def by_directions(self) -> int:
        """Examples in which the tensor passed by random directions alone (mode fast, or auto)."""
        return dict(self.checked_by).get("fast", 0)

    @property
    def failed(self) -> bool:
        return self.status in (Status.FAIL, Status.ERROR)


@dataclass(frozen=True)
class LayerResult:
    """The verdict on one registered layer."""

    name: str
    status: Status
    tensors: tuple[TensorResult, ...] = ()
    examples: int = 0
    seconds: float = 0.0
    message: str = ""
    warnings: tuple[str, ...] = ()
    failing_dims: dict[str, int] | None = None
    seed: int | None = None
    repro: str = ""
    source: str = ""  # "path/to/layers.yaml:LINE"
    impl: str = ""
    style: str = ""
    xfail: str | None = None
    kinks: int = 0  # points skipped because a stencil straddled a kink (or the reference was unsteady)
    redrawn: int = 0  # examples drawn again with fresh values because they had such points
    calls: dict[str, int] = field(default_factory=dict)  # forward/backward counts
    # "float64", or "float32"/"float16" when forward returned (or backward stored) arrays of that dtype
    # or computed in it inside: checked with the step and tolerances that precision supports
    precision: str = "float64"
    # every tensor's shape in one example of the layer (the smallest failing one, else the largest
    # checked), so that a table's shapes never mix examples
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # the smallest failing example, enough to draw its arrays again: {"dims": {...}, "seed": s, "scale": x}
    example: dict[str, Any] | None = None
    # every example checked, in order: (dims, value seed, scale, status value)
    trail: tuple[tuple[dict[str, int], int, float, str], ...] = ()

    @property
    def ok(self) -> bool:
        return not self.status.is_failure()

    def assert_ok(self, strict: bool = False) -> None:
        """Raise a readable AssertionError if this layer did not pass."""
        if self.status.is_failure(strict):
            raise AssertionError(describe_failure(self))


@dataclass(frozen=True)
class RunResult:
    """All layers of one run, in registry order."""

    layers: tuple[LayerResult, ...]
    seconds: float = 0.0
    seed: int | None = None

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Status}
        for layer in self.layers:
            out[layer.status.value] += 1
        return out

    def exit_code(self, strict: bool = False) -> int:
        return int(any(layer.status.is_failure(strict) for layer in self.layers))


def describe_failure(layer: LayerResult) -> str:
    """A multi-line plain-text account of why a layer did not pass."""
    lines = [f"{layer.name}: {layer.status.value}" + (f" - {layer.message}" if layer.message else "")]
    for t in layer.tensors:
        if t.status in (Status.PASS, Status.SKIP):
            continue
        lines.append(f"  {t.name} {t.shape}: {t.status.value} {t.message}".rstrip())
        if t.worst_index is not None:
            lines.append(
                f"    worst element {t.name}{list(t.worst_index)}: analytic {t.analytic:.6g}, "
                f"numeric {t.numeric:.6g} (max abs error {t.max_abs_error:.3g}, "
                f"max rel error {t.max_rel_error:.3g})"
            )
        if t.diagnosis:
            lines.append(f"    probable cause: {t.diagnosis}")
        if t.failing_dims:
            dims = ", ".join(f"{k}={v}" for k, v in t.failing_dims.items())
            seed = f" (value seed {t.example['seed']})" if t.example else ""
            lines.append(f"    smallest failing dims of {t.name}: {dims}{seed}")
    for w in layer.warnings:
        lines.append(f"  warning: {w}")
    if layer.repro:
        lines.append(f"  reproduce: {layer.repro}")
    return "\n".join(lines)
