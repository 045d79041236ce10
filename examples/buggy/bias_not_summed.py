"""Bug: the bias gradient is not summed over the batch (cs231n function style).

b is broadcast to every row of the output, so dL/db is the sum of dout over rows.
- `db = dout[0]` keeps the first sample only: right for N == 1, wrong values otherwise.
- `db = dout` keeps every sample: shape (N, M) instead of (M,).
- `db = np.sum(dout, axis=0, keepdims=True)` has the right values but shape (1, M):
  broadcasting would hide it in an SGD step, but a gradient must have its tensor's shape.
In all three, b fails while x and w are correct.
"""

import numpy as np


def affine_forward(x, w, b):
    out = x @ w + b
    cache = (x, w, b)
    return out, cache


def affine_backward_first_row(dout, cache):
    x, w, b = cache
    dx = dout @ w.T
    dw = x.T @ dout
    db = dout[0]  # BUG: only the first sample's contribution
    return dx, dw, db


def affine_backward_unsummed(dout, cache):
    x, w, b = cache
    dx = dout @ w.T
    dw = x.T @ dout
    db = dout  # BUG: one row per sample, shape (N, M)
    return dx, dw, db


def affine_backward_keepdims(dout, cache):
    x, w, b = cache
    dx = dout @ w.T
    dw = x.T @ dout
    db = np.sum(dout, axis=0, keepdims=True)  # BUG: shape (1, M), b is (M,)
    return dx, dw, db


def affine_backward_fixed(dout, cache):
    x, w, b = cache
    dx = dout @ w.T
    dw = x.T @ dout
    db = np.sum(dout, axis=0)  # (M,): b touched every row, so every row contributes
    return dx, dw, db
