"""The warehouse marts: two Python assets that bring what dbt needs of the lake into the
warehouse, and the dbt project (`dbt_project/`) as assets downstream of every Python asset.

dbt runs `dbt build` (models, the `dim_meter` snapshot and their tests; the tests surface as
asset checks) in the `warehouse` pool, on the warehouse SMARTGRID_WAREHOUSE_URL names (DuckDB
or PostgreSQL), for the run's partition window: its first and last local day go to dbt as the
vars `min_day` / `max_day`, and the incremental marts replace exactly those days.
"""

import json
import shutil
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, dbt_assets

from smartgrid_assets.defs.common import (
    WAREHOUSE_POOL,
    daily_partitions,
    held_metadata,
    partition_days,
    released_days,
)
from smartgrid_assets.pipeline.marts import load_meter_daily, load_transformer_loading
from smartgrid_assets.platform import Platform
from smartgrid_assets.warehouse_project import dbt_cli, warehouse_project

_single_run = dg.BackfillPolicy.single_run()


@dg.asset(
    group_name="features",
    partitions_def=daily_partitions,
    backfill_policy=_single_run,
    deps=["meter_hourly"],
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "postgres"},
)
def meter_daily(
    context: dg.AssetExecutionContext, platform: dg.ResourceParam[Platform]
) -> dg.MaterializeResult:
    """Energy, hourly peak and quality counts per meter and local day (warehouse): what the
    marts need of the lake's meter_hourly."""
    days, held = released_days(context, platform)
    if not days:
        return dg.MaterializeResult(
            metadata={"rows": dg.MetadataValue.int(0), **held_metadata(held)}
        )
    table = load_meter_daily(platform, days)
    return dg.MaterializeResult(
        metadata={
            "rows": dg.MetadataValue.int(table.num_rows),
            "meters": dg.MetadataValue.int(len(set(table["meter_id"].to_pylist()))),
            **held_metadata(held),
        }
    )


@dg.asset(
    group_name="features",
    partitions_def=daily_partitions,
    backfill_policy=_single_run,
    deps=["cleaned_readings", "meter_hourly", "meters"],
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "postgres"},
)
def transformer_loading(
    context: dg.AssetExecutionContext, platform: dg.ResourceParam[Platform]
) -> dg.MaterializeResult:
    """Hourly transformer loading (warehouse), computed by the overload detector's own
    function; fct_transformer_loading summarises it."""
    days, held = released_days(context, platform)
    if not days:
        return dg.MaterializeResult(
            metadata={"rows": dg.MetadataValue.int(0), **held_metadata(held)}
        )
    table = load_transformer_loading(platform, days)
    above = sum(1 for v in table["loading"].to_pylist() if v > 1.0)
    return dg.MaterializeResult(
        metadata={
            "rows": dg.MetadataValue.int(table.num_rows),
            "hours_above_rating": dg.MetadataValue.int(above),
            **held_metadata(held),
        }
    )


class MartsTranslator(DagsterDbtTranslator):
    """dbt models and the snapshot in the group `marts`; sources map to the Python assets
    through their `meta.dagster.asset_key`."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "marts"


@dbt_assets(
    manifest=warehouse_project.manifest_path,
    project=warehouse_project,
    name="warehouse_marts",
    partitions_def=daily_partitions,
    backfill_policy=_single_run,
    pool=WAREHOUSE_POOL,
    # several source tables are written by one Python asset (meters, transformers and
    # meters_history by `meters`; both weather tables by `weather`)
    dagster_dbt_translator=MartsTranslator(
        settings=DagsterDbtTranslatorSettings(enable_duplicate_source_asset_keys=True)
    ),
)
def warehouse_marts(
    context: dg.AssetExecutionContext, platform: dg.ResourceParam[Platform]
) -> Iterator[Any]:
    """Staging views, dims (with the registry snapshot dim_meter) and the partition's window of
    the incremental facts, with their dbt tests as asset checks."""
    days = partition_days(context)
    window = {"min_day": days[0].isoformat(), "max_day": days[-1].isoformat()}
    invocation = dbt_cli(platform.settings).cli(
        ["build", "--vars", json.dumps(window)], context=context
    )
    yield from invocation.stream()
    # Each invocation writes its own target folder (manifest, logs); one that failed stays.
    shutil.rmtree(invocation.target_path, ignore_errors=True)


MART_ASSETS = sorted(key.to_user_string() for key in warehouse_marts.keys)
