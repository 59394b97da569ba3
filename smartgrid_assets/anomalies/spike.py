"""`load_spike`: a burst of consumption far above what the meter usually draws at that time
of day and week; and the statistics both spike detectors are calibrated on.

A meter's usual level at a slot (workday or weekend day, local hour) is the median average kW
of its readings in that slot, floored at `LEVEL_FLOOR` x its typical daily peak (the median of
its days' highest readings), so a night of near-zero readings does not make every kettle a
spike. A reading's spike statistic is log(kW / usual level). Readings whose statistic is at or
above the meter's calibrated threshold (`calibration.py`: the day's highest statistic, to the
detector's share of the alarm budget) and at least `spike_min_excess_kw` above the level are
spiking; consecutive spiking readings lasting `spike_min_minutes` to `spike_max_hours` make an
event, scored by the peak over the usual level. Readings VEE flagged as data problems
(`spike_exclude_rules`: a single absurd interval is VEE's `spike`, reported as
`interval_spike`) are never load; a rise lasting longer than `spike_max_hours` is a change of
level or shape (`profile_deviation`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import calibration
from .calibration import Learned
from .config import LOAD_SPIKE, DetectorConfig
from .events import candidates
from .frame import DELIVERED, Observed, local_hour_weekday
from .runs import find_runs, in_window, run_events

LEVEL_FLOOR = 0.25
HOURS = 24
SLOTS = 2 * HOURS
_TINY_KW = 1e-3


def average_kw(obs: Observed) -> np.ndarray:
    """Each reading as average kW over its interval."""
    return obs.value * 60.0 / np.maximum(obs.minutes, 1)


def typical_daily_peak_kw(
    obs: Observed, use: np.ndarray, bounds: np.ndarray, min_days: int
) -> np.ndarray:
    """Per meter code: median over local days (`bounds`, UTC us) of the day's highest `use`
    reading in kW; NaN for a meter with fewer than `min_days` days of data."""
    peak = daily_max(obs, average_kw(obs), use, bounds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        typical = np.nanmedian(peak, axis=1)
    return np.where((~np.isnan(peak)).sum(axis=1) >= min_days, typical, np.nan)


def daily_max(obs: Observed, values: np.ndarray, use: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """[meter code, local day] highest `values` of the `use` rows; NaN where none."""
    n_days = len(bounds) - 1
    day = np.searchsorted(bounds, obs.ts, side="right") - 1
    use = use & (day >= 0) & (day < n_days) & np.isfinite(values)
    out = np.full(len(obs.meter_ids) * n_days, np.nan)
    np.fmax.at(out, obs.meter[use] * n_days + day[use], values[use])
    return out.reshape(-1, n_days)


def local_slots(ts: np.ndarray, tz: str) -> np.ndarray:
    """Slot of each instant: local hour, + 24 on a Saturday or Sunday."""
    hour, weekday = local_hour_weekday(ts, tz)
    return hour + HOURS * (weekday >= 5)


@dataclass(frozen=True)
class SpikeStats:
    """Per reading: average kW, whether it counts as load, the usual level and the statistic;
    per meter code: the typical daily peak and the usual level per slot."""

    kw: np.ndarray
    use: np.ndarray
    level: np.ndarray  # kW per reading
    log_ratio: np.ndarray  # log(kW / level) per reading; NaN where not `use`
    typical: np.ndarray  # (meters,) kW
    levels: np.ndarray  # (meters, SLOTS) kW


def load_rows(obs: Observed, config: DetectorConfig) -> np.ndarray:
    """Delivered readings that count as load (not VEE data problems)."""
    return (
        (obs.channel == DELIVERED)
        & ((obs.rules & obs.rule_mask(config.spike_exclude_rules)) == 0)
        & np.isfinite(obs.value)
    )


def usual_levels(
    obs: Observed, use: np.ndarray, slot: np.ndarray, typical: np.ndarray
) -> np.ndarray:
    """(meters, SLOTS): median kW per slot, floored at LEVEL_FLOOR x the typical daily peak;
    a slot without readings takes the meter's median over all slots."""
    kw = average_kw(obs)
    n = len(obs.meter_ids)
    code = obs.meter[use] * SLOTS + slot[use]
    median = pd.Series(kw[use]).groupby(code).median()
    levels = np.full(n * SLOTS, np.nan)
    levels[median.index.to_numpy()] = median.to_numpy()
    levels = levels.reshape(n, SLOTS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        overall = np.nanmedian(levels, axis=1)
    levels = np.where(np.isnan(levels), overall[:, None], levels)
    return np.maximum(levels, np.maximum(LEVEL_FLOOR * typical, _TINY_KW)[:, None])


def spike_stats(
    obs: Observed,
    config: DetectorConfig,
    tz: str,
    *,
    bounds: np.ndarray | None = None,
    levels: np.ndarray | None = None,
    typical: np.ndarray | None = None,
) -> SpikeStats:
    """The spike statistics of `obs`: with the `levels` and `typical` peaks a calibration
    learned (NaN: not judged), or learned from `obs` itself over local days `bounds`."""
    use = load_rows(obs, config)
    slot = local_slots(obs.ts, tz) if len(obs) else np.zeros(0, dtype=np.int64)
    if typical is None or levels is None:
        if bounds is None:
            raise ValueError("spike_stats needs the local day bounds to learn levels")
        typical = typical_daily_peak_kw(obs, use, bounds, config.calibration_min_days)
        levels = usual_levels(obs, use, slot, typical)
    kw = average_kw(obs)
    level = levels[obs.meter, slot] if len(obs) else np.zeros(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_ratio = np.where(use & (kw > 0), np.log(np.maximum(kw, _TINY_KW) / level), np.nan)
    return SpikeStats(kw, use, level, log_ratio, typical, levels)


def interval_ratio(obs: Observed, stats: SpikeStats) -> np.ndarray:
    """log(kW / typical daily peak) of every delivered reading: the interval_spike statistic
    (VEE-flagged readings included: they are what it judges)."""
    delivered = (obs.channel == DELIVERED) & np.isfinite(obs.value) & (stats.kw > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(
            delivered, np.log(np.maximum(stats.kw, _TINY_KW) / stats.typical[obs.meter]), np.nan
        )


def calibrate(
    obs: Observed, config: DetectorConfig, tz: str, bounds: np.ndarray
) -> tuple[Learned, Learned, SpikeStats]:
    """(load_spike, interval_spike) calibrations of `obs` over local days `bounds`."""
    stats = spike_stats(obs, config, tz, bounds=bounds)
    period = (int(bounds[0]), int(bounds[-1]))
    load = calibration.fit_tails(
        daily_max(obs, stats.log_ratio, stats.use, bounds), obs.customer_class, config, period
    )
    ratio = interval_ratio(obs, stats)
    interval = calibration.fit_tails(
        daily_max(obs, ratio, np.isfinite(ratio), bounds), obs.customer_class, config, period
    )
    return load, interval, stats


def load_spike(
    obs: Observed,
    stats: SpikeStats,
    learned: Learned,
    config: DetectorConfig,
    start_us: int,
    end_us: int,
) -> pd.DataFrame:
    """`load_spike` events overlapping [start_us, end_us)."""
    if not len(obs):
        return candidates([])
    threshold = learned.threshold[obs.meter]
    with np.errstate(invalid="ignore"):
        member = (
            stats.use
            & (stats.log_ratio >= threshold)
            & (stats.kw - stats.level >= config.spike_min_excess_kw)
        )
    runs = find_runs(
        obs.meter * 2 + obs.channel, obs.ts, obs.minutes, member, value=obs.value, rules=obs.rules
    )
    keep = (
        (runs.minutes >= config.spike_min_minutes)
        & (runs.minutes <= config.spike_max_hours * 60)
        & in_window(runs, start_us, end_us)
    )
    runs = runs.select(keep)
    if not len(runs):
        return candidates([])
    # a loop per event, not per reading: the run's rows are contiguous
    peak = np.array(
        [
            a + int(np.argmax(stats.log_ratio[a : b + 1]))
            for a, b in zip(runs.first, runs.last, strict=True)
        ]
    )
    meter = runs.group // 2
    ratio = np.exp(stats.log_ratio[peak])
    tail = learned.tail_probability(meter, stats.log_ratio[peak])
    rate = calibration.daily_rate(config)
    frame = run_events(
        obs,
        runs,
        LOAD_SPIKE,
        lambda hours: "warning",
        lambda i, hours: {
            "hours": hours,
            "intervals": int(runs.rows[i]),
            "kwh": float(runs.total[i]),
            "peak_kw": float(stats.kw[peak[i]]),
            "usual_kw_at_that_time": float(stats.level[peak[i]]),
            "peak_ratio": float(ratio[i]),
            "tail_probability": float(tail[i]),
            **calibration.why(learned, int(meter[i]), config),
            "statistic": "log(kW / usual kW of the meter at that local hour and day type)",
            "channel": "delivered",
        },
    )
    frame["score"] = ratio.astype(np.float64)
    frame["severity"] = np.where(tail <= rate / 10.0, "critical", "warning")
    return frame


def interval_spike_rows(
    obs: Observed, stats: SpikeStats, learned: Learned, rules_mask: int
) -> np.ndarray:
    """VEE-flagged delivered readings whose size is beyond the meter's calibrated ceiling."""
    ratio = interval_ratio(obs, stats)
    with np.errstate(invalid="ignore"):
        return ((obs.rules & rules_mask) != 0) & (ratio >= learned.threshold[obs.meter])
