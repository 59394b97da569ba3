"""How long training and backtesting take: the global models on 200 feeders x 60 days x 15 min,
and Prophet on a sample of the same feeders, extrapolated to all of them; and how the
champion does against the reference peer on the real series of the shared data folder.

The feeders are synthetic (numpy, seeded): a daily profile with morning and evening peaks,
weekends lower, a level and a peak hour of their own, load rising with heat and cold, and
noise. The backtest is the product's (backtest.run_backtest): one issue a day over
``select_days + test_days`` days, the gbm refit weekly on every feeder's intervals before the
issue. Prophet is fit the same way (weekly) on ``prophet_sample`` feeders; its time scales
with the number of series (one model per series), so the figure for all feeders is the
sample's time times ``series / prophet_sample``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from smartgrid_assets.forecasting.backtest import run_backtest
from smartgrid_assets.forecasting.config import ForecastConfig
from smartgrid_assets.forecasting.grid import Grid, build_grid

TARGET_SECONDS = 60.0


def synthetic_feeders(
    series: int = 200,
    days: int = 60,
    interval_minutes: int = 15,
    seed: int = 0,
    tz: str = "Europe/Berlin",
    start: str = "2026-01-05",
) -> Grid:
    rng = np.random.default_rng(seed)
    first = pd.Timestamp(start, tz=tz)
    ts = pd.date_range(
        first, first + pd.Timedelta(days=days), freq=f"{interval_minutes}min", inclusive="left"
    )
    local = ts.tz_convert(tz)
    hour = np.asarray(local.hour + local.minute / 60.0)
    day = np.asarray((local.normalize() - local[0].normalize()).days)
    weekend = np.asarray(local.dayofweek >= 5)
    n_days = int(day.max()) + 1
    temp_day = 4.0 + np.cumsum(rng.normal(0, 1.5, n_days))
    temp = temp_day[day] + 4.0 * np.sin(2 * np.pi * (hour - 9) / 24)
    ts_us = ts.as_unit("us").asi8
    level = rng.uniform(200, 2000, series)
    peak = rng.uniform(17, 20, series)
    commercial = rng.uniform(0, 1, series)
    values = np.empty((series, len(ts)))
    for s in range(series):
        morning = np.exp(-0.5 * ((hour - (8 + 2 * weekend)) / 2.0) ** 2)
        evening = np.exp(-0.5 * ((hour - peak[s]) / 2.5) ** 2)
        office = commercial[s] * np.where(weekend, 0.2, 1.0) * ((hour > 8) & (hour < 18))
        shape = 0.5 + 0.3 * morning + 0.5 * evening + 0.6 * office
        weather = 0.02 * np.maximum(12 - temp, 0) + 0.03 * np.maximum(temp - 22, 0)
        noise = rng.normal(0, 0.04, len(ts))
        values[s] = level[s] * (shape * np.where(weekend, 0.85, 1.0) + weather + noise) / 4
    keys = pd.DataFrame({"series": np.repeat([f"F{s:03d}" for s in range(series)], len(ts))})
    return build_grid(
        keys,
        np.tile(ts_us, series),
        values.reshape(-1),
        tz,
        interval_minutes,
        weather={"temperature": np.tile(temp, series)},
    )


def forecast_bench(
    series: int = 200,
    days: int = 60,
    interval_minutes: int = 15,
    test_days: int = 14,
    select_days: int = 7,
    prophet_sample: int = 20,
    seed: int = 0,
    config: ForecastConfig | None = None,
    prophet: bool = True,
) -> dict:
    """Seconds to train and backtest the gbm and the ridge on every series (the gbm figures
    cover both), and Prophet on a sample."""
    config = config or ForecastConfig(n_threads=os.cpu_count())
    start = time.perf_counter()
    grid = synthetic_feeders(series, days, interval_minutes, seed)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    result = run_backtest(
        grid,
        ["seasonal_naive_1d", "gbm", "ridge"],
        test_days=test_days,
        select_days=select_days,
        config=config,
        reference=False,
    )
    gbm_s = time.perf_counter() - start
    gbm = result.score("gbm")
    figures = {
        "series": series,
        "days": days,
        "interval_minutes": interval_minutes,
        "issues": len(result.targets),
        "grid_build_s": round(build_s, 2),
        "gbm": {
            "seconds": round(gbm_s, 1),
            "fit_s": round(result.seconds["gbm"]["fit"], 1),
            "predict_s": round(result.seconds["gbm"]["predict"], 1),
            "fits": result.fits["gbm"],
            "train_rows_max": config.max_train_rows,
            "threads": config.n_threads,
            "rmae": round(gbm["rmae"], 3),
            "coverage_p10_p90": round(gbm["coverage_p10_p90"], 3),
            "ridge_fit_s": round(result.seconds["ridge"]["fit"], 1),
            "ridge_predict_s": round(result.seconds["ridge"]["predict"], 1),
            "ridge_rmae": round(result.score("ridge")["rmae"], 3),
            "target_seconds": TARGET_SECONDS,
            "within_target": gbm_s < TARGET_SECONDS,
        },
        "prophet": None,
    }
    if prophet:
        rows = sample_rows(series, prophet_sample)
        sample = grid.subset(rows)
        start = time.perf_counter()
        try:
            sampled = run_backtest(
                sample,
                ["seasonal_naive_1d", "prophet"],
                test_days=test_days,
                select_days=select_days,
                config=replace(config, prophet_train_days=days),
            )
        except ImportError as exc:  # pragma: no cover - run_backtest reports it as skipped
            figures["prophet"] = {"skipped": str(exc)}
            return figures
        seconds = time.perf_counter() - start
        if "prophet" in sampled.skipped:
            figures["prophet"] = {"skipped": sampled.skipped["prophet"]}
            return figures
        p = sampled.score("prophet")
        figures["prophet"] = {
            "sample_series": prophet_sample,
            "seconds_sample": round(seconds, 1),
            "fits_per_series": sampled.fits["prophet"],
            "seconds_extrapolated": round(seconds * series / prophet_sample, 1),
            "rmae_sample": round(p["rmae"], 3),
            "coverage_p10_p90_sample": round(p["coverage_p10_p90"], 3),
            "gbm_rmae_same_sample": round(result.score("gbm", series=rows)["rmae"], 3),
        }
    return figures


def sample_rows(series: int, sample: int) -> np.ndarray:
    return np.linspace(0, series - 1, sample).round().astype(int)


@dataclass(frozen=True)
class SharedSeries:
    """A real series of the shared data folder, read as ``smartgrid backtest`` reads it."""

    key: str
    file: str
    spec: dict
    weather: tuple[str, ...] = ()


_NETLOAD = {
    "time_col": "datetime",
    "value_col": "total_substation",
    "unit": "MW",
    "tz": "Europe/Amsterdam",
    "time_label": "end",
}
_VIC = {"time_col": "Time", "value_col": "Demand", "unit": "MW", "tz": "Australia/Melbourne"}
#: the eight series the forecasts are judged on against the reference peer
SHARED_SERIES = (
    SharedSeries("vic_elec with Temperature", "vic_elec.csv", _VIC, ("Temperature",)),
    SharedSeries("vic_elec", "vic_elec.csv", _VIC),
    SharedSeries(
        "PJME_hourly",
        "PJME_hourly.csv",
        {
            "time_col": "Datetime",
            "value_col": "PJME_MW",
            "unit": "MW",
            "tz": "America/New_York",
            "time_label": "end",
        },
    ),
    *(
        SharedSeries(
            f"netload {name}",
            f"openstef_netload_{name}.csv",
            _NETLOAD,
            ("radiation", "windspeed_100m"),
        )
        for name in ("HAL", "HFDP", "LLS", "MNZL", "NRYN")
    ),
)
PEER_MODELS = ("seasonal_naive_1d", "seasonal_naive_7d", "gbm", "ridge")


def backtest_shared(series: SharedSeries, data_dir: Path) -> dict:
    """The series' backtest as ``smartgrid backtest`` runs it: every model's MAE over the
    reference peer's, the champion's, its P10-P90 coverage and the seconds it took."""
    from smartgrid_assets.forecasting.backtest import series_config
    from smartgrid_assets.forecasting.series import read_series
    from smartgrid_assets.ingest.byo import ExportSpec

    start = time.perf_counter()
    path = data_dir / series.file
    spec = ExportSpec(meter_id=series.file, **series.spec)
    grid = read_series(path.read_bytes(), path.name, spec, series.weather).grid
    result = run_backtest(grid, PEER_MODELS, config=series_config(grid))
    summary = result.summary()
    best = summary["champion_score"]
    return {
        "series": series.key,
        "champion": summary["champion"],
        "champion_over_peer": best["ratio_to_reference"],
        "coverage_p10_p90": best["coverage_p10_p90"],
        "over_peer": {m: v["ratio_to_reference"] for m, v in summary["models"].items()},
        "seconds": round(time.perf_counter() - start, 1),
    }


def peer_bench(data_dir: Path) -> dict:
    """Every shared series against the peer; ``skipped`` names the files that are absent."""
    rows, skipped = [], []
    for series in SHARED_SERIES:
        if (data_dir / series.file).is_file():
            rows.append(backtest_shared(series, data_dir))
        else:
            skipped.append(series.file)
    ratios = [r["champion_over_peer"] for r in rows]
    return {
        "data_dir": str(data_dir),
        "series": rows,
        "mean_champion_over_peer": round(float(np.mean(ratios)), 3) if ratios else None,
        "skipped": sorted(set(skipped)),
    }
