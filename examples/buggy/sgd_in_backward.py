"""Bug: backward takes an SGD step on its weights, then computes dx with the new weights.

Two mistakes in one: backward must leave the parameters alone (the optimizer owns the
update; a gradient check, or a second backward, sees changed weights), and dx must use
the W that forward used. W and b are changed by backward (FAIL) and dx is off by
lr * dout @ dW.T. Fix: store dW and db, return dout @ W.T, and update in a separate step.
"""

import numpy as np


class Affine:
    """out = x @ W + b, x (N, D), W (D, M), b (M,)."""

    def __init__(self, W, b, lr=0.1):
        self.W = W
        self.b = b
        self.lr = lr

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = np.sum(dout, axis=0)
        self.W -= self.lr * self.dW  # BUG: updates inside backward...
        self.b -= self.lr * self.db
        return dout @ self.W.T  # ...and dx then uses the updated W


class AffineFixed(Affine):
    """Backward only computes gradients; step() applies them."""

    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = np.sum(dout, axis=0)
        return dout @ self.W.T

    def step(self):
        self.W -= self.lr * self.dW
        self.b -= self.lr * self.db
