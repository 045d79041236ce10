"""What a registered layer is: a plain description the engine can check, free of YAML."""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gradcheck.expr import Expression

STYLES = ("class", "functions", "loss", "model", "elementwise", "loss-object")  # the last three: adapters_styles
MODES = ("auto", "full", "fast")  # how a run checks tensors: chosen per tensor, every element, random directions
METHODS = ("full", "coloured", "fast")  # how a tensor was checked in one example (TensorOutcome.method)
DERIVATIVE_NAMES = ("gradient", "grad", "derivative", "deriv")  # looked for on an elementwise or loss object


@dataclass(frozen=True)
class Ref:
    """A `$name` placeholder in `init` or `args`: a drawn array or dim, bound per example."""

    name: str


@dataclass(frozen=True)
class LayerArg:
    """A `!layer {impl: file.py:Class, init: {...}, setup: {...}}` argument: another layer object
    (the layer a wrapper such as Dropout(wrapped_layer, p) delegates to), built afresh per example."""

    impl: str
    target: Any  # the class or function that builds it
    init: Any = None
    setup: Any = None


@dataclass(frozen=True)
class TensorSpec:
    """An input or parameter: its shape as expressions over dims, and how its values are drawn."""

    name: str
    shape: tuple[Expression, ...]
    kind: str = "float"  # "float" (differentiable), "integers" or "values" (data)
    integers: tuple[Expression, Expression] | None = None
    values: tuple[Any, ...] | None = None
    range: tuple[float, float] | None = None

    @property
    def differentiable(self) -> bool:
        return self.kind == "float"


@dataclass(frozen=True)
class Location:
    """Where a parameter or its gradient lives on an object: attr:, dict:, list:, update: or optimizer:."""

    kind: str  # "attr", "dict", "list" or "update"
    target: str  # attribute template, dictionary/list attribute, or backward argument; a dotted
    # path (`_base_layer.parameters`) reaches into an object the layer holds

    def describe(self, name: str, position: int) -> str:
        """Human-readable place, e.g. `self.gradients['W']`."""
        if self.kind == "attr":
            return "self." + self.target.format(name=name)
        if self.kind == "dict":
            return f"self.{self.target}[{name!r}]"
        if self.kind == "list":
            return f"self.{self.target}[{position}]"
        return f"the parameter change made by backward({self.target}=lr)"


@dataclass(frozen=True)
class Tolerances:
    """Comparison tolerances and finite-difference step; None means 'use the default'."""

    rtol: float | None = None
    atol: float | None = None
    eps: float | None = None

    def merged(self, override: Tolerances) -> Tolerances:
        """These tolerances with every non-None value of `override` taking precedence."""
        return Tolerances(
            rtol=self.rtol if override.rtol is None else override.rtol,
            atol=self.atol if override.atol is None else override.atol,
            eps=self.eps if override.eps is None else override.eps,
        )


DEFAULT_TOLERANCES = Tolerances(rtol=1e-5, atol=1e-7, eps=1e-6)
DEFAULT_EXAMPLES = 20
# On the command line every layer runs under this time limit unless told otherwise, so that a
# hang is that layer's ERROR rather than the end of the run.
DEFAULT_LAYER_TIMEOUT = 600.0
RANDOM_SEEDS = 2**31  # a run without --seed draws its seed from range(RANDOM_SEEDS)


@dataclass(frozen=True)
class LayerSpec:
    """One entry of the registry, with its implementation already imported."""

    name: str
    style: str
    impl: str
    inputs: tuple[TensorSpec, ...]
    dims: dict[str, tuple[int, int]]
    params: tuple[TensorSpec, ...] = ()
    target: Any = None  # the class (style class)
    forward: Callable | None = None  # style functions
    backward: Callable | None = None  # style functions
    function: Callable | None = None  # style loss
    init: Any = field(default_factory=dict)
    args: Any = field(default_factory=dict)
    params_at: Location = Location("attr", "{name}")
    grads: Location = Location("attr", "d{name}")
    where: tuple[Expression, ...] = ()
    batch: str | None = None
    batch_independent: bool | None = None
    examples: int | None = None
    tolerances: Tolerances = Tolerances()
    xfail: str | None = None
    timeout: float | None = None
    source: str = ""  # "layers.yaml:LINE"
    discover: bool = True  # class style: name float arrays the object holds that look like undeclared parameters
    options: Any = field(default_factory=dict)  # style-specific settings (registry_styles)

    @functools.cached_property  # asked for several times per example
    def differentiable_inputs(self) -> tuple[TensorSpec, ...]:
        """Float inputs that are perturbed; a loss differentiates only its first input."""
        floats = tuple(t for t in self.inputs if t.differentiable)
        if self.style == "model":  # a whole model's inputs are its data: only its parameters are checked
            return ()
        if self.style == "loss-object":  # the argument its gradient() is taken with respect to
            return tuple(t for t in self.inputs if t.name == self.options.get("differentiate"))
        if self.style == "loss":
            return tuple(t for t in self.inputs[:1] if t.differentiable)
        return floats

    @functools.cached_property
    def batch_dim(self) -> str | None:
        """The dim that counts samples: declared, or the first dim of the first input."""
        if self.batch:
            return self.batch
        if self.inputs and self.inputs[0].shape:
            first = self.inputs[0].shape[0]
            if len(first.names) == 1 and first.source in first.names:
                return first.source
        return None


@dataclass(frozen=True)
class Options:
    """How to run checks; None means 'the layer's own setting, else the default'."""

    examples: int | None = None
    seed: int | None = None
    tolerances: Tolerances = field(default_factory=Tolerances)
    fail_fast: bool = False
    timeout: float | None = None
    config: str | None = None  # shown in the reproduce command
    # "full": every element; "fast": random directions, full check on any doubt; "auto": full up to
    # 4096 elements while the example's full checks fit a budget of forwards (see method_choice.FULL_MAX)
    mode: str = "auto"

    def resolved_seed(self) -> int:
        return self.seed if self.seed is not None else random.randrange(RANDOM_SEEDS)
