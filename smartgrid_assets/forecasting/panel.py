"""History as the models see it: series x local day x local hour, cut at the issue time.

Only rows with ``ts < issued_at`` enter the panel, so nothing a model derives from it can look
ahead. Day slots run from ``lookback_days`` before the target day up to the target day itself
(the last slot, always empty); the newest slot with data is D-2.

A local day is *complete* for a series when every clock hour of that day (23, 24 or 25) has a
value. Profiles are indexed by local hour of day 0..23: on a fall-back day the two 02:00 hours
are averaged into one, and the hour a spring-forward day lacks is filled from the neighbouring
hour (the previous one, or the next for hour 0) in ``filled``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from smartgrid_assets.forecasting.timing import day_number, hours_in_days, local_day_hour

REQUIRED = ("level", "asset_id", "ts", "kwh")


@dataclass(frozen=True)
class Panel:
    tz: str
    day0: int  # day number (days since 1970-01-01) of slot 0
    series: pd.DataFrame  # one row per series code: level, asset_id, region
    rows: pd.DataFrame  # hourly rows: s, ts_us, slot, hour, kwh, temp_fc (one per s and ts)
    cube: np.ndarray  # (S, days, 24) mean kwh per local hour, NaN where missing
    filled: np.ndarray  # cube with missing hours filled from the neighbouring hour
    complete: np.ndarray  # (S, days) every clock hour of the local day present

    @property
    def n_series(self) -> int:
        return len(self.series)

    @property
    def target_slot(self) -> int:
        return self.cube.shape[1] - 1

    def day_numbers(self) -> np.ndarray:
        return self.day0 + np.arange(self.cube.shape[1], dtype=np.int64)


def _column(table: pa.Table, name: str, kind: pa.DataType) -> np.ndarray:
    if name not in table.column_names:
        if kind == pa.string():
            return np.full(table.num_rows, None, dtype=object)
        return np.full(table.num_rows, np.nan)
    col = pc.cast(table.column(name), kind)
    if kind == pa.string():
        return col.to_pandas().to_numpy(dtype=object)
    return col.to_numpy(zero_copy_only=False)


def _fill_hours(cube: np.ndarray) -> np.ndarray:
    """Fill NaN hours from the previous hour of the same day, then from the next."""
    flat = pd.DataFrame(cube.reshape(-1, cube.shape[-1]))
    return flat.ffill(axis=1).bfill(axis=1).to_numpy().reshape(cube.shape)


def build_panel(
    history: pa.Table,
    issue_us: int,
    target_day: date,
    tz: str,
    levels: tuple[str, ...],
    lookback_days: int,
) -> Panel:
    missing = [c for c in REQUIRED if c not in history.column_names]
    if missing:
        raise ValueError(f"history lacks columns {missing} (expected FEEDER_HOURLY)")
    target = day_number(target_day)
    day0 = target - lookback_days
    n_days = lookback_days + 1

    ts = pc.cast(history.column("ts"), pa.timestamp("us", tz="UTC")).cast(pa.int64())
    frame = pd.DataFrame(
        {
            "level": _column(history, "level", pa.string()),
            "asset_id": _column(history, "asset_id", pa.string()),
            "ts_us": ts.to_numpy(zero_copy_only=False),
            "kwh": _column(history, "kwh", pa.float64()),
            "region": _column(history, "region", pa.string()),
            "temp_fc": _column(history, "temperature_forecast_c", pa.float64()),
        }
    )
    keep = frame["level"].isin(levels) & (frame["ts_us"] < issue_us) & frame["kwh"].notna()
    frame = frame[keep.to_numpy()]
    day, hour = local_day_hour(frame["ts_us"].to_numpy(), tz)
    frame = frame.assign(slot=day - day0, hour=hour)
    frame = frame[(frame["slot"] >= 0).to_numpy()]

    series = (
        frame[["level", "asset_id"]].drop_duplicates().sort_values(["level", "asset_id"])
    ).reset_index(drop=True)
    codes = pd.MultiIndex.from_frame(series).get_indexer(
        pd.MultiIndex.from_frame(frame[["level", "asset_id"]])
    )
    frame = frame.assign(s=codes).sort_values(["s", "ts_us"], kind="stable")
    # the newest known region of each series (FEEDER_HOURLY leaves it null across regions)
    regions = frame.dropna(subset=["region"]).groupby("s")["region"].last()
    series["region"] = series.index.map(regions).astype(object)
    series["region"] = series["region"].where(series["region"].notna(), None)

    # one row per series and hour (duplicates averaged)
    rows = (
        frame.groupby(["s", "ts_us"], sort=True)
        .agg(
            slot=("slot", "first"),
            hour=("hour", "first"),
            kwh=("kwh", "mean"),
            temp_fc=("temp_fc", "mean"),
        )
        .reset_index()
    )
    n_s = len(series)
    s, slot, hr = (rows[c].to_numpy(np.int64) for c in ("s", "slot", "hour"))
    total = np.zeros((n_s, n_days, 24))
    count = np.zeros((n_s, n_days, 24))
    np.add.at(total, (s, slot, hr), rows["kwh"].to_numpy())
    np.add.at(count, (s, slot, hr), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cube = np.where(count > 0, total / count, np.nan)
    per_day = np.zeros((n_s, n_days), dtype=np.int64)
    np.add.at(per_day, (s, slot), 1)
    complete = per_day == hours_in_days(day0, n_days, tz)[None, :]
    return Panel(
        tz=tz,
        day0=day0,
        series=series,
        rows=rows,
        cube=cube,
        filled=_fill_hours(cube),
        complete=complete,
    )


def take(values: np.ndarray, s: np.ndarray, slot: np.ndarray, *rest: np.ndarray) -> np.ndarray:
    """values[s, slot, ...] with NaN wherever slot is outside the panel (or -1)."""
    ok = (slot >= 0) & (slot < values.shape[1])
    out = values[(s, np.where(ok, slot, 0), *rest)].astype(float)
    return np.where(ok, out, np.nan)
