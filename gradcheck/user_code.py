"""What the user's code did, told in its own terms: where it raised, which float errors it raised,
and what its outputs and upstream gradients are called."""

from __future__ import annotations

import inspect
import os
import sysconfig
import traceback

import numpy as np

from gradcheck.spec import LayerSpec

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_LIBRARIES = tuple(
    {os.path.abspath(sysconfig.get_paths()[key]) for key in ("stdlib", "platstdlib", "purelib", "platlib")}
)
USER_FRAMES = 3  # frames of the user's traceback shown with an exception


def user_traceback(exc: BaseException) -> tuple[str, str]:
    """Where user code raised: ('path/to/file.py:LINE', 'file.py:10 in forward > file.py:22 in _norm').

    The location is the innermost frame in the user's code (not gradcheck's, not numpy's or the
    standard library's: a ValueError from np.concatenate is the caller's line); the second part
    its last USER_FRAMES frames, innermost last. ('', '') when no frame is the user's.
    """
    frames = [(frame.f_code, line) for frame, line in traceback.walk_tb(exc.__traceback__)]
    mine = [(code, line) for code, line in frames if _is_user_file(code.co_filename)]
    if not mine:
        return "", ""
    code, line = mine[-1]
    chain = " > ".join(f"{os.path.basename(c.co_filename)}:{n} in {c.co_name}" for c, n in mine[-USER_FRAMES:])
    return f"{_shown_path(code.co_filename)}:{line}", chain


def _is_user_file(path: str) -> bool:
    if path.startswith("<"):  # generated code: <string>, numpy < 1.25's <__array_function__ internals>
        return False
    path = os.path.abspath(path)
    if path.startswith(_PACKAGE + os.sep):  # gradcheck's own built-in layers are the user's code here
        return path.startswith(os.path.join(_PACKAGE, "layers") + os.sep)
    return not path.startswith(_LIBRARIES)


def _shown_path(path: str) -> str:
    """The path relative to the working directory when it is below it, else absolute."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def float_errors(call) -> set[str]:
    """The numpy floating-point errors ('overflow', 'divide by zero', 'underflow', 'invalid value')
    that `call()` raises flags for; what `call` returns or raises is ignored."""
    seen: set[str] = set()
    with np.errstate(all="call", call=lambda kind, flag: seen.add(kind)):
        try:
            call()
        except Exception:  # the flags raised before it stopped are the evidence
            pass
    return seen


def nonfinite_cause(errors: set[str]) -> str:
    """Why a forward returned inf/nan, told from the floating-point errors it raised."""
    if "overflow" in errors:
        return "exp of a large input? subtract the max before exp"  # the overflow flag was raised
    if "divide by zero" in errors and "underflow" in errors:
        return (
            "log(0) of a value that underflowed to 0, as a softmax probability of a very negative score "
            "does: take log-probabilities as x - max - log(sum(exp(x - max))) instead of log(softmax)"
        )
    if "divide by zero" in errors:
        return "a division by zero or log(0)"
    if "invalid value" in errors:
        return (
            "an invalid operation (log or sqrt of a negative number, inf - inf, 0/0): an input outside the "
            "layer's domain? declare it with range: [lo, hi] in layers.yaml"
        )
    return "an input outside the layer's domain? declare it with range: [lo, hi] in layers.yaml"


def output_label(position: int, count: int) -> str:
    """'output 2 of 3', counting from 1 as a user reads forward's return value."""
    return f"output {position + 1} of {count}"


def upstream_label(spec: LayerSpec, position: int, count: int) -> str:
    """Backward's own name for an upstream gradient, e.g. 'dnext_c (the upstream gradient of output 2 of 2)'."""
    label = f"the upstream gradient of {output_label(position, count)}"
    backward = spec.backward if spec.style == "functions" else getattr(spec.target, "backward", None)
    if backward is None:
        return label
    try:
        names = [
            p.name
            for p in inspect.signature(backward).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"
        ]
    except (TypeError, ValueError):  # not introspectable (a builtin, a C extension)
        return label
    return f"{names[position]} ({label})" if position < len(names) and count <= len(names) else label
