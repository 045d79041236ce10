"""exp overflow, log of an underflowed probability, and an ignored `+ eps` inside log are told apart."""

from pathlib import Path

import numpy as np
import pytest

from gradcheck.engine import Options, check_layer
from gradcheck.registry import load_registry
from gradcheck.results import Status
from gradcheck.user_code import float_errors, nonfinite_cause

LOSSES = load_registry(Path(__file__).resolve().parent / "fixtures" / "realcode_report" / "losses.yaml")
MAX_HINT, LOG_HINT, EPS_HINT = "subtract the max before exp", "log(0) of a value that underflowed", "`+ eps`"


def _check(name, seed):
    return check_layer(LOSSES.get(name), Options(seed=seed, examples=20))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exp_without_the_max_is_an_overflow(seed):
    result = _check("softmax-loss-no-max", seed)
    assert result.status is Status.FAIL and "non-finite" in result.message
    assert MAX_HINT in result.message and LOG_HINT not in result.message


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_log_of_an_underflowed_probability_is_not_called_an_overflow(seed):
    result = _check("softmax-loss-log-of-probability", seed)
    assert result.status is Status.FAIL and "non-finite" in result.message
    assert LOG_HINT in result.message and MAX_HINT not in result.message


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_backward_ignoring_eps_inside_log_is_named(seed):
    result = _check("softmax-loss-eps", seed)
    x = next(t for t in result.tensors if t.name == "x")
    assert result.status is Status.FAIL and x.status is Status.FAIL
    assert EPS_HINT in x.diagnosis and MAX_HINT not in x.diagnosis + result.message


def test_the_stable_loss_passes():
    assert _check("softmax-loss-right", 0).status is Status.PASS


def test_float_errors_tell_overflow_from_log_of_zero_and_domain():
    big, small = np.array([1000.0, 0.0]), np.array([-1000.0, 0.0])
    assert nonfinite_cause(float_errors(lambda: np.exp(big))).endswith(MAX_HINT)
    assert LOG_HINT in nonfinite_cause(float_errors(lambda: np.log(np.exp(small))))
    assert "domain" in nonfinite_cause(float_errors(lambda: np.log(-big - 1)))
    assert float_errors(lambda: np.log(big + 1)) == set()


def test_a_raising_call_still_reports_the_flags_it_raised_first():
    def overflow_then_raise():
        np.exp(np.array([1000.0]))
        raise ValueError("late")

    assert "overflow" in float_errors(overflow_then_raise)
