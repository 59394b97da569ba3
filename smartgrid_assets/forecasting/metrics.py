"""Point and interval accuracy metrics: small pure functions over aligned arrays.

Each takes array-likes of equal length and returns a float (NaN for empty input, or for MAPE
when every actual is too close to zero to divide by).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def _pair(actual: ArrayLike, predicted: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(actual, dtype=float)
    p = np.asarray(predicted, dtype=float)
    if a.shape != p.shape:
        raise ValueError(f"actual {a.shape} and predicted {p.shape} differ in shape")
    return a, p


def mae(actual: ArrayLike, predicted: ArrayLike) -> float:
    a, p = _pair(actual, predicted)
    return float(np.mean(np.abs(a - p))) if a.size else float("nan")


def rmse(actual: ArrayLike, predicted: ArrayLike) -> float:
    a, p = _pair(actual, predicted)
    return float(np.sqrt(np.mean((a - p) ** 2))) if a.size else float("nan")


def mape(actual: ArrayLike, predicted: ArrayLike, *, min_share: float = 0.01) -> float:
    """Mean absolute percentage error (in %), over hours whose |actual| is not near zero.

    Hours with |actual| below ``min_share`` of the mean |actual| are left out, so a near-zero
    (e.g. solar-offset net) load cannot blow the ratio up; NaN if no hour is left.
    """
    a, p = _pair(actual, predicted)
    if not a.size:
        return float("nan")
    floor = min_share * float(np.mean(np.abs(a)))
    keep = np.abs(a) > max(floor, 0.0)
    if not keep.any():
        return float("nan")
    return float(100.0 * np.mean(np.abs(a[keep] - p[keep]) / np.abs(a[keep])))


def pinball_loss(actual: ArrayLike, predicted: ArrayLike, quantile: float) -> float:
    """Mean quantile (pinball) loss of a ``quantile`` forecast."""
    if not 0.0 < quantile < 1.0:
        raise ValueError("quantile must be in (0, 1)")
    a, p = _pair(actual, predicted)
    if not a.size:
        return float("nan")
    diff = a - p
    return float(np.mean(np.maximum(quantile * diff, (quantile - 1.0) * diff)))


def coverage(actual: ArrayLike, lower: ArrayLike, upper: ArrayLike) -> float:
    """Share of hours with lower <= actual <= upper."""
    a, lo = _pair(actual, lower)
    _, hi = _pair(actual, upper)
    return float(np.mean((lo <= a) & (a <= hi))) if a.size else float("nan")
