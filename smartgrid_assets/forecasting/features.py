"""The design matrix of the global model: calendar, forecast weather, lags known at issue time.

Every row is one series and one clock hour of a local day d. Lags are relative to d and reach
no nearer than d-2, the newest complete day at the issue time of a day-ahead forecast for d (a
lag of at least 24 h beyond the issue), so training rows (d in history) and forecast rows (d =
the target day) are built the same way:

- ``hour``, ``dow`` (Monday 0), ``weekend``, ``holiday`` (features.calendar, by time zone);
- ``temp_fc`` the day-ahead forecast temperature of the hour, and ``hdd`` / ``cdd`` heating and
  cooling degrees below / above the configured bases;
- ``lag_2d`` same local hour on d-2, ``lag_7d`` same local hour on d-7, ``hour_mean_7d`` mean of
  the same local hour over d-8..d-2, ``day2_mean`` and ``day2_max`` of day d-2.

Loads and lags are divided by a per-series scale (mean absolute hourly kWh of the history before
the issue), so one model serves feeders, substations and the system alike.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from smartgrid_assets.features.calendar import is_holiday
from smartgrid_assets.forecasting.config import ForecastConfig
from smartgrid_assets.forecasting.panel import Panel, take

FEATURES = (
    "hour",
    "dow",
    "weekend",
    "holiday",
    "temp_fc",
    "hdd",
    "cdd",
    "lag_2d",
    "lag_7d",
    "hour_mean_7d",
    "day2_mean",
    "day2_max",
)
SCALE_FLOOR = 1e-6


def series_scale(panel: Panel) -> np.ndarray:
    """(S,) mean absolute hourly kWh of each series' history (at least SCALE_FLOOR)."""
    rows = panel.rows
    scale = np.zeros(panel.n_series)
    mean_abs = rows["kwh"].abs().groupby(rows["s"]).mean()
    scale[mean_abs.index.to_numpy()] = mean_abs.to_numpy()
    return np.maximum(scale, SCALE_FLOOR)


class LagTables:
    """Per series and day slot summaries the lag features read (computed once per panel)."""

    def __init__(self, panel: Panel) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN (missing) days
            self.day_mean = np.nanmean(panel.cube, axis=2)
            self.day_max = np.nanmax(panel.cube, axis=2)
        # mean of the same hour over the 7 slots ending at each slot
        present = ~np.isnan(panel.filled)
        total = np.cumsum(np.where(present, panel.filled, 0.0), axis=1)
        count = np.cumsum(present, axis=1)
        total[:, 7:] -= total[:, :-7].copy()
        count[:, 7:] -= count[:, :-7].copy()
        with np.errstate(invalid="ignore", divide="ignore"):
            self.hour_mean_7 = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        self.holiday = is_holiday(panel.day_numbers().astype("datetime64[D]"), panel.tz)


def design_matrix(
    panel: Panel,
    lags: LagTables,
    scale: np.ndarray,
    s: np.ndarray,
    slot: np.ndarray,
    hour: np.ndarray,
    temp_fc: np.ndarray,
    config: ForecastConfig,
) -> np.ndarray:
    """(n, len(FEATURES)) float matrix for rows (series s, day slot, local hour, temp)."""
    sc = scale[s]
    day = panel.day0 + slot
    dow = (day + 3) % 7  # 1970-01-01 was a Thursday
    cols = {
        "hour": hour.astype(float),
        "dow": dow.astype(float),
        "weekend": (dow >= 5).astype(float),
        "holiday": lags.holiday[slot].astype(float),
        "temp_fc": temp_fc,
        "hdd": np.maximum(config.heating_base_c - temp_fc, 0.0),
        "cdd": np.maximum(temp_fc - config.cooling_base_c, 0.0),
        "lag_2d": take(panel.filled, s, slot - 2, hour) / sc,
        "lag_7d": take(panel.filled, s, slot - 7, hour) / sc,
        "hour_mean_7d": take(lags.hour_mean_7, s, slot - 2, hour) / sc,
        "day2_mean": take(lags.day_mean, s, slot - 2) / sc,
        "day2_max": take(lags.day_max, s, slot - 2) / sc,
    }
    return np.column_stack([cols[name] for name in FEATURES])


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
    us = pa.timestamp("us", tz="UTC")
    wf = pd.DataFrame(
        {
            "region": pc.cast(weather_forecast.column("region"), pa.string()).to_pandas(),
            "issued_us": pc.cast(weather_forecast.column("issued_at"), us)
            .cast(pa.int64())
            .to_numpy(zero_copy_only=False),
            "ts_us": pc.cast(weather_forecast.column("ts"), us)
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
