"""Day-ahead forecasts for every series and model, as issued at 00:00 local on D-1.

``forecast_day_ahead`` reads only history with ``ts < issued_at`` (the newest actual is the last
hour of D-2) and weather forecasts with ``issued_at <= issued_at``, whatever else its inputs
hold, so passing a full table for a past target day reproduces what would have been issued
then. Models that lack history for a series (see naive and gbm) are skipped for that series:
they produce no rows, never an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa

from smartgrid_assets import contract
from smartgrid_assets.forecasting.config import MODELS, NAIVE_MODELS, ForecastConfig
from smartgrid_assets.forecasting.features import forecast_temperature
from smartgrid_assets.forecasting.gbm import gbm_forecast
from smartgrid_assets.forecasting.naive import naive_forecast
from smartgrid_assets.forecasting.panel import build_panel
from smartgrid_assets.forecasting.timing import (
    issue_time,
    local_day_hour,
    target_hours_us,
    to_us,
)

COLUMNS = ("s", "ts_us", "p10", "p50", "p90")


def empty_forecasts() -> pa.Table:
    return contract.LOAD_FORECASTS.empty_table()


def forecast_day_ahead(
    history: pa.Table,
    weather_forecast: pa.Table | None,
    target_day: date,
    tz: str,
    models: Sequence[str] = MODELS,
    config: ForecastConfig | None = None,
) -> pa.Table:
    """LOAD_FORECASTS rows of ``target_day`` for each series of ``config.levels`` and model.

    ``history`` is FEEDER_HOURLY (any span; rows at or after the issue time are ignored),
    ``weather_forecast`` WEATHER_FORECAST as issued. One row per clock hour of the local target
    day (23/24/25), sorted by level, asset_id, model, ts; identical inputs give an identical
    table. Raises ValueError for an unknown model or a history without the key columns.
    """
    config = config or ForecastConfig()
    chosen = list(dict.fromkeys(models))
    unknown = [m for m in chosen if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown models {unknown}; choose from {MODELS}")
    issue_us = to_us(issue_time(target_day, tz))
    target_us = target_hours_us(target_day, tz)
    _, target_hour = local_day_hour(target_us, tz)
    panel = build_panel(history, issue_us, target_day, tz, config.levels, config.lookback_days)
    if panel.n_series == 0:
        return empty_forecasts()

    frames = []
    for model in chosen:
        if model in NAIVE_MODELS:
            rows = naive_forecast(panel, model, target_us, target_hour, config.residual_days)
        else:
            temperature = forecast_temperature(
                weather_forecast, issue_us, target_us, panel.series["region"]
            )
            rows = gbm_forecast(panel, target_us, target_hour, temperature, config)
        frames.append(rows.assign(model=model))
    out = pd.concat(frames, ignore_index=True)
    if out.empty:
        return empty_forecasts()
    s = out["s"].to_numpy(np.int64)
    out["level"] = panel.series["level"].to_numpy()[s]
    out["asset_id"] = panel.series["asset_id"].to_numpy()[s]
    out = out.sort_values(["level", "asset_id", "model", "ts_us"], kind="stable")
    us = pa.timestamp("us", tz="UTC")
    n = len(out)
    table = pa.table(
        {
            "level": pa.array(out["level"], pa.string()),
            "asset_id": pa.array(out["asset_id"], pa.string()),
            "model": pa.array(out["model"], pa.string()),
            "issued_at": pa.array(np.full(n, issue_us, np.int64)).cast(us),
            "target_day": pa.array([target_day] * n, pa.date32()),
            "ts": pa.array(out["ts_us"].to_numpy(np.int64)).cast(us),
            "p10": pa.array(out["p10"].to_numpy(float)),
            "p50": pa.array(out["p50"].to_numpy(float)),
            "p90": pa.array(out["p90"].to_numpy(float)),
        }
    )
    return contract.conform(table, contract.LOAD_FORECASTS)
