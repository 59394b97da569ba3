"""Day-ahead forecasts of FEEDER_HOURLY series, as issued at 00:00 local on D-1, for day D.

``forecast_day_ahead`` lays the history before the issue on an hourly grid (series = level and
asset id, see grid), reads the weather forecast issued at or before the issue for the target
hours, and asks every model for day D. It reads only history with ``ts < issued_at`` and weather
forecasts with ``issued_at <= issued_at``, whatever else its inputs hold, so passing a full
table for a past target day reproduces what would have been issued then. A model given already
fitted (``fitted``, e.g. the registry's champion) must have been fit on data before the issue,
else ValueError: a backfill never uses a model that saw its target. Models that lack history
for a series produce no rows for it, never an error.

With a ``hierarchy`` (feeder -> substation) the P50 of every model is reconciled bottom-up
(reconcile); ``p50_base`` keeps the model's own P50.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from smartgrid_assets import contract
from smartgrid_assets.forecasting.config import MODELS, ForecastConfig
from smartgrid_assets.forecasting.grid import (
    Grid,
    build_grid,
    day_number,
    day_of,
    local_day_step,
)
from smartgrid_assets.forecasting.models import ZOO, Forecaster, make_model
from smartgrid_assets.forecasting.timing import issue_time, to_us

REQUIRED = ("level", "asset_id", "ts", "kwh")
#: what the models forecast: FEEDER_HOURLY's kwh, net load (delivered less received)
QUANTITY = "net"
WEATHER = "temperature"  # the grid's name of FEEDER_HOURLY's temperature_forecast_c
US = pa.timestamp("us", tz="UTC")


def empty_forecasts() -> pa.Table:
    return contract.LOAD_FORECASTS.empty_table()


def _column(table: pa.Table, name: str, kind: pa.DataType) -> np.ndarray:
    if name not in table.column_names:
        if kind == pa.string():
            return np.full(table.num_rows, None, dtype=object)
        return np.full(table.num_rows, np.nan)
    col = pc.cast(table.column(name), kind)
    if kind == pa.string():
        return col.to_pandas().to_numpy(dtype=object)
    return col.to_numpy(zero_copy_only=False)


#: a target day is forecast only from a history with a complete local day this recent
RECENT_DAYS = 7


def why_not_forecast(hist: Grid) -> str | None:
    """Why no forecast can be issued from ``hist`` (the grid before an issue), None when one
    can: a day after the data (a backfill reaching past the newest reading) has nothing recent
    to forecast from, and would only repeat stale days."""
    complete = np.flatnonzero(hist.complete.any(axis=0))
    if len(complete) == 0:
        return f"no complete local day of history before the issue on {day_of(hist.end_day)}"
    newest = hist.day0 + int(complete[-1])
    if hist.end_day - newest > RECENT_DAYS:
        return (
            f"no complete local day in the {RECENT_DAYS} days before the issue on "
            f"{day_of(hist.end_day)} (the newest is {day_of(newest)})"
        )
    return None


def history_grid(
    history: pa.Table, issue_us: int, issue_day: int, tz: str, config: ForecastConfig
) -> tuple[Grid, pd.Series]:
    """The hourly grid of the ``config.levels`` series before the issue, and each series'
    newest region (None for a rollup spanning several)."""
    missing = [c for c in REQUIRED if c not in history.column_names]
    if missing:
        raise ValueError(f"history lacks columns {missing} (expected FEEDER_HOURLY)")
    ts = pc.cast(history.column("ts"), US).cast(pa.int64()).to_numpy(zero_copy_only=False)
    frame = pd.DataFrame(
        {
            "level": _column(history, "level", pa.string()),
            "asset_id": _column(history, "asset_id", pa.string()),
            "ts_us": ts,
            "kwh": _column(history, "kwh", pa.float64()),
            "region": _column(history, "region", pa.string()),
            WEATHER: _column(history, "temperature_forecast_c", pa.float64()),
        }
    )
    keep = frame["level"].isin(config.levels) & (frame["ts_us"] < issue_us) & frame["kwh"].notna()
    frame = frame[keep.to_numpy()].sort_values(["level", "asset_id", "ts_us"], kind="stable")
    grid = build_grid(
        frame[["level", "asset_id"]],
        frame["ts_us"].to_numpy(),
        frame["kwh"].to_numpy(),
        tz,
        60,
        weather={WEATHER: frame[WEATHER].to_numpy()},
        first_day=issue_day - config.lookback_days,
        last_day=issue_day - 1,
    )
    regions = frame.dropna(subset=["region"]).groupby(["level", "asset_id"])["region"].last()
    index = pd.MultiIndex.from_frame(grid.series)
    region = pd.Series(regions.reindex(index).to_numpy(), dtype=object)
    return grid, region.where(region.notna(), None)


def forecast_temperature(
    weather_forecast: pa.Table | None,
    issue_us: int,
    target_us: np.ndarray,
    regions: pd.Series,
) -> np.ndarray:
    """(S, H) forecast temperature of each series' region at the target hours, as known then.

    Each (region, hour) takes the newest issue with ``issued_at <= issue_us`` that covers it
    (the forecast issued at the issue time itself when present). A series without a region
    (a rollup spanning several) gets the mean over regions, as FEEDER_HOURLY does. NaN where no
    issue covers the hour.
    """
    out = np.full((len(regions), len(target_us)), np.nan)
    if weather_forecast is None or weather_forecast.num_rows == 0 or len(regions) == 0:
        return out
    wf = pd.DataFrame(
        {
            "region": pc.cast(weather_forecast.column("region"), pa.string()).to_pandas(),
            "issued_us": pc.cast(weather_forecast.column("issued_at"), US)
            .cast(pa.int64())
            .to_numpy(zero_copy_only=False),
            "ts_us": pc.cast(weather_forecast.column("ts"), US)
            .cast(pa.int64())
            .to_numpy(zero_copy_only=False),
            "t": pc.cast(weather_forecast.column("temperature_c"), pa.float64()).to_numpy(
                zero_copy_only=False
            ),
        }
    )
    wf = wf[((wf["issued_us"] <= issue_us) & wf["ts_us"].isin(target_us)).to_numpy()]
    wf = wf.dropna(subset=["region", "t"]).sort_values(
        ["region", "ts_us", "issued_us"], kind="stable"
    )
    latest = wf.drop_duplicates(["region", "ts_us"], keep="last")
    grid = latest.pivot(index="region", columns="ts_us", values="t").reindex(columns=target_us)
    overall = grid.mean(axis=0).to_numpy()
    by_region = grid.reindex(regions.fillna("\0none").to_numpy()).to_numpy()
    no_region = regions.isna().to_numpy()
    out[:] = by_region
    out[no_region] = overall
    return out


def _to_slots(values: np.ndarray, slots: np.ndarray, steps: int) -> np.ndarray:
    """(S, H) values by clock hour -> (S, steps) by slot: repeated slots averaged, a missing
    slot filled from its neighbour."""
    out = np.full((values.shape[0], steps), np.nan)
    frame = pd.DataFrame(values.T)
    frame["slot"] = slots
    mean = frame.groupby("slot").mean()
    out[:, mean.index.to_numpy()] = mean.to_numpy().T
    return pd.DataFrame(out).ffill(axis=1).bfill(axis=1).to_numpy()


def forecast_day_ahead(
    history: pa.Table,
    weather_forecast: pa.Table | None,
    target_day: date,
    tz: str,
    models: Sequence[str] = MODELS,
    config: ForecastConfig | None = None,
    fitted: Mapping[str, Forecaster] | None = None,
    hierarchy: pd.DataFrame | None = None,
) -> pa.Table:
    """LOAD_FORECASTS rows of ``target_day`` for each series of ``config.levels`` and model.

    ``history`` is FEEDER_HOURLY (any span; rows at or after the issue time are ignored),
    ``weather_forecast`` WEATHER_FORECAST as issued. One row per clock hour of the local target
    day (23/24/25), sorted by level, asset_id, model, ts; identical inputs give an identical
    table. Raises ValueError for an unknown model or a history without the key columns.
    """
    config = config or ForecastConfig()
    fitted = dict(fitted or {})
    chosen = list(dict.fromkeys(models))
    unknown = [m for m in chosen if m not in ZOO]
    if unknown:
        raise ValueError(f"unknown models {unknown}; choose from {ZOO}")
    issue_us = to_us(issue_time(target_day, tz))
    issue_day = day_number(target_day) - 1
    hist, regions = history_grid(history, issue_us, issue_day, tz, config)
    if hist.n_series == 0:
        return empty_forecasts()
    target = day_number(target_day)
    ts, slots = hist.slot_times_us(target)
    temperature = forecast_temperature(weather_forecast, issue_us, ts, regions)
    weather = {WEATHER: _to_slots(temperature, slots, hist.steps)[:, None, :]}

    frames = []
    for name in chosen:
        model = fitted.get(name)
        if model is None:
            model = make_model(name, config).fit(hist)
        elif model.fitted_until is None or model.fitted_until > issue_day:
            raise ValueError(
                f"model {name} was fit on data up to day {model.fitted_until}, after the issue "
                f"of {target_day}: it cannot forecast that day"
            )
        pred = model.predict(hist, [target], weather)[:, 0][:, slots]  # (S, H, 3)
        s, h = np.nonzero(~np.isnan(pred[..., 1]))
        frames.append(
            pd.DataFrame(
                {
                    "s": s,
                    "ts_us": ts[h],
                    "p10": pred[s, h, 0],
                    "p50": pred[s, h, 1],
                    "p90": pred[s, h, 2],
                    "model": name,
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    if out.empty:
        return empty_forecasts()
    s = out["s"].to_numpy(np.int64)
    out["level"] = hist.series["level"].to_numpy()[s]
    out["asset_id"] = hist.series["asset_id"].to_numpy()[s]
    out["p50_base"] = out["p50"]
    if hierarchy is not None:
        from smartgrid_assets.forecasting.reconcile import reconcile_bottom_up

        out = reconcile_bottom_up(out, hierarchy)
    out = out.sort_values(["level", "asset_id", "model", "ts_us"], kind="stable")
    n = len(out)
    table = pa.table(
        {
            "level": pa.array(out["level"], pa.string()),
            "asset_id": pa.array(out["asset_id"], pa.string()),
            "model": pa.array(out["model"], pa.string()),
            "issued_at": pa.array(np.full(n, issue_us, np.int64)).cast(US),
            "target_day": pa.array([target_day] * n, pa.date32()),
            "ts": pa.array(out["ts_us"].to_numpy(np.int64)).cast(US),
            "p10": pa.array(out["p10"].to_numpy(float)),
            "p50": pa.array(out["p50"].to_numpy(float)),
            "p90": pa.array(out["p90"].to_numpy(float)),
            "p50_base": pa.array(out["p50_base"].to_numpy(float)),
            "quantity": pa.array(np.full(n, QUANTITY, dtype=object), pa.string()),
        }
    )
    return contract.conform(table, contract.LOAD_FORECASTS)


__all__ = ["forecast_day_ahead", "forecast_temperature", "history_grid", "local_day_step"]
