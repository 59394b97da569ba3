"""Nothing lost: every row of every landed readings file is in raw_readings, in
rejected_readings, or in a file quarantined whole with its reason."""

from __future__ import annotations

import gzip
import io
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from smartgrid_assets import contract
from smartgrid_assets.days import days_between
from smartgrid_assets.pipeline.readings import ingest_raw_readings
from smartgrid_assets.pipeline.registry import load_registry
from smartgrid_assets.platform import Platform
from smartgrid_assets.settings import load_settings

START = date(2026, 3, 1)
DAY = date(2026, 3, 10)
HEADER = "meter_id,ts,interval_minutes,channel,kwh\n"
REGISTRY = (
    "meter_id,customer_class,has_solar,installed_at\n"
    "M1,residential,false,2026-01-01T00:00:00Z\n"
    "M2,residential,false,2026-01-01T00:00:00Z\n"
)


def _rows(n: int, meter: str = "M1", day: date = DAY, kwh: str = "0.25") -> list[str]:
    first = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return [
        f"{meter},{(first + timedelta(minutes=15 * i)).isoformat()},15,delivered,{kwh}"
        for i in range(n)
    ]


def _csv(rows: list[str]) -> bytes:
    return (HEADER + "".join(r + "\n" for r in rows)).encode()


def _parquet(rows: list[str]) -> bytes:
    sink = io.BytesIO()
    table = pa.csv.read_csv(io.BytesIO(_csv(rows)))
    pq.write_table(table, sink)
    return sink.getvalue()


CONVERTED = b"see _converted()"

#: (case, landed key, bytes, what must happen to its rows)
CASES: list[tuple[str, str, bytes, str]] = [
    ("good file", "readings/2026-03-11/good.csv", _csv(_rows(96)), "raw"),
    (
        "missing column",
        "readings/2026-03-11/no_kwh.csv",
        b"meter_id,ts,interval_minutes,channel\nM1,2026-03-10T00:00:00Z,15,delivered\n",
        "quarantined",
    ),
    (
        "bad timestamps",
        "readings/2026-03-11/bad_ts.csv",
        _csv(
            [*_rows(4, "M2"), "M2,yesterday,15,delivered,1", "M2,2026-03-10 01:00,15,delivered,1"]
        ),
        "raw+rejected",
    ),
    (
        "non-numeric values",
        "readings/2026-03-11/bad_kwh.csv",
        _csv([*_rows(3, "M2", date(2026, 3, 9)), "M2,2026-03-09T05:00:00Z,15,delivered,n/a"]),
        "raw+rejected",
    ),
    ("empty file", "readings/2026-03-11/empty.csv", b"", "quarantined"),
    ("header only", "readings/2026-03-11/header.csv", HEADER.encode(), "quarantined"),
    ("unknown meter", "readings/2026-03-11/unknown.csv", _csv(_rows(8, "M9")), "rejected"),
    ("Wh sent as kWh", "readings/2026-03-11/wh.csv", _csv(_rows(8, "M2", kwh="250")), "raw"),
    (
        "unsorted",
        "readings/2026-03-11/unsorted.parquet",
        _parquet(list(reversed(_rows(12, "M2", date(2026, 3, 8))))),
        "raw",
    ),
    ("corrupt gzip", "readings/2026-03-11/corrupt.csv.gz", b"\x1f\x8bnot gzip", "quarantined"),
    ("junk bytes", "readings/2026-03-11/junk.csv", os.urandom(2000), "quarantined"),
    (
        "rows dated 1970 and 2999",
        "readings/2026-03-11/epoch.csv",
        _csv(
            [
                *_rows(4, "M2", date(2026, 3, 7)),
                "M2,1970-01-01T00:00:00Z,15,delivered,1",
                "M2,2999-01-01T00:00:00Z,15,delivered,1",
                "M2,1970-01-01T00:15:00Z,15,delivered,oops",
            ]
        ),
        "raw+rejected",
    ),
    (
        "a converter's rejected rows",
        "readings/2026-03-11/converted.parquet",
        CONVERTED,
        "raw+rejected",
    ),
]


def _converted() -> bytes:
    table = pa.table(
        {
            "meter_id": ["M1", "M1", None],
            "ts": pa.array([datetime(2026, 3, 6, tzinfo=UTC), None, None], contract.UTC_TS),
            "interval_minutes": pa.array([15, 15, None], pa.int32()),
            "channel": ["delivered", "delivered", None],
            "kwh": [1.0, None, None],
            "rejected_field": [None, "Value", "Time"],
            "rejected_value": [None, "1,5,2", "31/02/2026 25:00"],
            "rejected_reason": [None, "expected a number", "expected a date and time"],
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _rows_in(data: bytes, key: str) -> int | None:
    """Data rows of a file as its sender counts them (None when it cannot be read at all)."""
    try:
        if key.endswith(".parquet"):
            return pq.read_metadata(io.BytesIO(data)).num_rows
        text = gzip.decompress(data) if key.endswith(".gz") else data
        return max(len(text.decode().strip().splitlines()) - 1, 0) if text.strip() else 0
    except (OSError, UnicodeDecodeError, pa.ArrowException):
        return None


@pytest.fixture
def platform(tmp_path: Path) -> Platform:
    settings = load_settings(
        {"SMARTGRID_HOME": str(tmp_path), "SMARTGRID_START_DATE": START.isoformat()}
    )
    platform = Platform(settings)
    platform.landing.put("registry/2026-03-01/meters.csv", REGISTRY.encode())
    load_registry(platform)
    return platform


def test_every_landed_row_is_in_raw_rejected_or_a_quarantined_file(platform: Platform) -> None:
    landed = {}
    for case, key, data, _ in CASES:
        data = _converted() if data is CONVERTED else data
        platform.landing.put(key, data)
        landed[key] = (case, data)
    # re-landing an identical file under another key adds nothing
    platform.landing.put("readings/2026-03-12/good_again.csv", CASES[0][2])
    days = days_between(START, DAY + timedelta(days=2))
    ingest_raw_readings(platform, days)
    ingest_raw_readings(platform, days)  # a re-run gives the same tables

    raw = platform.lake.read_days("raw_readings", days, contract.READINGS)
    rejected = platform.warehouse.read("SELECT source_file, row, reason FROM rejected_readings")
    quarantined = {q["key"]: q for q in platform.landing.quarantined()}
    raw_rows = dict(zip(*_counts(raw["source_file"]), strict=True))
    distinct = rejected.group_by(["source_file", "row"]).aggregate([])
    rejected_rows = dict(zip(*_counts(distinct["source_file"]), strict=True))

    table = []
    for key, (case, data) in landed.items():
        expected = next(c[3] for c in CASES if c[1] == key)
        n_raw, n_rejected = raw_rows.get(key, 0), rejected_rows.get(key, 0)
        if key in quarantined:
            outcome, lost = "quarantined", 0
            assert quarantined[key]["reason"], case
        else:
            outcome = "+".join(part for part, n in (("raw", n_raw), ("rejected", n_rejected)) if n)
            lost = (_rows_in(data, key) or 0) - n_raw - n_rejected
        table.append((case, outcome, lost))
        assert outcome == expected, (case, outcome)
        assert lost == 0, (case, n_raw, n_rejected)
    assert "readings/2026-03-12/good_again.csv" not in raw_rows, "identical content read once"
    assert raw.num_rows == sum(raw_rows.values())


def test_out_of_range_rows_name_the_range_and_never_widen_the_days(platform: Platform) -> None:
    key = "readings/2026-03-11/epoch.csv"
    platform.landing.put(key, next(c[2] for c in CASES if c[1] == key))
    platform.catalog.refresh()
    entry = platform.catalog.index().to_pylist()[0]
    assert entry["min_ts"].date() == date(2026, 3, 7) and entry["max_ts"].date() == date(2026, 3, 7)
    ingest_raw_readings(platform, [date(2026, 3, 7)])
    rejected = platform.warehouse.read(
        "SELECT row, field, value, reason, day FROM rejected_readings ORDER BY row"
    ).to_pylist()
    assert [r["row"] for r in rejected] == [5, 6, 7]
    assert all(r["day"] is None for r in rejected), "no day of 1970 or 2999 to run"
    by_row = {r["row"]: r for r in rejected}
    assert "[2026-03-01T00:00:00+00:00, " in by_row[5]["reason"]
    assert "SMARTGRID_START_DATE" in by_row[6]["reason"]
    assert by_row[7]["field"] == "kwh"


def test_a_junk_file_reason_names_the_line_or_byte(platform: Platform) -> None:
    platform.landing.put("readings/2026-03-11/junk.csv", b"\xff\xfe\x00garbage")
    platform.landing.put(
        "readings/2026-03-11/ragged.csv", _csv([*_rows(2), "M1,2026-03-10T01:00:00Z"])
    )
    platform.catalog.refresh()
    reasons = {q["key"]: q for q in platform.landing.quarantined()}
    junk = reasons["readings/2026-03-11/junk.csv"]
    assert "byte offset 0 (line 1)" in junk["reason"]
    assert junk["details"]["byte_offset"] == 0
    ragged = reasons["readings/2026-03-11/ragged.csv"]
    assert "line 4 has 2 fields, the header 5" in ragged["reason"]


def _counts(column: pa.ChunkedArray) -> tuple[list[str], list[int]]:
    counts = pc.value_counts(column).to_pylist()
    return [c["values"] for c in counts], [c["counts"] for c in counts]
