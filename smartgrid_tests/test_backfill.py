"""Backfills and the daily schedule: a 14-day backfill is one run per asset and gives the same
tables as 14 daily runs; the schedule asks for the local day that just ended."""

from __future__ import annotations

import dataclasses
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from smartgrid_assets.definitions import defs
from smartgrid_assets.defs.automation import daily_job, daily_schedule
from smartgrid_assets.defs.marts import MART_ASSETS
from smartgrid_assets.demo import DAILY_ASSETS, materialize
from smartgrid_assets.pipeline.land import land_tree
from smartgrid_assets.platform import Platform
from smartgrid_assets.settings import load_settings
from smartgrid_assets.synth import synthesize
from smartgrid_tests.conftest import TEST_TZ

START = date(2026, 3, 16)
DAYS = [START + timedelta(days=i) for i in range(14)]
SAME_EITHER_WAY = ["raw_readings", "cleaned_readings", "meter_hourly"]
WAREHOUSE_TABLES = ["feeder_hourly", "load_forecasts", "forecast_accuracy", "weather_observed"]
# the dbt marts' incremental runs per day and per range are test_marts'
PYTHON_ASSETS = [key for key in DAILY_ASSETS if key not in MART_ASSETS]


def _landed_platform(home: Path, utility: Path) -> Platform:
    settings = load_settings({"SMARTGRID_HOME": str(home)})
    platform = Platform(dataclasses.replace(settings, tz=TEST_TZ))
    # late exports too: without one, a day is mostly estimated and fails a blocking check
    land_tree(platform.landing, utility, arrived=date(2026, 4, 1), late_arrival=date(2026, 4, 2))
    return platform


@pytest.mark.slow
def test_a_14_day_backfill_is_one_run_and_matches_14_daily_runs(tmp_path: Path) -> None:
    utility = tmp_path / "utility"
    synthesize(utility, meters=60, days=14, seed=9, tz=TEST_TZ, start=START)
    backfill = _landed_platform(tmp_path / "backfill", utility)
    daily = _landed_platform(tmp_path / "daily", utility)

    instance = dg.DagsterInstance.ephemeral()
    for platform in (backfill, daily):
        materialize(platform, ["meters"], instance)
    started = time.monotonic()
    materialize(backfill, PYTHON_ASSETS, instance, DAYS[0], DAYS[-1])
    one_run = time.monotonic() - started
    started = time.monotonic()
    for day in DAYS:
        materialize(daily, PYTHON_ASSETS, instance, day, day)
    separate = time.monotonic() - started
    print(f"\n14-day backfill: one run {one_run:.1f} s, 14 daily runs {separate:.1f} s")

    runs = instance.get_runs()
    backfill_runs = [
        r
        for r in runs
        if r.tags.get("dagster/asset_partition_range_start") == "2026-03-16"
        and r.tags.get("dagster/asset_partition_range_end") == "2026-03-29"
    ]
    assert len(backfill_runs) == 1, "the whole range in one run"
    for table in SAME_EITHER_WAY:
        for day in DAYS:
            ours, theirs = (
                p.lake.read_partition(table, day).drop_columns(
                    ["landed_at"] if table == "raw_readings" else []
                )
                for p in (backfill, daily)
            )
            assert ours.equals(theirs), (table, day)
    for table in WAREHOUSE_TABLES:
        query = f"SELECT * FROM {table} ORDER BY ALL"
        assert backfill.warehouse.read(query).equals(daily.warehouse.read(query)), table


@pytest.mark.parametrize(
    ("now", "day"),
    [(datetime(2026, 3, 30, 1, 0), "2026-03-29"), (datetime(2026, 10, 26, 1, 0), "2026-10-25")],
)
def test_the_daily_schedule_asks_for_the_local_day_that_just_ended(now: datetime, day: str) -> None:
    schedule = defs.resolve_schedule_def(daily_schedule.name)
    assert schedule.execution_timezone == TEST_TZ
    assert schedule.cron_schedule == "0 1 * * *"
    assert schedule.job_name == daily_job.name
    context = dg.build_schedule_context(
        scheduled_execution_time=now.replace(tzinfo=ZoneInfo(TEST_TZ))
    )
    requests = list(schedule.evaluate_tick(context).run_requests or [])
    assert [r.partition_key for r in requests] == [day]
