"""A constant factor is named only when one ratio explains every element of every failing example."""

from pathlib import Path

import numpy as np
import pytest

from gradcheck.diagnosis import diagnose
from gradcheck.examples import ExampleOutcome, TensorOutcome
from gradcheck.registry import load_registry
from gradcheck.results import Status
from gradcheck.sampling import Example

ROOT = Path(__file__).resolve().parent.parent
LINEAR = load_registry(ROOT / "layers.yaml").get("linear")


def failing(analytic, numeric, n=4, d=3, m=5, seed=0):
    """A FAIL outcome of W in an example with dims N, D, M."""
    analytic, numeric = np.asarray(analytic, float), np.asarray(numeric, float)
    tensor = TensorOutcome(
        "W", "param", analytic, numeric, np.full(numeric.shape, 1e-9), np.abs(analytic - numeric) > 1e-9
    )
    example = ExampleOutcome(Example((("N", n), ("D", d), ("M", m)), seed), Status.FAIL, tensors=[tensor])
    return tensor, example


def numeric(seed=0, shape=(3, 5)):
    return np.random.default_rng(seed).standard_normal(shape)


def guess(analytic, numeric_, others=()):
    tensor, example = failing(analytic, numeric_)
    return diagnose(LINEAR, tensor, example, others=others)


def test_a_mismatch_of_three_parts_in_ten_thousand_is_not_a_constant_factor():
    n = numeric()
    wobble = 3e-4 * np.abs(n).max() * numeric(1)  # element by element, not proportional to n
    assert "constant factor" not in guess(n + wobble, n)
    assert guess(n + wobble, n) == ""


def test_a_constant_ratio_near_one_is_reported_as_measured_not_as_a_factor():
    n = numeric()
    text = guess(1.0003 * n, n)
    assert "constant factor" not in text and "1.0003 x numeric" in text and "0.03%" in text


def test_a_missing_recurrent_term_is_not_a_constant_factor():
    """dWh of an RNN step missing the term through the previous hidden state: a = n - (part of n)."""
    n = numeric()
    recurrent = 0.2 * numeric(2) * np.abs(n).max()
    assert guess(n - recurrent, n) == ""
    # even where one example's few elements happen to fit a ratio, another example's do not
    small_a, small_n = np.array([[1.3, 2.6, -3.9]]), np.array([[1.0, 2.0, -3.0]])
    assert guess(small_a, small_n, others=[failing(n - recurrent, n, seed=1)]) == ""


def test_a_real_factor_of_two_is_still_named():
    n = numeric()
    assert "factor of 2 too many" in guess(2 * n, n, others=[failing(2 * numeric(3), numeric(3), seed=3)])
    assert "constant factor is off" in guess(3 * n, n)


def test_a_factor_that_changes_between_examples_is_not_named():
    n, other = numeric(), numeric(4)
    assert guess(3 * n, n, others=[failing(2.5 * other, other, seed=4)]) == ""


@pytest.mark.parametrize("batch", [2, 3, 4])
def test_the_batch_mean_is_named_across_examples_of_different_batch_sizes(batch):
    n, other = numeric(shape=(batch, 5)), numeric(5, shape=(3, 5))
    tensor, example = failing(n / batch, n, n=batch)
    text = diagnose(LINEAR, tensor, example, others=[failing(other / 3, other, n=3, seed=5)])
    assert f"numeric / {batch}: backward averages over the batch" in text
