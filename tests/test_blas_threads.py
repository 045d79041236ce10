"""The command line runs numpy's BLAS on one thread unless the user chose otherwise: many threads on a
check's small arrays only contend for the cores (and each `--jobs` worker would start its own). The
variables must be set before numpy is first imported, since BLAS reads them once."""

import json
import os
import subprocess
import sys

VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

# Records the variables as they stand when numpy is first imported, then imports the CLI.
PROBE = f"""
import importlib.abc, json, os, sys
VARIABLES = {VARIABLES!r}
seen = {{}}
class Spy(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "numpy" and not seen:
            seen.update({{v: os.environ.get(v) for v in VARIABLES}})
        return None
sys.meta_path.insert(0, Spy())
import gradcheck.cli
import numpy
print(json.dumps(seen))
"""


def _seen_at_numpy_import(**preset: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES} | preset
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_the_cli_sets_one_blas_thread_before_numpy_is_imported():
    assert _seen_at_numpy_import() == dict.fromkeys(VARIABLES, "1")


def test_the_cli_leaves_a_users_choice_alone():
    assert _seen_at_numpy_import(OPENBLAS_NUM_THREADS="2")["OPENBLAS_NUM_THREADS"] == "2"
