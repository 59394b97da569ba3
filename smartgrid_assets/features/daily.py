"""Daily energy per meter (`meter_daily`): what the warehouse needs of the lake's `meter_hourly`.

Readings-level data stays in the lake; the warehouse (DuckDB or PostgreSQL alike) gets this
aggregate per partition, and the dbt mart `fct_meter_daily` builds on it.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from smartgrid_assets.contract import UTC_TS

METER_DAILY = pa.schema(
    [
        pa.field("meter_id", pa.string(), nullable=False),
        pa.field("local_day", pa.date32(), nullable=False),
        pa.field("kwh_delivered", pa.float64(), nullable=False),
        pa.field("kwh_received", pa.float64(), nullable=False),
        pa.field("kwh_net", pa.float64(), nullable=False),
        pa.field("peak_kw", pa.float64(), nullable=False),
        pa.field("peak_at", UTC_TS, nullable=False),
        pa.field("hours", pa.int32(), nullable=False),
        pa.field("intervals", pa.int32(), nullable=False),
        pa.field("intervals_estimated", pa.int32(), nullable=False),
        pa.field("intervals_suspect", pa.int32(), nullable=False),
    ],
    metadata={
        "smartgrid.name": "meter_daily",
        "smartgrid.version": "1.0",
        "doc": "Cleaned energy per meter and local day. peak_kw is the day's highest hourly net "
        "energy (average kW over that hour), peak_at that hour's UTC start (the first, on ties).",
    },
)


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def meter_daily(meter_hourly: pa.Table, tz: str) -> pa.Table:
    """Sum METER_HOURLY rows per meter and local day in `tz`."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("hourly", meter_hourly)
        table = con.sql(
            f"""
            SELECT meter_id,
                   CAST(timezone({_lit(tz)}, ts) AS DATE) AS local_day,
                   sum(kwh_delivered) AS kwh_delivered,
                   sum(kwh_received) AS kwh_received,
                   sum(kwh_net) AS kwh_net,
                   max(kwh_net) AS peak_kw,
                   arg_max(ts, (kwh_net, -epoch_us(ts))) AS peak_at,
                   count(*)::INTEGER AS hours,
                   sum(intervals)::INTEGER AS intervals,
                   sum(intervals_estimated)::INTEGER AS intervals_estimated,
                   sum(intervals_suspect)::INTEGER AS intervals_suspect
            FROM hourly
            GROUP BY meter_id, local_day
            ORDER BY meter_id, local_day
            """
        ).to_arrow_table()
    finally:
        con.close()
    return table.select(METER_DAILY.names).cast(METER_DAILY)
