"""`load_spike`: a burst of consumption far above anything the meter normally draws.

A meter's typical daily peak is the median over the input's local days of the day's highest
delivered reading (as average kW, so any interval length compares). Readings at least
`spike_min_ratio` times that and `spike_min_excess_kw` above it are spiking; consecutive
spiking readings lasting from `spike_min_minutes` to `spike_max_hours` make one event, scored
by the peak over the typical daily peak. A single outlying reading is VEE's `spike` (a data
problem, excluded here with `spike_exclude_rules`); a rise lasting longer than
`spike_max_hours` is a change of level or shape (`profile_deviation`), not a spike.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .config import LOAD_SPIKE, DetectorConfig
from .drop import local_day_bounds
from .events import candidates
from .frame import DELIVERED, Observed
from .runs import find_runs, in_window, run_events


def average_kw(obs: Observed) -> np.ndarray:
    """Each reading as average kW over its interval."""
    return obs.value * 60.0 / np.maximum(obs.minutes, 1)


def typical_daily_peak_kw(
    obs: Observed, use: np.ndarray, bounds: np.ndarray, min_days: int
) -> np.ndarray:
    """Per meter code: median over local days (`bounds`, UTC us) of the day's highest `use`
    reading in kW; NaN for a meter with fewer than `min_days` days of data."""
    n_days = len(bounds) - 1
    day = np.searchsorted(bounds, obs.ts, side="right") - 1
    use = use & (day >= 0) & (day < n_days)
    peak = np.full(len(obs.meter_ids) * n_days, np.nan)
    np.fmax.at(peak, obs.meter[use] * n_days + day[use], average_kw(obs)[use])
    peak = peak.reshape(-1, n_days)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        typical = np.nanmedian(peak, axis=1)
    return np.where((~np.isnan(peak)).sum(axis=1) >= min_days, typical, np.nan)


def load_spike(
    obs: Observed, config: DetectorConfig, start_us: int, end_us: int, tz: str
) -> pd.DataFrame:
    """`load_spike` events overlapping [start_us, end_us); days are local days in `tz`."""
    if not len(obs):
        return candidates([])
    _, bounds = local_day_bounds(int(obs.ts.min()), end_us, tz)
    use = (
        (obs.channel == DELIVERED)
        & ((obs.rules & obs.rule_mask(config.spike_exclude_rules)) == 0)
        & np.isfinite(obs.value)
    )
    typical = typical_daily_peak_kw(obs, use, bounds, config.spike_min_days)
    kw = average_kw(obs)
    base = typical[obs.meter]
    with np.errstate(invalid="ignore"):
        member = (
            use & (kw >= config.spike_min_ratio * base) & (kw - base >= config.spike_min_excess_kw)
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
    peak_kw = np.array([kw[a : b + 1].max() for a, b in zip(runs.first, runs.last, strict=True)])
    ratio = peak_kw / typical[runs.group // 2]
    frame = run_events(
        obs,
        runs,
        LOAD_SPIKE,
        lambda hours: "warning",
        lambda i, hours: {
            "hours": hours,
            "intervals": int(runs.rows[i]),
            "kwh": float(runs.total[i]),
            "peak_kw": float(peak_kw[i]),
            "typical_daily_peak_kw": float(typical[runs.group[i] // 2]),
            "peak_ratio": float(ratio[i]),
            "channel": "delivered",
        },
    )
    frame["score"] = ratio.astype(np.float64)
    frame["severity"] = np.where(ratio >= config.spike_critical_ratio, "critical", "warning")
    return frame
