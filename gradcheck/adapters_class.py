"""The three original layer styles: an object with forward/backward (class), a forward/backward pair
of functions (functions), and a loss function returning (loss, dx) (loss)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from gradcheck.adapters import (
    UPDATE_LEARNING_RATE,
    Adapter,
    Gradients,
    LayerProblem,
    _kind,
    call_layer,
    get_path,
    normalise_outputs,
    reseed,
    resolve,
    split_gradients,
)
from gradcheck.adapters_copies import copy_plan, discover, float_arrays, fresh_copy, is_plain
from gradcheck.results import Status
from gradcheck.spec import Location, TensorSpec


class ClassAdapter(Adapter):
    """Style class: an object with forward/backward; parameters and gradients live on it."""

    takes_grad_outputs = True

    def _prepare(self, env: dict[str, Any], seed: int) -> None:
        super()._prepare(env, seed)
        kwargs = resolve(self.spec.init, env)
        self.base = call_layer("the constructor", self.spec.target, **kwargs)
        candidates = discover(self.base, self.spec) if self.spec.discover else []  # before any forward: no caches yet
        self.adopted = self._adopt(candidates, seed)
        env = {**env, **self.adopted}
        if self.spec.params and any(
            self.read(self.base, self.spec.params_at, i) is None for i in range(len(self.spec.params))
        ):
            # numpy-ml style: parameters are created on the first forward
            inputs = [env[t.name].copy() for t in self.spec.inputs]
            reseed(seed)
            call_layer("forward (creating parameters)", self.base.forward, *inputs, **self._args())
        for position, param in enumerate(self.spec.params):
            found = self.read(self.base, self.spec.params_at, position)
            place = self.spec.params_at.describe(param.name, position)
            if found is None:
                raise LayerProblem(Status.ERROR, f"parameter {param.name!r} not found at {place} (set params_at)")
            drawn = env[param.name]
            if np.shape(found) != drawn.shape:
                raise LayerProblem(
                    Status.ERROR,
                    f"the layer holds {place} with shape {np.shape(found)}, but layers.yaml declares "
                    f"{param.name} with shape {drawn.shape}",
                )
        held = {p.name: self._hold(position, env[p.name]) for position, p in enumerate(self.spec.params)}
        self.unchecked = [place for place, array in candidates if not any(array is h for h in held.values())]
        self._held = {name: id(array) for name, array in held.items()}  # copies put the evaluated params in their place
        self._plan = copy_plan(self.base, self._held)

    def read(self, obj: Any, where: Location, position: int) -> Any:
        """The parameter (or gradient) at `position` where `where` says it lives on `obj`; None if absent."""
        name = self.spec.params[position].name
        try:
            if where.kind == "attr":
                return get_path(obj, where.target.format(name=name))
            container = get_path(obj, where.target)
            if container is None:
                return None
            return container[name] if where.kind == "dict" else container[position]
        except (KeyError, IndexError, TypeError):
            return None

    def _adopt(self, candidates: list[tuple[str, np.ndarray]], seed: int) -> dict[str, np.ndarray]:
        """Undeclared parameters gradcheck checks itself: plain attributes (self.W) of a layer whose
        parameters and gradients sit at the default places (self.{name}, self.d{name}). Each gets
        standard-normal values, drawn from the example's seed, and joins the spec's parameters."""
        if (self.spec.params_at, self.spec.grads) != (Location("attr", "{name}"), Location("attr", "d{name}")):
            return {}
        taken = {t.name for t in self.spec.inputs} | {p.name for p in self.spec.params}
        rng = np.random.default_rng([seed % 2**32, 14])
        adopted = {}
        for place, array in candidates:
            name = place[len("self.") :]
            if name.isidentifier() and name not in taken:
                adopted[name] = rng.standard_normal(array.shape)
        if adopted:
            self.spec = replace(self.spec, params=self.spec.params + tuple(TensorSpec(n, ()) for n in adopted))
        return adopted

    def drop(self, names: list[str]) -> None:
        """Stop treating found arrays as parameters (forward changed them: state, not parameters)."""
        for name in names:
            del self.adopted[name], self._held[name]
        self.spec = replace(self.spec, params=tuple(p for p in self.spec.params if p.name not in names))
        self._plan = copy_plan(self.base, self._held)

    def _hold(self, position: int, drawn: np.ndarray) -> np.ndarray:
        """Put the drawn values of parameter `position` where the layer reads them: into the array the
        object holds (`held[...] = drawn`), so that every alias of it (self.W next to self.params[0],
        a sub-layer's list) sees them, and copies of the object put the evaluated arrays in its
        place everywhere. A held value that is not a float array of the declared shape is replaced."""
        found = self.read(self.base, self.spec.params_at, position)
        if (
            type(found) is np.ndarray
            and found.shape == drawn.shape
            and found.dtype.kind == "f"
            and found.flags.writeable
        ):
            found[...] = drawn  # (rounded, if float32: copies of the object get the float64 values)
            return found
        held = drawn.copy()
        self._write_params(self.base, {self.spec.params[position].name: held})
        return held

    def read_elsewhere(self, position: int, inputs: list, params: dict, seed: int, base: tuple) -> list[str]:
        """Other places on the layer object holding a float array of parameter `position`'s shape,
        not a declared parameter, whose large move changes forward's outputs (`base` at the drawn
        point): where a layer that keeps a copy of the parameter, or reassigns it rather than
        updating it in place, reads it instead of the array gradcheck moves."""
        shape = np.shape(self.read(self.base, self.spec.params_at, position))
        held = set(self._held.values())
        places = [place for place, array in float_arrays(self.base) if array.shape == shape and id(array) not in held]
        found = []
        for place in places:
            obj = self._fresh(params)
            array = dict(float_arrays(obj)).get(place)
            if array is None or not array.flags.writeable:
                continue
            array += 1.0 + np.abs(array)
            reseed(seed)
            try:
                moved = normalise_outputs(obj.forward(*[x.copy() for x in inputs], **self._args()), "forward")
            except Exception:
                continue
            if any(not np.array_equal(m, b) for m, b in zip(moved, base, strict=False)):
                found.append(place)
        return found

    def _write_params(self, obj: Any, params: dict[str, np.ndarray]) -> None:
        where = self.spec.params_at
        for position, param in enumerate(self.spec.params):
            if param.name not in params:
                continue
            value = params[param.name]
            if where.kind == "attr":
                owner, _, attr = where.target.format(name=param.name).rpartition(".")
                setattr(get_path(obj, owner) if owner else obj, attr, value)
            else:
                get_path(obj, where.target)[param.name if where.kind == "dict" else position] = value

    def _forward(self, inputs, params, seed):
        try:
            obj = self._fresh(params)
        except Exception as exc:
            raise LayerProblem(
                Status.ERROR,
                f"the layer object cannot be deep-copied ({type(exc).__name__}: {exc}); gradcheck runs every "
                "evaluation on a fresh copy, so keep files, locks and sockets off the layer",
            ) from exc
        if self._plan is None and params and not is_plain(type(obj)):  # a plain copy put them in; a custom one may not
            self._write_params(obj, params)
        reseed(seed)
        out = call_layer("forward", obj.forward, *inputs, **self._args())
        return normalise_outputs(out, "forward", self.dtypes), obj

    def _fresh(self, params: dict[str, np.ndarray]) -> Any:
        """A fresh copy of the layer object holding `params` (see fresh_copy and copy_plan)."""
        if self._plan is None:
            return fresh_copy(self.base, {self._held[name]: array for name, array in params.items()})
        cls, state, held, arrays = self._plan
        new = object.__new__(cls)
        copied = new.__dict__
        copied.update(state)
        for key, name in held:
            copied[key] = params[name]
        for key in arrays:
            copied[key] = state[key].copy()
        return new

    def _backward(self, handle, douts):
        kwargs = {}
        if self.spec.grads.kind == "update":
            kwargs[self.spec.grads.target] = UPDATE_LEARNING_RATE
        returned = call_layer("backward", handle.backward, *douts, **kwargs)
        returned_params: dict[str, Any] = {}
        if self._returns_param_grads(returned):  # `return dx, dW, db`: take them where none was stored
            inputs, returned_params = split_gradients(self.spec, returned, with_params=True, who="backward")
        else:
            inputs, _ = split_gradients(self.spec, returned, with_params=False, who="backward")
        after = {p.name: self.read(handle, self.spec.params_at, i) for i, p in enumerate(self.spec.params)}
        if self.spec.grads.kind == "update":
            grads = {}
        else:
            grads = {p.name: self.read(handle, self.spec.grads, i) for i, p in enumerate(self.spec.params)}
            grads = {name: returned_params.get(name) if value is None else value for name, value in grads.items()}
        return Gradients(inputs, grads, after)

    def _returns_param_grads(self, returned: Any) -> bool:
        """Whether backward returned one gradient per differentiable input and then one per parameter."""
        if not self.spec.params or not isinstance(returned, (tuple, list)):
            return False
        wanted = len(self.spec.differentiable_inputs) + len(self.spec.params)
        return len(returned) == wanted and wanted != len(self.spec.inputs)


class FunctionsAdapter(Adapter):
    """Style functions: forward(*inputs, *params, **args) -> (out..., cache); backward(dout..., cache)."""

    takes_grad_outputs = True

    def _forward(self, inputs, params, seed):
        ordered = [params[p.name] for p in self.spec.params]
        reseed(seed)
        result = call_layer("forward", self.spec.forward, *inputs, *ordered, **self._args())
        if not isinstance(result, tuple) or len(result) < 2:
            raise LayerProblem(
                Status.ERROR,
                f"forward returned {_kind(result)}; expected a tuple (out, cache) or (out1, ..., cache)",
            )
        return normalise_outputs(result[:-1], "forward", self.dtypes), result[-1]

    def _backward(self, handle, douts):
        returned = call_layer("backward", self.spec.backward, *douts, handle)
        inputs, params = split_gradients(self.spec, returned, with_params=True, who="backward")
        return Gradients(inputs, params, {})


class LossAdapter(Adapter):
    """Style loss: function(x, y, **args) -> (loss, dx); only the first input is differentiated."""

    def _forward(self, inputs, params, seed):
        reseed(seed)
        result = call_layer("the loss function", self.spec.function, *inputs, **self._args())
        if not isinstance(result, tuple) or len(result) != 2:
            raise LayerProblem(Status.ERROR, f"the loss function returned {_kind(result)}; expected (loss, dx)")
        outputs = normalise_outputs(result[0], "the loss function", self.dtypes)
        if outputs[0].shape not in ((), (1,)):
            raise LayerProblem(
                Status.ERROR, f"the loss function returned a loss of shape {outputs[0].shape}; expected a scalar"
            )
        return (outputs[0].reshape(()),), result[1]

    def _backward(self, handle, douts):
        first = self.spec.differentiable_inputs[:1]
        if not first:
            return Gradients({}, {}, {})
        if handle is None:
            raise LayerProblem(Status.ERROR, f"the loss function returned dx = None; expected d{first[0].name}")
        return Gradients({first[0].name: handle}, {}, {})
