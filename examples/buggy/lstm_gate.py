"""Bug: LSTM step backward uses tanh's derivative for the (sigmoid) forget gate.

The i, f, o gates are sigmoids (derivative g * (1 - g)); only the candidate g is a tanh
(derivative 1 - g**2). Writing `df * (1 - f**2)` for the forget gate corrupts da, and
through it dx, dprev_h, dWx, dWh and db. dprev_c = dc * f does not use the gate's
derivative, so prev_c is still right. cs231n function style, two outputs (next_h, next_c)
and so two upstream gradients: backward(dnext_h, dnext_c, cache).
"""

import numpy as np


def sigmoid(x):
    z = np.exp(-np.abs(x))  # never overflows
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z))


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b  # (N, 4H): input, forget, output gates and candidate
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H : 2 * H])
    o = sigmoid(a[:, 2 * H : 3 * H])
    g = np.tanh(a[:, 3 * H :])
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    cache = (x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c)
    return next_h, next_c, cache


def _step_backward(dnext_h, dnext_c, cache, forget_gate_derivative):
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    tanh_c = np.tanh(next_c)
    dc = dnext_c + dnext_h * o * (1 - tanh_c**2)  # next_c reaches the loss twice
    da = np.hstack(
        [
            dc * g * i * (1 - i),
            dc * prev_c * forget_gate_derivative(f),
            dnext_h * tanh_c * o * (1 - o),
            dc * i * (1 - g**2),
        ]
    )
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dprev_c = dc * f
    dWx = x.T @ da
    dWh = prev_h.T @ da
    db = da.sum(axis=0)
    return dx, dprev_h, dprev_c, dWx, dWh, db


def lstm_step_backward(dnext_h, dnext_c, cache):
    # BUG: f is a sigmoid, its derivative is f * (1 - f)
    return _step_backward(dnext_h, dnext_c, cache, lambda f: 1 - f**2)


def lstm_step_backward_fixed(dnext_h, dnext_c, cache):
    return _step_backward(dnext_h, dnext_c, cache, lambda f: f * (1 - f))
