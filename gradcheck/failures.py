"""From a failure to its fix: a failing example saved as arrays (.npz) and a script that replays it.

The engine's result names the smallest failing example (dims, value seed, scale); its arrays are
drawn again here, the user's forward and backward are called on them, and the numeric gradient
is taken by centred differences, so the saved file is consistent with itself. The script loads
the file, calls forward and backward through `Replay` (exactly as the check called them) and
prints analytic against numeric: something to run alone and to step through in a debugger.
"""

from __future__ import annotations

import contextlib
import os
import re
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gradcheck.adapters import LayerProblem, adapter_for
from gradcheck.registry import load_registry
from gradcheck.results import LayerResult
from gradcheck.sampling import Example, draw_arrays, draw_upstream
from gradcheck.spec import DEFAULT_TOLERANCES, LayerSpec, Tolerances

TINY = 1e-300  # keeps a tolerance of zero from dividing by zero


class Replay:
    """One layer at one example's arrays: forward and backward called as the check calls them."""

    def __init__(self, spec: LayerSpec, arrays: dict[str, np.ndarray], dims: dict[str, int], seed: int):
        self.spec, self.arrays, self.dims, self.seed = spec, arrays, dims, seed
        self.adapter = adapter_for(spec)
        with user_exceptions():
            self.adapter.prepare({**dims, **arrays}, seed)

    @property
    def tensors(self) -> list[str]:
        """The differentiable inputs and the parameters, in the order the check reports them."""
        return [t.name for t in self.spec.differentiable_inputs] + [p.name for p in self.spec.params]

    def forward(self, moved: dict[str, np.ndarray] | None = None) -> tuple[tuple, Any]:
        """(outputs, cache): the user's forward on (copies of) the arrays, `moved` ones replaced."""
        arrays = {**self.arrays, **(moved or {})}
        inputs = [np.array(arrays[t.name]) for t in self.spec.inputs]
        params = {p.name: np.array(arrays[p.name]) for p in self.spec.params}
        with user_exceptions():
            return self.adapter.forward(inputs, params, self.seed)

    def backward(self, cache: Any, upstream: list) -> dict[str, np.ndarray]:
        """The user's backward: name -> analytic gradient."""
        with user_exceptions():
            grads = self.adapter.backward(cache, list(upstream))
        return {
            name: np.asarray(value, dtype=float)
            for name, value in {**grads.inputs, **grads.params}.items()
            if value is not None
        }

    def numeric(self, name: str, upstream: list, eps: float) -> np.ndarray:
        """d sum(upstream * outputs) / d name by centred differences, element by element."""
        x = np.asarray(self.arrays[name], dtype=float)
        gradient = np.zeros_like(x)
        for index in np.ndindex(x.shape):
            step = eps * max(1.0, float(abs(x[index])))
            values = []
            for sign in (1, -1):
                moved = x.copy()
                moved[index] += sign * step
                outputs, _ = self.forward({name: moved})
                values.append(
                    sum(float(np.sum(np.multiply(r, out))) for r, out in zip(upstream, outputs, strict=False))
                )
            gradient[index] = (values[0] - values[1]) / (2 * step)
        return gradient


@contextlib.contextmanager
def user_exceptions():
    """Let what the user's code raised come out as itself (with its traceback), not as the verdict
    gradcheck makes of it: a debugger then stops at the user's line."""
    try:
        yield
    except LayerProblem as problem:
        cause = problem.__cause__
        if cause is None:
            raise
        raise cause.with_traceback(cause.__traceback__) from None


@dataclass(frozen=True)
class Saved:
    """What was written for one layer."""

    data: Path
    script: Path
    problem: str = ""  # why the gradients could not be saved (the layer raised): the script shows it


def replay(config: str | Path, name: str, data: str | Path) -> tuple[Replay, Any]:
    """The layer `name` of `config` at the arrays saved in `data` (as the saved script calls it)."""
    spec = load_registry(config).get(name)
    if spec is None:
        raise SystemExit(f"no layer named {name!r} in {config} any more")
    saved = np.load(data)
    arrays = {key.split("/", 1)[1]: saved[key] for key in saved.files if key.startswith(("input/", "param/"))}
    dims = {key.split("/", 1)[1]: int(saved[key]) for key in saved.files if key.startswith("dims/")}
    return Replay(spec, arrays, dims, int(saved["seed"])), saved


def save_failures(
    layers: list[LayerResult],
    specs: dict[str, LayerSpec],
    directory: str | Path,
    config: str | Path | None,
    tolerances: Tolerances | None = None,
) -> list[Saved]:
    """For each layer that did not pass (and has a failing example), write NAME.npz and NAME.py."""
    directory = Path(directory)
    written = []
    for layer in layers:
        spec = specs.get(layer.name)
        if layer.ok or layer.example is None or spec is None:
            continue
        directory.mkdir(parents=True, exist_ok=True)
        written.append(save_one(layer, spec, directory, config, tolerances or Tolerances()))
    return written


def save_one(layer: LayerResult, spec: LayerSpec, directory: Path, config, tolerances: Tolerances) -> Saved:
    """Write one layer's failing example and its script."""
    stem = file_stem(layer.name)
    data, script = directory / f"{stem}.npz", directory / f"{stem}.py"
    if layer.example is None:
        raise ValueError(f"layer {layer.name!r} has no failing example to save")
    tol = DEFAULT_TOLERANCES.merged(spec.tolerances).merged(tolerances)
    arrays, problem = example_arrays(spec, layer.example, tol)
    with open(data, "wb") as file:
        np.savez(file, **arrays)  # type: ignore[arg-type]  # numpy's stub reads **arrays as its allow_pickle
    script.write_text(script_text(layer, layer.example, config, data.name, problem), encoding="utf-8")
    return Saved(data, script, problem)


def example_arrays(spec: LayerSpec, example: dict[str, Any], tol: Tolerances) -> tuple[dict[str, np.ndarray], str]:
    """The npz contents: inputs, parameters, dims, seed, tolerances, and (when the layer runs) the
    upstream gradient, analytic and numeric gradients; plus the problem that stopped it, if any."""
    drawn = Example(tuple(example["dims"].items()), example["seed"], example["scale"])
    eps = tol.eps if tol.eps is not None else DEFAULT_TOLERANCES.eps
    assert eps is not None  # the defaults name a step
    rng = np.random.default_rng(drawn.seed)
    arrays = draw_arrays(spec, drawn, rng)
    out = {
        f"{'param' if name in {p.name for p in spec.params} else 'input'}/{name}": value
        for name, value in arrays.items()
    }
    out.update({f"dims/{k}": np.array(v) for k, v in drawn.dim_values.items()})
    out.update(
        seed=np.array(drawn.seed),
        scale=np.array(drawn.scale),
        rtol=np.array(tol.rtol),
        atol=np.array(tol.atol),
        eps=np.array(tol.eps),
    )
    try:
        with np.errstate(all="ignore"):
            layer = Replay(spec, {k: v.copy() for k, v in arrays.items()}, drawn.dim_values, drawn.seed)
            outputs, cache = layer.forward()
            upstream = draw_upstream(outputs, rng)
            out.update({f"upstream/{i}": np.asarray(r, dtype=float) for i, r in enumerate(upstream)})
            analytic = layer.backward(cache, upstream)
            numeric = {name: layer.numeric(name, upstream, eps) for name in layer.tensors}
    except (Exception, SystemExit) as exc:  # the layer raised (or exited): the script replays that
        return out, str(exc) or type(exc).__name__
    out.update({f"analytic/{k}": v for k, v in analytic.items()})
    out.update({f"numeric/{k}": v for k, v in numeric.items()})
    return out, ""


def replay_raises(spec: LayerSpec, example: dict) -> BaseException | None:
    """Call forward and backward again at `example`; the exception the user's code raised, or None
    (it ran, or gradcheck itself refused what it returned)."""
    drawn = Example(tuple(example["dims"].items()), example["seed"], example["scale"])
    rng = np.random.default_rng(drawn.seed)
    arrays = draw_arrays(spec, drawn, rng)
    try:
        with np.errstate(all="ignore"):
            layer = Replay(spec, arrays, drawn.dim_values, drawn.seed)
            outputs, cache = layer.forward()
            layer.backward(cache, draw_upstream(outputs, rng))
    except LayerProblem:
        return None
    except (Exception, SystemExit) as exc:  # sys.exit() in a layer must not end gradcheck here either
        return exc
    return None


def user_traceback_text(exc: BaseException) -> str:
    """The traceback of `exc` in the user's frames only (gradcheck's own frames left out)."""
    package = str(Path(__file__).resolve().parent)
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not str(Path(frame.filename).resolve()).startswith(package + os.sep)
    ]
    lines = [
        "Traceback (most recent call last):\n",
        *traceback.format_list(frames),
        *traceback.format_exception_only(type(exc), exc),
    ]
    return "".join(lines).rstrip("\n")


def file_stem(name: str) -> str:
    """A layer name as a file name: letters, digits, '-', '_' and '.' kept, the rest '_'."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", name).strip(".") or "layer"
    return stem[:100]


SCRIPT = '''\
"""Replay gradcheck's {status} of layer {name!r} at its smallest failing example.

dims {dims}, value seed {seed}, scale {scale:g}; the arrays are in {data} beside this script.

    python {script}             # calls your forward and backward, prints analytic against numeric
    python -m pdb {script}      # step through it (or put breakpoint() in your backward)
"""
import sys
from pathlib import Path

import numpy as np

from gradcheck.failures import compare, replay

HERE = Path(__file__).resolve().parent
CONFIG = {config!r}
layer, saved = replay(CONFIG, {name!r}, HERE / {data!r})  # the layer at the saved inputs and parameters

outputs, cache = layer.forward()  # your forward
upstream = [saved[f"upstream/{{i}}"] for i in range(len(outputs))]
analytic = layer.backward(cache, upstream)  # your backward
sys.exit(compare(analytic, saved))
'''


OBJECT_SCRIPT = '''\
"""gradcheck's {status} of {name!r} ({impl}) at its failing example; the arrays are in {data}.

The layer was given as a Python object, so this script cannot import it: it prints the saved
analytic gradients against the numeric ones. To step through your code, call it on the arrays:
saved["input/NAME"] and saved["param/NAME"], with saved["upstream/0"] as the upstream gradient.
"""
import sys
from pathlib import Path

import numpy as np

from gradcheck.failures import compare

saved = np.load(Path(__file__).resolve().parent / {data!r})
analytic = {{key.split("/", 1)[1]: saved[key] for key in saved.files if key.startswith("analytic/")}}
sys.exit(compare(analytic, saved))
'''


def script_text(layer: LayerResult, example: dict[str, Any], config, data: str, problem: str) -> str:
    """The replay script of `layer` at its failing `example`, whose arrays are saved in `data`."""
    dims = ", ".join(f"{k}={v}" for k, v in example["dims"].items()) or "none"
    if config is None:
        return OBJECT_SCRIPT.format(status=layer.status.value, name=layer.name, impl=_safe(layer.impl), data=data)
    text = SCRIPT.format(
        status=layer.status.value,
        name=layer.name,
        dims=dims,
        seed=example["seed"],
        scale=example["scale"],
        data=data,
        script=Path(data).with_suffix(".py").name,
        config=str(Path(config).resolve()),
    )
    if problem:
        text = text.replace('"""\nimport sys', f'\nWhen saved, the layer raised: {_safe(problem)}\n"""\nimport sys', 1)
    return text


def _safe(text: str) -> str:
    return text.replace('"""', "'''").replace("\\", "\\\\")


def compare(analytic: dict[str, np.ndarray], saved) -> int:
    """Print analytic against the saved numeric gradient per tensor; 1 if any element is outside
    atol + rtol * |numeric| (a mismatch), else 0."""
    rtol, atol, mismatched = float(saved["rtol"]), float(saved["atol"]), 0
    for key in [k for k in saved.files if k.startswith("numeric/")]:
        name, numeric = key.split("/", 1)[1], saved[key]
        given = analytic.get(name)
        if given is None or np.shape(given) != numeric.shape:
            print(
                f"{name}: MISMATCH: backward gave {'nothing' if given is None else np.shape(given)}, "
                f"expected shape {numeric.shape}"
            )
            mismatched += 1
            continue
        given, numeric = np.asarray(given, dtype=float), np.asarray(numeric, dtype=float)
        error = np.array(np.abs(given - numeric))  # an array even for a scalar parameter
        ratio = np.array(error / np.maximum(atol + rtol * np.abs(numeric), TINY))
        ratio[~(np.isfinite(given) & np.isfinite(numeric))] = np.inf  # NaN or inf: overflow is a mismatch too
        worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape) if ratio.size else ()
        bad = bool(ratio.size) and float(ratio[worst]) > 1
        mismatched += bad
        at = f"[{', '.join(str(int(i)) for i in worst)}]"
        print(
            f"{name}: {'MISMATCH' if bad else 'ok'}: worst element {name}{at}: analytic "
            f"{given[worst]:.6g}, numeric {numeric[worst]:.6g} (abs error {error[worst]:.3g}); "
            f"{int((ratio > 1).sum())} of {ratio.size} element(s) outside tolerance"
        )
    return int(mismatched > 0)
