"""Keeping freed memory for reuse, so that large layers do not pay a page fault per page per forward.

Every forward allocates its outputs afresh, and the checker's moved copies come in blocks of
megabytes; glibc's malloc gives such blocks back to the kernel when freed, so the next one faults
every page in again (batch-norm at a small network's shapes: 200 000 page faults over 10 examples,
20 000 with this, 2.0 s against 1.5 s). Serving blocks up to MMAP_BELOW from the heap and keeping
up to KEEP_FREE bytes of freed memory there stops that; the process keeps its peak memory until
it exits.
"""

from __future__ import annotations

import ctypes
import math
import os
import re
import sys

# mallopt parameters, from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_BELOW = 32 << 20  # blocks under this come from the heap (glibc's own dynamic limit tops out here)
KEEP_FREE = 256 << 20  # freed memory kept at the top of the heap before any is given back


def keep_freed_memory() -> bool:
    """Ask the C library's malloc to reuse freed memory rather than return it to the kernel.
    For the process that runs the checks (the CLI calls it); a no-op, returning False, where the
    C library has no glibc-style `mallopt` (macOS, Windows) or refuses."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_BELOW)) and bool(mallopt(_M_TRIM_THRESHOLD, KEEP_FREE))


# -- the memory limit of a worker ---------------------------------------------------------------
MEMORY_SHARE = 0.75  # of the machine's physical memory, divided among the workers running at once
MIN_LIMIT = 512 << 20
MIN_SIZE = 64 << 20  # a limit below this would stop numpy before any check starts
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def physical_memory() -> int | None:
    """Bytes of physical memory, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def default_limit(jobs: int) -> int | None:
    """A worker's share of the machine's memory: MEMORY_SHARE of it over `jobs` workers (at least MIN_LIMIT)."""
    total = physical_memory()
    return max(int(total * MEMORY_SHARE / max(jobs, 1)), MIN_LIMIT) if total else None


def parse_size(text: str | int) -> int | None:
    """'4G', '512M', '1.5GiB', 1000000 (bytes) -> bytes; 'none' or 0 -> None (no limit). Raises ValueError."""
    if isinstance(text, int) and not isinstance(text, bool):
        number, unit = float(text), ""
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*", str(text).lower())
        if str(text).strip().lower() in ("none", "off", "0"):
            return None
        if not match:
            raise ValueError(f"expected a size such as 4G, 512M or a number of bytes, or 'none', got {text!r}")
        number, unit = float(match.group(1)), match.group(2)
    if number < 0 or not math.isfinite(number):
        raise ValueError(f"expected a size >= 0, got {text!r}")
    size = int(number * _UNITS[unit])
    if 0 < size < MIN_SIZE:
        raise ValueError(f"{text!r} is below 64M: too little for numpy to start a check")
    return size or None


def limit_memory(limit: int | None) -> bool:
    """Cap this process's data segment (heap and private mappings, RLIMIT_DATA) at `limit` bytes, so
    an allocation beyond it fails with MemoryError. RLIMIT_DATA rather than RLIMIT_AS: address space
    that numpy, OpenBLAS and malloc reserve without using would count against RLIMIT_AS. Returns
    whether a limit was set (never where the system has no RLIMIT_DATA)."""
    if not limit:
        return False
    try:
        import resource
    except ImportError:  # not a POSIX system
        return False
    kind = getattr(resource, "RLIMIT_DATA", None)
    if kind is None:
        return False
    try:
        _, hard = resource.getrlimit(kind)
        soft = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
        resource.setrlimit(kind, (soft, hard))
    except (TypeError, ValueError, OSError):
        return False
    return True


def describe_size(size: int) -> str:
    """Bytes as '1.5G', '512M'."""
    for unit, factor in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20)):
        if size >= factor:
            return f"{size / factor:.3g}{unit}"
    return f"{size}B"
