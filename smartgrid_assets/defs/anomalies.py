import dagster as dg

from smartgrid_assets import anomalies
from smartgrid_assets.defs.common import (
    WAREHOUSE_POOL,
    daily_partitions,
    held_metadata,
    md_table,
    partition_days,
    released_days,
)
from smartgrid_assets.defs.quality import gated_by_blocking_checks
from smartgrid_assets.pipeline.anomalies import (
    LABELS_PREFIX,
    LOOKBACK_DAYS,
    detect_anomalies,
    evaluate_anomalies,
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
    events = load.written
    by_type = events.group_by(["type", "severity"]).aggregate([("event_id", "count")])
    top = events.sort_by([("score", "descending")]).slice(0, 20)
    return dg.MaterializeResult(
        metadata={
            "events": dg.MetadataValue.int(events.num_rows),
            "events_by_type": md_table(by_type.to_pylist()),
            "top_events": md_table(
                top.select(
                    ["type", "meter_id", "asset_id", "start", "end", "severity", "score"]
                ).to_pylist()
            ),
            "merged_away": dg.MetadataValue.int(len(load.superseded)),
            **held_metadata(held),
        }
    )


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
