"""When a day-ahead forecast is issued and which hours it covers, from local-day bounds.

A forecast for local day D is issued at 00:00 local on D-1 and covers every clock hour of D:
23 hours on a spring-forward day, 25 on a fall-back day, built from the day's UTC bounds in the
time zone (the same bounds as the pipeline's daily partitions), never assuming 24.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from smartgrid_assets.days import day_bounds_utc, day_start_utc

US_PER_HOUR = 3_600_000_000


def issue_time(target_day: date, tz: str) -> datetime:
    """00:00 local on the day before ``target_day``, as an aware UTC datetime."""
    return day_start_utc(target_day - timedelta(days=1), tz)


def target_hours(target_day: date, tz: str) -> list[datetime]:
    """UTC starts of the clock hours of local ``target_day`` (23, 24 or 25 of them)."""
    start, end = day_bounds_utc(target_day, tz)
    n = round((end - start) / timedelta(hours=1))
    return [start + timedelta(hours=i) for i in range(n)]


def to_us(instant: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch."""
    return int(pd.Timestamp(instant).tz_convert("UTC").value // 1000)


def target_hours_us(target_day: date, tz: str) -> np.ndarray:
    return np.array([to_us(h) for h in target_hours(target_day, tz)], dtype=np.int64)


def local_day_hour(ts_us: np.ndarray, tz: str) -> tuple[np.ndarray, np.ndarray]:
    """Local day (days since 1970-01-01) and local clock hour of UTC instants."""
    local = pd.DatetimeIndex(pd.to_datetime(np.asarray(ts_us, np.int64), unit="us", utc=True))
    local = local.tz_convert(tz)
    day = local.tz_localize(None).values.astype("datetime64[D]").astype(np.int64)
    return day, np.asarray(local.hour, dtype=np.int64)


def day_number(day: date) -> int:
    return (day - date(1970, 1, 1)).days


def hours_in_days(first: int, count: int, tz: str) -> np.ndarray:
    """Clock hours in each of ``count`` local days starting at day number ``first``."""
    epoch = date(1970, 1, 1)
    starts = [to_us(day_start_utc(epoch + timedelta(days=first + i), tz)) for i in range(count + 1)]
    return np.diff(np.array(starts, dtype=np.int64)) // US_PER_HOUR
