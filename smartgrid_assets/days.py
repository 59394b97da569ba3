"""Local days in the utility's time zone and their UTC bounds (a DST day is 23 or 25 hours)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def day_start_utc(day: date, tz: str) -> datetime:
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(tz)).astimezone(UTC)


def day_bounds_utc(day: date, tz: str) -> tuple[datetime, datetime]:
    return day_start_utc(day, tz), day_start_utc(day + timedelta(days=1), tz)


def days_between(first: date, end: date) -> list[date]:
    """Days in [first, end)."""
    return [first + timedelta(days=i) for i in range((end - first).days)]


def window_days(start: datetime, end: datetime, tz: str) -> list[date]:
    """The local days of a partition time window [start, end) given as aware datetimes."""
    zone = ZoneInfo(tz)
    return days_between(start.astimezone(zone).date(), end.astimezone(zone).date())


def local_date(instant: datetime, tz: str) -> date:
    return instant.astimezone(ZoneInfo(tz)).date()
