"""A plain peer for `smartgrid evaluate`: Sandia's pecos quality-control checks configured for
the same anomaly types with fixed thresholds, as a generic QC library is used, and scored the
same way (`anomalies.own_data.score`). Test code: the product never imports it.

Per meter, on its delivered kWh at its own interval:

- reverse_flow: `check_range([0, None])`, at least 1 h of values below 0;
- zero_run: a static check failing on exact zeros, at least 6 h;
- stuck_meter: `check_increment([1e-9, None])` on the non-zero values, at least 6 h;
- interval_spike: `check_outlier([None, 6])` (z-score in a 7-day window), one interval;
- theft_drop: a static check on daily energy, failing where the 7-day median is below 70 % of
  the 14 days before, at least 7 days.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pecos
import pyarrow as pa

logging.getLogger("pecos").setLevel(logging.ERROR)

US = 1_000


def _steps(hours: float, minutes: int) -> int:
    return max(1, round(hours * 60 / minutes))


def _events(pm: pecos.monitoring.PerformanceMonitoring, type_: str, meter: str, step_us: int):
    for r in pm.test_results.itertuples(index=False):
        start = int(pd.Timestamp(r[1]).value // US)
        end = int(pd.Timestamp(r[2]).value // US) + step_us
        yield {"type": type_, "meter_id": meter, "start": start, "end": end}


def _monitor(frame: pd.DataFrame) -> pecos.monitoring.PerformanceMonitoring:
    pm = pecos.monitoring.PerformanceMonitoring()
    pm.add_dataframe(frame)
    return pm


def _meter_events(meter: str, series: pd.Series, minutes: int) -> list[dict]:
    step = minutes * 60_000_000
    frame = series.to_frame("kwh")
    out: list[dict] = []
    pm = _monitor(frame)
    pm.check_range([0, None], min_failures=_steps(1, minutes))
    out += _events(pm, "reverse_flow", meter, step)
    pm = _monitor(frame)
    pm.check_custom_static(lambda d: (d != 0, d), min_failures=_steps(6, minutes))
    out += _events(pm, "zero_run", meter, step)
    pm = _monitor(frame.where(frame != 0))
    pm.check_increment([1e-9, None], min_failures=_steps(6, minutes))
    out += _events(pm, "stuck_meter", meter, step)
    pm = _monitor(frame)
    pm.check_outlier([None, 6.0], window=7 * 86_400)
    out += _events(pm, "interval_spike", meter, step)
    daily = series.resample("1D").sum(min_count=1).to_frame("kwh")

    def no_drop(d: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        after = d.rolling(7, min_periods=5).median().shift(-6)
        before = d.rolling(14, min_periods=10).median().shift(1)
        return ~(after < 0.7 * before), after / before

    pm = _monitor(daily)
    pm.check_custom_static(no_drop, min_failures=7)
    out += _events(pm, "theft_drop", meter, 86_400_000_000)
    return out


def detect(readings: pa.Table) -> pd.DataFrame:
    """pecos's events (type, meter_id, start, end in UTC us, severity) of bare readings."""
    frame = readings.select(["meter_id", "ts", "interval_minutes", "channel", "kwh"]).to_pandas()
    frame = frame[frame["channel"] == "delivered"]
    rows: list[dict] = []
    for meter, mine in frame.groupby("meter_id"):
        mine = mine.sort_values("ts")
        minutes = int(mine["interval_minutes"].mode().iloc[0])
        index = pd.DatetimeIndex(mine["ts"]).tz_convert("UTC").tz_localize(None)
        series = pd.Series(mine["kwh"].to_numpy(np.float64), index=index)
        series = series[~series.index.duplicated()]
        rows += _meter_events(str(meter), series, minutes)
    events = pd.DataFrame(rows, columns=["type", "meter_id", "start", "end"])
    return events.assign(severity="warning")
