"""`reverse_flow`: negative delivered energy on a meter without solar, for >= 1 h.

Energy flowing back through a meter that has no generation behind it means backfeed (an
unregistered generator or battery), reversed CT polarity or tampering. A solar meter's
single-channel export may go negative legitimately and is not judged here. Runs of negative
readings are found like the other runs (`runs.find_runs`): gaps up to `bridge_gap_minutes`
do not break a run; a non-negative reading does.
"""

from __future__ import annotations

import pandas as pd

from .config import REVERSE_FLOW, DetectorConfig
from .frame import DELIVERED, Observed
from .runs import meter_runs, run_events


def reverse_flow(obs: Observed, config: DetectorConfig, start_us: int, end_us: int) -> pd.DataFrame:
    """`reverse_flow` events overlapping [start_us, end_us)."""
    v = obs.value
    member = (
        (obs.channel == DELIVERED) & (v < -config.reverse_tolerance_kwh) & ~obs.has_solar[obs.meter]
    )
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
        },
    )
