"""Keeping freed memory for reuse, so that large layers do not pay a page fault per page per forward.

Every forward allocates its outputs and intermediates afresh, and the checker's moved copies and
weighed differences come in blocks of megabytes. glibc's malloc serves such blocks with fresh
pages from the kernel (mmap) and gives freed memory at the top of the heap back (trim), so the
next block faults every page in again: `gradcheck check` on batch-norm at a small network's
shapes (bench/README.md) faulted 200 000 pages in over 10 examples, 20 000 with this, and took
2.0 s instead of 1.5 s. Asking malloc to serve blocks up to MMAP_BELOW from the heap and to keep
up to KEEP_FREE bytes of freed memory there stops that; the process keeps its peak memory until
it exits.
"""

from __future__ import annotations

import ctypes
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
