"""`feeder_imbalance`: a feeder-head meter against the sum of the feeder's customer meters.

Where a utility meters the head of a feeder, that meter sees the feeder's whole load; the
customer meters behind it should add up to it less technical losses (a few percent). A head
meter is a registry meter with a `feeder_id` and no `transformer_id` (it hangs on the feeder,
not behind a distribution transformer). Per feeder and hour (METER_HOURLY, estimates
included, as in the loading roll-up): imbalance = (head kWh - sum of the other meters'
kwh_net) / head kWh. Hours with |imbalance| >= `imbalance_threshold` (and a head reading of at
least `imbalance_min_head_kwh`) for `imbalance_min_hours` consecutive hours make one event on
the feeder (`asset_id`), scored by the median |imbalance| of the run: unmetered load, theft
ahead of the meters, a meter missing from the registry, or a wrong feeder assignment.
Feeders without a head meter are not judged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from smartgrid_assets.contract import UTC_TS
from smartgrid_assets.scratch import connect

from .config import FEEDER_IMBALANCE, DetectorConfig
from .events import candidates, evidence_json
from .frame import ts_us
from .runs import find_runs

_IMBALANCE_SQL = """
WITH reg AS (
    SELECT DISTINCT meter_id, feeder_id, transformer_id IS NULL AS is_head
    FROM meters WHERE feeder_id IS NOT NULL
),
head AS (
    SELECT r.feeder_id, h.ts, sum(h.kwh_net) AS head_kwh, min(h.meter_id) AS head_meter
    FROM hourly h JOIN reg r ON r.meter_id = h.meter_id AND r.is_head
    WHERE h.ts < $window_end
    GROUP BY ALL
),
customers AS (
    SELECT r.feeder_id, h.ts, sum(h.kwh_net) AS meters_kwh, count(DISTINCT h.meter_id) AS meters
    FROM hourly h JOIN reg r ON r.meter_id = h.meter_id AND NOT r.is_head
    WHERE h.ts < $window_end
    GROUP BY ALL
)
SELECT head.feeder_id, head.ts, head.head_meter, head.head_kwh,
       coalesce(c.meters_kwh, 0) AS meters_kwh, coalesce(c.meters, 0) AS meters,
       (head.head_kwh - coalesce(c.meters_kwh, 0)) / head.head_kwh AS imbalance
FROM head LEFT JOIN customers c USING (feeder_id, ts)
WHERE head.head_kwh >= $min_head_kwh
ORDER BY head.feeder_id, head.ts
"""


def feeder_balance(
    meter_hourly: pa.Table, meters: pa.Table, *, window_end_us: int, min_head_kwh: float
) -> pd.DataFrame:
    """Per feeder with a head meter and hour: feeder_id, ts (us), head_meter, head_kwh,
    meters_kwh, meters, imbalance; sorted by feeder_id, ts."""
    names = meters.column_names
    if (
        "feeder_id" not in names
        or "transformer_id" not in names
        or not pc.any(pc.is_valid(meters["feeder_id"])).as_py()
    ):
        return pd.DataFrame(columns=["feeder_id", "ts", "imbalance"])
    reg = pa.table(
        {
            "meter_id": pc.cast(meters["meter_id"], pa.string()),
            "feeder_id": pc.cast(meters["feeder_id"], pa.string()),
            "transformer_id": pc.cast(meters["transformer_id"], pa.string()),
        }
    )
    hourly = pa.table(
        {
            "meter_id": pc.cast(meter_hourly["meter_id"], pa.string()),
            "ts": pc.cast(meter_hourly["ts"], UTC_TS),
            "kwh_net": pc.cast(meter_hourly["kwh_net"], pa.float64()),
        }
    )
    con = connect()
    try:
        con.register("meters", reg)
        con.register("hourly", hourly)
        table = con.sql(
            _IMBALANCE_SQL,
            params={
                "window_end": pa.scalar(window_end_us, UTC_TS).as_py(),
                "min_head_kwh": float(min_head_kwh),
            },
        ).to_arrow_table()
    finally:
        con.close()
    frame = table.drop(["ts"]).to_pandas()
    frame["ts"] = ts_us(table["ts"]) if table.num_rows else np.zeros(0, np.int64)
    return frame


def feeder_imbalance(
    meter_hourly: pa.Table, meters: pa.Table, config: DetectorConfig, start_us: int, end_us: int
) -> pd.DataFrame:
    """`feeder_imbalance` events overlapping [start_us, end_us)."""
    balance = feeder_balance(
        meter_hourly, meters, window_end_us=end_us, min_head_kwh=config.imbalance_min_head_kwh
    )
    if balance.empty:
        return candidates([])
    imbalance = balance["imbalance"].to_numpy(np.float64)
    runs = find_runs(
        pd.factorize(balance["feeder_id"])[0],
        balance["ts"].to_numpy(np.int64),
        np.full(len(balance), 60, dtype=np.int64),
        np.abs(imbalance) >= config.imbalance_threshold,
        value=balance["head_kwh"].to_numpy(np.float64) - balance["meters_kwh"].to_numpy(np.float64),
    )
    keep = (
        (runs.minutes >= config.imbalance_min_hours * 60)
        & (runs.start < end_us)
        & (runs.end > start_us)
    )
    runs = runs.select(keep)
    rows = []
    for i in range(len(runs)):  # a loop per event
        seg = slice(int(runs.first[i]), int(runs.last[i]) + 1)
        score = float(np.median(np.abs(imbalance[seg])))
        first = balance.iloc[int(runs.first[i])]
        rows.append(
            {
                "type": FEEDER_IMBALANCE,
                "asset_id": first["feeder_id"],
                "start": int(runs.start[i]),
                "end": int(runs.end[i]),
                "severity": "critical" if score >= config.imbalance_critical else "warning",
                "score": score,
                "evidence": evidence_json(
                    {
                        "head_meter": first["head_meter"],
                        "hours": float(runs.minutes[i]) / 60.0,
                        "median_imbalance": float(np.median(imbalance[seg])),
                        "kwh_unaccounted": float(runs.total[i]),
                        "head_kwh": float(balance["head_kwh"].iloc[seg].sum()),
                        "meters": int(balance["meters"].iloc[seg].max()),
                    }
                ),
            }
        )
    return candidates(rows)
