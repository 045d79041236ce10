"""Affine (fully connected) layer: out = x @ W + b."""

import numpy as np


class Linear:
    """Fully connected layer mapping (N, D) inputs to (N, M) outputs."""

    def __init__(self, W, b):
        self.W = W  # (D, M)
        self.b = b  # (M,)

    def forward(self, x):
        """Return x @ W + b for x of shape (N, D)."""
        self.x = x
        return x @ self.W + self.b  # (N, M)

    def backward(self, dout):
        """Store dW and db, return dx; dout is (N, M)."""
        self.dW = self.x.T @ dout  # (D, M): one outer product per sample, summed
        self.db = np.sum(dout, axis=0)  # (M,): b was broadcast over the batch
        return dout @ self.W.T  # (N, D)
