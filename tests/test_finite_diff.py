"""The finite-difference kernels: the vectorised weighing against one perturbation at a time."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck import finite_diff
from gradcheck.finite_diff import element_differences, numerical_gradient, weigh, weigh_per_sample


def _layer(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two outputs per sample, both depending only on that sample: (tanh(x) * 3, sum of squares)."""
    return np.tanh(x) * 3.0, np.sum(x**2, axis=1)


def _exact(x: np.ndarray, upstream) -> np.ndarray:
    r0, r1 = upstream
    return r0 * 3.0 * (1.0 - np.tanh(x) ** 2) + 2.0 * x * r1[:, None]


@pytest.fixture
def problem():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3))
    upstream = [rng.standard_normal((4, 3)), rng.standard_normal(4)]
    return x, upstream


def test_stacked_weighing_matches_one_perturbation_at_a_time(problem):
    x, upstream = problem
    rng = np.random.default_rng(6)
    pluses = [_layer(x + 1e-6 * rng.standard_normal(x.shape)) for _ in range(5)]
    minuses = [_layer(x - 1e-6 * rng.standard_normal(x.shape)) for _ in range(5)]
    stacked = [[np.stack(col) for col in zip(*side, strict=False)] for side in (pluses, minuses)]
    total, rounding = weigh_per_sample(upstream, stacked[0], stacked[1], 4)
    assert total.shape == rounding.shape == (5, 4)
    for k in range(5):
        one, one_rounding = weigh_per_sample(upstream, [o[None] for o in pluses[k]], [o[None] for o in minuses[k]], 4)
        np.testing.assert_allclose(total[k], one[0], rtol=1e-12)
        np.testing.assert_allclose(rounding[k], one_rounding[0], rtol=1e-12)
        whole, whole_rounding = weigh(upstream, pluses[k], minuses[k])
        assert whole == pytest.approx(float(np.sum(one)), rel=1e-12)
        assert whole_rounding == pytest.approx(float(np.sum(one_rounding)), rel=1e-12)


def test_rounding_counts_moved_and_unmoved_outputs_apart():
    """A changed output carries ROUNDING_SAFETY ulps of its size, an unchanged one a single ulp."""
    plus, minus = np.array([[2.0, 5.0]]), np.array([[1.0, 5.0]])
    total, rounding = weigh_per_sample([np.array([1.0, -1.0])], [plus], [minus], 1)
    assert total[0, 0] == 1.0
    expected = finite_diff.ROUNDING_SAFETY * finite_diff.EPS64 * 2.0 + finite_diff.EPS64 * 5.0
    assert rounding[0, 0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("block", [1, 7, 1 << 18])
def test_gradients_do_not_depend_on_the_block_size(problem, monkeypatch, block):
    x, upstream = problem
    monkeypatch.setattr(finite_diff, "BLOCK_ELEMENTS", block)
    plain = numerical_gradient(_layer, x, upstream, 1e-6)
    coloured = numerical_gradient(_layer, x, upstream, 1e-6, by_sample=True)
    exact = _exact(x, upstream)
    np.testing.assert_allclose(plain.value, exact, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(coloured.value, exact, rtol=1e-7, atol=1e-8)
    assert np.all(plain.rounding > 0) and np.all(coloured.rounding > 0)


def test_a_wrong_column_is_not_averaged_away(problem):
    """Blocked weighing keeps columns apart: a layer wrong in one element shows it in that element only."""
    x, upstream = problem

    def shifted(moved):  # adds 1e-3 * x[2, 1]**2 to output 0's element [2, 1]: d/dx[2,1] is off by 2e-3 x[2,1] r
        out, squares = _layer(moved)
        out = out.copy()
        out[2, 1] += 1e-3 * moved[2, 1] ** 2
        return out, squares

    estimate = numerical_gradient(shifted, x, upstream, 1e-6)
    gap = np.abs(estimate.value - _exact(x, upstream))
    assert gap[2, 1] == pytest.approx(abs(2e-3 * x[2, 1] * upstream[0][2, 1]), rel=1e-4)
    gap[2, 1] = 0
    assert gap.max() < 1e-8


def test_an_output_moved_by_a_few_ulps_of_a_large_intermediate_carries_them():
    """lse - x[y] at scores ~1e2: the loss moves in whole ulps of lse. Only a change within QUANTA
    ulps of the largest drawn value gets that allowance, and the steadiness sweep never does."""
    hidden = 138.0
    quantum = finite_diff.EPS64 * hidden
    base = np.array([[4e-10]])
    few, many = base + 2 * quantum, base + 10 * finite_diff.QUANTA * quantum
    _, plain = weigh_per_sample([np.ones((1, 1))], [few[None]], [base[None]], 1, 0.0)
    _, grained = weigh_per_sample([np.ones((1, 1))], [few[None]], [base[None]], 1, hidden)
    assert grained[0, 0] - plain[0, 0] == pytest.approx(2 * quantum, rel=1e-9)
    _, sweep = weigh_per_sample([np.ones((1, 1))], [few[None]], [base[None]], 1, hidden, grains=False)
    assert sweep[0, 0] == pytest.approx(plain[0, 0], rel=1e-9)
    _, far_plain = weigh_per_sample([np.ones((1, 1))], [many[None]], [base[None]], 1, 0.0)
    _, far = weigh_per_sample([np.ones((1, 1))], [many[None]], [base[None]], 1, hidden)
    assert far[0, 0] == pytest.approx(far_plain[0, 0], rel=1e-9)


def test_some_elements_alone_give_the_same_numbers_as_the_whole_tensor(problem, monkeypatch):
    """The per-element path and the path for chosen elements are one kernel: the same differences, bit for bit."""
    x, upstream = problem
    monkeypatch.setattr(finite_diff, "BLOCK_ELEMENTS", 7)  # several blocks, so block edges are crossed too
    whole = numerical_gradient(_layer, x, upstream, 1e-6)
    each = finite_diff._each_from_single(_layer)
    indices = np.array([0, 5, 6, 11])
    part = element_differences(each, x, indices, upstream, 1e-6)
    assert np.array_equal(part.value, whole.value.reshape(-1)[indices])
    assert np.array_equal(part.rounding, whole.rounding.reshape(-1)[indices])
