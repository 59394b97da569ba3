"""The DuckDB file one partition's expectations run in: the data where it is, plus what the
aggregate expectations compare it with.

Readings-level partitions stay in the lake: a local lake file is a view over `read_parquet`, so
DuckDB scans it in place; an S3 lake file is read with pyarrow (no httpfs) and handed to DuckDB
as Arrow. Warehouse rows of the partition (registry, VEE sufficiency, weather, forecasts) are
small and come through the warehouse layer, DuckDB or PostgreSQL alike. `cleaned_series` is
computed here once, in one DuckDB pass, so the per-series expectations read 60,000 rows rather
than re-scanning millions for every expectation.
"""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import pyarrow as pa

from smartgrid_assets import contract
from smartgrid_assets.lake.store import PART_FILE
from smartgrid_assets.pipeline.registry import current_meters
from smartgrid_assets.platform import Platform
from smartgrid_assets.quality.suites import Partition

RELATIONS: dict[str, tuple[str, ...]] = {
    "raw_readings": ("raw_readings", "raw_series"),
    "cleaned_readings": ("cleaned_readings", "registry", "sufficiency", "cleaned_series"),
    "meters": ("meters",),
    "weather": ("weather_observed", "weather_forecast"),
    "load_forecasts": ("load_forecasts",),
}
_LAKE_SCHEMAS = {"raw_readings": contract.READINGS, "cleaned_readings": contract.CLEANED_READINGS}


def build_workspace(platform: Platform, asset: str, partition: Partition, path: Path) -> None:
    """Create the DuckDB file at `path` holding the relations `asset`'s groups validate."""
    con = duckdb.connect(str(path))
    try:
        con.execute("SET TimeZone = 'UTC'")
        for name in RELATIONS[asset]:
            _BUILDERS[name](con, platform, partition)
    finally:
        con.close()


def _create(con: duckdb.DuckDBPyConnection, name: str, data: pa.Table) -> None:
    con.register("__data", data)
    con.execute(f"CREATE TABLE {name} AS SELECT * FROM __data")
    con.unregister("__data")


def _lake(table: str):
    def build(con: duckdb.DuckDBPyConnection, platform: Platform, p: Partition) -> None:
        assert p.day is not None
        rel = f"{table}/day={p.day.isoformat()}/{PART_FILE}"
        if platform.lake.is_local and platform.lake.exists(rel):
            location = platform.lake.location(rel).replace("'", "''")
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{location}')")
            return
        schema = _LAKE_SCHEMAS[table]
        data = platform.lake.read_partition(table, p.day, schema)
        _create(con, table, data if data is not None else schema.empty_table())

    return build


def _read(platform: Platform, table: str, schema: pa.Schema, where: str, params: list) -> pa.Table:
    if not platform.warehouse.has_table(table):
        return schema.empty_table()
    return platform.warehouse.read(f"SELECT * FROM {table} WHERE {where}", params)


def _meters(con: duckdb.DuckDBPyConnection, platform: Platform, p: Partition) -> None:
    data = current_meters(platform) if platform.warehouse.has_table("meters") else None
    _create(con, "meters", data if data is not None else contract.METERS.empty_table())


def _registry(con: duckdb.DuckDBPyConnection, platform: Platform, p: Partition) -> None:
    """What the cleaned groups need of the registry (it exists: VEE has just read it)."""
    columns = "meter_id, customer_class, has_solar, installed_at, removed_at"
    _create(con, "meters", platform.warehouse.read(f"SELECT {columns} FROM meters"))


def _sufficiency(con: duckdb.DuckDBPyConnection, platform: Platform, p: Partition) -> None:
    """VEE's expected slots of the day (VEE has just written them)."""
    sql = "SELECT meter_id, channel, expected FROM meter_day_sufficiency WHERE local_day = ?"
    _create(con, "sufficiency", platform.warehouse.read(sql, [p.day]))


def _weather_observed(con: duckdb.DuckDBPyConnection, platform: Platform, p: Partition) -> None:
    schema = contract.WEATHER_OBSERVED
    data = _read(platform, "weather_observed", schema, "ts >= ? AND ts < ?", [p.start, p.end])
    _create(con, "weather_observed", data)


def _weather_forecast(con: duckdb.DuckDBPyConnection, platform: Platform, p: Partition) -> None:
    schema = contract.WEATHER_FORECAST
    window = "issued_at >= ? AND issued_at < ?"
    _create(
        con,
        "weather_forecast",
        _read(platform, "weather_forecast", schema, window, [p.start, p.end]),
    )


def _load_forecasts(con: duckdb.DuckDBPyConnection, platform: Platform, p: Partition) -> None:
    data = _read(platform, "load_forecasts", contract.LOAD_FORECASTS, "target_day = ?", [p.day])
    _create(con, "load_forecasts", data)


def _grid(con: duckdb.DuckDBPyConnection, table: str, p: Partition) -> tuple[str, int]:
    """SQL for a reading's slot on the day's grid (the gcd of its interval lengths, so two
    distinct aligned timestamps never share a slot) and the number of slots in the day."""
    assert p.start is not None
    intervals = [
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT interval_minutes FROM {table} WHERE interval_minutes > 0"
        ).fetchall()
    ]
    step = math.gcd(*intervals) if intervals else 15
    start_us = int(p.start.timestamp() * 1_000_000)
    return f"(epoch_us(ts) - {start_us}) // {step * 60_000_000}", p.minutes // step


def _distinct_slots(slots: int) -> str:
    """Distinct in-day slots of a group as the popcount of 126-bit masks: uniqueness costs one
    hash aggregate by series instead of one by (meter, ts, channel)."""
    return " + ".join(
        f"bit_count(bit_or(CASE WHEN in_day AND slot // 126 = {k} "
        f"THEN 1::HUGEINT << (slot % 126)::HUGEINT ELSE 0::HUGEINT END))"
        for k in range(math.ceil(slots / 126))
    )


_CHANNELS = ", ".join(f"'{c}'" for c in contract.CHANNELS)
_QUALITY = ", ".join(f"'{q}'" for q in contract.QUALITY_CODES)


def _raw_series(con: duckdb.DuckDBPyConnection, platform: Platform, p: Partition) -> None:
    """Per meter and channel, in one scan of the raw partition: what the raw groups judge."""
    slot, slots = _grid(con, "raw_readings", p)
    con.execute(
        f"""
        CREATE TABLE raw_series AS
        SELECT meter_id, channel, count(*) AS rows,
               sum((ts IS NULL OR interval_minutes IS NULL OR kwh IS NULL
                    OR source_file IS NULL)::INTEGER) AS null_values,
               sum((interval_minutes NOT BETWEEN 1 AND 1440)::INTEGER) AS bad_interval,
               sum((NOT in_day)::INTEGER) AS outside_day,
               min(ts) AS first_ts, max(ts) AS last_ts
        FROM (SELECT *, coalesce({slot} BETWEEN 0 AND {slots - 1}, false) AS in_day
              FROM raw_readings)
        GROUP BY meter_id, channel
        """
    )


def _cleaned_series(con: duckdb.DuckDBPyConnection, platform: Platform, p: Partition) -> None:
    """Per meter and channel, in one scan of the cleaned partition: readings, distinct slots,
    codes, alignment, value extremes of readings not marked suspect, estimates."""
    slot, slots = _grid(con, "cleaned_readings", p)
    con.execute(
        f"""
        CREATE TABLE cleaned_series AS
        SELECT meter_id, channel, min(interval_minutes) AS interval_minutes,
               count(*) AS rows,
               sum(in_day::INTEGER) AS rows_in_day,
               {_distinct_slots(slots)} AS distinct_slots,
               sum((ts IS NULL OR interval_minutes IS NULL OR kwh IS NULL OR quality IS NULL
                    OR vee_version IS NULL)::INTEGER) AS null_values,
               sum((channel NOT IN ({_CHANNELS}) OR quality NOT IN ({_QUALITY}))::INTEGER)
                   AS unknown_codes,
               sum((NOT in_day)::INTEGER) AS outside_day,
               min(ts) AS first_ts, max(ts) AS last_ts,
               sum(coalesce(epoch_us(ts) % (interval_minutes * 60000000) <> 0, true)::INTEGER)
                   AS misaligned,
               sum((quality <> 'S')::INTEGER) AS rows_not_suspect,
               sum((quality = 'E')::INTEGER) AS estimated,
               sum((trusted AND NOT isfinite(kwh))::INTEGER) AS not_finite,
               max(CASE WHEN trusted THEN kw END) AS max_kw,
               min(CASE WHEN trusted THEN kw END) AS min_kw
        FROM (
            SELECT *, {slot} AS slot,
                   coalesce({slot} BETWEEN 0 AND {slots - 1}, false) AS in_day,
                   kwh * 60.0 / nullif(interval_minutes, 0) AS kw,
                   coalesce(quality <> 'S' AND interval_minutes > 0, false) AS trusted
            FROM cleaned_readings
        )
        GROUP BY meter_id, channel
        """
    )


_BUILDERS = {
    "raw_readings": _lake("raw_readings"),
    "raw_series": _raw_series,
    "cleaned_readings": _lake("cleaned_readings"),
    "meters": _meters,
    "registry": _registry,
    "sufficiency": _sufficiency,
    "cleaned_series": _cleaned_series,
    "weather_observed": _weather_observed,
    "weather_forecast": _weather_forecast,
    "load_forecasts": _load_forecasts,
}
