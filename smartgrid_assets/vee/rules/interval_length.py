"""`interval_length`: a reading whose interval differs from the meter's dominant interval."""

from __future__ import annotations

import numpy as np


def dominant_interval(
    meter: np.ndarray, interval_minutes: np.ndarray, n_meters: int, default: int
) -> np.ndarray:
    """Most frequent interval per meter (ties: the shorter), `default` for meters without rows.

    Rows must be sorted by `meter` (an index 0..n_meters-1).
    """
    out = np.full(n_meters, default, dtype=np.int64)
    n = len(meter)
    if n == 0:
        return out
    interval = np.asarray(interval_minutes, dtype=np.int64)
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(meter[1:], meter[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    lo = np.minimum.reduceat(interval, starts)
    hi = np.maximum.reduceat(interval, starts)
    owners = meter[starts]
    out[owners] = lo
    mixed = owners[lo != hi]
    if len(mixed):
        rows = np.flatnonzero(np.isin(meter, mixed))
        pairs, counts = np.unique(
            np.stack([meter[rows], interval[rows]], axis=1), axis=0, return_counts=True
        )
        # per meter: highest count, then shortest interval
        order = np.lexsort((pairs[:, 1], -counts, pairs[:, 0]))
        ordered = pairs[order]
        first = np.ones(len(ordered), dtype=bool)
        first[1:] = ordered[1:, 0] != ordered[:-1, 0]
        out[ordered[first, 0]] = ordered[first, 1]
    return out


def wrong_length(interval_minutes: np.ndarray, dominant: np.ndarray) -> np.ndarray:
    """True where a reading's interval is not its meter's dominant interval."""
    return np.asarray(interval_minutes) != np.asarray(dominant)
