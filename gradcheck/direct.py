"""Check one layer from Python, with no layers.yaml: `gradcheck.check(layer, *arrays, ...)`.

The call builds the LayerSpec a layers.yaml entry would give (the registry's own reader checks
every keyword, named as the layers.yaml key) and runs the same engine. By default the arrays
given are the one example checked; with `dims=` (and `inputs=` shapes) examples are drawn and
shrunk as on the command line. The result renders as the command line's table and account.
"""

from __future__ import annotations

import copy
import inspect
import io
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from gradcheck.engine import check_layer as _check_spec
from gradcheck.errors import ConfigError, suggest
from gradcheck.registry import LineDict, LineList, read_entry
from gradcheck.results import LayerResult, RunResult, Status, TensorResult
from gradcheck.spec import MODES, LayerSpec, Options, TensorSpec, Tolerances

WHERE = Path("gradcheck.check()")  # how the reader names this "file" in its messages
BATCH = "N"  # the dim of the first input's leading axis, when the arrays are given


@dataclass(frozen=True)
class GivenTensor(TensorSpec):
    """An input or parameter whose values were given: every example uses a copy of them."""

    given: Any = field(default=None, compare=False, repr=False)


class _FreshCopies:
    """Stands for a layer object's class: calling it gives a fresh copy of the object."""

    def __init__(self, obj: Any):
        self.obj = obj
        self.forward, self.backward = type(obj).forward, type(obj).backward
        self.__name__ = type(obj).__name__

    def __call__(self) -> Any:
        return copy.deepcopy(self.obj)


class CheckResult(LayerResult):
    """A LayerResult that shows itself as the command line's table and account."""

    @property
    def passed(self) -> bool:
        """Whether the layer passed (PASS, XFAIL or WARN: nothing that fails a run; SKIP checked nothing, so not)."""
        return self.ok

    def tensor(self, name: str) -> TensorResult:
        """One input's or parameter's result: errors, worst_index, analytic and numeric values."""
        for tensor in self.tensors:
            if tensor.name == name:
                return tensor
        raise KeyError(f"no tensor {name!r}; checked: {', '.join(t.name for t in self.tensors)}")

    __getitem__ = tensor

    def __rich__(self):
        from rich.console import Group

        from gradcheck.reporters.table import layer_details, results_table, summary_line

        run = RunResult((self,), self.seconds, self.seed)
        parts = [results_table(run)]
        if self.status is not Status.PASS:
            parts.append(layer_details(self))
        return Group(*parts, summary_line(run))

    def _render(self, html: bool = False) -> str:
        from rich.console import Console

        console = Console(record=True, width=120, force_terminal=False, no_color=not html, file=_Discard())
        console.print(self)
        return console.export_html(inline_styles=True) if html else console.export_text()

    def __str__(self) -> str:
        return self._render().rstrip("\n")

    def __repr__(self) -> str:  # one line: pytest shows it in assertion messages (print() shows the table)
        tensors = ", ".join(f"{t.name} {t.status.value}" for t in self.tensors)
        return f"<CheckResult {self.name}: {self.status.value}" + (f" ({tensors})>" if tensors else ">")

    def _repr_html_(self) -> str:
        return self._render(html=True)

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text(str(self))


class _Discard(io.StringIO):
    """A file that forgets what is written (the console records it)."""

    def write(self, text: str) -> int:
        return len(text)


def check(
    layer: Any,
    *arrays: Any,
    style: str | None = None,
    params: Any = None,
    inputs: dict | None = None,
    dims: dict | None = None,
    examples: int | None = None,
    seed: int | None = None,
    mode: str = "auto",
    rtol: float | None = None,
    atol: float | None = None,
    eps: float | None = None,
    timeout: float | None = None,
    save_failures: str | Path | None = None,
    **keys: Any,
) -> CheckResult:
    """Check a layer's backward against finite differences, at the given arrays or at drawn examples.

    `layer` is a layer object (or class, with `init=`), a (forward, backward) pair, or a loss
    function returning (loss, dx) (`style="loss"`). Arrays are passed in the order forward takes
    them; a class's parameters are named (`params=["W", "b"]`). Other keywords are the layers.yaml
    keys: name, init, args, params_at, grads, where, batch, batch_independent, xfail, description.
    """
    if mode not in MODES:
        raise ConfigError([f"{WHERE}: unknown mode {mode!r}{suggest(mode, MODES)}: expected one of {', '.join(MODES)}"])
    style = style or _style_of(layer)
    targets = _targets(layer, style)
    raw = {
        "name": keys.pop("name", _name_of(layer)),
        "impl": _impl_of(layer),
        "style": style,
        **{key: getattr(code, "__name__", key) for key, code in targets.items() if key != "target"},
        **keys,
    }
    given = {}
    if dims is None:
        given = _given(targets, style, arrays, params, raw)
        dims, inputs, params = _given_shapes(given, [t for t in given if t not in _param_names(params)])
    elif arrays:
        raise TypeError("gradcheck.check: give either arrays (checked as given) or dims= with inputs= shapes, not both")
    raw.update(inputs=inputs or {}, dims=dims, **({"params": params} if params else {}))
    spec = _read(raw, targets)
    spec = _with_given(spec, given)
    count = examples or (1 if given else None)
    options = Options(
        examples=count, seed=seed, mode=mode, timeout=timeout, tolerances=Tolerances(rtol=rtol, atol=atol, eps=eps)
    )
    result = _check_spec(spec, options)
    if save_failures is not None:  # the layer is an object here: the script shows the saved numbers
        from gradcheck.failures import save_failures as save

        save([result], {spec.name: spec}, save_failures, None, options.tolerances)
    return _wrapped(result, given)


def _wrapped(result: LayerResult, given: dict) -> CheckResult:
    """The engine's result as a CheckResult; at given arrays, without the dims made up for them."""
    changes: dict[str, Any] = {
        "repro": f"gradcheck.check(..., seed={result.seed})" if result.repro and not given else ""
    }
    if given:
        changes["failing_dims"] = None
        changes["tensors"] = tuple(replace(t, failing_dims=None) for t in result.tensors)
    return CheckResult(**{f.name: getattr(result, f.name) for f in fields(result)} | changes)


def _style_of(layer: Any) -> str:
    if isinstance(layer, tuple):
        return "functions"
    if inspect.isfunction(layer) or inspect.isbuiltin(layer):
        return "loss"
    return "class"


def _targets(layer: Any, style: str) -> dict[str, Any]:
    """What the registry would import for this style: target, forward and backward, or function."""
    if style == "functions":
        if not (isinstance(layer, tuple) and len(layer) == 2 and all(callable(f) for f in layer)):
            raise TypeError("gradcheck.check: style 'functions' takes a (forward, backward) pair")
        return {"forward": layer[0], "backward": layer[1]}
    if style == "loss":
        if not callable(layer):
            raise TypeError("gradcheck.check: style 'loss' takes a function returning (loss, dx)")
        return {"function": layer}
    for method in ("forward", "backward"):
        if not callable(getattr(layer, method, None)):
            raise TypeError(f"gradcheck.check: {_name_of(layer)} has no {method}() method (style class)")
    return {"target": layer if isinstance(layer, type) else _FreshCopies(layer)}


def _name_of(layer: Any) -> str:
    if isinstance(layer, tuple):
        return getattr(layer[0], "__name__", "forward").removesuffix("_forward")
    return getattr(layer, "__name__", None) or type(layer).__name__


def _impl_of(layer: Any) -> str:
    """module:qualname of the code, as layers.yaml's `impl` would name it."""
    if isinstance(layer, tuple):
        owner = layer[0]
    else:
        owner = layer if inspect.isroutine(layer) or isinstance(layer, type) else type(layer)
    return f"{getattr(owner, '__module__', '?')}:{getattr(owner, '__qualname__', _name_of(layer))}"


def _param_names(params: Any) -> list[str]:
    if params is None:
        return []
    if isinstance(params, str):
        return [params]
    return list(params)


def _given(targets: dict, style: str, arrays: tuple, params: Any, raw: dict) -> dict[str, np.ndarray]:
    """Name -> array for the positional arrays (named as forward names them) and a class's parameters."""
    forward = targets.get("forward") or targets.get("function") or targets["target"].forward
    names = _argument_names(forward, len(arrays), skip_self=style == "class")
    given = {name: _array(name, value) for name, value in zip(names, arrays, strict=True)}
    if not given:
        raise TypeError("gradcheck.check: give the arrays forward takes (or dims= and inputs= to draw them)")
    if _param_names(params):
        if style != "class" or isinstance(targets["target"], type):
            raise TypeError(
                "gradcheck.check: params= names the parameters of a layer object; "
                "a forward function's parameters are passed as arrays"
            )
        location = raw.get("params_at", "attr:{name}")
        obj = targets["target"].obj
        for position, name in enumerate(_param_names(params)):
            given[name] = _array(name, _held(obj, location, name, position))
    return given


def _argument_names(function: Any, count: int, skip_self: bool) -> list[str]:
    """The first `count` positional parameter names of `function` (x0, x1, ... where unknown)."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    if skip_self and parameters and parameters[0].name == "self":
        parameters = parameters[1:]
    names = [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return [names[i] if i < len(names) else f"x{i}" for i in range(count)]


def _held(obj: Any, location: str, name: str, position: int) -> Any:
    """A parameter of a layer object, found where params_at says (attr:, dict: or list:)."""
    kind, _, target = location.partition(":")
    try:
        if kind == "attr":
            return getattr(obj, target.format(name=name))
        container = getattr(obj, target)
        return container[name] if kind == "dict" else container[position]
    except (AttributeError, KeyError, IndexError, TypeError):
        raise TypeError(f"gradcheck.check: the layer object has no parameter {name!r} at {location}") from None


def _array(name: str, value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "fiub":
        raise TypeError(
            f"gradcheck.check: {name!r} is {type(value).__name__}, not an array of numbers "
            "(pass other arguments of forward as args={...})"
        )
    return array.astype(np.float64) if array.dtype.kind == "f" else array.copy()


def _given_shapes(given: dict[str, np.ndarray], input_names: list[str]) -> tuple[dict, dict, dict]:
    """dims, inputs and params of a layers.yaml entry whose ranges are the given arrays' shapes.

    The first input's leading axis is the batch N; another input sharing its length there
    (labels, a mask) shares the dim, so the batch checks move them together.
    """
    first = given[input_names[0]] if input_names else None
    batch = first.shape[0] if first is not None and first.ndim else None
    dims: dict[str, list[int]] = {}
    inputs: dict[str, Any] = {}
    params: dict[str, Any] = {}
    for name, array in given.items():
        shape = []
        for axis, length in enumerate(array.shape):
            dim = BATCH if axis == 0 and length == batch and name in input_names else f"{name}_{axis}"
            dims[dim] = [length, length]
            shape.append(dim)
        entry = shape if array.dtype.kind == "f" else {"shape": shape, "integers": [0, 0]}
        (inputs if name in input_names else params)[name] = entry
    return dims, inputs, params


def _read(raw: dict, targets: dict[str, Any]) -> LayerSpec:
    """The LayerSpec for the keywords, or a ConfigError naming each wrong one."""
    spec, problems = read_entry(_lined(raw), WHERE, targets)
    if problems or spec is None:
        prefix = f"{WHERE}:0: "
        raise ConfigError([f"{WHERE}: {p.removeprefix(prefix)}" for p in problems])
    return replace(spec, source=_code_location(targets) or "")


def _lined(value: Any) -> Any:
    """Plain dicts and lists as the reader's line-remembering ones (line 0: no file)."""
    if isinstance(value, dict):
        return LineDict({k: _lined(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)) and not isinstance(value, LineList):
        items = LineList(_lined(v) for v in value)
        items.item_lines = [0] * len(items)
        return items
    return value


def _with_given(spec: LayerSpec, given: dict[str, np.ndarray]) -> LayerSpec:
    if not given:
        return spec

    def attach(tensors):
        return tuple(
            GivenTensor(**{f.name: getattr(t, f.name) for f in fields(t)}, given=given[t.name]) for t in tensors
        )

    return replace(spec, inputs=attach(spec.inputs), params=attach(spec.params))


def _code_location(targets: dict[str, Any]) -> str | None:
    code = targets.get("backward") or targets.get("function") or getattr(targets.get("target"), "backward", None)
    if code is None:
        return None
    try:
        code = inspect.unwrap(code)
        return f"{inspect.getsourcefile(code)}:{inspect.getsourcelines(code)[1]}"
    except (TypeError, OSError, ValueError):
        return None
