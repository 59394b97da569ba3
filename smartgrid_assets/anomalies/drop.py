"""`theft_drop`: a sudden, sustained drop of a meter's own daily energy (a change point).

1. Daily energy per meter and local day (delivered channel; solar meters skipped by default,
   their import follows the weather): the sum of usable readings scaled to 24 h. A day with
   less than `theft_min_day_coverage` of its minutes covered is skipped; rows flagged
   `zero_run`, `flat_line`, `spike`, ... do not count, so an outage is a `zero_run`, not a
   theft.
2. Peer adjustment: each day is divided by the common daily factor of the meter's peers (same
   customer class and region, else class, else all; at least `theft_min_peers` meters): the
   median over peers of (their day / their median day). Weather, weekends and holidays that
   move every peer cancel; one meter's theft barely moves the median.
3. Change day: the split minimising the L1 segmentation cost over all days of the input (sum
   of absolute deviations from each side's median), among splits with >= 2 usable days on
   each side; so the change is placed where the level changes, not where the thresholds
   first allow it.
4. The meter fires when that split has >= `theft_min_days_before` usable days in its baseline
   (the up to `theft_baseline_days` days just before it) and >= `theft_min_days_after` after
   it, and:
   - after-days median <= (1 - `theft_min_drop`) x baseline median,
   - baseline median >= `theft_min_baseline_kwh` kWh/day,
   - at least `theft_min_share_below` of the after-days lie below the baseline median,
   - the first week after the change against the same weekdays one week earlier (median
     ratio) shows a drop of at least `theft_min_weekly_drop`,
   - the drop stands out of the meter's own day-to-day noise: log(baseline / after) over its
     standard error (from the calibrated noise, `calibrate`) is at least the one-sided normal
     quantile of the detector's share of the alarm budget. A meter without a calibration
     (`insufficient_history`) is not judged.

The event runs from the change day's local midnight to the end of the last usable day; its
score is the drop fraction (warning; critical from `theft_critical_drop`). Fed day by day with
a lookback of L days, a drop is seen from its 7th day on for as long as its change day stays
at least `theft_min_days_before` days into the lookback; `merge_events` extends the stored event
each time it is seen (a longer lookback follows it longer). A drop that has ended within the
input is judged on all days after the split, recovery included, so it may no longer fire.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from . import calibration
from .calibration import Learned
from .config import THEFT_DROP, DetectorConfig
from .events import candidates, evidence_json
from .frame import DELIVERED, US_PER_MINUTE, Observed
from .peers import peer_medians

_MINUTES_PER_DAY = 1440.0
_METERS_PER_BLOCK = 2000
_WEEK = 7
_SEARCH_MIN_DAYS = 2
_TINY_KWH = 1e-6
_MIN_FACTOR = 0.05
_MAD_TO_SIGMA = 1.4826
_MEDIAN_SE = 1.2533
_BEFORE = 14


def local_day_bounds(start_us: int, end_us: int, tz: str) -> tuple[list[str], np.ndarray]:
    """Local days overlapping [start_us, end_us) as ISO dates, and their D+1 UTC bounds (us)."""
    first = pd.Timestamp(start_us, unit="us", tz="UTC").tz_convert(tz).normalize()
    last = pd.Timestamp(end_us - 1, unit="us", tz="UTC").tz_convert(tz).normalize()
    days = pd.date_range(first.tz_localize(None), last.tz_localize(None), freq="D")
    midnights = pd.DatetimeIndex(days.append(pd.DatetimeIndex([days[-1] + pd.Timedelta(days=1)])))
    local = midnights.tz_localize(tz, nonexistent="shift_forward", ambiguous=True)
    bounds = local.tz_convert("UTC").as_unit("us").asi8.astype(np.int64)
    return [d.date().isoformat() for d in days], bounds


def daily_energy(
    obs: Observed, config: DetectorConfig, bounds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(meter codes judged, kWh per 24 h matrix [meter, day], NaN where coverage is short)."""
    n_days = len(bounds) - 1
    eligible = ~obs.has_solar if config.theft_skip_solar else np.ones(len(obs.meter_ids), bool)
    excluded = obs.rule_mask(config.theft_exclude_rules)
    use = (
        (obs.channel == DELIVERED)
        & eligible[obs.meter]
        & ((obs.rules & excluded) == 0)
        & np.isfinite(obs.value)
    )
    day = np.searchsorted(bounds, obs.ts, side="right") - 1
    use &= (day >= 0) & (day < n_days)
    meters = np.flatnonzero(eligible)
    slot = np.full(len(obs.meter_ids), -1, dtype=np.int64)
    slot[meters] = np.arange(len(meters))
    cell = slot[obs.meter[use]] * n_days + day[use]
    size = len(meters) * n_days
    energy = np.bincount(cell, weights=obs.value[use], minlength=size).reshape(-1, n_days)
    covered = np.bincount(cell, weights=obs.minutes[use], minlength=size).reshape(-1, n_days)
    day_minutes = np.diff(bounds) / US_PER_MINUTE
    with np.errstate(invalid="ignore", divide="ignore"):
        per_day = energy / covered * _MINUTES_PER_DAY
    per_day[covered < config.theft_min_day_coverage * day_minutes[None, :]] = np.nan
    return meters, per_day


def peer_factors(x: np.ndarray, keys: list[np.ndarray], min_peers: int) -> np.ndarray:
    """Common daily factor of each row's peer group: [meter, day], 1.0 where unknown.

    Each meter's days are divided by its own median day; the peer factor of a day is the
    median of that across the group (a theft on one meter barely moves it). `keys` are peer
    keys from the finest (e.g. class and region) to the coarsest; a meter uses the finest
    whose group has at least `min_peers` meters with data.
    """
    m, d = x.shape
    out = np.ones((m, d))
    if m == 0 or d == 0:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        level = np.nanmedian(x, axis=1)
        rel = x / np.where(level > 0, level, np.nan)[:, None]
    has_data = ~np.isnan(level)
    factor, assigned = peer_medians(rel, has_data, keys, min_peers)
    factor = np.where(np.isfinite(factor) & (factor > _MIN_FACTOR), factor, np.nan)
    out[assigned] = factor[assigned]
    return out


def _change_points(x: np.ndarray, config: DetectorConfig) -> dict[str, np.ndarray]:
    """Best split per row of x [meter, day] and its statistics (k = first after-day)."""
    m, d = x.shape
    k = np.arange(d)[:, None]  # candidate splits (rows) x days (columns)
    day = np.arange(d)[None, :]
    before = day < k
    after = ~before
    recent = before & (day >= k - config.theft_baseline_days)
    first_week = after & (day < k + _WEEK)
    valid = ~np.isnan(x)
    x3 = x[:, None, :]
    # same weekday one week earlier: keeps weekly rhythm and holidays from looking like drops
    ratio = np.full_like(x, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio[:, _WEEK:] = x[:, _WEEK:] / np.maximum(x[:, :-_WEEK], _TINY_KWH)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med_b = np.nanmedian(np.where(before[None], x3, np.nan), axis=2)
        med_a = np.nanmedian(np.where(after[None], x3, np.nan), axis=2)
        base = np.nanmedian(np.where(recent[None], x3, np.nan), axis=2)
        weekly = np.nanmedian(np.where(first_week[None], ratio[:, None, :], np.nan), axis=2)
    dev_b = np.where(before[None] & valid[:, None, :], np.abs(x3 - med_b[..., None]), 0.0)
    dev_a = np.where(after[None] & valid[:, None, :], np.abs(x3 - med_a[..., None]), 0.0)
    cost = dev_b.sum(axis=2) + dev_a.sum(axis=2)
    n_before = (before[None] & valid[:, None, :]).sum(axis=2)
    n_recent = (recent[None] & valid[:, None, :]).sum(axis=2)
    n_after = (after[None] & valid[:, None, :]).sum(axis=2)
    # the change day is searched among all splits, so it is placed where the level changes;
    # the meter is judged only once that split has enough days on both sides
    searchable = (n_before >= _SEARCH_MIN_DAYS) & (n_after >= _SEARCH_MIN_DAYS)
    best = np.argmin(np.where(searchable, cost, np.inf), axis=1)
    rows = np.arange(m)
    enough = (n_recent >= config.theft_min_days_before) & (n_after >= config.theft_min_days_after)
    below = (after[None] & valid[:, None, :] & (x3 < base[..., None])).sum(axis=2)
    return {
        "found": searchable[rows, best] & enough[rows, best],
        "k": best,
        "baseline": base[rows, best],
        "after": med_a[rows, best],
        "weekly_ratio": weekly[rows, best],
        "n_before": n_recent[rows, best],
        "n_after": n_after[rows, best],
        "below": below[rows, best],
    }


def adjusted_energy(
    obs: Observed, config: DetectorConfig, bounds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(meter codes judged, daily energy [meter, day] over the peers' common factor)."""
    meters, raw = daily_energy(obs, config, bounds)
    if config.theft_min_peers <= 0:
        return meters, raw
    cls, region = obs.customer_class[meters], obs.region[meters]
    keys = [cls + "|" + region, cls, np.full(len(meters), "", dtype=object)]
    return meters, raw / peer_factors(raw, keys, config.theft_min_peers)


def day_to_day_noise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of daily energy x [meter, day]: (robust sigma of log daily energy from
    consecutive days' differences, days used). Differences cancel a level that moves slowly
    (seasons) or once (a drop), so this is the noise a drop has to stand out of."""
    with np.errstate(invalid="ignore", divide="ignore"):
        logs = np.log(np.where(x > _TINY_KWH, x, np.nan))
    diff = np.abs(np.diff(logs, axis=1)) if x.shape[1] > 1 else np.full((len(x), 0), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sigma = _MAD_TO_SIGMA * np.nanmedian(diff, axis=1) / np.sqrt(2.0)
    return sigma, (~np.isnan(diff)).sum(axis=1)


def weekly_drops(x: np.ndarray) -> np.ndarray:
    """[meter, day k] 1 - median(days k..k+6) / median(days k-14..k-1) of daily energy x: how
    far a meter's week falls below its fortnight before (NaN where a side has < 4 days)."""
    m, d = x.shape
    out = np.full((m, d), np.nan)
    if d < _BEFORE + _WEEK:
        return out
    windows = np.lib.stride_tricks.sliding_window_view(x, _WEEK, axis=1)[:, _BEFORE:]
    before = np.lib.stride_tricks.sliding_window_view(x, _BEFORE, axis=1)[
        :, : d - _BEFORE - _WEEK + 1
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        after_med = np.nanmedian(windows, axis=2)
        before_med = np.nanmedian(before, axis=2)
    enough = ((~np.isnan(windows)).sum(axis=2) >= 4) & ((~np.isnan(before)).sum(axis=2) >= 4)
    with np.errstate(invalid="ignore", divide="ignore"):
        drop = 1.0 - after_med / np.where(before_med > _TINY_KWH, before_med, np.nan)
    out[:, _BEFORE : _BEFORE + drop.shape[1]] = np.where(enough, drop, np.nan)
    return out


def calibrate(obs: Observed, config: DetectorConfig, bounds: np.ndarray) -> Learned:
    """theft_drop calibration per meter code.

    - the tail of the meter's own weekly drops (`weekly_drops`; its class's when its history
      is short) and the drop above which an event is an alarm: a drop within the meter's
      usual swings (a week away, a heating season ending) is reported at severity info;
    - reference = [day-to-day noise of log daily energy, z threshold]: a drop must stand out
      of the noise (one-sided normal quantile of the detector's budget share) to be an event
      at all; a meter without noise (fewer than `calibration_min_days` days) is not judged.
    """
    n = len(obs.meter_ids)
    meters, x = adjusted_energy(obs, config, bounds)
    stat = np.full((n, len(bounds) - 1), np.nan)
    stat[meters] = weekly_drops(x)
    learned = calibration.fit_tails(
        stat, obs.customer_class, config, (int(bounds[0]), int(bounds[-1]))
    )
    sigma_j, days_j = day_to_day_noise(x)
    sigma, days = np.full(n, np.nan), np.zeros(n, dtype=np.int64)
    sigma[meters], days[meters] = sigma_j, days_j
    own = (days >= config.calibration_meter_days) & np.isfinite(sigma)
    enough = (days >= config.calibration_min_days) & np.isfinite(sigma)
    for cls in np.unique(obs.customer_class[enough & ~own]) if (enough & ~own).any() else []:
        members = enough & (obs.customer_class == cls)
        if days[members].sum() >= config.calibration_meter_days:
            sigma[members & ~own] = np.median(sigma[members])
    sigma = np.where(enough, sigma, np.nan)
    z = np.where(enough, calibration.z_threshold(config), np.nan)
    source = np.where(
        (learned.source == calibration.INSUFFICIENT) & enough, calibration.METER, learned.source
    )
    source = np.where(enough, source, calibration.INSUFFICIENT).astype(object)
    return Learned(
        threshold=learned.threshold,
        body=learned.body,
        scale=learned.scale,
        source=source,
        days=np.where(learned.days > 0, learned.days, days),
        first_us=learned.first_us,
        last_us=learned.last_us,
        reference=np.stack([sigma, z], axis=1),
    )


def theft_drop(
    obs: Observed, learned: Learned, config: DetectorConfig, start_us: int, end_us: int, tz: str
) -> pd.DataFrame:
    """`theft_drop` events overlapping [start_us, end_us); days are local days in `tz`."""
    if not len(obs):
        return candidates([])
    days, bounds = local_day_bounds(int(obs.ts.min()), end_us, tz)
    if len(days) < config.theft_min_days_before + config.theft_min_days_after:
        return candidates([])
    meters, x = adjusted_energy(obs, config, bounds)
    noise, z_min = learned.reference[meters, 0], learned.reference[meters, 1]
    rows = []
    for lo in range(0, len(meters), _METERS_PER_BLOCK):
        block = x[lo : lo + _METERS_PER_BLOCK]
        cp = _change_points(block, config)
        with np.errstate(invalid="ignore", divide="ignore"):
            drop = 1.0 - cp["after"] / cp["baseline"]
            weekly_drop = 1.0 - cp["weekly_ratio"]
            share = cp["below"] / np.maximum(cp["n_after"], 1)
            # a median's standard error is about 1.2533 sigma / sqrt(n)
            se = (
                _MEDIAN_SE
                * noise[lo : lo + len(block)]
                * np.sqrt(1.0 / np.maximum(cp["n_before"], 1) + 1.0 / np.maximum(cp["n_after"], 1))
            )
            z = np.log(cp["baseline"] / cp["after"]) / se
        fire = (
            cp["found"]
            & (z >= z_min[lo : lo + len(block)])
            & (cp["baseline"] >= config.theft_min_baseline_kwh)
            & (drop >= config.theft_min_drop)
            & (share >= config.theft_min_share_below)
            & (weekly_drop >= config.theft_min_weekly_drop)
        )
        for i in np.flatnonzero(fire):
            k = int(cp["k"][i])
            last = int(np.flatnonzero(~np.isnan(block[i]))[-1])
            start, end = int(bounds[k]), int(bounds[last + 1])
            if not (start < end_us and end > start_us):
                continue
            d = float(drop[i])
            code = int(meters[lo + i])
            usual = bool(d < learned.threshold[code])  # NaN (no tail): never usual
            severity = "critical" if d >= config.theft_critical_drop else "warning"
            alarm = {
                "within_usual_swings": usual,
                "tail_probability": float(
                    learned.tail_probability(np.array([code]), np.array([d]))[0]
                ),
            }
            if np.isfinite(learned.threshold[code]):
                alarm.update(calibration.why(learned, code, config))
            rows.append(
                {
                    "type": THEFT_DROP,
                    "meter_id": obs.meter_ids[meters[lo + i]],
                    "start": start,
                    "end": end,
                    "severity": "info" if usual else severity,
                    "score": d,
                    "evidence": evidence_json(
                        {
                            "change_day": days[k],
                            "drop": d,
                            "baseline_kwh_per_day": float(cp["baseline"][i]),
                            "after_kwh_per_day": float(cp["after"][i]),
                            "days_before": int(cp["n_before"][i]),
                            "days_after": int(cp["n_after"][i]),
                            "share_after_below_baseline": float(share[i]),
                            "weekly_drop": float(weekly_drop[i]),
                            "z": float(z[i]),
                            "z_threshold": float(z_min[lo + i]),
                            "day_to_day_noise": float(noise[lo + i]),
                            **alarm,
                            "channel": "delivered",
                        }
                    ),
                }
            )
    return candidates(rows)
