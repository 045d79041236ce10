"""The allowed values of the numeric settings, as data, and the one function that checks them.

The command line, layers.yaml, `[tool.gradcheck]` and the Python API all call `check_setting`,
so a value is accepted or refused the same way wherever it is written.
"""

from __future__ import annotations

import math
import numbers
import reprlib
from dataclasses import dataclass
from typing import Any

from gradcheck.errors import SettingError

# A centred difference perturbs x by eps * max(1, |x|), and x + h is rounded to the float64 grid,
# so the step actually taken is off by up to one ulp of x. Below ~1000 ulp of 1.0 (2.2e-13) that
# rounding alone changes the step, and with it the numerical gradient, by more than 0.1%: the
# difference measures rounding noise, not the derivative.
EPS_MIN = 1000 * 2.0**-52
# A step as large as the value itself (eps >= 1) is not a derivative any more.
EPS_MAX = 1.0
# Each example costs at least one forward and backward plus two forwards per checked element;
# 100 000 of them is hours for any real layer: a larger number is a typo, not a plan.
EXAMPLES_MAX = 100_000
# A per-layer limit of more than a week is never meant, and platform timers overflow beyond ~2**31 s.
TIMEOUT_MAX = 7 * 24 * 3600.0


@dataclass(frozen=True)
class Rule:
    """Bounds of one setting: lo < value (or lo <= value when lo_inclusive) and value < hi (or <=)."""

    expected: str
    lo: float
    hi: float
    lo_inclusive: bool = True
    hi_inclusive: bool = True
    whole: bool = False

    def allows(self, value: float) -> bool:
        above = value >= self.lo if self.lo_inclusive else value > self.lo
        below = value <= self.hi if self.hi_inclusive else value < self.hi
        return above and below


RULES = {
    "examples": Rule(f"a whole number from 1 to {EXAMPLES_MAX}", 1, EXAMPLES_MAX, whole=True),
    # rtol >= 1 accepts a zero gradient for any numerical one: every wrong backward would pass.
    "rtol": Rule("a number >= 0 and < 1", 0.0, 1.0, hi_inclusive=False),
    "atol": Rule("a finite number >= 0", 0.0, math.inf, hi_inclusive=False),
    "eps": Rule(
        f"a number from {EPS_MIN:.3g} (1000 ulp of 1.0) to below {EPS_MAX:g}", EPS_MIN, EPS_MAX, hi_inclusive=False
    ),
    "timeout": Rule(f"a number of seconds > 0 and at most {TIMEOUT_MAX:g}", 0.0, TIMEOUT_MAX, lo_inclusive=False),
}


def setting_problem(name: str, value: Any) -> str | None:
    """What is wrong with `value` for setting `name`, or None when it is allowed."""
    rule = RULES[name]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        ok = False
    elif isinstance(value, numbers.Integral):
        ok = rule.allows(int(value))  # exact: a huge int never goes through float
    else:
        value = float(value)
        ok = math.isfinite(value) and (value.is_integer() or not rule.whole) and rule.allows(value)
    return None if ok else f"{name} must be {rule.expected}, got {shown(value)}"


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxlong = _SHORT.maxother = 60


def shown(value: Any) -> str:
    """repr of a value a user wrote, cut short so a huge one cannot flood or stall the message."""
    try:
        return _SHORT.repr(value)
    except ValueError:  # an int too long to turn into a string at all
        return "an integer of thousands of digits"


def check_setting(name: str, value: Any) -> Any:
    """`value` (an int for a whole-number setting) if allowed for `name`, else raise SettingError."""
    if value is None:
        return None
    problem = setting_problem(name, value)
    if problem:
        raise SettingError(problem)
    return int(value) if RULES[name].whole else float(value)


def check_settings(**values: Any) -> dict[str, Any]:
    """Every given setting checked at once; the first problem raises SettingError."""
    return {name: check_setting(name, value) for name, value in values.items()}
