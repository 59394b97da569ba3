"""Public holidays by the utility's time zone: the one place that maps a zone to a calendar.

The synthetic utility (day types of its load profiles) and the forecasting features (holiday
flag) both read holidays from here, so a day is a holiday for one exactly when it is for the
other. A zone without a mapping has no holidays.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import holidays
import numpy as np
import pandas as pd

# Time zone -> (country, subdivision) for public holidays; other zones get none.
HOLIDAY_COUNTRIES: dict[str, tuple[str, str | None]] = {
    "Europe/Berlin": ("DE", None),
    "Europe/London": ("GB", None),
    "America/New_York": ("US", None),
    "Australia/Melbourne": ("AU", "VIC"),
}


def holiday_country(tz: str) -> str | None:
    """The country whose public holidays apply in a time zone, or None."""
    return HOLIDAY_COUNTRIES.get(tz, (None, None))[0]


def holiday_calendar(tz: str, years: Iterable[int] | None = None) -> holidays.HolidayBase | None:
    """The public-holiday calendar of a time zone for the given years, or None if unmapped.

    With ``years`` None the calendar fills in years as they are looked up (the `holidays`
    package's default); pass the years you need to get a fixed set of dates.
    """
    country, subdiv = HOLIDAY_COUNTRIES.get(tz, (None, None))
    if country is None:
        return None
    chosen = sorted(set(years)) if years is not None else None
    return holidays.country_holidays(country, subdiv=subdiv, years=chosen)


def _as_days(dates: Sequence[dt.date] | np.ndarray | pd.Series | pd.Index) -> np.ndarray:
    """Dates (datetime.date, numpy datetime64 or naive pandas timestamps) as datetime64[D]."""
    return np.asarray(pd.to_datetime(pd.Index(dates)).values.astype("datetime64[D]"))


def holidays_in(dates: Iterable[dt.date], tz: str) -> tuple[tuple[dt.date, str], ...]:
    """The (date, name) of every public holiday among ``dates``, in the order given."""
    dates = tuple(dates)
    cal = holiday_calendar(tz, {d.year for d in dates})
    if cal is None:
        return ()
    return tuple((d, cal[d]) for d in dates if d in cal)


def is_holiday(dates: Sequence[dt.date] | np.ndarray | pd.Series | pd.Index, tz: str) -> np.ndarray:
    """Boolean array: is each local date a public holiday in the time zone's country."""
    days = _as_days(dates)
    if len(days) == 0:
        return np.zeros(0, dtype=bool)
    years = {int(y) + 1970 for y in np.unique(days.astype("datetime64[Y]").astype(np.int64))}
    cal = holiday_calendar(tz, years)
    if cal is None:
        return np.zeros(len(days), dtype=bool)
    known = np.array(sorted(cal.keys()), dtype="datetime64[D]")
    return np.isin(days, known)
