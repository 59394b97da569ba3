"""Files under keys the landing zone cannot use, on a folder and on S3 (moto server over real
HTTP): listed apart with the rule they break, copied to quarantine under a safe key, recorded in
`landing_problems`, and never a reason for ingestion to stop or to skip a file in silence."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest

from smartgrid_assets.definitions import defs
from smartgrid_assets.landing import (
    UNUSABLE_PREFIX,
    LandingError,
    LandingProblem,
    LandingZone,
    LocalLandingZone,
    S3LandingZone,
    key_problem,
)
from smartgrid_assets.pipeline.arrivals import record_landing_problems
from smartgrid_assets.pipeline.quality_report import quarantined_files
from smartgrid_assets.pipeline.readings import ingest_raw_readings
from smartgrid_assets.pipeline.registry import load_registry
from smartgrid_assets.platform import Platform
from smartgrid_assets.settings import Settings
from smartgrid_tests.conftest import TEST_TZ

DAY = date(2026, 3, 19)
ARRIVED = "readings/2026-03-20/"
GOOD = ARRIVED + "good.csv"
METERS = (
    b"meter_id,customer_class,transformer_id,feeder_id,substation_id,has_solar,installed_at\n"
    b"M1,residential,TX1,F1,S1,false,2025-01-01T00:00:00+00:00\n"
)
LONG_NAME = "L" * 300 + ".csv"
DEEP = ARRIVED + "/".join(["d" * 200] * 5) + "/x.csv"

#: bad keys of each backend and the words their reason must say
S3_BAD = {
    ARRIVED + "/x.csv": "empty path segment",
    ARRIVED + "a\\b.csv": "backslash",
    ARRIVED + "../x.csv": "'..' path segment",
    ARRIVED + ".hidden.csv": "hidden name '.hidden.csv'",
    ARRIVED + "ctl\x01.csv": "control character U+0001",
    ARRIVED + LONG_NAME: "name of 304 bytes: expected at most 255",
    ARRIVED + "folder/": "leading or trailing '/'",  # an object that is not a folder marker
    "registry/2026-03-20/.DS_Store": "hidden name '.DS_Store'",
}
FOLDER_BAD = {
    ARRIVED + "a\\b.csv": "backslash",
    ARRIVED + ".hidden.csv": "hidden name '.hidden.csv'",
    ARRIVED + ".trash/x.csv": "hidden name '.trash'",
    ARRIVED + ".x.csv.tmp-123": "hidden name",  # not this zone's temp-file pattern
    ARRIVED + "ctl\x01.csv": "control character U+0001",
    ARRIVED + "caf\udce9.csv": "not UTF-8",  # a name the filesystem holds as raw bytes
    DEEP: "key of 1030 bytes: expected at most 1024",
    ".DS_Store": "hidden name '.DS_Store'",
}


def _utc(day: date, hour: int = 0) -> datetime:
    """UTC instant of a local hour in the test time zone (no DST change in these days)."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC) - timedelta(hours=1)


def _csv(meter: str, first: datetime, intervals: int) -> bytes:
    rows = (
        f"{meter},{(first + timedelta(minutes=15 * i)).isoformat()},15,delivered,0.25\n"
        for i in range(intervals)
    )
    return ("meter_id,ts,interval_minutes,channel,kwh\n" + "".join(rows)).encode()


def _drop(zone: LandingZone, key: str, body: bytes) -> None:
    """Put a file where a head-end would, bypassing `put` (which refuses these keys)."""
    if isinstance(zone, S3LandingZone):
        zone.client.put_object(Bucket=zone.bucket, Key=zone.prefix + key, Body=body)
    else:
        assert isinstance(zone, LocalLandingZone)
        path = zone.root.joinpath(*key.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)


@pytest.fixture(params=["local", "s3"])
def settings(request: pytest.FixtureRequest) -> Settings:
    return request.getfixturevalue(f"{request.param}_settings")


@pytest.fixture
def platform(settings: Settings) -> Platform:
    return Platform(dataclasses.replace(settings, tz=TEST_TZ))


def _bad_keys(zone: LandingZone) -> dict[str, str]:
    return S3_BAD if isinstance(zone, S3LandingZone) else FOLDER_BAD


def _seed(zone: LandingZone) -> bytes:
    """The good file, every bad key of the backend (the same readings) and, on a folder, a
    write in flight of this zone; returns the bad files' bytes."""
    zone.put(GOOD, _csv("M1", _utc(DAY), 96))
    body = _csv("M1", _utc(DAY, 6), 4)
    for key in _bad_keys(zone):
        _drop(zone, key, body)
    if isinstance(zone, LocalLandingZone):
        _drop(zone, f"{ARRIVED}.good.csv.tmp-{uuid.uuid4().hex}", b"partial")
    else:
        _drop(zone, ARRIVED + "empty-folder/", b"")  # a folder marker: not a file
    return body


# ---- the rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("", "empty key"),
        ("/abs.csv", "leading or trailing '/'"),
        ("a/", "leading or trailing '/'"),
        ("a//b.csv", "empty path segment"),
        ("a/./b.csv", "'.' path segment"),
        ("a/../b.csv", "'..' path segment"),
        ("a\\b.csv", "backslash"),
        ("a/.b.csv", "hidden name '.b.csv'"),
        ("a/\x7f.csv", "control character U+007F"),
        ("a/tab\t.csv", "control character U+0009"),
        ("a/" + LONG_NAME, "name of 304 bytes"),
        ("a/" + "/".join(["b" * 250] * 5), "key of 1256 bytes"),
        ("a/caf\udce9.csv", "not UTF-8"),
    ],
)
def test_each_rule_names_itself_and_what_is_expected(key: str, words: str) -> None:
    reason = key_problem(key)
    assert reason is not None and words in reason and "expected" in reason


@pytest.mark.parametrize("key", ["readings/2026-03-20/a.csv", "r/é ü (1).csv", "a/b..c.csv"])
def test_usable_keys(key: str) -> None:
    assert key_problem(key) is None


@pytest.mark.parametrize("key", [ARRIVED + "ctl\x01.csv", ARRIVED + LONG_NAME, ARRIVED + ".x"])
def test_put_still_refuses_unusable_keys(platform: Platform, key: str) -> None:
    with pytest.raises(LandingError, match=r"invalid landing key .*: .*expected"):
        platform.landing.put(key, b"x")


# ---- listing and quarantine ----------------------------------------------------------------


def test_listing_reports_unusable_keys_apart_and_quarantines_copies(platform: Platform) -> None:
    zone = platform.landing
    body = _seed(zone)
    bad = _bad_keys(zone)

    listing = zone.scan()
    assert [f.key for f in listing.files] == [GOOD]
    assert zone.list() == listing.files
    assert {p.key for p in listing.problems} == set(bad), "every bad key, nothing skipped"
    for problem in listing.problems:
        assert bad[problem.key] in problem.reason, problem
        assert problem.size == len(body) and problem.etag and problem.quarantine_key is None
    assert {p.key for p in zone.scan(ARRIVED).problems} == {k for k in bad if k.startswith(ARRIVED)}

    copied = [zone.quarantine_problem(p) for p in listing.problems]
    for problem in copied:
        dest = problem.quarantine_key
        assert dest and dest.startswith(UNUSABLE_PREFIX), problem
        assert key_problem(dest) is None, "the copy's key is usable"
        assert zone.read_bytes(dest) == body
        doc = json.loads(zone.read_bytes(dest + ".reason.json"))
        assert doc["key"] == problem.key and doc["etag"] == problem.etag
        assert doc["reason"] == problem.reason
        assert doc["details"]["key_as_text"] == problem.text_key
    assert len({p.quarantine_key for p in copied}) == len(copied), "one folder per raw key"

    # idempotent: the same (key, etag) is copied once, its reason document left as it is
    docs = {p.quarantine_key: zone.read_bytes(p.quarantine_key + ".reason.json") for p in copied}
    assert [zone.quarantine_problem(p) for p in listing.problems] == copied
    assert {k: zone.read_bytes(k + ".reason.json") for k in docs} == docs
    # quarantine is never listed, and its copies are not files quarantined for their content
    assert zone.scan() == listing
    assert zone.quarantined() == []


def test_a_file_that_cannot_be_copied_is_still_reported(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    zone = platform.landing
    _seed(zone)

    def broken_copy(file, dest_key):
        raise LandingError(f"cannot quarantine {file.key!r}: the store said no")

    monkeypatch.setattr(zone, "_copy", broken_copy)
    problem = zone.quarantine_problem(zone.scan().problems[0])
    assert problem.quarantine_key is None
    assert "; not copied to quarantine: cannot quarantine" in problem.reason


def test_an_unreadable_folder_file_is_a_problem_not_a_crash(
    local_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    zone = LocalLandingZone(local_settings.landing_url)
    zone.put(GOOD, b"good")
    zone.put(ARRIVED + "locked.csv", b"locked")
    real_etag = zone._etag

    def etag(path, st):
        if path.endswith("locked.csv"):
            raise PermissionError(13, "Permission denied", path)
        return real_etag(path, st)

    monkeypatch.setattr(zone, "_etag", etag)
    listing = zone.scan()
    assert [f.key for f in listing.files] == [GOOD]
    (problem,) = listing.problems
    assert (problem.key, problem.size, problem.etag) == (ARRIVED + "locked.csv", 6, None)
    assert "cannot be read (Permission denied)" in problem.reason
    assert zone.quarantine_problem(problem) == problem, "no etag, no copy: reported as it is"


# ---- raw_readings ----------------------------------------------------------------------------


def _ingest(platform: Platform):
    load = ingest_raw_readings(platform, [DAY])
    table = platform.warehouse.read("SELECT * FROM landing_problems ORDER BY key")
    return load, table.to_pylist()


def test_raw_readings_ingest_goes_on_and_records_every_bad_key(platform: Platform) -> None:
    zone = platform.landing
    zone.put("registry/2026-03-20/meters.csv", METERS)
    load_registry(platform)
    _seed(zone)
    bad = _bad_keys(zone)
    texts = {LandingProblem(k, 0, None, None, "").text_key: words for k, words in bad.items()}

    load, rows = _ingest(platform)
    assert load.files == [GOOD]
    assert load.rows_by_day == {DAY.isoformat(): 96}, "the good rows, none of the bad files'"
    assert platform.lake.read_partition("raw_readings", DAY).num_rows == 96
    assert {r["key"] for r in rows} == set(texts)
    for row in rows:
        assert texts[row["key"]] in row["reason"]
        assert row["etag"] and row["size"] > 0 and row["found_at"] is not None
        assert row["quarantine_key"].startswith(UNUSABLE_PREFIX)
        assert zone.stat(row["quarantine_key"]) is not None
    assert sorted(load.landing_problems, key=lambda r: r["key"]) == rows
    assert quarantined_files(platform, [DAY]).num_rows == 0, "the quality report still reads"

    quarantine = [f.key for f in zone._iter_files("quarantine/")]
    again, rows_again = _ingest(platform)
    assert rows_again == rows, "a re-run adds nothing and keeps when each was first found"
    assert again.rows_by_day == load.rows_by_day
    assert sorted(f.key for f in zone._iter_files("quarantine/")) == sorted(quarantine)


def test_landing_problems_keep_an_uncopied_file_and_leave_when_it_is_gone(
    local_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = Platform(dataclasses.replace(local_settings, tz=TEST_TZ))
    zone = platform.landing
    assert isinstance(zone, LocalLandingZone)
    _drop(zone, ARRIVED + "ctl\x01.csv", b"x")
    _drop(zone, ARRIVED + ".hidden.csv", b"y")

    def full_disk(file, dest_key):
        raise OSError("full")

    monkeypatch.setattr(zone, "_copy", full_disk)
    problems = [zone.quarantine_problem(p) for p in zone.scan().problems]
    rows = record_landing_problems(platform, problems)
    assert len(rows) == 2 and all(r["quarantine_key"] is None for r in rows)
    assert all("not copied to quarantine: full" in r["reason"] for r in rows)
    assert record_landing_problems(platform, problems) == rows, "idempotent"

    (zone.root / "readings/2026-03-20/.hidden.csv").unlink()
    left = record_landing_problems(platform, zone.scan().problems)
    assert [r["key"] for r in left] == [ARRIVED + "ctl\x01.csv"]
    table = platform.warehouse.read("SELECT key, found_at FROM landing_problems").to_pylist()
    assert table == [{"key": ARRIVED + "ctl\x01.csv", "found_at": rows[1]["found_at"]}]


def test_raw_readings_materialization_shows_the_problems(platform: Platform) -> None:
    platform.landing.put("registry/2026-03-20/meters.csv", METERS)
    load_registry(platform)
    _seed(platform.landing)
    result = dg.materialize(
        list(defs.assets or []),
        selection=["raw_readings"],
        resources={"platform": platform},
        partition_key=DAY.isoformat(),
    )
    assert result.success
    (event,) = result.get_asset_materialization_events()
    metadata = event.step_materialization_data.materialization.metadata
    assert metadata["rows"].value == 96
    assert metadata["landing_problems_count"].value == len(_bad_keys(platform.landing))
    assert "backslash" in metadata["landing_problems"].value
    assert UNUSABLE_PREFIX in metadata["landing_problems"].value
