"""Reading the keys of the model and elementwise styles, and of renamed class methods, from layers.yaml.

The registry calls in here; every mistake goes through the reader's `error`, so it is reported as
`layers.yaml:LINE: what is wrong` like any other. The callables found are stored in LayerSpec's
own fields: a model's class or factory in `target`; a functional model's forward, backward and
cost in `forward`, `backward` and `function`; an elementwise pair's function and derivative in
`function` and `backward`. Names and argument lists go in `options`.
"""

from __future__ import annotations

from typing import Any

from gradcheck.spec import DERIVATIVE_NAMES, LayerArg, Location

STYLE_KEYS = {
    "model": ("init", "params", "params_at", "loss", "gradient", "grad_names", "forward", "cost", "backward",
              "function"),
    "elementwise": ("init", "function", "derivative", "derivative_of"),
    "loss-object": ("init", "loss", "gradient", "differentiate", "reduction"),
}
REDUCTIONS = ("sum", "mean", "none")  # how a loss object's value becomes the scalar its gradient is of
MODEL_OBJECT_KEYS = ("init", "params_at", "loss", "gradient")
MODEL_FUNCTION_KEYS = ("forward", "cost", "backward", "function")
STEP_NAMES = ("params", "out", "cache")  # what a functional model's steps may be handed besides inputs


def read_options(reader, raw, style: str, inputs, params) -> dict[str, Any]:
    """The style-specific settings of one layer, and the keys any style may use (onehot, grad_outputs)."""
    options = {}
    if style == "model":
        options = _model_options(reader, raw, inputs, params)
    elif style == "elementwise":
        options = _elementwise_options(reader, raw, inputs, params)
    elif style == "loss-object":
        options = _loss_object_options(reader, raw, inputs)
    if "onehot" in raw:
        options["onehot"] = _onehot(reader, raw, inputs)
    if "pack" in raw:
        options["pack"] = _pack(reader, raw, inputs)
    if "grad_outputs" in raw:
        options["grad_outputs"] = _grad_outputs(reader, raw)
    if "setup" in raw:
        options["setup"] = _setup(reader, raw, inputs, params)
    grads = str(raw.get("grads", ""))
    if grads.startswith("optimizer:") and "$optimizer" not in str(raw.get("setup", "")):
        reader.error(raw.line_of("grads"), "grads: optimizer:METHOD needs the layer to be handed gradcheck's "
                                           "optimizer: pass $optimizer in setup, e.g. setup: {initialize: [$optimizer]}")
    return options


def _setup(reader, raw, inputs, params) -> dict[str, Any]:
    """Methods called, in order, after construction and before the first forward:
    {set_input_shape: [[$D]], initialize: {optimizer: ...}}: a list is positional, a mapping keywords."""
    dims = raw.get("dims") if isinstance(raw.get("dims"), dict) else {}
    recorder = {"optimizer"} if str(raw.get("grads", "")).startswith("optimizer:") else set()
    calls = reader.read_refs(raw, "setup", set(dims) | {t.name for t in inputs + params} | recorder)
    for method, arguments in calls.items():
        if not str(method).isidentifier() or not isinstance(arguments, (list, dict)):
            reader.error(raw.line_of("setup"), f"setup: {method!r} must map a method name to a list of positional "
                                               f"arguments or a mapping of keyword arguments, got {arguments!r}")
    return calls


def _onehot(reader, raw, inputs) -> tuple[str, ...]:
    """Inputs drawn as class indices (integers: [0, C - 1]) and passed as one-hot rows of width C."""
    names = raw["onehot"]
    names = [names] if isinstance(names, str) else names
    integers = [t.name for t in inputs if t.kind == "integers"]
    if not isinstance(names, list) or not names:
        reader.error(raw.line_of("onehot"), f"'onehot' must list inputs declared with integers: [0, C - 1], got {names!r}")
        return ()
    for name in names:
        if name not in integers:
            reader.error(raw.line_of("onehot"), f"onehot: {name!r} is not an input declared with integers: [0, C - 1]"
                                                f"{_suggest(name, integers)}")
    return tuple(n for n in names if n in integers)


def _pack(reader, raw, inputs) -> tuple[str, ...]:
    """Inputs passed together as one Python list argument (numpy-ml's Add.forward([X1, X2]))."""
    names, known = raw["pack"], [t.name for t in inputs]
    if not isinstance(names, list) or len(names) < 2:
        reader.error(raw.line_of("pack"), f"'pack' must list two or more inputs passed as one list, got {names!r}")
        return ()
    for name in names:
        if name not in known:
            reader.error(raw.line_of("pack"), f"pack: {name!r} is not an input{_suggest(name, known)}")
    positions = [known.index(n) for n in names if n in known]
    if positions and positions != list(range(positions[0], positions[0] + len(positions))):
        reader.error(raw.line_of("pack"), "pack: the packed inputs must be written next to each other, in order, "
                                          "in 'inputs'")
    return tuple(names)


def _grad_outputs(reader, raw) -> tuple[int, ...]:
    """Positions of forward's outputs that backward takes gradients for; the others are not part of L."""
    value = raw["grad_outputs"]
    ok = isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                   for v in value) and len(set(value)) == len(value)
    if not ok:
        reader.error(raw.line_of("grad_outputs"), "'grad_outputs' must list distinct positions of forward's outputs "
                                                  f"(0 is the first), e.g. [0], got {value!r}")
        return ()
    return tuple(value)


def _loss_object_options(reader, raw, inputs) -> dict[str, Any]:
    floats = [t.name for t in inputs if t.differentiable]
    default = floats[-1] if floats else None  # loss(y, y_pred): the prediction comes last
    differentiate = raw.get("differentiate", default)
    if differentiate not in floats:
        reader.error(raw.line_of("differentiate"), f"'differentiate' must name a float input (the one gradient() is "
                                                   f"taken with respect to), got {differentiate!r}"
                                                   f"{_suggest(differentiate, floats)}")
    reduction = raw.get("reduction", "sum")
    if reduction not in REDUCTIONS:
        reader.error(raw.line_of("reduction"), f"'reduction' must be one of {', '.join(REDUCTIONS)} (how the loss's "
                                               f"values add up to the scalar its gradient is of), got {reduction!r}"
                                               f"{_suggest(reduction, REDUCTIONS)}")
    return {"differentiate": differentiate, "reduction": reduction, "loss": _method_name(reader, raw, "loss", "loss"),
            "gradient": _method_name(reader, raw, "gradient", None)}


def _is_object(raw) -> bool:
    return ":" in str(raw.get("impl", ""))


def _model_options(reader, raw, inputs, params) -> dict[str, Any]:
    if not params:
        reader.error(raw.line, "a model needs 'params': the parameter arrays its loss depends on, e.g. "
                               "{W1: [D, H], b1: [H]}")
    options = {"grad_names": _grad_names(reader, raw)}
    if _is_object(raw):
        for key in MODEL_FUNCTION_KEYS:
            if key in raw:
                reader.error(raw.line_of(key), f"{key!r} belongs to a functional model (impl: file.py, no :Object); "
                                               f"for a model object, name its methods with 'loss' and 'gradient'")
        options["kind"] = "object"
        options["loss"] = _method_name(reader, raw, "loss", "loss")
        options["gradient"] = _method_name(reader, raw, "gradient", None)
        options["params_at"] = None if "params_at" in raw else Location("dict", "params")  # else the layer's own
        return options
    for key in MODEL_OBJECT_KEYS:
        if key in raw:
            reader.error(raw.line_of(key), f"{key!r} belongs to a model object (impl: file.py:Class); a functional "
                                           "model takes forward, cost and backward (or one function)")
    names = [t.name for t in inputs]
    hyper = list(raw["args"]) if isinstance(raw.get("args"), dict) else []  # a step may name them too
    if "function" in raw:
        options["kind"] = "function"
        options["function"] = _step(reader, raw, "function", names + ["params"], names + ["params"] + hyper)
        return _keywords(options, hyper)
    missing = [key for key in ("forward", "cost", "backward") if key not in raw]
    if missing:
        reader.error(raw.line, f"a functional model needs forward, cost and backward (missing {', '.join(missing)}), "
                               "or one 'function' returning (loss, grads)")
        return options
    options["kind"] = "functions"
    options["forward"] = _step(reader, raw, "forward", names[:1] + ["params"], names + ["params"] + hyper)
    options["cost"] = _step(reader, raw, "cost", ["out"] + names[1:], names + list(STEP_NAMES) + hyper)
    options["backward"] = _step(reader, raw, "backward", ["params", "cache"] + names,
                                names + list(STEP_NAMES) + hyper)
    return _keywords(options, hyper)


def _keywords(options: dict[str, Any], hyper: list[str]) -> dict[str, Any]:
    """The `args` no step names: passed by keyword to the first step (forward, or the one function)."""
    named = {n for key in ("function", "forward", "cost", "backward") if key in options for n in options[key][1]}
    options["keywords"] = tuple(k for k in hyper if k not in named)
    return options


def _grad_names(reader, raw) -> str:
    template = raw.get("grad_names", "auto")
    if template == "auto":
        return template
    ok = isinstance(template, str) and "{name}" in template
    if ok:
        try:
            template.format(name="x")
        except (KeyError, IndexError, ValueError):
            ok = False
    if not ok:
        reader.error(raw.line_of("grad_names"), f"'grad_names' must be a template using {{name}} (e.g. d{{name}}: "
                                                f"grads['dW1'] for W1) or auto, got {template!r}")
    return template if ok else "auto"


def _method_name(reader, raw, key: str, default: str | None) -> str | None:
    value = raw.get(key, default)
    if value is not None and (not isinstance(value, str) or not value.isidentifier()):
        reader.error(raw.line_of(key), f"{key!r} must name a method, got {value!r}")
        return default
    return value


def _step(reader, raw, key: str, default: list[str], allowed: list[str]) -> tuple[str | None, tuple[str, ...]]:
    """A functional model's step: `NAME` (default arguments) or `{function: NAME, args: [..]}`."""
    entry, line = raw[key], raw.line_of(key)
    if isinstance(entry, str):
        return entry, tuple(default)
    if not isinstance(entry, dict) or set(entry) - {"function", "args"} or "function" not in entry:
        reader.error(line, f"{key!r} must be a function name or {{function: NAME, args: [{', '.join(default)}]}}, "
                           f"got {entry!r}")
        return None, tuple(default)
    args = entry.get("args", default)
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        reader.error(line, f"{key}: 'args' must be a list of names, e.g. [{', '.join(default)}]")
        return entry["function"], tuple(default)
    for name in args:
        if name not in allowed:
            reader.error(line, f"{key}: argument {name!r} is neither an input nor one of "
                               f"{', '.join(n for n in allowed if n not in raw.get('inputs', {}))}{_suggest(name, allowed)}")
    return entry["function"], tuple(args)


def _elementwise_options(reader, raw, inputs, params) -> dict[str, Any]:
    if len(inputs) != 1 or not inputs[0].differentiable:
        reader.error(raw.line_of("inputs"), "an elementwise function takes exactly one float input, e.g. {z: [N, D]}")
    if params:
        reader.error(raw.line_of("params"), "an elementwise function has no parameters (use style class)")
    of = raw.get("derivative_of", "input")
    if of not in ("input", "output"):
        reader.error(raw.line_of("derivative_of"), f"'derivative_of' must be input or output, got {of!r}")
    if not _is_object(raw) and not {"function", "derivative"} <= set(raw):
        reader.error(raw.line, "elementwise functions in a module need 'function' and 'derivative' "
                               "(e.g. function: sigmoid, derivative: sigmoid_grad)")
    return {"derivative_of": of, "function": _method_name(reader, raw, "function", "__call__"),
            "derivative": _method_name(reader, raw, "derivative", None)}


def construct_tuple(loader, node) -> tuple:
    """`!tuple [C, H, W]` in layers.yaml: a Python tuple, for code that adds shapes (`(N,) + shape`)."""
    import yaml  # here: the rest of this module needs no YAML

    if not isinstance(node, yaml.SequenceNode):
        raise yaml.constructor.ConstructorError(None, None, "!tuple must tag a list, e.g. !tuple [2, 2]",
                                                node.start_mark)
    return tuple(loader.construct_object(child, deep=True) for child in node.value)


LAYER_ARG_KEYS = ("impl", "init", "setup")  # of a `!layer {...}` argument


class LayerNode:
    """A `!layer {impl: ..., init: ...}` mapping as read from YAML, before the registry checks it."""

    def __init__(self, raw):
        self.raw = raw

    def __repr__(self) -> str:  # as a message shows one written where no layer object belongs
        return f"!layer {dict(self.raw)!r}"


def construct_layer(loader, node) -> LayerNode:
    """`!layer {impl: file.py:Class, init: {...}}` in layers.yaml: another layer object as an argument."""
    import yaml  # here: the rest of this module needs no YAML

    if not isinstance(node, yaml.MappingNode):
        raise yaml.constructor.ConstructorError(None, None, "!layer must tag a mapping, e.g. "
                                                "!layer {impl: layers.py:Dense, init: {n_out: 4}}", node.start_mark)
    plain = yaml.MappingNode(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, node.value, node.start_mark,
                             node.end_mark, node.flow_style)
    return LayerNode(loader.construct_object(plain, deep=True))


def read_layer_arg(reader, raw, key: str, names: set[str]) -> LayerArg:
    """A `!layer` argument checked like a layer's own keys: its class imported, its `$` references
    and setup calls read; built afresh for each example (gradcheck's resolve)."""
    for unknown in [k for k in raw if k not in LAYER_ARG_KEYS]:
        reader.error(raw.line_of(unknown), f"{key}: unknown key {unknown!r} in !layer (expected "
                                           f"{', '.join(LAYER_ARG_KEYS)}){_suggest(unknown, LAYER_ARG_KEYS)}")
    init = reader.read_refs(raw, "init", names) if "init" in raw else {}
    setup = reader.read_refs(raw, "setup", names) if "setup" in raw else {}
    for method, arguments in setup.items():
        if not str(method).isidentifier() or not isinstance(arguments, (list, dict)):
            reader.error(raw.line_of("setup"), f"!layer setup: {method!r} must map a method name to a list of "
                                               f"positional arguments or a mapping of keyword arguments")
    impl, line = str(raw.get("impl", "")), raw.line_of("impl") if "impl" in raw else raw.line
    module_part, _, object_name = impl.partition(":")
    if not object_name:
        reader.error(line, f"{key}: !layer needs impl: file.py:Class (the class, or a function returning "
                           f"the layer object), got {raw.get('impl')!r}")
        return LayerArg(impl, None, init, setup)
    module = reader.import_module(module_part, line)
    target = None if module is None else reader.lookup(module, object_name, impl, line)
    return LayerArg(impl, target, init, setup)


def check_path(reader, raw, key: str, kind: str, target: str) -> None:
    """A dotted location (dict:_base_layer.parameters) must be a path of attribute names."""
    if kind in ("update", "optimizer") or "." not in target:
        return
    path = target.replace("{name}", "x") if kind == "attr" else target
    if not all(part.isidentifier() for part in path.split(".")):
        reader.error(raw.line_of(key), f"{key!r}: {target!r} is not a dotted path of attribute names "
                                       f"(e.g. {kind}:_base_layer.{'{name}' if kind == 'attr' else 'parameters'})")


# -- imports --------------------------------------------------------------------------------
def import_targets(reader, raw, style: str, module, object_name: str) -> dict[str, Any] | None:
    """LayerSpec's callables for a model or elementwise layer; None after reporting a problem."""
    impl, line = str(raw["impl"]), raw.line_of("impl")
    owner = reader.lookup(module, object_name, impl, line) if object_name else None
    if object_name and owner is None:
        return None
    if style == "model":
        return _model_targets(reader, raw, module, owner, impl)
    if style == "loss-object":
        return _loss_object_targets(reader, raw, owner, impl)
    return _elementwise_targets(reader, raw, module, owner, impl)


def _loss_object_targets(reader, raw, owner, impl: str) -> dict[str, Any] | None:
    if owner is None:
        reader.error(raw.line_of("impl"), f"impl {impl!r}: name the loss class, as file.py:Class")
        return None
    methods = {"loss": raw.get("loss", "loss"),
               "gradient": raw.get("gradient") or next((n for n in DERIVATIVE_NAMES if hasattr(owner, n)), None)}
    for key, name in methods.items():
        if name is None or not callable(getattr(owner, name, None)):
            reader.error(raw.line_of(key), f"{impl!r} has no {name or 'gradient'}() method"
                                           f"{_suggest(name or 'gradient', _public(owner))}: name it with {key!r}")
            return None
    return {"target": owner}


def _model_targets(reader, raw, module, owner, impl: str) -> dict[str, Any] | None:
    if owner is not None:
        for key, default in (("loss", "loss"), ("gradient", None)):
            name = raw.get(key, default)
            if name is not None and isinstance(owner, type) and not callable(getattr(owner, name, None)):
                reader.error(raw.line_of(key), f"{impl!r}: the model has no {name}() method{_suggest(name, _public(owner))}"
                                               f" (set '{key}' to the method that returns the loss"
                                               f"{'' if key == 'loss' else ' gradients'})")
                return None
        return {"target": owner}
    found = {}
    for key, field in (("function", "function"), ("forward", "forward"), ("cost", "function"), ("backward", "backward")):
        if key in raw:
            entry = raw[key]
            name = entry.get("function") if isinstance(entry, dict) else entry
            found[field] = reader.lookup(module, name, impl, raw.line_of(key))
    return None if None in found.values() else found


def _elementwise_targets(reader, raw, module, owner, impl: str) -> dict[str, Any] | None:
    if owner is None:
        found = {field: reader.lookup(module, raw.get(key), impl, raw.line_of(key))
                 for key, field in (("function", "function"), ("derivative", "backward"))}
        return None if None in found.values() else found
    if isinstance(owner, type):
        derivative = raw.get("derivative") or next((n for n in DERIVATIVE_NAMES if hasattr(owner, n)), None)
        if derivative is None:
            reader.error(raw.line, f"{impl!r} has none of {', '.join(n + '()' for n in DERIVATIVE_NAMES)}: "
                                   "name its derivative method with 'derivative'")
            return None
        for key, name in (("function", raw.get("function", "__call__")), ("derivative", derivative)):
            if not callable(getattr(owner, name, None)):
                reader.error(raw.line_of(key), f"{impl!r} has no {name}() method{_suggest(name, _public(owner))}")
                return None
    return {"target": owner}


def class_target(reader, raw, target: Any) -> type | None:
    """What style class constructs: the class, a stand-in for a factory, methods renamed as layers.yaml says."""
    target = factory_shim(reader, raw, target)
    return None if target is None else renamed_methods(reader, raw, target)


def renamed_methods(reader, raw, target: type) -> type | None:
    """Style class whose forward/backward go by other names (forward: forward_pass): a subclass that
    answers to forward and backward too; the class itself when no key renames them."""
    names = {key: raw[key] for key in ("forward", "backward") if key in raw}
    if not names:
        return target
    for key, name in names.items():
        if not isinstance(name, str) or not callable(getattr(target, name, None)):
            reader.error(raw.line_of(key), f"{target.__name__} has no method {name!r}{_suggest(name, _public(target))}")
            return None
    methods = {key: getattr(target, name) for key, name in names.items()}
    renamed = type(target.__name__, (target,), {**methods, "__module__": target.__module__,
                                                 "__qualname__": target.__qualname__})
    return renamed


def factory_shim(reader, raw, target: Any) -> Any:
    """A factory function as a class layer's impl (anything callable returning the layer object): a
    stand-in class whose construction returns what the factory returns; the class itself otherwise."""
    if isinstance(target, type):
        if "factory" in raw:
            reader.error(raw.line_of("factory"), f"factory: {target.__name__} is a class; 'factory' is for a function "
                                                 "that returns the layer object")
            return None
        return target
    if raw.get("factory") is not True:
        name = getattr(target, "__name__", str(target))
        reader.error(raw.line_of("impl"), f"impl {raw['impl']!r}: {name} has no forward() method (style class needs "
                                          "forward and backward); if it is a function that returns the layer object, "
                                          "add factory: true")
        return None
    for key in ("forward", "backward"):
        if key in raw:
            reader.error(raw.line_of(key), f"{key!r}: renaming methods needs impl to be the class itself, "
                                           f"not a factory function")
            return None

    def build(cls, *args, **kwargs):
        return target(*args, **kwargs)

    def missing(self, *args, **kwargs):  # never called: construction returns the factory's object
        raise NotImplementedError

    name = getattr(target, "__name__", "factory")
    return type(name, (), {"__new__": build, "forward": missing, "backward": missing, "__module__": target.__module__})


def _public(owner) -> list[str]:
    return [n for n in dir(owner) if not n.startswith("_")]


def _suggest(name, choices) -> str:
    from gradcheck.errors import suggest

    return suggest(name, choices)
