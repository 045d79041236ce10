"""Bug: backward computes dx and forgets to return it.

Python returns None, and the caller's next layer fails far from the cause -- or, worse,
a framework treats None as "no gradient". The checker reports it as an ERROR on x.
"""


class Relu:
    """out = max(x, 0), elementwise."""

    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, dout):
        dx = dout * self.mask  # BUG: no `return dx`


class ReluFixed(Relu):
    """The same layer, returning its gradient."""

    def backward(self, dout):
        dx = dout * self.mask
        return dx
