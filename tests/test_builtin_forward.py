"""Forward correctness of every built-in layer against independent formulations."""

import copy
import importlib
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from numpy.testing import assert_allclose, assert_array_equal

from gradcheck.layers.activations import GELU, LeakyReLU, ReLU, Sigmoid, Tanh
from gradcheck.layers.attention import ScaledDotProductAttention
from gradcheck.layers.conv import Conv2d
from gradcheck.layers.dropout import Dropout
from gradcheck.layers.embedding import Embedding
from gradcheck.layers.linear import Linear
from gradcheck.layers.losses import bce_with_logits, mse, softmax_cross_entropy
from gradcheck.layers.normalization import BatchNorm, LayerNorm
from gradcheck.layers.pooling import AvgPool2d, MaxPool2d
from gradcheck.layers.recurrent import LSTMCell, RNNCell
from gradcheck.layers.reshape import Flatten
from gradcheck.layers.softmax import LogSoftmax, Softmax

LAYERS_YAML = Path(__file__).resolve().parents[1] / "layers.yaml"
TIGHT = dict(rtol=1e-12, atol=1e-14)
NO_OVERFLOW = dict(over="raise", divide="raise", invalid="raise")  # underflow to 0 is fine


@pytest.fixture
def rng():
    """A fresh seeded generator per test."""
    return np.random.default_rng(0)


def naive_softmax(x):
    """Softmax straight from the definition: fine for small inputs only."""
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def sig(z):
    """Logistic function of one float."""
    return 1.0 / (1.0 + math.exp(-z))


# --- linear and activations -------------------------------------------------------


def test_linear_hand_worked():
    x = np.array([[1.0, 2.0], [0.0, -1.0]])
    W = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]])
    b = np.array([0.5, 0.0, 1.0])
    assert_array_equal(Linear(W, b).forward(x), [[1.5, 2.0, 1.0], [0.5, -1.0, 2.0]])


def test_relu_and_leaky_relu_hand_worked():
    x = np.array([[-2.0, 0.0, 3.0]])
    assert_array_equal(ReLU().forward(x), [[0.0, 0.0, 3.0]])
    assert_array_equal(LeakyReLU(alpha=0.1).forward(x), [[-0.2, 0.0, 3.0]])


def test_sigmoid_matches_definition_and_saturates_without_overflow(rng):
    x = rng.uniform(-8, 8, (4, 5))
    assert_allclose(Sigmoid().forward(x), np.vectorize(sig)(x), **TIGHT)
    with np.errstate(**NO_OVERFLOW):
        y = Sigmoid().forward(np.array([[-1000.0, 0.0, 1000.0]]))
    assert_array_equal(y, [[0.0, 0.5, 1.0]])


def test_tanh_matches_math(rng):
    x = rng.uniform(-4, 4, (3, 4))
    assert_allclose(Tanh().forward(x), np.vectorize(math.tanh)(x), **TIGHT)


def test_gelu_known_values():
    # x * Phi(x), with Phi(1) = 0.8413447460685429 and Phi(2) = 0.9772498680518208.
    x = np.array([[-2.0, -1.0, 0.0, 1.0, 2.0]])
    phi1, phi2 = 0.8413447460685429, 0.9772498680518208
    phi = np.array([1 - phi2, 1 - phi1, 0.5, phi1, phi2])
    assert_allclose(GELU().forward(x), x * phi, rtol=1e-12, atol=1e-15)


def test_gelu_is_close_to_its_tanh_approximation(rng):
    x = rng.uniform(-3, 3, (4, 6))
    approx = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    assert_allclose(GELU().forward(x), approx, atol=1e-3)


# --- softmax family ----------------------------------------------------------------


def test_softmax_matches_naive_formula(rng):
    x = rng.standard_normal((4, 6))
    y = Softmax().forward(x)
    assert_allclose(y, naive_softmax(x), **TIGHT)
    assert_allclose(y.sum(axis=1), 1.0, rtol=1e-12)


def test_softmax_stays_finite_at_large_inputs():
    x = np.array([[1000.0, 999.0, 0.0], [-1000.0, -1000.0, -1000.0]])
    with np.errstate(**NO_OVERFLOW):
        y = Softmax().forward(x)
    assert_allclose(y, naive_softmax(x - x.max(axis=1, keepdims=True)), **TIGHT)
    assert_allclose(y[1], 1 / 3, rtol=1e-12)


def test_log_softmax_is_log_of_softmax(rng):
    x = rng.standard_normal((3, 5))
    assert_allclose(LogSoftmax().forward(x), np.log(naive_softmax(x)), **TIGHT)


def test_log_softmax_stays_finite_at_large_inputs():
    with np.errstate(**NO_OVERFLOW):
        y = LogSoftmax().forward(np.array([[1000.0, 0.0]]))
    assert_allclose(y, [[0.0, -1000.0]], rtol=1e-12, atol=1e-300)


# --- losses --------------------------------------------------------------------------


def test_softmax_cross_entropy_matches_naive_mean(rng):
    x = rng.standard_normal((5, 4))
    y = np.array([0, 3, 3, 1, 2])
    loss, _ = softmax_cross_entropy(x, y)
    p = naive_softmax(x)
    assert_allclose(loss, -np.mean(np.log(p[np.arange(5), y])), **TIGHT)


def test_softmax_cross_entropy_hand_worked_and_large():
    loss, _ = softmax_cross_entropy(np.zeros((2, 4)), np.array([1, 3]))
    assert_allclose(loss, math.log(4), rtol=1e-12)
    with np.errstate(**NO_OVERFLOW):
        loss, dx = softmax_cross_entropy(np.array([[1000.0, 0.0]]), np.array([1]))
    assert_allclose(loss, 1000.0, rtol=1e-12)
    assert np.all(np.isfinite(dx))


def test_mse_hand_worked():
    loss, _ = mse(np.array([[1.0, 2.0], [0.0, 0.0]]), np.array([[0.0, 0.0], [0.0, 1.0]]))
    assert_allclose(loss, (1 + 4 + 0 + 1) / 4, rtol=1e-12)


def test_bce_with_logits_matches_naive_formula(rng):
    x = rng.uniform(-6, 6, (4, 3))
    y = rng.choice([0.0, 0.3, 1.0], (4, 3))
    s = np.vectorize(sig)(x)
    naive = np.mean(-y * np.log(s) - (1 - y) * np.log(1 - s))
    assert_allclose(bce_with_logits(x, y)[0], naive, rtol=1e-12)


def test_bce_with_logits_finite_at_large_logits():
    x = np.array([[1000.0, -1000.0, 1000.0, -1000.0]])
    y = np.array([[0.0, 1.0, 1.0, 0.0]])
    with np.errstate(**NO_OVERFLOW):
        loss, dx = bce_with_logits(x, y)
    # Confidently wrong costs |x| each, confidently right costs nothing.
    assert_allclose(loss, (1000 + 1000 + 0 + 0) / 4, rtol=1e-12)
    assert_allclose(dx, [[0.25, -0.25, 0.0, 0.0]], atol=1e-300)


# --- convolution and pooling ----------------------------------------------------------


def conv_loops(x, W, b, stride, pad):
    """Convolution by its definition: one dot product per output element."""
    n, c, h, w = x.shape
    f, _, kh, kw = W.shape
    xp = np.zeros((n, c, h + 2 * pad, w + 2 * pad))
    xp[:, :, pad : pad + h, pad : pad + w] = x
    ho, wo = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
    out = np.zeros((n, f, ho, wo))
    for i in range(n):
        for j in range(f):
            for r in range(ho):
                for s in range(wo):
                    window = xp[i, :, r * stride : r * stride + kh, s * stride : s * stride + kw]
                    out[i, j, r, s] = np.sum(window * W[j]) + b[j]
    return out


def pool_loops(x, size, stride, reduce):
    """Pooling by its definition: reduce each window."""
    n, c, h, w = x.shape
    ho, wo = (h - size) // stride + 1, (w - size) // stride + 1
    out = np.zeros((n, c, ho, wo))
    for r in range(ho):
        for s in range(wo):
            window = x[:, :, r * stride : r * stride + size, s * stride : s * stride + size]
            out[:, :, r, s] = reduce(window, axis=(2, 3))
    return out


def test_conv2d_hand_worked():
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    W = np.ones((1, 1, 2, 2))
    out = Conv2d(W, np.array([1.0])).forward(x)
    # Each output sums one 2x2 block of 0..8 plus the bias: 0+1+3+4+1 = 9, 1+2+4+5+1 = 13, ...
    assert_array_equal(out, [[[[9, 13], [21, 25]]]])


@pytest.mark.parametrize(
    "stride, pad, kh, kw, h, w",
    [
        (1, 0, 3, 3, 5, 5),
        (2, 1, 3, 2, 6, 5),
        (2, 0, 2, 3, 7, 4),
        (3, 2, 1, 2, 5, 6),
        (1, 1, 1, 1, 3, 4),
    ],
)
def test_conv2d_matches_direct_loops(rng, stride, pad, kh, kw, h, w):
    x = rng.standard_normal((2, 3, h, w))
    W = rng.standard_normal((4, 3, kh, kw))
    b = rng.standard_normal(4)
    out = Conv2d(W, b, stride=stride, pad=pad).forward(x)
    assert_allclose(out, conv_loops(x, W, b, stride, pad), **TIGHT)


def test_conv2d_rejects_bad_stride():
    with pytest.raises(ValueError, match="stride"):
        Conv2d(np.ones((1, 1, 1, 1)), np.zeros(1), stride=0)


def test_pooling_hand_worked():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    assert_array_equal(MaxPool2d(2, 2).forward(x), [[[[5, 7], [13, 15]]]])
    assert_array_equal(AvgPool2d(2, 2).forward(x), [[[[2.5, 4.5], [10.5, 12.5]]]])


@pytest.mark.parametrize("size, stride", [(2, 2), (3, 1), (2, 1), (3, 2), (2, 3), (1, 1)])
def test_pooling_matches_direct_loops(rng, size, stride):
    x = rng.standard_normal((2, 3, 7, 5))
    assert_array_equal(MaxPool2d(size, stride).forward(x), pool_loops(x, size, stride, np.max))
    expected = pool_loops(x, size, stride, np.mean)
    assert_allclose(AvgPool2d(size, stride).forward(x), expected, **TIGHT)


# --- normalisation ---------------------------------------------------------------------


def test_batch_norm_matches_textbook_formula(rng):
    x = rng.standard_normal((6, 4)) * 3 + 2
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    out = BatchNorm(gamma, beta, eps=1e-5).forward(x)
    mean = x.sum(axis=0) / 6
    var = ((x - mean) ** 2).sum(axis=0) / 6  # biased: the batch's own variance
    assert_allclose(out, gamma * (x - mean) / np.sqrt(var + 1e-5) + beta, **TIGHT)
    assert_allclose(out.mean(axis=0), beta, atol=1e-14)


def test_batch_norm_of_one_sample_returns_beta():
    beta = np.array([0.5, -1.0])
    assert_allclose(BatchNorm(np.array([2.0, 3.0]), beta).forward(np.array([[7.0, -4.0]])), [beta])


def test_layer_norm_matches_per_row_formula(rng):
    x = rng.standard_normal((3, 2, 5)) * 2 - 1
    gamma, beta = rng.standard_normal(5), rng.standard_normal(5)
    out = LayerNorm(gamma, beta, eps=1e-5).forward(x)
    for idx in np.ndindex(3, 2):
        row = x[idx]
        mean, var = sum(row) / 5, sum((row - sum(row) / 5) ** 2) / 5
        assert_allclose(out[idx], gamma * (row - mean) / math.sqrt(var + 1e-5) + beta, **TIGHT)


# --- dropout and embedding ----------------------------------------------------------------


def test_dropout_is_deterministic_for_a_seed(rng):
    x = rng.standard_normal((4, 8))
    assert_array_equal(Dropout(0.5, seed=3).forward(x), Dropout(0.5, seed=3).forward(x))
    layer = Dropout(0.5, seed=3)
    assert_array_equal(layer.forward(x), layer.forward(x))
    assert not np.array_equal(Dropout(0.5, seed=3).forward(x), Dropout(0.5, seed=4).forward(x))


def test_dropout_keep_rate_and_scale():
    x = np.full((200, 500), 2.0)
    out = Dropout(p=0.3, seed=0).forward(x)
    kept = out != 0
    assert abs(kept.mean() - 0.7) < 0.01  # 1e5 draws: the std of the rate is 0.0015
    assert_allclose(out[kept], 2.0 / 0.7, rtol=1e-12)


def test_dropout_with_p_zero_is_identity(rng):
    x = rng.standard_normal((3, 4))
    assert_array_equal(Dropout(p=0.0).forward(x), x)
    with pytest.raises(ValueError, match="p=1"):
        Dropout(p=1.0)


def test_embedding_lookup_and_repeated_indices_accumulate():
    W = np.arange(6.0).reshape(3, 2)
    idx = np.array([[2, 0, 2], [2, 1, 2]])
    layer = Embedding(W)
    out = layer.forward(idx)
    assert_array_equal(out, [[W[2], W[0], W[2]], [W[2], W[1], W[2]]])
    assert layer.backward(np.ones((2, 3, 2))) is None
    assert_array_equal(layer.dW, [[1, 1], [1, 1], [4, 4]])


# --- recurrent and attention ----------------------------------------------------------------


def test_rnn_cell_matches_per_sample_formula(rng):
    x, h = rng.standard_normal((3, 4)), rng.standard_normal((3, 5))
    Wx, Wh, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 5)), rng.standard_normal(5)
    out = RNNCell(Wx, Wh, b).forward(x, h)
    for n in range(3):
        for j in range(5):
            a = sum(x[n, d] * Wx[d, j] for d in range(4))
            a += sum(h[n, k] * Wh[k, j] for k in range(5)) + b[j]
            assert_allclose(out[n, j], math.tanh(a), **TIGHT)


def test_lstm_cell_matches_per_gate_loop(rng):
    N, D, H = 2, 3, 4
    x, h, c = rng.standard_normal((N, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    g = rng.standard_normal
    Wx, Wh, b = g((D, 4 * H)), g((H, 4 * H)), g(4 * H)
    next_h, next_c = LSTMCell(Wx, Wh, b).forward(x, h, c)
    for n in range(N):
        for j in range(H):

            def pre(gate, n=n, j=j):
                col = gate * H + j
                return x[n] @ Wx[:, col] + h[n] @ Wh[:, col] + b[col]

            i, f, o, g = sig(pre(0)), sig(pre(1)), sig(pre(2)), math.tanh(pre(3))
            cell = f * c[n, j] + i * g
            assert_allclose(next_c[n, j], cell, **TIGHT)
            assert_allclose(next_h[n, j], o * math.tanh(cell), **TIGHT)


def test_attention_matches_per_sample_loop(rng):
    g = rng.standard_normal
    q, k, v = g((2, 3, 4)), g((2, 5, 4)), g((2, 5, 2))
    out = ScaledDotProductAttention().forward(q, k, v)
    for n in range(2):
        for t in range(3):
            weights = naive_softmax(np.array([q[n, t] @ k[n, s] / 2.0 for s in range(5)]))
            assert_allclose(out[n, t], weights @ v[n], **TIGHT)


def test_attention_with_identical_keys_averages_values(rng):
    q, v = rng.standard_normal((1, 2, 3)), rng.standard_normal((1, 4, 2))
    k = np.ones((1, 4, 3))
    out = ScaledDotProductAttention().forward(q, k, v)
    assert_allclose(out[0], np.tile(v[0].mean(axis=0), (2, 1)), **TIGHT)


def test_flatten_keeps_batch_and_c_order():
    x = np.arange(24.0).reshape(2, 3, 2, 2)
    out = Flatten().forward(x)
    assert out.shape == (2, 12)
    assert_array_equal(out[1], np.arange(12.0, 24.0))


# --- backward contract, for every layer in layers.yaml -------------------------------------------


def layer_cases(rng):
    """name -> (layer, inputs, differentiable?, param names): a small instance of each built-in."""
    g = rng.standard_normal
    idx = np.array([[0, 2, 2], [1, 2, 0]])
    return {
        "linear": (Linear(g((4, 3)), g(3)), [g((2, 4))], [True], ["W", "b"]),
        "relu": (ReLU(), [g((2, 5))], [True], []),
        "leaky-relu": (LeakyReLU(0.2), [g((2, 5))], [True], []),
        "sigmoid": (Sigmoid(), [g((2, 5))], [True], []),
        "tanh": (Tanh(), [g((2, 5))], [True], []),
        "gelu": (GELU(), [g((2, 5))], [True], []),
        "softmax": (Softmax(), [g((2, 5))], [True], []),
        "log-softmax": (LogSoftmax(), [g((2, 5))], [True], []),
        "conv2d": (Conv2d(g((3, 2, 3, 2)), g(3), 2, 1), [g((2, 2, 5, 6))], [True], ["W", "b"]),
        "max-pool2d": (MaxPool2d(3, 2), [g((2, 2, 5, 6))], [True], []),
        "avg-pool2d": (AvgPool2d(2, 1), [g((2, 2, 5, 6))], [True], []),
        "batch-norm": (BatchNorm(g(4), g(4)), [g((3, 4))], [True], ["gamma", "beta"]),
        "layer-norm": (LayerNorm(g(4), g(4)), [g((3, 2, 4))], [True], ["gamma", "beta"]),
        "dropout": (Dropout(0.5, seed=1), [g((3, 4))], [True], []),
        "embedding": (Embedding(g((3, 4))), [idx], [False], ["W"]),
        "rnn-cell": (
            RNNCell(g((3, 4)), g((4, 4)), g(4)),
            [g((2, 3)), g((2, 4))],
            [True, True],
            ["Wx", "Wh", "b"],
        ),
        "lstm-cell": (
            LSTMCell(g((3, 8)), g((2, 8)), g(8)),
            [g((2, 3)), g((2, 2)), g((2, 2))],
            [True, True, True],
            ["Wx", "Wh", "b"],
        ),
        "attention": (
            ScaledDotProductAttention(),
            [g((2, 3, 4)), g((2, 5, 4)), g((2, 5, 3))],
            [True, True, True],
            [],
        ),
        "flatten": (Flatten(), [g((2, 3, 2, 2))], [True], []),
    }


LOSSES = {"softmax-cross-entropy", "mse", "bce-with-logits"}


def registry():
    return yaml.safe_load(LAYERS_YAML.read_text())["layers"]


def test_every_registered_layer_has_a_case_here_and_imports():
    names = [entry["name"] for entry in registry()]
    assert len(names) == len(set(names)) == 22
    assert set(names) == set(layer_cases(np.random.default_rng(0))) | LOSSES
    for entry in registry():
        module, _, obj = entry["impl"].partition(":")
        assert hasattr(importlib.import_module(module), obj or entry["function"])


@pytest.mark.parametrize("name", sorted(set(entry["name"] for entry in registry()) - LOSSES))
def test_backward_leaves_arguments_alone_and_returns_input_shapes(rng, name):
    layer, inputs, differentiable, params = layer_cases(rng)[name]
    saved_inputs = copy.deepcopy(inputs)
    saved_params = {p: getattr(layer, p).copy() for p in params}
    out = layer.forward(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    assert all(o.dtype == np.float64 for o in outs)
    douts = [rng.standard_normal(o.shape) for o in outs]
    saved_douts = copy.deepcopy(douts)
    grads = layer.backward(*douts)
    grads = () if grads is None else grads if isinstance(grads, tuple) else (grads,)
    expected = [x.shape for x, d in zip(inputs, differentiable, strict=True) if d]
    assert [gr.shape for gr in grads] == expected
    assert all(gr.dtype == np.float64 for gr in grads)
    for p in params:
        assert getattr(layer, "d" + p).shape == saved_params[p].shape
        assert_array_equal(getattr(layer, p), saved_params[p])
    for before, after in zip(saved_douts + saved_inputs, douts + inputs, strict=True):
        assert_array_equal(after, before)


@pytest.mark.parametrize("loss", [softmax_cross_entropy, mse, bce_with_logits])
def test_losses_return_a_scalar_and_a_gradient_of_x_shape(rng, loss):
    x = rng.standard_normal((3, 4))
    y = np.array([0, 3, 1]) if loss is softmax_cross_entropy else rng.uniform(0, 1, (3, 4))
    saved = x.copy(), y.copy()
    value, dx = loss(x, y)
    assert np.ndim(value) == 0 and dx.shape == x.shape
    assert_array_equal(x, saved[0])
    assert_array_equal(y, saved[1])
