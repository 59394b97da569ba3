"""The sun's height over a site, from the instant and the site's coordinates.

Irradiance makes power by the sun's height: the same radiation reading at 09:00 in October
and at noon in June is a different share of a clear sky. The height is computed, never read,
so it is known for any target day: the solar declination and the equation of time from the
day of the year (Spencer's Fourier series, within about 0.05 degrees), the hour angle from
the UTC time and the longitude.
"""

from __future__ import annotations

import numpy as np

US_PER_DAY = 86_400_000_000
#: the grid's weather variable of the sun's height over the site (computed, not a file's column)
SUN = "sun_height"


def sun_height(ts_us: np.ndarray, latitude: float, longitude: float) -> np.ndarray:
    """sin(solar elevation) at UTC instants ``ts_us`` (microseconds), 0 when the sun is down;
    latitude and longitude in degrees (north and east positive)."""
    if not -90.0 <= latitude <= 90.0 or not -180.0 <= longitude <= 180.0:
        raise ValueError(
            f"a site is latitude -90..90 and longitude -180..180, got {latitude}, {longitude}"
        )
    ts = np.asarray(ts_us, dtype=np.int64)
    days = ts // US_PER_DAY
    year_start = days.astype("datetime64[D]").astype("datetime64[Y]").astype("datetime64[D]")
    day_of_year = days - year_start.astype(np.int64)
    hours = (ts - days * US_PER_DAY) / 3_600_000_000
    g = 2 * np.pi / 365 * (day_of_year + (hours - 12) / 24)
    declination = (
        0.006918
        - 0.399912 * np.cos(g)
        + 0.070257 * np.sin(g)
        - 0.006758 * np.cos(2 * g)
        + 0.000907 * np.sin(2 * g)
        - 0.002697 * np.cos(3 * g)
        + 0.00148 * np.sin(3 * g)
    )
    minutes = 229.18 * (
        0.000075
        + 0.001868 * np.cos(g)
        - 0.032077 * np.sin(g)
        - 0.014615 * np.cos(2 * g)
        - 0.040849 * np.sin(2 * g)
    )
    solar_minutes = hours * 60 + minutes + 4 * longitude
    hour_angle = np.radians(solar_minutes / 4 - 180)
    lat = np.radians(latitude)
    height = np.sin(lat) * np.sin(declination) + np.cos(lat) * np.cos(declination) * np.cos(
        hour_angle
    )
    return np.maximum(height, 0.0)
