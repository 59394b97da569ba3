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
from .events import candidates, evidence_json
from .frame import DELIVERED, Observed
from .runs import find_runs, in_window, meter_channel_group


def reverse_flow(obs: Observed, config: DetectorConfig, start_us: int, end_us: int) -> pd.DataFrame:
    """`reverse_flow` events overlapping [start_us, end_us)."""
    v = obs.value
    member = (
        (obs.channel == DELIVERED) & (v < -config.reverse_tolerance_kwh) & ~obs.has_solar[obs.meter]
    )
    runs = find_runs(
        meter_channel_group(obs),
        obs.ts,
        obs.minutes,
        member,
        value=v,
        rules=obs.rules,
        max_gap_minutes=config.bridge_gap_minutes,
    )
    runs = runs.select(
        (runs.minutes >= config.reverse_min_hours * 60) & in_window(runs, start_us, end_us)
    )
    rows = []
    for i in range(len(runs)):
        hours = float(runs.minutes[i]) / 60.0
        rows.append(
            {
                "type": REVERSE_FLOW,
                "meter_id": obs.meter_ids[runs.group[i] // 2],
                "start": int(runs.start[i]),
                "end": int(runs.end[i]),
                "severity": "critical" if hours >= config.reverse_critical_hours else "warning",
                "score": hours,
                "evidence": evidence_json(
                    {
                        "hours": hours,
                        "intervals": int(runs.rows[i]),
                        "kwh_reversed": -float(runs.total[i]),
                        "min_kwh": float(runs.low[i]),
                        "channel": "delivered",
                        "has_solar": False,
                        "vee_rules": obs.rules_of(int(runs.rules[i])),
                    }
                ),
            }
        )
    return candidates(rows)
