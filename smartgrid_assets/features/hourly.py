"""Hourly energy per meter, and its rollups up the grid (transformer, feeder, substation, system).

Hours are local clock hours of the utility's time zone (ts is the hour's UTC start), so a DST
day has 23 or 25 of them and zones with half-hour offsets bucket correctly.
"""

from __future__ import annotations

import pyarrow as pa

from smartgrid_assets import contract
from smartgrid_assets.scratch import connect
from smartgrid_assets.scratch import literal as _lit

LEVELS = ("transformer", "feeder", "substation", "system")
#: the cleaned_readings columns meter_hourly reads (the rest are never decoded)
CLEANED_COLUMNS = ("meter_id", "ts", "channel", "kwh", "quality")


def meter_hourly(cleaned: pa.Table, tz: str) -> pa.Table:
    """Sum cleaned energy per meter and local hour; count estimated and suspect intervals."""
    con = connect()
    try:
        con.register("cleaned", cleaned)
        table = con.sql(
            f"""
            SELECT meter_id,
                   time_bucket(INTERVAL 1 HOUR, ts, {_lit(tz)}) AS ts,
                   coalesce(sum(kwh) FILTER (WHERE channel = 'delivered'), 0) AS kwh_delivered,
                   coalesce(sum(kwh) FILTER (WHERE channel = 'received'), 0) AS kwh_received,
                   kwh_delivered - kwh_received AS kwh_net,
                   count(*)::INTEGER AS intervals,
                   count(*) FILTER (WHERE quality = 'E')::INTEGER AS intervals_estimated,
                   count(*) FILTER (WHERE quality = 'S')::INTEGER AS intervals_suspect
            FROM cleaned
            GROUP BY ALL
            ORDER BY meter_id, ts
            """
        ).to_arrow_table()
    finally:
        con.close()
    return contract.conform(table, contract.METER_HOURLY)


def feeder_hourly(
    hourly: pa.Table,
    meters: pa.Table,
    weather_observed: pa.Table,
    weather_forecast: pa.Table,
    tz: str,
) -> pa.Table:
    """Roll meter hours up every level of the grid and join observed and day-ahead weather.

    The forecast temperature of an hour on local day D is the one issued at 00:00 local on D-1:
    what a day-ahead load forecast for D could know.
    """
    con = connect()
    try:
        for name, table in {
            "hourly": hourly,
            "meters": meters,
            "observed": weather_observed,
            "forecast": weather_forecast,
        }.items():
            con.register(name, table)
        levels = " UNION ALL ".join(
            f"SELECT '{level}' AS level, {column} AS asset_id, h.*, m.region "
            "FROM hourly h JOIN meters m USING (meter_id) "
            f"WHERE {column} IS NOT NULL"
            for level, column in (
                ("transformer", "m.transformer_id"),
                ("feeder", "m.feeder_id"),
                ("substation", "m.substation_id"),
                ("system", "'system'"),
            )
        )
        table = con.sql(
            f"""
            WITH by_level AS ({levels}),
            rolled AS (
                SELECT level, asset_id, ts,
                       CAST(timezone({_lit(tz)}, ts) AS DATE) AS local_day,
                       sum(kwh_net) AS kwh,
                       sum(kwh_delivered) AS kwh_delivered,
                       sum(kwh_received) AS kwh_received,
                       count(DISTINCT meter_id)::INTEGER AS meters,
                       sum(intervals_estimated)::INTEGER AS intervals_estimated,
                       sum(intervals_suspect)::INTEGER AS intervals_suspect,
                       CASE WHEN count(DISTINCT region) = 1 THEN any_value(region) END AS region
                FROM by_level
                GROUP BY level, asset_id, ts
            ),
            day_ahead AS (
                SELECT region, ts, temperature_c
                FROM forecast
                WHERE timezone({_lit(tz)}, issued_at)::TIME = TIME '00:00'
                  AND CAST(timezone({_lit(tz)}, issued_at) AS DATE)
                      = CAST(timezone({_lit(tz)}, ts) AS DATE) - 1
            ),
            -- per region, and averaged over regions for rollups that span several
            obs AS (
                SELECT region, ts, avg(temperature_c) AS t FROM observed GROUP BY ALL
                UNION ALL SELECT NULL, ts, avg(temperature_c) FROM observed GROUP BY ts
            ),
            fc AS (
                SELECT region, ts, avg(temperature_c) AS t FROM day_ahead GROUP BY ALL
                UNION ALL SELECT NULL, ts, avg(temperature_c) FROM day_ahead GROUP BY ts
            )
            SELECT r.*, obs.t AS temperature_c, fc.t AS temperature_forecast_c
            FROM rolled r
            LEFT JOIN obs ON obs.ts = r.ts AND obs.region IS NOT DISTINCT FROM r.region
            LEFT JOIN fc ON fc.ts = r.ts AND fc.region IS NOT DISTINCT FROM r.region
            ORDER BY level, asset_id, ts
            """
        ).to_arrow_table()
    finally:
        con.close()
    return contract.conform(table, contract.FEEDER_HOURLY)
