"""Diagnosis decides which extra examples to run after a failure; the engine only runs them."""

from pathlib import Path
from types import SimpleNamespace

from gradcheck.diagnosis import gather_evidence, hyperparameter_dims, larger_dims
from gradcheck.registry import load_registry
from gradcheck.results import Status
from gradcheck.sampling import Example
from gradcheck.smallest import smallest_failure, smallness

BUILTINS = load_registry(Path(__file__).resolve().parents[1] / "layers.yaml")
CONV = BUILTINS.get("conv2d")
CONV_DIMS = {"N": 1, "C": 1, "F": 1, "KH": 1, "KW": 1, "S": 2, "P": 1, "H": 3, "Wd": 3}


def outcome(dims: dict, status: Status = Status.FAIL, seed: int = 5, scale: float = 1.0, tensors=("x",)):
    """A stand-in for an ExampleOutcome: what the evidence and smallness read of one."""
    return SimpleNamespace(
        example=Example(tuple(dims.items()), seed, scale),
        status=status,
        failed=status in (Status.FAIL, Status.ERROR),
        tensors=list(tensors),
    )


def test_the_hyperparameters_are_the_dims_no_shape_uses():
    assert hyperparameter_dims(CONV) == {"S", "P"}


def test_the_larger_example_keeps_hyperparameters_and_grows_the_rest_within_their_ranges():
    larger = larger_dims(CONV, CONV_DIMS, {"S", "P"})
    assert larger is not None and larger["S"] == 2 and larger["P"] == 1
    assert larger["N"] == 2  # the batch goes to 3, capped by its range [1, 2]
    assert all(CONV_DIMS[k] < v <= CONV.dims[k][1] for k, v in larger.items() if k not in ("S", "P", "N"))


def test_the_larger_example_has_batch_3_and_distinct_other_sizes():
    linear = BUILTINS.get("linear")
    assert larger_dims(linear, {"N": 1, "D": 1, "M": 1}, set()) == {"N": 3, "D": 4, "M": 5}


def test_evidence_asks_for_a_larger_example_and_each_trivial_hyperparameter():
    asked = []

    def run(example: Example):
        asked.append(example.dim_values)
        trivial_stride = example.dim_values["S"] == 1
        return outcome(example.dim_values, Status.PASS if trivial_stride else Status.FAIL)

    evidence = gather_evidence(CONV, [outcome(CONV_DIMS)], run)
    assert len(asked) == 3  # the larger example, then S=1 and P=0 on the same values
    assert asked[1] == {**CONV_DIMS, "P": 0} and asked[2] == {**CONV_DIMS, "S": 1}
    assert evidence.needs == {"S": 2}  # only the stride's trivial value passed
    assert evidence.larger is not None and evidence.larger.example.dim_values == asked[0]


def test_no_evidence_is_run_without_a_failure_that_has_numbers():
    def run(example):
        raise AssertionError("nothing should run")

    errored = outcome(CONV_DIMS, Status.ERROR, tensors=())
    evidence = gather_evidence(CONV, [outcome(CONV_DIMS, Status.PASS), errored], run)
    assert evidence.larger is None and evidence.needs == {}


def test_smallness_orders_by_total_size_then_unscaled_first():
    small, big = outcome({"N": 1, "D": 2}), outcome({"N": 2, "D": 2})
    scaled = outcome({"N": 1, "D": 2}, scale=100.0, seed=0)
    assert sorted([big, scaled, small], key=smallness) == [small, scaled, big]
    assert smallest_failure([big, outcome({"N": 1, "D": 1}, Status.PASS), scaled]) == {
        "dims": {"N": 1, "D": 2},
        "seed": 0,
        "scale": 100.0,
    }
