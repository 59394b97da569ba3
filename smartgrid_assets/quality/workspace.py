"""The DuckDB file a batch of partitions' expectations run in: the data where it is, plus what
the aggregate expectations compare it with, every row with the `local_day` it is about.

Readings-level partitions stay in the lake: a local lake file is scanned in place by
`read_parquet`; an S3 lake file is read with pyarrow (no httpfs) and handed to DuckDB as Arrow.
Warehouse rows of the days (registry, VEE sufficiency, weather, forecasts) are small and come
through the warehouse layer, DuckDB or PostgreSQL alike. `cleaned_series` is computed here, in
one DuckDB pass per day, so the per-series expectations read one row per meter and channel and
day rather than re-scanning millions for every expectation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from smartgrid_assets import contract
from smartgrid_assets.days import day_bounds_utc
from smartgrid_assets.ingest.files import local_day
from smartgrid_assets.lake.store import PART_FILE
from smartgrid_assets.pipeline.registry import current_meters
from smartgrid_assets.platform import Platform

RELATIONS: dict[str, tuple[str, ...]] = {
    "raw_readings": ("raw_series",),
    "cleaned_readings": ("registry", "sufficiency", "cleaned_series"),
    "meters": ("meters",),
    "weather": ("weather_observed", "weather_forecast"),
    "load_forecasts": ("load_forecasts",),
}
_LAKE_SCHEMAS = {"raw_readings": contract.READINGS, "cleaned_readings": contract.CLEANED_READINGS}


@dataclass(frozen=True)
class Day:
    local_day: date
    start: datetime
    end: datetime

    @property
    def minutes(self) -> int:
        """Length of the local day in minutes (1380, 1440 or 1500 across DST)."""
        return int((self.end - self.start).total_seconds() // 60)


def build_workspace(platform: Platform, asset: str, days: list[date] | None, path: Path) -> None:
    """Create the DuckDB file at `path` holding the relations `asset`'s groups validate, for
    every day of `days` (a batch), each row with its `local_day`, and the table `days`."""
    batch = [Day(d, *day_bounds_utc(d, platform.tz)) for d in days or []]
    con = duckdb.connect(str(path))
    try:
        con.execute("SET TimeZone = 'UTC'")
        _create(
            con,
            "days",
            pa.table(
                {
                    "local_day": pa.array([d.local_day for d in batch], pa.date32()),
                    "day_start": pa.array([d.start for d in batch], contract.UTC_TS),
                    "day_end": pa.array([d.end for d in batch], contract.UTC_TS),
                    "minutes": pa.array([d.minutes for d in batch], pa.int32()),
                }
            ),
        )
        for name in RELATIONS[asset]:
            _BUILDERS[name](con, platform, batch)
    finally:
        con.close()


def _create(con: duckdb.DuckDBPyConnection, name: str, data: pa.Table) -> None:
    con.register("__data", data)
    con.execute(f"CREATE TABLE {name} AS SELECT * FROM __data")
    con.unregister("__data")


def _with_day(data: pa.Table, column: str, tz: str) -> pa.Table:
    """`data` with `local_day`, the local day of its `column` in `tz`."""
    return data.append_column("local_day", local_day(data[column], tz))


def _lake_day(con: duckdb.DuckDBPyConnection, platform: Platform, table: str, day: date) -> None:
    """The day's lake partition as the view `day_readings`: scanned in place from a local
    lake, read with pyarrow (no httpfs) from S3."""
    rel = f"{table}/day={day.isoformat()}/{PART_FILE}"
    con.execute("DROP VIEW IF EXISTS day_readings")
    if platform.lake.is_local and platform.lake.exists(rel):
        location = platform.lake.location(rel).replace("'", "''")
        con.execute(f"CREATE VIEW day_readings AS SELECT * FROM read_parquet('{location}')")
        return
    schema = _LAKE_SCHEMAS[table]
    data = platform.lake.read_partition(table, day, schema)
    con.register("__day", data if data is not None else schema.empty_table())
    con.execute("CREATE VIEW day_readings AS SELECT * FROM __day")


def _read(platform: Platform, table: str, schema: pa.Schema, where: str, params: list) -> pa.Table:
    if not platform.warehouse.has_table(table):
        return schema.empty_table()
    return platform.warehouse.read(f"SELECT * FROM {table} WHERE {where}", params)


def _meters(con: duckdb.DuckDBPyConnection, platform: Platform, batch: list[Day]) -> None:
    data = current_meters(platform) if platform.warehouse.has_table("meters") else None
    _create(con, "meters", data if data is not None else contract.METERS.empty_table())


def _registry(con: duckdb.DuckDBPyConnection, platform: Platform, batch: list[Day]) -> None:
    """What the cleaned groups need of the registry (it exists: VEE has just read it)."""
    columns = "meter_id, customer_class, has_solar, installed_at, removed_at"
    _create(con, "meters", platform.warehouse.read(f"SELECT {columns} FROM meters"))


def _sufficiency(con: duckdb.DuckDBPyConnection, platform: Platform, batch: list[Day]) -> None:
    """VEE's expected slots of the days (VEE has just written them)."""
    sql = (
        "SELECT local_day, meter_id, channel, expected FROM meter_day_sufficiency "
        "WHERE local_day IN (SELECT unnest(?))"
    )
    _create(con, "sufficiency", platform.warehouse.read(sql, [[d.local_day for d in batch]]))


def _weather_observed(con: duckdb.DuckDBPyConnection, platform: Platform, batch: list[Day]) -> None:
    schema = contract.WEATHER_OBSERVED
    window = [batch[0].start, batch[-1].end]
    data = _read(platform, "weather_observed", schema, "ts >= ? AND ts < ?", window)
    _create(con, "weather_observed", _with_day(data, "ts", platform.tz))


def _weather_forecast(con: duckdb.DuckDBPyConnection, platform: Platform, batch: list[Day]) -> None:
    schema = contract.WEATHER_FORECAST
    window = [batch[0].start, batch[-1].end]
    data = _read(platform, "weather_forecast", schema, "issued_at >= ? AND issued_at < ?", window)
    _create(con, "weather_forecast", _with_day(data, "issued_at", platform.tz))


def _load_forecasts(con: duckdb.DuckDBPyConnection, platform: Platform, batch: list[Day]) -> None:
    days = [[d.local_day for d in batch]]
    where = "target_day IN (SELECT unnest(?))"
    data = _read(platform, "load_forecasts", contract.LOAD_FORECASTS, where, days)
    _create(con, "load_forecasts", data.append_column("local_day", data["target_day"]))


def _grid(con: duckdb.DuckDBPyConnection, day: Day) -> tuple[str, int]:
    """SQL for a reading's slot on the day's grid (the gcd of its interval lengths, so two
    distinct aligned timestamps never share a slot) and the number of slots in the day."""
    intervals = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT interval_minutes FROM day_readings WHERE interval_minutes > 0"
        ).fetchall()
    ]
    step = math.gcd(*intervals) if intervals else 15
    start_us = int(day.start.timestamp() * 1_000_000)
    return f"(epoch_us(ts) - {start_us}) // {step * 60_000_000}", day.minutes // step


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


def _series(lake_table: str, name: str, columns: Callable[[int], str]):
    """A builder of `name`: per day, meter and channel, one scan of the day's lake partition
    for the aggregates `columns(slots)` (over rows with `slot` and `in_day`)."""

    def build(con: duckdb.DuckDBPyConnection, platform: Platform, batch: list[Day]) -> None:
        for i, day in enumerate(batch):
            _lake_day(con, platform, lake_table, day.local_day)
            slot, slots = _grid(con, day)
            select = f"""
                SELECT DATE '{day.local_day.isoformat()}' AS local_day, meter_id, channel,
                       {columns(slots)}
                FROM (SELECT *, {slot} AS slot,
                             coalesce({slot} BETWEEN 0 AND {slots - 1}, false) AS in_day,
                             kwh * 60.0 / nullif(interval_minutes, 0) AS kw
                      FROM day_readings)
                GROUP BY meter_id, channel
            """
            con.execute(
                f"CREATE TABLE {name} AS {select}" if i == 0 else f"INSERT INTO {name} {select}"
            )
        if not batch:
            con.execute(f"CREATE TABLE {name} (local_day DATE, meter_id VARCHAR, channel VARCHAR)")
        con.execute("DROP VIEW IF EXISTS day_readings")

    return build


def _raw_columns(slots: int) -> str:
    """What the raw groups judge."""
    return """count(*) AS rows,
        sum((ts IS NULL OR interval_minutes IS NULL OR kwh IS NULL
             OR source_file IS NULL)::INTEGER) AS null_values,
        sum((interval_minutes NOT BETWEEN 1 AND 1440)::INTEGER) AS bad_interval,
        sum((NOT in_day)::INTEGER) AS outside_day,
        min(ts) AS first_ts, max(ts) AS last_ts"""


def _cleaned_columns(slots: int) -> str:
    """Readings, distinct slots, codes, alignment, value extremes of readings not marked
    suspect, estimates."""
    trusted = "coalesce(quality <> 'S' AND interval_minutes > 0, false)"
    return f"""min(interval_minutes) AS interval_minutes,
        count(*) AS rows,
        sum(in_day::INTEGER) AS rows_in_day,
        {_distinct_slots(slots)} AS distinct_slots,
        sum((ts IS NULL OR interval_minutes IS NULL OR kwh IS NULL OR quality IS NULL
             OR vee_version IS NULL)::INTEGER) AS null_values,
        sum((channel NOT IN ({_CHANNELS}) OR quality NOT IN ({_QUALITY}))::INTEGER)
            AS unknown_codes,
        sum((NOT in_day)::INTEGER) AS outside_day,
        min(ts) AS first_ts, max(ts) AS last_ts,
        sum(coalesce(epoch_us(ts) % (interval_minutes::BIGINT * 60000000) <> 0, true)::INTEGER)
            AS misaligned,
        sum((quality <> 'S')::INTEGER) AS rows_not_suspect,
        sum((quality = 'E')::INTEGER) AS estimated,
        sum(({trusted} AND NOT isfinite(kwh))::INTEGER) AS not_finite,
        max(CASE WHEN {trusted} THEN kw END) AS max_kw,
        min(CASE WHEN {trusted} THEN kw END) AS min_kw"""


_BUILDERS = {
    "raw_series": _series("raw_readings", "raw_series", _raw_columns),
    "meters": _meters,
    "registry": _registry,
    "sufficiency": _sufficiency,
    "cleaned_series": _series("cleaned_readings", "cleaned_series", _cleaned_columns),
    "weather_observed": _weather_observed,
    "weather_forecast": _weather_forecast,
    "load_forecasts": _load_forecasts,
}
