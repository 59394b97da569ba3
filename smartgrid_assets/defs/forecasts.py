import dagster as dg

from smartgrid_assets import contract, forecasting
from smartgrid_assets.defs.common import (
    WAREHOUSE_POOL,
    by_day,
    daily_partitions,
    held_metadata,
    md_table,
    released_days,
)
from smartgrid_assets.defs.quality import gated_by_blocking_checks
from smartgrid_assets.pipeline.forecast_report import (
    FORECAST_COLUMNS,
    chosen_models,
    gather,
    read_actuals,
    render_markdown,
    summary_by_model_and_level,
)
from smartgrid_assets.pipeline.forecasts import (
    issue_forecasts,
    newest_choice,
    reconciliation_effect,
    score_forecasts,
)
from smartgrid_assets.platform import Platform

_single_run = dg.BackfillPolicy.single_run()
# the days a forecast reads to be issued (lags and naive bands); training reads further back
# as far as the data goes (ForecastConfig.lookback_days)
_LOOKBACK = forecasting.ForecastConfig().dependency_days


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
        # what feeder_hourly is made of: its blocking checks gate the forecast
        dg.AssetDep(
            "cleaned_readings",
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-_LOOKBACK, end_offset=-2, allow_nonexistent_upstream_partitions=True
            ),
        ),
    ],
    pool=WAREHOUSE_POOL,
    kinds={"scikitlearn", "duckdb"},
    automation_condition=gated_by_blocking_checks(dg.AutomationCondition.eager()),
)
def load_forecasts(
    context: dg.AssetExecutionContext, platform: dg.ResourceParam[Platform]
) -> dg.MaterializeResult:
    """Day-ahead hourly load forecasts (P10/P50/P90) per feeder, substation and system, keyed by
    target day and stored as issued: 00:00 local the day before, from data before then. The
    global model is the MLflow registry's champion as of each issue (trained weekly, promoted
    when it beats the champion); P50 is reconciled bottom-up (p50_base keeps the model's own);
    the chosen model family per series goes to forecast_model_choice. Metadata: a chart of
    P10/P50/P90 against the actuals (where known) and naive-1d for the system and each
    substation, a table for the feeders, and the days skipped with their reason."""
    days, held = released_days(context, platform, lag=1)
    if not days:
        return dg.MaterializeResult(
            metadata={"rows": dg.MetadataValue.int(0), **held_metadata(held)}
        )
    issued = issue_forecasts(platform, days)
    table = issued.forecasts
    counts = table.group_by(["model", "level"]).aggregate([("asset_id", "count_distinct")])
    choice = issued.choice.group_by(["level", "model"]).aggregate([("asset_id", "count")])
    return dg.MaterializeResult(
        metadata={
            "rows": dg.MetadataValue.int(table.num_rows),
            "series_by_model": md_table(counts.to_pylist()),
            "models": dg.MetadataValue.json(sorted(set(table["model"].to_pylist()))),
            "gbm_version_by_target_day": by_day(issued.models),
            "skipped_days": by_day(issued.skipped),
            "naive_only_series": dg.MetadataValue.json(issued.naive_only),
            "gbm_trained": md_table(issued.trained),
            "reconciliation_adjustment": md_table(reconciliation_adjustment(table)),
            "model_choice": md_table(choice.to_pylist()),
            "model_choice_by_series": md_table(newest_choice(issued.choice)),
            "forecasts": dg.MetadataValue.md(
                render_markdown(
                    table.select(FORECAST_COLUMNS).to_pandas(),
                    read_actuals(platform, days),
                    chosen_models(issued.choice),
                    platform.tz,
                )
            ),
            "mlflow_tracking_uri": dg.MetadataValue.text(
                _redacted(platform.settings.mlflow_tracking_uri)
            ),
            **held_metadata(held),
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
    """MAE of every model against naive-1d, per series and target day, once actuals exist: the
    rolling-origin backtest of the forecasts as issued. Metadata: MAE (kWh per hour), pooled
    rMAE and P10-P90 coverage per model and level, a chart of P10/P50/P90 against the actuals
    and naive-1d for the system and each substation with a table for the feeders, and the
    effect of reconciliation (MAE of the reconciled P50 against the model's own)."""
    days, held = released_days(context, platform)
    table = score_forecasts(platform, days) if days else contract.FORECAST_ACCURACY.empty_table()
    return dg.MaterializeResult(
        metadata={
            "rows": dg.MetadataValue.int(table.num_rows),
            "accuracy_by_model_and_level": md_table(summary_by_model_and_level(table)),
            "forecasts_against_actuals": dg.MetadataValue.md(
                render_markdown(*gather(platform, days), platform.tz) if days else ""
            ),
            "reconciliation_effect": md_table(reconciliation_effect(table)),
            **held_metadata(held),
        }
    )


def reconciliation_adjustment(table) -> list[dict]:
    """Mean |P50 - P50 base| relative to the base, per level and model (0 for feeders)."""
    frame = table.select(["level", "model", "p50", "p50_base"]).to_pandas()
    if frame.empty:
        return []
    frame["adj"] = (frame["p50"] - frame["p50_base"]).abs()
    frame["base"] = frame["p50_base"].abs()
    out = frame.groupby(["level", "model"], sort=True)[["adj", "base"]].sum().reset_index()
    out["mean_abs_change_pct"] = (100.0 * out["adj"] / out["base"]).round(3)
    return out[["level", "model", "mean_abs_change_pct"]].to_dict("records")


def _redacted(uri: str) -> str:
    """A tracking URI without credentials."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.password or parts.username:
        host = parts.hostname or ""
        netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return uri
