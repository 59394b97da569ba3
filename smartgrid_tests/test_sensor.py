"""The landing sensor against a real S3 server: new, identical, changed, spanning, unreadable,
late and 1,000 files; and a late file re-materializes its own day and nothing else."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import UTC, date, datetime, timedelta

import boto3
import dagster as dg
import pytest

from smartgrid_assets.defs.automation import INGEST_ASSETS, landing_sensor
from smartgrid_assets.demo import DAILY_ASSETS, materialize
from smartgrid_assets.pipeline.arrivals import plan_arrivals
from smartgrid_assets.platform import Platform
from smartgrid_assets.settings import Settings
from smartgrid_tests.conftest import TEST_TZ

HEADER = "meter_id,ts,interval_minutes,channel,kwh\n"


def _csv(meter: str, first: datetime, intervals: int, kwh: float = 0.25) -> bytes:
    rows = (
        f"{meter},{(first + timedelta(minutes=15 * i)).isoformat()},15,delivered,{kwh}\n"
        for i in range(intervals)
    )
    return (HEADER + "".join(rows)).encode()


def _utc(day: date, hour: int = 0) -> datetime:
    """UTC instant of a local hour in the test time zone (no DST change in these days)."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC) - timedelta(hours=1)


@pytest.fixture
def platform(s3_settings: Settings) -> Platform:
    return Platform(dataclasses.replace(s3_settings, tz=TEST_TZ))


def _tick(platform: Platform, cursor: str | None) -> tuple[list[dg.RunRequest], str]:
    context = dg.build_sensor_context(cursor=cursor, resources={"platform": platform})
    result = landing_sensor(context)
    return list(result.run_requests or []), result.cursor


def _days(requests: list[dg.RunRequest]) -> list[str]:
    return [r.partition_key for r in requests if r.partition_key]


def test_new_identical_changed_spanning_and_unreadable_files(platform: Platform) -> None:
    landing = platform.landing
    day = date(2026, 3, 10)
    landing.put("readings/2026-03-11/a.csv", _csv("M1", _utc(day), 96))
    requests, cursor = _tick(platform, None)
    assert _days(requests) == ["2026-03-10"]
    assert requests[0].asset_selection == [dg.AssetKey(a) for a in INGEST_ASSETS]
    assert json.loads(cursor)["readings"] == "readings/2026-03-11/a.csv"

    landing.put("readings/2026-03-11/a.csv", _csv("M1", _utc(day), 96))
    landing.put("readings/2026-03-12/a-again.csv", _csv("M1", _utc(day), 96))
    requests, cursor = _tick(platform, cursor)
    assert requests == [], "identical content landed again triggers nothing"

    client = boto3.client("s3", **platform.settings.aws_client_kwargs())
    bucket, prefix = platform.settings.landing_url.removeprefix("s3://").split("/", 1)
    client.put_object(
        Bucket=bucket,
        Key=f"{prefix}/readings/2026-03-11/a.csv",
        Body=_csv("M1", _utc(day), 96, 0.3),
    )
    changed, cursor = _tick(platform, cursor)
    assert _days(changed) == ["2026-03-10"]
    assert changed[0].run_key != requests and changed[0].run_key

    landing.put("readings/2026-03-12/span.csv", _csv("M2", _utc(day, 20), 24))
    landing.put("readings/2026-03-12/broken.parquet", b"PAR1 not really")
    spanning, cursor = _tick(platform, cursor)
    assert _days(spanning) == ["2026-03-10", "2026-03-11"]
    quarantined = {q["key"]: q for q in landing.quarantined()}
    assert "readings/2026-03-12/broken.parquet" in quarantined
    assert "Parquet" in quarantined["readings/2026-03-12/broken.parquet"]["reason"]

    again, _ = _tick(platform, cursor)
    assert again == [], "nothing new: nothing to run, the quarantined file is not retried"


def test_late_file_about_an_old_day_is_seen_after_the_cursor(platform: Platform) -> None:
    landing = platform.landing
    landing.put("readings/2026-03-20/today.csv", _csv("M1", _utc(date(2026, 3, 19)), 96))
    _, cursor = _tick(platform, None)
    landing.put("readings/2026-03-21/late.csv", _csv("M1", _utc(date(2026, 3, 2)), 96))
    requests, _ = _tick(platform, cursor)
    assert _days(requests) == ["2026-03-02"]
    assert requests[0].tags["smartgrid/files"] == "readings/2026-03-21/late.csv"


def test_a_thousand_files_in_one_tick_are_batched_per_day(platform: Platform) -> None:
    client = boto3.client("s3", **platform.settings.aws_client_kwargs())
    bucket, prefix = platform.settings.landing_url.removeprefix("s3://").split("/", 1)
    days = [date(2026, 3, 2) + timedelta(days=i) for i in range(5)]
    for i in range(1000):
        day = days[i % len(days)]
        client.put_object(
            Bucket=bucket,
            Key=f"{prefix}/readings/2026-03-08/m{i:04d}.csv",
            Body=_csv(f"M{i:04d}", _utc(day), 96),
        )
    started = time.monotonic()
    requests, cursor = _tick(platform, None)
    elapsed = time.monotonic() - started
    print(f"\nlanding sensor tick over 1,000 new files on S3: {elapsed:.1f} s")
    assert sorted(_days(requests)) == [d.isoformat() for d in days]
    assert all(len(r.tags["smartgrid/files"].split(",")) > 100 for r in requests)
    assert json.loads(cursor)["readings"] == "readings/2026-03-08/m0999.csv"
    assert _tick(platform, cursor)[0] == []


def test_unusable_keys_never_stop_a_tick_and_are_reported_once(platform: Platform) -> None:
    client = boto3.client("s3", **platform.settings.aws_client_kwargs())
    bucket, prefix = platform.settings.landing_url.removeprefix("s3://").split("/", 1)
    day = date(2026, 3, 19)
    good = "readings/2026-03-20/good.csv"
    platform.landing.put(good, _csv("M1", _utc(day), 96))
    bad = [
        "readings/2026-03-20//x.csv",
        "readings/2026-03-20/a\\b.csv",
        "readings/2026-03-20/../x.csv",
        "readings/2026-03-20/.hidden.csv",
        "readings/2026-03-20/ctl\x01.csv",
        "readings/2026-03-20/" + "L" * 300 + ".csv",
    ]
    for key in bad:
        client.put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=_csv("M2", _utc(day), 4))

    plan = plan_arrivals(platform, {})
    assert sorted(p.key for p in plan.problems) == sorted(bad)
    assert all(p.quarantine_key for p in plan.problems), "copied aside at once"
    requests, cursor = _tick(platform, None)
    assert _days(requests) == ["2026-03-19"]
    assert requests[0].tags["smartgrid/files"] == good, "the good file runs, the bad ones never"
    state = json.loads(cursor)
    assert state["readings"] == good and list(state["seen"]) == [good]
    assert sorted(state["problems"]) == sorted(bad)
    assert plan_arrivals(platform, state).problems == [], "each is reported once"
    again, cursor = _tick(platform, cursor)
    assert again == []

    # new content under a bad key is reported again, and still runs nothing
    client.put_object(Bucket=bucket, Key=f"{prefix}/{bad[1]}", Body=b"other")
    context = dg.build_sensor_context(cursor=cursor, resources={"platform": platform})
    result = landing_sensor(context)
    assert not result.run_requests
    assert result.skip_reason.skip_message.startswith("1 new file(s) under unusable landing keys")
    assert json.loads(result.cursor)["readings"] == good


def test_new_registry_file_requests_a_meters_run(platform: Platform) -> None:
    platform.landing.put("registry/2026-03-08/meters.csv", b"meter_id\nM1\n")
    requests, cursor = _tick(platform, None)
    assert [r.asset_selection for r in requests] == [[dg.AssetKey("meters")]]
    assert _tick(platform, cursor)[0] == []


def test_late_file_rematerializes_its_day_and_nothing_else(
    local_settings: Settings, tmp_path
) -> None:
    from smartgrid_assets.pipeline.land import land_tree
    from smartgrid_assets.synth import synthesize

    platform = Platform(dataclasses.replace(local_settings, tz=TEST_TZ))
    utility = tmp_path / "utility"
    synthesize(utility, meters=40, days=4, seed=5, tz=TEST_TZ, start=date(2026, 3, 2))
    land_tree(platform.landing, utility, arrived=date(2026, 3, 6), late_arrival=date(2026, 3, 6))
    instance = dg.DagsterInstance.ephemeral()
    materialize(platform, ["meters"], instance)
    materialize(platform, DAILY_ASSETS, instance, date(2026, 3, 2), date(2026, 3, 5))
    _, cursor = _tick(platform, None)
    lake = platform.lake.location()
    before = {
        p: p.stat().st_mtime_ns for p in __import__("pathlib").Path(lake).rglob("part-0.parquet")
    }
    old_day = date(2026, 3, 3)
    platform.landing.put(
        "readings/2026-03-07/late.csv", _csv("M000001", _utc(old_day, 0) + timedelta(minutes=7), 1)
    )
    requests, _ = _tick(platform, cursor)
    assert _days(requests) == ["2026-03-03"]
    result = dg.materialize(
        [a for a in __import__("smartgrid_assets.definitions").definitions.defs.assets],
        selection=INGEST_ASSETS,
        partition_key=requests[0].partition_key,
        instance=instance,
        resources={"platform": platform},
    )
    assert result.success
    changed = {p for p, m in before.items() if p.stat().st_mtime_ns != m}
    assert changed and all("day=2026-03-03" in str(p) for p in changed), changed
    raw = platform.lake.read_partition("raw_readings", old_day)
    assert "readings/2026-03-07/late.csv" in set(raw["source_file"].to_pylist())
