"""The one 95 % Student-t confidence interval of a mean, used by sweeps (over seeds) and calibration (over inputs)."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["t_interval"]


def t_interval(units: Sequence[float], *, center: float | None = None) -> tuple[float, float, float]:
    """``(center, low, high)``: the 95 % Student-t interval of the mean of independent ``units``, clipped to [0, 1].

    The half-width is ``t(0.975, n - 1) · std(units) / sqrt(n)`` with the unbiased std; the interval is
    centred on ``center`` (default: the units' mean), for callers whose point estimate pools finer rows than
    the units. With fewer than two units the spread is unknown and the interval is the point itself. The
    values are fractions (agreements, accuracies), hence the clipping.

    Example:
        >>> [round(v, 3) for v in t_interval([0.5, 0.6, 0.7])]
        [0.6, 0.352, 0.848]
    """
    n = len(units)
    mean = sum(units) / n if n else math.nan
    middle = mean if center is None else center
    if n < 2:
        return middle, middle, middle
    std = math.sqrt(sum((v - mean) ** 2 for v in units) / (n - 1))
    from scipy.stats import t as student_t

    half = float(student_t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return middle, max(middle - half, 0.0), min(middle + half, 1.0)
