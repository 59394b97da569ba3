"""What every asset module shares: the daily partitions, the warehouse pool, metadata helpers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dagster as dg
import pyarrow as pa

from smartgrid_assets.days import window_days
from smartgrid_assets.settings import load_settings

SETTINGS = load_settings()
WAREHOUSE_POOL = "warehouse"

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=SETTINGS.start_date.isoformat(), timezone=SETTINGS.tz
)


def partition_days(context: dg.AssetExecutionContext) -> list:
    """The local days of the run's partition window (one day, or a whole backfill range)."""
    window = context.partition_time_window
    return window_days(window.start, window.end, SETTINGS.tz)


def md_table(rows: Sequence[Mapping[str, object]], limit: int = 50) -> dg.MetadataValue:
    """A Markdown table for the UI; says how many rows were left out."""
    if not rows:
        return dg.MetadataValue.md("_none_")
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows[:limit]:
        cells = (str(row[c]).replace("|", "\\|").replace("\n", " ") for c in columns)
        lines.append("| " + " | ".join(cells) + " |")
    if len(rows) > limit:
        lines.append(f"\n_{len(rows) - limit} more rows not shown_")
    return dg.MetadataValue.md("\n".join(lines))


def rejected_summary(rejected: pa.Table) -> dict[str, dg.MetadataValue]:
    return {
        "rejected_rows": dg.MetadataValue.int(rejected.num_rows),
        "rejected_sample": md_table(rejected.slice(0, 50).to_pylist()),
    }
