"""`alignment`: a timestamp that is not on the meter's interval grid.

A reading is on the grid when its epoch minutes are a multiple of its interval length. A
misaligned reading is snapped to the floor of the grid (quality `X`, `ts_raw` keeps the value
as landed); if the snapped slot already holds an aligned reading, the aligned one wins (see
`duplicate.resolve_slots`).
"""

from __future__ import annotations

import numpy as np

US_PER_MINUTE = 60_000_000


def _step_us(interval_minutes: np.ndarray) -> np.ndarray:
    # A non-positive interval cannot define a grid; it is flagged by `interval_length`.
    minutes = np.where(interval_minutes > 0, interval_minutes, 1).astype(np.int64)
    return minutes * US_PER_MINUTE


def snap_and_flag(ts_us: np.ndarray, interval_minutes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(snapped ts, misaligned mask) in one pass; fast when all intervals are equal."""
    ts = np.asarray(ts_us, dtype=np.int64)
    interval = np.asarray(interval_minutes)
    if len(interval) and interval.min() == interval.max():
        step = int(_step_us(interval[:1])[0])
        remainder = ts % step
    else:
        remainder = ts % _step_us(interval)
    mis = remainder != 0
    if not mis.any():
        return ts, mis  # all on the grid: nothing to snap
    return np.subtract(ts, remainder, out=remainder), mis


def misaligned(ts_us: np.ndarray, interval_minutes: np.ndarray) -> np.ndarray:
    """True where ts (UTC microseconds) is not a multiple of the reading's interval."""
    return np.asarray(ts_us, dtype=np.int64) % _step_us(np.asarray(interval_minutes)) != 0


def snap(ts_us: np.ndarray, interval_minutes: np.ndarray) -> np.ndarray:
    """ts floored to the reading's interval grid."""
    ts = np.asarray(ts_us, dtype=np.int64)
    return ts - ts % _step_us(np.asarray(interval_minutes))
