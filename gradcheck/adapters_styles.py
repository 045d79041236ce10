"""Adapters for the styles real code comes in beyond the original three, behind the same interface.

A model is one scalar-valued function of its parameters: its loss on drawn data (regularisation
and all). Its gradients come back as a dict, named after the parameters by a template (W1 is
grads["W1"] or grads["dW1"]). An elementwise pair (fn, its derivative) is checked as the layer
out = fn(z) whose backward is dout * fn'(z), or dout contracted with the Jacobian when the
derivative returns one per row (softmax). A loss object is loss(y, y_pred) with gradient(y, y_pred).
The keys every style may use (one-hot and packed inputs, outputs without gradient) are handled by
the base Adapter.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from gradcheck.adapters import Adapter, Gradients, LayerProblem, _kind, call_layer, normalise_outputs, reseed, resolve
from gradcheck.adapters_class import ClassAdapter
from gradcheck.adapters_copies import is_plain
from gradcheck.results import Status
from gradcheck.spec import DERIVATIVE_NAMES, LayerArg, LayerSpec


def scalar_loss(value: Any, who: str) -> tuple[np.ndarray]:
    """A model's loss as a 0-d float64 array, or an ERROR saying what came back instead."""
    out = normalise_outputs(value, who)
    if len(out) != 1 or out[0].size != 1:
        raise LayerProblem(Status.ERROR, f"{who} returned {_kind(value)}; expected the loss, a scalar")
    return (out[0].reshape(()),)


def named_gradients(spec: LayerSpec, grads: Any, upstream: Any, who: str) -> dict[str, Any]:
    """Each declared parameter's gradient, found in `grads` by the grad_names template, times the upstream 1."""
    if not hasattr(grads, "keys"):
        raise LayerProblem(
            Status.ERROR, f"{who} gave {_kind(grads)} for the gradients; expected a dict such as {{'W1': dW1, ...}}"
        )
    template, found = spec.options.get("grad_names", "auto"), {}
    for param in spec.params:
        tried = ["d" + param.name, param.name] if template == "auto" else [template.format(name=param.name)]
        key = next((k for k in tried if k in grads), None)
        if key is None:
            have = ", ".join(repr(k) for k in list(grads.keys())[:8])
            raise LayerProblem(
                Status.ERROR,
                f"{who} gave no gradient for parameter {param.name!r} (looked for "
                f"{' and '.join(map(repr, tried))}; it has {have}): set grad_names, "
                "e.g. grad_names: d{name}",
                param.name,
            )
        value = grads[key]
        found[param.name] = value if value is None else np.multiply(value, upstream)
    return found


class ModelObjectAdapter(ClassAdapter):
    """A model object: `model.loss(X, y) -> (loss, grads)` (cs231n), or `loss` and `gradient` methods
    (DLFS's net.loss(x, t) and net.gradient(x, t)); parameters in `model.params` unless params_at says."""

    def __init__(self, spec: LayerSpec):
        super().__init__(replace(spec, params_at=spec.options.get("params_at") or spec.params_at))
        self.loss_name, self.gradient_name = spec.options["loss"], spec.options.get("gradient")

    def _prepare(self, env: dict[str, Any], seed: int) -> None:
        self.args = resolve(self.spec.args, env)
        base = call_layer("the model's constructor", self.spec.target, **resolve(self.spec.init, env))
        for position, param in enumerate(self.spec.params):
            found = self.read(base, self.spec.params_at, position)
            place = self.spec.params_at.describe(param.name, position)
            if found is None:
                raise LayerProblem(
                    Status.ERROR,
                    f"the model holds no parameter {param.name!r} at {place}: "
                    "set params_at (e.g. dict:params) or rename it in params",
                )
            if np.shape(found) != env[param.name].shape:
                raise LayerProblem(
                    Status.ERROR,
                    f"the model holds {place} with shape {np.shape(found)}, but "
                    f"layers.yaml declares {param.name} with shape {env[param.name].shape}",
                )
        self.base = base
        held = {p.name: env[p.name].copy() for p in self.spec.params}
        self._write_params(base, held)
        self._held = {name: id(array) for name, array in held.items()}
        self._plan = None  # a dict of parameters: fresh_copy puts the evaluated arrays in through its memo

    def _forward(self, inputs, params, seed):
        model = self._fresh(params)
        if not is_plain(type(model)):
            self._write_params(model, params)
        reseed(seed)
        who = f"model.{self.loss_name}()"
        result = call_layer(who, getattr(model, self.loss_name), *inputs, **self._args())
        if self.gradient_name:
            return scalar_loss(result, who), (model, None, inputs, seed)
        if not isinstance(result, tuple) or len(result) != 2:
            raise LayerProblem(
                Status.ERROR,
                f"{who} returned {_kind(result)}; expected (loss, grads), or set "
                "'gradient' to the method that returns the gradients",
            )
        return scalar_loss(result[0], who), (model, result[1], inputs, seed)

    def _backward(self, handle, douts):
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

    def _forward(self, inputs, params, seed):
        env = {t.name: x for t, x in zip(self.spec.inputs, inputs, strict=False)}
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

    def _backward(self, handle, douts):
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

    def _prepare(self, env: dict[str, Any], seed: int) -> None:
        super()._prepare(env, seed)
        options = self.spec.options
        if self.spec.target is None:
            self.function, self.derivative = self.spec.function, self.spec.backward
            return
        obj = call_layer("the constructor", self.spec.target, **resolve(self.spec.init, env))
        derivative = options.get("derivative") or next(n for n in DERIVATIVE_NAMES if hasattr(obj, n))
        self.function, self.derivative = getattr(obj, options["function"]), getattr(obj, derivative)

    def _forward(self, inputs, params, seed):
        reseed(seed)
        out = call_layer("the function", self.function, inputs[0], **self._args())
        outputs = normalise_outputs(out, "the function")
        return outputs, (inputs[0], outputs[0])

    def _backward(self, handle, douts):
        z, out = handle
        point = z if self.spec.options["derivative_of"] == "input" else out.copy()
        slope = np.asarray(call_layer("the derivative", self.derivative, point, **self._args()))
        dout, name = douts[0], self.spec.inputs[0].name
        if slope.shape == z.shape:
            return Gradients({name: dout * slope}, {}, {})
        if z.ndim and slope.shape == z.shape + z.shape[-1:]:  # J[..., i, j] = d out_i / d z_j
            return Gradients({name: np.einsum("...i,...ij->...j", dout, slope)}, {}, {})
        raise LayerProblem(
            Status.ERROR,
            f"the derivative returned shape {slope.shape}; expected {z.shape} "
            f"(f'(z), elementwise) or {z.shape + z.shape[-1:]} (each row's Jacobian)",
            name,
        )


class LossObjectAdapter(Adapter):
    """A loss object: loss(y, y_pred) (a scalar, or one value per element reduced by `reduction`) and
    gradient(y, y_pred), the gradient of that scalar with respect to the `differentiate` argument."""

    def _prepare(self, env: dict[str, Any], seed: int) -> None:
        super()._prepare(env, seed)
        obj = call_layer("the constructor", self.spec.target, **resolve(self.spec.init, env))
        options = self.spec.options
        gradient = options.get("gradient") or next(n for n in DERIVATIVE_NAMES if hasattr(obj, n))
        self.loss, self.gradient = getattr(obj, options["loss"]), getattr(obj, gradient)

    def _forward(self, inputs, params, seed):
        reseed(seed)
        value = normalise_outputs(call_layer("loss()", self.loss, *inputs, **self._args()), "loss()")[0]
        reduction = self.spec.options["reduction"]
        if reduction == "none" and value.size != 1:
            raise LayerProblem(
                Status.ERROR,
                f"loss() returned shape {value.shape}; expected a scalar (or say how "
                "its values add up: reduction: sum or mean)",
            )
        total = value.mean() if reduction == "mean" else value.sum()
        return (np.asarray(total, dtype=np.float64),), inputs

    def _backward(self, handle, douts):
        name = self.spec.options["differentiate"]
        slope = call_layer("gradient()", self.gradient, *handle, **self._args())
        if slope is None:
            raise LayerProblem(Status.ERROR, f"gradient() returned None; expected d{name}", name)
        return Gradients({name: np.multiply(slope, douts[0])}, {}, {})


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
