"""Bugs: convolution backward that mishandles the zero padding (cs231n function style).

Forward pads x by `pad` on every side and convolves the padded array, so backward builds
dx_pad, the gradient of the padded array, and must crop the border away:
dx = dx_pad[:, :, pad:pad + H, pad:pad + W]. All variants below are right for one case
and wrong for another; dw and db are always right, x is what fails.
- uncropped: returns dx_pad, shape (N, C, H + 2 pad, W + 2 pad) -- wrong when pad > 0.
- misaligned: crops dx_pad[:, :, :H, :W], the top-left corner -- right shape, wrong
  values when pad > 0.
- negative slice: crops dx_pad[:, :, pad:-pad, pad:-pad] -- right when pad > 0, but for
  pad == 0 the slice 0:-0 is empty.
"""

import numpy as np


def conv_forward_naive(x, w, b, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    H_out = 1 + (H + 2 * pad - HH) // stride
    W_out = 1 + (W + 2 * pad - WW) // stride
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    out = np.zeros((N, F, H_out, W_out))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    hs, ws = i * stride, j * stride
                    out[n, f, i, j] = np.sum(x_pad[n, :, hs : hs + HH, ws : ws + WW] * w[f]) + b[f]
    cache = (x, w, b, conv_param)
    return out, cache


def _backward_padded(dout, cache):
    """dx_pad, dw, db: the gradient with respect to the *padded* input, not yet cropped."""
    x, w, b, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, F, H_out, W_out = dout.shape
    _, _, HH, WW = w.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    db = dout.sum(axis=(0, 2, 3))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    hs, ws = i * stride, j * stride
                    dw[f] += x_pad[n, :, hs : hs + HH, ws : ws + WW] * dout[n, f, i, j]
                    dx_pad[n, :, hs : hs + HH, ws : ws + WW] += w[f] * dout[n, f, i, j]
    return dx_pad, dw, db


def conv_backward_uncropped(dout, cache):
    dx_pad, dw, db = _backward_padded(dout, cache)
    return dx_pad, dw, db  # BUG: still has the padding border


def conv_backward_misaligned(dout, cache):
    x = cache[0]
    H, W = x.shape[2:]
    dx_pad, dw, db = _backward_padded(dout, cache)
    return dx_pad[:, :, :H, :W], dw, db  # BUG: x sits at offset (pad, pad), not (0, 0)


def conv_backward_negative_slice(dout, cache):
    pad = cache[3]["pad"]
    dx_pad, dw, db = _backward_padded(dout, cache)
    return dx_pad[:, :, pad:-pad, pad:-pad], dw, db  # BUG: 0:-0 is empty when pad == 0


def conv_backward_fixed(dout, cache):
    x, pad = cache[0], cache[3]["pad"]
    H, W = x.shape[2:]
    dx_pad, dw, db = _backward_padded(dout, cache)
    return dx_pad[:, :, pad : pad + H, pad : pad + W], dw, db
