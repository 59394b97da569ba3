"""In-process materialization of the first assets on a synthetic utility: two partitions,
idempotency, bad input, and the S3 backend."""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from smartgrid_assets import contract, vee
from smartgrid_assets.definitions import defs
from smartgrid_assets.demo import partition_range_tags
from smartgrid_assets.pipeline import readings as readings_pipeline
from smartgrid_assets.pipeline.land import land_tree
from smartgrid_assets.platform import Platform
from smartgrid_assets.settings import Settings, load_settings
from smartgrid_assets.synth import synthesize
from smartgrid_tests.conftest import TEST_TZ

START = date(2026, 3, 27)
DST_DAY = date(2026, 3, 29)  # 23 local hours in Europe/Berlin: 92 quarter hours
ASSETS = list(defs.assets or [])


@pytest.fixture(scope="module")
def utility(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("utility")
    synthesize(out, meters=60, days=5, interval_minutes=15, seed=11, tz=TEST_TZ, start=START)
    return out


def _platform(settings: Settings) -> Platform:
    return Platform(dataclasses.replace(settings, tz=TEST_TZ))


@pytest.fixture
def platform(tmp_path: Path) -> Platform:
    return _platform(load_settings({"SMARTGRID_HOME": str(tmp_path)}))


def _materialize(
    platform: Platform, selection: list[str], first: date | None = None, last: date | None = None
):
    tags = partition_range_tags(first, last or first) if first else None
    result = dg.materialize(
        ASSETS, selection=selection, resources={"platform": platform}, tags=tags
    )
    assert result.success
    return {
        e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }


def _run_all(platform: Platform, first: date, last: date) -> dict:
    _materialize(platform, ["meters"])
    return _materialize(platform, ["weather", "raw_readings", "cleaned_readings"], first, last)


def _lake(platform: Platform, table: str, day: date) -> pa.Table:
    result = platform.lake.read_partition(table, day)
    assert result is not None, f"{table} {day} missing"
    return result


def test_two_partitions_raw_to_cleaned(platform: Platform, utility: Path) -> None:
    land_tree(platform.landing, utility)
    meta = _run_all(platform, date(2026, 3, 28), DST_DAY)

    for day in (date(2026, 3, 28), DST_DAY):
        raw = _lake(platform, "raw_readings", day)
        cleaned = _lake(platform, "cleaned_readings", day)
        assert raw.schema.equals(contract.READINGS, check_metadata=False)
        # stored as the contract's schema with its strings as dictionaries
        assert cleaned.schema.equals(vee.CLEANED_ARROW, check_metadata=False)
        assert raw.num_rows > 0 and cleaned.num_rows > 0
        keys = cleaned.group_by(["meter_id", "channel", "ts"]).aggregate([]).num_rows
        assert keys == cleaned.num_rows, "one cleaned row per meter, channel and interval"
        assert set(cleaned["quality"].to_pylist()) <= {"A", "E", "X", "S"}
    assert platform.lake.read_partition("raw_readings", date(2026, 3, 30)) is None

    cleaned = _lake(platform, "cleaned_readings", DST_DAY)
    per_series = cleaned.group_by(["meter_id", "channel"]).aggregate([("ts", "count")])
    assert max(per_series["ts_count"].to_pylist()) == 92, "the spring DST day has 92 quarter hours"

    raw_meta, cleaned_meta = meta["raw_readings"], meta["cleaned_readings"]
    assert raw_meta["rows"].value == sum(
        _lake(platform, "raw_readings", d).num_rows for d in (date(2026, 3, 28), DST_DAY)
    )
    assert cleaned_meta["rows_out"].value == sum(
        _lake(platform, "cleaned_readings", d).num_rows for d in (date(2026, 3, 28), DST_DAY)
    )
    assert set(cleaned_meta["rows_by_day"].value) == {"2026-03-28", "2026-03-29"}
    assert isinstance(cleaned_meta["flags_by_rule"].value, dict)
    assert 0 < cleaned_meta["sufficiency_mean"].value <= 1
    assert meta["weather"]["observed_rows"].value == 47 * len(
        set(platform.warehouse.read("SELECT region FROM weather_observed")["region"].to_pylist())
    )
    sufficiency = platform.warehouse.read(
        "SELECT DISTINCT local_day FROM meter_day_sufficiency ORDER BY 1"
    )["local_day"].to_pylist()
    assert sufficiency == [date(2026, 3, 28), DST_DAY]


def test_rerun_and_relanding_leave_identical_tables(platform: Platform, utility: Path) -> None:
    land_tree(platform.landing, utility)
    _run_all(platform, DST_DAY, DST_DAY)
    before = {t: _lake(platform, t, DST_DAY) for t in ("raw_readings", "cleaned_readings")}
    rejected_before = platform.warehouse.read("SELECT * FROM rejected_readings ORDER BY ALL")

    land_tree(platform.landing, utility)
    some_file = next(p for p in sorted((utility / "readings").rglob("*")) if p.is_file())
    platform.landing.put("readings/relanded/" + some_file.name, some_file.read_bytes())
    cache = Path(platform.settings.home) / "lake" / "_ingest" / "readings"
    lost = sorted(cache.glob("*.parquet"))
    assert lost, "parsed files are cached in the lake"
    for path in lost:  # a lake restored without its parse cache: parsed again from landing
        path.unlink()
    _run_all(platform, DST_DAY, DST_DAY)
    reparsed = sorted(cache.glob("*.parquet"))
    assert reparsed and set(reparsed) <= set(lost), "the files of the day are parsed again"

    for table, old in before.items():
        assert _lake(platform, table, DST_DAY).equals(old), f"{table} changed on re-run"
    assert platform.warehouse.read("SELECT * FROM rejected_readings ORDER BY ALL").equals(
        rejected_before
    )


def test_a_day_cleaned_in_shards_is_the_day_cleaned_whole(
    platform: Platform, utility: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    land_tree(platform.landing, utility)
    _run_all(platform, DST_DAY, DST_DAY)
    whole = _lake(platform, "cleaned_readings", DST_DAY)
    sufficiency = platform.warehouse.read("SELECT * FROM meter_day_sufficiency ORDER BY ALL")

    monkeypatch.setattr(readings_pipeline, "SHARD_READINGS", 1_000)  # about 7 shards
    meta = _materialize(platform, ["cleaned_readings"], DST_DAY, DST_DAY)["cleaned_readings"]
    sharded = _lake(platform, "cleaned_readings", DST_DAY)  # each shard has its dictionaries
    assert sharded.cast(contract.CLEANED_READINGS).equals(whole.cast(contract.CLEANED_READINGS))
    assert meta["rows_out"].value == whole.num_rows
    assert platform.warehouse.read("SELECT * FROM meter_day_sufficiency ORDER BY ALL").equals(
        sufficiency
    )


def test_bad_input_is_traced_and_the_rest_of_the_partition_goes_on(
    platform: Platform, utility: Path
) -> None:
    land_tree(platform.landing, utility)
    header = "meter_id,ts,interval_minutes,channel,kwh\n"
    good_row = "M000001,2026-03-29T10:00:00+00:00,15,delivered,0.3\n"
    landing = platform.landing
    landing.put(
        "readings/bad/missing_column.csv", b"meter_id,ts,kwh\nM000001,2026-03-29T10:00:00Z,1\n"
    )
    landing.put("readings/bad/empty.csv", b"")
    landing.put("readings/bad/corrupt.parquet", b"PAR1 definitely not parquet PAR1")
    landing.put(
        "readings/bad/rows.csv",
        (
            header
            + good_row
            + "M000001,29/03/2026 10:15,15,delivered,0.3\n"
            + "M000001,2026-03-29T10:30:00+00:00,15,delivered,n/a\n"
            + "GHOST-9,2026-03-29T10:45:00+00:00,15,delivered,0.3\n"
        ).encode(),
    )
    meta = _run_all(platform, DST_DAY, DST_DAY)

    quarantined = {q["key"]: q for q in landing.quarantined()}
    assert set(quarantined) == {
        "readings/bad/missing_column.csv",
        "readings/bad/empty.csv",
        "readings/bad/corrupt.parquet",
    }
    assert (
        "missing column(s) interval_minutes, channel"
        in quarantined["readings/bad/missing_column.csv"]["reason"]
    )
    assert "empty" in quarantined["readings/bad/empty.csv"]["reason"]
    assert "Parquet" in quarantined["readings/bad/corrupt.parquet"]["reason"]
    assert landing.read_bytes("readings/bad/empty.csv") == b"", "landed files are never modified"

    rejected = platform.warehouse.read(
        "SELECT row, field, value, reason FROM rejected_readings "
        "WHERE source_file = 'readings/bad/rows.csv' ORDER BY row"
    ).to_pylist()
    assert [(r["row"], r["field"], r["value"]) for r in rejected] == [
        (2, "ts", "29/03/2026 10:15"),
        (3, "kwh", "n/a"),
        (4, "meter_id", "GHOST-9"),
    ]
    assert "not in the meter registry" in rejected[2]["reason"]

    raw = _lake(platform, "raw_readings", DST_DAY)
    from_bad = raw.filter(pc.equal(raw["source_file"], "readings/bad/rows.csv"))
    assert from_bad["source_row"].to_pylist() == [1], "the good row of the bad file goes on"
    assert raw.num_rows > 1000, "the rest of the partition is processed"

    raw_meta = meta["raw_readings"]
    assert raw_meta["rejected_rows"].value >= 3
    assert "GHOST-9" in raw_meta["rejected_sample"].value
    assert "missing_column.csv" in raw_meta["newly_quarantined"].value
    assert "readings/bad/corrupt.parquet" in raw_meta["quarantined_files"].value
    reason = json.loads(
        landing.read_bytes("quarantine/readings/bad/missing_column.csv.reason.json")
    )
    assert reason["key"] == "readings/bad/missing_column.csv"
    details = reason["details"]
    assert details["contract"] == "readings 1.0"
    assert details["field"] == "interval_minutes, channel"
    assert details["expected"] == ["meter_id", "ts", "interval_minutes", "channel", "kwh"]
    assert details["found"] == ["meter_id", "ts", "kwh"]

    corrected = header + "M000002,2026-03-29T10:00:00+00:00,15,delivered,0.4\n"
    landing.put("readings/bad-fixed/missing_column.csv", corrected.encode())
    _run_all(platform, DST_DAY, DST_DAY)
    raw = _lake(platform, "raw_readings", DST_DAY)
    fixed = raw.filter(pc.equal(raw["source_file"], "readings/bad-fixed/missing_column.csv"))
    assert fixed["kwh"].to_pylist() == [0.4], "a corrected file landed later is picked up"


def test_s3_backend_end_to_end(s3_settings: Settings, utility: Path) -> None:
    platform = _platform(s3_settings)
    land_tree(platform.landing, utility)
    _run_all(platform, DST_DAY, DST_DAY)
    cleaned = _lake(platform, "cleaned_readings", DST_DAY)
    assert platform.lake.url.startswith("s3://")
    assert cleaned.num_rows > 0
    view = platform.warehouse.query_readonly(
        "SELECT count(*) AS n FROM cleaned_readings WHERE day = DATE '2026-03-29'"
    )
    assert view.to_pylist() == [{"n": cleaned.num_rows}]
