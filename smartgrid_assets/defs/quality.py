"""The GX suites (`smartgrid_assets.quality`) as asset checks: one check per group of
expectations, each result carrying GX's summary (unexpected count, sample rows, expectations).

`raw_readings` and `cleaned_readings` run their checks in their own step (`check_specs=` on the
asset). Their results are recorded per local day (partitioned checks), so the UI, automation
conditions and later runs see which day failed. A day failing a blocking check is held
(`pipeline/holds.py`): in a run over many days the others go on downstream; a run whose every
day is held fails, so nothing downstream runs. `meters`, `weather` and
`load_forecasts` are checked by separate checks (non-blocking).
"""

import warnings
from collections.abc import Iterator
from datetime import date

import dagster as dg

# Dagster has no public constructor for a partition's check target; AssetCheckResult builds
# the same record, but only for the step's single partition key, not for each day of a range.
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from smartgrid_assets import quality
from smartgrid_assets.defs.common import (
    WAREHOUSE_POOL,
    daily_partitions,
    md_table,
    partition_days,
)
from smartgrid_assets.pipeline.holds import record_holds
from smartgrid_assets.platform import Platform

# Per-day check results are what the design needs; Dagster still labels them preview.
warnings.filterwarnings(
    "ignore", category=dg.PreviewWarning, message="Specifying a partitions_def on an AssetCheckSpec"
)
_SEVERITY = {quality.ERROR: dg.AssetCheckSeverity.ERROR, quality.WARN: dg.AssetCheckSeverity.WARN}


def check_specs(asset: str) -> list[dg.AssetCheckSpec]:
    """One spec per expectation group of `asset`."""
    partitioned = asset in quality.PARTITIONED_ASSETS
    return [
        dg.AssetCheckSpec(
            group.name,
            asset=asset,
            description=group.description,
            blocking=group.blocking,
            partitions_def=daily_partitions if partitioned else None,
            metadata={"suite_version": quality.SUITE_VERSION, "severity": group.severity},
        )
        for group in quality.groups_for(asset)
    ]


def gated_by_blocking_checks(condition: dg.AutomationCondition) -> dg.AutomationCondition:
    """`condition`, held for a partition until the blocking checks of its deps have passed, and
    held while any day of a dep's partition window (the history it reads) failed one."""
    checks = dg.AutomationCondition
    failed = checks.any_checks_match(checks.check_failed(), blocking_only=True)
    return (
        condition & checks.all_deps_blocking_checks_passed() & ~checks.any_deps_match(failed)
    ).with_label("gated by upstream blocking checks")


def _metadata(result: quality.GroupResult) -> dict[str, dg.MetadataValue]:
    return {
        "unexpected_count": dg.MetadataValue.int(result.unexpected_count),
        **(
            {"affected_meter_share": dg.MetadataValue.float(round(result.affected_share, 4))}
            if result.affected_share is not None
            else {}
        ),
        "sample": md_table(result.sample),
        "expectations": md_table(
            [
                {
                    "expectation": o.expectation,
                    "passed": o.passed,
                    "unexpected_count": o.unexpected_count,
                    "error": o.error or "",
                }
                for o in result.expectations
            ]
        ),
        "suite_version": dg.MetadataValue.text(result.suite_version),
        "gx_summary": dg.MetadataValue.json(
            {
                "day": result.day.isoformat() if result.day else None,
                "passed": result.passed,
                "unexpected_count": result.unexpected_count,
                "expectations": [o.__dict__ for o in result.expectations],
                "sample": result.sample,
            }
        ),
    }


def _targets(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, days: list[date]
) -> dict[date, AssetCheckEvaluationTargetMaterializationData | None]:
    """Each day's latest materialization, which its check results are about: two queries
    for the whole run, not one per day (a backfill of years has a thousand days)."""
    latest = instance.event_log_storage.get_latest_storage_id_by_partition(
        asset_key,
        dg.DagsterEventType.ASSET_MATERIALIZATION,
        partitions={day.isoformat() for day in days},
    )
    ids = list(latest.values())
    records = (
        instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, storage_ids=ids), limit=len(ids)
        ).records
        if ids
        else []
    )
    by_partition = {r.partition_key: r for r in records}
    targets = {}
    for day in days:
        record = by_partition.get(day.isoformat())
        targets[day] = (
            None
            if record is None
            else AssetCheckEvaluationTargetMaterializationData(
                run_id=record.event_log_entry.run_id,
                storage_id=record.storage_id,
                timestamp=record.timestamp,
            )
        )
    return targets


def check_events(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
    platform: Platform,
    asset: str,
    days: list[date],
) -> Iterator[dg.Output | dg.AssetCheckEvaluation]:
    """Run the selected groups of a partitioned asset on each day: an output per check (what
    the step declares) and one evaluation per check and day. A failed blocking ERROR
    evaluation makes Dagster fail the step after it, so nothing downstream runs."""
    asset_key = dg.AssetKey(asset)
    selected = {k.name for k in context.selected_asset_check_keys if k.asset_key == asset_key}
    if not selected:
        return
    results = quality.run_checks(platform, asset, days, checks=selected)
    held = record_holds(platform, asset, days, results) if _blocks(asset) else {}
    # A failed blocking check fails the step and stops the whole run: only when no day of it
    # passed. Otherwise the held days' failures are recorded as not blocking this run, and
    # the assets downstream build the days that passed (see pipeline/holds.py).
    stop_run = len(held) == len(days)
    assets_def = (
        context.assets_def
        if isinstance(context, dg.AssetExecutionContext)
        else context.op_execution_context.assets_def
    )
    for name in sorted(selected):
        key = dg.AssetCheckKey(asset_key, name)
        yield dg.Output(None, output_name=assets_def.get_output_name_for_asset_check_key(key))
    targets = _targets(context.instance, asset_key, days)
    for result in results:
        assert result.day is not None
        metadata = _metadata(result)
        if result.holds_day:
            metadata["held"] = dg.MetadataValue.text(
                "the day is held: nothing downstream builds it until a re-run passes"
                + ("" if stop_run else "; the other days of the run went on")
            )
        yield dg.AssetCheckEvaluation(
            asset_key=asset_key,
            check_name=result.check,
            passed=result.passed,
            metadata=metadata,
            target_materialization_data=targets[result.day],
            severity=_SEVERITY[result.severity],
            blocking=result.blocking and (stop_run or not result.holds_day),
            partition=result.day.isoformat(),
        )


def _blocks(asset: str) -> bool:
    return any(group.blocking for group in quality.groups_for(asset))


@dg.multi_asset_check(specs=check_specs("meters"), pool=WAREHOUSE_POOL)
def meters_checks(
    context: dg.AssetCheckExecutionContext, platform: dg.ResourceParam[Platform]
) -> Iterator[dg.AssetCheckResult]:
    """The registry's suite on its current version."""
    selected = {k.name for k in context.selected_asset_check_keys}
    for result in quality.run_checks(platform, "meters", None, checks=selected):
        yield dg.AssetCheckResult(
            check_name=result.check,
            passed=result.passed,
            severity=_SEVERITY[result.severity],
            metadata=_metadata(result),
        )


@dg.multi_asset_check(specs=check_specs("weather"), pool=WAREHOUSE_POOL)
def weather_checks(
    context: dg.AssetCheckExecutionContext, platform: dg.ResourceParam[Platform]
) -> Iterator[dg.Output | dg.AssetCheckEvaluation]:
    """Observed and forecast weather of each local day of the run."""
    yield from check_events(context, platform, "weather", partition_days(context))


@dg.multi_asset_check(specs=check_specs("load_forecasts"), pool=WAREHOUSE_POOL)
def load_forecasts_checks(
    context: dg.AssetCheckExecutionContext, platform: dg.ResourceParam[Platform]
) -> Iterator[dg.Output | dg.AssetCheckEvaluation]:
    """Forecasts of each target day of the run: keys and ordered quantiles."""
    yield from check_events(context, platform, "load_forecasts", partition_days(context))
