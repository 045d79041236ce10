"""Test settings: hypothesis derandomised in CI, the `slow` marker for long sweeps, one CliRunner on every click.

Portability rule for every test here: the suite must pass on any CPU kernel, BLAS build and
supported library version (numpy, click, rich, hypothesis, PyYAML from pyproject's floors up).
Never assert digits at rounding level (a PASS row's error is 6e-11 on one CPU, 1e-10 on another;
blank them, as tests/test_gallery.py's `_stable` does); compare statuses, messages, failing
elements and errors far above rounding. Never pin what hypothesis's search happens to find at a
seed (example counts, the exact shrunk example): its generator changes between versions.
"""

import os

# One BLAS thread, as the CLI sets (gradcheck/cli.py), before numpy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def _cli_runner_captures_stderr_apart() -> None:
    """Make click < 8.2's CliRunner capture stderr apart, as click >= 8.2's does, so `result.stderr`
    works and `result.stdout` is only stdout; `result.output` holds both (stdout first). The tests
    then run unchanged on every click that pyproject allows. Newer click needs nothing."""
    import inspect

    from click import testing

    if "mix_stderr" not in inspect.signature(testing.CliRunner.__init__).parameters:
        return
    init = testing.CliRunner.__init__

    def __init__(self, *args, mix_stderr=False, **kwargs):
        init(self, *args, mix_stderr=mix_stderr, **kwargs)

    testing.CliRunner.__init__ = __init__
    testing.Result.output = property(lambda self: self.stdout + (self.stderr if self.stderr_bytes is not None else ""))


_cli_runner_captures_stderr_apart()


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow (long sweeps)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long sweeps, skipped unless --run-slow is given")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    import pytest

    skip = pytest.mark.skip(reason="slow sweep: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
