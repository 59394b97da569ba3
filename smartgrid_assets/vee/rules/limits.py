"""`limit.high` / `limit.low`: average power outside the customer class's limits.

Average kW over the interval is kWh x 60 / interval minutes. `limit.low` only applies to solar
meters: a negative value on a meter without solar is the `negative` rule's finding.
"""

from __future__ import annotations

import numpy as np

from ..config import VeeConfig


def average_kw(kwh: np.ndarray, interval_minutes: np.ndarray) -> np.ndarray:
    """Average power in kW over each interval."""
    interval = np.asarray(interval_minutes)
    if interval.size and interval.min() == interval.max():  # one interval: divide by a scalar
        minutes = np.float64(interval.flat[0] if interval.flat[0] > 0 else 1)
    else:
        minutes = np.where(interval > 0, interval, 1).astype(np.float64)
    kw = np.multiply(kwh, 60.0, dtype=np.float64)
    kw /= minutes
    return kw


def class_limits(customer_class: np.ndarray, config: VeeConfig) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) kW limits per meter from its customer class (unknown class: `unknown`)."""
    classes = np.asarray(customer_class, dtype=object)
    low = np.empty(len(classes), dtype=np.float64)
    high = np.empty(len(classes), dtype=np.float64)
    uniques, inverse = np.unique(classes.astype(str), return_inverse=True)
    for i, name in enumerate(uniques):
        low[inverse == i], high[inverse == i] = config.limits_for(str(name))
    return low, high


def limit_high(kw: np.ndarray, high_kw: np.ndarray) -> np.ndarray:
    """True where average kW exceeds the class high limit."""
    return np.asarray(kw) > high_kw


def limit_low(kw: np.ndarray, low_kw: np.ndarray, has_solar: np.ndarray) -> np.ndarray:
    """True where a solar meter's average kW is below the class low limit."""
    return (np.asarray(kw) < low_kw) & np.asarray(has_solar, dtype=bool)
