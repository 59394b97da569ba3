"""What the dbt marts need of the lake, loaded into the warehouse per partition.

Readings-level data stays in the lake (on PostgreSQL as on DuckDB); these steps load two small
aggregates through the one warehouse access layer, so the same dbt models run on both targets:

- `meter_daily`: energy, hourly peak and quality counts per meter and local day;
- `transformer_loading`: hourly transformer loading, computed by the overload detector's own
  function (`anomalies.transformer_loading`), which `fct_transformer_loading` summarises.
"""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

from smartgrid_assets import anomalies, contract
from smartgrid_assets.contract import METER_DAILY
from smartgrid_assets.features.daily import meter_daily
from smartgrid_assets.ingest.files import local_day
from smartgrid_assets.pipeline.readings import window_bounds
from smartgrid_assets.pipeline.registry import current_meters
from smartgrid_assets.platform import Platform

TRANSFORMER_LOADING = pa.schema(
    [
        pa.field("transformer_id", pa.string(), nullable=False),
        pa.field("ts", contract.UTC_TS, nullable=False),
        pa.field("local_day", pa.date32(), nullable=False),
        pa.field("kw", pa.float64(), nullable=False),
        pa.field("kw_as_hourly", pa.float64(), nullable=False),
        pa.field("kva", pa.float64(), nullable=False),
        pa.field("meters", pa.int32(), nullable=False),
        pa.field("kva_rating", pa.float64(), nullable=False),
        pa.field("power_factor", pa.float64(), nullable=False),
        pa.field("loading", pa.float64(), nullable=False),
    ],
    metadata={
        "smartgrid.name": "transformer_loading",
        "smartgrid.version": "1.0",
        "doc": "Hourly loading per transformer as the overload detector judges it: kw without "
        "VEE spike energy (kw_as_hourly with it), kva = kw / power_factor, loading = kva / "
        "kva_rating.",
    },
)


def load_meter_daily(platform: Platform, days: list[date]) -> pa.Table:
    hourly = platform.lake.read_days("meter_hourly", days, contract.METER_HOURLY)
    table = meter_daily(hourly, platform.tz)
    table = table.filter(pc.is_in(table["local_day"], value_set=pa.array(days, pa.date32())))
    platform.warehouse.replace("meter_daily", table, match={"local_day": days})
    return table


def load_transformer_loading(platform: Platform, days: list[date]) -> pa.Table:
    start, end = window_bounds(days, platform.tz)
    frame = anomalies.transformer_loading(
        platform.lake.read_days("cleaned_readings", days, contract.CLEANED_READINGS),
        platform.lake.read_days("meter_hourly", days, contract.METER_HOURLY),
        current_meters(platform),
        platform.warehouse.read("SELECT * FROM transformers"),
        window_end=end,
    )
    ts = pa.array(frame["ts"].to_numpy(), pa.int64()).cast(contract.UTC_TS)
    table = pa.table(
        {
            "transformer_id": pa.array(frame["transformer_id"].tolist(), pa.string()),
            "ts": ts,
            "local_day": local_day(ts, platform.tz),
            **{
                name: pa.array(frame[name].to_numpy(), TRANSFORMER_LOADING.field(name).type)
                for name in ("kw", "kw_as_hourly", "kva", "meters", "kva_rating")
            },
            "power_factor": pa.array(frame["power_factor"].to_numpy(), pa.float64()),
            "loading": pa.array(frame["loading"].to_numpy(), pa.float64()),
        }
    )
    table = table.filter(pc.greater_equal(table["ts"], pa.scalar(start, contract.UTC_TS)))
    table = table.select(TRANSFORMER_LOADING.names).cast(TRANSFORMER_LOADING)
    platform.warehouse.replace("transformer_loading", table, match={"local_day": days})
    return table


__all__ = ["METER_DAILY", "TRANSFORMER_LOADING", "load_meter_daily", "load_transformer_loading"]
