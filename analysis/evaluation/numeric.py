"""Small numeric helpers both evaluation families share: safe ratios, JSON rounding, NaN means."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


def ratio(num: float, den: float) -> float | None:
    """Return num/den, None when den is 0."""
    return float(num) / float(den) if den else None


def json_round(value: float | None, digits: int = 4) -> float | None:
    """Round for JSON, keeping None (and turning NaN into None)."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def nanmean(values: Iterable[float | None]) -> float:
    """Return the mean of the finite values, NaN when there is none."""
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else math.nan
