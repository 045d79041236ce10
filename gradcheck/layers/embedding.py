"""Embedding lookup: rows of a (V, D) table selected by integer indices."""

import numpy as np


class Embedding:
    """Map integer indices of any shape to rows of W (V, D)."""

    def __init__(self, W):
        self.W = W  # (V, D)

    def forward(self, idx):
        """Return W[idx], shape idx.shape + (D,)."""
        self.idx = idx
        return self.W[idx]

    def backward(self, dout):
        """Store dW; return None, since integer indices have no gradient."""
        self.dW = np.zeros_like(self.W)
        # A row looked up k times gets k contributions; dW[idx] += dout would keep only one.
        np.add.at(self.dW, self.idx, dout)
        return None
