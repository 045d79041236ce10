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

    @property
    def account(self) -> FailureAccount:
        """Why this layer did not pass, as every report tells it."""
        return FailureAccount.of(self)

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


def dims_text(dims: dict[str, int]) -> str:
    """'N=2, D=3': dims as every report writes them."""
    return ", ".join(f"{k}={v}" for k, v in dims.items())


@dataclass(frozen=True)
class WorstElement:
    """The element of a gradient furthest outside its tolerance, with both of its values."""

    tensor: str
    index: tuple[int, ...]
    analytic: float
    numeric: float

    def __str__(self) -> str:
        return f"{self.tensor}{list(self.index)}"

    @property
    def values(self) -> str:
        return f"analytic {self.analytic:.6g}, numeric {self.numeric:.6g}"


@dataclass(frozen=True)
class TensorAccount:
    """Why one input or parameter did not pass."""

    name: str
    shape: tuple[int, ...]
    status: Status
    message: str
    worst: WorstElement | None
    max_abs_error: float
    max_rel_error: float
    cause: str  # the probable bug, or "" when no pattern fits clearly
    failing_dims: dict[str, int] | None  # the smallest dims at which it failed
    value_seed: int | None  # the value seed of that example
    elsewhere: bool  # it failed at other dims than the layer's smallest failing ones
    error_map: Any = None  # element-wise |a - n| there (ndarray)

    @classmethod
    def of(cls, tensor: TensorResult, layer_dims: dict[str, int] | None) -> TensorAccount:
        """The account of a tensor of a layer whose smallest failing dims are `layer_dims`."""
        worst = None
        if tensor.worst_index is not None and tensor.analytic is not None and tensor.numeric is not None:
            worst = WorstElement(tensor.name, tensor.worst_index, tensor.analytic, tensor.numeric)
        return cls(
            name=tensor.name,
            shape=tensor.shape,
            status=tensor.status,
            message=tensor.message,
            worst=worst,
            max_abs_error=tensor.max_abs_error,
            max_rel_error=tensor.max_rel_error,
            cause=tensor.diagnosis,
            failing_dims=tensor.failing_dims,
            value_seed=tensor.example["seed"] if tensor.example else None,
            elsewhere=bool(tensor.failing_dims) and tensor.failing_dims != layer_dims,
            error_map=tensor.error_map,
        )


@dataclass(frozen=True)
class FailureAccount:
    """What every report says about a layer that did not pass: built once, rendered by each reporter."""

    layer: str
    status: Status
    message: str
    tensors: tuple[TensorAccount, ...]  # the failing (FAIL or ERROR) ones
    smallest_dims: dict[str, int] | None
    warnings: tuple[str, ...]
    reproduce: str

    @classmethod
    def of(cls, layer: LayerResult) -> FailureAccount:
        tensors = tuple(
            TensorAccount.of(t, layer.failing_dims) for t in layer.tensors if t.status not in (Status.PASS, Status.SKIP)
        )
        return cls(layer.name, layer.status, layer.message, tensors, layer.failing_dims, layer.warnings, layer.repro)

    def headline(self) -> str:
        """One line: the layer's message and, for a wrong gradient, its worst element."""
        text = self.message or self.status.value
        for tensor in self.tensors:
            if tensor.status is Status.FAIL and tensor.worst is not None:
                return f"{text}: {tensor.worst} {tensor.worst.values}"
        return text

    def text(self) -> str:
        """The account as plain text, one fact a line."""
        lines = [f"{self.layer}: {self.status.value}" + (f" - {self.message}" if self.message else "")]
        for tensor in self.tensors:
            lines += _tensor_lines(tensor)
        lines += [f"  warning: {w}" for w in self.warnings]
        if self.reproduce:
            lines.append(f"  reproduce: {self.reproduce}")
        return "\n".join(lines)


def _tensor_lines(tensor: TensorAccount) -> list[str]:
    lines = [f"  {tensor.name} {tensor.shape}: {tensor.status.value} {tensor.message}".rstrip()]
    if tensor.worst is not None:
        lines.append(
            f"    worst element {tensor.worst}: {tensor.worst.values} (max abs error "
            f"{tensor.max_abs_error:.3g}, max rel error {tensor.max_rel_error:.3g})"
        )
    if tensor.cause:
        lines.append(f"    probable cause: {tensor.cause}")
    if tensor.failing_dims:
        seed = f" (value seed {tensor.value_seed})" if tensor.value_seed is not None else ""
        lines.append(f"    smallest failing dims of {tensor.name}: {dims_text(tensor.failing_dims)}{seed}")
    return lines


def describe_failure(layer: LayerResult) -> str:
    """A multi-line plain-text account of why a layer did not pass."""
    return layer.account.text()
