"""Daily energy per meter (`meter_daily`): what the warehouse needs of the lake's `meter_hourly`.

Readings-level data stays in the lake; the warehouse (DuckDB or PostgreSQL alike) gets this
aggregate per partition, and the dbt mart `fct_meter_daily` builds on it.
"""

from __future__ import annotations

import pyarrow as pa

from smartgrid_assets.contract import METER_DAILY, conform
from smartgrid_assets.scratch import connect
from smartgrid_assets.scratch import literal as _lit


def meter_daily(meter_hourly: pa.Table, tz: str) -> pa.Table:
    """Sum METER_HOURLY rows per meter and local day in `tz`."""
    con = connect()
    try:
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
    return conform(table, METER_DAILY)
