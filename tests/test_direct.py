"""gradcheck.check: a layer checked from Python with no layers.yaml, right layers and bugged twins."""

from __future__ import annotations

import numpy as np
import pytest

import gradcheck
from gradcheck.errors import ConfigError
from gradcheck.results import Status


class Affine:
    """out = x @ W + b, gradients left in dW and db."""

    def __init__(self, W, b):
        self.W, self.b = W, b

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = dout.sum(axis=0)
        return dout @ self.W.T


class AffineBiasMean(Affine):
    def backward(self, dout):
        dx = super().backward(dout)
        self.db = dout.mean(axis=0)  # BUG: a mean where forward broadcasts (a sum)
        return dx


def affine_forward(x, w, b):
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def affine_backward_transposed(dout, cache):
    x, w, b = cache
    return dout @ w.T, (x.T @ dout).T.reshape(w.shape), dout.sum(axis=0)  # BUG: dw transposed


def softmax_loss(x, y):
    shifted = x - x.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    n = x.shape[0]
    loss = -log_p[np.arange(n), y].mean()
    dx = p.copy()
    dx[np.arange(n), y] -= 1
    return loss, dx / n


def softmax_loss_unaveraged(x, y):
    loss, dx = softmax_loss(x, y)
    return loss, dx * x.shape[0]  # BUG: forgets the 1/N of the mean


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    return {
        "x": rng.standard_normal((4, 3)),
        "W": rng.standard_normal((3, 3)),
        "b": rng.standard_normal(3),
        "scores": rng.standard_normal((5, 4)),
        "y": rng.integers(0, 4, 5),
    }


def test_the_three_calls_pass_on_right_layers(arrays):
    x, W, b, scores, y = (arrays[k] for k in ("x", "W", "b", "scores", "y"))
    results = [
        gradcheck.check(Affine(W, b), x, params=["W", "b"]),
        gradcheck.check((affine_forward, affine_backward), x, W, b),
        gradcheck.check(softmax_loss, scores, y, style="loss"),
    ]
    for result in results:
        result.assert_ok()
        assert result.passed and result.status is Status.PASS and result.examples == 1
    assert [t.name for t in results[0].tensors] == ["x", "W", "b"]
    assert [t.name for t in results[1].tensors] == ["x", "w", "b"]
    assert [t.name for t in results[2].tensors] == ["x"]  # y is data: never perturbed


def test_the_three_calls_fail_on_bugged_twins(arrays):
    x, W, b, scores, y = (arrays[k] for k in ("x", "W", "b", "scores", "y"))
    cases = [
        (gradcheck.check(AffineBiasMean(W, b), x, params=["W", "b"]), "b"),
        (gradcheck.check((affine_forward, affine_backward_transposed), x, W, b), "w"),
        (gradcheck.check(softmax_loss_unaveraged, scores, y, style="loss"), "x"),
    ]
    for result, culprit in cases:
        assert result.status is Status.FAIL and not result.passed
        assert [t.name for t in result.tensors if t.status is Status.FAIL] == [culprit]
        with pytest.raises(AssertionError) as caught:
            result.assert_ok()
        account = str(caught.value)
        assert f"worst element {culprit}[" in account and "Traceback" not in account
        assert len(account) < 1000


def test_the_result_exposes_the_worst_element(arrays):
    result = gradcheck.check(AffineBiasMean(arrays["W"], arrays["b"]), arrays["x"], params=["W", "b"])
    b = result["b"]
    assert b.status is Status.FAIL and len(b.worst_index) == 1
    assert b.analytic == pytest.approx(b.numeric / 4, rel=1e-4)  # the mean over N=4 samples
    assert b.max_abs_error > 0.1 and result.tensor("W").status is Status.PASS
    with pytest.raises(KeyError, match="checked: x, W, b"):
        result["nope"]


def test_an_upstream_gradient_never_repeats_the_users_draws():
    """x drawn from default_rng(0), as notebooks do: were the upstream gradient drawn from the same
    stream, it would equal x, x.T @ dout would be symmetric and a transposed dw would pass."""
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 3)), rng.standard_normal(3)
    result = gradcheck.check((affine_forward, affine_backward_transposed), x, w, b)
    assert result["w"].status is Status.FAIL


def test_the_given_arrays_are_the_example(arrays):
    """The layer sees exactly the arrays given (copies of them), and they are left untouched."""
    seen = []

    def forward(x, w, b):
        seen.append(x.copy())
        return affine_forward(x, w, b)

    x = arrays["x"].copy()
    gradcheck.check((forward, affine_backward), x, arrays["W"], arrays["b"], mode="full")
    assert np.array_equal(seen[0], arrays["x"]) and np.array_equal(x, arrays["x"])


def test_dims_draw_examples_and_shrink():
    result = gradcheck.check(
        softmax_loss_unaveraged,
        style="loss",
        seed=3,
        dims={"N": [1, 6], "C": [2, 5]},
        inputs={"x": ["N", "C"], "y": {"shape": ["N"], "integers": [0, "C - 1"]}},
    )
    assert result.status is Status.FAIL and result.examples > 1
    assert result.failing_dims["N"] == 2  # right at N = 1: the smallest failure is N = 2
    assert result.tensors[0].failing_dims["N"] == 2
    assert result.repro == "gradcheck.check(..., seed=3)"
    passing = gradcheck.check(
        softmax_loss,
        style="loss",
        seed=3,
        dims={"N": [1, 6], "C": [2, 5]},
        inputs={"x": ["N", "C"], "y": {"shape": ["N"], "integers": [0, "C - 1"]}},
    )
    assert passing.passed and passing.examples == 20


def test_layers_yaml_keys_are_keywords(arrays):
    xfailed = gradcheck.check(
        AffineBiasMean(arrays["W"], arrays["b"]),
        arrays["x"],
        params=["W", "b"],
        xfail="known: db averages",
        rtol=1e-6,
        name="affine",
    )
    assert xfailed.status is Status.XFAIL and xfailed.name == "affine" and xfailed.passed
    with pytest.raises(ConfigError, match=r"unknown key 'grad' .*did you mean 'grads'"):
        gradcheck.check(Affine(arrays["W"], arrays["b"]), arrays["x"], params=["W", "b"], grad="attr:d{name}")


def test_misuse_is_a_clear_error(arrays):
    with pytest.raises(TypeError, match="no parameter 'V'"):
        gradcheck.check(Affine(arrays["W"], arrays["b"]), arrays["x"], params=["V"])
    with pytest.raises(TypeError, match="args="):
        gradcheck.check((affine_forward, affine_backward), arrays["x"], {"mode": "train"})
    with pytest.raises(ConfigError, match="unknown mode 'ful' .*did you mean 'full'"):
        gradcheck.check(softmax_loss, arrays["scores"], arrays["y"], style="loss", mode="ful")
    with pytest.raises(TypeError, match="not both"):
        gradcheck.check(softmax_loss, arrays["scores"], style="loss", dims={"N": [1, 2]})


def test_a_raising_layer_is_an_error_not_a_crash(arrays):
    def broken(dout, cache):
        raise ValueError("shapes do not align")

    result = gradcheck.check((affine_forward, broken), arrays["x"], arrays["W"], arrays["b"])
    assert result.status is Status.ERROR and "shapes do not align" in result.message


def test_the_result_shows_as_the_table(arrays):
    result = gradcheck.check(AffineBiasMean(arrays["W"], arrays["b"]), arrays["x"], params=["W", "b"])
    text = str(result)
    assert "max abs err" in text and "FAIL" in text and "worst" not in text.splitlines()[0]
    assert "b[" in text and "0 passed, 1 failed" in text
    assert repr(result) == "<CheckResult AffineBiasMean: FAIL (x PASS, W PASS, b FAIL)>"
    html = result._repr_html_()
    assert html.startswith("<!DOCTYPE html>") and "FAIL" in html


def test_ipython_displays_the_rich_table(arrays):
    """In Jupyter (IPython's display formatter) the result is the coloured table, and in a terminal REPL its text."""
    pytest.importorskip("IPython")
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    result = gradcheck.check(AffineBiasMean(arrays["W"], arrays["b"]), arrays["x"], params=["W", "b"])
    data, _ = shell.display_formatter.format(result)
    assert "FAIL" in data["text/html"] and "color" in data["text/html"]  # coloured, as in a terminal
    assert "max abs err" in data["text/plain"] and "0 passed, 1 failed" in data["text/plain"]


def test_a_class_with_init_draws_its_parameters():
    """A class (not an object) is built per example from drawn parameters, as layers.yaml's init does."""
    keys = dict(
        init={"W": "$W", "b": "$b"},
        params={"W": ["D", "M"], "b": ["M"]},
        inputs={"x": ["N", "D"]},
        dims={"N": [1, 4], "D": [1, 3], "M": [1, 3]},
        seed=1,
    )
    assert gradcheck.check(Affine, **keys).passed
    failed = gradcheck.check(AffineBiasMean, **keys)
    assert failed.status is Status.FAIL and failed.failing_dims["N"] == 2
    with pytest.raises(ConfigError, match=r"init: '\$V' names no dim, input or parameter"):
        gradcheck.check(Affine, **{**keys, "init": {"W": "$V", "b": "$b"}})
