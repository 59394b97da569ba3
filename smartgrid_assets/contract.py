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


def _since(version: str, f: pa.Field) -> pa.Field:
    """A nullable column added in ``version``: a table written to an older version of the
    schema may lack it, and ``conform`` fills it with nulls."""
    if not f.nullable:
        raise ValueError(f"a column added later must be nullable: {f.name}")
    return f.with_metadata({"smartgrid.since": version})


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

LANDING_PROBLEMS = _schema(
    "landing_problems",
    "1.0",
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("etag", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("quarantine_key", pa.string()),
        pa.field("found_at", UTC_TS, nullable=False),
    ],
    "Files in the landing zone under keys it cannot use (a backslash, an empty, '.' or '..' "
    "segment, a name starting with '.', a control character, too long) or cannot read: never "
    "ingested, never skipped in silence. key is as found (bytes that are not UTF-8 as \\xNN); "
    "reason names the rule broken and what is expected; quarantine_key is the copy under "
    "quarantine/_unusable_keys/ (null when it could not be copied); found_at is when the "
    "pipeline first saw this key and etag. The whole table is the zone as last listed.",
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

METER_HOURLY = _schema(
    "meter_hourly",
    "1.0",
    [
        pa.field("meter_id", pa.string(), nullable=False),
        pa.field("ts", UTC_TS, nullable=False),
        pa.field("kwh_delivered", pa.float64(), nullable=False),
        pa.field("kwh_received", pa.float64(), nullable=False),
        pa.field("kwh_net", pa.float64(), nullable=False),
        pa.field("intervals", pa.int32(), nullable=False),
        pa.field("intervals_estimated", pa.int32(), nullable=False),
        pa.field("intervals_suspect", pa.int32(), nullable=False),
    ],
    "Cleaned energy per meter and local clock hour (ts is the hour's UTC start). kwh_net is "
    "delivered minus received; intervals counts the readings behind the hour by quality.",
)

FEEDER_HOURLY = _schema(
    "feeder_hourly",
    "1.1",
    [
        pa.field("level", pa.string(), nullable=False),
        pa.field("asset_id", pa.string(), nullable=False),
        pa.field("ts", UTC_TS, nullable=False),
        pa.field("local_day", pa.date32(), nullable=False),
        pa.field("kwh", pa.float64(), nullable=False),
        pa.field("meters", pa.int32(), nullable=False),
        pa.field("intervals_estimated", pa.int32(), nullable=False),
        pa.field("intervals_suspect", pa.int32(), nullable=False),
        pa.field("region", pa.string()),
        pa.field("temperature_c", pa.float64()),
        pa.field("temperature_forecast_c", pa.float64()),
        _since("1.1", pa.field("kwh_delivered", pa.float64())),
        _since("1.1", pa.field("kwh_received", pa.float64())),
    ],
    "Net energy per hour rolled up by level (transformer, feeder, substation, system): kwh is "
    "net load, kwh_delivered (gross consumption) less kwh_received (what the meters' received "
    "channel exported), so it goes negative where generation behind the asset exceeds its "
    "load. temperature_forecast_c is the day-ahead forecast: issued at 00:00 local the day "
    "before.",
)

LOAD_FORECASTS = _schema(
    "load_forecasts",
    "1.2",
    [
        pa.field("level", pa.string(), nullable=False),
        pa.field("asset_id", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("issued_at", UTC_TS, nullable=False),
        pa.field("target_day", pa.date32(), nullable=False),
        pa.field("ts", UTC_TS, nullable=False),
        pa.field("p10", pa.float64(), nullable=False),
        pa.field("p50", pa.float64(), nullable=False),
        pa.field("p90", pa.float64(), nullable=False),
        _since("1.1", pa.field("p50_base", pa.float64())),
        _since("1.2", pa.field("quantity", pa.string())),
    ],
    "Hourly kWh forecasts as issued; quantity says what is forecast: 'net' load (feeder_hourly's "
    "kwh, delivered less received), the only one today (1.2); a later forecast for the same "
    "target never overwrites one issued earlier. p50 is reconciled bottom-up (feeders add up "
    "to substations and the system; the band moves with it); p50_base is the model's own P50 "
    "before reconciliation (1.1).",
)

FORECAST_ACCURACY = _schema(
    "forecast_accuracy",
    "1.1",
    [
        pa.field("level", pa.string(), nullable=False),
        pa.field("asset_id", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("issued_at", UTC_TS, nullable=False),
        pa.field("target_day", pa.date32(), nullable=False),
        pa.field("hours", pa.int32(), nullable=False),
        pa.field("mae", pa.float64(), nullable=False),
        pa.field("mae_naive_1d", pa.float64(), nullable=False),
        pa.field("rmae", pa.float64()),
        pa.field("coverage_p10_p90", pa.float64(), nullable=False),
        _since("1.1", pa.field("mae_base", pa.float64())),
    ],
    "Accuracy of each issued forecast once actuals exist; rmae = mae / mae_naive_1d. mae scores "
    "the reconciled p50, mae_base the model's own p50_base (1.1).",
)

FORECAST_MODEL_CHOICE = _schema(
    "forecast_model_choice",
    "1.1",
    [
        pa.field("level", pa.string(), nullable=False),
        pa.field("asset_id", pa.string(), nullable=False),
        pa.field("issued_at", UTC_TS, nullable=False),
        pa.field("target_day", pa.date32(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("days_scored", pa.int32(), nullable=False),
        pa.field("mae", pa.float64()),
        pa.field("rmae", pa.float64()),
        pa.field("gbm_version", pa.string()),
        _since("1.1", pa.field("mae_folds", pa.list_(pa.float64()))),
    ],
    "The model family chosen per series for an issue, on two rolling folds of the 28 target days "
    "before the issue whose forecasts were scored (the older and the newer 14): the lowest mean "
    "of its fold MAEs (mae; mae_folds the two, oldest first, 1.1), among the models scored on "
    "both folds, else on the days scored; gbm when none were yet. gbm_version is the "
    "registered global model the issue used.",
)

ANOMALY_EVENTS = _schema(
    "anomaly_events",
    "1.0",
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("meter_id", pa.string()),
        pa.field("asset_id", pa.string()),
        pa.field("start", UTC_TS, nullable=False),
        pa.field("end", UTC_TS, nullable=False),
        pa.field("severity", pa.string(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("evidence", pa.string(), nullable=False),
        pa.field("detector_version", pa.string(), nullable=False),
    ],
    "Anomaly events; event_id is stable across partitions and re-runs (type, subject, start), "
    "and an event that continues across days is one event. evidence is JSON.",
)


METER_DAILY = _schema(
    "meter_daily",
    "1.0",
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
    "Cleaned energy per meter and local day. peak_kw is the day's highest hourly net energy "
    "(average kW over that hour), peak_at that hour's UTC start (the first, on ties).",
)


DATA_QUALITY_REPORT = _schema(
    "data_quality_report",
    "1.0",
    [
        pa.field("local_day", pa.date32(), nullable=False),
        pa.field("feeder_id", pa.string()),
        pa.field("meters", pa.int64(), nullable=False),
        pa.field("meters_reporting", pa.int64(), nullable=False),
        pa.field("intervals_expected", pa.int64(), nullable=False),
        pa.field("intervals_actual", pa.int64(), nullable=False),
        pa.field("intervals_estimated", pa.int64(), nullable=False),
        pa.field("intervals_edited", pa.int64(), nullable=False),
        pa.field("intervals_suspect", pa.int64(), nullable=False),
        pa.field("intervals_missing", pa.int64(), nullable=False),
        pa.field("sufficiency", pa.float64()),
        pa.field("meter_channels_below_90pct", pa.int64(), nullable=False),
        pa.field("intervals_flagged", pa.int64(), nullable=False),
        pa.field("vee_flags", pa.string(), nullable=False),
        pa.field("rows_rejected", pa.int64(), nullable=False),
        pa.field("files_quarantined", pa.int64()),
        pa.field("checks_passed", pa.int64()),
        pa.field("checks_failed", pa.int64()),
    ],
    "Data quality per local day and feeder; the row with a null feeder_id is the whole day "
    "(every feeder, plus rejected rows of unknown meters, quarantined files and asset-check "
    "outcomes, which belong to no feeder). Meters without a feeder are under feeder '(none)'. "
    "Interval counts are cleaned rows by quality from the VEE sufficiency table; vee_flags is "
    "a JSON object of intervals flagged per VEE rule; sufficiency = actual / expected.",
)

DATA_QUALITY_CHECKS = _schema(
    "data_quality_checks",
    "1.0",
    [
        pa.field("local_day", pa.date32(), nullable=False),
        pa.field("asset_key", pa.string(), nullable=False),
        pa.field("check_name", pa.string(), nullable=False),
        pa.field("passed", pa.bool_(), nullable=False),
        pa.field("severity", pa.string(), nullable=False),
        pa.field("description", pa.string()),
        pa.field("evaluated_at", UTC_TS, nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
    ],
    "The latest evaluation of each Dagster asset check that judged a local day (a check of "
    "that day's partition, or one run in a run over it), as the data quality report saw it.",
)

QUALITY_HOLDS = _schema(
    "quality_holds",
    "1.0",
    [
        pa.field("local_day", pa.date32(), nullable=False),
        pa.field("asset_key", pa.string(), nullable=False),
        pa.field("check_name", pa.string(), nullable=False),
        pa.field("unexpected_count", pa.int64(), nullable=False),
        pa.field("affected_share", pa.float64()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("held_at", UTC_TS, nullable=False),
    ],
    "Local days held back by a failed blocking check: what is downstream of the asset does not "
    "build them until a re-run of the day (the late file landed) passes. One row per failed "
    "check; a day that passes has none.",
)


SCHEMAS: dict[str, pa.Schema] = {
    s.metadata[b"smartgrid.name"].decode(): s
    for s in (
        READINGS,
        CLEANED_READINGS,
        REJECTED_READINGS,
        LANDING_PROBLEMS,
        METERS,
        TRANSFORMERS,
        WEATHER_OBSERVED,
        WEATHER_FORECAST,
        METER_HOURLY,
        FEEDER_HOURLY,
        LOAD_FORECASTS,
        FORECAST_ACCURACY,
        FORECAST_MODEL_CHOICE,
        ANOMALY_EVENTS,
        METER_DAILY,
        DATA_QUALITY_REPORT,
        DATA_QUALITY_CHECKS,
        QUALITY_HOLDS,
    )
}


def schema_version(schema: pa.Schema) -> str:
    return schema.metadata[b"smartgrid.version"].decode()


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Select and cast a table's columns to a contract schema (extra columns are dropped;
    columns added by a later schema version, see ``_since``, are null where missing)."""
    for f in schema:
        if f.name not in table.column_names and f.metadata and b"smartgrid.since" in f.metadata:
            table = table.append_column(f.name, pa.nulls(table.num_rows, f.type))
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        name = schema.metadata[b"smartgrid.name"].decode()
        raise ValueError(f"table lacks contract columns {missing} of {name}")
    return table.select(schema.names).cast(schema)


def is_string(data_type: pa.DataType) -> bool:
    """A string column, plain or as a dictionary of strings."""
    if pa.types.is_dictionary(data_type):
        data_type = data_type.value_type
    return pa.types.is_string(data_type) or pa.types.is_large_string(data_type)


def dictionary_strings(schema: pa.Schema) -> pa.Schema:
    """``schema`` with its string columns as dictionaries (int32 indices): the same values
    without a string per row, for data made from a few distinct strings (VEE's output) and for
    readers that group or join by them."""
    return pa.schema(
        [
            f.with_type(pa.dictionary(pa.int32(), f.type)) if is_string(f.type) else f
            for f in schema
        ],
        metadata=schema.metadata,
    )


def project(schema: pa.Schema, names: tuple[str, ...]) -> pa.Schema:
    """`schema` restricted to `names`: what a step reads when it needs only those columns."""
    return pa.schema([schema.field(name) for name in names], metadata=schema.metadata)


#: optional columns of a landed readings file: rows a converter (`smartgrid land`) could not
#: read, landed with the field, the value as found and the reason, so they reach
#: rejected_readings instead of being left out
REJECT_COLUMNS = ("rejected_field", "rejected_value", "rejected_reason")
#: optional column of a converter's landed file: the row of the original export it came from
SOURCE_ROW = "source_row"
