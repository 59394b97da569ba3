"""Whether a meter has generation behind it, judged from its own readings.

A registry often says nothing about solar (`unknown` is not `solar`), so a single-channel
meter counts as one with generation only when it has exported regularly: negative delivered
readings on at least `MIN_DAYS` of its days and on at least `MIN_SHARE` of the days it has
data. A backfeed or a reversed CT on a day or two is then still a `reverse_flow`, while a net
meter that exports most sunny days is treated as solar and says so.
"""

from __future__ import annotations

import numpy as np

MIN_DAYS = 4
MIN_SHARE = 0.2
US_PER_DAY = 86_400_000_000


def export_days(
    meter: np.ndarray, ts_us: np.ndarray, negative: np.ndarray, n_meters: int
) -> tuple[np.ndarray, np.ndarray]:
    """(days with data, days with a negative reading) per meter code 0..n_meters-1; days are
    UTC days of the interval starts."""
    day = np.asarray(ts_us, dtype=np.int64) // US_PER_DAY
    meter = np.asarray(meter, dtype=np.int64)
    negative = np.asarray(negative, dtype=bool)
    if not len(day):
        zero = np.zeros(n_meters, dtype=np.int64)
        return zero, zero.copy()
    span = int(day.max()) - int(day.min()) + 1
    key = meter * span + (day - int(day.min()))

    def distinct(rows: np.ndarray) -> np.ndarray:
        mine = key[rows]
        if len(mine) > 1 and not (mine[1:] >= mine[:-1]).all():
            mine = np.sort(mine)
        first = np.ones(len(mine), dtype=bool)
        first[1:] = mine[1:] != mine[:-1]
        return np.bincount(mine[first] // span, minlength=n_meters)[:n_meters]

    return distinct(np.ones(len(day), dtype=bool)), distinct(negative)


def exports_regularly(days_with_data: np.ndarray, days_negative: np.ndarray) -> np.ndarray:
    """Per meter: exported on enough days to count as a meter with generation."""
    days_negative = np.asarray(days_negative)
    return (days_negative >= MIN_DAYS) & (days_negative >= MIN_SHARE * np.asarray(days_with_data))
