"""One time step of a vanilla RNN and of an LSTM."""

import numpy as np


def _sigmoid(x):
    """Overflow-free logistic function."""
    return np.exp(-np.logaddexp(0.0, -x))


class RNNCell:
    """next_h = tanh(x @ Wx + prev_h @ Wh + b)."""

    def __init__(self, Wx, Wh, b):
        self.Wx = Wx  # (D, H)
        self.Wh = Wh  # (H, H)
        self.b = b  # (H,)

    def forward(self, x, prev_h):
        """Return next_h (N, H) from x (N, D) and prev_h (N, H)."""
        self.x, self.prev_h = x, prev_h
        self.next_h = np.tanh(x @ self.Wx + prev_h @ self.Wh + self.b)
        return self.next_h

    def backward(self, dnext_h):
        """Store dWx, dWh, db; return (dx, dprev_h)."""
        da = dnext_h * (1.0 - self.next_h**2)  # (N, H), through tanh
        self.dWx = self.x.T @ da
        self.dWh = self.prev_h.T @ da
        self.db = np.sum(da, axis=0)
        return da @ self.Wx.T, da @ self.Wh.T


class LSTMCell:
    """LSTM step with gates stacked as [input, forget, output, candidate] along the last axis."""

    def __init__(self, Wx, Wh, b):
        self.Wx = Wx  # (D, 4H)
        self.Wh = Wh  # (H, 4H)
        self.b = b  # (4H,)

    def forward(self, x, prev_h, prev_c):
        """Return (next_h, next_c), both (N, H), from x (N, D), prev_h and prev_c (N, H)."""
        self.x, self.prev_h, self.prev_c = x, prev_h, prev_c
        a = x @ self.Wx + prev_h @ self.Wh + self.b  # (N, 4H)
        ai, af, ao, ag = np.split(a, 4, axis=1)
        self.i, self.f, self.o = _sigmoid(ai), _sigmoid(af), _sigmoid(ao)
        self.g = np.tanh(ag)
        self.next_c = self.f * prev_c + self.i * self.g
        self.tanh_c = np.tanh(self.next_c)
        return self.o * self.tanh_c, self.next_c

    def backward(self, dnext_h, dnext_c):
        """Store dWx, dWh, db; return (dx, dprev_h, dprev_c)."""
        # next_c reaches the loss directly and through next_h: add both paths.
        dc = dnext_c + dnext_h * self.o * (1.0 - self.tanh_c**2)
        di, df, do, dg = dc * self.g, dc * self.prev_c, dnext_h * self.tanh_c, dc * self.i
        da = np.concatenate(
            [
                di * self.i * (1.0 - self.i),
                df * self.f * (1.0 - self.f),
                do * self.o * (1.0 - self.o),
                dg * (1.0 - self.g**2),
            ],
            axis=1,
        )  # (N, 4H), through each gate's nonlinearity
        self.dWx = self.x.T @ da
        self.dWh = self.prev_h.T @ da
        self.db = np.sum(da, axis=0)
        return da @ self.Wx.T, da @ self.Wh.T, dc * self.f
