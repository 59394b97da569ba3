"""Day-ahead load forecasts stored as issued, and their accuracy once actuals exist."""

from __future__ import annotations

from datetime import date, timedelta

import pyarrow as pa

from smartgrid_assets import contract, forecasting
from smartgrid_assets.platform import Platform


def issue_forecasts(platform: Platform, target_days: list[date]) -> pa.Table:
    """Forecast each target day as issued at 00:00 local the day before, from data before then.

    Re-running an issue replaces exactly that issue's rows; forecasts issued at other times for
    the same target day are kept. The forecaster ignores whatever it is given from at or after
    each issue time, so the window's history is read once.
    """
    lookback = timedelta(days=forecasting.ForecastConfig().lookback_days)
    issues = {day: forecasting.issue_time(day, platform.tz) for day in target_days}
    first, last = min(issues.values()), max(issues.values())
    history = platform.warehouse.read(
        "SELECT * FROM feeder_hourly WHERE ts >= ? AND ts < ? ORDER BY level, asset_id, ts",
        [first - lookback, last],
    )
    weather = platform.warehouse.read(
        "SELECT * FROM weather_forecast WHERE issued_at >= ? AND issued_at <= ?",
        [first - timedelta(days=1), last],
    )
    parts = [forecasting.forecast_day_ahead(history, weather, day, platform.tz) for day in issues]
    table = pa.concat_tables(parts) if parts else contract.LOAD_FORECASTS.empty_table()
    platform.warehouse.replace(
        "load_forecasts",
        table,
        match={"target_day": target_days, "issued_at": list(issues.values())},
    )
    return table


def score_forecasts(platform: Platform, target_days: list[date]) -> pa.Table:
    """Accuracy of every forecast issued for the target days whose actuals are all in."""
    if not platform.warehouse.has_table("load_forecasts"):
        return contract.FORECAST_ACCURACY.empty_table()
    forecasts = platform.warehouse.read(
        "SELECT * FROM load_forecasts WHERE target_day IN (SELECT unnest(?))", [target_days]
    )
    actuals = platform.warehouse.read(
        "SELECT * FROM feeder_hourly WHERE local_day IN (SELECT unnest(?))", [target_days]
    )
    table = forecasting.forecast_accuracy(forecasts, actuals)
    platform.warehouse.replace("forecast_accuracy", table, match={"target_day": target_days})
    return table
