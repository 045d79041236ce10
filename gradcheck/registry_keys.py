"""The keys of a layer entry as a table: which styles allow each, what it expects, what checks it.

The registry reads every key of the table's first part in order, then the style's own keys. A key
outside its styles is reported as unknown and still read, so a wrong value of it is reported too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gradcheck import registry_styles, registry_values
from gradcheck.config_yaml import LineDict
from gradcheck.errors import suggest
from gradcheck.limits import RULES
from gradcheck.registry_values import Problems
from gradcheck.spec import STYLES

ALL = STYLES
OBJECTS = ("class", "model", "elementwise", "loss-object")  # styles whose code is an object built with `init`
PARAM_PLACES = ("attr", "dict", "list")
GRAD_PLACES = ("attr", "dict", "list", "update", "optimizer")


@dataclass
class Entry:
    """One layer entry being read: where problems go, its mapping, its style and what its keys gave."""

    problems: Problems
    raw: LineDict
    style: str
    defaults: dict[str, Any]
    values: dict[str, Any] = field(default_factory=dict)

    def error(self, key: str, message: str) -> None:
        self.problems.error(self.raw.line_of(key), message)

    def must(self, key: str, got: str | None = None, hint: str = "", **fields: Any) -> None:
        """The one message for a value that is not what its key expects: `'KEY' must EXPECTS, got VALUE`."""
        expects = key_of(key, self.style).expects
        text = f"{key!r} must {expects.format(**fields) if fields else expects}"
        self.error(key, text + (f", got {got}" if got is not None else "") + hint)

    def read(self, key: str) -> Any:
        """The value of `key`, checked by the table's function for it."""
        return key_of(key, self.style).read(self)

    def names(self, key: str) -> list[str]:
        """The names of the tensors read for `inputs` or `params`."""
        return [t.name for t in self.values.get(key, ())]


@dataclass(frozen=True)
class Key:
    """A key of a layer entry."""

    name: str
    styles: tuple[str, ...]  # the styles whose layers may use it
    expects: str  # what its value must be: ends the message "'KEY' must ..."
    read: Callable[[Entry], Any]  # checks it and gives its value
    required_in: tuple[str, ...] = ()  # styles whose layers must have it


def key_of(name: str, style: str) -> Key:
    """The table's row for key `name` in a layer of `style` (any row of that name if the style lacks it)."""
    rows = [key for key in KEYS if key.name == name]
    return next((key for key in rows if style in key.styles), rows[0])


# -- the keys every layer reads, in order ---------------------------------------------------
def _dims(entry: Entry) -> dict[str, tuple[int, int]]:
    spec = entry.raw.get("dims", LineDict())
    if not isinstance(spec, LineDict):
        entry.must("dims")
        return {}
    dims = {}
    for name, bounds in spec.items():
        line = spec.line_of(name)
        ok = isinstance(bounds, list) and len(bounds) == 2 and all(_is_int(b) for b in bounds)
        if _is_int(bounds):
            bounds, ok = [bounds, bounds], True
        if not ok or not str(name).isidentifier():
            entry.problems.error(
                line, f"dim {name!r} must be an inclusive range of two integers [lo, hi], got {bounds!r}"
            )
        elif bounds[0] > bounds[1] or bounds[0] < 0:
            entry.problems.error(line, f"dim {name!r}: range {list(bounds)} must satisfy 0 <= lo <= hi")
        else:
            dims[name] = (bounds[0], bounds[1])
    return dims


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _inputs(entry: Entry) -> tuple:
    return registry_values.tensors(entry.problems, entry.raw, "inputs", entry.values["dims"], allow_data=True)


def _params(entry: Entry) -> tuple:
    """The parameters; then the checks that need dims, inputs and parameters all read."""
    params = registry_values.tensors(entry.problems, entry.raw, "params", entry.values["dims"], allow_data=False)
    _check_name_clashes(entry, entry.values["inputs"], params)
    _check_differentiable(entry, entry.values["inputs"], params)
    return params


def _check_name_clashes(entry: Entry, inputs, params) -> None:
    seen = set()
    for tensor in inputs + params:
        if tensor.name in entry.values["dims"]:
            entry.error("dims", f"{tensor.name!r} is both a dim and an input or parameter: rename one")
        if tensor.name in seen:
            entry.error("params", f"{tensor.name!r} is both an input and a parameter")
        seen.add(tensor.name)


def _check_differentiable(entry: Entry, inputs, params) -> None:
    """A layer with no float input (a loss: first input) and no parameter has nothing to check."""
    raw, loss = entry.raw, entry.style == "loss"
    written = raw.get("inputs")
    if not isinstance(written, dict) or len(inputs) < len(written):
        return  # already reported
    floats = inputs[:1] if loss else inputs
    if not any(t.differentiable for t in floats) and not params:
        which = "its first input" if loss else "any input"
        entry.error(
            "inputs",
            f"nothing to differentiate: neither {which} is a float tensor "
            "nor is there a parameter (inputs with integers/values are data)",
        )


def _where(entry: Entry) -> tuple:
    where = entry.raw.get("where", [])
    if isinstance(where, str):
        where = [where]
    if not isinstance(where, list):
        entry.must("where")
        return ()
    line, dims = entry.raw.line_of("where"), entry.values["dims"]
    exprs = [registry_values.expression(entry.problems, w, dims, line, "where") for w in where]
    return tuple(e for e in exprs if e is not None)


def _arrays_and_dims(entry: Entry) -> set[str]:
    """What a `$name` in init or args may refer to: the dims and the inputs and parameters as written."""
    raw = entry.raw
    arrays = {str(name) for key in ("inputs", "params") if isinstance(raw.get(key), dict) for name in raw[key]}
    return set(entry.values["dims"]) | arrays


def _refs(key: str) -> Callable[[Entry], Any]:
    return lambda entry: registry_values.refs(entry.problems, entry.raw, key, _arrays_and_dims(entry))


def _location(key: str, default: str, kinds: tuple[str, ...]) -> Callable[[Entry], Any]:
    return lambda entry: registry_values.location(entry.problems, entry.raw, key, default, kinds)


def _batch(entry: Entry) -> str | None:
    batch, dims = entry.raw.get("batch"), entry.values["dims"]
    if batch is not None and not isinstance(batch, str):
        entry.must("batch", got=repr(batch))
        return None
    if batch is not None and batch not in dims:
        entry.error("batch", f"batch {batch!r} is not a dim{suggest(batch, dims)}")
    return batch


def _setting(key: str) -> Callable[[Entry], Any]:
    """A numeric setting, checked as everywhere (limits.py); the file's `defaults` when absent."""
    return lambda entry: (
        registry_values.number(entry.problems, entry.raw, key) if key in entry.raw else entry.defaults.get(key)
    )


def _xfail(entry: Entry) -> str | None:
    xfail = entry.raw.get("xfail")
    if xfail is not None and not isinstance(xfail, (str, bool)):
        entry.must("xfail")
    return ("expected failure" if xfail is True else xfail) or None


def _flag(key: str, default: bool | None) -> Callable[[Entry], Any]:
    def read(entry: Entry) -> bool | None:
        value = entry.raw.get(key, default)
        if not isinstance(value, bool) and not (value is None and default is None):  # absent is fine
            entry.must(key)
        return value

    return read


def _plain(entry: Entry) -> Any:  # a key whose value is read where it is used
    return None


SETTINGS = ("rtol", "atol", "eps", "examples", "timeout")
STEP = "be a function name or {{function: NAME, args: [{args}]}}"  # a functional model's step
# The keys of a layer entry. The rows up to `discover` are read for every layer, in this order;
# the rest are read by their style's options (registry_styles) or when its code is imported
# (registry_imports), which look the row up with `entry.read` / `entry.must`.
KEYS: tuple[Key, ...] = (
    Key("name", ALL, "be a non-empty string", _plain),
    Key("impl", ALL, "name the code: file.py:Class, file.py, package.module:function", _plain, required_in=ALL),
    Key("style", ALL, f"be one of {', '.join(STYLES)}", _plain),
    Key("description", ALL, "be text for people (gradcheck does not read it)", _plain),
    Key("dims", ALL, "be a mapping like {N: [1, 8], D: [1, 6]}", _dims),
    Key("inputs", ALL, "be a mapping of name to shape, e.g. {x: [N, D]}", _inputs, required_in=ALL),
    Key("params", ("class", "functions", "model"), "be a mapping of name to shape, e.g. {x: [N, D]}", _params),
    Key("where", ALL, "be a list of boolean expressions over dims", _where),
    Key("init", OBJECTS, "be a mapping of argument name to value", _refs("init")),
    Key("args", ALL, "be a mapping of argument name to value", _refs("args")),
    Key(
        "params_at",
        ("class", "model"),
        "be attr:TEMPLATE, dict:NAME or list:NAME",
        _location("params_at", "attr:{name}", PARAM_PLACES),
    ),
    Key(
        "grads",
        ("class",),
        "be attr:TEMPLATE, dict:NAME, list:NAME, update:ARG or optimizer:METHOD",
        _location("grads", "attr:d{name}", GRAD_PLACES),
    ),
    Key("batch", ALL, "name a dim", _batch),
    *(Key(name, ALL, "be " + RULES[name].expected, _setting(name)) for name in SETTINGS),
    Key("xfail", ALL, "be a string giving the reason", _xfail),
    Key("batch_independent", ALL, "be true or false", _flag("batch_independent", None)),
    Key("discover", ("class",), "be true or false", _flag("discover", True)),
    # read by the style's options, in registry_styles
    Key("onehot", ALL, "list inputs declared with integers: [0, C - 1]", registry_styles.onehot),
    Key("pack", ALL, "list two or more inputs passed as one list", registry_styles.pack),
    Key(
        "grad_outputs",
        ("class", "functions"),
        "list distinct positions of forward's outputs (0 is the first), e.g. [0]",
        registry_styles.grad_outputs,
    ),
    Key("setup", ("class",), "be a mapping of argument name to value", registry_styles.setup),
    Key(
        "grad_names",
        ("model",),
        "be a template using {name} (e.g. d{name}: grads['dW1'] for W1) or auto",
        registry_styles.grad_names,
    ),
    Key("loss", ("model", "loss-object"), "name a method", registry_styles.method("loss", "loss")),
    Key("gradient", ("model", "loss-object"), "name a method", registry_styles.method("gradient", None)),
    Key("function", ("elementwise",), "name a method", registry_styles.method("function", "__call__")),
    Key("derivative", ("elementwise",), "name a method", registry_styles.method("derivative", None)),
    Key("derivative_of", ("elementwise",), "be input or output", registry_styles.derivative_of),
    Key(
        "differentiate",
        ("loss-object",),
        "name a float input (the one gradient() is taken with respect to)",
        registry_styles.differentiate,
    ),
    Key(
        "reduction",
        ("loss-object",),
        f"be one of {', '.join(registry_styles.REDUCTIONS)} (how the loss's values "
        "add up to the scalar its gradient is of)",
        registry_styles.reduction,
    ),
    *(Key(name, ("model",), STEP, registry_styles.step(name)) for name in registry_styles.MODEL_STEPS),
    # read when the code is imported, in registry_imports
    Key(
        "forward",
        ("class", "functions"),
        "name the method (class) or function (functions) forward is",
        _plain,
        required_in=("functions",),
    ),
    Key(
        "backward",
        ("class", "functions"),
        "name the method (class) or function (functions) backward is",
        _plain,
        required_in=("functions",),
    ),
    Key("factory", ("class",), "be true when impl is a function that returns the layer object", _plain),
    Key("function", ("loss",), "name the loss function in impl's module", _plain),
)
LAYER_KEYS = KEYS[: [key.name for key in KEYS].index("discover") + 1]


def allowed_keys(style: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(key.name for key in KEYS if style in key.styles))
