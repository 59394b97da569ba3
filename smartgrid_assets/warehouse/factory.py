"""Choose the warehouse implementation from SMARTGRID_WAREHOUSE_URL."""

from __future__ import annotations

from pathlib import Path

from smartgrid_assets.lake import Lake
from smartgrid_assets.settings import Settings
from smartgrid_assets.warehouse.base import Warehouse, WarehouseError
from smartgrid_assets.warehouse.duckdb_warehouse import DuckDBWarehouse


def warehouse(settings: Settings, lake: Lake | None = None) -> Warehouse:
    url = settings.warehouse_url
    lake = lake if lake is not None else Lake.from_settings(settings)
    if url.startswith("duckdb://"):
        return DuckDBWarehouse(
            Path(url.removeprefix("duckdb://")), lake=lake, sql_timeout_s=settings.sql_timeout_s
        )
    if url.startswith(("postgresql://", "postgres://")):
        from smartgrid_assets.warehouse.postgres_warehouse import PostgresWarehouse

        return PostgresWarehouse(
            url,
            lake=lake,
            sql_url=settings.sql_url,
            analyst_role=settings.analyst_role,
            sql_timeout_s=settings.sql_timeout_s,
        )
    raise WarehouseError(
        f"SMARTGRID_WAREHOUSE_URL={url!r}: expected duckdb:///path or postgresql://..."
    )
