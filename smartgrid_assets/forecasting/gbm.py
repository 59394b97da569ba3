"""The global gradient-boosted model: one quantile regressor per P10 / P50 / P90 for all series.

Trained afresh for each issue on every series' hours of the ``train_days`` local days before
the target day that have the D-2 lag (all strictly before the issue time), with the day-ahead
forecast temperature each training hour had (``temperature_forecast_c``), never the observed
one. Targets are scaled per series (see features); predictions are scaled back.

Bands are conformally calibrated: quantile trees fit their own training tails too closely
(day-level lag features let them recognise training days), so in-sample P10/P90 are too
narrow. The models are first fit without the last ``calibration_days`` training days; the
P10 / P90 errors on those held-out days (scaled units, pooled over series) give the shift that
makes 10 % of held-out hours fall below P10 and 10 % above P90; the models are then refit on
every training day and the shifts applied. Finally the three quantiles are sorted per hour so
P10 <= P50 <= P90. With fewer than ``3 * calibration_days`` training days the held-out window
shrinks to a third of them (no calibration below 3 days).

Skipped (no rows) for a series with fewer than ``min_days_gbm`` complete local days before the
issue, and for every series when the training set has fewer than ``2 * min_samples_leaf`` rows.

Fits run with ``config.n_threads`` OpenMP threads (default 1): the model is small, and more
threads mostly add contention, especially in a CPU-limited pod.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from smartgrid_assets.forecasting.config import QUANTILES, ForecastConfig
from smartgrid_assets.forecasting.features import (
    FEATURES,
    LagTables,
    design_matrix,
    series_scale,
)
from smartgrid_assets.forecasting.panel import Panel

LOW, HIGH = QUANTILES[0], QUANTILES[-1]


def _regressor(quantile: float, config: ForecastConfig) -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(
        loss="quantile",
        quantile=quantile,
        learning_rate=config.learning_rate,
        max_iter=config.max_iter,
        max_leaf_nodes=config.max_leaf_nodes,
        min_samples_leaf=config.min_samples_leaf,
        l2_regularization=config.l2_regularization,
        early_stopping=False,
        random_state=config.random_state,
    )


def _fit_predict(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x: np.ndarray,
    config: ForecastConfig,
    quantiles: tuple[float, ...] = QUANTILES,
) -> np.ndarray:
    """(n, len(quantiles)) predictions of models fit on the training rows.

    A feature with no value in the training rows (e.g. no forecast temperature in the history,
    or the 7-day lag in a short window) carries no information and would break the binning, so
    it is held constant.
    """
    empty = np.isnan(x_train).all(axis=0)
    if empty.any():
        x_train, x = x_train.copy(), x.copy()
        x_train[:, empty] = 0.0
        x[:, empty] = 0.0
    return np.column_stack(
        [_regressor(q, config).fit(x_train, y_train).predict(x) for q in quantiles]
    )


def training_set(
    panel: Panel, lags: LagTables, scale: np.ndarray, config: ForecastConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Design matrix, scaled target and day slot of every usable training hour."""
    rows = panel.rows
    rows = rows[(rows["slot"] >= panel.target_slot - config.train_days).to_numpy()]
    s = rows["s"].to_numpy(np.int64)
    slot = rows["slot"].to_numpy(np.int64)
    x = design_matrix(
        panel,
        lags,
        scale,
        s,
        slot,
        rows["hour"].to_numpy(np.int64),
        rows["temp_fc"].to_numpy(float),
        config,
    )
    y = rows["kwh"].to_numpy() / scale[s]
    known = ~np.isnan(x[:, FEATURES.index("lag_2d")])
    return x[known], y[known], slot[known]


def band_shifts(
    x: np.ndarray, y: np.ndarray, slot: np.ndarray, config: ForecastConfig
) -> tuple[float, float]:
    """Conformal shifts (lower, upper) to subtract from P10 and add to P90 (scaled units)."""
    days = np.unique(slot)
    k = min(config.calibration_days, len(days) // 3)
    if k < 1:
        return 0.0, 0.0
    held = slot >= days[-k]
    if (~held).sum() < 2 * config.min_samples_leaf:
        return 0.0, 0.0
    pred = np.sort(_fit_predict(x[~held], y[~held], x[held], config, (LOW, HIGH)), axis=1)
    low = float(np.quantile(pred[:, 0] - y[held], 1.0 - LOW))
    high = float(np.quantile(y[held] - pred[:, -1], HIGH))
    return low, high


def gbm_forecast(
    panel: Panel,
    target_us: np.ndarray,
    target_hour: np.ndarray,
    temperature: np.ndarray,
    config: ForecastConfig,
) -> pd.DataFrame:
    """Rows (s, ts_us, p10, p50, p90); ``temperature`` is (S, H) forecast °C of the targets."""
    empty = pd.DataFrame({c: [] for c in ("s", "ts_us", "p10", "p50", "p90")})
    series = np.flatnonzero(panel.complete.sum(axis=1) >= config.min_days_gbm)
    if len(series) == 0:
        return empty
    lags = LagTables(panel)
    scale = series_scale(panel)
    x_train, y_train, slot = training_set(panel, lags, scale, config)
    if len(y_train) < 2 * config.min_samples_leaf:
        return empty

    n_h = len(target_us)
    s = np.repeat(series, n_h)
    target_slot = np.full(len(s), panel.target_slot, dtype=np.int64)
    hour = np.tile(target_hour, len(series))
    x = design_matrix(panel, lags, scale, s, target_slot, hour, temperature[series].ravel(), config)
    # OpenMP threads oversubscribe small fits badly (seconds instead of a fraction on a busy
    # or CPU-limited host), so the thread count is capped for the fits.
    with threadpool_limits(limits=config.n_threads, user_api="openmp"):
        low, high = band_shifts(x_train, y_train, slot, config)
        pred = _fit_predict(x_train, y_train, x, config)
    pred = np.sort(pred, axis=1)
    pred[:, 0] -= low
    pred[:, -1] += high
    pred = np.sort(pred, axis=1) * scale[s][:, None]
    return pd.DataFrame(
        {
            "s": s,
            "ts_us": np.tile(target_us, len(series)),
            "p10": pred[:, 0],
            "p50": pred[:, 1],
            "p90": pred[:, 2],
        }
    )
