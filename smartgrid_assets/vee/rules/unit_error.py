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

from ..arrays import SortedGroups, segment_ids
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
    kw = average_kw(kwh, interval_minutes)
    over_high = kw > high_kw
    high_kwh = high_kw * np.asarray(interval_minutes) / 60.0
    median = _positive_median(kwh, high_kwh, gid, n_groups, groups)[gid]
    no_median = np.isnan(median)
    with np.errstate(invalid="ignore"):
        ratio_hit = kwh > config.unit_median_ratio * median
        scaled = kwh / WH_PER_KWH
        normal = no_median | (
            (scaled <= config.unit_normal_ratio * median)
            & (scaled >= median / config.unit_normal_ratio)
        )
    plausible = np.abs(kw) / WH_PER_KWH <= high_kw
    candidate = (kwh > 0) & (over_high | ratio_hit) & normal & plausible

    nonzero = kwh != 0
    n_days = int(day_segment.max()) + 1
    day_candidates = np.bincount(day_segment, weights=candidate, minlength=n_days)
    day_nonzero = np.bincount(day_segment, weights=nonzero, minlength=n_days)
    day_hit = (day_candidates >= config.unit_day_min_rows) & (
        day_candidates >= config.unit_day_share * day_nonzero
    )
    return candidate | (day_hit[day_segment] & nonzero & plausible)


def _positive_median(
    kwh: np.ndarray,
    high_kwh: np.ndarray,
    gid: np.ndarray,
    n_groups: int,
    groups: SortedGroups | None,
) -> np.ndarray:
    """Per group, the median of values in (0, high] (high: the group's largest per-row limit)."""
    _, starts = segment_ids(gid)
    ceiling = np.maximum.reduceat(high_kwh, starts)
    if groups is None:
        groups = SortedGroups(kwh, gid, n_groups)
    at_most_zero = np.bincount(gid, weights=kwh <= 0, minlength=n_groups).astype(np.int64)
    in_band = np.bincount(gid, weights=kwh <= ceiling[gid], minlength=n_groups).astype(np.int64)
    return groups.band_median(at_most_zero, np.maximum(in_band - at_most_zero, 0))


def correct(kwh: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """kWh with the flagged readings divided by 1000."""
    return np.where(mask, np.asarray(kwh, dtype=np.float64) / WH_PER_KWH, kwh)
