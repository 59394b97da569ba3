"""`detect`: every detector over one window, as one ANOMALY_EVENTS table."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa

from .config import DETECTOR_VERSION, DetectorConfig
from .drop import theft_drop
from .events import empty_events, from_candidates, merge_events
from .frame import observed, to_us
from .imbalance import feeder_imbalance
from .outlier import profile_outlier
from .overload import transformer_overload
from .profile import profile_deviation
from .reverse import reverse_flow
from .runs import stuck_meter, zero_run
from .spike import load_spike


def not_covered(found: pd.DataFrame, others: pd.DataFrame, on: str = "meter_id") -> pd.DataFrame:
    """Rows of `found` that no row of `others` with the same `on` value overlaps in time."""
    if found.empty or others.empty:
        return found
    pairs = found.reset_index().merge(others[[on, "start", "end"]], on=on)
    hit = pairs[(pairs["start_x"] < pairs["end_y"]) & (pairs["start_y"] < pairs["end_x"])]
    return found.drop(index=hit["index"].unique())


def not_overloading(
    spikes: pd.DataFrame, overloads: pd.DataFrame, meters: pa.Table
) -> pd.DataFrame:
    """load_spike rows whose meter's transformer is not overloaded meanwhile: a burst that
    overloads its transformer is reported once, as the transformer_overload."""
    if spikes.empty or overloads.empty or "transformer_id" not in meters.column_names:
        return spikes
    tx = dict(
        zip(meters["meter_id"].to_pylist(), meters["transformer_id"].to_pylist(), strict=True)
    )
    with_tx = spikes.assign(transformer_id=spikes["meter_id"].map(tx))
    busy = overloads.rename(columns={"asset_id": "transformer_id"})
    return not_covered(with_tx, busy, on="transformer_id").drop(columns="transformer_id")


def detect(
    cleaned: pa.Table,
    meter_hourly: pa.Table,
    meters: pa.Table,
    transformers: pa.Table,
    *,
    window_start: dt.datetime,
    window_end: dt.datetime,
    config: DetectorConfig = DetectorConfig(),  # noqa: B008 - frozen, never mutated
    tz: str = "UTC",
) -> pa.Table:
    """Anomaly events (ANOMALY_EVENTS) overlapping [window_start, window_end).

    `cleaned` (CLEANED_READINGS) and `meter_hourly` (METER_HOURLY) hold the window plus a
    lookback (e.g. 14 local days before window_start; theft_drop needs at least 3 baseline days
    and 7 days of drop); rows at or after `window_end` are ignored, so the result for a window
    never depends on later data. `meters` is the registry (meter_id, has_solar,
    transformer_id, installed_at, removed_at), `transformers` has transformer_id and
    kva_rating. `tz` is the utility's time zone: theft_drop, load_spike, profile_deviation and
    profile_outlier work on its local days. Feeder-head meters (a feeder_id, no
    transformer_id) in `meters` enable feeder_imbalance.

    profile_outlier (IsolationForest, info) keeps only meter-days no rule-based event of the
    meter overlaps: it is there for what the rules miss. A load_spike while the meter's
    transformer is overloaded is left to the transformer_overload event.

    Events of one type and subject that touch (within 1 h) are returned as one event, with
    ids from `event_id`; fold them into stored events with `merge_events`.
    """
    ws, we = to_us(window_start, "window_start"), to_us(window_end, "window_end")
    if we <= ws:
        raise ValueError("window_end must be after window_start")
    obs = observed(cleaned, meters, window_end=we, exclude_rules=config.exclude_rules)
    overloads = transformer_overload(meter_hourly, meters, transformers, obs, config, ws, we)
    parts = [
        stuck_meter(obs, config, ws, we),
        zero_run(obs, config, ws, we),
        reverse_flow(obs, config, ws, we),
        theft_drop(obs, config, ws, we, tz),
        not_overloading(load_spike(obs, config, ws, we, tz), overloads, meters),
        profile_deviation(obs, config, ws, we, tz),
        overloads,
        feeder_imbalance(meter_hourly, meters, config, ws, we),
    ]
    parts = [p for p in parts if not p.empty]
    rules = pd.concat(parts, ignore_index=True) if parts else None
    outliers = profile_outlier(obs, config, ws, we, tz)
    if rules is not None:
        outliers = not_covered(outliers, rules)
    parts = [p for p in (rules, outliers) if p is not None and not p.empty]
    if not parts:
        return empty_events()
    found = pd.concat(parts, ignore_index=True)
    return merge_events(empty_events(), from_candidates(found, DETECTOR_VERSION))
