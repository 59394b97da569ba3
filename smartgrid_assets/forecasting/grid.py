"""Series as the models see them: series x local day x interval of the day, in one time zone.

A ``Grid`` holds any number of series at one interval length (15, 30 or 60 minutes, ...) laid on
local days of a time zone: ``values[s, d, k]`` is the value of series ``s`` in interval ``k`` of
local day ``day0 + d`` (NaN where missing). Interval ``k`` starts at local clock time
``k * interval_minutes`` after midnight, so every day has ``steps`` slots whatever its length:
on a fall-back day the repeated clock intervals are averaged into one slot, and the slots a
spring-forward day lacks stay empty in ``values`` and are filled from the neighbouring slot in
``filled``. A day is *complete* for a series when every interval that day really has
(``steps`` -/+ the DST hour) holds a value.

``weather`` maps a variable name to an (S, D, K) array of the same layout: the weather each
interval had *as a day-ahead forecast would have known it* (observed values stand in for a
forecast when that is all there is, as in a CSV backtest). ``until(n)`` is the grid cut before
local day slot ``n`` (numpy views, no copies): what a model may see when a forecast is issued at
00:00 local of that day.

Plain numpy/pandas: no Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from functools import cache

import numpy as np
import pandas as pd

from smartgrid_assets.days import day_start_utc
from smartgrid_assets.features.calendar import is_holiday

US_PER_MINUTE = 60_000_000
EPOCH = date(1970, 1, 1)


def day_number(day: date) -> int:
    return (day - EPOCH).days


def day_of(number: int) -> date:
    return EPOCH + timedelta(days=int(number))


@cache
def _day_start_us(number: int, tz: str) -> int:
    return int(pd.Timestamp(day_start_utc(day_of(number), tz)).value // 1000)


def day_starts_us(first: int, count: int, tz: str) -> np.ndarray:
    """UTC microseconds of 00:00 local of ``count + 1`` consecutive local days from ``first``."""
    return np.array([_day_start_us(first + i, tz) for i in range(count + 1)], dtype=np.int64)


def local_day_step(ts_us: np.ndarray, tz: str, interval_minutes: int) -> tuple[np.ndarray, ...]:
    """Local day number and interval-of-day slot of UTC instants (microseconds)."""
    idx = pd.DatetimeIndex(pd.to_datetime(np.asarray(ts_us, np.int64), unit="us", utc=True))
    local = idx.tz_convert(tz).tz_localize(None)
    ns = local.asi8
    day = ns // (86_400 * 10**9)
    minute = (ns - day * 86_400 * 10**9) // (60 * 10**9)
    return day.astype(np.int64), (minute // interval_minutes).astype(np.int64)


def holiday_flags(days: np.ndarray, tz: str) -> np.ndarray:
    """Public holiday flags of local day numbers (the utility's calendar by time zone)."""
    days = np.asarray(days, dtype=np.int64)
    if days.size == 0:
        return np.zeros(0, dtype=bool)
    return is_holiday(days.astype("datetime64[D]"), tz)


def _fill_steps(values: np.ndarray) -> np.ndarray:
    """Fill NaN slots from the previous slot of the same day, then from the next."""
    flat = pd.DataFrame(values.reshape(-1, values.shape[-1]))
    return flat.ffill(axis=1).bfill(axis=1).to_numpy().reshape(values.shape)


@dataclass(frozen=True)
class Grid:
    tz: str
    interval_minutes: int
    day0: int  # day number (days since 1970-01-01) of slot 0
    series: pd.DataFrame  # one row per series (its key columns), index 0..S-1
    values: np.ndarray  # (S, D, K) NaN where missing
    complete: np.ndarray  # (S, D) every interval of the local day present
    weather: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (S, D, K)
    filled: np.ndarray | None = None  # values with empty slots of a day filled (computed)

    def __post_init__(self) -> None:
        if self.filled is None:
            object.__setattr__(self, "filled", _fill_steps(self.values))

    @property
    def steps(self) -> int:
        return self.values.shape[2]

    @property
    def n_series(self) -> int:
        return self.values.shape[0]

    @property
    def n_days(self) -> int:
        return self.values.shape[1]

    @property
    def end_day(self) -> int:
        """Day number just after the last slot: the issue day of a forecast from this grid."""
        return self.day0 + self.n_days

    def day_numbers(self) -> np.ndarray:
        return self.day0 + np.arange(self.n_days, dtype=np.int64)

    def slot(self, day: date | int) -> int:
        number = day if isinstance(day, int | np.integer) else day_number(day)
        return int(number) - self.day0

    def until(self, slot: int) -> Grid:
        """The grid before day slot ``slot`` (what is known at 00:00 local of that day)."""
        slot = max(0, min(int(slot), self.n_days))
        return replace(
            self,
            values=self.values[:, :slot],
            complete=self.complete[:, :slot],
            weather={k: v[:, :slot] for k, v in self.weather.items()},
            filled=self.filled[:, :slot],
        )

    def since(self, slot: int) -> Grid:
        """The grid from day slot ``slot`` on (day0 moves)."""
        slot = max(0, min(int(slot), self.n_days))
        return replace(
            self,
            day0=self.day0 + slot,
            values=self.values[:, slot:],
            complete=self.complete[:, slot:],
            weather={k: v[:, slot:] for k, v in self.weather.items()},
            filled=self.filled[:, slot:],
        )

    def subset(self, rows: np.ndarray) -> Grid:
        rows = np.asarray(rows, dtype=np.int64)
        return replace(
            self,
            series=self.series.iloc[rows].reset_index(drop=True),
            values=self.values[rows],
            complete=self.complete[rows],
            weather={k: v[rows] for k, v in self.weather.items()},
            filled=self.filled[rows],
        )

    def expected_steps(self) -> np.ndarray:
        """(D,) intervals each local day really has (fewer or more on DST days)."""
        starts = day_starts_us(self.day0, self.n_days, self.tz)
        return np.diff(starts) // (self.interval_minutes * US_PER_MINUTE)

    def slot_times_us(self, day: int) -> tuple[np.ndarray, np.ndarray]:
        """UTC starts (us) of the intervals of local day number ``day``, and the slot of each.

        A fall-back day lists its repeated intervals twice (same slot); a spring-forward day
        leaves out the slots the clocks skip.
        """
        start, end = day_starts_us(day, 1, self.tz)
        step = self.interval_minutes * US_PER_MINUTE
        ts = np.arange(start, end, step, dtype=np.int64)
        _, slot = local_day_step(ts, self.tz, self.interval_minutes)
        return ts, slot


def build_grid(
    keys: pd.DataFrame,
    ts_us: np.ndarray,
    values: np.ndarray,
    tz: str,
    interval_minutes: int,
    weather: dict[str, np.ndarray] | None = None,
    first_day: int | None = None,
    last_day: int | None = None,
) -> Grid:
    """A grid from long rows: ``keys`` (one column per key part) beside timestamps and values.

    Rows at the same series and interval are averaged (so are the repeated clock intervals of a
    fall-back day, which share a slot). NaN values count as missing. ``first_day`` / ``last_day``
    (day numbers, inclusive) bound the grid; by default it spans the rows' local days. Series
    are sorted by their keys.
    """
    if 1440 % interval_minutes:
        raise ValueError(f"interval_minutes must divide a day, got {interval_minutes}")
    steps = 1440 // interval_minutes
    ts_us = np.asarray(ts_us, dtype=np.int64)
    values = np.asarray(values, dtype=float)
    weather = {k: np.asarray(v, dtype=float) for k, v in (weather or {}).items()}
    day, step = local_day_step(ts_us, tz, interval_minutes)
    if first_day is None:
        first_day = int(day.min()) if len(day) else 0
    if last_day is None:
        last_day = int(day.max()) if len(day) else first_day - 1
    n_days = max(last_day - first_day + 1, 0)
    keep = (day >= first_day) & (day <= last_day)
    keys = keys.reset_index(drop=True)[keep]
    series = keys.drop_duplicates().sort_values(list(keys.columns)).reset_index(drop=True)
    codes = pd.MultiIndex.from_frame(series).get_indexer(pd.MultiIndex.from_frame(keys))
    slot = day[keep] - first_day
    step = step[keep]
    n_s = len(series)
    shape = (n_s, n_days, steps)

    def cube(v: np.ndarray) -> np.ndarray:
        v = v[keep]
        ok = ~np.isnan(v)
        total = np.zeros(shape)
        count = np.zeros(shape)
        np.add.at(total, (codes[ok], slot[ok], step[ok]), v[ok])
        np.add.at(count, (codes[ok], slot[ok], step[ok]), 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / count, np.nan)

    cube_values = cube(values)
    # distinct present instants per series and day, against the intervals the day really has
    present = ~np.isnan(values[keep])
    distinct = pd.DataFrame(
        {"s": codes[present], "d": slot[present], "t": ts_us[keep][present]}
    ).drop_duplicates()
    per_day = np.zeros((n_s, n_days), dtype=np.int64)
    np.add.at(per_day, (distinct["s"].to_numpy(), distinct["d"].to_numpy()), 1)
    grid = Grid(
        tz=tz,
        interval_minutes=interval_minutes,
        day0=first_day,
        series=series,
        values=cube_values,
        complete=np.zeros((n_s, n_days), dtype=bool),
        weather={k: _fill_steps(cube(v)) for k, v in weather.items()},
    )
    complete = per_day >= grid.expected_steps()[None, :]
    return replace(grid, complete=complete)
