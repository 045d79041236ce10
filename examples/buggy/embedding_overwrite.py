"""Bug: embedding backward overwrites instead of accumulating on repeated indices.

out[n] = W[idx[n]], so row W[v] receives the sum of dout[n] over every n with idx[n] == v.
`dW[idx] = dout` keeps only the last of the repeated rows (numpy fancy assignment does
not accumulate); right as long as no index repeats, wrong as soon as one does. W fails.
The input is integer indices, so backward returns None -- there is no dx to check.
Parameters in lists, as in "Deep Learning from Scratch 2": self.params = [W].
Fix: np.add.at(dW, idx, dout), which accumulates.
"""

import numpy as np


class Embedding:
    """Look up rows of W (V, D) for integer indices idx (N,)."""

    def __init__(self, W):
        self.params = [W]
        self.grads = [np.zeros_like(W)]
        self.idx = None

    def forward(self, idx):
        (W,) = self.params
        self.idx = idx
        return W[idx]

    def backward(self, dout):
        (dW,) = self.grads
        dW[...] = 0
        dW[self.idx] = dout  # BUG: repeated indices overwrite each other
        return None


class EmbeddingFixed(Embedding):
    """Accumulates the rows of dout that share an index."""

    def backward(self, dout):
        (dW,) = self.grads
        dW[...] = 0
        np.add.at(dW, self.idx, dout)
        return None
