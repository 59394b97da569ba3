from datetime import UTC, datetime

import dagster as dg
import pyarrow.compute as pc

from smartgrid_assets import vee
from smartgrid_assets.defs.common import (
    WAREHOUSE_POOL,
    daily_partitions,
    md_table,
    partition_days,
    rejected_summary,
)
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
)
def raw_readings(
    context: dg.AssetExecutionContext, platform: dg.ResourceParam[Platform]
) -> dg.MaterializeResult:
    """Landed readings of the partition's local days, as landed (lake); bad rows rejected."""
    load = ingest_raw_readings(platform, partition_days(context))
    quarantined = [q for q in platform.landing.quarantined() if q["key"].startswith("readings/")]
    reasons = load.rejected.group_by("reason").aggregate([("row", "count")]).to_pylist()
    return dg.MaterializeResult(
        metadata={
            "rows": dg.MetadataValue.int(sum(load.rows_by_day.values())),
            "rows_by_day": dg.MetadataValue.json(load.rows_by_day),
            "files": dg.MetadataValue.int(len(load.files)),
            "newly_quarantined": md_table(load.quarantined),
            "quarantined_total": dg.MetadataValue.int(len(quarantined)),
            "quarantined_files": md_table(
                [{"file": q["key"], "reason": q["reason"]} for q in quarantined]
            ),
            "rejected_by_reason": md_table(reasons),
            **rejected_summary(load.rejected),
        }
    )


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
)
def cleaned_readings(
    context: dg.AssetExecutionContext, platform: dg.ResourceParam[Platform]
) -> dg.MaterializeResult:
    """Validated, estimated and edited readings (VEE): one row per meter, channel, interval."""
    load = clean_readings(platform, partition_days(context), as_of=datetime.now(UTC))
    sufficiency = load.sufficiency["sufficiency"]
    return dg.MaterializeResult(
        metadata={
            "rows_in": dg.MetadataValue.int(load.rows_in),
            "rows_out": dg.MetadataValue.int(load.rows_out),
            "rows_by_day": dg.MetadataValue.json(load.rows_by_day),
            "flags_by_rule": dg.MetadataValue.json(load.flags_by_rule),
            "rows_by_quality": dg.MetadataValue.json(load.rows_by_quality),
            "sufficiency_mean": dg.MetadataValue.float(float(pc.mean(sufficiency).as_py() or 0.0)),
            "meter_days_below_90pct": dg.MetadataValue.int(
                int(pc.sum(pc.less(sufficiency, 0.9)).as_py() or 0)
            ),
            "vee_version": dg.MetadataValue.text(vee.VEE_VERSION),
        }
    )
