"""Reading alertable events from the warehouse without holding up a sensor tick."""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa

from smartgrid_assets.contract import ANOMALY_EVENTS
from smartgrid_assets.warehouse import Warehouse
from smartgrid_assets.warehouse.duckdb_warehouse import DuckDBWarehouse

from .model import ALERT_SEVERITIES

EVENTS_TABLE = "anomaly_events"
COLUMNS = '"event_id", "type", "meter_id", "asset_id", "start", "end", "severity", "score"'


def quick(warehouse: Warehouse, busy_timeout_s: float = 2.0) -> Warehouse:
    """The same warehouse, waiting at most `busy_timeout_s` for a DuckDB writer (the pipeline's
    default waits minutes). Its connections are short-lived and read-only; PostgreSQL readers
    never wait for writers."""
    if isinstance(warehouse, DuckDBWarehouse):
        return DuckDBWarehouse(warehouse.path, busy_timeout_s=busy_timeout_s)
    return warehouse


def read_alert_events(warehouse: Warehouse, since: datetime | None, horizon: timedelta) -> pa.Table:
    """Warning and critical events starting at or after `since` and within `horizon` of the
    newest one's start (none before the anomaly report first ran).

    Raises WarehouseError (WarehouseBusy while a DuckDB writer holds the file)."""
    if not warehouse.has_table(EVENTS_TABLE):
        return ANOMALY_EVENTS.empty_table()
    severities = ", ".join(f"'{s}'" for s in ALERT_SEVERITIES)
    newest = f'SELECT max("start") FROM {EVENTS_TABLE} WHERE severity IN ({severities})'
    where = [
        f"severity IN ({severities})",
        f"\"start\" >= ({newest}) - INTERVAL '{int(horizon.total_seconds())} seconds'",
    ]
    params: list[object] = []
    if since is not None:
        where.append('"start" >= ?')
        params.append(since)
    return warehouse.read(
        f"SELECT {COLUMNS} FROM {EVENTS_TABLE} WHERE {' AND '.join(where)}", params
    )
