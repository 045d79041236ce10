"""gradcheck.memory: freed memory kept for reuse, so large temporaries stop faulting pages in."""

import platform
import subprocess
import sys

import pytest

# Allocates and frees 16 MB temporaries, as a block of moved copies and its weighing do, and
# prints the page faults that took; with argument "keep", after keep_freed_memory().
TEMPORARIES = """
import resource, sys
import numpy as np
from gradcheck.memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
x = np.ones(1 << 18)
for _ in range(3):
    (x[None] * np.ones((8, 1))).sum()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    copies = x[None] * np.ones((8, 1))
    size = np.abs(copies)
    delta = copies - size
    del copies, size, delta
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(how: str) -> int:
    done = subprocess.run([sys.executable, "-c", TEMPORARIES, how], capture_output=True, text=True, check=True)
    return int(done.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's; elsewhere it is a no-op")
def test_large_temporaries_stop_faulting_pages_in_once_freed_memory_is_kept():
    plain, kept = _faults("plain"), _faults("keep")
    assert plain > 50 * 1000  # each 16 MB temporary faults its ~4096 pages in again
    assert kept < plain / 20
