"""Days held back by failed blocking checks, recorded per local day in the warehouse.

Dagster fails a whole step when a blocking check fails, and cannot mark one partition of a
single-run backfill failed (dagster-io/dagster#17836). So the checks of a multi-day run record
which days failed; the assets downstream build the days that passed in the same run and leave
the held ones out until a re-run of the day passes (the landing sensor re-runs a day when its
late file lands).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa

from smartgrid_assets import contract
from smartgrid_assets.platform import Platform
from smartgrid_assets.quality.runner import GroupResult


def held_by(results: Sequence[GroupResult]) -> dict[date, list[GroupResult]]:
    """The failed blocking ERROR results of each day that has one."""
    held: dict[date, list[GroupResult]] = {}
    for result in results:
        if result.holds_day and result.day is not None:
            held.setdefault(result.day, []).append(result)
    return held


def reason(result: GroupResult) -> str:
    failed = [o.expectation for o in result.expectations if not o.passed]
    share = (
        f", {result.affected_share:.0%} of the meters in service affected"
        if result.affected_share is not None
        else ""
    )
    return f"{result.check}: {result.unexpected_count} unexpected{share} ({'; '.join(failed)})"


def record_holds(
    platform: Platform, asset: str, days: list[date], results: Sequence[GroupResult]
) -> dict[date, list[str]]:
    """Replace the holds of `asset` on `days` by those of `results`; the reasons by day."""
    held = held_by(results)
    now = datetime.now(UTC)
    rows = [
        {
            "local_day": day,
            "asset_key": asset,
            "check_name": result.check,
            "unexpected_count": result.unexpected_count,
            "affected_share": result.affected_share,
            "reason": reason(result),
            "held_at": now,
        }
        for day, failed in sorted(held.items())
        for result in failed
    ]
    table = pa.Table.from_pylist(rows, schema=contract.QUALITY_HOLDS)
    platform.warehouse.replace(
        "quality_holds", table, match={"asset_key": [asset], "local_day": days}
    )
    return {day: [reason(r) for r in failed] for day, failed in sorted(held.items())}


def held_days(platform: Platform, days: list[date]) -> dict[date, list[str]]:
    """The held days among `days`, with the reasons they are held."""
    if not days or not platform.warehouse.has_table("quality_holds"):
        return {}
    table = platform.warehouse.read(
        "SELECT local_day, reason FROM quality_holds WHERE local_day IN (SELECT unnest(?)) "
        "ORDER BY local_day, asset_key, check_name",
        [days],
    )
    held: dict[date, list[str]] = {}
    for row in table.to_pylist():
        held.setdefault(row["local_day"], []).append(row["reason"])
    return held


def released(days: list[date], held: dict[date, list[str]], lag: int = 0) -> list[date]:
    """The days to build: those whose day `lag` days earlier is not held (a forecast for a
    day is issued from the day before: lag 1)."""
    return [day for day in days if day - timedelta(days=lag) not in held]
