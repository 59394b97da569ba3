"""`transformer_overload`: hourly loading above the transformer's rating.

Loading per transformer and hour = sum of its meters' `kwh_net` in the hour (average kW over
the hour) / (`kva_rating` x `power_factor`), from METER_HOURLY joined to the meter registry and
TRANSFORMERS; the same roll-up as the transformer level of `feeder_hourly` (meters joined by
meter_id; a registry that keeps several rows per meter uses the row whose
[installed_at, removed_at) overlaps the hour). Consecutive hours above `overload_threshold`
for at least `overload_min_hours` make one event; its score is the peak loading. Estimated
intervals count here (they are part of the hourly energy, as in the warehouse's loading mart);
readings VEE flagged as `spike` (`overload_discount_rules`) do not: their energy is taken out of
the hour, so a single bad reading on a one-meter transformer is no overload.

`transformer_loading` is the one computation of hourly loading: the detector judges it, and the
`transformer_loading` asset loads it into the warehouse, where the dbt mart
`fct_transformer_loading` summarises it (peak kVA, hours above rating) without recomputing it.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from smartgrid_assets.contract import UTC_TS
from smartgrid_assets.scratch import connect

from .config import TRANSFORMER_OVERLOAD, DetectorConfig
from .events import candidates, evidence_json
from .frame import RECEIVED, Observed, observed, to_us, ts_us
from .runs import find_runs

_LOADING_SQL = """
WITH reg AS (
    SELECT meter_id, transformer_id, installed_at, removed_at,
           count(*) OVER (PARTITION BY meter_id) AS n_rows
    FROM meters
    WHERE transformer_id IS NOT NULL
),
suspect AS (
    SELECT h.meter_id, h.ts, sum(s.kwh_net) AS kwh_net
    FROM hourly h
    JOIN discount s ON s.meter_id = h.meter_id AND s.ts >= h.ts AND s.ts < h.ts + INTERVAL 1 HOUR
    GROUP BY ALL
),
hours AS (
    SELECT r.transformer_id, h.ts,
           sum(h.kwh_net - coalesce(s.kwh_net, 0)) AS kw,
           sum(h.kwh_net) AS kw_as_hourly,
           count(DISTINCT h.meter_id) AS meters
    FROM hourly h
    LEFT JOIN suspect s ON s.meter_id = h.meter_id AND s.ts = h.ts
    JOIN reg r ON r.meter_id = h.meter_id
      AND (r.n_rows = 1 OR (
            (r.installed_at IS NULL OR h.ts + INTERVAL 1 HOUR > r.installed_at)
            AND (r.removed_at IS NULL OR h.ts < r.removed_at)))
    WHERE h.ts < $window_end
    GROUP BY ALL
)
SELECT h.transformer_id, h.ts, h.kw, h.kw_as_hourly, h.meters, t.kva_rating,
       h.kw / $power_factor AS kva,
       h.kw / (t.kva_rating * $power_factor) AS loading
FROM hours h
JOIN transformers t USING (transformer_id)
WHERE t.kva_rating > 0
ORDER BY h.transformer_id, h.ts
"""


def _registry(meters: pa.Table) -> pa.Table:
    n = meters.num_rows

    def col(name: str, kind: pa.DataType) -> pa.Array | pa.ChunkedArray:
        if name in meters.column_names:
            return pc.cast(meters[name], kind)
        return pa.nulls(n, kind)

    return pa.table(
        {
            "meter_id": col("meter_id", pa.string()),
            "transformer_id": col("transformer_id", pa.string()),
            "installed_at": col("installed_at", UTC_TS),
            "removed_at": col("removed_at", UTC_TS),
        }
    )


def hourly_loading(
    meter_hourly: pa.Table,
    meters: pa.Table,
    transformers: pa.Table,
    *,
    window_end_us: int,
    power_factor: float,
    discount: pa.Table | None = None,
) -> pd.DataFrame:
    """Loading per transformer and hour before `window_end_us`: transformer_id, ts (us), kw,
    kw_as_hourly, meters, kva_rating, kva, loading; sorted by transformer_id, ts.

    `discount` (meter_id, ts, kwh_net): readings whose energy is taken out of their hour
    (e.g. VEE spikes); `kw_as_hourly` is the hour's energy before that.
    """
    if discount is None:
        discount = pa.table(
            {
                "meter_id": pa.array([], pa.string()),
                "ts": pa.array([], UTC_TS),
                "kwh_net": pa.array([], pa.float64()),
            }
        )
    hourly = pa.table(
        {
            "meter_id": pc.cast(meter_hourly["meter_id"], pa.string()),
            "ts": pc.cast(meter_hourly["ts"], UTC_TS),
            "kwh_net": pc.cast(meter_hourly["kwh_net"], pa.float64()),
        }
    )
    tx = pa.table(
        {
            "transformer_id": pc.cast(transformers["transformer_id"], pa.string()),
            "kva_rating": pc.cast(transformers["kva_rating"], pa.float64()),
        }
    )
    con = connect()
    try:
        con.register("hourly", hourly)
        con.register("meters", _registry(meters))
        con.register("transformers", tx)
        con.register("discount", discount)
        table = con.sql(
            _LOADING_SQL,
            params={
                "window_end": pa.scalar(window_end_us, UTC_TS).as_py(),
                "power_factor": float(power_factor),
            },
        ).to_arrow_table()
    finally:
        con.close()
    frame = pd.DataFrame(
        {
            "transformer_id": table["transformer_id"].to_pylist(),
            "ts": ts_us(table["ts"]) if table.num_rows else np.zeros(0, np.int64),
            "kw": table["kw"].to_numpy(),
            "kw_as_hourly": table["kw_as_hourly"].to_numpy(),
            "meters": table["meters"].to_numpy(),
            "kva_rating": table["kva_rating"].to_numpy(),
            "kva": table["kva"].to_numpy(),
            "loading": table["loading"].to_numpy(),
        }
    )
    return frame


def suspect_energy(obs: Observed, rules: tuple[str, ...]) -> pa.Table:
    """Readings carrying any of `rules` as (meter_id, ts, kwh_net): received counts negative."""
    rows = np.flatnonzero((obs.rules & obs.rule_mask(rules)) != 0)
    sign = np.where(obs.channel[rows] == RECEIVED, -1.0, 1.0)
    return pa.table(
        {
            "meter_id": pa.array(obs.meter_ids[obs.meter[rows]].astype(str), pa.string()),
            "ts": pa.array(obs.ts[rows], pa.int64()).cast(UTC_TS),
            "kwh_net": pa.array(obs.value[rows] * sign, pa.float64()),
        }
    )


def _loading(
    meter_hourly: pa.Table,
    meters: pa.Table,
    transformers: pa.Table,
    obs: Observed,
    config: DetectorConfig,
    end_us: int,
) -> pd.DataFrame:
    return hourly_loading(
        meter_hourly,
        meters,
        transformers,
        window_end_us=end_us,
        power_factor=config.power_factor,
        discount=suspect_energy(obs, config.overload_discount_rules),
    )


def transformer_loading(
    cleaned: pa.Table,
    meter_hourly: pa.Table,
    meters: pa.Table,
    transformers: pa.Table,
    *,
    window_end: dt.datetime,
    config: DetectorConfig = DetectorConfig(),  # noqa: B008 - frozen, never mutated
) -> pd.DataFrame:
    """Hourly loading per transformer before `window_end`, exactly as `transformer_overload`
    judges it: the same readings (`exclude_rules` dropped), spike-flagged energy taken out, kW
    over kVA rating x power factor. Columns as `hourly_loading`, plus power_factor."""
    end_us = to_us(window_end, "window_end")
    obs = observed(cleaned, meters, window_end=end_us, exclude_rules=config.exclude_rules)
    load = _loading(meter_hourly, meters, transformers, obs, config, end_us)
    load["power_factor"] = float(config.power_factor)
    return load


def transformer_overload(
    meter_hourly: pa.Table,
    meters: pa.Table,
    transformers: pa.Table,
    obs: Observed,
    config: DetectorConfig,
    start_us: int,
    end_us: int,
) -> pd.DataFrame:
    """`transformer_overload` events overlapping [start_us, end_us).

    Readings VEE flagged with `overload_discount_rules` (spikes) are taken out of their hour:
    one bad reading on a single-meter transformer is not an overload.
    """
    if not transformers.num_rows:
        return candidates([])
    load = _loading(meter_hourly, meters, transformers, obs, config, end_us)
    if load.empty:
        return candidates([])
    group = pd.factorize(load["transformer_id"])[0]
    loading = load["loading"].to_numpy(np.float64)
    member = loading > config.overload_threshold
    runs = find_runs(
        group,
        load["ts"].to_numpy(np.int64),
        np.full(len(load), 60, dtype=np.int64),
        member,
        value=loading,
        max_gap_minutes=0,
    )
    keep = (
        (runs.minutes >= config.overload_min_hours * 60)
        & (runs.start < end_us)
        & (runs.end > start_us)
    )
    runs = runs.select(keep)
    rows = []
    for i in range(len(runs)):
        seg = slice(int(runs.first[i]), int(runs.last[i]) + 1)
        peak_at = int(runs.first[i]) + int(np.argmax(loading[seg]))
        peak = float(loading[peak_at])
        hours = float(runs.minutes[i]) / 60.0
        first = load.iloc[int(runs.first[i])]
        rows.append(
            {
                "type": TRANSFORMER_OVERLOAD,
                "asset_id": first["transformer_id"],
                "start": int(runs.start[i]),
                "end": int(runs.end[i]),
                "severity": ("critical" if peak > config.overload_critical_loading else "warning"),
                "score": peak,
                "evidence": evidence_json(
                    {
                        "peak_loading": peak,
                        "peak_kw": float(load["kw"].iat[peak_at]),
                        "peak_kw_as_hourly": float(load["kw_as_hourly"].iat[peak_at]),
                        "peak_hour": pd.Timestamp(
                            int(load["ts"].iat[peak_at]), unit="us", tz="UTC"
                        ).isoformat(),
                        "kva_rating": float(first["kva_rating"]),
                        "power_factor": config.power_factor,
                        "hours": hours,
                        "meters": int(load["meters"].iat[peak_at]),
                    }
                ),
            }
        )
    return candidates(rows)
