import dagster as dg

from smartgrid_assets.defs.common import WAREHOUSE_POOL, md_table, rejected_summary
from smartgrid_assets.pipeline.registry import load_registry
from smartgrid_assets.platform import Platform


@dg.asset(group_name="registry", pool=WAREHOUSE_POOL, kinds={"duckdb"})
def meters(platform: dg.ResourceParam[Platform]) -> dg.MaterializeResult:
    """The meter registry and transformers, from the latest landed registry files."""
    load = load_registry(platform)
    return dg.MaterializeResult(
        metadata={
            "meters": dg.MetadataValue.int(load.rows["meters"]),
            "transformers": dg.MetadataValue.int(load.rows["transformers"]),
            "registry_files": dg.MetadataValue.json(load.files),
            "quarantined_files": md_table(load.quarantined),
            **rejected_summary(load.rejected),
        }
    )
