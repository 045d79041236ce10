"""2-D max and average pooling over size x size windows, reusing conv's im2col."""

import numpy as np

from gradcheck.layers.conv import col2im, im2col


class MaxPool2d:
    """Maximum over each window of an (N, C, H, W) input."""

    def __init__(self, size=2, stride=2):
        self.size = size
        self.stride = stride

    def forward(self, x):
        """Return out (N, C, Ho, Wo), Ho = (H - size) // stride + 1."""
        self.x_shape = x.shape
        cols = im2col(x, self.size, self.size, self.stride)  # (N, C, Ho, Wo, k, k)
        flat = cols.reshape(cols.shape[:4] + (-1,))  # (N, C, Ho, Wo, k*k)
        self.argmax = np.argmax(flat, axis=-1)[..., None]  # (N, C, Ho, Wo, 1)
        return np.take_along_axis(flat, self.argmax, axis=-1)[..., 0]

    def backward(self, dout):
        """Route each dout to the position that won its window; return dx (N, C, H, W)."""
        n, c, ho, wo = dout.shape
        k = self.size
        dflat = np.zeros((n, c, ho, wo, k * k))
        np.put_along_axis(dflat, self.argmax, dout[..., None], axis=-1)
        # Overlapping windows can share a winner; col2im adds their contributions.
        return col2im(dflat.reshape(n, c, ho, wo, k, k), self.x_shape, self.stride)


class AvgPool2d:
    """Mean over each window of an (N, C, H, W) input."""

    def __init__(self, size=2, stride=2):
        self.size = size
        self.stride = stride

    def forward(self, x):
        """Return out (N, C, Ho, Wo), Ho = (H - size) // stride + 1."""
        self.x_shape = x.shape
        return np.mean(im2col(x, self.size, self.size, self.stride), axis=(-2, -1))

    def backward(self, dout):
        """Spread each dout evenly over its window; return dx (N, C, H, W)."""
        k = self.size
        dcols = np.broadcast_to(dout[..., None, None] / (k * k), dout.shape + (k, k))
        return col2im(dcols, self.x_shape, self.stride)
