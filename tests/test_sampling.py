"""The numpy sampler draws examples like the hypothesis strategy: ranges, `where`, batch of 1, boundaries first."""

from collections import Counter
from itertools import islice
from pathlib import Path

import pytest

from gradcheck.engine import Options, check_layer
from gradcheck.registry import load_registry
from gradcheck.results import Status
from gradcheck.sampling import SCALES, draw_examples, satisfies

AFFINE = """
  - name: {name}
    impl: gradcheck.layers.linear:Linear
    init: {{W: $W, b: $b}}
    params: {{W: [D, M], b: [M]}}
    inputs: {{x: [N, D]}}
    dims: {dims}
    where: {where}
"""
LAYERS = "layers:" + "".join(
    AFFINE.format(name=name, dims=dims, where=where)
    for name, dims, where in [
        ("plain", "{N: [1, 4], D: [1, 5], M: [2, 5]}", "[]"),
        ("constrained", "{N: [1, 4], D: [1, 5], M: [2, 5]}", '["D != M", "N * D * M < 100"]'),
        ("batch-from-two", "{N: [2, 5], D: [1, 5], M: [1, 5]}", "[]"),
        ("rare", "{N: [1, 4], D: [1, 5], M: [1, 5]}", '["N == 3", "D == 2", "M == 4"]'),
        ("impossible", "{N: [1, 4], D: [1, 5], M: [1, 5]}", '["D > 10"]'),
    ]
)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    path = tmp_path_factory.mktemp("sampling") / "layers.yaml"
    path.write_text(LAYERS)
    return load_registry(path)


def draws(spec, seed=0, count=4000):
    return list(islice(draw_examples(spec, seed), count))


def test_dims_stay_in_their_ranges_meet_where_and_cover_every_allowed_value(registry):
    spec = registry.get("constrained")
    examples = draws(spec)
    assert len(examples) == 4000
    for example in examples:
        dims = example.dim_values
        assert list(dims) == list(spec.dims)
        assert all(lo <= dims[name] <= hi for name, (lo, hi) in spec.dims.items()), dims
        assert dims["D"] != dims["M"] and dims["N"] * dims["D"] * dims["M"] < 100, dims
        assert satisfies(spec, dims)
    for name, (lo, hi) in spec.dims.items():
        assert {e.dim_values[name] for e in examples} == set(range(lo, hi + 1)), name


def test_the_batch_is_one_half_the_time_and_other_dims_are_uniform(registry):
    examples = draws(registry.get("plain"))[2:]  # past the two boundary examples
    n = len(examples)
    batch = Counter(e.dim_values["N"] for e in examples)
    assert abs(batch[1] / n - 0.5) < 0.03, batch
    for value in (2, 3, 4):  # the other half, spread evenly over [2, hi]
        assert abs(batch[value] / n - 0.5 / 3) < 0.03, batch
    for name, (lo, hi) in (("D", (1, 5)), ("M", (2, 5))):
        seen = Counter(e.dim_values[name] for e in examples)
        for value in range(lo, hi + 1):
            assert abs(seen[value] / n - 1 / (hi - lo + 1)) < 0.03, (name, seen)


def test_a_batch_whose_range_starts_above_one_is_uniform(registry):
    examples = draws(registry.get("batch-from-two"))[2:]
    batch = Counter(e.dim_values["N"] for e in examples)
    assert set(batch) == {2, 3, 4, 5}
    assert all(abs(count / len(examples) - 0.25) < 0.03 for count in batch.values()), batch


def test_value_seeds_and_scales_are_drawn_uniformly(registry):
    examples = draws(registry.get("plain"))[2:]
    seeds = [e.seed for e in examples]
    assert len(set(seeds)) == len(seeds) and all(0 <= s < 2**32 for s in seeds)
    assert max(seeds) > 2**31  # the whole 32-bit range, not a small corner of it
    scales = Counter(e.scale for e in examples)
    assert set(scales) == set(SCALES)
    assert all(abs(count / len(examples) - 1 / len(SCALES)) < 0.03 for count in scales.values()), scales


def test_the_smallest_then_the_largest_dims_come_first_then_the_largest_at_the_largest_magnitude(registry):
    spec = registry.get("plain")
    smallest, largest, loudest, *rest = draws(spec, seed=3, count=20)
    assert smallest.dim_values == {"N": 1, "D": 1, "M": 2} and smallest.scale == 1.0 and smallest.seed == 0
    assert largest.dim_values == {"N": 4, "D": 5, "M": 5} and largest.scale == 1.0
    assert loudest.dim_values == largest.dim_values and loudest.scale == max(SCALES) and loudest.seed != largest.seed
    assert {e.dim_values["N"] for e in rest} != {1} and {e.scale for e in rest} != {1.0}


def test_a_boundary_that_misses_where_is_left_out(registry):
    """constrained: the smallest dims (1, 1, 2) qualify, the largest (4, 5, 5) break both clauses."""
    spec = registry.get("constrained")
    first, second = draws(spec, seed=3, count=2)
    assert first.dim_values == {"N": 1, "D": 1, "M": 2} and first.seed == 0
    assert second.dim_values != {"N": 4, "D": 5, "M": 5}
    assert satisfies(spec, second.dim_values)


def test_draws_are_deterministic_for_a_seed_and_differ_between_seeds(registry):
    spec = registry.get("plain")
    assert draws(spec, seed=5, count=50) == draws(spec, seed=5, count=50)
    five, six = draws(spec, seed=5, count=50), draws(spec, seed=6, count=50)
    assert five[0] == six[0]  # the smallest example is the same for every seed
    assert all(a != b for a, b in zip(five[1:], six[1:], strict=True))
    assert draws(spec, seed=-5, count=50) != five  # a negative --seed works, and is another seed


def test_a_rarely_met_where_is_still_met(registry):
    examples = draws(registry.get("rare"), count=50)
    assert len(examples) == 50
    assert {tuple(e.dim_values.values()) for e in examples} == {(3, 2, 4)}


def test_an_unsatisfiable_where_ends_the_draws(registry):
    assert draws(registry.get("impossible")) == []


@pytest.mark.parametrize("seed", range(50))
def test_every_magnitude_comes_within_the_first_seven_examples(registry, seed):
    """An overflow shows only at inputs of ~1e3: a default run of 20 examples must always meet them."""
    first = list(islice(draw_examples(registry.get("plain"), seed), 7))
    assert set(SCALES) <= {e.scale for e in first}
    assert [e.scale for e in first].count(max(SCALES)) >= 2  # once at the largest dims


GROUPNORM = load_registry(Path(__file__).resolve().parent / "fixtures" / "realcode_report" / "groupnorm.yaml")


@pytest.mark.parametrize("seed", range(0, 400, 7))
def test_every_dim_reaches_its_minimum_and_maximum_when_where_rejects_the_corner(seed):
    """groupnorm: `where: K*H*W >= 2` rejects the all-minimum example; C=1, N=1... must come anyway."""
    spec = GROUPNORM.get("groupnorm-c1-crash")
    first = [e.dim_values for e in islice(draw_examples(spec, seed), 8)]
    assert all(satisfies(spec, dims) for dims in first)
    for name, (lo, hi) in spec.dims.items():
        seen = {dims[name] for dims in first}
        assert lo in seen and hi in seen, (name, seen)


def test_extremes_no_allowed_example_has_are_not_forced(registry):
    """rare: only N=3, D=2, M=4 is allowed; no extreme can be reached, and the draws go on as before."""
    assert {tuple(e.dim_values.values()) for e in draws(registry.get("rare"), count=20)} == {(3, 2, 4)}


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 5, 8, 13, 21])
def test_a_forward_that_crashes_at_one_group_is_an_error_at_every_seed(seed):
    result = check_layer(GROUPNORM.get("groupnorm-c1-crash"), Options(seed=seed, examples=10))
    assert result.status is Status.ERROR, result.message
    assert "need at least one array" in result.message and result.failing_dims["C"] == 1


def test_the_same_group_norm_without_the_slip_passes():
    assert check_layer(GROUPNORM.get("groupnorm-right"), Options(seed=0, examples=10)).status is Status.PASS
