"""`interval_spike`: a single absurd interval VEE flagged as a `spike`, reported as a data
problem.

Who owns one absurd interval: VEE. A value far above its neighbours and the meter's own level
that lasts one interval is far more often a register or transmission fault than load, so VEE
flags it (`spike`) and estimates it for billing, and `load_spike` never reads it. Detection
still reports it, as an event of class `data_problem` (`config.event_class`), when it is also
beyond what the meter draws: its kW against the meter's typical daily peak at or above the
calibrated threshold (`calibration.py`; real households' kettles and showers trip VEE's
neighbour test every week and are not worth an event). A single interval VEE found to be Wh
sent as kWh (and corrected) or above the class's power limit is reported too
(`single_interval_rules`): VEE's diagnosis differs, the interval is as absurd. A burst over
several intervals is load, and `load_spike`'s.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import calibration
from .calibration import Learned
from .config import DATA_PROBLEM, INTERVAL_SPIKE, DetectorConfig
from .frame import DELIVERED, Observed
from .runs import find_runs, in_window, run_events
from .spike import SpikeStats, interval_spike_rows


def interval_spike(
    obs: Observed,
    stats: SpikeStats,
    learned: Learned,
    config: DetectorConfig,
    start_us: int,
    end_us: int,
) -> pd.DataFrame:
    """`interval_spike` events overlapping [start_us, end_us)."""
    spikes = interval_spike_rows(obs, stats, learned, obs.rule_mask(config.data_problem_rules))
    other = (obs.channel == DELIVERED) & (
        (obs.rules & obs.rule_mask(config.single_interval_rules)) != 0
    )
    runs = find_runs(
        obs.meter * 2 + obs.channel,
        obs.ts,
        obs.minutes,
        spikes | other,
        value=obs.value,
        rules=obs.rules,
    )
    # one interval: a day of Wh sent as kWh is VEE's to correct, not a spike
    runs = runs.select(in_window(runs, start_us, end_us) & ((runs.rows == 1) | spikes[runs.first]))
    meter = runs.group // 2
    peak = np.array(
        [
            a + int(np.argmax(obs.value[a : b + 1]))
            for a, b in zip(runs.first, runs.last, strict=True)
        ],
        dtype=np.int64,
    )
    ratio = stats.kw[peak] / stats.typical[meter] if len(runs) else np.zeros(0)
    return run_events(
        obs,
        runs,
        INTERVAL_SPIKE,
        lambda hours: "warning",
        lambda i, hours: {
            "class": DATA_PROBLEM,
            "kwh": float(obs.value[peak[i]]),
            "kw": float(stats.kw[peak[i]]),
            "typical_daily_peak_kw": float(stats.typical[meter[i]]),
            "ratio_to_typical_daily_peak": float(ratio[i]),
            "tail_probability": float(
                learned.tail_probability(meter[i : i + 1], np.log(ratio[i : i + 1]))[0]
            ),
            **calibration.why(learned, int(meter[i]), config),
            "intervals": int(runs.rows[i]),
            "owner": "VEE flagged it (a data problem); its billing value is an estimate",
            "channel": "delivered",
        },
    )
