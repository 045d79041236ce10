"""Every forward call of one example: counted, on copies, one moved copy at a time or stacked along the batch axis."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import numpy as np

from gradcheck import batching, finite_diff
from gradcheck.adapters import Adapter, LayerProblem, adapter_for
from gradcheck.adapters_class import ClassAdapter
from gradcheck.outcomes import Counter
from gradcheck.results import Status
from gradcheck.sampling import Example
from gradcheck.spec import LayerSpec


class Forwards:
    """The layer's forward for one example's checks. What a call does not move comes from copies made
    once per example (the reference forward shows forward leaves them alone; the check's last step
    makes sure it always did)."""

    def __init__(self, spec: LayerSpec, example: Example, arrays: dict[str, np.ndarray], counter: Counter, rng):
        # the registry's spec; the adapter's once it adopts or drops parameters (see prepare, forget_params)
        self.spec = spec
        self.adapter: Adapter = adapter_for(spec)
        self.arrays, self.counter, self.rng = arrays, counter, rng
        self.seed, self.dim_values = example.seed, example.dim_values
        self.params = {p.name: arrays[p.name] for p in self.spec.params}
        self.shared_inputs, self.shared_params = self.fresh_copies()
        # the largest |value| of each float array, and of all: how large the layer's intermediates may be
        self.largest = {name: float(np.abs(a).max(initial=0.0)) for name, a in arrays.items() if a.dtype.kind == "f"}
        self.magnitude = max(self.largest.values(), default=0.0)
        batch = self.spec.batch_dim
        self.batch_size = example.dim_values.get(batch or "", 0)
        self.batch_leading = {t.name for t in self.spec.inputs if batch and t.shape and t.shape[0].source == batch}
        self.reference: tuple[np.ndarray, ...] = ()  # the outputs at the drawn point (see hygiene.reference_forward)
        self.output_shapes: list[tuple[int, ...]] = []
        self.batching_verdict: tuple[set[str], bool] | None = None  # (inputs to colour, whether copies stack)
        self.repeated = False  # whether a later forward has reproduced the reference outputs
        self.parts_stack = True  # whether a forward may take stacked copies of a part of the batch (see in_samples)

    @property
    def class_adapter(self) -> ClassAdapter:
        """The adapter of a class layer: only those adopt parameters and read them where the layer holds them."""
        return cast(ClassAdapter, self.adapter)

    def prepare(self) -> list[str]:
        """Build the layer; undeclared parameters it holds are checked like declared ones. Returns warnings."""
        self.adapter.prepare({**self.dim_values, **self.arrays}, self.seed)
        if self.adapter.adopted:
            self.spec = self.adapter.spec
        for name, drawn in self.adapter.adopted.items():
            self.arrays[name] = self.params[name] = drawn
            self.shared_params[name] = drawn.copy()
            self.largest[name] = float(np.abs(drawn).max(initial=0.0))
        self.magnitude = max(self.largest.values(), default=0.0)
        return [unchecked_warning(self.adapter.unchecked)] if self.adapter.unchecked else []

    def forget_params(self, names: list[str]) -> None:
        """Adopted arrays that turned out to be state, not parameters: no longer moved or checked."""
        for name in names:
            del self.params[name], self.shared_params[name]
        self.class_adapter.drop(names)
        self.spec = self.adapter.spec

    def fresh_copies(self) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
        """Copies of the drawn inputs and parameters, for a call whose effect on them is checked."""
        return [self.arrays[t.name].copy() for t in self.spec.inputs], {k: v.copy() for k, v in self.params.items()}

    def forward(self, inputs, params):
        """Forward's outputs, copied: a layer may return the same buffer (a workspace) on every call,
        which the next call would overwrite in the outputs kept from this one."""
        self.counter.forward += 1
        outputs, handle = self.adapter.forward(inputs, params, self.seed)
        return tuple(out.copy() for out in outputs), handle

    def evaluate(self, name: str) -> finite_diff.Evaluate:
        """evaluate(moved): forward outputs with tensor `name` replaced by `moved`."""
        return lambda moved: [out[0] for out in self._forward_each_copy({name: moved[None]}, 1)]

    def evaluate_each(self, name: str, coloured: bool = False) -> finite_diff.EvaluateEach:
        """evaluate_copies for tensor `name` alone: its moved copies in, stacked; the outputs out, stacked."""
        return lambda copies: self.evaluate_copies({name: copies}, coloured)

    def evaluate_copies(self, moved: dict[str, np.ndarray], coloured: bool = False) -> list[np.ndarray]:
        """Forward outputs for K moved versions of some tensors: `moved[name]` stacks K replacements
        of tensor `name` along a new leading axis, and each output comes back stacked the same way.

        The K copies of the batch go through one forward, stacked along the batch axis, when the
        layer allows it (see batching.py) and only batch-leading inputs move, in calls of about
        BLOCK_ELEMENTS elements; otherwise one forward per copy. `coloured` copies move every
        sample at once, which only a layer with independent samples may evaluate: else batching.NotColoured.
        """
        count, names = copy_count(moved), set(moved)
        if count > 1 and names <= self.batch_leading and names.isdisjoint(self.params):
            group = finite_diff.BLOCK_ELEMENTS // max(self._copy_size(), 1)
            if self.batching_verdict is None and count + batching.PROBE_COPIES <= group:  # probe and evaluate at once
                colour, stacks, outputs = batching.probe(self, extra=moved)
                self.batching_verdict = colour, stacks
                if outputs is not None:
                    return outputs
            colour, stacks = self.batching()
            if coloured and not names <= colour:
                raise batching.NotColoured
            if stacks and names <= colour and group >= 2:
                parts = [self.stacked({n: v[i : i + group] for n, v in moved.items()}) for i in range(0, count, group)]
                return parts[0] if len(parts) == 1 else [np.concatenate(column) for column in zip(*parts, strict=False)]
        return self._forward_each_copy(moved, count)

    def batching(self) -> tuple[set[str], bool]:
        """(inputs to colour, whether copies may be stacked along the batch axis), probed once (see batching.py)."""
        if self.batching_verdict is None:
            names, stacks, _ = batching.probe(self)
            self.batching_verdict = names, stacks
        return self.batching_verdict

    def _forward_each_copy(self, moved: dict[str, np.ndarray], count: int) -> list[np.ndarray]:
        """evaluate_copies' outputs from one forward per moved copy, each written into its stacked array as it comes."""
        inputs, params = list(self.shared_inputs), dict(self.shared_params)
        into_inputs = [(position, moved[t.name]) for position, t in enumerate(self.spec.inputs) if t.name in moved]
        into_params = [(name, copies) for name, copies in moved.items() if name in params]
        stacked = [np.empty((count,) + shape) for shape in self.output_shapes]
        for k in range(count):
            for position, copies in into_inputs:
                inputs[position] = copies[k]
            for name, copies in into_params:
                params[name] = copies[k]
            outputs = self.forward(inputs, params)[0]
            if [out.shape for out in outputs] != self.output_shapes:
                raise shape_moved(outputs, self.output_shapes, sorted(moved), "a slightly moved", "at the drawn point")
            for column, out in zip(stacked, outputs, strict=False):
                column[k] = out
        return stacked

    def _copy_size(self) -> int:
        """Elements in one copy of the batch-leading inputs, or of the outputs if those are larger."""
        inputs = sum(self.arrays[name].size for name in self.batch_leading)
        return max(inputs, sum(int(np.prod(shape)) for shape in self.output_shapes))

    def in_samples(self, samples: np.ndarray) -> Callable[[dict[str, np.ndarray]], list[np.ndarray]]:
        """evaluate_copies for copies of some samples of the batch only (`samples`, their indices): each
        moved tensor stacks (K, len(samples), ...), and one forward takes them stacked along the batch
        axis; outputs come back (K, len(samples), ...). Only where samples proved independent and
        copies stack (see batching). A layer that refuses that batch size (it took K copies of the
        whole batch, not a part of one) gets the moved samples inside whole copies of the batch."""

        def evaluate(moved: dict[str, np.ndarray]) -> list[np.ndarray]:
            if self.parts_stack:
                try:
                    return self.forward_stacked(moved, samples)
                except (LayerProblem, batching.Unstacked):
                    self.parts_stack = False
            whole = {}
            for name, part in moved.items():
                copies = whole[name] = np.repeat(self.arrays[name][None], len(part), axis=0)
                copies[:, samples] = part
            return [out[:, samples] for out in self.evaluate_copies(whole)]

        return evaluate

    def stacked(self, moved: dict[str, np.ndarray], samples: np.ndarray | None = None) -> list[np.ndarray]:
        """One forward on the moved copies stacked along the batch axis; outputs split back into copies."""
        try:
            return self.forward_stacked(moved, samples)
        except batching.Unstacked as unstacked:
            how = f"{copy_count(moved)} stacked copies of the batch with a slightly moved"
            where = f"from the drawn batch's {', '.join(map(str, self.output_shapes))}"
            raise shape_moved(unstacked.outputs, unstacked.expected, sorted(moved), how, where) from None

    def forward_stacked(self, moved: dict[str, np.ndarray], samples: np.ndarray | None = None) -> list[np.ndarray]:
        """Outputs, stacked per copy, of one forward on the copies stacked along the batch axis
        (copies of the samples `samples` only, if given)."""
        count, size = copy_count(moved), self.batch_size if samples is None else len(samples)
        inputs = []
        for t, x in zip(self.spec.inputs, self.shared_inputs, strict=False):
            if t.name in moved:  # (count, size, ...) -> (count * size, ...): copy k is rows k*size .. (k+1)*size
                inputs.append(np.ascontiguousarray(moved[t.name]).reshape((count * size,) + x.shape[1:]))
            elif t.name in self.batch_leading:
                inputs.append(np.concatenate([x if samples is None else x[samples]] * count))
            else:
                inputs.append(x)
        outputs = self.forward(inputs, self.shared_params)[0]
        expected = [(count * size,) + shape[1:] for shape in self.output_shapes]  # (all batch-leading when stacking)
        if [out.shape for out in outputs] != expected:
            raise batching.Unstacked(outputs, expected)
        return [out.reshape((count, size) + out.shape[1:]) for out in outputs]


def copy_count(moved: dict[str, np.ndarray]) -> int:
    """How many moved copies a {tensor: copies stacked along a new leading axis} holds."""
    return len(next(iter(moved.values())))


def shape_moved(outputs, expected, names: list[str], how: str, where: str) -> LayerProblem:
    """The ERROR for a forward whose output shapes changed when its inputs moved a little."""
    got = ", ".join(str(out.shape) for out in outputs)
    return LayerProblem(
        Status.ERROR,
        f"forward returned output shape(s) {got} for {how} {'/'.join(names)}; "
        f"{', '.join(map(str, expected))} expected {where}",
        names[0] if len(names) == 1 else None,
    )


def unchecked_warning(places: list[str]) -> str:
    """The warning naming arrays the layer holds that look like parameters but were not checked."""
    return (
        f"not checked: {', '.join(places)}: float arrays the layer holds that look like parameters but are "
        "not declared; declare them under params: (or set discover: false)"
    )
