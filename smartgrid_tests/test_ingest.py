"""Parsing landed files: every bad input gets a reason naming file, row and field."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from smartgrid_assets import contract
from smartgrid_assets.ingest.files import parse, rejected_readings
from smartgrid_assets.ingest.validate import FileRejected

LANDED = datetime(2026, 3, 20, 6, 0, tzinfo=UTC)
HEADER = "meter_id,ts,interval_minutes,channel,kwh\n"


def _csv(*rows: str) -> bytes:
    return (HEADER + "".join(r + "\n" for r in rows)).encode()


def test_good_csv_conforms_to_the_contract() -> None:
    parsed = parse(
        "readings",
        "readings/a.csv",
        _csv(
            "M1,2026-03-16T00:00:00+00:00,15,delivered,0.25",
            "M1,2026-03-16T00:15:00Z,15,received,1",
        ),
        LANDED,
    )
    assert parsed.table.schema == contract.READINGS
    assert parsed.table["kwh"].to_pylist() == [0.25, 1.0]
    assert parsed.table["source_row"].to_pylist() == [1, 2]
    assert parsed.table["source_file"].to_pylist() == ["readings/a.csv"] * 2
    assert parsed.rejected.num_rows == 0


def test_bad_rows_are_rejected_with_file_row_field_and_the_rest_goes_on() -> None:
    parsed = parse(
        "readings",
        "readings/bad.csv",
        _csv(
            "M1,2026-03-16T00:00:00+00:00,15,delivered,0.25",
            "M1,not-a-time,15,delivered,0.25",
            "M1,2026-03-16T00:30:00+00:00,15,delivered,lots",
            "M1,2026-03-16 00:45:00,15,delivered,0.25",
            "M1,2026-03-16T01:00:00+00:00,7,upwards,0.25",
            ",2026-03-16T01:15:00+00:00,15,delivered,0.25",
        ),
        LANDED,
    )
    assert parsed.table["source_row"].to_pylist() == [1]
    rejected = {(r["row"], r["field"]): r for r in parsed.rejected.to_pylist()}
    assert set(rejected) == {
        (2, "ts"),
        (3, "kwh"),
        (4, "ts"),
        (5, "interval_minutes"),
        (5, "channel"),
        (6, "meter_id"),
    }
    assert all(r["source_file"] == "readings/bad.csv" for r in rejected.values())
    assert rejected[(2, "ts")]["value"] == "not-a-time"
    assert "ISO 8601" in rejected[(2, "ts")]["reason"]
    assert rejected[(3, "kwh")]["value"] == "lots"
    assert "number" in rejected[(3, "kwh")]["reason"]
    assert "UTC offset" in rejected[(4, "ts")]["reason"], "a naive timestamp is not proof of UTC"
    assert rejected[(6, "meter_id")]["reason"].startswith("missing value")
    assert parsed.rows_read == 6


def test_rejected_rows_get_the_local_day_where_the_timestamp_is_readable() -> None:
    parsed = parse(
        "readings",
        "readings/bad.csv",
        _csv("M1,2026-03-16T23:30:00+00:00,15,delivered,x", "M1,garbage,15,delivered,x"),
        LANDED,
    )
    table = rejected_readings(parsed.rejected, "Europe/Berlin")
    assert table.schema == contract.REJECTED_READINGS
    days = {(r["row"], r["field"]): r["day"] for r in table.to_pylist()}
    assert days[(1, "kwh")].isoformat() == "2026-03-17", "23:30 UTC is the next local day in Berlin"
    assert days[(2, "ts")] is None


@pytest.mark.parametrize(
    ("key", "data", "expected"),
    [
        ("readings/empty.csv", b"", "empty file"),
        ("readings/header-only.csv", HEADER.encode(), "no data rows"),
        (
            "readings/short.csv",
            b"meter_id,ts,kwh\nM1,2026-03-16T00:00:00Z,1\n",
            "missing column(s) interval_minutes, channel",
        ),
        ("readings/corrupt.parquet", b"PAR1 this is not parquet", "corrupt Parquet"),
        ("readings/notes.txt", b"hello", "unsupported file type"),
    ],
)
def test_unusable_files_are_rejected_whole_with_a_reason(
    key: str, data: bytes, expected: str
) -> None:
    with pytest.raises(FileRejected) as info:
        parse("readings", key, data, LANDED)
    assert expected in info.value.reason


def test_parquet_with_naive_timestamps_is_rejected_whole() -> None:
    sink = io.BytesIO()
    table = pa.table(
        {
            "meter_id": ["M1"],
            "ts": pa.array([datetime(2026, 3, 16)], pa.timestamp("us")),
            "interval_minutes": [15],
            "channel": ["delivered"],
            "kwh": [0.1],
        }
    )
    pq.write_table(table, sink)
    with pytest.raises(FileRejected, match="without time zone"):
        parse("readings", "readings/naive.parquet", sink.getvalue(), LANDED)


def test_typed_parquet_with_bad_values_keeps_good_rows() -> None:
    sink = io.BytesIO()
    table = pa.table(
        {
            "meter_id": ["M1", "M1"],
            "ts": pa.array([datetime(2026, 3, 16, tzinfo=UTC)] * 2, contract.UTC_TS),
            "interval_minutes": pa.array([15, 15], pa.int32()),
            "channel": ["delivered", "delivered"],
            "kwh": [0.1, float("nan")],
        }
    )
    pq.write_table(table, sink)
    parsed = parse("readings", "readings/x.parquet", sink.getvalue(), LANDED)
    assert parsed.table.num_rows == 1
    assert parsed.rejected.to_pylist()[0]["row"] == 2
    assert parsed.rejected.to_pylist()[0]["field"] == "kwh"


def test_registry_defaults_and_rejects() -> None:
    data = (
        b"meter_id,customer_class,transformer_id,feeder_id,substation_id,has_solar,installed_at\n"
        b"M1,residential,TX1,F1,S1,false,2025-01-01T00:00:00+00:00\n"
        b"M2,household,TX1,F1,S1,maybe,2025-01-01T00:00:00+00:00\n"
    )
    parsed = parse("meters", "registry/meters.csv", data, LANDED)
    assert parsed.table.schema == contract.METERS
    assert parsed.table["multiplier"].to_pylist() == [1.0]
    assert {(r["row"], r["field"]) for r in parsed.rejected.to_pylist()} == {
        (2, "customer_class"),
        (2, "has_solar"),
    }
