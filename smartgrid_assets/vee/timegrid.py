"""Local days and local time of day for UTC instants (integers, microseconds since epoch).

Timestamps are UTC; a local day in a DST zone is 23 or 25 hours long (92 or 100 quarter
hours). Day bounds are computed once per day from local midnights, then rows are placed in
days with a binary search, so no per-row time-zone conversion is needed.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

US_PER_MINUTE = 60_000_000
US_PER_DAY = 86_400_000_000


def to_us(value: dt.datetime | pd.Timestamp, name: str) -> int:
    """A timezone-aware instant as integer microseconds since the Unix epoch (UTC)."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (got naive {value!r})")
    return int(ts.tz_convert("UTC").value // 1000)  # .value is nanoseconds


def _local_midnight_us(day: dt.date, tz: str) -> int:
    midnight = pd.Timestamp(day.year, day.month, day.day).tz_localize(
        tz, nonexistent="shift_forward", ambiguous=True
    )
    return int(midnight.tz_convert("UTC").value // 1000)


def local_date(us: int, tz: str) -> dt.date:
    """The local calendar date of an instant."""
    return pd.Timestamp(us, unit="us", tz="UTC").tz_convert(tz).date()


def local_days(start_us: int, end_us: int, tz: str) -> tuple[list[dt.date], np.ndarray]:
    """Local days overlapping [start_us, end_us) and their D+1 UTC bounds (microseconds).

    Day i covers [bounds[i], bounds[i + 1]).
    """
    if end_us <= start_us:
        day = local_date(start_us, tz)
        return [day], np.array([_local_midnight_us(day, tz)] * 2, dtype=np.int64)
    first = local_date(start_us, tz)
    last = local_date(end_us - 1, tz)
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    bounds = [_local_midnight_us(d, tz) for d in days]
    bounds.append(_local_midnight_us(last + dt.timedelta(days=1), tz))
    return days, np.asarray(bounds, dtype=np.int64)


def day_index(ts_us: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Index of the local day of each instant (-1 before the first, D after the last)."""
    idx = np.searchsorted(bounds, ts_us, side="right") - 1
    return np.where(ts_us >= bounds[-1], len(bounds) - 1, idx)


# Inputs spanning at most this many minutes get UTC offsets from a per-minute lookup table.
_OFFSET_TABLE_MAX_MINUTES = 100 * 1440


def _wall_us(ts_us: np.ndarray, tz: str) -> np.ndarray:
    """Local wall-clock time of each instant, as microseconds since the local epoch."""
    ts = np.asarray(ts_us, dtype=np.int64)
    first = int(ts.min()) // US_PER_MINUTE
    span = int(ts.max()) // US_PER_MINUTE - first + 1
    if span <= _OFFSET_TABLE_MAX_MINUTES:
        # offsets change at most at whole minutes: convert one instant per minute, not per row
        minutes = (first + np.arange(span, dtype=np.int64)) * US_PER_MINUTE
        offsets = _wall_us_pandas(minutes, tz) - minutes
        return ts + offsets[ts // US_PER_MINUTE - first]
    return _wall_us_pandas(ts, tz)


def _wall_us_pandas(ts: np.ndarray, tz: str) -> np.ndarray:
    local = pd.DatetimeIndex(pd.to_datetime(ts, unit="us", utc=True)).tz_convert(tz)
    return local.tz_localize(None).as_unit("us").asi8


def local_minute_of_day(ts_us: np.ndarray, tz: str) -> np.ndarray:
    """Local wall-clock minute of the day (0..1439) of each instant."""
    if len(ts_us) == 0:
        return np.zeros(0, dtype=np.int64)
    return (_wall_us(ts_us, tz) % US_PER_DAY) // US_PER_MINUTE
