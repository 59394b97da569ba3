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
    checked = validate(table, spec.fields, key, context=spec.context)
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
    rejected = rejected.append_column(
        "landed_at", constant(landed_at, contract.UTC_TS, rejected.num_rows)
    )
    return ParsedFile(key=key, table=contract.conform(good, spec.schema), rejected=rejected)


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
