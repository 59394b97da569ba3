"""Where the synthetic utility puts its files; the same keys the landing zone receives."""

from __future__ import annotations

import datetime as dt

FORMATS = ("csv", "parquet")
LATE_DIR = "late"


def region_format(region_index: int) -> str:
    """Regions alternate CSV / Parquet so ingestion sees both head-end export formats."""
    return FORMATS[region_index % len(FORMATS)]


def readings_key(region: str, date: dt.date, fmt: str) -> str:
    return f"readings/{region}/{region}_{date.isoformat()}.{fmt}"


def late_key(region: str, date: dt.date, fmt: str) -> str:
    return f"{LATE_DIR}/{readings_key(region, date, fmt)}"
