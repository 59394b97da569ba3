"""What a planner reads on a forecast materialization: P10 / P50 / P90 against the actual load
and naive-1d, for the system and each substation over the partition's days, and a table for
the feeders, every figure in kWh per hour (FEEDER_HOURLY's unit).

The forecast drawn per series is its chosen model (``forecast_model_choice`` of the issue), gbm
where none was chosen; actuals are drawn where they are known (a forecast of tomorrow has
none yet). rMAE is one definition everywhere: the model's MAE over naive-1d's on the same
hours, pooled (the sum of absolute errors over the sum of naive-1d's), never a mean of daily
ratios, which a few near-perfect naive days blow up.
"""

from __future__ import annotations

import base64
import io
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from smartgrid_assets.pipeline.quality_report import md_rows
from smartgrid_assets.platform import Platform

UNIT = "kWh per hour"
NAIVE = "seasonal_naive_1d"
MAX_PANELS = 9  # the system and the first substations; every feeder is in the table


FORECAST_COLUMNS = ["level", "asset_id", "model", "ts", "p10", "p50", "p90"]


def read_actuals(platform: Platform, days: list[date]) -> pd.DataFrame:
    return platform.warehouse.read(
        "SELECT level, asset_id, ts, kwh FROM feeder_hourly WHERE local_day IN (SELECT unnest(?))",
        [days],
    ).to_pandas()


def chosen_models(choice: pa.Table) -> dict[tuple[str, str], str]:
    """(level, asset_id) -> the model FORECAST_MODEL_CHOICE rows chose (the newest target day's)."""
    rows = choice.sort_by([("target_day", "ascending")]).to_pylist() if choice.num_rows else []
    return {(r["level"], r["asset_id"]): r["model"] for r in rows}


def gather(platform: Platform, days: list[date]) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The forecasts issued for ``days``, their actuals and the chosen model per series, from
    the warehouse (for a run that did not issue them itself)."""
    wh = platform.warehouse
    forecasts = wh.read(
        f"SELECT {', '.join(FORECAST_COLUMNS)} FROM load_forecasts "
        "WHERE target_day IN (SELECT unnest(?))",
        [days],
    ).to_pandas()
    choice = (
        wh.read(
            "SELECT * FROM forecast_model_choice WHERE target_day IN (SELECT unnest(?))", [days]
        )
        if wh.has_table("forecast_model_choice")
        else pa.table({})
    )
    return forecasts, read_actuals(platform, days), chosen_models(choice)


def feeder_table(forecasts: pd.DataFrame, actuals: pd.DataFrame) -> list[dict]:
    """Per feeder and model, over the hours with actuals: MAE and naive-1d MAE (kWh per hour),
    pooled rMAE and P10-P90 coverage."""
    feeders = forecasts[forecasts["level"] == "feeder"]
    joined = feeders.merge(actuals, on=["level", "asset_id", "ts"])
    naive = joined[joined["model"] == NAIVE][["asset_id", "ts", "p50"]]
    joined = joined.merge(naive.rename(columns={"p50": "naive"}), on=["asset_id", "ts"])
    if joined.empty:
        return []
    joined["abs_error"] = (joined["p50"] - joined["kwh"]).abs()
    joined["abs_error_naive"] = (joined["naive"] - joined["kwh"]).abs()
    joined["hit"] = (joined["p10"] <= joined["kwh"]) & (joined["kwh"] <= joined["p90"])
    out = joined.groupby(["asset_id", "model"], sort=True).agg(
        hours=("abs_error", "size"),
        mae=("abs_error", "mean"),
        mae_naive_1d=("abs_error_naive", "mean"),
        coverage_p10_p90=("hit", "mean"),
    )
    out["rmae"] = out["mae"] / out["mae_naive_1d"].where(out["mae_naive_1d"] > 0)
    rows = out.reset_index().rename(columns={"asset_id": "feeder"})
    return [
        {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}
        for r in rows.to_dict("records")
    ]


def _panels(forecasts: pd.DataFrame) -> list[tuple[str, str]]:
    keys = forecasts[["level", "asset_id"]].drop_duplicates()
    system = [tuple(k) for k in keys[keys["level"] == "system"].to_numpy()]
    subs = sorted(tuple(k) for k in keys[keys["level"] == "substation"].to_numpy())
    return (system + subs)[:MAX_PANELS]


def render_chart(
    forecasts: pd.DataFrame, actuals: pd.DataFrame, chosen: dict, tz: str
) -> bytes | None:
    """A PNG with one panel per system / substation series; None without forecasts."""
    panels = _panels(forecasts)
    if not panels:
        return None
    figure = Figure(figsize=(11, 2.4 * len(panels) + 0.6), dpi=72, layout="constrained")
    FigureCanvasAgg(figure)
    axes = np.atleast_1d(figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0])
    for ax, (level, asset) in zip(axes, panels, strict=True):
        mine = forecasts[(forecasts["level"] == level) & (forecasts["asset_id"] == asset)]
        model = chosen.get((level, asset), "gbm")
        if model not in set(mine["model"]):
            model = "gbm" if "gbm" in set(mine["model"]) else mine["model"].iloc[0]
        main = mine[mine["model"] == model].sort_values("ts")
        t = pd.to_datetime(main["ts"], utc=True).dt.tz_convert(tz)
        ax.fill_between(t, main["p10"], main["p90"], color="#90caf9", alpha=0.6, label="P10-P90")
        ax.plot(t, main["p50"], color="#1565c0", lw=1.2, label=f"P50 ({model})")
        naive = mine[mine["model"] == NAIVE].sort_values("ts")
        if len(naive):
            nt = pd.to_datetime(naive["ts"], utc=True).dt.tz_convert(tz)
            ax.plot(nt, naive["p50"], color="#757575", lw=0.9, ls="--", label="naive-1d")
        known = actuals[(actuals["level"] == level) & (actuals["asset_id"] == asset)]
        known = known.sort_values("ts")
        if len(known):
            at = pd.to_datetime(known["ts"], utc=True).dt.tz_convert(tz)
            ax.plot(at, known["kwh"], color="black", lw=1.0, label="actual")
        ax.set_title(f"{level} {asset}", fontsize="medium", loc="left")
        ax.set_ylabel(UNIT)
        ax.legend(loc="upper right", fontsize="x-small", ncols=4)
    axes[-1].set_xlabel(f"local time ({tz})")
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def render_markdown(forecasts: pd.DataFrame, actuals: pd.DataFrame, chosen: dict, tz: str) -> str:
    """The chart and the feeder table as Markdown (the chart embedded as a PNG)."""
    png = render_chart(forecasts, actuals, chosen, tz)
    if png is None:
        return "_no forecasts for these days_"
    lines = [
        f"![forecasts](data:image/png;base64,{base64.b64encode(png).decode()})",
        "",
        f"Feeders, over the hours with actuals ({UNIT}; rMAE: MAE over naive-1d's, pooled):",
        "",
    ]
    rows = feeder_table(forecasts, actuals)
    if not rows:
        return "\n".join([*lines[:2], "_no actuals yet for these days_"])
    return "\n".join([*lines, *md_rows(rows, list(rows[0]))])


def summary_by_model_and_level(accuracy: pa.Table) -> list[dict]:
    """Pooled rMAE (sum of MAE over the sum of naive MAE, hour-weighted) and coverage per
    model and level, from FORECAST_ACCURACY rows."""
    frame = accuracy.to_pandas()
    if frame.empty:
        return []
    frame["abs_error"] = frame["mae"] * frame["hours"]
    frame["abs_error_naive"] = frame["mae_naive_1d"] * frame["hours"]
    frame["hits"] = frame["coverage_p10_p90"] * frame["hours"]
    out = frame.groupby(["model", "level"], sort=True).agg(
        days=("target_day", "nunique"),
        hours=("hours", "sum"),
        abs_error=("abs_error", "sum"),
        abs_error_naive=("abs_error_naive", "sum"),
        hits=("hits", "sum"),
    )
    out["mae"] = out["abs_error"] / out["hours"]
    out["mae_naive_1d"] = out["abs_error_naive"] / out["hours"]
    out["rmae"] = out["abs_error"] / out["abs_error_naive"].where(out["abs_error_naive"] > 0)
    out["coverage_p10_p90"] = out["hits"] / out["hours"]
    out = out[["days", "mae", "mae_naive_1d", "rmae", "coverage_p10_p90"]].reset_index()
    return [
        {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}
        for r in out.to_dict("records")
    ]
