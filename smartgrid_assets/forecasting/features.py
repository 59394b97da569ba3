"""The design matrix of the global model: calendar, forecast weather, lags known at issue time.

A row is one series ``s``, one target day ``t`` and one interval ``k`` of it, forecast at an
issue at 00:00 local of day ``i = t - lead``: every lag reads days before ``i`` only, so
training rows (``t`` inside the history, with a virtual issue ``i``) and forecast rows (``t``
after the history, ``i`` its end) are built the same way and none can look ahead:

- calendar of ``t``: ``step`` (interval of the day), ``lead``, ``dow`` (Monday 0), ``weekend``,
  ``holiday``, ``holiday_prev`` / ``holiday_next`` (the day before / after is one), and
  ``doy`` (day of year, only for models trained on a year or more);
- lags, divided by the series' level (mean absolute value over the 7 days before ``i``):
  ``last_same`` (the same interval of day ``i - 1``), ``week_same`` (the same interval one week
  before ``t``, two weeks when that day is not known at ``i``), ``mean7_same`` (mean of the same
  interval over the 7 days before ``i``), ``last_mean`` / ``last_max`` / ``last_min`` of day
  ``i - 1``, and ``trend`` (the 7-day level over the 28-day level);
- for each weather variable ``w`` (the day-ahead forecast of the interval, as issued): ``w``,
  its day mean / max / min on ``t`` (``w_dmean``, ``w_dmax``, ``w_dmin``), and the same
  interval and day mean on day ``i - 1`` (``w_last``, ``w_last_dmean``), so the model can learn
  how load moves with the weather from the last known day.

The target is the value divided by the level, so one model serves small feeders and a whole
system alike, and follows level shifts.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from smartgrid_assets.forecasting.grid import Grid, holiday_flags

CALENDAR = ("step", "lead", "dow", "weekend", "holiday", "holiday_prev", "holiday_next")
LAGS = (
    "last_same",
    "week_same",
    "mean7_same",
    "last_mean",
    "last_max",
    "last_min",
    "trend",
)
WEATHER = ("", "_dmean", "_dmax", "_dmin", "_last", "_last_dmean")
LEVEL_FLOOR = 1e-9


def feature_names(weather: Sequence[str], use_doy: bool) -> tuple[str, ...]:
    names = [*CALENDAR, *(("doy",) if use_doy else ()), *LAGS]
    for w in weather:
        names.extend(f"{w}{suffix}" for suffix in WEATHER)
    return tuple(names)


FEATURES = feature_names(("temperature",), use_doy=False)


def _rolling_mean(a: np.ndarray, window: int) -> np.ndarray:
    """Mean over the ``window`` day slots ending at each slot (axis 1), ignoring NaN."""
    present = ~np.isnan(a)
    total = np.cumsum(np.where(present, a, 0.0), axis=1)
    count = np.cumsum(present, axis=1).astype(float)
    total[:, window:] -= total[:, :-window].copy()
    count[:, window:] -= count[:, :-window].copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


class LagTables:
    """Per series and day summaries the lag features read (computed once per history)."""

    def __init__(self, hist: Grid) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN (missing) days
            self.day_mean = np.nanmean(hist.values, axis=2)
            self.day_max = np.nanmax(hist.values, axis=2)
            self.day_min = np.nanmin(hist.values, axis=2)
            abs_mean = np.nanmean(np.abs(hist.values), axis=2)
            self.weather_day = {
                w: (np.nanmean(v, axis=2), np.nanmax(v, axis=2), np.nanmin(v, axis=2))
                for w, v in hist.weather.items()
            }
        self.level7 = _rolling_mean(abs_mean, 7)
        self.level28 = _rolling_mean(abs_mean, 28)
        self.mean7_same = _rolling_mean(hist.filled.transpose(0, 2, 1).reshape(-1, hist.n_days), 7)
        self.mean7_same = self.mean7_same.reshape(hist.n_series, hist.steps, hist.n_days).transpose(
            0, 2, 1
        )


def _at(a: np.ndarray, s: np.ndarray, d: np.ndarray, *rest: np.ndarray) -> np.ndarray:
    """a[s, d, ...] with NaN where d is outside the array."""
    ok = (d >= 0) & (d < a.shape[1])
    out = a[(s, np.where(ok, d, 0), *rest)].astype(float)
    return np.where(ok, out, np.nan)


def levels(lags: LagTables, s: np.ndarray, issue: np.ndarray) -> np.ndarray:
    """The level of each row: mean |value| over the 7 days before the issue (28 as fallback)."""
    lev = _at(lags.level7, s, issue - 1)
    lev = np.where(np.isnan(lev), _at(lags.level28, s, issue - 1), lev)
    return np.where(np.abs(lev) > LEVEL_FLOOR, lev, np.nan)


def design_matrix(
    hist: Grid,
    lags: LagTables,
    s: np.ndarray,
    t: np.ndarray,
    k: np.ndarray,
    issue: np.ndarray,
    weather_t: Mapping[str, np.ndarray],
    weather_day_t: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    weather_names: Sequence[str],
    names: Sequence[str],
) -> tuple[np.ndarray, np.ndarray]:
    """(n, len(names)) features and (n,) level of rows (series, target slot, interval, issue
    slot) of ``hist``; ``weather_t`` / ``weather_day_t`` give each row's target weather."""
    lev = levels(lags, s, issue)
    day = hist.day0 + t
    dow = (day + 3) % 7  # 1970-01-01 was a Thursday
    span = np.arange(day.min() - 1, day.max() + 2) if len(day) else np.zeros(0, np.int64)
    hol = holiday_flags(span, hist.tz)
    at_day = day - (span[0] if len(span) else 0)
    week_src = t - 7 * np.maximum((t - issue) // 7 + 1, 1)
    last = issue - 1
    cols: dict[str, np.ndarray] = {
        "step": k.astype(float),
        "lead": (t - issue).astype(float),
        "dow": dow.astype(float),
        "weekend": (dow >= 5).astype(float),
        "holiday": hol[at_day].astype(float) if len(span) else np.zeros(0),
        "holiday_prev": hol[at_day - 1].astype(float) if len(span) else np.zeros(0),
        "holiday_next": hol[at_day + 1].astype(float) if len(span) else np.zeros(0),
        "last_same": _at(hist.filled, s, last, k) / lev,
        "week_same": _at(hist.filled, s, week_src, k) / lev,
        "mean7_same": _at(lags.mean7_same, s, last, k) / lev,
        "last_mean": _at(lags.day_mean, s, last) / lev,
        "last_max": _at(lags.day_max, s, last) / lev,
        "last_min": _at(lags.day_min, s, last) / lev,
        "trend": lev / _at(lags.level28, s, last),
    }
    if "doy" in names:
        days = np.asarray(day, dtype="datetime64[D]")
        cols["doy"] = (days - days.astype("datetime64[Y]")).astype(float)
    for w in weather_names:
        cols[w] = weather_t[w]
        cols[f"{w}_dmean"], cols[f"{w}_dmax"], cols[f"{w}_dmin"] = weather_day_t[w]
        cols[f"{w}_last"] = _at(hist.weather[w], s, last, k)
        cols[f"{w}_last_dmean"] = _at(lags.weather_day[w][0], s, last)
    return np.column_stack([cols[n] for n in names]) if names else np.zeros((len(s), 0)), lev
