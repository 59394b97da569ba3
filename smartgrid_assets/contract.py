"""Canonical schemas of the data contract, as versioned pyarrow schemas.

A schema's version changes whenever a column is added, removed or changes meaning; the version
travels in the schema metadata so every Parquet file in the lake says which contract wrote it.
"""

from __future__ import annotations

import pyarrow as pa

UTC_TS = pa.timestamp("us", tz="UTC")

CHANNELS = ("delivered", "received")
CUSTOMER_CLASSES = ("residential", "commercial", "industrial", "unknown")
QUALITY_CODES = {
    "A": "actual",
    "E": "estimated (a value filled in)",
    "X": "edited (a value corrected)",
    "S": "suspect (kept as read, flagged for review)",
}


def _schema(name: str, version: str, fields: list[pa.Field], doc: str) -> pa.Schema:
    return pa.schema(
        fields, metadata={"smartgrid.name": name, "smartgrid.version": version, "doc": doc}
    )


READINGS = _schema(
    "readings",
    "1.0",
    [
        pa.field("meter_id", pa.string(), nullable=False),
        pa.field("ts", UTC_TS, nullable=False),
        pa.field("interval_minutes", pa.int32(), nullable=False),
        pa.field("channel", pa.string(), nullable=False),
        pa.field("kwh", pa.float64(), nullable=False),
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("source_row", pa.int64(), nullable=False),
        pa.field("landed_at", UTC_TS, nullable=False),
    ],
    "Interval energy as landed. ts is the UTC interval start; source_row the 1-based data row "
    "of source_file; landed_at orders duplicate files.",
)

CLEANED_READINGS = _schema(
    "cleaned_readings",
    "1.0",
    [
        pa.field("meter_id", pa.string(), nullable=False),
        pa.field("ts", UTC_TS, nullable=False),
        pa.field("interval_minutes", pa.int32(), nullable=False),
        pa.field("channel", pa.string(), nullable=False),
        pa.field("kwh", pa.float64(), nullable=False),
        pa.field("source_file", pa.string()),
        pa.field("quality", pa.string(), nullable=False),
        pa.field("vee_rules", pa.list_(pa.string()), nullable=False),
        pa.field("vee_version", pa.string(), nullable=False),
        pa.field("kwh_raw", pa.float64()),
        pa.field("ts_raw", UTC_TS),
    ],
    "Readings after VEE: one row per meter, channel and interval. kwh_raw and ts_raw keep the "
    "values as landed (null for estimates), so every edit is auditable and reversible.",
)

REJECTED_READINGS = _schema(
    "rejected_readings",
    "1.0",
    [
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("row", pa.int64(), nullable=False),
        pa.field("field", pa.string(), nullable=False),
        pa.field("value", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("meter_id", pa.string()),
        pa.field("day", pa.date32()),
        pa.field("landed_at", UTC_TS, nullable=False),
    ],
    "Rows of readable files that break the contract, one row per bad field. row is the 1-based "
    "data row (header excluded) of the source file; day is the local day of the row's timestamp "
    "when it could be read.",
)

METERS = _schema(
    "meters",
    "1.0",
    [
        pa.field("meter_id", pa.string(), nullable=False),
        pa.field("customer_class", pa.string(), nullable=False),
        pa.field("transformer_id", pa.string()),
        pa.field("feeder_id", pa.string()),
        pa.field("substation_id", pa.string()),
        pa.field("region", pa.string()),
        pa.field("has_solar", pa.bool_(), nullable=False),
        pa.field("multiplier", pa.float64(), nullable=False),
        pa.field("installed_at", UTC_TS, nullable=False),
        pa.field("removed_at", UTC_TS),
        pa.field("lat", pa.float64()),
        pa.field("lon", pa.float64()),
    ],
    "The meter registry. A meter reports in [installed_at, removed_at).",
)

TRANSFORMERS = _schema(
    "transformers",
    "1.0",
    [
        pa.field("transformer_id", pa.string(), nullable=False),
        pa.field("feeder_id", pa.string(), nullable=False),
        pa.field("substation_id", pa.string(), nullable=False),
        pa.field("kva_rating", pa.float64(), nullable=False),
    ],
    "Distribution transformers and their nameplate rating.",
)

WEATHER_OBSERVED = _schema(
    "weather_observed",
    "1.0",
    [
        pa.field("region", pa.string(), nullable=False),
        pa.field("ts", UTC_TS, nullable=False),
        pa.field("temperature_c", pa.float64(), nullable=False),
    ],
    "Observed hourly temperature per weather region.",
)

WEATHER_FORECAST = _schema(
    "weather_forecast",
    "1.0",
    [
        pa.field("region", pa.string(), nullable=False),
        pa.field("issued_at", UTC_TS, nullable=False),
        pa.field("ts", UTC_TS, nullable=False),
        pa.field("temperature_c", pa.float64(), nullable=False),
    ],
    "Forecast temperature as issued, so a forecast only uses what was known at issued_at.",
)

SCHEMAS: dict[str, pa.Schema] = {
    s.metadata[b"smartgrid.name"].decode(): s
    for s in (
        READINGS,
        CLEANED_READINGS,
        REJECTED_READINGS,
        METERS,
        TRANSFORMERS,
        WEATHER_OBSERVED,
        WEATHER_FORECAST,
    )
}


def schema_version(schema: pa.Schema) -> str:
    return schema.metadata[b"smartgrid.version"].decode()


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Select and cast a table's columns to a contract schema (extra columns are dropped)."""
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        name = schema.metadata[b"smartgrid.name"].decode()
        raise ValueError(f"table lacks contract columns {missing} of {name}")
    return table.select(schema.names).cast(schema)
