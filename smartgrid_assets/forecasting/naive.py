"""Seasonal naive models with empirical P10/P90 bands from their own past errors.

- ``seasonal_naive_1d``: the profile of the most recent complete local day before the issue
  (D-2 for a day-ahead forecast of D; an older complete day only if D-2 is incomplete),
  repeated by local hour of day.
- ``seasonal_naive_7d``: the profile of local day D-7 (the same weekday), by local hour.

On DST days values map by local clock hour: a fall-back target repeats the 02:00 value for its
two 02:00 hours, a spring-forward source's missing 02:00 is filled from 01:00.

Bands: P50 is the naive value; P10 and P90 add the 10 % and 90 % quantiles of the series' naive
errors (actual - naive) over the last ``residual_days`` days of history, clipped so that
P10 <= P50 <= P90. With no past errors yet (e.g. only one complete day) the band is zero-width.

Skipped (no rows) for a series: naive-1d when no complete local day precedes the issue within
the lookback window; naive-7d when day D-7 is not complete.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from smartgrid_assets.forecasting.config import NAIVE_MODELS
from smartgrid_assets.forecasting.panel import Panel, take


def source_slots(panel: Panel, model: str) -> np.ndarray:
    """(S, days) slot whose profile is the naive forecast of each day slot, -1 if none."""
    lag = NAIVE_MODELS[model]
    n_s, n_days = panel.complete.shape
    slots = np.broadcast_to(np.arange(n_days), (n_s, n_days))
    if model == "seasonal_naive_1d":
        # newest complete slot at or before each slot, then shifted by the lag
        latest = np.maximum.accumulate(np.where(panel.complete, slots, -1), axis=1)
    else:
        latest = np.where(panel.complete, slots, -1)
    out = np.full((n_s, n_days), -1, dtype=np.int64)
    out[:, lag:] = latest[:, : n_days - lag]
    return out


def residual_quantiles(
    panel: Panel, src: np.ndarray, residual_days: int, quantiles: tuple[float, float] = (0.1, 0.9)
) -> np.ndarray:
    """(S, 2) low and high quantiles of actual - naive over recent history (0 where none)."""
    rows = panel.rows
    recent = rows[(rows["slot"] >= panel.target_slot - residual_days).to_numpy()]
    s = recent["s"].to_numpy(np.int64)
    source = src[s, recent["slot"].to_numpy(np.int64)]
    naive = take(panel.filled, s, source, recent["hour"].to_numpy(np.int64))
    err = pd.DataFrame({"s": s, "err": recent["kwh"].to_numpy() - naive}).dropna()
    out = np.zeros((panel.n_series, 2))
    if len(err):
        q = err.groupby("s")["err"].quantile(list(quantiles)).unstack()
        out[q.index.to_numpy()] = q.to_numpy()
    out[:, 0] = np.minimum(out[:, 0], 0.0)
    out[:, 1] = np.maximum(out[:, 1], 0.0)
    return out


def naive_forecast(
    panel: Panel, model: str, target_us: np.ndarray, target_hour: np.ndarray, residual_days: int
) -> pd.DataFrame:
    """Rows (s, ts_us, p10, p50, p90) for every series the model can forecast."""
    src = source_slots(panel, model)
    target_src = src[:, panel.target_slot]
    series = np.flatnonzero(target_src >= 0)
    n_h = len(target_us)
    s = np.repeat(series, n_h)
    p50 = panel.filled[s, np.repeat(target_src[series], n_h), np.tile(target_hour, len(series))]
    band = residual_quantiles(panel, src, residual_days)[s]
    return pd.DataFrame(
        {
            "s": s,
            "ts_us": np.tile(target_us, len(series)),
            "p10": p50 + band[:, 0],
            "p50": p50,
            "p90": p50 + band[:, 1],
        }
    )
