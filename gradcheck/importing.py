"""Importing the user's layer code: by path, under the same isolation and time limit as checking it.

layers.yaml names code to import and run, as a conftest.py does. Code that runs at import may
exit, hang, print or close stdout, so each user module is first imported in a forked child (its
own process group, stdin/stdout/stderr on /dev/null, the memory limit, a time limit); only when
that child reports success is it imported here, with stdout sent to stderr and SystemExit caught.
A folder is on sys.path only while its code imports, and the modules found there are then taken
out of sys.modules: `impl: pkg.module:Obj` in two folders gives each folder its own module, and a
`numpy.py` beside layers.yaml never shadows the numpy gradcheck itself imports.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import os
import select
import signal
import sys
import time
from importlib.abc import Loader
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import hypothesis.strategies  # noqa: F401  gradcheck's own imports, loaded before any user folder is on sys.path
import numpy  # noqa: F401

from gradcheck.errors import UserImportError
from gradcheck.memory import limit_memory

IMPORT_SECONDS = 600.0  # the time limit when the command line sets none (the default per-layer timeout)
_limits: dict[str, Any] = {"seconds": IMPORT_SECONDS, "memory": None}
_MODULES: dict[tuple[str, str], ModuleType] = {}


def set_limits(seconds: float | None = None, memory: int | None = None) -> None:
    """The time limit (seconds) and memory limit (bytes, None for none) under which user code is imported."""
    _limits.update(seconds=seconds or IMPORT_SECONDS, memory=memory)


def import_user(text: str, base: Path) -> ModuleType:
    """The module `text` ("file.py" or "package.module") names, relative to the folder `base`; raises
    UserImportError with a one-line message ("cannot import 'x.py': ...") when it cannot be imported."""
    key = (str(base), str((base / text).resolve()) if text.endswith(".py") else text)
    if key not in _MODULES:
        if _forks() and _is_user_code(text):
            _probe(text, base)
        _MODULES[key] = _load(text, base)
    return _MODULES[key]


def _forks() -> bool:
    return hasattr(os, "fork") and hasattr(os, "setpgid")


def _is_user_code(text: str) -> bool:
    """Whether importing `text` may run code not yet loaded (a file, or a package gradcheck has not imported)."""
    return text.endswith(".py") or text.partition(".")[0] not in sys.modules


def _load(text: str, base: Path) -> ModuleType:
    """Import `text` in this process, its folder on sys.path only meanwhile, stdout sent to stderr."""
    path = (base / text).resolve() if text.endswith(".py") else None
    folders = list(dict.fromkeys([str(base)] + ([str(path.parent)] if path else [])))
    before = set(sys.modules)
    sys.path[:0] = folders
    try:
        with stdout_to_stderr():
            return _import_file(path) if path else importlib.import_module(text)
    except (KeyboardInterrupt, UserImportError):
        raise
    except FileNotFoundError:
        raise UserImportError(f"impl file {text!r} not found (paths are relative to the layers.yaml folder)") from None
    except ModuleNotFoundError as exc:
        missing = exc.name or text
        hint = _close_file(missing, text, base)
        raise UserImportError(f"cannot import {text!r}: no module named {missing!r}{hint}") from None
    except BaseException as exc:  # the user's module raised or exited while importing: report, never crash
        raise UserImportError(f"cannot import {text!r}: {describe(exc)}") from None
    finally:
        for folder in folders:
            with contextlib.suppress(ValueError):
                sys.path.remove(folder)
        _forget(set(sys.modules) - before, folders)


def _close_file(missing: str, text: str, base: Path) -> str:
    from gradcheck.errors import suggest

    return "" if missing != text else suggest(text, [p.stem for p in base.glob("*.py")])


def _import_file(path: Path) -> ModuleType:
    """Execute a .py file as a module under a name unique to its path."""
    if not path.is_file():
        raise FileNotFoundError(path)
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    name = f"gradcheck_user_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(cast(ModuleSpec, spec))  # None only for a suffix no loader reads
    sys.modules[name] = module
    try:
        cast(Loader, cast(ModuleSpec, spec).loader).exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _forget(names: set[str], folders: list[str]) -> None:
    """Take the modules loaded from `folders` out of sys.modules (their objects live on), so that the
    same name imported from another folder is that folder's own module."""
    for name in names:
        if name.startswith("gradcheck_user_"):
            continue
        origin = getattr(sys.modules.get(name), "__file__", None) or ""
        if any(origin.startswith(folder + os.sep) for folder in folders):
            del sys.modules[name]


def describe(exc: BaseException) -> str:
    """One line naming the exception and, when it came from user code, where."""
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r}) while importing"
    where = ""
    if isinstance(exc, SyntaxError):
        where = f" ({Path(exc.filename or '?').name}:{exc.lineno})"
    elif exc.__traceback__:
        frames = inspect.getinnerframes(exc.__traceback__)
        where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


@contextlib.contextmanager
def stdout_to_stderr():
    """Send what user code prints (sys.stdout and file descriptor 1) to stderr meanwhile, so stdout
    carries only gradcheck's report; code that closes its stdout closes only a copy."""
    sys.stdout and _flush(sys.stdout)
    saved_fd, saved_stream = os.dup(1) if _is_open(1) else None, sys.stdout
    if _is_open(2):
        os.dup2(2, 1)
    sys.stdout = open(os.dup(2) if _is_open(2) else os.open(os.devnull, os.O_WRONLY), "w", errors="backslashreplace")
    try:
        yield
    finally:
        _flush(sys.stdout)
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.close()
        sys.stdout = saved_stream
        if saved_fd is not None:
            os.dup2(saved_fd, 1)
            os.close(saved_fd)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _flush(stream) -> None:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        stream.flush()


# -- the probe: the same import in a forked child ------------------------------------------------
_ENDING = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def held_signals():
    """Hold Ctrl-C and SIGTERM back meanwhile (they arrive afterwards): around a fork, until the parent
    knows the child's process group, so that the interrupt that follows can end it."""
    holds = hasattr(signal, "pthread_sigmask")
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _ENDING) if holds else None
    try:
        yield
    finally:
        if holds:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def default_signals() -> None:
    """In a forked child: Ctrl-C and SIGTERM end it (not the parent's handlers), and are no longer held."""
    for number in _ENDING:
        signal.signal(number, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _ENDING)


def _probe(text: str, base: Path) -> None:
    """Import `text` in a forked child first; raise UserImportError if it fails, exits, or overruns."""
    receiver, sender = os.pipe()
    with held_signals():  # a SIGTERM right after the fork must find the child's group to end
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(receiver)
            _child(text, base, sender)
        os.close(sender)
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)  # also done by the child: whichever runs first
    try:
        message, finished = _read(receiver, time.monotonic() + _limits["seconds"])
    finally:
        os.close(receiver)
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)  # with whatever the import started
        _, status = os.waitpid(pid, 0)
    if not finished:
        raise UserImportError(
            f"cannot import {text!r}: importing it did not finish within {_limits['seconds']:g} s "
            "(does it run something at import, or wait for input?)"
        )
    if message is None:
        raise UserImportError(f"cannot import {text!r}: {_ended(status)}")
    if message:
        raise UserImportError(message)


def _child(text: str, base: Path, sender: int) -> None:
    """In the forked child: import, and write "" (success) or the error to `sender`; then exit."""
    try:
        os.setpgid(0, 0)
        default_signals()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        limit_memory(_limits["memory"])
        try:
            _load(text, base)
            message = ""
        except UserImportError as exc:
            message = str(exc)
        except BaseException as exc:
            message = f"cannot import {text!r}: {describe(exc)}"
        os.write(sender, b"\x00" + message.encode("utf-8", "backslashreplace"))
    finally:
        os._exit(0)


def _read(receiver: int, deadline: float) -> tuple[str | None, bool]:
    """(the child's message or None if it sent none, whether it finished before the deadline)."""
    chunks: list[bytes] = []
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([receiver], [], [], min(left, 1.0))
        if not ready:
            continue
        chunk = os.read(receiver, 65536)
        if not chunk:
            data = b"".join(chunks)
            return (data[1:].decode("utf-8", "replace") if data[:1] == b"\x00" else None), True
        chunks.append(chunk)
    return None, False


def _ended(status: int) -> str:
    """Why the child ended without a word, from its wait status."""
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name if os.WTERMSIG(status) in signal.valid_signals() else ""
        return f"the process was killed by {name or os.WTERMSIG(status)} while importing it (a crash, or out of memory)"
    return f"it ended the process (os._exit({os.waitstatus_to_exitcode(status)})?) while importing"
