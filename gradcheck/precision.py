"""At which precision an example is checked: float64, or the float32/float16 the layer computes in."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradcheck import finite_diff
from gradcheck.adapters import Adapter
from gradcheck.spec import Tolerances

CAST_INSIDE = (
    "forward returned float64 values that all fit in float32: it computes in float32 inside "
    "(a cast, or float32 parameters), so only float32 precision was checked"
)
FLOAT64_BITS = 53  # significant bits of a float64
FLOAT32_BITS = 24  # significant bits of a float32
FEW_BITS = 12  # a value with fewer significant bits than this may be a simple fraction: it tells nothing
FULL_BITS = 40  # a value computed in float64 that should keep at least this many bits tells of float32 when it has few


@dataclass(frozen=True)
class Steps:
    """The finite-difference step and tolerances an example is checked with, every one set."""

    eps: float
    rtol: float
    atol: float

    @classmethod
    def of(cls, tol: Tolerances) -> Steps:
        """The given tolerances, which the engine has merged with the defaults."""
        if tol.eps is None or tol.rtol is None or tol.atol is None:
            raise ValueError(f"{tol} leaves a tolerance unset: merge it with DEFAULT_TOLERANCES first")
        return cls(eps=tol.eps, rtol=tol.rtol, atol=tol.atol)


def checked_precision(
    adapter: Adapter, outputs, magnitude: float, tol: Tolerances, warnings: list[str]
) -> tuple[str, Steps]:
    """(the dtype name, the tolerances) to check at: float32 (float16) when forward returned or
    backward stored arrays of that dtype, or when forward's float64 outputs hold only float32 values
    (a cast inside): the step and tolerances that precision supports, rounding in its units."""
    dtypes, steps = adapter.dtypes, Steps.of(tol)
    if not dtypes and _float32_values(outputs, magnitude):
        dtypes.add(np.dtype(np.float32))
        warnings.append(CAST_INSIDE)
    if not dtypes:
        return "float64", steps
    lowest = min(dtypes, key=lambda d: np.finfo(d).nmant)
    eps, rtol, atol = finite_diff.precision_tolerances(lowest, steps.eps, steps.rtol, steps.atol)
    finite_diff.set_rounding_unit(float(np.finfo(lowest).eps))
    return lowest.name, Steps(eps=eps, rtol=rtol, atol=atol)


def _float32_values(outputs, magnitude: float) -> bool:
    """Whether float64 outputs hold only float32 values: none with more than float32's 24 significant
    bits, and some that should have many more. A value computed in float64 from intermediates as
    large as `magnitude` keeps about 53 - log2(magnitude / |value|) bits: only where that is at least
    FULL_BITS does a value of 12 to 24 bits tell of float32 (a cancellation leaves few bits, and
    small integers and simple fractions have few: neither tells)."""
    values = np.concatenate([out.reshape(-1) for out in outputs]) if outputs else np.empty(0)
    values = values[np.isfinite(values) & (values != 0)]
    mantissa = (np.abs(np.frexp(values)[0]) * 2.0**FLOAT64_BITS).astype(np.int64)
    bits = FLOAT64_BITS - np.log2(mantissa & -mantissa).astype(np.int64)
    kept = FLOAT64_BITS - np.maximum(0.0, np.log2(max(magnitude, 1.0) / np.abs(values)))
    telling = (bits >= FEW_BITS) & (bits <= FLOAT32_BITS) & (kept >= FULL_BITS) & (values != np.round(values))
    return not (bits > FLOAT32_BITS).any() and bool(telling.any())
