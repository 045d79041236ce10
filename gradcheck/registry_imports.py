"""Importing a layer's code as its `impl` names it, and finding the callables its style needs.

The callables found go in LayerSpec's own fields: a class (or a model's class or factory) in
`target`; a functional model's forward, backward and cost in `forward`, `backward` and `function`;
an elementwise pair's function and derivative in `function` and `backward`. Every mistake goes
through Problems, as `layers.yaml:LINE: what is wrong`.
"""

from __future__ import annotations

from typing import Any

from gradcheck import importing
from gradcheck.config_yaml import LineDict
from gradcheck.errors import UserImportError, suggest
from gradcheck.registry_values import Problems
from gradcheck.spec import DERIVATIVE_NAMES

CLASS_METHODS = ("forward", "backward")  # what style class calls on the object


def import_targets(problems: Problems, raw: LineDict, style: str) -> dict[str, Any] | None:
    """LayerSpec's callables for the layer's style; None after reporting a problem."""
    impl = str(raw["impl"])
    line = raw.line_of("impl")
    module_part, _, object_name = impl.partition(":")
    module = import_module(problems, module_part, line)
    if module is None:
        return None
    if style in ("model", "elementwise", "loss-object"):
        owner = lookup(problems, module, object_name, impl, line) if object_name else None
        if object_name and owner is None:
            return None
        return STYLE_TARGETS[style](problems, raw, module, owner, impl)
    if style == "class":
        return _class_targets(problems, raw, module, object_name, impl)
    if style == "functions":
        owner = lookup(problems, module, object_name, impl, line) if object_name else module
        found = {k: lookup(problems, owner, raw.get(k), impl, raw.line_of(k)) for k in CLASS_METHODS}
        return None if None in found.values() else found
    function_name = raw.get("function") or object_name
    if not function_name:
        problems.error(raw.line, "style loss needs 'function' (or impl as module:function)")
        return None
    function = lookup(problems, module, function_name, impl, raw.line_of("function"))
    return None if function is None else {"function": function}


def _class_targets(problems: Problems, raw: LineDict, module, object_name: str, impl: str) -> dict[str, Any] | None:
    line = raw.line_of("impl")
    if not object_name:
        problems.error(line, f"impl {impl!r}: name the class, as file.py:Class or package.module:Class")
        return None
    target = lookup(problems, module, object_name, impl, line)
    target = None if target is None else class_target(problems, raw, target)
    if target is None:
        return None
    for method in CLASS_METHODS:
        if not callable(getattr(target, method, None)):
            problems.error(
                line, f"impl {impl!r}: {object_name} has no {method}() method (style class needs forward and backward)"
            )
            return None
    return {"target": target}


def lookup(problems: Problems, owner: Any, name: Any, impl: str, line: int) -> Any:
    """The callable `name` on `owner` (a module or class); None after reporting what is missing."""
    if not isinstance(name, str) or not name:
        problems.error(line, f"expected the name of a function or class in {impl!r}, got {name!r}")
        return None
    if not hasattr(owner, name):
        public = [n for n in dir(owner) if not n.startswith("_")]
        where = impl.partition(":")[0] if owner is not None and not isinstance(owner, type) else impl
        problems.error(line, f"{where!r} has no {name!r}{suggest(name, public)}")
        return None
    value = getattr(owner, name)
    if not callable(value):
        problems.error(line, f"{name!r} in {impl!r} is not callable")
        return None
    return value


def import_module(problems: Problems, text: str, line: int):
    """The user's module (a file path or a dotted name, relative to the layers.yaml); None after an error."""
    try:
        return importing.import_user(text, problems.base)
    except UserImportError as exc:
        problems.error(line, str(exc))
    return None


def _no_method(problems: Problems, raw: LineDict, key: str, owner: Any, name: str, impl: str, why: str = "") -> None:
    """The one message for a method layers.yaml names (or gradcheck looked for) that the class lacks."""
    problems.error(raw.line_of(key), f"{impl!r} has no {name}() method{suggest(name, _public(owner))}{why}")


def _loss_object_targets(problems: Problems, raw, module, owner, impl: str) -> dict[str, Any] | None:
    if owner is None:
        problems.error(raw.line_of("impl"), f"impl {impl!r}: name the loss class, as file.py:Class")
        return None
    methods = {
        "loss": raw.get("loss", "loss"),
        "gradient": raw.get("gradient") or next((n for n in DERIVATIVE_NAMES if hasattr(owner, n)), None),
    }
    for key, name in methods.items():
        if name is None or not callable(getattr(owner, name, None)):
            _no_method(problems, raw, key, owner, name or "gradient", impl, f": name it with {key!r}")
            return None
    return {"target": owner}


def _model_targets(problems: Problems, raw, module, owner, impl: str) -> dict[str, Any] | None:
    if owner is not None:
        for key, default in (("loss", "loss"), ("gradient", None)):
            name = raw.get(key, default)
            if name is not None and isinstance(owner, type) and not callable(getattr(owner, name, None)):
                problems.error(
                    raw.line_of(key),
                    f"{impl!r}: the model has no {name}() method"
                    f"{suggest(name, _public(owner))} (set '{key}' to the method that "
                    f"returns the loss{'' if key == 'loss' else ' gradients'})",
                )
                return None
        return {"target": owner}
    found = {}
    for key, field in (
        ("function", "function"),
        ("forward", "forward"),
        ("cost", "function"),
        ("backward", "backward"),
    ):
        if key in raw:
            entry = raw[key]
            name = entry.get("function") if isinstance(entry, dict) else entry
            found[field] = lookup(problems, module, name, impl, raw.line_of(key))
    return None if None in found.values() else found


def _elementwise_targets(problems: Problems, raw, module, owner, impl: str) -> dict[str, Any] | None:
    if owner is None:
        found = {
            field: lookup(problems, module, raw.get(key), impl, raw.line_of(key))
            for key, field in (("function", "function"), ("derivative", "backward"))
        }
        return None if None in found.values() else found
    if isinstance(owner, type):
        derivative = raw.get("derivative") or next((n for n in DERIVATIVE_NAMES if hasattr(owner, n)), None)
        if derivative is None:
            problems.error(
                raw.line,
                f"{impl!r} has none of {', '.join(n + '()' for n in DERIVATIVE_NAMES)}: "
                "name its derivative method with 'derivative'",
            )
            return None
        for key, name in (("function", raw.get("function", "__call__")), ("derivative", derivative)):
            if not callable(getattr(owner, name, None)):
                _no_method(problems, raw, key, owner, name, impl)
                return None
    return {"target": owner}


STYLE_TARGETS = {"model": _model_targets, "elementwise": _elementwise_targets, "loss-object": _loss_object_targets}


def class_target(problems: Problems, raw: LineDict, target: Any) -> type | None:
    """What style class constructs: the class, a stand-in for a factory, methods renamed as layers.yaml says."""
    target = factory_shim(problems, raw, target)
    return None if target is None else renamed_methods(problems, raw, target)


def renamed_methods(problems: Problems, raw: LineDict, target: type) -> type | None:
    """Style class whose forward/backward go by other names (forward: forward_pass): a subclass that
    answers to forward and backward too; the class itself when no key renames them."""
    names = {key: raw[key] for key in CLASS_METHODS if key in raw}
    if not names:
        return target
    for key, name in names.items():
        if not isinstance(name, str) or not callable(getattr(target, name, None)):
            problems.error(
                raw.line_of(key), f"{target.__name__} has no method {name!r}{suggest(name, _public(target))}"
            )
            return None
    methods = {key: getattr(target, name) for key, name in names.items()}
    return type(
        target.__name__, (target,), {**methods, "__module__": target.__module__, "__qualname__": target.__qualname__}
    )


def factory_shim(problems: Problems, raw: LineDict, target: Any) -> Any:
    """A factory function as a class layer's impl (anything callable returning the layer object): a
    stand-in class whose construction returns what the factory returns; the class itself otherwise."""
    if isinstance(target, type):
        if "factory" in raw:
            problems.error(
                raw.line_of("factory"),
                f"factory: {target.__name__} is a class; 'factory' is for a function that returns the layer object",
            )
            return None
        return target
    if raw.get("factory") is not True:
        name = getattr(target, "__name__", str(target))
        problems.error(
            raw.line_of("impl"),
            f"impl {raw['impl']!r}: {name} has no forward() method (style class "
            "needs forward and backward); if it is a function that returns the layer "
            "object, add factory: true",
        )
        return None
    for key in CLASS_METHODS:
        if key in raw:
            problems.error(
                raw.line_of(key), f"{key!r}: renaming methods needs impl to be the class itself, not a factory function"
            )
            return None

    def build(cls, *args, **kwargs):
        return target(*args, **kwargs)

    def missing(self, *args, **kwargs):  # never called: construction returns the factory's object
        raise NotImplementedError

    name = getattr(target, "__name__", "factory")
    return type(name, (), {"__new__": build, "forward": missing, "backward": missing, "__module__": target.__module__})


def _public(owner) -> list[str]:
    return [n for n in dir(owner) if not n.startswith("_")]
