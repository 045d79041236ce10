"""Reading the keys of the model, elementwise and loss-object styles, and the keys any style may use.

Each function here checks one key (the table in registry_keys names it) or reads one style's keys
in order; every mistake is reported as `layers.yaml:LINE: what is wrong`. The names and argument
lists read go in LayerSpec's `options`; the callables are found later, in registry_imports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gradcheck import registry_values
from gradcheck.errors import suggest
from gradcheck.registry_imports import import_module, lookup
from gradcheck.registry_values import Problems
from gradcheck.spec import LayerArg, Location

if TYPE_CHECKING:
    from gradcheck.registry_keys import Entry

REDUCTIONS = ("sum", "mean", "none")  # how a loss object's value becomes the scalar its gradient is of
MODEL_OBJECT_KEYS = ("init", "params_at", "loss", "gradient")
MODEL_FUNCTION_KEYS = ("forward", "cost", "backward", "function")
MODEL_STEPS = MODEL_FUNCTION_KEYS  # a functional model's steps, each a key of its own
STEP_NAMES = ("params", "out", "cache")  # what a functional model's steps may be handed besides inputs
SHARED_OPTIONS = ("onehot", "pack", "grad_outputs", "setup")  # keys any style may use, read when present
LAYER_ARG_KEYS = ("impl", "init", "setup")  # of a `!layer {...}` argument
SETUP_FORM = "must map a method name to a list of positional arguments or a mapping of keyword arguments"


def read_options(entry: Entry) -> dict[str, Any]:
    """The style-specific settings of one layer, and the keys any style may use (onehot, grad_outputs...)."""
    style_options = STYLE_OPTIONS.get(entry.style)
    options = style_options(entry) if style_options else {}
    for key in SHARED_OPTIONS:
        if key in entry.raw:
            options[key] = entry.read(key)
    grads = str(entry.raw.get("grads", ""))
    if grads.startswith("optimizer:") and "$optimizer" not in str(entry.raw.get("setup", "")):
        entry.error(
            "grads",
            "grads: optimizer:METHOD needs the layer to be handed gradcheck's optimizer: pass "
            "$optimizer in setup, e.g. setup: {initialize: [$optimizer]}",
        )
    return options


def setup(entry: Entry) -> dict[str, Any]:
    """Methods called, in order, after construction and before the first forward:
    {set_input_shape: [[$D]], initialize: {optimizer: ...}}: a list is positional, a mapping keywords."""
    raw = entry.raw
    written_dims = raw.get("dims")
    dims = written_dims if isinstance(written_dims, dict) else {}
    recorder = {"optimizer"} if str(raw.get("grads", "")).startswith("optimizer:") else set()
    tensors = set(entry.names("inputs") + entry.names("params"))
    calls = registry_values.refs(entry.problems, raw, "setup", set(dims) | tensors | recorder)
    for method, arguments in calls.items():
        if not str(method).isidentifier() or not isinstance(arguments, (list, dict)):
            entry.error("setup", f"setup: {method!r} {SETUP_FORM}, got {arguments!r}")
    return calls


def onehot(entry: Entry) -> tuple[str, ...]:
    """Inputs drawn as class indices (integers: [0, C - 1]) and passed as one-hot rows of width C."""
    names = entry.raw["onehot"]
    names = [names] if isinstance(names, str) else names
    integers = [t.name for t in entry.values["inputs"] if t.kind == "integers"]
    if not isinstance(names, list) or not names:
        entry.must("onehot", got=repr(names))
        return ()
    for name in names:
        if name not in integers:
            entry.error(
                "onehot",
                f"onehot: {name!r} is not an input declared with integers: [0, C - 1]{suggest(name, integers)}",
            )
    return tuple(n for n in names if n in integers)


def pack(entry: Entry) -> tuple[str, ...]:
    """Inputs passed together as one Python list argument (numpy-ml's Add.forward([X1, X2]))."""
    names, known = entry.raw["pack"], entry.names("inputs")
    if not isinstance(names, list) or len(names) < 2:
        entry.must("pack", got=repr(names))
        return ()
    for name in names:
        if name not in known:
            entry.error("pack", f"pack: {name!r} is not an input{suggest(name, known)}")
    positions = [known.index(n) for n in names if n in known]
    if positions and positions != list(range(positions[0], positions[0] + len(positions))):
        entry.error("pack", "pack: the packed inputs must be written next to each other, in order, in 'inputs'")
    return tuple(names)


def grad_outputs(entry: Entry) -> tuple[int, ...]:
    """Positions of forward's outputs that backward takes gradients for; the others are not part of L."""
    value = entry.raw["grad_outputs"]
    ok = (
        isinstance(value, list)
        and value
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
        and len(set(value)) == len(value)
    )
    if not ok:
        entry.must("grad_outputs", got=repr(value))
        return ()
    return tuple(value)


def _loss_object_options(entry: Entry) -> dict[str, Any]:
    return {
        "differentiate": entry.read("differentiate"),
        "reduction": entry.read("reduction"),
        "loss": entry.read("loss"),
        "gradient": entry.read("gradient"),
    }


def differentiate(entry: Entry) -> Any:
    """The float input a loss object's gradient() is taken with respect to: by default the last."""
    floats = [t.name for t in entry.values["inputs"] if t.differentiable]
    default = floats[-1] if floats else None  # loss(y, y_pred): the prediction comes last
    value = entry.raw.get("differentiate", default)
    if value not in floats:
        entry.must("differentiate", got=repr(value), hint=suggest(str(value), floats))
    return value


def reduction(entry: Entry) -> Any:
    value = entry.raw.get("reduction", "sum")
    if value not in REDUCTIONS:
        entry.must("reduction", got=repr(value), hint=suggest(value, REDUCTIONS))
    return value


def _is_object(raw) -> bool:
    return ":" in str(raw.get("impl", ""))


def _model_options(entry: Entry) -> dict[str, Any]:
    raw = entry.raw
    if not entry.values["params"]:
        entry.problems.error(
            raw.line, "a model needs 'params': the parameter arrays its loss depends on, e.g. {W1: [D, H], b1: [H]}"
        )
    options = {"grad_names": entry.read("grad_names")}
    if _is_object(raw):
        _misplaced(
            entry,
            MODEL_FUNCTION_KEYS,
            "belongs to a functional model (impl: file.py, no :Object); for a "
            "model object, name its methods with 'loss' and 'gradient'",
        )
        options.update(kind="object", loss=entry.read("loss"), gradient=entry.read("gradient"))
        options["params_at"] = None if "params_at" in raw else Location("dict", "params")  # else the layer's own
        return options
    _misplaced(
        entry,
        MODEL_OBJECT_KEYS,
        "belongs to a model object (impl: file.py:Class); a functional model "
        "takes forward, cost and backward (or one function)",
    )
    if "function" in raw:
        options.update(kind="function", function=entry.read("function"))
        return _keywords(entry, options)
    missing = [key for key in ("forward", "cost", "backward") if key not in raw]
    if missing:
        entry.problems.error(
            raw.line,
            f"a functional model needs forward, cost and backward (missing "
            f"{', '.join(missing)}), or one 'function' returning (loss, grads)",
        )
        return options
    options.update(
        kind="functions", forward=entry.read("forward"), cost=entry.read("cost"), backward=entry.read("backward")
    )
    return _keywords(entry, options)


def _misplaced(entry: Entry, keys: tuple[str, ...], why: str) -> None:
    for key in keys:
        if key in entry.raw:
            entry.error(key, f"{key!r} {why}")


def _hyperparameters(entry: Entry) -> list[str]:
    """The `args` of a functional model: a step may name them too."""
    args = entry.raw.get("args")
    return list(args) if isinstance(args, dict) else []


def _keywords(entry: Entry, options: dict[str, Any]) -> dict[str, Any]:
    """The `args` no step names: passed by keyword to the first step (forward, or the one function)."""
    named = {n for key in MODEL_STEPS if key in options for n in options[key][1]}
    options["keywords"] = tuple(k for k in _hyperparameters(entry) if k not in named)
    return options


def grad_names(entry: Entry) -> str:
    template = entry.raw.get("grad_names", "auto")
    if template == "auto":
        return template
    ok = isinstance(template, str) and "{name}" in template
    if ok:
        try:
            template.format(name="x")
        except (KeyError, IndexError, ValueError):
            ok = False
    if not ok:
        entry.must("grad_names", got=repr(template))
    return template if ok else "auto"


def method(key: str, default: str | None) -> Callable[[Entry], str | None]:
    """The reader of a key that names a method of the layer's object (`default` when absent)."""

    def read(entry: Entry) -> str | None:
        value = entry.raw.get(key, default)
        if value is not None and (not isinstance(value, str) or not value.isidentifier()):
            entry.must(key, got=repr(value))
            return default
        return value

    return read


def _step_arguments(entry: Entry, key: str) -> tuple[list[str], list[str]]:
    """A step's default arguments, and every name its `args` may use."""
    names, hyper = entry.names("inputs"), _hyperparameters(entry)
    defaults = {
        "function": names + ["params"],
        "forward": names[:1] + ["params"],
        "cost": ["out"] + names[1:],
        "backward": ["params", "cache"] + names,
    }
    extra = ["params"] if key in ("function", "forward") else list(STEP_NAMES)
    return defaults[key], names + extra + hyper


def step(key: str) -> Callable[[Entry], tuple[str | None, tuple[str, ...]]]:
    """The reader of a functional model's step: `NAME` (default arguments) or `{function: NAME, args: [..]}`."""

    def read(entry: Entry) -> tuple[str | None, tuple[str, ...]]:
        default, allowed = _step_arguments(entry, key)
        value = entry.raw[key]
        if isinstance(value, str):
            return value, tuple(default)
        if not isinstance(value, dict) or set(value) - {"function", "args"} or "function" not in value:
            entry.must(key, got=repr(value), args=", ".join(default))
            return None, tuple(default)
        args = value.get("args", default)
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            entry.error(key, f"{key}: 'args' must be a list of names, e.g. [{', '.join(default)}]")
            return value["function"], tuple(default)
        inputs = entry.raw.get("inputs")
        inputs = inputs if isinstance(inputs, dict) else {}  # not a mapping: reported as such
        for name in args:
            if name not in allowed:
                others = ", ".join(n for n in allowed if n not in inputs)
                entry.error(
                    key, f"{key}: argument {name!r} is neither an input nor one of {others}{suggest(name, allowed)}"
                )
        return value["function"], tuple(args)

    return read


def _elementwise_options(entry: Entry) -> dict[str, Any]:
    raw, inputs = entry.raw, entry.values["inputs"]
    if len(inputs) != 1 or not inputs[0].differentiable:
        entry.error("inputs", "an elementwise function takes exactly one float input, e.g. {z: [N, D]}")
    if entry.values["params"]:
        entry.error("params", "an elementwise function has no parameters (use style class)")
    of = entry.read("derivative_of")
    if not _is_object(raw) and not {"function", "derivative"} <= set(raw):
        entry.problems.error(
            raw.line,
            "elementwise functions in a module need 'function' and 'derivative' "
            "(e.g. function: sigmoid, derivative: sigmoid_grad)",
        )
    return {"derivative_of": of, "function": entry.read("function"), "derivative": entry.read("derivative")}


def derivative_of(entry: Entry) -> Any:
    value = entry.raw.get("derivative_of", "input")
    if value not in ("input", "output"):
        entry.must("derivative_of", got=repr(value))
    return value


STYLE_OPTIONS = {"model": _model_options, "elementwise": _elementwise_options, "loss-object": _loss_object_options}


def read_layer_arg(problems: Problems, raw, key: str, names: set[str]) -> LayerArg:
    """A `!layer` argument checked like a layer's own keys: its class imported, its `$` references
    and setup calls read; built afresh for each example (gradcheck's resolve)."""
    for unknown in [k for k in raw if k not in LAYER_ARG_KEYS]:
        problems.error(
            raw.line_of(unknown),
            f"{key}: unknown key {unknown!r} in !layer (expected "
            f"{', '.join(LAYER_ARG_KEYS)}){suggest(unknown, LAYER_ARG_KEYS)}",
        )
    init = registry_values.refs(problems, raw, "init", names) if "init" in raw else {}
    calls = registry_values.refs(problems, raw, "setup", names) if "setup" in raw else {}
    for method_name, arguments in calls.items():
        if not str(method_name).isidentifier() or not isinstance(arguments, (list, dict)):
            problems.error(raw.line_of("setup"), f"!layer setup: {method_name!r} {SETUP_FORM}")
    impl, line = str(raw.get("impl", "")), raw.line_of("impl") if "impl" in raw else raw.line
    module_part, _, object_name = impl.partition(":")
    if not object_name:
        problems.error(
            line,
            f"{key}: !layer needs impl: file.py:Class (the class, or a function returning "
            f"the layer object), got {raw.get('impl')!r}",
        )
        return LayerArg(impl, None, init, calls)
    module = import_module(problems, module_part, line)
    target = None if module is None else lookup(problems, module, object_name, impl, line)
    return LayerArg(impl, target, init, calls)
