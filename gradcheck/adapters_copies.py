"""Copies of layer objects and the float arrays they hold: how each evaluation gets a fresh layer,
and where undeclared parameters are found."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from gradcheck.spec import LayerSpec

_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), np.generic)


def copied_args(value: Any) -> Any:
    """A copy of forward's keyword arguments that it may change freely (cs231n's bn_param gets
    running means written into it): dicts, lists, tuples and arrays copied through, anything
    else immutable shared or deep-copied. Faster than copy.deepcopy on these small trees."""
    kind = type(value)
    if kind is dict:
        return {k: copied_args(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return kind(copied_args(v) for v in value)
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
    if not is_plain(type(obj)):
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


def copy_plan(obj: Any, held: dict[str, int]) -> tuple | None:
    """How to copy `obj` faster than fresh_copy when its __dict__ holds only arrays and immutable
    values: (class, state, [(key, parameter)], [keys of other arrays]): the parameters' keys get
    the evaluated arrays, other arrays a copy each, the rest is shared. None for anything else
    (containers, which may alias the arrays; arrays aliasing each other; custom copying)."""
    if not is_plain(type(obj)):
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


_PLAIN: dict[type, bool] = {}  # asked for on every copy: answered once per class


def is_plain(cls: type) -> bool:
    """Whether instances of cls are copied faithfully by copying their __dict__."""
    known = _PLAIN.get(cls)
    if known is None:
        known = _PLAIN[cls] = (
            getattr(cls, "__dictoffset__", 0) != 0
            and cls.__new__ is object.__new__
            and not hasattr(cls, "__slots__")
            and not hasattr(cls, "__deepcopy__")
            and cls.__reduce_ex__ is object.__reduce_ex__
            and cls.__reduce__ is object.__reduce__
            and cls.__getstate__ is object.__getstate__
            and not hasattr(cls, "__setstate__")
        )
    return known


# Containers of parameters as the common styles name them, searched by discovery and `aliases`.
PARAM_CONTAINERS = ("params", "parameters")
# Arrays a layer holds that are state, not parameters (batch-norm's running statistics and the like).
NOT_PARAMS = ("running", "moving", "cache", "mask", "buffer", "grad")


def float_arrays(obj: Any) -> list[tuple[str, np.ndarray]]:
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
    arrays = float_arrays(obj)
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
