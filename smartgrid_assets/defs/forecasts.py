import dagster as dg

from smartgrid_assets import forecasting
from smartgrid_assets.defs.common import (
    WAREHOUSE_POOL,
    daily_partitions,
    md_table,
    partition_days,
)
from smartgrid_assets.pipeline.forecasts import issue_forecasts, score_forecasts
from smartgrid_assets.platform import Platform

_single_run = dg.BackfillPolicy.single_run()
_LOOKBACK = forecasting.ForecastConfig().lookback_days


@dg.asset(
    group_name="forecasts",
    partitions_def=daily_partitions,
    backfill_policy=_single_run,
    deps=[
        dg.AssetDep(
            "feeder_hourly",
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-_LOOKBACK, end_offset=-2, allow_nonexistent_upstream_partitions=True
            ),
        ),
        dg.AssetDep(
            "weather",
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-1, end_offset=-1, allow_nonexistent_upstream_partitions=True
            ),
        ),
    ],
    pool=WAREHOUSE_POOL,
    kinds={"scikitlearn", "duckdb"},
)
def load_forecasts(
    context: dg.AssetExecutionContext, platform: dg.ResourceParam[Platform]
) -> dg.MaterializeResult:
    """Day-ahead hourly load forecasts (P10/P50/P90) per feeder, substation and system, keyed by
    target day and stored as issued: 00:00 local the day before, from data before then."""
    table = issue_forecasts(platform, partition_days(context))
    counts = table.group_by(["model", "level"]).aggregate([("asset_id", "count_distinct")])
    return dg.MaterializeResult(
        metadata={
            "rows": dg.MetadataValue.int(table.num_rows),
            "series_by_model": md_table(counts.to_pylist()),
            "models": dg.MetadataValue.json(sorted(set(table["model"].to_pylist()))),
        }
    )


@dg.asset(
    group_name="forecasts",
    partitions_def=daily_partitions,
    backfill_policy=_single_run,
    deps=["load_forecasts", "feeder_hourly"],
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
)
def forecast_accuracy(
    context: dg.AssetExecutionContext, platform: dg.ResourceParam[Platform]
) -> dg.MaterializeResult:
    """MAE of every model against naive-1d, per series and target day, once actuals exist."""
    table = score_forecasts(platform, partition_days(context))
    summary = (
        table.group_by(["model", "level"])
        .aggregate([("mae", "mean"), ("rmae", "mean"), ("coverage_p10_p90", "mean")])
        .sort_by([("level", "ascending"), ("model", "ascending")])
        .to_pylist()
    )
    rounded = [
        {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in summary
    ]
    return dg.MaterializeResult(
        metadata={
            "rows": dg.MetadataValue.int(table.num_rows),
            "mean_by_model_and_level": md_table(rounded),
        }
    )
