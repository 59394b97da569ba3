"""Day-ahead load forecasts stored as issued, the per-series model choice, and their accuracy.

Each target day is issued at 00:00 local the day before from data before then. The global
model comes from the MLflow registry (forecasting.registry): the champion as of the issue day,
trained weekly on the history before its cutoff and promoted only when it beats the champion
it would replace. A backfill of a past day therefore uses a model that saw only data before
that day's issue. Every model's P50 is reconciled bottom-up over the meters registry's
feeder -> substation hierarchy (``p50_base`` keeps the model's own).

The model family of each series (``forecast_model_choice``) is chosen for every issue from
the forecasts issued for the 28 target days before it whose actuals were complete at the
issue time, on two rolling folds of 14 days: the lowest mean of the fold MAEs, gbm when
nothing was scored yet (see choose_models).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa

from smartgrid_assets import contract, forecasting
from smartgrid_assets.forecasting.day_ahead import history_grid, why_not_forecast
from smartgrid_assets.forecasting.grid import day_number
from smartgrid_assets.forecasting.reconcile import hierarchy_from_meters
from smartgrid_assets.forecasting.registry import ForecastRegistry, fingerprint, model_for_issue
from smartgrid_assets.forecasting.timing import to_us
from smartgrid_assets.pipeline.registry import current_meters
from smartgrid_assets.platform import Platform

CHOICE_DAYS = 28
NAIVE = ("seasonal_naive_1d", "seasonal_naive_7d")
US = pa.timestamp("us", tz="UTC")


@dataclass
class Issued:
    """What ``issue_forecasts`` wrote, and what it used and trained."""

    forecasts: pa.Table
    choice: pa.Table
    models: dict[str, str] = field(default_factory=dict)  # target day -> gbm version used
    trained: list[dict] = field(default_factory=list)  # versions trained for these issues
    skipped: dict[str, str] = field(default_factory=dict)  # target day -> why not issued
    naive_only: dict[str, dict[str, str]] = field(default_factory=dict)  # day -> series -> why


def registry_of(platform: Platform) -> ForecastRegistry:
    return ForecastRegistry(platform.settings.mlflow_tracking_uri)


def choose_models(
    earlier: pa.Table,
    actuals: pa.Table,
    series: pd.DataFrame,
    issued_at,
    target_day: date,
    version: str,
) -> pa.Table:
    """FORECAST_MODEL_CHOICE rows of one issue for ``series`` (level, asset_id) from earlier
    forecasts (LOAD_FORECASTS, the window's) and their actuals (FEEDER_HOURLY): per model the
    MAE on each of two rolling folds (target days D-29..D-16 and D-15..D-2), the lowest mean
    over both folds among the models scored on both, else the lowest MAE over the days scored."""
    acc = (
        forecasting.forecast_accuracy(earlier, actuals).to_pandas()
        if earlier.num_rows
        else pd.DataFrame()
    )
    rows = []
    if len(acc):
        newer = target_day - timedelta(days=CHOICE_DAYS // 2 + 1)  # the newer fold's first day
        acc["fold"] = (pd.to_datetime(acc["target_day"]).dt.date >= newer).astype(int)
        keys = ["level", "asset_id", "model"]
        folds = acc.groupby([*keys, "fold"], sort=True)["mae"].mean().unstack("fold")
        folds = folds.reindex(columns=[0, 1])
        stats = acc.groupby(keys, sort=True).agg(
            mae=("mae", "mean"), rmae=("rmae", "mean"), days=("target_day", "nunique")
        )
        stats["mae_folds"] = [
            [float(v) for v in r] if not np.isnan(r).any() else None for r in folds.to_numpy()
        ]
        both = folds.notna().all(axis=1)
        stats["both"] = both
        stats["mae"] = np.where(both, folds.mean(axis=1), stats["mae"])
        stats = stats.reset_index()
        stats = stats.sort_values(
            ["level", "asset_id", "both", "mae", "model"], ascending=[True, True, False, True, True]
        )
        rows = stats.drop_duplicates(["level", "asset_id"], keep="first").to_dict("records")
    scored = {(r["level"], r["asset_id"]) for r in rows}
    for r in series.sort_values(["level", "asset_id"]).itertuples(index=False):
        if (r.level, r.asset_id) not in scored:
            rows.append(
                {
                    "level": r.level,
                    "asset_id": r.asset_id,
                    "model": "gbm",
                    "mae": None,
                    "rmae": None,
                    "days": 0,
                    "mae_folds": None,
                }
            )
    n = len(rows)
    table = pa.table(
        {
            "level": pa.array([r["level"] for r in rows], pa.string()),
            "asset_id": pa.array([r["asset_id"] for r in rows], pa.string()),
            "issued_at": pa.array([issued_at] * n, US),
            "target_day": pa.array([target_day] * n, pa.date32()),
            "model": pa.array([r["model"] for r in rows], pa.string()),
            "days_scored": pa.array([int(r["days"]) for r in rows], pa.int32()),
            "mae": pa.array([r["mae"] for r in rows], pa.float64(), from_pandas=True),
            "rmae": pa.array([r["rmae"] for r in rows], pa.float64(), from_pandas=True),
            "gbm_version": pa.array([version or None] * n, pa.string()),
            "mae_folds": pa.array([r["mae_folds"] for r in rows], pa.list_(pa.float64())),
        }
    )
    return contract.conform(table, contract.FORECAST_MODEL_CHOICE).sort_by(
        [("level", "ascending"), ("asset_id", "ascending")]
    )


def newest_choice(choice: pa.Table) -> list[dict]:
    """The choice of the newest target day per series, with its fold MAEs (kWh per hour)."""
    if choice.num_rows == 0:
        return []
    newest = max(choice["target_day"].to_pylist())
    rows = [r for r in choice.to_pylist() if r["target_day"] == newest]
    return [
        {
            "target_day": str(newest),
            "level": r["level"],
            "asset_id": r["asset_id"],
            "model": r["model"],
            "mae_folds": [round(v, 3) for v in r["mae_folds"]] if r["mae_folds"] else None,
            "days_scored": r["days_scored"],
        }
        for r in rows
    ]


def naive_only(table: pa.Table, config: forecasting.ForecastConfig) -> dict[str, str]:
    """Series of one issue that got only the naive forecasts, each with the reason."""
    frame = table.select(["level", "asset_id", "model"]).to_pandas()
    learned = set(frame.loc[~frame["model"].isin(NAIVE), "asset_id"])
    short = sorted(set(frame["asset_id"]) - learned)
    why = (
        f"fewer than {config.min_days_gbm} complete local days of history: the seasonal naive "
        "forecast only"
    )
    return dict.fromkeys(short, why)


def issue_forecasts(
    platform: Platform,
    target_days: list[date],
    registry: ForecastRegistry | None = None,
    config: forecasting.ForecastConfig | None = None,
) -> Issued:
    """Forecast each target day as issued at 00:00 local the day before, from data before then.

    Re-running an issue replaces exactly that issue's rows; forecasts issued at other times for
    the same target day are kept. A day with nothing recent to forecast from is skipped, with
    its reason in ``Issued.skipped`` (and its earlier rows of that issue removed). The
    forecaster ignores whatever it is given from at or after
    each issue time, so the window's history is read once.
    """
    config = config or forecasting.ForecastConfig()
    registry = registry or registry_of(platform)
    tz = platform.tz
    lookback = timedelta(days=config.lookback_days)
    issues = {day: forecasting.issue_time(day, tz) for day in sorted(target_days)}
    first, last = min(issues.values()), max(issues.values())
    history = platform.warehouse.read(
        "SELECT * FROM feeder_hourly WHERE ts >= ? AND ts < ? ORDER BY level, asset_id, ts",
        [first - lookback, last],
    )
    weather = platform.warehouse.read(
        "SELECT * FROM weather_forecast WHERE issued_at >= ? AND issued_at <= ?",
        [first - timedelta(days=1), last],
    )
    earlier = _earlier_forecasts(platform, min(issues), max(issues))
    hierarchy = hierarchy_from_meters(current_meters(platform))
    fp = fingerprint(tz, config)
    parts, choices, used, trained, skipped, naive = [], [], {}, [], {}, {}
    for day, issued_at in issues.items():
        issue_day = day_number(day) - 1
        hist, _ = history_grid(history, to_us(issued_at), issue_day, tz, config)
        why = why_not_forecast(hist)
        if why:
            skipped[str(day)] = why
            continue
        chosen = model_for_issue(registry, hist, config, fp)
        if chosen.trained is not None:
            trained.append(
                {
                    "version": chosen.trained.version,
                    "cutoff": str(day - timedelta(days=1)),
                    "promoted": chosen.trained.promoted,
                    "holdout_rmae": round(chosen.trained.holdout_rmae, 4),
                }
            )
        models = forecasting.MODELS if chosen.model else ("seasonal_naive_1d", "seasonal_naive_7d")
        fitted = {"gbm": chosen.model} if chosen.model else {}
        table = forecasting.forecast_day_ahead(
            history, weather, day, tz, models, config, fitted=fitted, hierarchy=hierarchy
        )
        parts.append(table)
        version = chosen.version.version if chosen.version else ""
        used[str(day)] = version or "none (too little history)"
        if table.num_rows:
            if short := naive_only(table, config):
                naive[str(day)] = short
            series = table.select(["level", "asset_id"]).to_pandas().drop_duplicates()
            before = _window(earlier, day)
            choices.append(choose_models(before, history, series, issued_at, day, version))
        earlier = pa.concat_tables([earlier, table]) if table.num_rows else earlier
    table = pa.concat_tables(parts) if parts else contract.LOAD_FORECASTS.empty_table()
    platform.warehouse.replace(
        "load_forecasts",
        table,
        match={"target_day": list(issues), "issued_at": list(issues.values())},
    )
    choice = pa.concat_tables(choices) if choices else contract.FORECAST_MODEL_CHOICE.empty_table()
    platform.warehouse.replace("forecast_model_choice", choice, match={"target_day": list(issues)})
    return Issued(
        forecasts=table,
        choice=choice,
        models=used,
        trained=trained,
        skipped=skipped,
        naive_only=naive,
    )


def _earlier_forecasts(platform: Platform, first: date, last: date) -> pa.Table:
    """Stored forecasts for the target days whose scores can inform the issues of the window."""
    if not platform.warehouse.has_table("load_forecasts"):
        return contract.LOAD_FORECASTS.empty_table()
    table = platform.warehouse.read(
        "SELECT * FROM load_forecasts WHERE target_day >= ? AND target_day < ?",
        [first - timedelta(days=CHOICE_DAYS + 2), last],
    )
    return contract.conform(table, contract.LOAD_FORECASTS)


def _window(forecasts: pa.Table, day: date) -> pa.Table:
    """Forecasts for the 28 target days whose actuals were complete at the issue of ``day``
    (target days D-29 .. D-2), issued before then."""
    if forecasts.num_rows == 0:
        return forecasts
    frame_days = forecasts["target_day"].to_pandas()
    lo, hi = day - timedelta(days=CHOICE_DAYS + 1), day - timedelta(days=2)
    keep = ((frame_days >= lo) & (frame_days <= hi)).to_numpy()
    return forecasts.filter(pa.array(keep))


def reconciliation_effect(accuracy: pa.Table) -> list[dict]:
    """Per level and model: MAE of the reconciled P50 and of the model's own, over the rows."""
    frame = accuracy.select(["level", "model", "mae", "mae_base"]).to_pandas()
    if frame.empty:
        return []
    out = frame.groupby(["level", "model"], sort=True)[["mae", "mae_base"]].mean().reset_index()
    out["change_pct"] = 100.0 * (out["mae"] - out["mae_base"]) / out["mae_base"]
    return [
        {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}
        for r in out.to_dict("records")
    ]


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
