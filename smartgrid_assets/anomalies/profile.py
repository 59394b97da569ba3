"""`profile_deviation`: a meter's daily shape departs from its own expected shape for days.

1. Daily shape per meter and local day (delivered channel, usable readings; rows flagged with
   `theft_exclude_rules` do not count): average kW in each local hour over the day's sum, so a
   day's level (weather, a theft-like drop) does not matter, only when in the day energy is
   used. A day needs `theft_min_day_coverage` of its minutes and every hour covered.
2. Expected shapes: the median share per hour over the meter's workdays (Mon-Fri) and over
   its weekend days in the input; residual = shape - expected. The peers' common residual of
   the day and hour (median over the meter's peer group, as in `theft_drop`) is taken out, so
   weather that reshapes every peer's day does not count against one meter.
3. Day distance = sum over hours of |residual| (0 = the usual shape, 2 = nothing in common),
   against whichever expected shape is closer: a public holiday shaped like a Sunday is an
   ordinary day, even without peers.
   A day deviates when its distance is above max(`profile_min_distance`, the meter's
   calibrated threshold): the tail of its own day distances (or its class's) fitted to the
   detector's share of the alarm budget (`calibration.py`), so each meter is judged against
   its own day-to-day variation.
4. `profile_min_days` consecutive deviating days make one event, from the first day's local
   midnight to the end of the last; its score is the median distance of those days, its
   evidence names the hours that gained and lost most.

The median shape stays the meter's own as long as fewer than half of the input's days deviate;
fed day by day with a lookback, a deviation is seen from its `profile_min_days`-th day on and
`merge_events` extends the stored event while it lasts.
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import calibration
from .calibration import Learned
from .config import PROFILE_DEVIATION, DetectorConfig
from .drop import local_day_bounds
from .events import candidates, evidence_json
from .frame import DELIVERED, US_PER_MINUTE, Observed, local_hour_weekday
from .peers import peer_medians
from .runs import find_runs

HOURS = 24
_TINY_KWH = 1e-6


@dataclass(frozen=True)
class DailyShapes:
    """Per judged meter (`meters`, codes into Observed) and local day: the day's shape, its
    peer-adjusted residual against the meter's expected shape, and its energy."""

    meters: np.ndarray  # (M,) meter codes
    days: list[str]  # (D,) ISO local dates
    bounds: np.ndarray  # (D + 1,) UTC us
    shape: np.ndarray  # (M, D, 24) share of the day's energy per local hour, NaN: day unusable
    residual: np.ndarray  # (M, D, 24) shape - expected - peers' common residual
    energy: np.ndarray  # (M, D) kWh of the day (NaN: unusable)

    @property
    def distance(self) -> np.ndarray:
        """(M, D) sum over hours of |residual|; NaN where the day is unusable."""
        valid = ~np.isnan(self.shape).any(axis=2)
        return np.where(valid, np.abs(np.nan_to_num(self.residual)).sum(axis=2), np.nan)


def _local_hours(ts: np.ndarray, tz: str) -> np.ndarray:
    return local_hour_weekday(ts, tz)[0]


def _peer_residual(residual: np.ndarray, keys: list[np.ndarray], min_peers: int) -> np.ndarray:
    """(M, D, 24) common residual of each meter's peer group (zeros where no group is big
    enough): the median over peers, from the finest key to the coarsest, as in theft_drop."""
    m = residual.shape[0]
    out = np.zeros_like(residual)
    if min_peers <= 0 or m == 0:
        return out
    has_data = ~np.isnan(residual).all(axis=(1, 2))
    common, assigned = peer_medians(residual, has_data, keys, min_peers)
    out[assigned] = np.nan_to_num(common[assigned])
    return out


def daily_shapes(obs: Observed, config: DetectorConfig, end_us: int, tz: str) -> DailyShapes:
    """Daily shapes of the meters judged (solar skipped with `profile_skip_solar`)."""
    days, bounds = local_day_bounds(int(obs.ts.min()), end_us, tz)
    n_days = len(days)
    eligible = ~obs.has_solar if config.profile_skip_solar else np.ones(len(obs.meter_ids), bool)
    excluded = obs.rule_mask(config.theft_exclude_rules)
    day = np.searchsorted(bounds, obs.ts, side="right") - 1
    use = (
        (obs.channel == DELIVERED)
        & eligible[obs.meter]
        & ((obs.rules & excluded) == 0)
        & np.isfinite(obs.value)
        & (day >= 0)
        & (day < n_days)
    )
    meters = np.flatnonzero(eligible)
    slot = np.full(len(obs.meter_ids), -1, dtype=np.int64)
    slot[meters] = np.arange(len(meters))
    rows = np.flatnonzero(use)
    hour = _local_hours(obs.ts[rows], tz)
    cell = (slot[obs.meter[rows]] * n_days + day[rows]) * HOURS + hour
    size = len(meters) * n_days * HOURS
    energy = np.bincount(cell, weights=obs.value[rows], minlength=size)
    minutes = np.bincount(cell, weights=obs.minutes[rows], minlength=size)
    energy = energy.reshape(len(meters), n_days, HOURS)
    minutes = minutes.reshape(len(meters), n_days, HOURS)
    with np.errstate(invalid="ignore", divide="ignore"):
        kw = energy / minutes * 60.0
    day_minutes = np.diff(bounds) / US_PER_MINUTE
    covered = minutes.sum(axis=2)
    hours_in_day = np.minimum(np.round(day_minutes / 60.0), HOURS)
    usable = (covered >= config.theft_min_day_coverage * day_minutes[None, :]) & (
        (minutes > 0).sum(axis=2) >= hours_in_day[None, :]
    )
    kw = np.where(minutes > 0, kw, 0.0)
    total = kw.sum(axis=2)
    usable &= total > _TINY_KWH
    with np.errstate(invalid="ignore", divide="ignore"):
        shape = np.where(usable[..., None], kw / total[..., None], np.nan)
    cls, region = obs.customer_class[meters], obs.region[meters]
    keys = [cls + "|" + region, cls, np.full(len(meters), "", dtype=object)]
    weekend = np.array([dt.date.fromisoformat(d).weekday() >= 5 for d in days])
    residuals = []
    for kind in (~weekend, weekend):  # workdays, then weekend days
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = np.nanmedian(shape[:, kind if kind.any() else ~kind], axis=1)
        residual = shape - expected[:, None, :]
        residuals.append(residual - _peer_residual(residual, keys, config.theft_min_peers))
    work, rest = (np.abs(np.nan_to_num(r)).sum(axis=2) for r in residuals)
    residual = np.where((rest < work)[..., None], residuals[1], residuals[0])
    day_energy = np.where(usable, energy.sum(axis=2), np.nan)
    return DailyShapes(meters, days, bounds, shape, residual, day_energy)


def calibrate(obs: Observed, config: DetectorConfig, tz: str, bounds: np.ndarray) -> Learned:
    """profile_deviation calibration per meter code: the tail of its day distances."""
    shapes = daily_shapes(obs, config, int(bounds[-1]), tz)
    stat = np.full((len(obs.meter_ids), len(shapes.days)), np.nan)
    stat[shapes.meters] = shapes.distance
    return calibration.fit_tails(
        stat, obs.customer_class, config, (int(bounds[0]), int(bounds[-1]))
    )


def deviating_days(
    distance: np.ndarray, threshold: np.ndarray, config: DetectorConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(deviating (M, D) bool, threshold (M,)): above the meter's calibrated threshold and
    `profile_min_distance`; a meter with fewer usable days than `profile_min_history_days`
    or no calibration is not judged."""
    threshold = np.maximum(config.profile_min_distance, threshold)
    enough = (~np.isnan(distance)).sum(axis=1) >= config.profile_min_history_days
    with np.errstate(invalid="ignore"):
        deviating = enough[:, None] & (distance > threshold[:, None])
    return deviating, threshold


def profile_deviation(
    obs: Observed,
    learned: Learned,
    config: DetectorConfig,
    start_us: int,
    end_us: int,
    tz: str,
    shapes: DailyShapes | None = None,
) -> pd.DataFrame:
    """`profile_deviation` events overlapping [start_us, end_us); local days in `tz`;
    `shapes`: `daily_shapes` of the same input, when already computed."""
    if not len(obs):
        return candidates([])
    shapes = shapes if shapes is not None else daily_shapes(obs, config, end_us, tz)
    distance = shapes.distance
    deviating, threshold = deviating_days(distance, learned.threshold[shapes.meters], config)
    m, d = deviating.shape
    group = np.repeat(np.arange(m), d)
    start = np.tile(shapes.bounds[:-1], m)
    minutes = np.tile(np.diff(shapes.bounds) // US_PER_MINUTE, m)
    runs = find_runs(group, start, minutes, deviating.ravel())
    keep = (runs.rows >= config.profile_min_days) & (runs.start < end_us) & (runs.end > start_us)
    runs = runs.select(keep)
    rows = []
    for i in range(len(runs)):  # a loop per event
        g = int(runs.group[i])
        first, last = int(runs.first[i]) - g * d, int(runs.last[i]) - g * d
        span = slice(first, last + 1)
        mean_residual = np.nanmean(shapes.residual[g, span], axis=0)
        order = np.argsort(mean_residual)
        n_days = last - first + 1
        score = float(np.nanmedian(distance[g, span]))
        rows.append(
            {
                "type": PROFILE_DEVIATION,
                "meter_id": obs.meter_ids[shapes.meters[g]],
                "start": int(runs.start[i]),
                "end": int(runs.end[i]),
                "severity": "critical" if n_days >= config.profile_critical_days else "warning",
                "score": score,
                "evidence": evidence_json(
                    {
                        "first_day": shapes.days[first],
                        "last_day": shapes.days[last],
                        "days": n_days,
                        "median_distance": score,
                        **calibration.why(learned, int(shapes.meters[g]), config),
                        "threshold": float(threshold[g]),
                        "hours_gained": [int(h) for h in order[::-1][:3]],
                        "hours_lost": [int(h) for h in order[:3]],
                        "share_gained": float(np.clip(mean_residual, 0, None).sum()),
                        "channel": "delivered",
                    }
                ),
            }
        )
    return candidates(rows)
