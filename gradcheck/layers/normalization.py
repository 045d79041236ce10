"""Batch normalisation (training mode) over (N, D) and layer normalisation over the last axis."""

import numpy as np


def _normalize(x, axis, eps):
    """Return (xhat, inv_std) with xhat = (x - mean) / sqrt(var + eps) along axis."""
    mu = np.mean(x, axis=axis, keepdims=True)
    inv_std = 1.0 / np.sqrt(np.var(x, axis=axis, keepdims=True) + eps)
    return (x - mu) * inv_std, inv_std


def _normalize_backward(dxhat, xhat, inv_std, axis):
    """dx for xhat = normalize(x): mean and var depend on x too, hence the two means."""
    # dx = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / std, means along axis.
    m1 = np.mean(dxhat, axis=axis, keepdims=True)
    m2 = np.mean(dxhat * xhat, axis=axis, keepdims=True)
    return (dxhat - m1 - xhat * m2) * inv_std


class BatchNorm:
    """Training-mode batch norm: each feature normalised over the batch, then scaled and shifted."""

    def __init__(self, gamma, beta, eps=1e-5):
        self.gamma = gamma  # (D,)
        self.beta = beta  # (D,)
        self.eps = eps

    def forward(self, x):
        """Return out (N, D); statistics come from this batch, so samples interact."""
        self.xhat, self.inv_std = _normalize(x, 0, self.eps)
        return self.gamma * self.xhat + self.beta

    def backward(self, dout):
        """Store dgamma and dbeta, return dx (N, D)."""
        self.dgamma = np.sum(dout * self.xhat, axis=0)
        self.dbeta = np.sum(dout, axis=0)
        return _normalize_backward(dout * self.gamma, self.xhat, self.inv_std, 0)


class LayerNorm:
    """Layer norm: each sample normalised over its last axis, then scaled and shifted."""

    def __init__(self, gamma, beta, eps=1e-5):
        self.gamma = gamma  # (D,)
        self.beta = beta  # (D,)
        self.eps = eps

    def forward(self, x):
        """Return out of x's shape (..., D); samples do not interact."""
        self.xhat, self.inv_std = _normalize(x, -1, self.eps)
        return self.gamma * self.xhat + self.beta

    def backward(self, dout):
        """Store dgamma and dbeta, return dx of x's shape."""
        lead = tuple(range(dout.ndim - 1))  # gamma is shared by every position but the last axis
        self.dgamma = np.sum(dout * self.xhat, axis=lead)
        self.dbeta = np.sum(dout, axis=lead)
        return _normalize_backward(dout * self.gamma, self.xhat, self.inv_std, -1)
