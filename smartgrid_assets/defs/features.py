import dagster as dg
import pyarrow.compute as pc

from smartgrid_assets.defs.common import (
    WAREHOUSE_POOL,
    by_day,
    daily_partitions,
    held_metadata,
    released_days,
)
from smartgrid_assets.pipeline.features import build_feeder_hourly, build_meter_hourly
from smartgrid_assets.platform import Platform

_single_run = dg.BackfillPolicy.single_run()


@dg.asset(
    group_name="features",
    partitions_def=daily_partitions,
    backfill_policy=_single_run,
    deps=["cleaned_readings"],
    kinds={"parquet"},
)
def meter_hourly(
    context: dg.AssetExecutionContext, platform: dg.ResourceParam[Platform]
) -> dg.MaterializeResult:
    """Cleaned energy per meter and local clock hour (lake), for the days not held."""
    days, held = released_days(context, platform)
    rows_by_day = build_meter_hourly(platform, days) if days else {}
    return dg.MaterializeResult(
        metadata={
            "rows": dg.MetadataValue.int(sum(rows_by_day.values())),
            "rows_by_day": by_day(rows_by_day),
            **held_metadata(held),
        }
    )


@dg.asset(
    group_name="features",
    partitions_def=daily_partitions,
    backfill_policy=_single_run,
    deps=["meter_hourly", "meters", "weather"],
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
)
def feeder_hourly(
    context: dg.AssetExecutionContext, platform: dg.ResourceParam[Platform]
) -> dg.MaterializeResult:
    """Hourly load rolled up by transformer, feeder, substation and system, with observed and
    day-ahead forecast weather (warehouse), for the days not held."""
    days, held = released_days(context, platform)
    if not days:
        return dg.MaterializeResult(
            metadata={"rows": dg.MetadataValue.int(0), **held_metadata(held)}
        )
    table = build_feeder_hourly(platform, days)
    by_level = table.group_by("level").aggregate([("asset_id", "count_distinct")]).to_pylist()
    missing_weather = pc.sum(pc.is_null(table["temperature_c"])).as_py() if table.num_rows else 0
    return dg.MaterializeResult(
        metadata={
            "rows": dg.MetadataValue.int(table.num_rows),
            "assets_by_level": dg.MetadataValue.json(
                {r["level"]: r["asset_id_count_distinct"] for r in by_level}
            ),
            "hours_without_observed_weather": dg.MetadataValue.int(int(missing_weather or 0)),
            **held_metadata(held),
        }
    )
