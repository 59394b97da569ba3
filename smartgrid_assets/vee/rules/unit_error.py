"""`unit.wh_as_kwh`: energy sent in Wh but labelled kWh (values 1000x too large).

A reading is a candidate when its average kW is above the class high limit, or its value is
more than `unit_median_ratio` x the meter-channel's robust median of positive values, and the
value / 1000 lies in the meter's normal range: between median / `unit_normal_ratio` and
median x `unit_normal_ratio`, and within the class high limit. (The lower bound keeps a
genuine overload, say 40 kW on a residential meter, a `limit.high` finding instead of
"correcting" it to 40 W; without any median, e.g. every value of the input in Wh, only the
class limit applies.) The median ignores values above the class high limit (in kWh per
interval at the group's longest interval), so a whole Wh day in the input does not drag it up.

The error usually affects a whole file, i.e. a whole day of one meter: when at least
`unit_day_share` of a meter-channel's local day's non-zero readings (and at least
`unit_day_min_rows`) are candidates, every non-zero reading of that day whose value / 1000 is
within the class limit is corrected too (so the day's peaks and night lows are fixed alike).

Corrected kWh = kwh_raw / 1000, quality `X`; later rules (limits, spike, runs) see the
corrected value.
"""

from __future__ import annotations

import numpy as np

from ..arrays import SortedGroups, group_ends, rows_of
from ..config import VeeConfig
from .limits import average_kw

WH_PER_KWH = 1000.0


def wh_as_kwh(
    kwh: np.ndarray,
    interval_minutes: np.ndarray,
    high_kw: np.ndarray,
    gid: np.ndarray,
    n_groups: int,
    day_segment: np.ndarray,
    config: VeeConfig,
    groups: SortedGroups | None = None,
) -> np.ndarray:
    """True where a reading is Wh sent as kWh (to be divided by 1000).

    Rows sorted by `gid` (meter-channel group); `day_segment` numbers each (group, local day)
    with dense ids; `groups` may pass `SortedGroups(kwh, gid, n_groups)` to save a sort.
    """
    kwh = np.asarray(kwh, dtype=np.float64)
    if len(kwh) == 0:
        return np.zeros(0, dtype=bool)
    rows = candidates(kwh, interval_minutes, high_kw, gid, n_groups, config, groups)
    return whole_days(rows, kwh, interval_minutes, high_kw, day_segment, config)


def candidates(
    kwh: np.ndarray,
    interval_minutes: np.ndarray,
    high_kw: np.ndarray | float,
    gid: np.ndarray,
    n_groups: int,
    config: VeeConfig,
    groups: SortedGroups | None = None,
) -> np.ndarray:
    """Rows (ascending indices) that are unit errors on their own, before the whole-day step.

    As `wh_as_kwh`; `high_kw` is per row or one value for every row.
    """
    kwh = np.asarray(kwh, dtype=np.float64)
    n = len(kwh)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    gid = np.asarray(gid)
    interval = np.asarray(interval_minutes)
    starts = _starts(gid)
    if groups is None:
        groups = SortedGroups(kwh, gid, n_groups)
    median = _positive_median(kwh, interval, high_kw, gid, n_groups, groups, starts)
    ratio_limit = config.unit_median_ratio * median
    # Only groups whose largest value passes a test can hold rows that do. Average kW grows
    # with kWh at a fixed interval, so that holds for the kW test on a single-interval group.
    group = gid[starts]
    _, largest = groups.extremes()
    largest = largest[group]
    shortest = np.minimum.reduceat(interval, starts)
    fixed = (shortest == np.maximum.reduceat(interval, starts)) & (shortest > 0)
    high = high_kw[starts] if np.ndim(high_kw) else high_kw
    with np.errstate(invalid="ignore"):
        maybe = ~fixed | (average_kw(largest, shortest) > high) | (largest > ratio_limit[group])
        maybe &= largest > 0
    rows = rows_of(np.flatnonzero(maybe), starts, group_ends(starts, n))
    value = kwh[rows]
    kw = average_kw(value, interval[rows])
    high = high_kw[rows] if np.ndim(high_kw) else high_kw
    with np.errstate(invalid="ignore"):
        hot = (value > 0) & ((kw > high) | (value > ratio_limit[gid[rows]]))
    rows, value, kw = rows[hot], value[hot], kw[hot]
    if len(rows) == 0:
        return rows
    med = median[gid[rows]]
    with np.errstate(invalid="ignore"):
        scaled = value / WH_PER_KWH
        normal = np.isnan(med) | (
            (scaled <= config.unit_normal_ratio * med) & (scaled >= med / config.unit_normal_ratio)
        )
    high = high_kw[rows] if np.ndim(high_kw) else high_kw
    return rows[normal & (np.abs(kw) / WH_PER_KWH <= high)]


def whole_days(
    candidate_rows: np.ndarray,
    kwh: np.ndarray,
    interval_minutes: np.ndarray,
    high_kw: np.ndarray | float,
    day_segment: np.ndarray,
    config: VeeConfig,
) -> np.ndarray:
    """Mask of the candidates plus the plausible non-zero readings of mostly-candidate days."""
    kwh = np.asarray(kwh, dtype=np.float64)
    out = np.zeros(len(kwh), dtype=bool)
    if len(candidate_rows) == 0:
        return out  # no day can be mostly candidates
    out[candidate_rows] = True
    nonzero = kwh != 0
    n_days = int(day_segment.max()) + 1
    day_candidates = np.bincount(day_segment[candidate_rows], minlength=n_days)
    day_nonzero = np.bincount(day_segment, weights=nonzero, minlength=n_days)
    day_hit = (day_candidates >= config.unit_day_min_rows) & (
        day_candidates >= config.unit_day_share * day_nonzero
    )
    rows = np.flatnonzero(day_hit[day_segment] & nonzero)
    kw = average_kw(kwh[rows], np.asarray(interval_minutes)[rows])
    high = high_kw[rows] if np.ndim(high_kw) else high_kw
    out[rows[np.abs(kw) / WH_PER_KWH <= high]] = True  # plausible
    return out


def _starts(gid: np.ndarray) -> np.ndarray:
    """First row of each run of equal `gid`."""
    if len(gid) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(gid[1:] != gid[:-1])
    starts += 1
    return np.concatenate([np.zeros(1, dtype=np.int64), starts])


def _positive_median(
    kwh: np.ndarray,
    interval: np.ndarray,
    high_kw: np.ndarray | float,
    gid: np.ndarray,
    n_groups: int,
    groups: SortedGroups,
    starts: np.ndarray,
) -> np.ndarray:
    """Per group, the median of values in (0, high], high being the group's largest per-row
    limit in kWh (high_kw x interval minutes / 60)."""
    high = np.asarray(high_kw, dtype=np.float64)
    ceiling = np.full(n_groups, np.nan)
    if len(starts) == 0:
        pass
    elif np.isfinite(high).all():
        high = high[starts] if high.ndim else np.full(len(starts), high)
        # high_kw is constant within a group and x * minutes / 60 is monotonic in minutes, so
        # the largest limit is at the group's shortest or longest interval
        shortest = np.minimum.reduceat(interval, starts)
        longest = np.maximum.reduceat(interval, starts)
        ceiling[gid[starts]] = np.maximum(high * shortest / 60.0, high * longest / 60.0)
    else:  # an infinite limit times a zero interval is NaN: take every row's limit
        ceiling[gid[starts]] = np.maximum.reduceat(high * interval / 60.0, starts)
    at_most_zero = groups.count_at_most(np.zeros(n_groups))
    in_band = groups.count_at_most(ceiling)
    return groups.band_median(at_most_zero, np.maximum(in_band - at_most_zero, 0))


def correct(kwh: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """kWh with the flagged readings divided by 1000."""
    return np.where(mask, np.asarray(kwh, dtype=np.float64) / WH_PER_KWH, kwh)
