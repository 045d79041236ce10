"""Checking one drawn example of one layer: forward, backward, finite differences, hygiene."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from gradcheck.adapters import UPDATE_LEARNING_RATE, Adapter, LayerProblem, adapter_for
from gradcheck import finite_diff
from gradcheck.directions import MAX_STRETCH, Kinks, directions_agree
from gradcheck.finite_diff import Estimate, centred_difference, element_differences, is_steady, numerical_gradient, tolerance
from gradcheck.diagnosis import float_errors, nonfinite_cause, output_label, upstream_label
from gradcheck.results import Status
from gradcheck.sampling import Example, clip_to_range, draw_arrays, draw_upstream
from gradcheck.spec import LayerSpec, Tolerances

TINY = 1e-300
# In mode "auto", tensors up to FULL_MAX elements get the full per-element check, as long as the
# example's full checks together (two forwards per element; for a batch-leading input, per element
# of one sample) cost at most FULL_BUDGET: else the costliest start with the directions, until the
# rest fit. A forward costs CALL_COST plus the elements it reads and writes (inputs, parameters,
# outputs): sizes only, never time, so the same seed checks the same way on any machine. (On the
# machine the budget was set on, a built-in forward took about 4-50 ns an element: the budget is
# a few tenths of a second to a few seconds there.)
FULL_MAX = 4096
CALL_COST = 1000  # a forward's fixed cost (Python calls, copies), in elements
FULL_BUDGET = 5e7  # element-forwards per example
# A tensor above FULL_MAX that the shared directions doubted is checked in groups of at most FULL_MAX
# elements (see _by_groups); a group whose gaps rounding alone explains passes while that rounding
# stays under this many tolerance units.
GROUP_NOISE = 1.0
CONFIRM_CHUNK = 256  # a doubted group's elements get the per-element check this many at a time


@dataclass
class TensorOutcome:
    """One tensor in one example: analytic against numeric, element by element (read-only once made:
    its verdict and errors are computed once)."""

    name: str
    kind: str
    analytic: np.ndarray
    numeric: np.ndarray
    bound: np.ndarray
    failing: np.ndarray  # confirmed failing elements
    skipped: int = 0  # elements where the reference was not smooth (kink) or not steady
    # fast mode passed: the largest directional error in the tensor's units (in tolerance units
    # times its rms per-element tolerance, `bound`): the one-element error the directions allow
    directional: float | None = None
    method: str = "full"  # one of METHODS: "full", "coloured" (batch colouring) or "fast" (random directions)

    @cached_property
    def status(self) -> Status:
        return Status.FAIL if self.failing.any() else Status.PASS

    @cached_property
    def abs_error(self) -> np.ndarray:
        return np.abs(self.analytic - self.numeric)

    @cached_property
    def max_abs_error(self) -> float:
        if self.directional is not None:
            return self.directional
        return float(np.max(self._counted(self.abs_error), initial=0.0))

    @cached_property
    def max_rel_error(self) -> float:
        scale = np.max(self._counted(np.abs(self.analytic) + np.abs(self.numeric)), initial=0.0)
        return self.max_abs_error / max(float(scale), TINY)

    @cached_property
    def worst_index(self) -> tuple[int, ...]:
        """The element furthest outside its tolerance (or closest to it, when all pass)."""
        ratio = self._counted(self.abs_error / np.maximum(self.bound, TINY), fill=-1.0)
        return tuple(int(i) for i in np.unravel_index(int(np.argmax(ratio)), ratio.shape)) if ratio.size else ()

    def _counted(self, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Values with unreliable (skipped) elements blanked out."""
        return np.where(np.isfinite(self.numeric), values, fill)


@dataclass
class ExampleOutcome:
    """The verdict on one example."""

    example: Example
    status: Status
    message: str = ""
    tensors: list[TensorOutcome] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    tensor: str | None = None  # for an ERROR/FAIL without numbers: the tensor it concerns
    precision: str = "float64"  # the dtype whose precision the example was checked at (see _ExampleRun.precision)

    @property
    def failed(self) -> bool:
        return self.status in (Status.FAIL, Status.ERROR)

    @property
    def skipped(self) -> int:
        return sum(t.skipped for t in self.tensors)


class Counter:
    """Counts forward and backward calls, for the report and the benchmark."""

    def __init__(self):
        self.forward = 0
        self.backward = 0


def check_example(spec: LayerSpec, example: Example, tol: Tolerances, counter: Counter | None = None,
                  mode: str = "auto", only: frozenset[str] | None = None) -> ExampleOutcome:
    """Run every check on one drawn example; a misbehaving layer is a verdict.

    `only`: the tensors whose gradients are compared (all if None); forward's and backward's own
    checks run whatever it holds."""
    counter = counter or Counter()
    rng = np.random.default_rng(example.seed)  # one generator per example: the arrays, then R, probes, directions
    arrays = draw_arrays(spec, example, rng)
    shapes = {name: a.shape for name, a in arrays.items()}
    try:
        with np.errstate(all="ignore"), finite_diff.rounding_unit():  # a layer's overflow warnings are its verdict's business, not the console's
            run = _ExampleRun(spec, example, arrays, tol, counter, mode, rng)
            run.only = only
            tensors = run.check()
    except LayerProblem as problem:
        return ExampleOutcome(example, problem.status, problem.message, shapes=shapes, tensor=problem.tensor)
    status = Status.FAIL if any(t.status is Status.FAIL for t in tensors) else Status.PASS
    return ExampleOutcome(example, status, "", tensors, run.warnings, shapes, precision=run.precision)


class _NotColoured(Exception):
    """Copies moving every sample at once were offered to a layer whose samples interact."""


class _Unstacked(Exception):
    """A stacked forward's outputs did not have the stacked batch as their leading axis."""

    def __init__(self, outputs, expected: list[tuple]):
        super().__init__(expected)
        self.outputs, self.expected = outputs, expected


class _ExampleRun:
    """State shared by the steps of one example's check."""

    def __init__(self, spec, example, arrays, tol, counter, mode, rng):
        self.spec, self.example, self.arrays, self.tol, self.counter = spec, example, arrays, tol, counter
        self.mode, self.rng = mode, rng
        self.only: frozenset[str] | None = None  # the tensors to compare, if not all (see check_example)
        self.adapter: Adapter = adapter_for(spec)
        self.warnings: list[str] = []
        self.seed = example.seed
        self.inputs = [arrays[t.name] for t in spec.inputs]
        self.params = {p.name: arrays[p.name] for p in spec.params}
        # what forwards get for the tensors they do not move: one copy per example, not per call
        # (the reference forward shows forward leaves them alone; check() makes sure it always did)
        self.unmoved_inputs, self.unmoved_params = self._copies()
        # the largest |value| of each float array, and of all: how large the layer's intermediates may be
        self.largest = {name: float(np.abs(a).max(initial=0.0)) for name, a in arrays.items() if a.dtype.kind == "f"}
        self.hidden = max(self.largest.values(), default=0.0)
        batch = spec.batch_dim
        self.batch_size = example.dim_values.get(batch or "", 0)
        self.batch_leading = {t.name for t in spec.inputs if batch and t.shape and t.shape[0].source == batch}
        self._batching: tuple[set[str], bool] | None = None
        self._repeated = False  # whether a later forward has reproduced the reference outputs
        self.precision = "float64"  # or "float32"/"float16": outputs or gradients in that dtype (see _precision)

    def check(self) -> list[TensorOutcome]:
        self.adapter.prepare({**self.example.dim_values, **self.arrays}, self.seed)
        if self.adapter.adopted:
            self._adopt(self.adapter.adopted)
        if self.adapter.unchecked:
            self.warnings.append(unchecked_warning(self.adapter.unchecked))
        base = self.base = self.reference_forward()
        self.output_shapes = [out.shape for out in base]
        upstream = draw_upstream(base, self.rng)
        weighted = [np.abs(np.multiply(r, out)) for r, out in zip(upstream, base)]
        # the largest |R * out|: over an input's size, the layer's natural gradient scale (see `tolerance`)
        self._natural_output = max(float(w.max(initial=0.0)) for w in weighted)
        self._output_weight = sum(float(w.sum()) for w in weighted)  # sum |R * out|: foretells the directions' rounding
        analytic = self.analytic(upstream)
        self._precision(base)
        tensors = [(t.name, "input") for t in self.spec.differentiable_inputs] + [(p.name, "param") for p in self.spec.params
                                                                                  if p.name in analytic]
        if self.only is not None:
            tensors = [(name, kind) for name, kind in tensors if name in self.only]
        quick = self._fast_pass([name for name, _ in tensors], analytic, upstream)
        outcomes = []
        for name, kind in tensors:
            x, a = self.arrays[name], analytic[name]
            if name not in quick and x.size > FULL_MAX and self.mode != "full" and name not in self.batch_leading:
                outcomes.append(self._by_groups(name, kind, x, a, base, upstream))
                continue
            if name in quick:
                error, unit = quick[name]
                outcomes.append(TensorOutcome(name, kind, a, a.copy(), np.full(x.shape, unit), np.zeros(x.shape, bool),
                                              directional=error * unit, method="fast"))
                continue
            outcomes.append(self.compare(name, kind, x, a, base, upstream))
        if not self._repeated:  # no stacked probe reproduced the reference forward: call it again
            self._check_repeatable()
        self._unchanged(self.unmoved_inputs, self.unmoved_params, "forward")  # a later call may write where the first did not
        return outcomes

    def _adopt(self, adopted: dict[str, np.ndarray]) -> None:
        """Check the undeclared parameters the adapter found (see ClassAdapter._adopt) like declared ones."""
        self.spec = self.adapter.spec
        for name, drawn in adopted.items():
            self.arrays[name] = self.params[name] = drawn
            self.unmoved_params[name] = drawn.copy()
            self.largest[name] = float(np.abs(drawn).max(initial=0.0))
        self.hidden = max(self.largest.values(), default=0.0)

    def _drop_state(self, handle, params: dict) -> None:
        """Found arrays that forward changed are state (a call counter, running statistics), not
        parameters: they are not checked."""
        position = {p.name: i for i, p in enumerate(self.spec.params)}
        changed = [name for name in self.adapter.adopted
                   if not _same(self.adapter.read(handle, self.spec.params_at, position[name]), self.arrays[name])]
        for name in changed:
            del self.params[name], self.unmoved_params[name], params[name]
        if changed:
            self.adapter.drop(changed)
            self.spec = self.adapter.spec

    def _precision(self, base) -> None:
        """Check at float32 (float16) precision when forward returned or backward stored arrays of
        that dtype, or when forward's float64 outputs hold only float32 values (a cast inside): the
        step and tolerances that precision supports (precision_tolerances), rounding in its units."""
        dtypes = self.adapter.dtypes
        if not dtypes and _float32_values(base, self.hidden):
            dtypes.add(np.dtype(np.float32))
            self.warnings.append(CAST_INSIDE)
        if not dtypes:
            return
        lowest = min(dtypes, key=lambda d: np.finfo(d).nmant)
        self.precision = lowest.name
        eps, rtol, atol = finite_diff.precision_tolerances(lowest, self.tol.eps, self.tol.rtol, self.tol.atol)
        self.tol = Tolerances(rtol=rtol, atol=atol, eps=eps)
        finite_diff.set_rounding_unit(float(np.finfo(lowest).eps))

    def _fast_pass(self, names: list[str], analytic: dict, upstream) -> dict[str, tuple[float, float]]:
        """Tensors that pass the random-direction check (mode fast, or auto for large or costly
        tensors), each with the directions' error in tolerance units and its unit (see DirectionalCheck).

        The directions share one step, which the tensor with the least room sets (a tight
        tolerance next to large values); the rounding grows as the step shrinks. A doubt that
        rounding may explain sends the tensors with little room to the full check and draws the
        directions once more for the others, with a step large enough to leave rounding well
        under the threshold; when every tensor is that tight (one tensor alone, or all alike), the
        same tensors go again with the step stretched beyond eps (at most MAX_STRETCH times). Any
        other doubt, or a second one, sends the remaining tensors to the full check.
        """
        eligible = self._directions_first(names)
        stretch = 1.0
        for _ in range(2):
            if not eligible:
                break
            points = {n: self.arrays[n] for n in eligible}
            found = directions_agree(self.evaluate_all, points, analytic, upstream, self.tol.eps, self.tol.rtol,
                                     self.tol.atol, self.rng, {n: self._natural(n) for n in points}, stretch=stretch,
                                     weight=self._output_weight, kinks=self._kinks(eligible, upstream))
            if found.agree:
                return {n: (found.error, found.units[n]) for n in eligible}
            if not found.rounding_only:
                break
            roomy = found.roomy()
            if roomy:
                eligible = roomy
            elif found.stretch * found.growth() <= MAX_STRETCH:
                stretch = found.stretch * found.growth()
            else:
                break
        return {}

    def _by_groups(self, name, kind, x, analytic, base, upstream) -> TensorOutcome:
        """A tensor above FULL_MAX that the shared directions doubted: its elements in disjoint groups
        of at most FULL_MAX, each checked by directions of its own (its own tolerance unit, step and
        rounding: a group moves fewer elements, so crosses fewer kinks); only the groups those doubt
        get the per-element check, one group at a time, until one confirms a failure. The forwards
        stay bounded by the groups that doubt, never the whole tensor's two per element."""
        flat_a = analytic.reshape(-1)
        groups = np.array_split(np.arange(x.size), -(-x.size // FULL_MAX))
        doubted, directional, bound = [], 0.0, np.empty(x.size)
        for group in groups:
            found = self._group_directions(name, x, flat_a[group], group, upstream)
            bound[group] = found.units["part"]
            if found.agree:
                directional = max(directional, found.error * found.units["part"])
            else:
                doubted.append(group)
        if not doubted:
            return TensorOutcome(name, kind, analytic, analytic.copy(), bound.reshape(x.shape), np.zeros(x.shape, bool),
                                 directional=directional, method="fast")
        return self.compare(name, kind, x, analytic, base, upstream, doubted)

    def _group_directions(self, name, x, analytic, group, upstream):
        """The random directions through one group of a tensor's elements (the others stay put).
        They agree, or rounding alone explains every gap while it stays under GROUP_NOISE tolerance
        units: no looser than the per-element check, whose bound holds each element's own rounding
        (larger than the directions' for the same output). The step is not stretched ahead of the
        rounding (a long step crosses kinks and curvature); only as far as GROUP_NOISE needs."""
        def evaluate(moved):
            part = moved["part"]
            copies = np.empty((len(part),) + x.shape)
            copies[...] = x
            copies.reshape(len(part), -1)[:, group] = part
            return self.evaluate_all({name: copies})

        point, natural, stretch = {"part": x.reshape(-1)[group]}, {"part": self._natural(name)}, 1.0
        for _ in range(2):
            found = directions_agree(evaluate, point, {"part": analytic}, upstream, self.tol.eps, self.tol.rtol,
                                     self.tol.atol, self.rng, natural, stretch=stretch,
                                     kinks=self._kinks([name], upstream))
            if found.agree or not found.rounding_only:
                return found
            if found.rounding <= GROUP_NOISE:
                found.agree = True
                return found
            stretch = min(MAX_STRETCH, stretch * 2 * found.rounding / GROUP_NOISE)
        return found

    def _kinks(self, names: list[str], upstream) -> Kinks:
        """What the directions need to tell kinks from errors (see directions.Kinks): per sample
        where the layer's samples proved independent (the probe rides in the directions' first
        stacked forward) and only batch-leading inputs move."""
        size = self.batch_size

        def samples() -> int:
            independent = self._batching is not None and set(names) <= self._batching[0]
            return size if independent and size > 1 else 1

        if size < 2 or any(out.shape[:1] != (size,) for out in self.base):
            return Kinks(self.base)
        weights = sum(np.abs(np.multiply(r, out)).reshape(size, -1).sum(axis=1) for r, out in zip(upstream, self.base))
        return Kinks(self.base, samples, weights)

    def _directions_first(self, names: list[str]) -> list[str]:
        """The tensors that start with the random directions: all in mode fast; in mode auto those
        above FULL_MAX elements, then, costliest first, as many as it takes to bring the others'
        full checks within FULL_BUDGET (see FULL_MAX)."""
        if self.mode != "auto":
            return list(names) if self.mode == "fast" else []
        first = {n for n in names if self.arrays[n].size > FULL_MAX}
        full = {n: self._full_forwards(n) for n in names if n not in first}
        forwards = sum(full.values())
        per_forward = self._forward_cost()
        for name in sorted(full, key=full.get, reverse=True):  # stable: the earlier of equal tensors first
            if forwards * per_forward <= FULL_BUDGET:
                break
            forwards -= full[name]
            first.add(name)
        return [n for n in names if n in first]

    def _forward_cost(self) -> float:
        """What one forward costs the budget: CALL_COST plus the elements of its arrays and outputs."""
        elements = sum(a.size for a in self.arrays.values()) + sum(int(np.prod(s)) for s in self.output_shapes)
        return CALL_COST + elements

    def _full_forwards(self, name: str) -> float:
        """Forwards the full check of tensor `name` takes: two per element, per element of one
        sample for a batch-leading input (whose moved copies go through stacked or coloured)."""
        size = self.arrays[name].size
        per_copy = self.batch_size if name in self.batch_leading and self.batch_size else 1
        return 2 * size / per_copy

    def _natural(self, name: str) -> float:
        """The layer's natural gradient scale for a tensor: the largest |R * out| over the tensor's size."""
        return self._natural_output / max(1.0, self.largest[name])

    def _evaluate_many(self, moved: dict[str, np.ndarray]):
        """Forward outputs with some tensors replaced by `moved` (the caller's, not read again);
        the others are the example's shared copies (unmoved_inputs, unmoved_params)."""
        return [out[0] for out in self._one_by_one({name: x[None] for name, x in moved.items()}, 1)]

    def evaluate_all(self, moved: dict[str, np.ndarray], coloured: bool = False) -> list[np.ndarray]:
        """Forward outputs for K moved versions of some tensors: `moved[name]` stacks K replacements
        of tensor `name` along a new leading axis, and each output comes back stacked the same way.

        The K copies of the batch go through one forward, stacked along the batch axis, when the
        layer allows it (see `batching`) and only batch-leading inputs move, in calls of about
        BLOCK_ELEMENTS elements; otherwise one forward per copy. `coloured` copies move every
        sample at once, which only a layer with independent samples may evaluate: else _NotColoured.
        """
        count = _copies(moved)
        names = set(moved)
        if count > 1 and names <= self.batch_leading and names.isdisjoint(self.params):
            group = finite_diff.BLOCK_ELEMENTS // max(self._copy_size(), 1)
            if self._batching is None and count + 3 <= group:  # probe and evaluate in one forward
                colour, stacks, outputs = self._probe_batching(extra=moved)
                self._batching = colour, stacks
                if outputs is not None:
                    return outputs
            colour, stacks = self.batching()
            if coloured and not names <= colour:
                raise _NotColoured
            if stacks and names <= colour and group >= 2:
                parts = [self._stacked({n: v[i:i + group] for n, v in moved.items()}) for i in range(0, count, group)]
                return parts[0] if len(parts) == 1 else [np.concatenate(column) for column in zip(*parts)]
        return self._one_by_one(moved, count)

    def _one_by_one(self, moved: dict[str, np.ndarray], count: int) -> list[np.ndarray]:
        """evaluate_all's outputs from one forward per moved copy, each output written into its
        stacked array as it comes."""
        inputs, params = list(self.unmoved_inputs), dict(self.unmoved_params)
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
                raise _shape_moved(outputs, self.output_shapes, sorted(moved), "a slightly moved", "at the drawn point")
            for column, out in zip(stacked, outputs):
                column[k] = out
        return stacked

    def _copy_size(self) -> int:
        """Elements in one copy of the batch-leading inputs, or of the outputs if those are larger."""
        inputs = sum(self.arrays[name].size for name in self.batch_leading)
        return max(inputs, sum(int(np.prod(shape)) for shape in self.output_shapes))

    def _stacked(self, moved: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One forward on the moved copies stacked along the batch axis; outputs split back into copies."""
        try:
            return self._forward_stacked(moved)
        except _Unstacked as unstacked:
            raise _shape_moved(unstacked.outputs, unstacked.expected, sorted(moved),
                               f"{_copies(moved)} stacked copies of the batch with a slightly moved",
                               f"from the drawn batch's {', '.join(map(str, self.output_shapes))}") from None

    def _forward_stacked(self, moved: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs, stacked per copy, of one forward on the copies stacked along the batch axis."""
        count, size = _copies(moved), self.batch_size
        inputs = []
        for t, x in zip(self.spec.inputs, self.unmoved_inputs):
            if t.name in moved:  # (count, size, ...) -> (count * size, ...): copy k is rows k*size .. (k+1)*size
                inputs.append(np.ascontiguousarray(moved[t.name]).reshape((count * size,) + x.shape[1:]))
            elif t.name in self.batch_leading:
                inputs.append(np.concatenate([x] * count))
            else:
                inputs.append(x)
        outputs = self.forward(inputs, self.unmoved_params)[0]
        expected = [(count * size,) + shape[1:] for shape in self.output_shapes]
        if [out.shape for out in outputs] != expected:
            raise _Unstacked(outputs, expected)
        return [out.reshape((count, size) + out.shape[1:]) for out in outputs]

    # -- forward --------------------------------------------------------------------------
    def forward(self, inputs, params):
        """Forward's outputs, copied: a layer may return the same buffer (a workspace) on every call,
        which the next call would overwrite in the outputs kept from this one."""
        self.counter.forward += 1
        outputs, handle = self.adapter.forward(inputs, params, self.seed)
        return tuple(out.copy() for out in outputs), handle

    def _copies(self):
        return [x.copy() for x in self.inputs], {k: v.copy() for k, v in self.params.items()}

    def _evaluate_one(self, name: str):
        """evaluate(moved): forward outputs with tensor `name` replaced by `moved`."""
        return lambda moved: self._evaluate_many({name: moved})

    def _evaluate_each(self, name: str, coloured: bool = False):
        """evaluate_all for tensor `name` alone: its moved copies in, stacked; the outputs out, stacked."""
        return lambda copies: self.evaluate_all({name: copies}, coloured)

    def reference_forward(self) -> tuple[np.ndarray, ...]:
        """Forward at the drawn point: finite, leaving its inputs alone. Its handle is kept for backward.

        Whether a second call gives the same outputs is settled before the verdict: by the stacking
        probe, whose middle copy of the batch must reproduce these outputs, or else by
        `_check_repeatable`, which calls forward again.
        """
        inputs, params = self._copies()
        outputs, handle = self.forward(inputs, params)
        if self.adapter.adopted:
            self._drop_state(handle, params)
        self._unchanged(inputs, params, "forward")
        if self.spec.style == "class":
            self._params_kept(handle, "forward")
        self.first_call = (inputs, params, handle)
        for position, out in enumerate(outputs):
            if not np.isfinite(out).all():
                magnitude = max((self.largest.get(t.name, 0.0) for t in self.spec.inputs), default=0.0)
                hint = f" ({nonfinite_cause(float_errors(lambda: self.forward(*self._copies())))})"
                which = f" {output_label(position, len(outputs))}" if len(outputs) > 1 else ""
                raise LayerProblem(
                    Status.FAIL,
                    f"forward{which} returned non-finite values (inf/nan) for finite inputs of magnitude "
                    f"~{magnitude:.0e}{hint}",
                )
        return outputs

    def _check_repeatable(self) -> None:
        """A second forward at the drawn point must give exactly the reference outputs."""
        again, _ = self.forward(*self._copies())
        self._repeated = True
        if len(again) != len(self.base) or not all(_same(a, b) for a, b in zip(self.base, again)):
            raise LayerProblem(
                Status.ERROR,
                "forward is not deterministic: two calls with the same inputs gave different outputs. "
                "If it draws a random mask, draw it from np.random (gradcheck reseeds it before every "
                "forward) or from a generator seeded in the layer, e.g. np.random.default_rng(seed)",
            )

    def _unchanged(self, inputs, params, who: str) -> None:
        for tensor, passed in zip(self.spec.inputs, inputs):
            if not _same(passed, self.arrays[tensor.name]):
                where = "" if who == "forward" else " (an input kept in the cache and changed by backward)"
                raise LayerProblem(Status.FAIL, f"{who} modified its input {tensor.name!r} in place{where}")
        changed = [name for name, passed in params.items() if not _same(passed, self.arrays[name])]
        if changed:
            raise LayerProblem(Status.FAIL, _param_changed(who, ", ".join(changed)), changed[0])

    def batching(self) -> tuple[set[str], bool]:
        """(inputs to colour, whether copies may be stacked along the batch axis), probed once.

        Colouring needs sample i's outputs to depend on sample i's inputs alone; stacking needs
        that too, across copies of the whole batch, and a layer that takes any batch size. Both
        are probed with large moves: one stacked forward, [moved; drawn; moved], whose middle copy
        must reproduce the reference outputs; failing that, two plain forwards that move the first
        and the last sample (batch-norm mixes samples: checked the full way).
        """
        if self._batching is None:
            names, stacks, _ = self._probe_batching()
            self._batching = names, stacks
        return self._batching

    def _colourable(self) -> set[str]:
        """The inputs batching could colour: batch-leading, differentiated, their outputs batch-leading too."""
        size = self.batch_size
        if not size or self.spec.batch_independent is False or any(out.shape[:1] != (size,) for out in self.base):
            return set()
        return {t.name for t in self.spec.differentiable_inputs if t.name in self.batch_leading}

    def _numerical(self, name: str, x: np.ndarray, upstream) -> tuple[Estimate, bool]:
        """The numerical gradient of one tensor, and whether it was batch-coloured.

        While the layer's batching is not yet probed, a batch-leading input's coloured estimate is
        tried first: its stacked forward carries the probe (see evaluate_all), one forward saved;
        if the probe finds that samples interact, the plain estimate is taken instead.
        """
        eps, hidden = self.tol.eps, self.hidden
        evaluate = self._evaluate_one(name)
        if self._batching is None and name in self._colourable():
            try:
                return numerical_gradient(evaluate, x, upstream, eps, hidden, self._evaluate_each(name, coloured=True), by_sample=True), True
            except _NotColoured:
                pass
        if name in self.batching()[0]:
            return numerical_gradient(evaluate, x, upstream, eps, hidden, self._evaluate_each(name), by_sample=True), True
        return numerical_gradient(evaluate, x, upstream, eps, hidden, self._evaluate_each(name)), False

    def _probe_batching(self, extra: dict[str, np.ndarray] | None = None) -> tuple[set[str], bool, list | None]:
        """`batching`'s verdict; and if the probe's stacked forward also carried the moved copies
        `extra` (after its own three) and stacking holds, their outputs: one forward saved."""
        size, names = self.batch_size, self._colourable()
        if not names:
            return set(), False, None
        carried = self._stacking_probe(sorted(names), self.rng, extra)  # sorted: set order varies between processes
        if carried is not None:
            return names, True, carried if extra else None
        if size < 2:
            return set(), False, None
        independent = self.spec.batch_independent or self._samples_independent(names, self.rng)
        return (names if independent else set()), False, None

    def _stacking_probe(self, names: list[str], rng, extra) -> list | None:
        """One forward of [moved; drawn; moved] (then `extra`'s copies) stacked along the batch axis:
        the outputs of `extra`'s copies ([] without) if the drawn copy came out as it did alone,
        which also shows forward repeatable (no second plain forward is needed then)."""
        moved = {}
        for name in names:
            x = self.arrays[name]
            stack = moved[name] = np.empty((3 + (_copies(extra) if extra else 0),) + x.shape)
            stack[1] = x
            shift = np.abs(x) + 1.0
            shift *= 0.1
            np.multiply(shift, rng.standard_normal((2,) + x.shape), out=stack[0:3:2])
            stack[0:3:2] += x
            clip_to_range(self.spec, name, stack[0:3:2])
            if extra:
                stack[3:] = extra[name] if name in extra else x
        try:
            copies = self._forward_stacked(moved)
        except (LayerProblem, _Unstacked):  # a layer built for one batch size may refuse another
            return None
        if not all(_reproduces(out[1], ref) for out, ref in zip(copies, self.base)):
            return None
        self._repeated = True
        return [out[3:] for out in copies]

    def _samples_independent(self, names: set[str], rng) -> bool:
        """Two plain forwards moving the first, then the last sample: the others must not change."""
        size = self.batch_size
        for sample, others in ((0, slice(1, None)), (size - 1, slice(0, size - 1))):
            inputs, params = self._copies()
            for position, tensor in enumerate(self.spec.inputs):
                if tensor.name in names:
                    x = inputs[position]
                    x[sample] += 0.1 * (np.abs(x[sample]) + 1.0) * rng.standard_normal(x[sample].shape)
                    clip_to_range(self.spec, tensor.name, x[sample])
            try:
                probed = self.forward(inputs, params)[0]
            except LayerProblem:  # the large move left the layer's domain: no colouring, no verdict
                return False
            if not all(np.array_equal(p[others], b[others]) for p, b in zip(probed, self.base)):
                return False  # samples interact (batch-norm...): check the full way
        return True

    # -- backward ---------------------------------------------------------------------------
    def analytic(self, upstream: list) -> dict[str, np.ndarray]:
        """Gradients from backward (on the reference forward's handle), after checking what it touched."""
        inputs, params, handle = self.first_call
        douts = [np.copy(r) if isinstance(r, np.ndarray) else r for r in upstream]
        self.counter.backward += 1
        grads = self.adapter.backward(handle, douts)
        for position, (passed, original) in enumerate(zip(douts, upstream)):
            if isinstance(original, np.ndarray) and not _same(passed, original):
                label = "dout" if len(upstream) == 1 else upstream_label(self.spec, position, len(upstream))
                self.warnings.append(f"backward modified {label} in place (the gradient is right, but a network sharing that array would see it change)")
        updates = self.spec.grads.kind == "update"  # such a backward changes its parameters on purpose
        self._unchanged(inputs, {} if updates else params, "backward")
        found = dict(grads.inputs)
        if self.spec.style == "class":
            found.update(self._class_param_grads(grads))
        else:
            found.update(grads.params)
        return {name: self._validate(name, value) for name, value in found.items()}

    def _params_kept(self, obj, who: str) -> None:
        adapter = self.adapter
        changed = [p.name for i, p in enumerate(self.spec.params)
                   if not _same(adapter.read(obj, self.spec.params_at, i), self.arrays[p.name])]
        if changed:
            raise LayerProblem(Status.FAIL, f"{who} changed the parameter(s) {', '.join(changed)}", changed[0])

    def _class_param_grads(self, grads) -> dict[str, np.ndarray]:
        out = {}
        for position, param in enumerate(self.spec.params):
            before, after = self.arrays[param.name], grads.params_after[param.name]
            if self.spec.grads.kind == "update":
                if after is None or np.shape(after) != before.shape:
                    raise LayerProblem(Status.ERROR, f"after backward, {param.name!r} is missing or changed shape")
                out[param.name] = (before - np.asarray(after, dtype=np.float64)) / UPDATE_LEARNING_RATE
                continue
            if not _same(after, before):
                raise LayerProblem(Status.FAIL, _param_changed("backward", param.name))
            value = grads.params[param.name]
            if value is None and param.name in self.adapter.adopted:  # found, but not its gradient: say so
                self.warnings.append(unchecked_warning([f"self.{param.name} (no gradient at self.d{param.name})"]))
                continue
            if value is None:
                place = self.spec.grads.describe(param.name, position)
                raise LayerProblem(Status.ERROR, f"backward did not set the gradient of {param.name!r}: {place} is missing", param.name)
            out[param.name] = value
        return out

    def _validate(self, name: str, value) -> np.ndarray:
        expected = self.arrays[name].shape
        if value is None:
            raise LayerProblem(Status.ERROR, f"backward returned None for d{name}; expected an array of shape {expected}", name)
        array = np.asarray(value)
        if not np.issubdtype(array.dtype, np.floating):
            raise LayerProblem(Status.ERROR, f"d{name} has dtype {array.dtype}; expected a float array of shape {expected}", name)
        if array.shape != expected:
            raise LayerProblem(Status.ERROR, f"d{name} has shape {array.shape}; expected {expected}, the shape of {name}{_shape_hint(array.shape, expected)}", name)
        if not np.isfinite(array).all():
            raise LayerProblem(Status.FAIL, f"d{name} contains non-finite values (inf/nan)", name)
        if array.dtype.itemsize < 8:  # a float32 gradient: checked at float32 precision
            self.adapter.dtypes.add(array.dtype)
        return array.astype(np.float64)

    # -- comparison -------------------------------------------------------------------------
    def compare(self, name, kind, x, analytic, base, upstream, groups=None) -> TensorOutcome:
        """Numeric against analytic; elements that fail are re-examined for kinks and noise.
        `groups`: only these groups of flat indices, one at a time until one fails (see _by_groups)."""
        if groups is not None:
            return self._compare_groups(name, kind, x, analytic, base, upstream, groups)
        estimate, coloured = self._numerical(name, x, upstream)
        return self._confirm(name, kind, x, analytic, base, upstream, estimate, coloured)

    def _compare_groups(self, name, kind, x, analytic, base, upstream, groups) -> TensorOutcome:
        """compare for some groups of a tensor's elements; the others count as agreeing (their
        directions did), with the group's numeric set to analytic."""
        numeric, noise = analytic.copy(), np.zeros(x.shape)
        outcome = None
        for group in (chunk for g in groups for chunk in np.array_split(g, -(-len(g) // CONFIRM_CHUNK))):
            part = element_differences(self._evaluate_each(name), x, group, upstream, self.tol.eps, self.hidden)
            numeric.reshape(-1)[group], noise.reshape(-1)[group] = part.value, part.rounding
            outcome = self._confirm(name, kind, x, analytic, base, upstream, Estimate(numeric.copy(), noise.copy()),
                                    False)
            if outcome.status is Status.FAIL:
                break
        return outcome

    def _confirm(self, name, kind, x, analytic, base, upstream, estimate, coloured) -> TensorOutcome:
        """The verdict on a numerical estimate: suspects re-derived and swept for steadiness."""
        eps, rtol, atol = self.tol.eps, self.tol.rtol, self.tol.atol
        evaluate = self._evaluate_one(name)
        numeric, noise = estimate.value, estimate.rounding
        bound = tolerance(estimate, analytic, rtol, atol, self._natural(name))
        unreliable = ~np.isfinite(numeric)
        gap = np.abs(analytic - numeric)
        suspects = np.flatnonzero(gap > bound)  # never where numeric is not finite: gap > bound is then False
        if suspects.size > 1:  # the worst first
            suspects = suspects[np.argsort(-(gap / np.maximum(bound, TINY)).reshape(-1)[suspects])]
        confirmed = np.zeros(x.shape, dtype=bool)
        flat_a, flat_n, flat_b = analytic.reshape(-1), numeric.reshape(-1), bound.reshape(-1)
        for index in suspects:
            if coloured:  # re-derive the suspect the plain way before believing it
                value, rounding = centred_difference(evaluate, x, upstream, eps, int(index), self.hidden)
                flat_b[index] += rounding - noise.reshape(-1)[index]
                flat_n[index] = value
                if abs(flat_a[index] - value) <= flat_b[index]:
                    continue
            if is_steady(evaluate, x, base, upstream, eps, int(index), float(flat_a[index]), float(flat_n[index]),
                         self.hidden):
                confirmed.reshape(-1)[index] = True
                break  # one steady failure settles the verdict; no need to re-examine the rest
            unreliable.reshape(-1)[index] = True
        numeric[unreliable] = np.nan
        if kind == "param" and self.spec.style == "class" and confirmed.any() and not numeric[np.isfinite(numeric)].any():
            self._not_read(name, base)
        return TensorOutcome(name, kind, analytic, numeric, bound, confirmed, int(unreliable.sum()),
                             method="coloured" if coloured else "full")


    def _not_read(self, name: str, base) -> None:
        """An ERROR for a parameter whose moves never reach forward's outputs while another array
        the layer holds does: the layer reads it there (a copy, or an array reassigned)."""
        position = [p.name for p in self.spec.params].index(name)
        others = self.adapter.read_elsewhere(position, self.unmoved_inputs, self.unmoved_params, self.seed, base)
        if not others:
            return
        place = self.spec.params_at.describe(name, position)
        raise LayerProblem(Status.ERROR, (
            f"moving {name} at {place} never changed forward's outputs, but moving {', '.join(others)} did: the "
            f"layer reads {name} there. gradcheck writes the values into the array at {place}, so a layer that "
            "keeps a copy of the parameter, or reassigns it (self.W = ...) instead of updating it in place "
            "(self.W[...] = ...), cannot be checked: point params_at to where forward reads it"), name)


CAST_INSIDE = ("forward returned float64 values that all fit in float32: it computes in float32 inside "
               "(a cast, or float32 parameters), so only float32 precision was checked")


def unchecked_warning(places: list[str]) -> str:
    """The warning naming arrays the layer holds that look like parameters but were not checked."""
    return (f"not checked: {', '.join(places)}: float arrays the layer holds that look like parameters but are "
            "not declared; declare them under params: (or set discover: false)")


def _float32_values(outputs, hidden: float) -> bool:
    """Whether float64 outputs hold only float32 values: none with more than float32's 24 significant
    bits, and some that should have many more. A value computed in float64 from intermediates as
    large as `hidden` keeps about 53 - log2(hidden / |value|) bits: only where that is at least
    FULL_BITS does a value of 12 to 24 bits tell of float32 (a cancellation leaves few bits, and
    small integers and simple fractions have few: neither tells)."""
    values = np.concatenate([out.reshape(-1) for out in outputs]) if outputs else np.empty(0)
    values = values[np.isfinite(values) & (values != 0)]
    mantissa = (np.abs(np.frexp(values)[0]) * 2.0**53).astype(np.int64)
    bits = 53 - np.log2(mantissa & -mantissa).astype(np.int64)
    kept = 53 - np.maximum(0.0, np.log2(max(hidden, 1.0) / np.abs(values)))
    telling = (bits >= 12) & (bits <= 24) & (kept >= FULL_BITS) & (values != np.round(values))
    return not (bits > 24).any() and bool(telling.any())


FULL_BITS = 40


def _param_changed(who: str, name: str) -> str:
    if who != "backward":
        return f"{who} changed the parameter(s) {name}"
    return (f"backward changed the parameter(s) {name} (an SGD step inside backward?): backward must only "
            "compute gradients; if the layer applies its own update, declare grads: update:ARG")


def _copies(moved: dict[str, np.ndarray]) -> int:
    """How many moved copies a {tensor: copies stacked along a new leading axis} holds."""
    return len(next(iter(moved.values())))


def _shape_moved(outputs, expected, names: list[str], how: str, where: str) -> LayerProblem:
    """The ERROR for a forward whose output shapes changed when its inputs moved a little."""
    got = ", ".join(str(out.shape) for out in outputs)
    return LayerProblem(Status.ERROR, f"forward returned output shape(s) {got} for {how} {'/'.join(names)}; "
                        f"{', '.join(map(str, expected))} expected {where}", names[0] if len(names) == 1 else None)


def _reproduces(out: np.ndarray, reference: np.ndarray) -> bool:
    """Whether a stacked forward's copy matches the reference outputs, up to a matrix product's
    rounding (a batch of another size may take another BLAS kernel)."""
    scale = float(np.abs(reference).max(initial=0.0))
    return out.shape == reference.shape and bool((np.abs(out - reference) <= 1e-12 * scale).all())


def _same(a, b) -> bool:
    """Whether two arrays hold the same values (NaN equal to NaN): bytes first, which is the usual answer."""
    if a is None or b is None:
        return a is b
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    return (a.dtype == b.dtype and a.tobytes() == b.tobytes()) or np.array_equal(a, b, equal_nan=True)


def _shape_hint(got: tuple, expected: tuple) -> str:
    if len(got) == len(expected) == 2 and got == expected[::-1] and got != expected:
        return " (transposed?)"
    if got == (1,) + expected:
        return " (a leading axis of 1 that broadcasting would hide: .sum(axis=0) without keepdims)"
    if len(got) == len(expected) + 1 and got[1:] == expected:
        return " (sum over the batch axis: .sum(axis=0))"
    if int(np.prod(got)) == int(np.prod(expected)):
        return " (same size: reshape to the tensor's shape)"
    return ""
