"""Outputs are named as the user reads them: counted from 1, with backward's own argument names."""

from pathlib import Path

from gradcheck.engine import Options, check_layer
from gradcheck.registry import load_registry
from gradcheck.results import Status
from gradcheck.user_code import output_label, upstream_label

OUTPUTS = load_registry(Path(__file__).resolve().parent / "fixtures" / "realcode_report" / "outputs.yaml")


def test_a_modified_upstream_gradient_is_named_by_backwards_argument():
    result = check_layer(OUTPUTS.get("pair-mutating"), Options(seed=0, examples=5))
    assert result.status is Status.WARN
    assert "backward modified dnext_c (the upstream gradient of output 2 of 2) in place" in result.message


def test_a_missing_output_is_counted_from_one():
    result = check_layer(OUTPUTS.get("pair-none"), Options(seed=0, examples=5))
    assert result.status is Status.ERROR and "output 2 of 2 returned None" in result.message
    assert "output 0" not in result.message and "output 1 " not in result.message


def test_labels_without_names_still_count_from_one():
    spec = OUTPUTS.get("pair-none")  # backward(self, dh, dc): the names are dh, dc
    assert output_label(0, 2) == "output 1 of 2"
    assert upstream_label(spec, 0, 2) == "dh (the upstream gradient of output 1 of 2)"
    assert upstream_label(spec, 2, 3) == "the upstream gradient of output 3 of 3"  # more outputs than names
