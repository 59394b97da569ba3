"""Have a local day's readings arrived? Judged per feeder once the day's deadline has passed.

A local day D is due at `hour` o'clock local time on D + 1 (`SMARTGRID_FRESHNESS_HOUR`): by then
every feeder with meters in service on D should have readings of D in `raw_readings`. A feeder
whose meters sent nothing is what a late or lost head-end export looks like (one export per
region and day), so the day is late while any feeder is missing; a day not due yet is not judged.
Readings count once they are in the lake (the landing sensor ingests a file within a minute of
its arrival), so a late export that arrives later makes the day fresh again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from smartgrid_assets import contract
from smartgrid_assets.days import day_bounds_utc
from smartgrid_assets.pipeline.registry import current_meters
from smartgrid_assets.platform import Platform
from smartgrid_assets.scratch import connect

NO_FEEDER = "(none)"  # meters registered without a feeder (e.g. a brought-your-own export)


@dataclass(frozen=True)
class DayFreshness:
    day: date
    deadline: datetime
    due: bool
    feeders: pa.Table  # feeder_id, meters (in service on the day), meters_reporting

    @property
    def missing(self) -> list[str]:
        """Feeders with meters in service and not one reading of the day."""
        return [
            row["feeder_id"]
            for row in self.feeders.to_pylist()
            if row["meters"] > 0 and row["meters_reporting"] == 0
        ]

    @property
    def late(self) -> bool:
        return self.due and (self.feeders.num_rows == 0 or bool(self.missing))


def deadline(day: date, tz: str, hour: int) -> datetime:
    """When `day`'s readings must have arrived: `hour` o'clock local time on the next day."""
    return datetime.combine(day + timedelta(days=1), time(hour), tzinfo=ZoneInfo(tz))


def latest_due_day(now: datetime, tz: str, hour: int) -> date:
    """The latest local day whose deadline has passed at `now` (yesterday after the hour)."""
    yesterday = now.astimezone(ZoneInfo(tz)).date() - timedelta(days=1)
    return yesterday if now >= deadline(yesterday, tz, hour) else yesterday - timedelta(days=1)


def feeder_arrivals(meters: pa.Table, readings: pa.Table, day: date, tz: str) -> pa.Table:
    """Per feeder: meters in service during `day` and how many of them have readings of it."""
    start, end = day_bounds_utc(day, tz)
    con = connect()
    try:
        con.register(
            "meters", meters.select(["meter_id", "feeder_id", "installed_at", "removed_at"])
        )
        con.register("readings", readings.select(["meter_id"]))
        return con.sql(
            """
            WITH active AS (
                SELECT meter_id, coalesce(feeder_id, ?) AS feeder_id FROM meters
                WHERE installed_at < ? AND (removed_at IS NULL OR removed_at > ?)
            ), reporting AS (SELECT DISTINCT meter_id FROM readings)
            SELECT a.feeder_id, count(*) AS meters, count(r.meter_id) AS meters_reporting
            FROM active a LEFT JOIN reporting r USING (meter_id)
            GROUP BY a.feeder_id ORDER BY a.feeder_id
            """,
            params=[NO_FEEDER, end, start],
        ).to_arrow_table()
    finally:
        con.close()


def judge(platform: Platform, days: list[date], now: datetime, hour: int) -> list[DayFreshness]:
    """The freshness of each local day as of `now` (injected, so any moment can be replayed)."""
    meters = current_meters(platform)
    dataset = platform.lake.dataset("raw_readings", contract.READINGS)
    verdicts = []
    for day in days:
        due_at = deadline(day, platform.tz, hour)
        readings = (
            dataset.to_table(columns=["meter_id"], filter=pc.field("day") == day)
            if dataset is not None
            else contract.READINGS.empty_table()
        )
        verdicts.append(
            DayFreshness(
                day=day,
                deadline=due_at,
                due=now >= due_at,
                feeders=feeder_arrivals(meters, readings, day, platform.tz),
            )
        )
    return verdicts
