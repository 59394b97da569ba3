"""Load observed weather and weather forecasts (as issued) for local days."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pyarrow as pa

from smartgrid_assets import contract
from smartgrid_assets.days import day_bounds_utc
from smartgrid_assets.ingest.files import parse
from smartgrid_assets.ingest.validate import FileRejected
from smartgrid_assets.platform import Platform
from smartgrid_assets.scratch import connect
from smartgrid_assets.warehouse import Window

WEATHER_PREFIX = "weather/"
# table -> (word in the file name, column that places a row in a local day)
KINDS = {"weather_observed": ("observed", "ts"), "weather_forecast": ("forecast", "issued_at")}
REJECTED_COLUMNS = ["source_file", "row", "field", "value", "reason"]


@dataclass(frozen=True)
class WeatherLoad:
    rows: dict[str, int]
    files: list[str]
    rejected: pa.Table
    quarantined: list[dict]


def load_weather(platform: Platform, days: list[date]) -> WeatherLoad:
    """Replace the window's weather rows: observations by `ts`, forecasts by `issued_at`.

    When two landed files hold the same reading, the later landed file wins.
    """
    start, _ = day_bounds_utc(days[0], platform.tz)
    _, end = day_bounds_utc(days[-1], platform.tz)
    listed = sorted(platform.landing.list(WEATHER_PREFIX), key=lambda f: (f.last_modified, f.key))
    rows: dict[str, int] = {}
    used: list[str] = []
    rejected: list[pa.Table] = []
    quarantined: list[dict] = []
    for table_name, (word, day_column) in KINDS.items():
        parts: list[pa.Table] = []
        for order, file in enumerate(f for f in listed if word in f.key.rsplit("/", 1)[-1]):
            data = platform.landing.read_bytes(file.key)
            try:
                parsed = parse(table_name, file.key, data, file.last_modified)
            except FileRejected as exc:
                platform.landing.quarantine(file, exc.reason, dict(exc.details))
                quarantined.append({"key": file.key, "reason": exc.reason})
                continue
            rejected.append(parsed.rejected.select(REJECTED_COLUMNS))
            parts.append(
                parsed.table.append_column(
                    "landing_order", pa.array([order] * parsed.table.num_rows)
                )
            )
            used.append(file.key)
        table = _latest_in_window(parts, contract.SCHEMAS[table_name], day_column, start, end)
        platform.warehouse.replace(table_name, table, window=Window(day_column, start, end))
        rows[table_name] = table.num_rows
    return WeatherLoad(
        rows=rows,
        files=used,
        rejected=pa.concat_tables(rejected) if rejected else _empty_rejected(),
        quarantined=quarantined,
    )


def _empty_rejected() -> pa.Table:
    return contract.REJECTED_READINGS.empty_table().select(REJECTED_COLUMNS)


def _latest_in_window(
    parts: list[pa.Table], schema: pa.Schema, day_column: str, start, end
) -> pa.Table:
    if not parts:
        return schema.empty_table()
    keys = ", ".join(c for c in schema.names if c != "temperature_c")
    con = connect()
    try:
        con.register("landed", pa.concat_tables(parts))
        table = con.sql(
            f"SELECT {', '.join(schema.names)} FROM landed "
            f"WHERE {day_column} >= ? AND {day_column} < ? "
            f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY landing_order DESC) = 1 "
            f"ORDER BY {keys}",
            params=[start, end],
        ).to_arrow_table()
    finally:
        con.close()
    return contract.conform(table, schema)
