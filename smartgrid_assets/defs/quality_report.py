"""Freshness of the readings and the daily data quality report, and when they run: at
SMARTGRID_FRESHNESS_HOUR local time, for the local day that just ended."""

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime

import dagster as dg
import pyarrow.compute as pc

from smartgrid_assets.days import days_between, window_days
from smartgrid_assets.defs.common import (
    SETTINGS,
    WAREHOUSE_POOL,
    daily_partitions,
    md_table,
    partition_days,
)
from smartgrid_assets.pipeline.freshness import DayFreshness, judge, latest_due_day
from smartgrid_assets.pipeline.quality_report import load_quality_report, render_markdown
from smartgrid_assets.platform import Platform

# Run tags Dagster sets on a partition's run and on a single-run backfill over a range.
PARTITION_TAG = "dagster/partition"
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
CHECK_HISTORY = 100  # evaluations of each check looked through for the report's days
# Metadata of a check that judges several local days in one evaluation: which it judged and
# which of them failed, so the report can tell the days apart.
JUDGED_DAYS, FAILED_DAYS = "local_days", "failed_days"


@dg.asset_check(
    asset="raw_readings",
    blocking=True,  # the quality report, downstream in the same run, waits for the verdict
    description=(
        "Every feeder with meters in service has readings of the local day by "
        "SMARTGRID_FRESHNESS_HOUR on the next day (a warning when not; a day not due yet passes)."
    ),
)
def readings_arrived(
    context: dg.AssetCheckExecutionContext, platform: dg.ResourceParam[Platform]
) -> dg.AssetCheckResult:
    """Judges the run's partition days, or the latest due day in a run without partitions."""
    now, hour = datetime.now(UTC), platform.settings.freshness_hour
    run = context.op_execution_context
    if run.has_partition_key or run.has_partition_key_range:
        window = run.partition_time_window
        days = window_days(window.start, window.end, platform.tz)
    else:
        days = [latest_due_day(now, platform.tz, hour)]
    verdicts = judge(platform, days, now, hour)
    late = [v for v in verdicts if v.late]
    missing = [
        {"local_day": v.day.isoformat(), "feeder_id": feeder, "deadline": v.deadline.isoformat()}
        for v in late
        for feeder in v.missing
    ]
    reporting = sum(sum(v.feeders["meters_reporting"].to_pylist()) for v in verdicts)
    in_service = sum(sum(v.feeders["meters"].to_pylist()) for v in verdicts)
    return dg.AssetCheckResult(
        passed=not late,
        severity=dg.AssetCheckSeverity.WARN,
        description=_verdict(verdicts),
        metadata={
            JUDGED_DAYS: dg.MetadataValue.json([v.day.isoformat() for v in verdicts]),
            FAILED_DAYS: dg.MetadataValue.json([v.day.isoformat() for v in late]),
            "not_due_days": dg.MetadataValue.json(
                [v.day.isoformat() for v in verdicts if not v.due]
            ),
            "deadline": dg.MetadataValue.text(f"{hour:02d}:00 {platform.tz} on the next day"),
            "feeders_without_readings": dg.MetadataValue.int(len(missing)),
            "missing": md_table(missing),
            "meters_reporting": dg.MetadataValue.int(reporting),
            "meters_in_service": dg.MetadataValue.int(in_service),
        },
    )


def _verdict(verdicts: list[DayFreshness]) -> str:
    late = [v.day.isoformat() for v in verdicts if v.late]
    if late:
        return f"late: {', '.join(late)}"
    if not any(v.due for v in verdicts):
        return f"not due before {min(v.deadline for v in verdicts).isoformat()}"
    return "on time"


def _days_of_run(tags: dict[str, str]) -> set[date]:
    """The local days a run was about, from its partition tags (none for other runs)."""
    if PARTITION_TAG in tags:
        return {date.fromisoformat(tags[PARTITION_TAG])}
    if all(tag in tags for tag in RANGE_TAGS):
        first, last = (date.fromisoformat(tags[tag]) for tag in RANGE_TAGS)
        return set(days_between(first, last)) | {last}
    return set()


def _code_location_checks() -> Sequence[dg.AssetCheckKey]:
    """Every asset check of the code location. Imported here, not at the top: the definitions
    import this module."""
    from smartgrid_assets.definitions import defs

    return sorted(defs.resolve_asset_graph().asset_check_keys, key=str)


def _judged(
    evaluation: dg.AssetCheckEvaluation, partition: str | None, run_days: set[date]
) -> dict[date, bool]:
    """The local days an evaluation judged, and whether each passed: the days its metadata
    names, else its partition's day, else those of the run it ran in."""
    meta = evaluation.metadata
    if JUDGED_DAYS in meta:
        days = {date.fromisoformat(d) for d in meta[JUDGED_DAYS].value}
    else:
        days = {date.fromisoformat(partition)} if partition else run_days
    if FAILED_DAYS in meta:
        failed = {date.fromisoformat(d) for d in meta[FAILED_DAYS].value}
    else:
        failed = set() if evaluation.passed else days
    return {day: day not in failed for day in days}


def check_outcomes(
    instance: dg.DagsterInstance, check_keys: Iterable[dg.AssetCheckKey], days: list[date]
) -> list[dict]:
    """The latest verdict of each check on each of the days, from the instance's history."""
    histories = {
        key: [
            record
            for record in instance.event_log_storage.get_asset_check_execution_history(
                key, limit=CHECK_HISTORY
            )
            if isinstance(record.evaluation, dg.AssetCheckEvaluation)
        ]
        for key in check_keys
    }
    run_ids = {r.run_id for records in histories.values() for r in records if not r.partition}
    run_days = {
        run.run_id: _days_of_run(dict(run.tags))
        for run in (instance.get_runs(dg.RunsFilter(run_ids=list(run_ids))) if run_ids else [])
    }
    outcomes = []
    for key, records in histories.items():
        pending = set(days)
        for record in records:  # newest first
            evaluation = record.evaluation
            judged = _judged(evaluation, record.partition, run_days.get(record.run_id, set()))
            for day in sorted(pending & set(judged)):
                pending.discard(day)
                outcomes.append(
                    {
                        "local_day": day,
                        "asset_key": key.asset_key.to_user_string(),
                        "check_name": key.name,
                        "passed": judged[day],
                        "severity": evaluation.severity.value,
                        "description": evaluation.description,
                        "evaluated_at": datetime.fromtimestamp(record.create_timestamp, UTC),
                        "run_id": record.run_id,
                    }
                )
    return outcomes


@dg.asset(
    group_name="quality",
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=["raw_readings", "cleaned_readings", "meters"],
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
)
def data_quality_report(
    context: dg.AssetExecutionContext, platform: dg.ResourceParam[Platform]
) -> dg.MaterializeResult:
    """Per local day and feeder: VEE flags, data sufficiency, rejected rows, quarantined files
    and asset-check outcomes, with a chart, so a person sees the quality of a day at a glance."""
    days = partition_days(context)
    outcomes = check_outcomes(context.instance, _code_location_checks(), days)
    report = load_quality_report(platform, days, outcomes)
    whole = [report.day_row(day) for day in days]
    expected = sum(row["intervals_expected"] for row in whole)
    failed = report.checks.filter(pc.invert(report.checks["passed"]))
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.md(render_markdown(report)),
            "sufficiency": dg.MetadataValue.float(
                sum(row["intervals_actual"] for row in whole) / expected if expected else 0.0
            ),
            "feeders": dg.MetadataValue.int(report.table.num_rows - len(days)),
            "rows_rejected": dg.MetadataValue.int(sum(row["rows_rejected"] for row in whole)),
            "files_quarantined": dg.MetadataValue.int(
                sum(row["files_quarantined"] for row in whole)
            ),
            "checks_passed": dg.MetadataValue.int(sum(row["checks_passed"] for row in whole)),
            "checks_failed": dg.MetadataValue.int(sum(row["checks_failed"] for row in whole)),
            "failed_checks": md_table(
                failed.select(["local_day", "asset_key", "check_name", "severity"]).to_pylist()
            ),
        }
    )


data_quality_job = dg.define_asset_job(
    "data_quality_job",
    selection=dg.AssetSelection.checks(readings_arrived)
    | dg.AssetSelection.assets(data_quality_report),
    description="Whether a local day's readings arrived in time, then its data quality report.",
)

data_quality_schedule = dg.build_schedule_from_partitioned_job(
    data_quality_job,
    hour_of_day=SETTINGS.freshness_hour,
    description=(
        "Every day at SMARTGRID_FRESHNESS_HOUR in SMARTGRID_TZ, for the local day that just "
        "ended: its readings' freshness, then its data quality report."
    ),
)
