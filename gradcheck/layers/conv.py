"""2-D convolution (cross-correlation) with stride and zero padding, via im2col."""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def im2col(x, kh, kw, stride):
    """View x (N, C, H, W) as its windows, shape (N, C, Ho, Wo, kh, kw); no copy."""
    # Every window at stride 1, then keep every stride-th: Ho = (H - kh) // stride + 1.
    return sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]


def col2im(cols, x_shape, stride):
    """Sum window gradients cols (N, C, Ho, Wo, kh, kw) back into an x_shape array."""
    _, _, ho, wo, kh, kw = cols.shape
    dx = np.zeros(x_shape)
    # Windows overlap, so an input pixel collects from every window that saw it:
    # for each offset (i, j) inside the kernel, the pixels it touched form a strided grid.
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i : i + stride * ho : stride, j : j + stride * wo : stride] += cols[..., i, j]
    return dx


class Conv2d:
    """Convolution of (N, C, H, W) inputs with F filters W (F, C, KH, KW) and bias b (F,)."""

    def __init__(self, W, b, stride=1, pad=0):
        if stride < 1 or pad < 0:
            raise ValueError(f"Conv2d needs stride >= 1 and pad >= 0, got {stride=}, {pad=}")
        self.W = W
        self.b = b
        self.stride = stride
        self.pad = pad

    def forward(self, x):
        """Return out (N, F, Ho, Wo), Ho = (H + 2 pad - KH) // stride + 1."""
        self.x_shape = x.shape
        n, c, h, w = x.shape
        p = self.pad
        self.xp = np.zeros((n, c, h + 2 * p, w + 2 * p))  # zero border of width pad
        self.xp[:, :, p : p + h, p : p + w] = x
        _, _, kh, kw = self.W.shape
        self.cols = im2col(self.xp, kh, kw, self.stride)  # (N, C, Ho, Wo, KH, KW)
        # Each output is a dot product of one window with one filter: contract C, KH, KW (one
        # matrix product; einsum without a path would loop over them ten times slower).
        out = np.tensordot(self.cols, self.W, axes=([1, 4, 5], [1, 2, 3]))  # (N, Ho, Wo, F)
        return out.transpose(0, 3, 1, 2) + self.b[None, :, None, None]

    def backward(self, dout):
        """Store dW and db, return dx; dout is (N, F, Ho, Wo)."""
        self.dW = np.tensordot(dout, self.cols, axes=([0, 2, 3], [0, 2, 3]))  # (F, C, KH, KW)
        self.db = np.sum(dout, axis=(0, 2, 3))  # (F,)
        dcols = np.tensordot(dout, self.W, axes=([1], [0])).transpose(0, 3, 1, 2, 4, 5)  # (N, C, Ho, Wo, KH, KW)
        dxp = col2im(dcols, self.xp.shape, self.stride)  # (N, C, H+2p, W+2p)
        # Padding is a constant, not an input: its gradient is dropped.
        h, w = self.x_shape[2:]
        return dxp[:, :, self.pad : self.pad + h, self.pad : self.pad + w]
