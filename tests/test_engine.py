"""The checker against the built-in registry: every correct layer passes, every perturbed one fails."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from layer_expectations import wrong_from_three_features

from gradcheck.api import check_layer as check_named
from gradcheck.engine import Options, check_layer
from gradcheck.examples import check_example
from gradcheck.registry import load_registry
from gradcheck.results import Status
from gradcheck.sampling import Example
from gradcheck.spec import DEFAULT_TOLERANCES

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = load_registry(ROOT / "layers.yaml")
NAMES = REGISTRY.names()


@pytest.mark.parametrize("mode", ["auto", "fast"])
@pytest.mark.parametrize("name", NAMES)
def test_builtin_layer_passes(name, mode):
    result = check_layer(REGISTRY.get(name), Options(seed=0, mode=mode))
    assert result.status is Status.PASS, result.message
    assert result.examples >= 10


def _config(tmp_path: Path, layers: str, **modules: str) -> Path:
    """A layers.yaml with `layers` as its text and the modules it names, written to tmp_path."""
    for name, source in modules.items():
        (tmp_path / f"{name}.py").write_text(source)
    config = tmp_path / "layers.yaml"
    config.write_text(layers)
    return config


def _scaled_backward(cls, factor: float):
    """A subclass whose backward returns its first gradient (or first parameter gradient) times factor."""

    class Scaled(cls):
        def backward(self, *douts):
            out = super().backward(*douts)
            if out is None:
                name = "d" + next(iter(self._param_names))
                setattr(self, name, getattr(self, name) * factor)
                return None
            if isinstance(out, tuple):
                return (out[0] * factor,) + tuple(out[1:])
            return out * factor

    return Scaled


def _scaled_loss(function, factor: float):
    def scaled(*args, **kwargs):
        loss, dx = function(*args, **kwargs)
        return loss, dx * factor

    return scaled


@pytest.mark.parametrize("mode", ["auto", "fast"])
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("factor", [1 + 1e-3, -1.0])
def test_builtin_layer_with_a_wrong_gradient_fails(name, factor, mode):
    spec = REGISTRY.get(name)
    if spec.style == "loss":
        spec = replace(spec, function=_scaled_loss(spec.function, factor))
    else:
        target = _scaled_backward(spec.target, factor)
        target._param_names = [p.name for p in spec.params]
        spec = replace(spec, target=target)
    result = check_layer(spec, Options(seed=0, mode=mode))
    assert result.status is Status.FAIL, f"{name} with gradient x{factor} gave {result.status}: {result.message}"
    failing = [t.name for t in result.tensors if t.status is Status.FAIL]
    expected = spec.differentiable_inputs[0].name if spec.differentiable_inputs else spec.params[0].name
    assert failing == [expected]


def test_failure_names_tensor_worst_element_and_reproduces():
    spec = REGISTRY.get("linear")
    target = _scaled_backward(spec.target, 1.01)
    target._param_names = ["W", "b"]
    wrong = replace(spec, target=target)
    first = check_layer(wrong, Options(seed=3))
    again = check_layer(wrong, Options(seed=3))
    assert first.status is Status.FAIL and again.status is Status.FAIL
    assert first.failing_dims == again.failing_dims
    tensor = next(t for t in first.tensors if t.status is Status.FAIL)
    assert tensor.name == "x" and tensor.worst_index is not None
    assert abs(tensor.analytic - 1.01 * tensor.numeric) < 1e-6 * abs(tensor.numeric)
    assert "--seed 3" in first.repro


def test_batch_mean_bug_is_diagnosed():
    spec = REGISTRY.get("linear")

    class Averaged(spec.target):
        def backward(self, dout):
            dx = super().backward(dout)
            self.dW = self.dW / dout.shape[0]
            return dx

    result = check_layer(replace(spec, target=Averaged), Options(seed=0))
    weight = next(t for t in result.tensors if t.name == "W")
    assert weight.status is Status.FAIL
    assert result.failing_dims["N"] > 1
    assert "average" in weight.diagnosis and "batch" in weight.diagnosis


def test_large_inputs_and_outputs_do_not_raise_false_alarms():
    spec = REGISTRY.get("mse")
    for seed in range(5):
        outcome = check_example(spec, Example((("N", 3), ("D", 4)), seed, scale=1000.0), DEFAULT_TOLERANCES)
        assert outcome.status is Status.PASS, outcome.message


def test_steadiness_tells_kinks_from_real_gaps():
    from gradcheck.finite_diff import is_steady

    x = np.array([1e-7, 2.0])
    base = (np.abs(x),)
    upstream = [np.ones(2)]
    evaluate = lambda moved: (np.abs(moved),)  # noqa: E731
    # abs straddled at 1e-7 (step 1e-6): the reference is a kink, not a verdict
    assert not is_steady(evaluate, x, base, upstream, 1e-6, 0, analytic=1.0, numeric=0.1)
    # smooth at 2.0: a gap of 1e-3 between analytic and numeric is real
    assert is_steady(evaluate, x, base, upstream, 1e-6, 1, analytic=1.001, numeric=1.0)


KINK_YAML = """
layers:
  - name: abs-on-kink
    impl: kinks.py:Abs
    inputs: {x: {shape: [N, D], range: [0.2999995, 0.3000005]}}
    dims: {N: [1, 3], D: [1, 3]}
  - name: relu-near-kink
    impl: kinks.py:Relu
    inputs: {x: {shape: [N, D], range: [-0.01, 0.01]}}
    dims: {N: [1, 4], D: [1, 8]}
  - name: relu-near-kink-wrong
    impl: kinks.py:ReluWrong
    inputs: {x: {shape: [N, D], range: [-0.01, 0.01]}}
    dims: {N: [1, 4], D: [1, 8]}
"""

KINK_LAYERS = """
import numpy as np

class Abs:
    def forward(self, x):
        self.x = x
        return np.abs(x - 0.3)
    def backward(self, dout):
        return dout * np.sign(self.x - 0.3)

class Relu:
    def forward(self, x):
        self.mask = x >= 0
        return x * self.mask
    def backward(self, dout):
        return dout * self.mask

class ReluWrong(Relu):
    def backward(self, dout):
        return dout * (self.mask + 0.01)
"""


def test_kinks_are_skipped_not_failed_and_bugs_near_them_still_fail(tmp_path):
    config = _config(tmp_path, KINK_YAML, kinks=KINK_LAYERS)
    on_kink = check_named("abs-on-kink", config, seed=0, examples=10)
    assert on_kink.status is Status.SKIP and on_kink.kinks > 0
    near = check_named("relu-near-kink", config, seed=0, examples=50)
    assert near.status is Status.PASS, near.message
    wrong = check_named("relu-near-kink-wrong", config, seed=0, examples=50)
    assert wrong.status is Status.FAIL


def test_a_bug_away_from_kinks_is_not_hidden():
    spec = REGISTRY.get("relu")

    class Leaky(spec.target):
        def backward(self, dout):
            return super().backward(dout) + 0.01 * dout  # passes gradient where x < 0

    result = check_layer(replace(spec, target=Leaky), Options(seed=0))
    assert result.status is Status.FAIL


def test_results_are_deterministic_for_a_seed():
    spec = REGISTRY.get("conv2d")
    a, b = check_layer(spec, Options(seed=11, examples=5)), check_layer(spec, Options(seed=11, examples=5))
    assert [t.max_abs_error for t in a.tensors] == [t.max_abs_error for t in b.tensors]


def test_upstream_gradient_is_gaussian_not_ones():
    from gradcheck.sampling import draw_upstream

    (r,) = draw_upstream((np.zeros((4, 5)),), 0)
    assert r.shape == (4, 5) and np.std(r) > 0.3 and np.any(r < 0)
    assert draw_upstream((np.float64(2.0),), 0) == [1.0]


def test_fast_mode_checks_fewer_points_on_a_large_tensor_and_still_catches_one_wrong_element():
    spec = REGISTRY.get("linear")
    big = replace(spec, dims={"N": (64, 64), "D": (64, 64), "M": (8, 8)})
    full = check_layer(big, Options(seed=0, examples=1, mode="full"))
    fast = check_layer(big, Options(seed=0, examples=1, mode="fast"))
    assert full.status is fast.status is Status.PASS
    assert fast.calls["forward"] * 5 < full.calls["forward"]

    class OneWrong(spec.target):
        def backward(self, dout):
            dx = super().backward(dout)
            dx[3, 5] *= 1.01
            return dx

    wrong = check_layer(replace(big, target=OneWrong), Options(seed=0, examples=1, mode="fast"))
    assert wrong.status is Status.FAIL
    assert next(t for t in wrong.tensors if t.name == "x").worst_index == (3, 5)


def test_steadiness_sees_two_kinks_closer_than_any_large_step():
    """Max-pool near-ties: kinks 0.04h and 0.1h away; every step >= 0.37h sees a flat average."""
    from gradcheck.finite_diff import is_steady, numerical_gradient

    x0 = 0.918e-5

    def f(x):
        inside = 0.42 * np.clip(x, x0 - 4e-8, x0 + 1e-7)
        return (inside - 0.45 * np.maximum(x - (x0 + 1e-7), 0.0),)

    x = np.array([x0])
    upstream = [np.ones(1)]
    numeric = float(numerical_gradient(f, x, upstream, 1e-6).value[0])
    assert abs(numeric - 0.42) > 0.3  # the plain centred difference is fooled
    assert not is_steady(f, x, f(x), upstream, 1e-6, 0, analytic=0.42, numeric=numeric)
    # while a wrong analytic value on a smooth function is still a real failure
    smooth = lambda v: (0.42 * v,)  # noqa: E731
    assert is_steady(smooth, x, smooth(x), upstream, 1e-6, 0, analytic=0.4242, numeric=0.42)


@pytest.mark.parametrize("seed", [3, 4])
def test_quantised_intermediates_are_not_a_failure(seed):
    """lse - x[y] with both ~1e3: a true change of 1e-15 vanishes below the last digit of lse.

    Found by a 500-example sweep; the output never moves, so only the size of the drawn values
    tells how much change could hide there.
    """
    config = Path(__file__).parent / "fixtures" / "adversarial" / "scales.yaml"
    result = check_named("logsumexp-loss-large-scores", config, seed=seed, examples=500)
    assert result.status is Status.PASS, result.message


def test_batch_norm_over_two_samples_at_large_inputs_is_not_a_failure():
    """Found by a 300-example sweep: true gradients of ~1e-8 that the exact formula computes to
    a few digits only; atol shrinks no further than the layer's natural gradient scale."""
    result = check_layer(REGISTRY.get("batch-norm"), Options(seed=6, examples=300))
    assert result.status is Status.PASS, result.message


LOSS_AS_ARRAY = """
import numpy as np

class MeanSquare:
    def forward(self, x):
        self.x = x
        return np.array([np.mean(x ** 2)])     # a loss returned as a one-element array
    def backward(self, dout=1):
        return 2 * self.x / self.x.size        # ignores dout, as losses may

class MeanSquareWrong(MeanSquare):
    def backward(self, dout=1):
        return self.x / self.x.size
"""


def test_a_loss_returned_as_a_one_element_array_gets_upstream_one(tmp_path):
    config = _config(
        tmp_path,
        "layers:\n"
        "  - {name: ms, impl: losses.py:MeanSquare, inputs: {x: [N, D]}, dims: {N: [1, 4], D: [1, 3]}}\n"
        "  - {name: ms-wrong, impl: losses.py:MeanSquareWrong, inputs: {x: [N, D]}, dims: {N: [1, 4], D: [1, 3]}}\n",
        losses=LOSS_AS_ARRAY,
    )
    assert check_named("ms", config, seed=0).status is Status.PASS
    assert check_named("ms-wrong", config, seed=0).status is Status.FAIL


def test_a_class_backward_may_return_its_parameter_gradients(tmp_path):
    """`return dx, dW, db` with nothing stored on the object: the returned ones are checked."""
    fixture = Path(__file__).parent / "fixtures" / "returned_param_grads.py"
    entry = (
        "{{name: {0}, impl: ret.py:{1}, init: {{W: $W, b: $b}}, params: {{W: [D, M], b: [M]}}, "
        "inputs: {{x: [N, D]}}, dims: {{N: [1, 4], D: [1, 3], M: [1, 3]}}}}"
    )
    config = _config(
        tmp_path,
        "layers:\n  - " + entry.format("ret", "Affine") + "\n  - " + entry.format("ret-wrong", "AffineWrong") + "\n",
        ret=fixture.read_text(),
    )
    assert check_named("ret", config, seed=0).status is Status.PASS
    wrong = check_named("ret-wrong", config, seed=0)
    assert wrong.status is Status.FAIL
    assert [t.name for t in wrong.tensors if t.status is Status.FAIL] == ["W"]


def test_gelu_far_in_the_negative_tail_is_not_a_failure():
    """Found by a 300-example sweep: with Phi = (1 + erf) / 2 the sum cancelled at x = -7.7 and
    the forward's own rounding hid its gradient; the layer now uses erfc."""
    result = check_layer(REGISTRY.get("gelu"), Options(seed=10, examples=300))
    assert result.status is Status.PASS, result.message


# -- numpy first, the dims descent on failure ---------------------------------------------------
def _no_hypothesis(*args, **kwargs):
    raise AssertionError("hypothesis was called for a passing layer")


@pytest.mark.parametrize("name", ["linear", "conv2d", "batch-norm"])
def test_a_passing_layer_is_checked_over_numpy_draws_without_hypothesis(name, monkeypatch):
    import hypothesis

    monkeypatch.setattr(hypothesis, "given", _no_hypothesis)
    result = check_layer(REGISTRY.get(name), Options(seed=0, examples=12))
    assert result.status is Status.PASS, result.message
    assert result.examples == 12  # examples drawn again for kinks are counted apart (redrawn)


def _spy_on_draws(monkeypatch) -> list:
    """Record the examples the numpy sampler hands to the engine."""
    import gradcheck.engine as engine

    drawn, original = [], engine.draw_examples

    def spy(spec, seed):
        for example in original(spec, seed):
            drawn.append(example)
            yield example

    monkeypatch.setattr(engine, "draw_examples", spy)
    return drawn


def test_a_failure_found_by_numpy_is_shrunk_by_the_descent_without_hypothesis(monkeypatch):
    import hypothesis

    from gradcheck.engine import SHRINK_BUDGET

    spec = REGISTRY.get("linear")
    drawn = _spy_on_draws(monkeypatch)
    monkeypatch.setattr(hypothesis, "given", _no_hypothesis)
    result = check_layer(replace(spec, target=wrong_from_three_features(spec.target)), Options(seed=0))
    assert result.status is Status.FAIL
    found = drawn[-1].dim_values  # the numpy draw that failed: the sampler stops at the first failure
    assert found["D"] >= 3 and sum(found.values()) > 5, found  # not already the smallest (else pick another seed)
    assert result.failing_dims == {"N": 1, "D": 3, "M": 1}
    assert result.examples <= len(drawn) + SHRINK_BUDGET


def test_the_numpy_failure_stands_when_no_shrink_is_allowed(monkeypatch):
    """With no budget for shrinking, the failure the sampler found is reported as it was drawn."""
    import gradcheck.engine as engine

    spec = REGISTRY.get("linear")
    drawn = _spy_on_draws(monkeypatch)
    monkeypatch.setattr(engine, "SHRINK_BUDGET", 0)
    result = check_layer(replace(spec, target=wrong_from_three_features(spec.target)), Options(seed=0))
    assert result.status is Status.FAIL
    assert result.failing_dims == drawn[-1].dim_values != {"N": 1, "D": 3, "M": 1}
    assert result.examples == len(drawn)


def test_where_clauses_that_no_dims_satisfy_are_an_error(tmp_path):
    config = _config(
        tmp_path,
        "layers:\n"
        "  - {name: never, impl: gradcheck.layers.activations:ReLU, inputs: {x: [N, D]},\n"
        "     dims: {N: [1, 4], D: [1, 6]}, where: ['D > 10']}\n",
    )
    result = check_named("never", config, seed=0)
    assert result.status is Status.ERROR
    assert "no dims satisfy every 'where' clause" in result.message


def test_a_loss_moving_in_whole_ulps_of_its_intermediate_is_not_a_failure():
    """Found by the numpy sampler at seed 4: at scores ~1e2 the loss moves by 2 ulps of lse for
    a step h and by 4 for 2h, so h and 2h agree exactly and the sweep alone cannot tell."""
    spec = load_registry(ROOT / "tests" / "fixtures" / "adversarial" / "scales.yaml").get("logsumexp-loss-large-scores")
    example = Example((("N", 1), ("C", 5)), 4146172987, 100.0)
    outcome = check_example(spec, example, DEFAULT_TOLERANCES)
    assert outcome.status is Status.PASS, [(t.name, t.analytic, t.numeric) for t in outcome.tensors]


ARGS_KEEPER = """
import numpy as np


def scale_forward(x, state):
    # cs231n's bn_param style: forward writes into a dict it was given; the output depends on it
    state["calls"] = state.get("calls", 0) + 1
    state["seen"] = np.append(state.get("seen", np.zeros(0)), x.sum())
    return x * (1.0 + state["calls"]), (x, state["calls"])


def scale_backward(dout, cache):
    return dout * (1.0 + cache[1])
"""


def test_every_forward_gets_its_own_copy_of_nested_args(tmp_path):
    """A forward that writes into its keyword arguments (nested dicts, arrays) never sees another call's writes."""
    config = _config(
        tmp_path,
        "layers:\n"
        "  - {name: keeper, impl: keeper.py, style: functions, forward: scale_forward, backward: scale_backward,\n"
        "     inputs: {x: [N, D]}, args: {state: {seen: [0.0]}}, dims: {N: [1, 3], D: [1, 3]}}\n",
        keeper=ARGS_KEEPER,
    )
    result = check_named("keeper", config, seed=0)
    assert result.status is Status.PASS, result.message


LATE_WRITER = """
import numpy as np

class LateWriter:
    calls = 0  # across copies of the object: the first forward is the reference

    def __init__(self, W):
        self.W = W

    def forward(self, x):
        LateWriter.calls += 1
        self.x = x
        out = x @ self.W
        if LateWriter.calls == 4:
            x *= 2.0  # from then on, every forward that shares this x sees it doubled
        return out

    def backward(self, dout):
        self.dW = self.x.T @ dout
        return dout @ self.W.T
"""


def test_a_forward_that_writes_into_its_input_after_the_first_call_is_caught(tmp_path):
    """Forwards share one copy of the tensors they do not move; one that writes into it later is a FAIL naming it."""
    config = _config(
        tmp_path,
        "layers:\n  - {name: late, impl: late.py:LateWriter, init: {W: $W}, params: {W: [D, M]}, "
        "inputs: {x: [N, D]}, dims: {N: [2, 2], D: [3, 3], M: [2, 2]}, examples: 1}\n",
        late=LATE_WRITER,
    )
    result = check_layer(load_registry(config).get("late"), Options(seed=0, mode="full"))
    assert result.status is Status.FAIL
    assert "forward modified its input 'x' in place" in result.message


STATEFUL = """
import numpy as np

class Counting:
    def __init__(self, W):
        self.W = W
        self.calls = np.zeros(1)  # state forward updates in place, as running statistics are

    def forward(self, x):
        self.calls += 1
        self.x = x
        return self.calls[0] * (x @ self.W)

    def backward(self, dout):
        self.dW = self.calls[0] * (self.x.T @ dout)
        return self.calls[0] * (dout @ self.W.T)

class CountingInAList(Counting):
    def __init__(self, W):
        super().__init__(W)
        self.params = [self.W]  # a container aliasing the parameter: copied the general way
"""


@pytest.mark.parametrize("layer", ["Counting", "CountingInAList"])
def test_every_forward_runs_on_its_own_copy_of_the_layer_state(tmp_path, layer):
    """State a forward updates in place never reaches the next forward: each sees calls == 1."""
    config = _config(
        tmp_path,
        f"layers:\n  - {{name: counting, impl: state.py:{layer}, init: {{W: $W}}, params: {{W: [D, M]}}, "
        "inputs: {x: [N, D]}, dims: {N: [1, 3], D: [1, 3], M: [1, 3]}}\n",
        state=STATEFUL,
    )
    result = check_layer(load_registry(config).get("counting"), Options(seed=0, mode="full"))
    assert result.status is Status.PASS, result.message


def test_examples_drawn_again_at_kinks_are_reported_as_redrawn_not_as_examples():
    import io
    import json

    from rich.console import Console

    from gradcheck.reporters import render
    from gradcheck.reporters.table import print_run
    from gradcheck.results import RunResult

    kinked = load_registry(Path(__file__).parent / "fixtures" / "adversarial" / "kinked.yaml")
    result = check_layer(kinked.get("relu-ge-on-kink"), Options(seed=0, examples=10))
    assert result.status is Status.PASS, result.message
    assert result.examples == 10
    assert result.redrawn > 0 and result.kinks > 0
    (layer,) = json.loads(render("json", RunResult((result,), 1.0, 0)))["layers"]
    assert layer["examples"] == 10 and layer["examples_redrawn"] == result.redrawn
    buffer = io.StringIO()
    print_run(Console(file=buffer, width=200, no_color=True), RunResult((result,), 1.0, 0), detail=True)
    assert f"{result.redrawn} example(s) drawn again" in buffer.getvalue()
