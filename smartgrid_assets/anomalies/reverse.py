"""`reverse_flow`: negative delivered energy on a meter without generation, for >= 1 h.

Energy flowing back through a meter that has no generation behind it means backfeed (an
unregistered generator or battery), reversed CT polarity or tampering. A meter has generation
when its registry entry says so (`has_solar`), or when it has exported regularly in the input
(`generation.exports_regularly`: a registry's `unknown` is not `solar`, but a net meter that
goes negative most sunny days is one); such a meter's single-channel export may go negative
legitimately and is not judged here. Runs of negative readings are found like the other runs
(`runs.find_runs`): gaps up to `bridge_gap_minutes` do not break a run; a non-negative reading
does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import generation
from .config import REVERSE_FLOW, DetectorConfig
from .frame import DELIVERED, Observed
from .runs import meter_runs, run_events


def inferred_generation(
    obs: Observed, config: DetectorConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per meter code: (exports regularly though the registry says no generation, days with a
    negative delivered reading, days with data)."""
    delivered = obs.channel == DELIVERED
    negative = delivered & (obs.value < -config.reverse_tolerance_kwh)
    days, negative_days = generation.export_days(
        obs.meter[delivered], obs.ts[delivered], negative[delivered], len(obs.meter_ids)
    )
    inferred = ~obs.has_solar & generation.exports_regularly(days, negative_days)
    return inferred, negative_days, days


def reverse_flow(
    obs: Observed,
    config: DetectorConfig,
    start_us: int,
    end_us: int,
    known_generation: np.ndarray | None = None,
) -> pd.DataFrame:
    """`reverse_flow` events overlapping [start_us, end_us); `known_generation` (per meter
    code): found to export regularly over a longer history (the calibration)."""
    v = obs.value
    inferred, negative_days, _ = inferred_generation(obs, config)
    if known_generation is not None:
        inferred = inferred | known_generation
    without = ~obs.has_solar & ~inferred
    member = (obs.channel == DELIVERED) & (v < -config.reverse_tolerance_kwh) & without[obs.meter]
    runs = meter_runs(obs, member, config, config.reverse_min_hours, start_us, end_us)
    return run_events(
        obs,
        runs,
        REVERSE_FLOW,
        lambda hours: "critical" if hours >= config.reverse_critical_hours else "warning",
        lambda i, hours: {
            "hours": hours,
            "intervals": int(runs.rows[i]),
            "kwh_reversed": -float(runs.total[i]),
            "min_kwh": float(runs.low[i]),
            "channel": "delivered",
            "has_solar": False,
            "days_with_export": int(negative_days[runs.group[i] // 2]),
        },
    )
