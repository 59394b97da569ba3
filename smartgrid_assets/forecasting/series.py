"""Any CSV (or Parquet) series as a backtest grid, read the way ``smartgrid land`` reads exports.

The load column is converted by ``ingest.byo.convert`` with the caller's ``ExportSpec`` (time
column and format, unit, time label, time zone of naive timestamps, interval): the same parser,
the same notes and bad-row handling as landing. Each weather column goes through the same
converter as a series of its own (unit kWh, i.e. values kept as they are) and is joined to the
load on the interval start. The grid's local days are days of ``spec.tz``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pyarrow as pa

from smartgrid_assets.forecasting.grid import Grid, build_grid
from smartgrid_assets.forecasting.sun import SUN, sun_height
from smartgrid_assets.ingest.byo import ByoError, Conversion, ExportSpec, convert


@dataclass(frozen=True)
class SeriesFile:
    grid: Grid
    conversion: Conversion  # the load column as converted (notes, bad rows)
    weather_notes: dict[str, list[str]]
    unit: str  # of the grid's values: kWh per interval

    @property
    def interval_minutes(self) -> int:
        return self.grid.interval_minutes


#: weather gaps up to this long are interpolated in time; the grid carries a longer one from the
#: nearest known value of the same local day (a day without any value stays missing)
WEATHER_GAP_MINUTES = 120


def interpolate_gaps(
    weather: pd.Series, ts: np.ndarray, interval_minutes: int
) -> tuple[np.ndarray, int]:
    """``weather`` (indexed by UTC microseconds) at the load's instants ``ts``, gaps of up to
    ``WEATHER_GAP_MINUTES`` between two known values interpolated in time; and how many
    intervals were filled so."""
    grid = np.arange(ts.min(), ts.max() + 1, interval_minutes * 60_000_000) if len(ts) else ts
    at = weather.reindex(np.union1d(grid, weather.index.to_numpy()))
    limit = max(WEATHER_GAP_MINUTES // interval_minutes, 1)
    # a gap longer than the limit stays whole: no partial filling from its ends
    run = at.isna().groupby(at.notna().cumsum()).transform("sum")
    filled = at.interpolate(method="index", limit_area="inside").where(run <= limit)
    filled = filled.where(at.isna(), at)
    out = filled.reindex(ts)
    return out.to_numpy(), int(out.notna().sum() - at.reindex(ts).notna().sum())


def gap_notes(col: str, filled: int, missing: int) -> list[str]:
    notes = []
    if filled:
        notes.append(
            f"weather column {col}: {filled} intervals in gaps of up to "
            f"{WEATHER_GAP_MINUTES // 60} h interpolated"
        )
    if missing:
        notes.append(
            f"weather column {col}: {missing} intervals without a value (longer gaps): each "
            "takes the nearest known value of its local day; a day without any is forecast "
            "without the column (the trees route a missing value, the ridge takes its mean)"
        )
    return notes


def read_series(
    data: bytes,
    name: str,
    spec: ExportSpec,
    weather_cols: tuple[str, ...] = (),
    site: tuple[float, float] | None = None,
) -> SeriesFile:
    """The file's single series (``spec.value_col``) and weather columns as a grid; with a
    ``site`` (latitude, longitude) also the sun's height mid-interval (``SUN``, see sun)."""
    if spec.wide or spec.meter_col:
        raise ByoError(f"file {name}: a backtest reads one series (--value-col), not meters")
    series_id = spec.meter_id or "series"
    load = convert(data, name, replace(spec, meter_id=series_id, received_col=None))
    intervals = set(load.intervals.values())
    if len(intervals) != 1:
        raise ByoError(f"file {name}: expected one interval length, found {sorted(intervals)}")
    interval = intervals.pop()
    ts = load.readings["ts"].cast(pa.int64()).to_numpy()
    values = load.readings["kwh"].to_numpy()
    weather, notes = {}, {}
    for col in weather_cols:
        if col == spec.value_col:
            raise ByoError(f"file {name}: weather column {col} is the value column")
        wspec = replace(spec, value_col=col, unit="kWh", meter_id=col, received_col=None)
        conv = convert(data, name, replace(wspec, interval_minutes=interval))
        w = pd.Series(
            conv.readings["kwh"].to_numpy(), index=conv.readings["ts"].cast(pa.int64()).to_numpy()
        )
        weather[col], filled = interpolate_gaps(w.groupby(level=0).mean(), ts, interval)
        missing = int(np.isnan(weather[col]).sum())
        # the converter's notes speak of meters (exports, rejected rows): a weather column's
        # only concern here is its gaps
        notes[col] = gap_notes(col, filled, missing)
    if site is not None:
        middle = ts + interval * 30_000_000
        weather[SUN] = sun_height(middle, *site)
    grid = build_grid(
        pd.DataFrame({"series": np.full(len(ts), series_id, dtype=object)}),
        ts,
        values,
        spec.tz,
        interval,
        weather=weather,
    )
    return SeriesFile(grid=grid, conversion=load, weather_notes=notes, unit="kWh")
