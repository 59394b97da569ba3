"""Run-length detection on sorted arrays, and the `stuck_meter` and `zero_run` detectors.

A run is a sequence of member rows of one group (meter-channel), each starting at most
`bridge_gap_minutes` after the previous one ends (a missing or estimated interval does not
break it; a reading that is not a member does), optionally with a value equal to the previous
one. Its length is the minutes of data it holds; its span is [first start, last end).

- `stuck_meter`: the same non-zero value on the delivered channel for >= `stuck_min_hours`;
- `zero_run`: zeros on the delivered channel for >= `zero_min_hours` on a meter without solar
  (info below `run_warning_hours`, a warning up to `vacancy_min_hours`, and info again from
  there: days of zeros are a vacancy or a disconnection, reported as such, not an alarm);
  on a solar meter both channels must read zero at the same time (its delivered channel is
  legitimately zero at midday while it exports, its received channel zero at night). A solar
  meter with no received reading in the input (single-channel net meter) is judged on
  delivered alone.

Runs are found over the whole input (lookback included) so a run that started days before
the window is seen whole; the caller keeps those that overlap the window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .config import STUCK_METER, ZERO_RUN, DetectorConfig
from .events import candidates, evidence_json, severity_by_hours
from .frame import DELIVERED, RECEIVED, US_PER_MINUTE, Observed


@dataclass(frozen=True)
class Runs:
    """One entry per run; `first` / `last` index the rows the run was found on."""

    group: np.ndarray
    first: np.ndarray
    last: np.ndarray
    start: np.ndarray  # us
    end: np.ndarray  # us
    minutes: np.ndarray  # minutes of data in the run
    rows: np.ndarray
    rules: np.ndarray  # OR of the rows' rule bits
    total: np.ndarray  # sum of values
    low: np.ndarray  # min value

    def __len__(self) -> int:
        return len(self.group)

    def select(self, mask: np.ndarray) -> Runs:
        return Runs(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))


def find_runs(
    group: np.ndarray,
    ts: np.ndarray,
    minutes: np.ndarray,
    member: np.ndarray,
    *,
    value: np.ndarray | None = None,
    same: np.ndarray | None = None,
    rules: np.ndarray | None = None,
    max_gap_minutes: int = 0,
) -> Runs:
    """Runs of `member` rows; rows sorted by (group, ts).

    `same[i]` (optional) must hold for row i to continue the run of row i - 1 (e.g. equal
    values). `value` feeds `total` / `low`, `rules` the OR of rule bits.
    """
    n = len(group)
    ts = np.asarray(ts, dtype=np.int64)
    minutes = np.asarray(minutes, dtype=np.int64)
    member = np.asarray(member, dtype=bool)
    value = np.zeros(n) if value is None else np.asarray(value, dtype=np.float64)
    rules = np.zeros(n, dtype=np.int64) if rules is None else np.asarray(rules, dtype=np.int64)
    end = ts + minutes * US_PER_MINUTE
    link = np.zeros(n, dtype=bool)
    if n > 1:
        gap = ts[1:] - end[:-1]
        link[1:] = (
            member[1:]
            & member[:-1]
            & (group[1:] == group[:-1])
            & (gap >= 0)
            & (gap <= max_gap_minutes * US_PER_MINUTE)
        )
        if same is not None:
            link[1:] &= np.asarray(same, dtype=bool)[1:]
    idx = np.flatnonzero(member)
    if not len(idx):
        z = np.zeros(0, dtype=np.int64)
        return Runs(z, z, z, z, z, z, z, z, np.zeros(0), np.zeros(0))
    heads = np.flatnonzero(~link[idx])  # positions in idx where a run starts
    tails = np.append(heads[1:], len(idx)) - 1
    first, last = idx[heads], idx[tails]
    return Runs(
        group=np.asarray(group)[first],
        first=first,
        last=last,
        start=ts[first],
        end=np.maximum.reduceat(end[idx], heads),
        minutes=np.add.reduceat(minutes[idx], heads),
        rows=tails - heads + 1,
        rules=np.bitwise_or.reduceat(rules[idx], heads),
        total=np.add.reduceat(value[idx], heads),
        low=np.minimum.reduceat(value[idx], heads),
    )


def meter_channel_group(obs: Observed) -> np.ndarray:
    return obs.meter * 2 + obs.channel


def in_window(runs: Runs, start_us: int, end_us: int) -> np.ndarray:
    return (runs.start < end_us) & (runs.end > start_us)


def meter_runs(
    obs: Observed,
    member: np.ndarray,
    config: DetectorConfig,
    min_hours: float,
    start_us: int,
    end_us: int,
    same: np.ndarray | None = None,
) -> Runs:
    """Runs of `member` rows per meter-channel, at least `min_hours` long, overlapping the
    window."""
    runs = find_runs(
        meter_channel_group(obs),
        obs.ts,
        obs.minutes,
        member,
        value=obs.value,
        same=same,
        rules=obs.rules,
        max_gap_minutes=config.bridge_gap_minutes,
    )
    return runs.select((runs.minutes >= min_hours * 60) & in_window(runs, start_us, end_us))


def run_events(
    obs: Observed,
    runs: Runs,
    type: str,
    severity: Callable[[float], str],
    evidence: Callable[[int, float], dict[str, object]],
) -> pd.DataFrame:
    """One event candidate per run (a loop per event, not per reading): the score is the run's
    hours; `evidence(i, hours)` adds the detector's own facts to the VEE rules seen."""
    rows = []
    for i in range(len(runs)):
        hours = float(runs.minutes[i]) / 60.0
        rows.append(
            {
                "type": type,
                "meter_id": obs.meter_ids[runs.group[i] // 2],
                "start": int(runs.start[i]),
                "end": int(runs.end[i]),
                "severity": severity(hours),
                "score": hours,
                "evidence": evidence_json(
                    {**evidence(i, hours), "vee_rules": obs.rules_of(int(runs.rules[i]))}
                ),
            }
        )
    return candidates(rows)


def stuck_meter(obs: Observed, config: DetectorConfig, start_us: int, end_us: int) -> pd.DataFrame:
    """`stuck_meter` events overlapping [start_us, end_us)."""
    v = obs.value
    delivered = obs.channel == DELIVERED
    member = delivered & (np.abs(v) > config.zero_tolerance_kwh) & np.isfinite(v)
    same = np.zeros(len(v), dtype=bool)
    if len(v) > 1:
        same[1:] = np.abs(v[1:] - v[:-1]) <= config.stuck_tolerance_kwh
    runs = meter_runs(obs, member, config, config.stuck_min_hours, start_us, end_us, same=same)
    return run_events(
        obs,
        runs,
        STUCK_METER,
        lambda hours: severity_by_hours(hours, config.run_warning_hours, config.run_critical_hours),
        lambda i, hours: {
            "value_kwh": float(v[runs.first[i]]),
            "hours": hours,
            "intervals": int(runs.rows[i]),
            "channel": "delivered",
        },
    )


def _received_zero(obs: Observed, tolerance: float) -> np.ndarray:
    """Per row: True where the meter's received reading at the same ts is zero.

    Only meaningful on delivered rows; False where there is no received reading then.
    """
    n = len(obs)
    out = np.zeros(n, dtype=bool)
    rec = np.flatnonzero(obs.channel == RECEIVED)
    if not len(rec):
        return out
    deliv = np.flatnonzero(obs.channel == DELIVERED)
    base = int(obs.ts.min())
    span_bits = max(1, int((int(obs.ts.max()) - base) // US_PER_MINUTE + 1).bit_length())
    if span_bits + max(1, len(obs.meter_ids).bit_length()) > 62:
        raise ValueError("input too wide for zero_run keys")

    def key(rows: np.ndarray) -> np.ndarray:
        return (obs.meter[rows] << span_bits) | ((obs.ts[rows] - base) // US_PER_MINUTE)

    rkey = key(rec)  # sorted: rows are sorted by meter, channel, ts
    dkey = key(deliv)
    pos = np.clip(np.searchsorted(rkey, dkey), 0, len(rkey) - 1)
    hit = rkey[pos] == dkey
    out[deliv] = hit & (np.abs(obs.value[rec[pos]]) <= tolerance)
    return out


def zero_run(obs: Observed, config: DetectorConfig, start_us: int, end_us: int) -> pd.DataFrame:
    """`zero_run` events overlapping [start_us, end_us)."""
    v = obs.value
    tol = config.zero_tolerance_kwh
    delivered = obs.channel == DELIVERED
    zero = delivered & (np.abs(v) <= tol)
    solar = obs.has_solar[obs.meter]
    both_channels = solar & obs.has_received[obs.meter]
    member = zero & (~both_channels | _received_zero(obs, tol))
    runs = meter_runs(obs, member, config, config.zero_min_hours, start_us, end_us)

    def evidence(i: int, hours: float) -> dict[str, object]:
        m = runs.group[i] // 2
        both = bool(obs.has_received[m] and obs.has_solar[m])
        return {
            "hours": hours,
            "intervals": int(runs.rows[i]),
            "has_solar": bool(obs.has_solar[m]),
            "channels": ["delivered", "received"] if both else ["delivered"],
            **({"likely": "vacancy or disconnection"} if hours >= config.vacancy_min_hours else {}),
        }

    def severity(hours: float) -> str:
        if hours >= config.vacancy_min_hours:
            return "info"  # a vacancy: reported, alerts nobody, never counted twice
        return "warning" if hours >= config.run_warning_hours else "info"

    return run_events(obs, runs, ZERO_RUN, severity, evidence)
