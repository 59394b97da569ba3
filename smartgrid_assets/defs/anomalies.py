from datetime import date

import dagster as dg

from smartgrid_assets import anomalies
from smartgrid_assets.defs.common import (
    SETTINGS,
    WAREHOUSE_POOL,
    daily_partitions,
    held_metadata,
    md_table,
    partition_days,
    released_days,
)
from smartgrid_assets.defs.quality import gated_by_blocking_checks
from smartgrid_assets.pipeline.anomalies import (
    EVALUATION_DAYS,
    EVALUATION_MAX_METERS,
    LABELS_PREFIX,
    LOOKBACK_DAYS,
    AnomalyLoad,
    detect_anomalies,
    evaluate_anomalies,
    evaluate_detectors,
    report_summary,
)
from smartgrid_assets.platform import Platform

_history = dg.TimeWindowPartitionMapping(
    start_offset=-LOOKBACK_DAYS, allow_nonexistent_upstream_partitions=True
)


@dg.asset(
    group_name="anomalies",
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[
        dg.AssetDep("cleaned_readings", partition_mapping=_history),
        dg.AssetDep("meter_hourly", partition_mapping=_history),
        "meters",
    ],
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    code_version=anomalies.DETECTOR_VERSION,
    automation_condition=gated_by_blocking_checks(dg.AutomationCondition.eager()),
)
def anomaly_report(
    context: dg.AssetExecutionContext, platform: dg.ResourceParam[Platform]
) -> dg.MaterializeResult:
    """Anomaly events (stuck and dead meters, outages, theft-like drops, reverse flow,
    transformer overload) from values as read and the VEE flags, merged across days."""
    days, held = released_days(context, platform)
    if not days:
        return dg.MaterializeResult(
            metadata={"events": dg.MetadataValue.int(0), **held_metadata(held)}
        )
    load = detect_anomalies(platform, days)
    return dg.MaterializeResult(metadata={**report_metadata(load), **held_metadata(held)})


def _few(names: list[str], limit: int = 50) -> str:
    if not names:
        return "_none_"
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def report_metadata(load: AnomalyLoad) -> dict[str, dg.MetadataValue]:
    """`report_summary` as run metadata."""
    summary = report_summary(load)
    return {
        "events": dg.MetadataValue.int(summary.events),
        "alarms_per_1000_meter_days": dg.MetadataValue.float(summary.alarms_per_1000),
        "anomaly_budget_per_1000_meter_days": dg.MetadataValue.float(summary.budget),
        "meter_days": dg.MetadataValue.int(load.meter_days),
        "events_by_type": md_table(summary.by_type),
        "events_to_act_on": md_table(summary.to_act_on),
        "calibration": md_table(summary.calibration),
        "insufficient_history": dg.MetadataValue.md(_few(summary.insufficient_history)),
        "treated_as_having_generation": dg.MetadataValue.md(_few(summary.generation)),
        "merged_away": dg.MetadataValue.int(len(load.superseded)),
    }


@dg.asset(
    group_name="anomalies",
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=["anomaly_report", "meter_hourly"],
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    code_version=anomalies.DETECTOR_VERSION,
)
def anomaly_evaluation(
    context: dg.AssetExecutionContext, platform: dg.ResourceParam[Platform]
) -> dg.MaterializeResult:
    """Precision, recall and F1 per anomaly type and overall, and false alarms per 1,000
    meter-days, of the stored events against ground-truth labels landed under labels/."""
    load = evaluate_anomalies(platform, partition_days(context))
    if load.labels_key is None:
        return dg.MaterializeResult(
            metadata={"labels": dg.MetadataValue.text(f"none landed under {LABELS_PREFIX}")}
        )
    overall = load.scores["overall"]
    return dg.MaterializeResult(
        metadata={
            "labels": dg.MetadataValue.text(load.labels_key),
            "f1": dg.MetadataValue.float(float(overall["f1"] or 0.0)),
            "false_alarms_per_1000_meter_days": dg.MetadataValue.float(
                float(load.scores["false_alarms_per_1000_meter_days"] or 0.0)
            ),
            "by_type": md_table(
                load.table.select(
                    ["type", "events", "labels", "precision", "recall", "f1", "false_alarms"]
                ).to_pylist()
            ),
        }
    )


class DetectorEvaluationConfig(dg.Config):
    """Which period `detector_evaluation` judges."""

    #: last local day judged (ISO date); default: the day before the run, in SMARTGRID_TZ
    last_day: str | None = None
    days: int = EVALUATION_DAYS
    max_meters: int = EVALUATION_MAX_METERS
    seed: int = 0


@dg.asset(
    group_name="anomalies",
    deps=[dg.AssetDep("cleaned_readings"), "meters"],
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    code_version=anomalies.DETECTOR_VERSION,
)
def detector_evaluation(
    context: dg.AssetExecutionContext,
    config: DetectorEvaluationConfig,
    platform: dg.ResourceParam[Platform],
) -> dg.MaterializeResult:
    """How the detectors do on this utility's own meters: known anomalies injected into a copy
    of the last days' readings (a seeded sample of meters), recall, precision and F1 per type,
    and the untouched readings' alarm rate; rows in the warehouse table detector_evaluation."""
    load = evaluate_detectors(
        platform,
        date.fromisoformat(config.last_day) if config.last_day else None,
        days=config.days,
        max_meters=config.max_meters,
        seed=config.seed,
    )
    last = load.last_day
    if load.first_day is None:
        context.log.info(f"no cleaned readings in the {config.days} days to {last}")
        return dg.MaterializeResult(
            metadata={
                "meters": dg.MetadataValue.int(0),
                "last_day": dg.MetadataValue.text(str(last)),
            }
        )
    overall = load.result["runs"][0]["overall"]
    untouched = load.result["untouched"]

    def num(value: object) -> float:
        return round(float(value), 3) if value is not None else 0.0

    return dg.MaterializeResult(
        metadata={
            "period": dg.MetadataValue.text(f"{load.first_day}..{last}"),
            "meters": dg.MetadataValue.int(int(load.result["meters"])),
            "meter_days": dg.MetadataValue.int(int(load.result["meter_days"])),
            "f1": dg.MetadataValue.float(num(overall["f1"])),
            "recall": dg.MetadataValue.float(num(overall["recall"])),
            "precision": dg.MetadataValue.float(num(overall["precision"])),
            "untouched_alarms_per_1000_meter_days": dg.MetadataValue.float(
                num(untouched["alarms_per_1000_meter_days"])
            ),
            "anomaly_budget_per_1000_meter_days": dg.MetadataValue.float(
                platform.settings.anomaly_budget
            ),
            "by_type": md_table(load.by_type()),
        }
    )


detector_evaluation_job = dg.define_asset_job(
    "detector_evaluation_job",
    selection=dg.AssetSelection.assets(detector_evaluation),
    description="The detectors scored on the live fleet's last 90 days, injected anomalies.",
)

detector_evaluation_schedule = dg.ScheduleDefinition(
    job=detector_evaluation_job,
    cron_schedule="0 4 * * 1",
    execution_timezone=SETTINGS.tz,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Mondays at 04:00 in SMARTGRID_TZ (off until turned on): detector_evaluation "
    "over the 90 local days to yesterday.",
)
