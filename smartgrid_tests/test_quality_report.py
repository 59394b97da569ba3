"""Readings freshness and the data quality report, in-process on a synthetic utility.

Clean: every export landed on time, nothing broken: the freshness check passes and the report
shows no failed check, rejected row or quarantined file. Broken the ways they guard against: a
region's export for a day has not arrived (the synthetic utility's late file), a file with bad
rows and a file with no readable row: the check warns for exactly that day and names the
feeders without readings; the report flags the late day, the rejected rows on their feeder and
the quarantined file on its day. The report's figures are those the pipeline stored, not
recomputed ones.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import json
import re
import shutil
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import dagster as dg
import pytest

from smartgrid_assets.definitions import defs
from smartgrid_assets.defs.quality_report import data_quality_job, data_quality_report
from smartgrid_assets.demo import partition_range_tags
from smartgrid_assets.pipeline.freshness import deadline, judge, latest_due_day
from smartgrid_assets.pipeline.land import arrival_key, land_tree
from smartgrid_assets.platform import Platform
from smartgrid_assets.settings import SettingsError, load_settings
from smartgrid_assets.synth import synthesize
from smartgrid_tests.conftest import TEST_TZ

START = date(2026, 3, 25)
DAYS = 5
HOUR = 6
ASSETS = [*(defs.assets or []), *(defs.asset_checks or [])]
# What the report reads, made as the daily run makes it; then the data quality job (freshness,
# report) in a run of its own, as its schedule runs it, so no other check (blocking or not) on the
# readings can keep the report from running.
READINGS = ["weather", "raw_readings", "cleaned_readings"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclasses.dataclass(frozen=True)
class Utility:
    folder: Path
    late_day: date  # the day whose export of `late_region` arrives late
    late_region: str
    feeders_by_region: dict[str, set[str]]
    meter_by_region: dict[str, str]  # one meter of each region


@pytest.fixture(scope="module")
def utility(tmp_path_factory: pytest.TempPathFactory) -> Utility:
    folder = tmp_path_factory.mktemp("utility")
    synthesize(folder, meters=40, days=DAYS, interval_minutes=15, seed=11, tz=TEST_TZ, start=START)
    with (folder / "labels.csv").open() as f:
        (late,) = [row for row in csv.DictReader(f) if row["type"] == "late_file"]
    region, day = re.fullmatch(
        r"readings/(\w+)/\w+_(\d{4}-\d{2}-\d{2})\.\w+", late["asset_id"]
    ).groups()
    feeders: dict[str, set[str]] = {}
    meters: dict[str, str] = {}
    with (folder / "registry" / "meters.csv").open() as f:
        for row in csv.DictReader(f):
            feeders.setdefault(row["region"], set()).add(row["feeder_id"])
            meters.setdefault(row["region"], row["meter_id"])
    return Utility(folder, date.fromisoformat(day), region, feeders, meters)


def _platform(home: Path) -> Platform:
    settings = load_settings({"SMARTGRID_HOME": str(home), "SMARTGRID_FRESHNESS_HOUR": str(HOUR)})
    return Platform(dataclasses.replace(settings, tz=TEST_TZ))


def _run(
    platform: Platform, instance: dg.DagsterInstance, days: list[date], selection: object
) -> dg.ExecuteInProcessResult:
    """One run over the days; a failed blocking check may fail it after what it materialized."""
    return dg.materialize(
        ASSETS,
        selection=selection,
        instance=instance,
        resources={"platform": platform},
        tags=partition_range_tags(days[0], days[-1]),
        raise_on_error=False,
    )


def _freshness(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (check,) = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "readings_arrived"
    ]
    return check


@dataclasses.dataclass(frozen=True)
class Outcome:
    platform: Platform
    days: list[date]
    freshness: dg.AssetCheckEvaluation
    report: dict[str, dg.MetadataValue]


def _outcome(platform: Platform, days: list[date], result: dg.ExecuteInProcessResult) -> Outcome:
    assert result.success
    reports = [
        e.step_materialization_data.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key == data_quality_report.key
    ]
    assert len(reports) == len(days), "one materialization per partition of the range"
    return Outcome(platform, days, _freshness(result), reports[0])


def _pipeline(home: Path, utility: Utility, late_arrived: bool) -> Outcome:
    platform = _platform(home)
    land_tree(platform.landing, utility.folder)
    if late_arrived:
        land_tree(platform.landing, utility.folder / "late")
    instance = dg.DagsterInstance.ephemeral()
    dg.materialize(
        ASSETS, selection=["meters"], instance=instance, resources={"platform": platform}
    )
    days = [utility.late_day - timedelta(days=1), utility.late_day]
    readings = _run(platform, instance, days, READINGS)
    made = {e.asset_key.to_user_string() for e in readings.get_asset_materialization_events()}
    assert made == set(READINGS)
    return _outcome(platform, days, _run(platform, instance, days, data_quality_job.selection))


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory, utility: Utility) -> Outcome:
    """Every export landed, the late one included."""
    return _pipeline(tmp_path_factory.mktemp("clean"), utility, late_arrived=True)


BAD_ROWS_METER_REGION = 0  # the region whose meter gets a file with bad rows (on the day before)


def _land_csv(platform: Platform, name: str, rows: list[tuple]) -> None:
    lines = ["meter_id,ts,interval_minutes,channel,kwh", *(",".join(map(str, r)) for r in rows)]
    platform.landing.put(arrival_key("readings", name), ("\n".join(lines) + "\n").encode())


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory, utility: Utility) -> Outcome:
    """The late export not landed; a file with two bad rows (and one good) for a meter on the
    day before; a file whose every row is bad, on the late day."""
    home = tmp_path_factory.mktemp("broken")
    platform = _platform(home)
    before = utility.late_day - timedelta(days=1)
    meter = sorted(utility.meter_by_region.values())[BAD_ROWS_METER_REGION]
    noon = datetime.combine(before, time(11), UTC).isoformat()
    _land_csv(
        platform,
        "fix/bad_rows.csv",
        [(meter, noon, 15, "delivered", kwh) for kwh in ("abc", "-", 0.25)],
    )
    late_noon = datetime.combine(utility.late_day, time(11), UTC)
    _land_csv(
        platform, "fix/no_good_row.csv", [(meter, late_noon.isoformat(), 15, "delivered", "x")]
    )
    return _pipeline(home, utility, late_arrived=False)


def _rows(outcome: Outcome, table: str) -> list[dict]:
    return outcome.platform.warehouse.read(f"SELECT * FROM {table} ORDER BY ALL").to_pylist()


def _day_rows(outcome: Outcome) -> dict[date, dict]:
    return {r["local_day"]: r for r in _rows(outcome, "data_quality_report") if not r["feeder_id"]}


# ---- freshness ---------------------------------------------------------------------------


def test_deadline_is_the_hour_on_the_next_local_day_and_due_days_follow_it() -> None:
    day = date(2026, 3, 28)  # the next day is the DST day: 23 hours in Europe/Berlin
    due = deadline(day, TEST_TZ, HOUR)
    assert due.astimezone(UTC) == datetime(2026, 3, 29, 4, tzinfo=UTC)  # 06:00 CEST
    assert latest_due_day(due, TEST_TZ, HOUR) == day
    assert latest_due_day(due - timedelta(seconds=1), TEST_TZ, HOUR) == day - timedelta(days=1)
    assert latest_due_day(due + timedelta(hours=17), TEST_TZ, HOUR) == day  # 23:00 that day
    midnight = deadline(day, TEST_TZ, 0)
    assert latest_due_day(midnight, TEST_TZ, 0) == day


def test_freshness_hour_setting() -> None:
    assert load_settings({}).freshness_hour == 6
    assert load_settings({"SMARTGRID_FRESHNESS_HOUR": "23"}).freshness_hour == 23
    for bad in ("24", "6am", "-1"):
        with pytest.raises(SettingsError, match="SMARTGRID_FRESHNESS_HOUR"):
            load_settings({"SMARTGRID_FRESHNESS_HOUR": bad})


def test_freshness_passes_when_every_export_arrived(clean: Outcome) -> None:
    check = clean.freshness
    assert check.passed, check.description
    meta = {k: v.value for k, v in check.metadata.items()}
    assert meta["local_days"] == [d.isoformat() for d in clean.days]
    assert meta["failed_days"] == [] and meta["not_due_days"] == []
    assert meta["feeders_without_readings"] == 0
    assert meta["meters_reporting"] == meta["meters_in_service"] > 0


def test_freshness_warns_for_the_day_whose_export_is_late(
    broken: Outcome, utility: Utility
) -> None:
    check = broken.freshness
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    meta = {k: v.value for k, v in check.metadata.items()}
    assert meta["failed_days"] == [utility.late_day.isoformat()]
    missing = {
        line.split(" | ")[1] for line in meta["missing"].splitlines()[2:] if line.startswith("| ")
    }
    assert missing == utility.feeders_by_region[utility.late_region]
    assert meta["feeders_without_readings"] == len(missing)


def test_freshness_as_of_an_injected_now(broken: Outcome, utility: Utility) -> None:
    due = deadline(utility.late_day, TEST_TZ, HOUR)
    (before,) = judge(broken.platform, [utility.late_day], due - timedelta(minutes=1), HOUR)
    (after,) = judge(broken.platform, [utility.late_day], due, HOUR)
    assert not before.due and not before.late, "not judged before its deadline"
    assert after.due and after.late
    assert set(after.missing) == utility.feeders_by_region[utility.late_region]
    assert before.missing == after.missing  # the same readings; only the verdict waits


def test_a_late_export_that_arrives_makes_the_day_fresh(
    broken: Outcome, utility: Utility, tmp_path: Path
) -> None:
    platform = _platform(tmp_path / "home")
    shutil.copytree(broken.platform.settings.home, platform.settings.home)
    land_tree(platform.landing, utility.folder / "late")
    instance = dg.DagsterInstance.ephemeral()
    check = _freshness(_run(platform, instance, [utility.late_day], ["raw_readings"]))
    assert check.passed, check.metadata


# ---- the report --------------------------------------------------------------------------


def _freshness_rows(outcome: Outcome) -> dict[date, dict]:
    checks = _rows(outcome, "data_quality_checks")
    return {c["local_day"]: c for c in checks if c["check_name"] == "readings_arrived"}


def _assert_check_counts_match(outcome: Outcome) -> None:
    """Every check's verdict is in data_quality_checks; the whole-day rows count them."""
    checks = _rows(outcome, "data_quality_checks")
    for day, row in _day_rows(outcome).items():
        verdicts = [c["passed"] for c in checks if c["local_day"] == day]
        assert (row["checks_passed"], row["checks_failed"]) == (
            verdicts.count(True),
            verdicts.count(False),
        ), day
    assert outcome.report["checks_failed"].value == sum(not c["passed"] for c in checks)


def test_report_on_clean_data_flags_nothing(clean: Outcome) -> None:
    days = _day_rows(clean)
    assert set(days) == set(clean.days)
    for row in days.values():
        assert row["rows_rejected"] == 0 and row["files_quarantined"] == 0
        assert row["meters_reporting"] == row["meters"] > 0
        assert row["sufficiency"] > 0.9
    freshness = _freshness_rows(clean)
    assert set(freshness) == set(clean.days)
    assert all(c["passed"] and c["asset_key"] == "raw_readings" for c in freshness.values())
    _assert_check_counts_match(clean)
    assert "readings_arrived" not in clean.report["failed_checks"].value
    judged = {c["check_name"] for c in _rows(clean, "data_quality_checks")}
    assert {"raw_keys", "cleaned_unique", "cleaned_row_count"} <= judged  # other runs' checks


def test_report_figures_are_those_the_pipeline_stored(clean: Outcome) -> None:
    """Sufficiency from meter_day_sufficiency and VEE flags from cleaned_readings, per feeder."""
    platform = clean.platform
    meters = platform.warehouse.read("SELECT meter_id, feeder_id FROM meters")
    feeder_of = dict(
        zip(meters["meter_id"].to_pylist(), meters["feeder_id"].to_pylist(), strict=True)
    )
    expected_flags: dict[tuple, dict[str, int]] = {}
    for day in clean.days:
        cleaned = platform.lake.read_partition("cleaned_readings", day)
        for meter, rules in zip(
            cleaned["meter_id"].to_pylist(), cleaned["vee_rules"].to_pylist(), strict=True
        ):
            for rule in rules:
                flags = expected_flags.setdefault((day, feeder_of[meter]), {})
                flags[rule] = flags.get(rule, 0) + 1
    sufficiency = platform.warehouse.read(
        "SELECT s.local_day, m.feeder_id, sum(s.actual) AS actual, sum(s.expected) AS expected "
        "FROM meter_day_sufficiency s JOIN meters m USING (meter_id) GROUP BY ALL"
    ).to_pylist()
    stored = {(r["local_day"], r["feeder_id"]): r for r in sufficiency}
    report = [r for r in _rows(clean, "data_quality_report") if r["feeder_id"]]
    assert {(r["local_day"], r["feeder_id"]) for r in report} == set(stored)
    assert any(expected_flags.values()), "the synthetic utility has VEE flags to report"
    for row in report:
        key = (row["local_day"], row["feeder_id"])
        assert json.loads(row["vee_flags"]) == expected_flags.get(key, {}), key
        assert row["intervals_actual"] == stored[key]["actual"], key
        assert row["intervals_expected"] == stored[key]["expected"], key
    whole = _day_rows(clean)
    for day in clean.days:
        feeders = [r for r in report if r["local_day"] == day]
        assert whole[day]["intervals_flagged"] == sum(r["intervals_flagged"] for r in feeders)
        assert whole[day]["meters"] == sum(r["meters"] for r in feeders)


def test_report_flags_the_late_day_rejected_rows_and_quarantined_file(
    broken: Outcome, utility: Utility
) -> None:
    before, late = broken.days
    days = _day_rows(broken)
    assert days[late]["checks_failed"] >= 1
    assert days[late]["meters_reporting"] < days[late]["meters"]
    late_feeders = utility.feeders_by_region[utility.late_region]
    by_feeder = {(r["local_day"], r["feeder_id"]): r for r in _rows(broken, "data_quality_report")}
    for feeder in late_feeders:
        assert by_feeder[(late, feeder)]["meters_reporting"] == 0, feeder
        assert by_feeder[(before, feeder)]["meters_reporting"] > 0, feeder

    freshness = _freshness_rows(broken)
    assert freshness[before]["passed"] and not freshness[late]["passed"]
    assert freshness[late]["severity"] == "WARN"
    assert freshness[late]["description"] == f"late: {late.isoformat()}"
    _assert_check_counts_match(broken)

    meter = sorted(utility.meter_by_region.values())[BAD_ROWS_METER_REGION]
    feeder = broken.platform.warehouse.read(
        "SELECT feeder_id FROM meters WHERE meter_id = ?", [meter]
    )["feeder_id"][0].as_py()
    assert by_feeder[(before, feeder)]["rows_rejected"] == 2
    assert days[before]["rows_rejected"] == 2 and days[late]["rows_rejected"] == 0
    assert days[late]["files_quarantined"] == 1 and days[before]["files_quarantined"] == 0

    meta = {k: v.value for k, v in broken.report.items()}
    assert meta["files_quarantined"] == 1 and meta["rows_rejected"] == 2
    assert "readings_arrived" in meta["failed_checks"] and late.isoformat() in meta["failed_checks"]
    assert "fix/no_good_row.csv" in meta["report"]


def test_report_markdown_embeds_a_chart_per_day(broken: Outcome) -> None:
    markdown = broken.report["report"].value
    assert isinstance(broken.report["report"], dg.MarkdownMetadataValue)
    images = re.findall(
        r"!\[data quality (\S+)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown
    )
    assert [day for day, _ in images] == [d.isoformat() for d in broken.days]
    for _, data in images:
        png = base64.b64decode(data)
        assert png.startswith(PNG_MAGIC) and len(png) > 5_000
    assert "### Failed checks" in markdown and "### Quarantined files" in markdown


def test_report_rerun_replaces_its_days(broken: Outcome) -> None:
    before = _rows(broken, "data_quality_report")
    rerun = _run(
        broken.platform, dg.DagsterInstance.ephemeral(), broken.days, ["data_quality_report"]
    )
    assert rerun.success
    after = _rows(broken, "data_quality_report")
    changed = {k for k in before[0] if k not in ("checks_passed", "checks_failed")}
    # A fresh instance has no check history: only the check counts may change.
    assert [{k: r[k] for k in changed} for r in after] == [
        {k: r[k] for k in changed} for r in before
    ]
    assert sum(r["checks_failed"] or 0 for r in after) == 0
