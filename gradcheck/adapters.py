"""Adapters give the layer styles one interface: prepare, forward, then backward.

There is one adapter per style (adapters_class, adapters_styles); the base class here handles the
keys any style may use, and the helpers every adapter calls user code and reads its returns with.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np

from gradcheck.adapters_copies import copied_args
from gradcheck.diagnosis import output_label, user_traceback
from gradcheck.expr import Expression
from gradcheck.results import Status
from gradcheck.spec import LayerArg, LayerSpec, Location, Ref

UPDATE_LEARNING_RATE = 2.0**-10  # exact in binary, so (p0 - p1) / lr loses nothing to the division


class LayerProblem(Exception):
    """The layer misbehaved (raised, wrong return, wrong shape): a verdict, not a crash."""

    def __init__(self, status: Status, message: str, tensor: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.tensor = tensor  # the input or parameter the problem is about, when there is one


@dataclass
class Gradients:
    """What backward produced: per differentiable input, per parameter, and the parameters after."""

    inputs: dict[str, Any]
    params: dict[str, Any]
    params_after: dict[str, Any]


def resolve(value: Any, env: dict[str, Any]) -> Any:
    """Replace every Ref in a nested structure by its drawn value (arrays copied)."""
    if isinstance(value, Ref):
        bound = env[value.name]
        return bound.copy() if isinstance(bound, np.ndarray) else bound
    if isinstance(value, dict):
        return {k: resolve(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, env) for v in value]
    if type(value) is tuple:  # !tuple in layers.yaml
        return tuple(resolve(v, env) for v in value)
    if isinstance(value, LayerArg):  # !layer in layers.yaml: a fresh object each time
        from gradcheck.adapters_styles import build_layer_arg

        return build_layer_arg(value, env)
    return value


def get_path(obj: Any, path: str) -> Any:
    """obj.a.b for the dotted path "a.b" (a location inside an object the layer holds); None if absent."""
    for attr in path.split("."):
        obj = getattr(obj, attr, None)
    return obj


def call_layer(what: str, function, *args, **kwargs):
    """Call user code; anything it raises becomes that layer's ERROR naming `what`."""
    try:
        return function(*args, **kwargs)  # numpy warnings are silenced for the whole example
    except LayerProblem:
        raise
    except Exception as exc:
        where, chain = user_traceback(exc)
        if where:  # the user's file and line first, then the last frames of their traceback
            raise LayerProblem(
                Status.ERROR, f"{where}: {what} raised {type(exc).__name__}: {exc} (traceback: {chain})"
            ) from exc
        raise LayerProblem(Status.ERROR, f"{what} raised {type(exc).__name__}: {exc}{_user_frame(exc)}") from exc


def _user_frame(exc: BaseException) -> str:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return ""
    code = tb.tb_frame.f_code
    return f" (at {code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno} in {code.co_name})"


class Adapter:
    """Base: runs one layer's forward and backward on given arrays, with the keys every style may use.

    Each style implements `_prepare`, `_forward` and `_backward` on the layer's own terms; the public
    `prepare`, `forward` and `backward` around them turn inputs declared `onehot` into one-hot rows,
    pass `pack`ed inputs as one list, cut forward's outputs to `grad_outputs`, make the `setup` calls
    after construction and collect the gradients a layer hands to gradcheck's optimizer.
    """

    takes_grad_outputs = False  # whether backward takes one upstream gradient per output (class, functions)

    def __init__(self, spec: LayerSpec):
        self.spec = spec
        self.args: dict[str, Any] = {}
        self.dtypes: set = set()  # float32/float16 dtypes forward returned (see normalise_outputs)
        self.unchecked: list[str] = []  # arrays on a class layer that look like undeclared parameters
        self.adopted: dict[str, np.ndarray] = {}  # undeclared parameters checked all the same: their drawn values
        options = spec.options
        self.grad_outputs = options.get("grad_outputs")
        self.onehot = [i for i, t in enumerate(spec.inputs) if t.name in options.get("onehot", ())]
        self.onehot_widths: dict[int, int] = {}
        self.output_count = 1
        packed = [i for i, t in enumerate(spec.inputs) if t.name in options.get("pack", ())]
        self.packed = (packed[0], len(packed)) if packed else None
        self.setup = options.get("setup")
        self.setup_env: dict[str, Any] = {}
        if self.setup:  # the style constructs through _construct, which makes the setup calls
            self._constructor = spec.target
            self.spec = replace(spec, target=self._construct)

    def prepare(self, env: dict[str, Any], seed: int) -> None:
        """Bind this example's drawn values (dims, arrays) before any forward."""
        if self.spec.grads.kind == "optimizer":
            env = {**env, "optimizer": recorder(self.spec.grads.target)}
        if self.setup:
            self.setup_env = env
        if self.onehot:
            for position in self.onehot:
                bounds = cast(tuple[Expression, Expression], self.spec.inputs[position].integers)  # onehot: integers
                self.onehot_widths[position] = int(bounds[1].evaluate(env)) + 1
            env = dict(env)
            env.update({self.spec.inputs[p].name: self._rows(p, env[self.spec.inputs[p].name]) for p in self.onehot})
        self._prepare(env, seed)

    def forward(self, inputs: list, params: dict[str, np.ndarray], seed: int) -> tuple[tuple, Any]:
        """Run forward; return (outputs, handle for backward)."""
        if self.onehot:
            inputs = [self._rows(i, x) if i in self.onehot_widths else x for i, x in enumerate(inputs)]
        if self.packed:  # the packed inputs go in as one list, where the first of them stands
            first, count = self.packed
            inputs = [*inputs[:first], list(inputs[first : first + count]), *inputs[first + count :]]
        outputs, handle = self._forward(inputs, params, seed)
        self.output_count = len(outputs)
        if self.grad_outputs is None:
            return outputs, handle
        if max(self.grad_outputs) >= len(outputs):
            raise LayerProblem(
                Status.ERROR,
                f"grad_outputs names output {max(self.grad_outputs)}, but forward returned {len(outputs)} output(s)",
            )
        return tuple(outputs[i] for i in self.grad_outputs), handle

    def backward(self, handle: Any, douts: list) -> Gradients:
        """Run backward on the handle forward returned."""
        try:
            grads = self._backward(handle, douts)
        except LayerProblem as problem:
            self._hint_grad_outputs(problem)
            raise
        if self.spec.grads.kind == "optimizer":
            grads.params.update(self._recorded(handle))
        return grads

    def _prepare(self, env: dict[str, Any], seed: int) -> None:
        self.args = resolve(self.spec.args, env)

    def _forward(self, inputs: list, params: dict[str, np.ndarray], seed: int) -> tuple[tuple, Any]:
        raise NotImplementedError

    def _backward(self, handle: Any, douts: list) -> Gradients:
        raise NotImplementedError

    def read(self, obj: Any, where: Location, position: int) -> Any:
        """The parameter (or gradient) at `position` on a layer object: only objects hold parameters."""
        raise NotImplementedError

    def _args(self) -> dict[str, Any]:
        return copied_args(self.args) if self.args else {}

    def _construct(self, *args, **kwargs) -> Any:
        """The layer object, constructed, then set up by the calls `setup` lists, in order."""
        obj = self._constructor(*args, **kwargs)
        for method, arguments in resolve(self.setup, self.setup_env).items():
            function = getattr(obj, method, None)
            if not callable(function):
                raise LayerProblem(Status.ERROR, f"setup: the layer has no method {method}()")
            if isinstance(arguments, dict):
                call_layer(f"setup: {method}()", function, **arguments)
            else:
                call_layer(f"setup: {method}()", function, *arguments)
        return obj

    def _rows(self, position: int, indices: np.ndarray) -> np.ndarray:
        return np.eye(self.onehot_widths[position])[np.asarray(indices, dtype=int)]

    def _hint_grad_outputs(self, problem: LayerProblem) -> None:
        """A backward given more upstream gradients than it takes: point to grad_outputs."""
        if not self.takes_grad_outputs or self.grad_outputs is not None or self.output_count <= 1:
            return
        if "positional argument" in problem.message:
            problem.message += (
                f" (forward returned {self.output_count} outputs, so backward was given "
                f"{self.output_count} upstream gradients; if some outputs carry no gradient (a "
                "carried state), list those backward takes with grad_outputs, e.g. grad_outputs: [0])"
            )
            problem.args = (problem.message,)

    def _recorded(self, layer: Any) -> dict[str, Any]:
        """The gradients the layer handed to gradcheck's optimizer, matched to parameters by identity."""
        given = [entry for value in vars(layer).values() if isinstance(value, GradientRecorder) for entry in value.log]
        found = {}
        for position, param in enumerate(self.spec.params):
            held = self.read(layer, self.spec.params_at, position)
            match = next((grad for array, grad in given if array is held), None)
            if match is None:
                raise LayerProblem(
                    Status.ERROR,
                    f"backward handed no gradient of {param.name!r} to the optimizer's "
                    f"{self.spec.grads.target}() ({len(given)} call(s) seen)",
                    param.name,
                )
            found[param.name] = match
        return found


class GradientRecorder:
    """gradcheck's optimizer: records each (parameter, gradient) it is given and returns the
    parameter unchanged. Copies (copy.copy, one per parameter) share the record."""

    def __init__(self):
        self.log: list[tuple[Any, Any]] = []

    def record(self, param, grad, *args, **kwargs):
        self.log.append((param, np.array(grad, dtype=np.float64)))
        return param


def recorder(method: str) -> GradientRecorder:
    """A GradientRecorder whose recording method has the name the layer calls (update, step...)."""
    cls = type("GradientRecorder", (GradientRecorder,), {method: GradientRecorder.record})
    return cls()


def reseed(seed: int) -> None:
    """Reset numpy's global random state so a layer drawing from np.random is repeatable."""
    np.random.seed(seed % 2**32)


def split_gradients(spec: LayerSpec, returned: Any, with_params: bool, who: str) -> tuple[dict, dict]:
    """Map what backward returned onto the differentiable inputs (and parameters)."""
    diff = [t.name for t in spec.differentiable_inputs]
    every = [t.name for t in spec.inputs]
    params = [p.name for p in spec.params] if with_params else []
    wanted = diff + params
    if returned is None:
        if not wanted:
            return {}, {}
        raise LayerProblem(Status.ERROR, f"{who} returned None; expected {_names(wanted)}")
    items = list(returned) if isinstance(returned, (tuple, list)) else [returned]
    if not wanted:
        return {}, {}
    if len(items) == len(wanted):
        names = wanted
    elif len(items) == len(every) + len(params):
        names = every + params
    else:
        raise LayerProblem(
            Status.ERROR,
            f"{who} returned {len(items)} value(s); expected {len(wanted)}: {_names(wanted)}",
        )
    got = dict(zip(names, items, strict=False))
    return {n: got[n] for n in diff}, {n: got[n] for n in params}


def _names(names: list[str]) -> str:
    return "(" + ", ".join("d" + n for n in names) + ")"


def adapter_for(spec: LayerSpec) -> Adapter:
    """The one adapter of a layer's style."""
    from gradcheck.adapters_class import ClassAdapter, FunctionsAdapter, LossAdapter  # they build on this module
    from gradcheck.adapters_styles import (
        ElementwiseAdapter,
        LossObjectAdapter,
        ModelFunctionsAdapter,
        ModelObjectAdapter,
    )

    if spec.style == "model":
        return ModelObjectAdapter(spec) if spec.options.get("kind") == "object" else ModelFunctionsAdapter(spec)
    by_style: dict[str, type[Adapter]] = {
        "class": ClassAdapter,
        "functions": FunctionsAdapter,
        "loss": LossAdapter,
        "elementwise": ElementwiseAdapter,
        "loss-object": LossObjectAdapter,
    }
    return by_style[spec.style](spec)


def normalise_outputs(out: Any, who: str, dtypes: set | None = None) -> tuple[np.ndarray, ...]:
    """Forward's output(s) as a tuple of float64 arrays, or a LayerProblem saying what was wrong.
    The dtypes of float32/float16 outputs (checked at that precision) are added to `dtypes`."""
    if type(out) is np.ndarray and out.dtype == np.float64:  # the common cases, first
        return (out,)
    if type(out) in (float, np.float64):  # a loss
        return (np.asarray(out, dtype=np.float64),)
    if isinstance(out, tuple) and not out:
        raise LayerProblem(
            Status.ERROR, f"{who} returned an empty tuple; expected an array (or a tuple of arrays, one per output)"
        )
    if type(out) is tuple and all(type(item) is np.ndarray and item.dtype == np.float64 for item in out):
        return out
    items = out if isinstance(out, tuple) else (out,)
    arrays = []
    for position, item in enumerate(items):
        label = f"{who} {output_label(position, len(items))}" if len(items) > 1 else f"{who}"
        if item is None:
            raise LayerProblem(Status.ERROR, f"{label} returned None; expected an array")
        try:
            array = np.asarray(item)
        except Exception:
            raise LayerProblem(Status.ERROR, f"{label} returned {_kind(item)}; expected an array") from None
        kind = array.dtype.kind
        if kind not in "fiu":
            raise LayerProblem(Status.ERROR, f"{label} returned {_kind(item)}; expected a float array")
        arrays.append(array.astype(np.float64, copy=False))
        if kind == "f" and array.dtype.itemsize < 8 and dtypes is not None:
            dtypes.add(array.dtype)
    return tuple(arrays)


def _kind(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    if isinstance(value, tuple):
        return f"a tuple of {len(value)}"
    return f"a {type(value).__name__}"
