"""The landed file kinds and their field rules: readings, meter registry, transformers, weather."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from smartgrid_assets import contract
from smartgrid_assets.ingest.validate import ROW, Field, read_tabular, validate

TS_EXPECTED = "an ISO 8601 timestamp with a UTC offset"
INTERVALS = (5, 10, 15, 30, 60)

READINGS_FIELDS = [
    Field("meter_id", "VARCHAR", "a meter id"),
    Field("ts", "TIMESTAMPTZ", TS_EXPECTED + " (the interval start)"),
    Field(
        "interval_minutes",
        "INTEGER",
        "interval minutes, one of " + ", ".join(map(str, INTERVALS)),
        allowed=INTERVALS,
    ),
    Field("channel", "VARCHAR", "channel delivered or received", allowed=contract.CHANNELS),
    Field(
        "kwh",
        "DOUBLE",
        "a finite number of kWh under 1,000,000 in magnitude",
        check="isfinite({v}) AND abs({v}) < 1e6",
    ),
]

METER_FIELDS = [
    Field("meter_id", "VARCHAR", "a meter id"),
    Field(
        "customer_class",
        "VARCHAR",
        "one of " + ", ".join(contract.CUSTOMER_CLASSES),
        allowed=contract.CUSTOMER_CLASSES,
    ),
    Field("transformer_id", "VARCHAR", "a transformer id", required=False),
    Field("feeder_id", "VARCHAR", "a feeder id", required=False),
    Field("substation_id", "VARCHAR", "a substation id", required=False),
    Field("region", "VARCHAR", "a weather region", required=False),
    Field("has_solar", "BOOLEAN", "true or false"),
    Field(
        "multiplier", "DOUBLE", "a positive number", required=False, check="{v} > 0", default="1"
    ),
    Field("installed_at", "TIMESTAMPTZ", TS_EXPECTED),
    Field("removed_at", "TIMESTAMPTZ", TS_EXPECTED, required=False),
    Field("lat", "DOUBLE", "a latitude in degrees", required=False, check="abs({v}) <= 90"),
    Field("lon", "DOUBLE", "a longitude in degrees", required=False, check="abs({v}) <= 180"),
]

TRANSFORMER_FIELDS = [
    Field("transformer_id", "VARCHAR", "a transformer id"),
    Field("feeder_id", "VARCHAR", "a feeder id"),
    Field("substation_id", "VARCHAR", "a substation id"),
    Field("kva_rating", "DOUBLE", "a positive kVA rating", check="{v} > 0"),
]

_TEMPERATURE = Field(
    "temperature_c", "DOUBLE", "a temperature in deg C", check="{v} BETWEEN -90 AND 60"
)
WEATHER_OBSERVED_FIELDS = [
    Field("region", "VARCHAR", "a weather region"),
    Field("ts", "TIMESTAMPTZ", TS_EXPECTED),
    _TEMPERATURE,
]
WEATHER_FORECAST_FIELDS = [
    Field("region", "VARCHAR", "a weather region"),
    Field("issued_at", "TIMESTAMPTZ", TS_EXPECTED),
    Field("ts", "TIMESTAMPTZ", TS_EXPECTED),
    _TEMPERATURE,
]


@dataclass(frozen=True)
class Kind:
    fields: list[Field]
    schema: pa.Schema
    context: tuple[str, ...] = ()


KINDS: dict[str, Kind] = {
    "readings": Kind(READINGS_FIELDS, contract.READINGS, context=("meter_id", "ts")),
    "meters": Kind(METER_FIELDS, contract.METERS),
    "transformers": Kind(TRANSFORMER_FIELDS, contract.TRANSFORMERS),
    "weather_observed": Kind(WEATHER_OBSERVED_FIELDS, contract.WEATHER_OBSERVED),
    "weather_forecast": Kind(WEATHER_FORECAST_FIELDS, contract.WEATHER_FORECAST),
}


@dataclass(frozen=True)
class ParsedFile:
    key: str
    table: pa.Table
    rejected: pa.Table

    @property
    def rows_read(self) -> int:
        return self.table.num_rows + len(set(self.rejected.column("row").to_pylist()))


def parse(kind: str, key: str, data: bytes, landed_at: datetime) -> ParsedFile:
    """Parse one landed file of a kind; raises FileRejected when the whole file is unusable."""
    spec = KINDS[kind]
    table = read_tabular(key, data, spec.fields)
    table, rows, converter_rejects = _split_converter_rejects(table, key, spec)
    checked = validate(table, spec.fields, key, context=spec.context, rows=rows)
    good = checked.good.rename_columns(
        ["source_row" if c == ROW else c for c in checked.good.column_names]
    )
    n = good.num_rows
    extra = {
        "source_file": constant(key, pa.string(), n),
        "landed_at": constant(landed_at, contract.UTC_TS, n),
    }
    for name, values in extra.items():
        if name in spec.schema.names:
            good = good.append_column(name, values)
    rejected = checked.rejected
    if converter_rejects.num_rows:
        rejected = pa.concat_tables([rejected, converter_rejects.cast(rejected.schema)]).sort_by(
            [("row", "ascending"), ("field", "ascending")]
        )
    rejected = rejected.append_column(
        "landed_at", constant(landed_at, contract.UTC_TS, rejected.num_rows)
    )
    return ParsedFile(key=key, table=contract.conform(good, spec.schema), rejected=rejected)


def _split_converter_rejects(
    table: pa.Table, key: str, spec: Kind
) -> tuple[pa.Table, pa.Array, pa.Table]:
    """The rows to validate with their row numbers, and the rows a converter landed as
    rejected (`contract.REJECT_COLUMNS` set) as rejected rows, with their meter and time where
    the converter knew them."""
    n = table.num_rows
    rows = pa.array(np.arange(1, n + 1, dtype=np.int64))
    field_col, value_col, reason_col = contract.REJECT_COLUMNS
    if reason_col not in table.column_names:
        return table, rows, pa.table({"row": pa.array([], pa.int64())})
    text = {
        name: table[name].cast(pa.string()) if name in table.column_names else pa.nulls(n)
        for name in contract.REJECT_COLUMNS
    }
    bad = pc.is_valid(text[reason_col])
    reason = text[reason_col]
    if contract.SOURCE_ROW in table.column_names:  # name the export's own row too
        export_row = table[contract.SOURCE_ROW].cast(pa.string())
        reason = pc.coalesce(
            pc.binary_join_element_wise(reason, " (export row ", export_row, ")", ""), reason
        )
    rejects = {
        "source_file": constant(key, pa.string(), n),
        "row": rows,
        "field": pc.coalesce(text[field_col], pa.scalar("row")),
        "value": text[value_col],
        "reason": reason,
    }
    for name in spec.context:
        column = table[name] if name in table.column_names else pa.nulls(n)
        target = spec.schema.field(name).type
        try:
            rejects[name] = column.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            rejects[name] = pa.nulls(n, target)
    converter = pa.table(rejects).filter(bad)
    keep = pc.invert(bad)
    return table.filter(keep), rows.filter(keep), converter


def within_range(parsed: ParsedFile, earliest: datetime, latest: datetime) -> ParsedFile:
    """Readings timed outside [earliest, latest) become rejected rows naming the range; the
    time of every such row, rejected already or not, is dropped from its context so that it
    never widens the days a run covers (its rejected rows go with every day the file has)."""
    lo, hi = pa.scalar(earliest, contract.UTC_TS), pa.scalar(latest, contract.UTC_TS)

    def outside(ts: pa.ChunkedArray) -> pa.ChunkedArray:
        return pc.fill_null(pc.or_(pc.less(ts, lo), pc.greater_equal(ts, hi)), False)

    table, rejected = parsed.table, parsed.rejected
    out = outside(table["ts"])
    late = table.filter(out)
    n = late.num_rows
    moved = pa.table(
        {
            "source_file": late["source_file"],
            "row": late["source_row"],
            "field": constant("ts", pa.string(), n),
            "value": pc.strftime(late["ts"], format="%Y-%m-%dT%H:%M:%S%z"),
            "reason": constant(
                f"expected a timestamp in [{earliest.isoformat()}, {latest.isoformat()}): from "
                "the first daily partition (SMARTGRID_START_DATE) to one day after the file "
                "landed",
                pa.string(),
                n,
            ),
            "meter_id": late["meter_id"],
            "ts": pa.nulls(n, contract.UTC_TS),
            "landed_at": late["landed_at"],
        }
    )
    kept = rejected.set_column(
        rejected.schema.get_field_index("ts"),
        "ts",
        pc.if_else(outside(rejected["ts"]), pa.scalar(None, contract.UTC_TS), rejected["ts"]),
    )
    if n:
        kept = pa.concat_tables([kept, moved.cast(kept.schema)]).sort_by(
            [("row", "ascending"), ("field", "ascending")]
        )
    return ParsedFile(key=parsed.key, table=table.filter(pc.invert(out)), rejected=kept)


def constant(value: object, type_: pa.DataType, n: int) -> pa.Array:
    """A column of one repeated value, built without a Python list of n items."""
    indices = pa.array(np.zeros(n, dtype=np.int32))
    return pa.DictionaryArray.from_arrays(indices, pa.array([value], type_)).cast(type_)


def rejected_readings(parsed_rejected: pa.Table, tz: str) -> pa.Table:
    """Rejected rows of readings files in the contract's shape, with the local day where known."""
    day = local_day(parsed_rejected.column("ts"), tz)
    table = parsed_rejected.drop_columns(["ts"]).append_column("day", day)
    return contract.conform(table, contract.REJECTED_READINGS)


def local_day(ts: pa.ChunkedArray | pa.Array, tz: str) -> pa.ChunkedArray | pa.Array:
    """The local day in `tz` of UTC instants (nulls stay null)."""
    local = pc.local_timestamp(ts.cast(pa.timestamp("us", tz=tz)))
    return pc.cast(local, pa.date32())
