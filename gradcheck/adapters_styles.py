"""Adapters for the styles real code comes in beyond the original three, behind the same interface.

A model is one scalar-valued function of its parameters: its loss on drawn data (regularisation
and all). Its gradients come back as a dict, named after the parameters by a template (W1 is
grads["W1"] or grads["dW1"]). An elementwise pair (fn, its derivative) is checked as the layer
out = fn(z) whose backward is dout * fn'(z), or dout contracted with the Jacobian when the
derivative returns one per row (softmax). A loss object is loss(y, y_pred) with gradient(y, y_pred).
`Selection` wraps any adapter for the keys every style may use: one-hot and packed inputs, outputs
without gradient, setup calls after construction, and gradients handed to an optimizer.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from gradcheck.adapters import (
    Adapter, ClassAdapter, Gradients, LayerProblem, _kind, _plain, call_layer, normalise_outputs, reseed, resolve,
)
from gradcheck.results import Status
from gradcheck.spec import DERIVATIVE_NAMES, LayerArg, LayerSpec


def adapter_for_style(spec: LayerSpec) -> Adapter:
    """The adapter of a model, elementwise or loss-object layer."""
    if spec.style == "elementwise":
        adapter = ElementwiseAdapter(spec)
    elif spec.style == "loss-object":
        adapter = LossObjectAdapter(spec)
    elif spec.options.get("kind") == "object":
        adapter = ModelObjectAdapter(spec)
    else:
        adapter = ModelFunctionsAdapter(spec)
    return Selection(adapter) if spec.options.get("onehot") or spec.options.get("pack") else adapter


class Selection(Adapter):
    """Wraps another adapter: inputs declared `onehot` go in as one-hot rows, forward's outputs are
    cut to `grad_outputs` (the others carry no gradient), and a backward that takes fewer upstream
    gradients than forward has outputs gets a hint toward grad_outputs."""

    def __init__(self, inner: Adapter):
        self.inner = inner
        self.positions = self.spec.options.get("grad_outputs")
        self.onehot = [i for i, t in enumerate(self.spec.inputs) if t.name in self.spec.options.get("onehot", ())]
        self.widths: dict[int, int] = {}
        self.outputs = 1
        packed = [i for i, t in enumerate(self.spec.inputs) if t.name in self.spec.options.get("pack", ())]
        self.packed = (packed[0], len(packed)) if packed else None
        self.setup = self.spec.options.get("setup")
        if self.setup:  # the adapter constructs through _build, which makes the setup calls
            self._target, self.env = self.spec.target, {}
            inner.spec = replace(inner.spec, target=self._build)

    def _build(self, *args, **kwargs) -> Any:
        """The layer object, constructed, then set up by the calls `setup` lists, in order."""
        obj = self._target(*args, **kwargs)
        for method, arguments in resolve(self.setup, self.env).items():
            function = getattr(obj, method, None)
            if not callable(function):
                raise LayerProblem(Status.ERROR, f"setup: the layer has no method {method}()")
            if isinstance(arguments, dict):
                call_layer(f"setup: {method}()", function, **arguments)
            else:
                call_layer(f"setup: {method}()", function, *arguments)
        return obj

    @property
    def spec(self) -> LayerSpec:  # the wrapped adapter's: it adds the undeclared parameters it finds
        return self.inner.spec

    def __getattr__(self, name: str) -> Any:  # read(), args...: the wrapped adapter's
        if name == "inner":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def prepare(self, env: dict[str, Any], seed: int) -> None:
        if self.spec.grads.kind == "optimizer":
            env = {**env, "optimizer": recorder(self.spec.grads.target)}
        if self.setup:
            self.env = env
        if self.onehot:
            for position in self.onehot:
                tensor = self.spec.inputs[position]
                self.widths[position] = int(tensor.integers[1].evaluate(env)) + 1
            env = dict(env)
            env.update({self.spec.inputs[p].name: self._rows(p, env[self.spec.inputs[p].name]) for p in self.onehot})
        self.inner.prepare(env, seed)

    def _rows(self, position: int, indices: np.ndarray) -> np.ndarray:
        return np.eye(self.widths[position])[np.asarray(indices, dtype=int)]

    def forward(self, inputs, params, seed):
        if self.onehot:
            inputs = [self._rows(i, x) if i in self.widths else x for i, x in enumerate(inputs)]
        if self.packed:  # the packed inputs go in as one list, where the first of them stands
            first, count = self.packed
            inputs = [*inputs[:first], list(inputs[first:first + count]), *inputs[first + count:]]
        outputs, handle = self.inner.forward(inputs, params, seed)
        self.outputs = len(outputs)
        if self.positions is None:
            return outputs, handle
        if max(self.positions) >= len(outputs):
            raise LayerProblem(Status.ERROR, f"grad_outputs names output {max(self.positions)}, but forward returned "
                                             f"{len(outputs)} output(s)")
        return tuple(outputs[i] for i in self.positions), handle

    def backward(self, handle, douts):
        try:
            grads = self.inner.backward(handle, douts)
        except LayerProblem as problem:
            if self.positions is None and self.outputs > 1 and "positional argument" in problem.message:
                problem.message += (f" (forward returned {self.outputs} outputs, so backward was given {self.outputs} "
                                    "upstream gradients; if some outputs carry no gradient (a carried state), list "
                                    "those backward takes with grad_outputs, e.g. grad_outputs: [0])")
                problem.args = (problem.message,)
            raise
        if self.spec.grads.kind == "optimizer":
            grads.params.update(self._recorded(handle))
        return grads

    def _recorded(self, layer: Any) -> dict[str, Any]:
        """The gradients the layer handed to gradcheck's optimizer, matched to parameters by identity."""
        given = [entry for value in vars(layer).values() if isinstance(value, GradientRecorder) for entry in value.log]
        found = {}
        for position, param in enumerate(self.spec.params):
            held = self.inner.read(layer, self.spec.params_at, position)
            match = next((grad for array, grad in given if array is held), None)
            if match is None:
                raise LayerProblem(Status.ERROR, f"backward handed no gradient of {param.name!r} to the optimizer's "
                                                 f"{self.spec.grads.target}() ({len(given)} call(s) seen)", param.name)
            found[param.name] = match
        return found


def scalar_loss(value: Any, who: str) -> tuple[np.ndarray]:
    """A model's loss as a 0-d float64 array, or an ERROR saying what came back instead."""
    out = normalise_outputs(value, who)
    if len(out) != 1 or out[0].size != 1:
        raise LayerProblem(Status.ERROR, f"{who} returned {_kind(value)}; expected the loss, a scalar")
    return (out[0].reshape(()),)


def named_gradients(spec: LayerSpec, grads: Any, upstream: Any, who: str) -> dict[str, Any]:
    """Each declared parameter's gradient, found in `grads` by the grad_names template, times the upstream 1."""
    if not hasattr(grads, "keys"):
        raise LayerProblem(Status.ERROR, f"{who} gave {_kind(grads)} for the gradients; expected a dict such as "
                                         "{'W1': dW1, ...}")
    template, found = spec.options.get("grad_names", "auto"), {}
    for param in spec.params:
        tried = ["d" + param.name, param.name] if template == "auto" else [template.format(name=param.name)]
        key = next((k for k in tried if k in grads), None)
        if key is None:
            have = ", ".join(repr(k) for k in list(grads.keys())[:8])
            raise LayerProblem(Status.ERROR, f"{who} gave no gradient for parameter {param.name!r} (looked for "
                                             f"{' and '.join(map(repr, tried))}; it has {have}): set grad_names, "
                                             "e.g. grad_names: d{name}", param.name)
        value = grads[key]
        found[param.name] = value if value is None else np.multiply(value, upstream)
    return found


class ModelObjectAdapter(ClassAdapter):
    """A model object: `model.loss(X, y) -> (loss, grads)` (cs231n), or `loss` and `gradient` methods
    (DLFS's net.loss(x, t) and net.gradient(x, t)); parameters in `model.params` unless params_at says."""

    def __init__(self, spec: LayerSpec):
        super().__init__(replace(spec, params_at=spec.options.get("params_at") or spec.params_at))
        self.loss_name, self.gradient_name = spec.options["loss"], spec.options.get("gradient")

    def prepare(self, env: dict[str, Any], seed: int) -> None:
        self.args = resolve(self.spec.args, env)
        base = call_layer("the model's constructor", self.spec.target, **resolve(self.spec.init, env))
        for position, param in enumerate(self.spec.params):
            found = self.read(base, self.spec.params_at, position)
            place = self.spec.params_at.describe(param.name, position)
            if found is None:
                raise LayerProblem(Status.ERROR, f"the model holds no parameter {param.name!r} at {place}: "
                                                 "set params_at (e.g. dict:params) or rename it in params")
            if np.shape(found) != env[param.name].shape:
                raise LayerProblem(Status.ERROR, f"the model holds {place} with shape {np.shape(found)}, but "
                                                 f"layers.yaml declares {param.name} with shape {env[param.name].shape}")
        self.base = base
        held = {p.name: env[p.name].copy() for p in self.spec.params}
        self._write_params(base, held)
        self._held = {name: id(array) for name, array in held.items()}
        self._plan = None  # a dict of parameters: fresh_copy puts the evaluated arrays in through its memo

    def forward(self, inputs, params, seed):
        model = self._fresh(params)
        if not _plain(type(model)):
            self._write_params(model, params)
        reseed(seed)
        who = f"model.{self.loss_name}()"
        result = call_layer(who, getattr(model, self.loss_name), *inputs, **self._args())
        if self.gradient_name:
            return scalar_loss(result, who), (model, None, inputs, seed)
        if not isinstance(result, tuple) or len(result) != 2:
            raise LayerProblem(Status.ERROR, f"{who} returned {_kind(result)}; expected (loss, grads), or set "
                                             "'gradient' to the method that returns the gradients")
        return scalar_loss(result[0], who), (model, result[1], inputs, seed)

    def backward(self, handle, douts):
        model, grads, inputs, seed = handle
        who = f"model.{self.loss_name}()"
        if grads is None:
            who = f"model.{self.gradient_name}()"
            reseed(seed)  # the same dropout masks as the loss it differentiates
            grads = call_layer(who, getattr(model, self.gradient_name), *inputs, **self._args())
        return Gradients({}, named_gradients(self.spec, grads, douts[0], who), {})


class ModelFunctionsAdapter(Adapter):
    """A functional model: forward(X, params) -> (out, cache), cost(out, Y) -> loss,
    backward(params, cache, X, Y) -> {"dW1": ...} (argument lists as layers.yaml says), or one
    function(X, Y, params) -> (loss, grads)."""

    def forward(self, inputs, params, seed):
        env = {t.name: x for t, x in zip(self.spec.inputs, inputs)}
        env["params"] = {p.name: params[p.name] for p in self.spec.params}  # the caller's arrays: changes are seen
        hyper = self._args()
        env.update({k: v for k, v in hyper.items() if k not in env})
        keywords = {k: hyper[k] for k in self.spec.options["keywords"]}
        reseed(seed)
        options = self.spec.options
        if options["kind"] == "function":
            result = self._step(self.spec.function, options["function"], env, "the model function", keywords)
            if not isinstance(result, tuple) or len(result) != 2:
                raise LayerProblem(Status.ERROR, f"the model function returned {_kind(result)}; expected (loss, grads)")
            return scalar_loss(result[0], "the model function"), (env, result[1])
        out = self._step(self.spec.forward, options["forward"], env, "forward", keywords)
        env["out"], env["cache"] = out if isinstance(out, tuple) and len(out) == 2 else (out, None)
        loss = self._step(self.spec.function, options["cost"], env, "cost", {})
        return scalar_loss(loss, "cost"), (env, None)

    def backward(self, handle, douts):
        env, grads = handle
        who = "the model function"
        if grads is None:
            who = "backward"
            grads = self._step(self.spec.backward, self.spec.options["backward"], env, who, {})
        return Gradients({}, named_gradients(self.spec, grads, douts[0], who), {})

    @staticmethod
    def _step(function, step: tuple[str, tuple[str, ...]], env: dict[str, Any], who: str, kwargs: dict) -> Any:
        _, names = step
        return call_layer(who, function, *(env[n] for n in names), **kwargs)


class ElementwiseAdapter(Adapter):
    """fn(z) checked against its derivative: dz = dout * f'(z), or dout @ J per row when f' returns a Jacobian."""

    def prepare(self, env: dict[str, Any], seed: int) -> None:
        super().prepare(env, seed)
        options = self.spec.options
        if self.spec.target is None:
            self.function, self.derivative = self.spec.function, self.spec.backward
            return
        obj = call_layer("the constructor", self.spec.target, **resolve(self.spec.init, env))
        derivative = options.get("derivative") or next(n for n in DERIVATIVE_NAMES if hasattr(obj, n))
        self.function, self.derivative = getattr(obj, options["function"]), getattr(obj, derivative)

    def forward(self, inputs, params, seed):
        reseed(seed)
        out = call_layer("the function", self.function, inputs[0], **self._args())
        outputs = normalise_outputs(out, "the function")
        return outputs, (inputs[0], outputs[0])

    def backward(self, handle, douts):
        z, out = handle
        point = z if self.spec.options["derivative_of"] == "input" else out.copy()
        slope = np.asarray(call_layer("the derivative", self.derivative, point, **self._args()))
        dout, name = douts[0], self.spec.inputs[0].name
        if slope.shape == z.shape:
            return Gradients({name: dout * slope}, {}, {})
        if z.ndim and slope.shape == z.shape + z.shape[-1:]:  # J[..., i, j] = d out_i / d z_j
            return Gradients({name: np.einsum("...i,...ij->...j", dout, slope)}, {}, {})
        raise LayerProblem(Status.ERROR, f"the derivative returned shape {slope.shape}; expected {z.shape} "
                                         f"(f'(z), elementwise) or {z.shape + z.shape[-1:]} (each row's Jacobian)", name)


class LossObjectAdapter(Adapter):
    """A loss object: loss(y, y_pred) (a scalar, or one value per element reduced by `reduction`) and
    gradient(y, y_pred), the gradient of that scalar with respect to the `differentiate` argument."""

    def prepare(self, env: dict[str, Any], seed: int) -> None:
        super().prepare(env, seed)
        obj = call_layer("the constructor", self.spec.target, **resolve(self.spec.init, env))
        options = self.spec.options
        gradient = options.get("gradient") or next(n for n in DERIVATIVE_NAMES if hasattr(obj, n))
        self.loss, self.gradient = getattr(obj, options["loss"]), getattr(obj, gradient)

    def forward(self, inputs, params, seed):
        reseed(seed)
        value = normalise_outputs(call_layer("loss()", self.loss, *inputs, **self._args()), "loss()")[0]
        reduction = self.spec.options["reduction"]
        if reduction == "none" and value.size != 1:
            raise LayerProblem(Status.ERROR, f"loss() returned shape {value.shape}; expected a scalar (or say how "
                                             "its values add up: reduction: sum or mean)")
        total = value.mean() if reduction == "mean" else value.sum()
        return (np.asarray(total, dtype=np.float64),), inputs

    def backward(self, handle, douts):
        name = self.spec.options["differentiate"]
        slope = call_layer("gradient()", self.gradient, *handle, **self._args())
        if slope is None:
            raise LayerProblem(Status.ERROR, f"gradient() returned None; expected d{name}", name)
        return Gradients({name: np.multiply(slope, douts[0])}, {}, {})


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


def build_layer_arg(arg: LayerArg, env: dict[str, Any]) -> Any:
    """A `!layer` argument's object, freshly built: its constructor, then its setup calls in order."""
    who = f"the constructor of !layer {arg.impl}"
    layer = call_layer(who, arg.target, **resolve(arg.init or {}, env))
    for method, arguments in (arg.setup or {}).items():
        bound = getattr(layer, method, None)
        if not callable(bound):
            raise LayerProblem(Status.ERROR, f"!layer {arg.impl} has no {method}() method (named in its setup)")
        values = resolve(arguments, env)
        args, kwargs = (values, {}) if isinstance(values, list) else ([], values)
        call_layer(f"!layer {arg.impl}: {method}()", bound, *args, **kwargs)
    return layer
