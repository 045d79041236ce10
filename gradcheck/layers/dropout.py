"""Inverted dropout with a seeded mask, so the same input gives the same output."""

import numpy as np


class Dropout:
    """Zero each element with probability p and scale survivors by 1 / (1 - p)."""

    def __init__(self, p=0.5, seed=0):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout needs 0 <= p < 1, got p={p}")
        self.p = p
        self.seed = seed

    def forward(self, x):
        """Return x * mask / (1 - p), the mask drawn from a generator seeded with self.seed."""
        # A fresh generator per call keeps forward deterministic, so it can be differenced.
        rng = np.random.default_rng(self.seed)
        self.mask = rng.random(x.shape) >= self.p
        # Scaling at train time keeps E[out] = x, so inference needs no change.
        return x * self.mask / (1.0 - self.p)

    def backward(self, dout):
        """The same mask and scale: dropout is linear in x."""
        return dout * self.mask / (1.0 - self.p)
