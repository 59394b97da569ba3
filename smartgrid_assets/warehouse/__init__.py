"""The one warehouse access layer: what analysts query, and what assets load their tables into."""

from smartgrid_assets.warehouse.base import (
    ReadOnlyViolation,
    Warehouse,
    WarehouseBusy,
    WarehouseError,
    Window,
)
from smartgrid_assets.warehouse.factory import warehouse

__all__ = [
    "ReadOnlyViolation",
    "Warehouse",
    "WarehouseBusy",
    "WarehouseError",
    "Window",
    "warehouse",
]
