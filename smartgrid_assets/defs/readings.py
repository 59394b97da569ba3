from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import pyarrow.compute as pc

from smartgrid_assets import vee
from smartgrid_assets.defs.common import (
    WAREHOUSE_POOL,
    by_day,
    daily_partitions,
    md_table,
    partition_days,
    rejected_summary,
)
from smartgrid_assets.defs.quality import check_events, check_specs
from smartgrid_assets.pipeline.readings import clean_readings, ingest_raw_readings
from smartgrid_assets.platform import Platform

_single_run = dg.BackfillPolicy.single_run()


@dg.asset(
    group_name="readings",
    partitions_def=daily_partitions,
    backfill_policy=_single_run,
    deps=["meters"],
    pool=WAREHOUSE_POOL,
    kinds={"parquet"},
    check_specs=check_specs("raw_readings"),
)
def raw_readings(
    context: dg.AssetExecutionContext, platform: dg.ResourceParam[Platform]
) -> Iterator[dg.MaterializeResult | dg.Output | dg.AssetCheckEvaluation]:
    """Landed readings of the partition's local days, as landed (lake); bad rows rejected."""
    days = partition_days(context)
    load = ingest_raw_readings(platform, days)
    quarantined = [q for q in platform.landing.quarantined() if q["key"].startswith("readings/")]
    reasons = load.rejected.group_by("reason").aggregate([("row", "count")]).to_pylist()
    yield dg.MaterializeResult(
        metadata={
            "rows": dg.MetadataValue.int(sum(load.rows_by_day.values())),
            "rows_by_day": by_day(load.rows_by_day),
            "files": dg.MetadataValue.int(len(load.files)),
            "newly_quarantined": md_table(load.quarantined),
            "quarantined_total": dg.MetadataValue.int(len(quarantined)),
            "quarantined_files": md_table(
                [{"file": q["key"], "reason": q["reason"]} for q in quarantined]
            ),
            "rejected_by_reason": md_table(reasons),
            **rejected_summary(load.rejected),
            "landing_problems_count": dg.MetadataValue.int(len(load.landing_problems)),
            "landing_problems": md_table(load.landing_problems),
        }
    )
    yield from check_events(context, platform, "raw_readings", days)


@dg.asset(
    group_name="readings",
    partitions_def=daily_partitions,
    backfill_policy=_single_run,
    deps=[
        dg.AssetDep(
            "raw_readings",
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-1, allow_nonexistent_upstream_partitions=True
            ),
        ),
        "meters",
    ],
    pool=WAREHOUSE_POOL,
    kinds={"parquet"},
    code_version=vee.VEE_VERSION,
    check_specs=check_specs("cleaned_readings"),
)
def cleaned_readings(
    context: dg.AssetExecutionContext, platform: dg.ResourceParam[Platform]
) -> Iterator[dg.MaterializeResult | dg.Output | dg.AssetCheckEvaluation]:
    """Validated, estimated and edited readings (VEE): one row per meter, channel, interval.
    Its checks are blocking: a failed one stops everything downstream of the run."""
    days = partition_days(context)
    load = clean_readings(platform, days, as_of=datetime.now(UTC))
    sufficiency = load.sufficiency["sufficiency"]
    yield dg.MaterializeResult(
        metadata={
            "rows_in": dg.MetadataValue.int(load.rows_in),
            "rows_out": dg.MetadataValue.int(load.rows_out),
            "rows_by_day": by_day(load.rows_by_day),
            "flags_by_rule": dg.MetadataValue.json(load.flags_by_rule),
            "rows_by_quality": dg.MetadataValue.json(load.rows_by_quality),
            "sufficiency_mean": dg.MetadataValue.float(float(pc.mean(sufficiency).as_py() or 0.0)),
            "meter_days_below_90pct": dg.MetadataValue.int(
                int(pc.sum(pc.less(sufficiency, 0.9)).as_py() or 0)
            ),
            "vee_version": dg.MetadataValue.text(vee.VEE_VERSION),
        }
    )
    yield from check_events(context, platform, "cleaned_readings", days)
