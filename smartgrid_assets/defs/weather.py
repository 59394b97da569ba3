import dagster as dg

from smartgrid_assets.defs.common import (
    WAREHOUSE_POOL,
    daily_partitions,
    md_table,
    partition_days,
    rejected_summary,
)
from smartgrid_assets.pipeline.weather import load_weather
from smartgrid_assets.platform import Platform


@dg.asset(
    group_name="weather",
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
)
def weather(
    context: dg.AssetExecutionContext, platform: dg.ResourceParam[Platform]
) -> dg.MaterializeResult:
    """Observed temperature and weather forecasts as issued, by local day."""
    load = load_weather(platform, partition_days(context))
    return dg.MaterializeResult(
        metadata={
            "observed_rows": dg.MetadataValue.int(load.rows["weather_observed"]),
            "forecast_rows": dg.MetadataValue.int(load.rows["weather_forecast"]),
            "files": dg.MetadataValue.json(load.files),
            "quarantined_files": md_table(load.quarantined),
            **rejected_summary(load.rejected),
        }
    )
