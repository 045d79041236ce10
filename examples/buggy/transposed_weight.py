"""Bug: the weight gradient is transposed.

`dW = (x.T @ dout).T` is `dout.T @ x`, shape (M, D) instead of (D, M). When D != M the
shape is wrong (ERROR); when D == M the shape is right and only the values are wrong
(FAIL) -- the case a shape assertion alone never catches. x and b are correct.
Fix: dW = x.T @ dout, one outer product x_n^T dout_n per sample, summed.
"""

import numpy as np


class Affine:
    """out = x @ W + b, with x (N, D), W (D, M), b (M,)."""

    def __init__(self, W, b):
        self.W = W
        self.b = b

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout):
        self.dW = (self.x.T @ dout).T  # BUG: (M, D), the transpose of dL/dW
        self.db = np.sum(dout, axis=0)
        return dout @ self.W.T


class AffineFixed(Affine):
    """The same layer with dW in W's own layout."""

    def backward(self, dout):
        self.dW = self.x.T @ dout  # (D, M), like W
        self.db = np.sum(dout, axis=0)
        return dout @ self.W.T
