"""What every asset module shares: the daily partitions, the warehouse pool, metadata helpers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

import dagster as dg
import pyarrow as pa

from smartgrid_assets.days import window_days
from smartgrid_assets.pipeline.holds import held_days, released
from smartgrid_assets.platform import Platform
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


def released_days(
    context: dg.AssetExecutionContext, platform: Platform, lag: int = 0
) -> tuple[list, dict[str, list[str]]]:
    """The run's days that may be built (see `pipeline/holds.py`), and the held ones with
    their reasons, for the metadata."""
    days = partition_days(context)
    held = held_days(platform, [d - timedelta(days=lag) for d in days])
    build = released(days, held, lag)
    if len(build) < len(days):
        context.log.warning(
            f"{len(days) - len(build)} of {len(days)} days held back by failed blocking checks: "
            + ", ".join(str(d) for d in days if d not in build)[:2000]
        )
    return build, {day.isoformat(): reasons for day, reasons in held.items()}


def held_metadata(held: Mapping[str, list[str]]) -> dict[str, dg.MetadataValue]:
    return {
        "held_days": dg.MetadataValue.int(len(held)),
        "held": md_table([{"day": d, "reasons": "; ".join(r)} for d, r in sorted(held.items())]),
    }


#: days a per-day metadata entry lists one by one; Dagster copies a range run's metadata into
#: the materialization of every day of it, so a backfill of years lists only its totals
BY_DAY_LIMIT = 62


def by_day(values: Mapping[str, object]) -> dg.MetadataValue:
    """A value per day for the UI (short runs), or the days' span and the values' extremes
    or distinct values (long ones)."""
    if len(values) <= BY_DAY_LIMIT:
        return dg.MetadataValue.json(dict(values))
    days = sorted(values)
    seen = [values[d] for d in days]
    summary: dict[str, object] = {"days": len(days), "first": days[0], "last": days[-1]}
    if all(isinstance(v, int) for v in seen):
        summary |= {"min": min(seen), "max": max(seen), "empty_days": seen.count(0)}
    else:
        summary["values"] = sorted({str(v) for v in seen})[:BY_DAY_LIMIT]
    return dg.MetadataValue.json(summary)


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
