"""The period's interval grid, built in UTC from the local-day bounds of the utility's zone.

Building from local midnights (not from a fixed 96 intervals a day) is what gives a DST day its
92 or 100 quarter hours, the same way the pipeline's daily partitions do.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from smartgrid_assets.features.calendar import holiday_country, holidays_in

US_PER_MINUTE = 60_000_000
US_PER_HOUR = 60 * US_PER_MINUTE
ALLOWED_INTERVALS = (5, 10, 15, 30, 60)


@dataclass(frozen=True)
class TimeGrid:
    tz: str
    start: dt.date
    days: int
    interval_minutes: int
    ts_us: np.ndarray  # (T,) int64 UTC interval starts, microseconds since epoch
    day_bounds: np.ndarray  # (days+1,) interval index of each local midnight
    day_of: np.ndarray  # (T,) local-day index of each interval
    local_minute: np.ndarray  # (T,) local wall-clock minute of day of the interval start
    day_type: np.ndarray  # (T,) 0 workday, 1 Saturday, 2 Sunday or public holiday
    dates: tuple[dt.date, ...]
    holidays: tuple[tuple[dt.date, str], ...]
    country: str | None

    @property
    def n(self) -> int:
        return len(self.ts_us)

    @property
    def step_us(self) -> int:
        return self.interval_minutes * US_PER_MINUTE

    @property
    def interval_h(self) -> float:
        return self.interval_minutes / 60.0

    @property
    def per_hour(self) -> float:
        return 60.0 / self.interval_minutes

    @property
    def t0_us(self) -> int:
        return int(self.ts_us[0])

    @property
    def end_us(self) -> int:
        return int(self.ts_us[-1]) + self.step_us

    def day_slice(self, day: int) -> slice:
        return slice(int(self.day_bounds[day]), int(self.day_bounds[day + 1]))

    def day_start_us(self, day: int) -> int:
        """UTC instant of a local midnight; valid for day == days (the period end)."""
        return self.t0_us + int(self.day_bounds[day]) * self.step_us

    def index_at_local(self, day: int, hour: float) -> int:
        """First interval of a local day starting at or after a local wall-clock hour."""
        sl = self.day_slice(day)
        offset = np.searchsorted(self.local_minute[sl], hour * 60.0, side="left")
        return sl.start + int(offset)

    def hours(self, n: float) -> int:
        """A duration in hours as a whole number of intervals (at least one)."""
        return max(1, round(n * self.per_hour))


def zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{tz!r} is not an IANA time zone (e.g. 'Europe/Berlin')") from exc


def local_midnight_us(date: dt.date, tz: str) -> int:
    """UTC microseconds of a local midnight; a midnight skipped by DST moves to the next instant."""
    stamp = pd.Timestamp(date).tz_localize(tz, nonexistent="shift_forward", ambiguous=True)
    return int(stamp.tz_convert("UTC").value // 1000)


def build_grid(start: dt.date, days: int, interval_minutes: int, tz: str) -> TimeGrid:
    if interval_minutes not in ALLOWED_INTERVALS:
        raise ValueError(f"interval_minutes must be one of {ALLOWED_INTERVALS}")
    if days < 1:
        raise ValueError("days must be at least 1")
    zone(tz)
    dates = tuple(start + dt.timedelta(days=i) for i in range(days + 1))
    bounds_us = np.array([local_midnight_us(d, tz) for d in dates], dtype=np.int64)
    step = interval_minutes * US_PER_MINUTE
    if np.any((bounds_us - bounds_us[0]) % step):
        raise ValueError(f"local midnights of {tz} are not on a {interval_minutes}-minute grid")
    day_bounds = (bounds_us - bounds_us[0]) // step
    ts_us = bounds_us[0] + np.arange(day_bounds[-1], dtype=np.int64) * step
    day_of = np.repeat(np.arange(days), np.diff(day_bounds))

    local = pd.DatetimeIndex(pd.to_datetime(ts_us, unit="us", utc=True)).tz_convert(tz)
    local_minute = np.asarray(local.hour * 60 + local.minute, dtype=np.float64)
    period_dates = dates[:-1]
    country, hols = holiday_country(tz), holidays_in(period_dates, tz)
    hol_set = {d for d, _ in hols}
    per_day_type = np.array(
        [
            2 if (d.weekday() == 6 or d in hol_set) else 1 if d.weekday() == 5 else 0
            for d in period_dates
        ],
        dtype=np.int8,
    )
    return TimeGrid(
        tz=tz,
        start=start,
        days=days,
        interval_minutes=interval_minutes,
        ts_us=ts_us,
        day_bounds=day_bounds,
        day_of=day_of,
        local_minute=local_minute,
        day_type=per_day_type[day_of],
        dates=period_dates,
        holidays=hols,
        country=country,
    )


def iso_utc(us: int) -> str:
    """ISO 8601 with an explicit +00:00 offset, the form every synth CSV uses."""
    stamp = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=int(us))
    return stamp.isoformat(timespec="seconds")
