"""Bug: convolution backward ignores the stride when scattering into dx.

Output (i, j) read the window starting at (i * stride, j * stride); its gradient must go
back to that same window. Scattering into the window at (i, j) is right for stride 1 --
the case most people test -- and wrong for stride > 1. x fails; W and b are correct
(their loops read the right window).
"""

import numpy as np


class Conv2d:
    """Naive convolution of x (N, C, H, W) with filters W (F, C, K, K) and bias b (F,)."""

    def __init__(self, W, b, stride=1, pad=0):
        self.W = W
        self.b = b
        self.stride = stride
        self.pad = pad

    def forward(self, x):
        N, C, H, W = x.shape
        F, _, K, _ = self.W.shape
        s, p = self.stride, self.pad
        self.x_shape = x.shape
        self.xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        Ho = (H + 2 * p - K) // s + 1
        Wo = (W + 2 * p - K) // s + 1
        out = np.zeros((N, F, Ho, Wo))
        for i in range(Ho):
            for j in range(Wo):
                window = self.xp[:, :, i * s : i * s + K, j * s : j * s + K]  # (N, C, K, K)
                out[:, :, i, j] = np.tensordot(window, self.W, axes=([1, 2, 3], [1, 2, 3]))
        return out + self.b[None, :, None, None]

    def backward(self, dout):
        _, _, Ho, Wo = dout.shape
        K = self.W.shape[2]
        s, p = self.stride, self.pad
        self.db = dout.sum(axis=(0, 2, 3))
        self.dW = np.zeros_like(self.W)
        dxp = np.zeros_like(self.xp)
        for i in range(Ho):
            for j in range(Wo):
                window = self.xp[:, :, i * s : i * s + K, j * s : j * s + K]
                self.dW += np.tensordot(dout[:, :, i, j], window, axes=([0], [0]))
                # BUG: the window read in forward starts at (i * s, j * s), not (i, j)
                dxp[:, :, i : i + K, j : j + K] += np.tensordot(dout[:, :, i, j], self.W, axes=([1], [0]))
        H, W = self.x_shape[2:]
        return dxp[:, :, p : p + H, p : p + W]


class Conv2dFixed(Conv2d):
    """The same layer scattering each output's gradient into the window it read."""

    def backward(self, dout):
        _, _, Ho, Wo = dout.shape
        K = self.W.shape[2]
        s, p = self.stride, self.pad
        self.db = dout.sum(axis=(0, 2, 3))
        self.dW = np.zeros_like(self.W)
        dxp = np.zeros_like(self.xp)
        for i in range(Ho):
            for j in range(Wo):
                window = self.xp[:, :, i * s : i * s + K, j * s : j * s + K]
                self.dW += np.tensordot(dout[:, :, i, j], window, axes=([0], [0]))
                dxp[:, :, i * s : i * s + K, j * s : j * s + K] += np.tensordot(
                    dout[:, :, i, j], self.W, axes=([1], [0])
                )
        H, W = self.x_shape[2:]
        return dxp[:, :, p : p + H, p : p + W]  # the padding is not an input: crop it
