"""Bottom-up reconciliation: feeder P50s add up to their substation's and to the system's.

The grid's hierarchy is feeder -> substation -> system (``hierarchy``: one row per feeder with
its ``feeder_id`` and ``substation_id``, e.g. the distinct pairs of the meters registry).
For every model and hour, a substation's P50 becomes the sum of its feeders' P50s and the
system's the sum of every feeder's, provided each of those feeders has a forecast that hour
(otherwise the level keeps its own). The band moves with its P50 (P10 and P90 shift by the
same amount), so it stays around the reconciled median; ``p50_base`` keeps the model's own P50
and the accuracy tables score both, which shows what reconciliation did to accuracy. Feeder
rows are unchanged: bottom-up trusts the lowest level.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def reconcile_bottom_up(rows: pd.DataFrame, hierarchy: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with columns level, asset_id, model, ts_us, p10, p50, p90, p50_base; returns
    the same rows with substation and system P50 (and their bands) reconciled."""
    pairs = hierarchy[["feeder_id", "substation_id"]].dropna().drop_duplicates()
    pairs = pairs.astype(str)
    if pairs.empty or rows.empty:
        return rows
    out = rows.copy()
    feeders = out[out["level"] == "feeder"][["asset_id", "model", "ts_us", "p50_base"]]
    feeders = feeders.merge(pairs, left_on="asset_id", right_on="feeder_id", how="inner")
    size = pairs.groupby("substation_id").size()
    # sums per parent, kept only where every member feeder is present
    parts = []
    sub = feeders.groupby(["substation_id", "model", "ts_us"])["p50_base"].agg(["sum", "size"])
    sub = sub.reset_index()
    sub = sub[(sub["size"] == sub["substation_id"].map(size)).to_numpy()]
    parts.append(sub.assign(level="substation").rename(columns={"substation_id": "asset_id"}))
    system = feeders.groupby(["model", "ts_us"])["p50_base"].agg(["sum", "size"]).reset_index()
    system = system[(system["size"] == len(pairs)).to_numpy()]
    parts.append(system.assign(level="system", asset_id="system"))
    sums = pd.concat(parts, ignore_index=True)[["level", "asset_id", "model", "ts_us", "sum"]]
    out = out.merge(sums, on=["level", "asset_id", "model", "ts_us"], how="left")
    has = out["sum"].notna().to_numpy()
    delta = np.where(has, out["sum"].to_numpy() - out["p50_base"].to_numpy(), 0.0)
    out["p50"] = out["p50_base"] + delta
    out["p10"] = np.minimum(out["p10"] + delta, out["p50"])
    out["p90"] = np.maximum(out["p90"] + delta, out["p50"])
    return out.drop(columns=["sum"])


def hierarchy_from_meters(meters) -> pd.DataFrame:
    """Distinct (feeder_id, substation_id) of a meters registry table (Arrow or pandas)."""
    frame = meters.to_pandas() if hasattr(meters, "to_pandas") else pd.DataFrame(meters)
    cols = ["feeder_id", "substation_id"]
    if any(c not in frame.columns for c in cols):
        return pd.DataFrame(columns=cols)
    return frame[cols].dropna().drop_duplicates().reset_index(drop=True)
