"""Accuracy of issued forecasts once their target day's actuals exist (FORECAST_ACCURACY).

One row per (level, asset_id, model, issued_at, target_day) whose every forecast hour has an
actual in ``actuals`` (FEEDER_HOURLY rows, matched on level, asset_id and ts; duplicate actual
rows are averaged). ``mae`` is the P50 mean absolute error, ``mae_naive_1d`` the same for the
``seasonal_naive_1d`` forecast of the same issue and series, ``rmae`` their ratio (null when
the naive MAE is 0), ``coverage_p10_p90`` the share of hours inside [P10, P90] and
``mae_base`` the MAE of the model's own P50 before reconciliation (``p50_base``; ``p50`` where
that is null), so ``mae - mae_base`` is what reconciliation did. A forecast
whose issue has no complete ``seasonal_naive_1d`` counterpart gets no row (the baseline is
part of the contract), so always issue that model alongside the others.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from smartgrid_assets import contract

KEYS = ["level", "asset_id", "model", "issued_at", "target_day"]
BASELINE = "seasonal_naive_1d"


def _frame(table: pa.Table, columns: list[str]) -> pd.DataFrame:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ValueError(f"table lacks columns {missing}")
    us = pa.timestamp("us", tz="UTC")
    data = {}
    for name in columns:
        col = table.column(name)
        if name in ("ts", "issued_at"):
            col = pc.cast(col, us).cast(pa.int64())
        data[name] = col.to_pandas()
    return pd.DataFrame(data)


def forecast_accuracy(forecasts: pa.Table, actuals: pa.Table) -> pa.Table:
    """FORECAST_ACCURACY rows for every fully observed forecast, sorted by the key columns."""
    fc = _frame(forecasts, [*KEYS, "ts", "p10", "p50", "p90"])
    if "p50_base" in forecasts.column_names:
        base = forecasts.column("p50_base").to_pandas()
        fc["p50_base"] = base.where(base.notna(), fc["p50"]).to_numpy()
    else:
        fc["p50_base"] = fc["p50"]
    act = _frame(actuals, ["level", "asset_id", "ts", "kwh"]).dropna(subset=["kwh"])
    act = act.groupby(["level", "asset_id", "ts"], as_index=False, sort=True)["kwh"].mean()
    rows = fc.merge(act, on=["level", "asset_id", "ts"], how="left")
    rows["abs_err"] = (rows["p50"] - rows["kwh"]).abs()
    rows["abs_err_base"] = (rows["p50_base"] - rows["kwh"]).abs()
    rows["inside"] = ((rows["p10"] <= rows["kwh"]) & (rows["kwh"] <= rows["p90"])).astype(float)
    by = rows.groupby(KEYS, sort=True, dropna=False)
    acc = by.agg(
        hours=("ts", "size"),
        observed=("kwh", "count"),
        mae=("abs_err", "mean"),
        mae_base=("abs_err_base", "mean"),
        coverage_p10_p90=("inside", "mean"),
    ).reset_index()
    acc = acc[(acc["observed"] == acc["hours"]).to_numpy()]
    naive = acc.loc[acc["model"] == BASELINE, [k for k in KEYS if k != "model"] + ["mae"]]
    acc = acc.merge(
        naive.rename(columns={"mae": "mae_naive_1d"}),
        on=[k for k in KEYS if k != "model"],
        how="inner",
    )
    ratio = acc["mae"] / acc["mae_naive_1d"]
    acc["rmae"] = ratio.where(acc["mae_naive_1d"] != 0)
    acc = acc.sort_values(KEYS, kind="stable").reset_index(drop=True)
    us = pa.timestamp("us", tz="UTC")
    table = pa.table(
        {
            "level": pa.array(acc["level"], pa.string()),
            "asset_id": pa.array(acc["asset_id"], pa.string()),
            "model": pa.array(acc["model"], pa.string()),
            "issued_at": pa.array(acc["issued_at"].to_numpy("int64"), pa.int64()).cast(us),
            "target_day": pa.array(acc["target_day"], pa.date32()),
            "hours": pa.array(acc["hours"].to_numpy("int64"), pa.int32()),
            "mae": pa.array(acc["mae"], pa.float64()),
            "mae_naive_1d": pa.array(acc["mae_naive_1d"], pa.float64()),
            "rmae": pa.array(acc["rmae"], pa.float64(), from_pandas=True),
            "coverage_p10_p90": pa.array(acc["coverage_p10_p90"], pa.float64()),
            "mae_base": pa.array(acc["mae_base"], pa.float64()),
        }
    )
    return contract.conform(table, contract.FORECAST_ACCURACY)
