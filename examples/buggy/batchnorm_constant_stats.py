"""Bug: batch-norm backward that treats the batch mean and variance as constants.

In training mode mu and var are computed from x itself, so every x_n moves them:
dL/dx has two extra terms, -mean(dxhat) and -xhat * mean(dxhat * xhat). Dropping them
(`dx = dout * gamma / std`) is the most common batch-norm mistake. x fails; gamma and
beta are correct. Attribute style (like "Deep Learning from Scratch"): gamma/dgamma, beta/dbeta.
"""

import numpy as np


class BatchNorm:
    """Training-mode batch norm of (N, D) inputs: gamma * (x - mu) / std + beta."""

    def __init__(self, gamma, beta, eps=1e-5):
        self.gamma = gamma
        self.beta = beta
        self.eps = eps

    def forward(self, x):
        mu = x.mean(axis=0)
        xc = x - mu
        self.std = np.sqrt(np.mean(xc**2, axis=0) + self.eps)
        self.xhat = xc / self.std
        return self.gamma * self.xhat + self.beta

    def backward(self, dout):
        self.dbeta = dout.sum(axis=0)
        self.dgamma = np.sum(dout * self.xhat, axis=0)
        return dout * self.gamma / self.std  # BUG: mu and var depend on x too


class BatchNormFixed(BatchNorm):
    """The same layer with the gradient flowing through mu and var."""

    def backward(self, dout):
        self.dbeta = dout.sum(axis=0)
        self.dgamma = np.sum(dout * self.xhat, axis=0)
        dxhat = dout * self.gamma
        # The two means are the paths through mu and through var.
        return (dxhat - dxhat.mean(axis=0) - self.xhat * np.mean(dxhat * self.xhat, axis=0)) / self.std
