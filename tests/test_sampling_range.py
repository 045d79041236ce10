"""`range: [lo, hi]` bounds every value forward receives: drawn values, steps and probes alike."""

import sys
from pathlib import Path

import pytest

from gradcheck.engine import Options, check_layer
from gradcheck.registry import load_registry
from gradcheck.results import Status

RANGED = load_registry(Path(__file__).resolve().parent / "fixtures" / "realcode_report" / "ranged.yaml")


@pytest.mark.parametrize("mode", ["auto", "full", "fast"])
def test_forward_receives_only_values_inside_the_declared_range(mode):
    spec = RANGED.get("recording-log")
    received = sys.modules[spec.target.__module__].RECEIVED
    received.clear()
    result = check_layer(spec, Options(seed=0, examples=10, mode=mode))
    assert result.status is Status.PASS
    assert received and min(lo for lo, _ in received) >= 0.1 and max(hi for _, hi in received) <= 3.0, (
        min(received),
        max(received, key=lambda r: r[1]),
    )
