"""Adapters give the layer styles one interface: forward, then backward."""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gradcheck.diagnosis import output_label, user_traceback
from gradcheck.results import Status
from gradcheck.spec import LayerArg, LayerSpec, Location, Ref, TensorSpec

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
            raise LayerProblem(Status.ERROR, f"{where}: {what} raised {type(exc).__name__}: {exc} (traceback: {chain})") from exc
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
    """Base: runs one layer's forward and backward on given arrays."""

    def __init__(self, spec: LayerSpec):
        self.spec = spec
        self.args: dict[str, Any] = {}
        self.dtypes: set = set()  # float32/float16 dtypes forward returned (see normalise_outputs)
        self.unchecked: list[str] = []  # arrays on a class layer that look like undeclared parameters
        self.adopted: dict[str, np.ndarray] = {}  # undeclared parameters checked all the same: their drawn values

    def prepare(self, env: dict[str, Any], seed: int) -> None:
        """Bind this example's drawn values (dims, arrays) before any forward."""
        self.args = resolve(self.spec.args, env)

    def forward(self, inputs: list, params: dict[str, np.ndarray], seed: int) -> tuple[tuple, Any]:
        """Run forward; return (outputs, handle for backward)."""
        raise NotImplementedError

    def backward(self, handle: Any, douts: list) -> Gradients:
        """Run backward on the handle forward returned."""
        raise NotImplementedError

    def _args(self) -> dict[str, Any]:
        return _copied_args(self.args) if self.args else {}


_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), np.generic)


def _copied_args(value: Any) -> Any:
    """A copy of forward's keyword arguments that it may change freely (cs231n's bn_param gets
    running means written into it): dicts, lists, tuples and arrays copied through, anything
    else immutable shared or deep-copied. Faster than copy.deepcopy on these small trees."""
    kind = type(value)
    if kind is dict:
        return {k: _copied_args(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return kind(_copied_args(v) for v in value)
    if kind is np.ndarray:
        return value.copy()
    return value if isinstance(value, _IMMUTABLE) else copy.deepcopy(value)


def fresh_copy(obj: Any, memo: dict[int, Any] | None = None) -> Any:
    """A deep copy of a layer object, fast for the common case of a plain __dict__ of arrays.

    Falls back to copy.deepcopy for anything that customises copying or pickling. Aliasing
    (self.params = [W] next to self.W = W) is kept: arrays are copied through the shared memo,
    which the caller may seed ({id(old): new}) to put new arrays in place of old ones.
    """
    memo = {} if memo is None else memo
    if not _plain(type(obj)):
        return copy.deepcopy(obj, memo)
    state = vars(obj)
    copied = {}
    for key, value in state.items():  # arrays first, so containers that hold them reuse the copies
        if type(value) is np.ndarray:
            if id(value) not in memo:
                memo[id(value)] = value.copy()
            copied[key] = memo[id(value)]
    for key, value in state.items():
        if key not in copied:
            copied[key] = value if isinstance(value, _IMMUTABLE) else copy.deepcopy(value, memo)
    new = object.__new__(type(obj))
    new.__dict__.update(copied)
    return new


def _copy_plan(obj: Any, held: dict[str, int]) -> tuple | None:
    """How to copy `obj` faster than fresh_copy when its __dict__ holds only arrays and immutable
    values: (class, state, [(key, parameter)], [keys of other arrays]): the parameters' keys get
    the evaluated arrays, other arrays a copy each, the rest is shared. None for anything else
    (containers, which may alias the arrays; arrays aliasing each other; custom copying)."""
    if not _plain(type(obj)):
        return None
    state = dict(vars(obj))
    names = {array_id: name for name, array_id in held.items()}
    params, arrays = [], []
    for key, value in state.items():
        if type(value) is np.ndarray and id(value) in names:
            params.append((key, names[id(value)]))
        elif type(value) is np.ndarray:
            arrays.append(key)
        elif not isinstance(value, _IMMUTABLE):
            return None
    if len({id(state[key]) for key in arrays}) < len(arrays):
        return None
    return type(obj), state, params, arrays


@functools.lru_cache(maxsize=None)
def _plain(cls: type) -> bool:
    """Whether instances of cls are copied faithfully by copying their __dict__."""
    return (
        getattr(cls, "__dictoffset__", 0) != 0 and cls.__new__ is object.__new__
        and not hasattr(cls, "__slots__") and not hasattr(cls, "__deepcopy__")
        and cls.__reduce_ex__ is object.__reduce_ex__ and cls.__reduce__ is object.__reduce__
        and cls.__getstate__ is object.__getstate__ and not hasattr(cls, "__setstate__")
    )


# Containers of parameters as the common styles name them, searched by discovery and `aliases`.
PARAM_CONTAINERS = ("params", "parameters")
# Arrays a layer holds that are state, not parameters (batch-norm's running statistics and the like).
NOT_PARAMS = ("running", "moving", "cache", "mask", "buffer", "grad")


def _float_arrays(obj: Any) -> list[tuple[str, np.ndarray]]:
    """(place, array) for every float ndarray held in one of obj's attributes, or in its
    `params`/`parameters` dict or list: where a layer keeps its parameters."""
    try:
        state = vars(obj)
    except TypeError:
        return []
    found = []
    for key, value in state.items():
        if type(value) is np.ndarray and value.dtype.kind == "f":
            found.append((f"self.{key}", value))
        elif key in PARAM_CONTAINERS and isinstance(value, (dict, list, tuple)):
            items = value.items() if isinstance(value, dict) else enumerate(value)
            found += [(f"self.{key}[{k!r}]", v) for k, v in items if type(v) is np.ndarray and v.dtype.kind == "f"]
    return found


def discover(obj: Any, spec: LayerSpec) -> list[tuple[str, np.ndarray]]:
    """Arrays on a freshly built class layer that look like parameters but are not declared: float
    arrays in its attributes and `params`/`parameters` containers, other than the declared
    parameters (`declared`: their ids, aliases included), their gradients (`d{name}`, the `grads`
    place, `grads`/`gradients` containers) and state such as running means. Each named once, by
    its first place. Run before any forward where possible, so that caches are not yet there."""
    arrays = _float_arrays(obj)
    names = {place.split("[")[0][5:] for place, _ in arrays}
    grads = {f"self.{spec.grads.target.format(name=p.name)}" for p in spec.params if spec.grads.kind == "attr"}
    seen, unchecked = set(), []
    for place, array in arrays:
        key = place[5:].split("[")[0]
        gradient = (key.startswith("d") and key[1:] in names) or place in grads
        if id(array) in seen or gradient or any(word in key.lower() for word in NOT_PARAMS) or array.size == 0:
            continue
        seen.add(id(array))
        unchecked.append((place, array))
    return unchecked


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
    got = dict(zip(names, items))
    return {n: got[n] for n in diff}, {n: got[n] for n in params}


def _names(names: list[str]) -> str:
    return "(" + ", ".join("d" + n for n in names) + ")"


class ClassAdapter(Adapter):
    """Style class: an object with forward/backward; parameters and gradients live on it."""

    def prepare(self, env: dict[str, Any], seed: int) -> None:
        super().prepare(env, seed)
        kwargs = resolve(self.spec.init, env)
        self.base = call_layer("the constructor", self.spec.target, **kwargs)
        candidates = discover(self.base, self.spec) if self.spec.discover else []  # before any forward: no caches yet
        self.adopted = self._adopt(candidates, seed)
        env = {**env, **self.adopted}
        if self.spec.params and any(self.read(self.base, self.spec.params_at, i) is None for i in range(len(self.spec.params))):
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
        self._plan = _copy_plan(self.base, self._held)

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
            name = place[len("self."):]
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
        self._plan = _copy_plan(self.base, self._held)

    def _hold(self, position: int, drawn: np.ndarray) -> np.ndarray:
        """Put the drawn values of parameter `position` where the layer reads them: into the array the
        object holds (`held[...] = drawn`), so that every alias of it (self.W next to self.params[0],
        a sub-layer's list) sees them, and copies of the object put the evaluated arrays in its
        place everywhere. A held value that is not a float array of the declared shape is replaced."""
        found = self.read(self.base, self.spec.params_at, position)
        if type(found) is np.ndarray and found.shape == drawn.shape and found.dtype.kind == "f" and found.flags.writeable:
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
        places = [place for place, array in _float_arrays(self.base) if array.shape == shape and id(array) not in held]
        found = []
        for place in places:
            obj = self._fresh(params)
            array = dict(_float_arrays(obj)).get(place)
            if array is None or not array.flags.writeable:
                continue
            array += 1.0 + np.abs(array)
            reseed(seed)
            try:
                moved = normalise_outputs(obj.forward(*[x.copy() for x in inputs], **self._args()), "forward")
            except Exception:
                continue
            if any(not np.array_equal(m, b) for m, b in zip(moved, base)):
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

    def forward(self, inputs, params, seed):
        try:
            obj = self._fresh(params)
        except Exception as exc:
            raise LayerProblem(
                Status.ERROR,
                f"the layer object cannot be deep-copied ({type(exc).__name__}: {exc}); gradcheck runs every "
                "evaluation on a fresh copy, so keep files, locks and sockets off the layer",
            ) from exc
        if self._plan is None and params and not _plain(type(obj)):  # a plain copy put them in; a custom one may not
            self._write_params(obj, params)
        reseed(seed)
        out = call_layer("forward", obj.forward, *inputs, **self._args())
        return normalise_outputs(out, "forward", self.dtypes), obj

    def _fresh(self, params: dict[str, np.ndarray]) -> Any:
        """A fresh copy of the layer object holding `params` (see fresh_copy and _copy_plan)."""
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

    def backward(self, handle, douts):
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

    def forward(self, inputs, params, seed):
        ordered = [params[p.name] for p in self.spec.params]
        reseed(seed)
        result = call_layer("forward", self.spec.forward, *inputs, *ordered, **self._args())
        if not isinstance(result, tuple) or len(result) < 2:
            raise LayerProblem(
                Status.ERROR,
                f"forward returned {_kind(result)}; expected a tuple (out, cache) or (out1, ..., cache)",
            )
        return normalise_outputs(result[:-1], "forward", self.dtypes), result[-1]

    def backward(self, handle, douts):
        returned = call_layer("backward", self.spec.backward, *douts, handle)
        inputs, params = split_gradients(self.spec, returned, with_params=True, who="backward")
        return Gradients(inputs, params, {})


class LossAdapter(Adapter):
    """Style loss: function(x, y, **args) -> (loss, dx); only the first input is differentiated."""

    def forward(self, inputs, params, seed):
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

    def backward(self, handle, douts):
        first = self.spec.differentiable_inputs[:1]
        if not first:
            return Gradients({}, {}, {})
        if handle is None:
            raise LayerProblem(Status.ERROR, f"the loss function returned dx = None; expected d{first[0].name}")
        return Gradients({first[0].name: handle}, {}, {})


ADAPTERS = {"class": ClassAdapter, "functions": FunctionsAdapter, "loss": LossAdapter}


def adapter_for(spec: LayerSpec) -> Adapter:
    """The adapter for a layer's style."""
    if spec.style not in ADAPTERS:  # model, elementwise: imported here, as they build on this module
        from gradcheck.adapters_styles import adapter_for_style

        return adapter_for_style(spec)
    if spec.style != "loss" or spec.options:  # one-hot inputs, outputs without gradient, hints: adapters_styles
        from gradcheck.adapters_styles import Selection

        return Selection(ADAPTERS[spec.style](spec))
    return ADAPTERS[spec.style](spec)


def normalise_outputs(out: Any, who: str, dtypes: set | None = None) -> tuple[np.ndarray, ...]:
    """Forward's output(s) as a tuple of float64 arrays, or a LayerProblem saying what was wrong.
    The dtypes of float32/float16 outputs (checked at that precision) are added to `dtypes`."""
    if type(out) is np.ndarray and out.dtype == np.float64:  # the common cases, first
        return (out,)
    if type(out) in (float, np.float64):  # a loss
        return (np.asarray(out, dtype=np.float64),)
    if isinstance(out, tuple) and not out:
        raise LayerProblem(Status.ERROR, f"{who} returned an empty tuple; expected an array (or a tuple of arrays, one per output)")
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
