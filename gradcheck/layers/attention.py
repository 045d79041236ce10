"""Scaled dot-product attention: softmax(q k^T / sqrt(d)) v, batched."""

import math

import numpy as np

from gradcheck.layers.softmax import softmax


class ScaledDotProductAttention:
    """Each of Tq queries takes a softmax-weighted average of Tk values."""

    def forward(self, q, k, v):
        """Return out (N, Tq, Dv) from q (N, Tq, D), k (N, Tk, D), v (N, Tk, Dv)."""
        self.q, self.k, self.v = q, k, v
        # Dividing by sqrt(D) keeps score variance ~1, so the softmax does not saturate.
        self.scale = 1.0 / math.sqrt(q.shape[-1])
        scores = self.scale * q @ np.swapaxes(k, -1, -2)  # (N, Tq, Tk)
        self.attn = softmax(scores)  # (N, Tq, Tk), rows sum to 1
        return self.attn @ v

    def backward(self, dout):
        """Return (dq, dk, dv) for dout (N, Tq, Dv)."""
        a = self.attn
        dv = np.swapaxes(a, -1, -2) @ dout  # (N, Tk, Dv)
        da = dout @ np.swapaxes(self.v, -1, -2)  # (N, Tq, Tk)
        dscores = a * (da - np.sum(da * a, axis=-1, keepdims=True))  # softmax backward, per row
        dq = self.scale * dscores @ self.k  # (N, Tq, D)
        dk = self.scale * np.swapaxes(dscores, -1, -2) @ self.q  # (N, Tk, D)
        return dq, dk, dv
