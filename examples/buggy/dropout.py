"""Bugs: inverted-dropout backward that forgets the mask, or forgets the scale.

Forward keeps each element with probability 1 - p and scales survivors by 1 / (1 - p),
so out = x * mask / (1 - p) and dx = dout * mask / (1 - p). Forgetting the mask sends
gradient to dropped units; forgetting the scale makes every gradient (1 - p) times too
small. Both fail on x. The mask is drawn from np.random, as most code does: the checker
reseeds numpy before every forward, so the same input gives the same mask.
"""

import numpy as np


class Dropout:
    """Training-mode inverted dropout with drop probability p."""

    def __init__(self, p=0.5):
        self.p = p

    def forward(self, x):
        self.mask = np.random.rand(*x.shape) >= self.p
        return x * self.mask / (1.0 - self.p)

    def backward(self, dout):
        return dout / (1.0 - self.p)  # BUG: dropped units get gradient too


class DropoutNoScale(Dropout):
    """Forgets the 1 / (1 - p) scale in backward."""

    def backward(self, dout):
        return dout * self.mask  # BUG: forward scaled by 1 / (1 - p)


class DropoutFixed(Dropout):
    """Same mask, same scale as forward."""

    def backward(self, dout):
        return dout * self.mask / (1.0 - self.p)
