"""`detect`: every detector over one window, as one ANOMALY_EVENTS table."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa

from .config import DETECTOR_VERSION, DetectorConfig
from .drop import theft_drop
from .events import empty_events, from_candidates, merge_events
from .frame import observed, to_us
from .overload import transformer_overload
from .reverse import reverse_flow
from .runs import stuck_meter, zero_run


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
    kva_rating. `tz` is the utility's time zone: theft_drop works on its local days.

    Events of one type and subject that touch (within 1 h) are returned as one event, with
    ids from `event_id`; fold them into stored events with `merge_events`.
    """
    ws, we = to_us(window_start, "window_start"), to_us(window_end, "window_end")
    if we <= ws:
        raise ValueError("window_end must be after window_start")
    obs = observed(cleaned, meters, window_end=we, exclude_rules=config.exclude_rules)
    parts = [
        stuck_meter(obs, config, ws, we),
        zero_run(obs, config, ws, we),
        reverse_flow(obs, config, ws, we),
        theft_drop(obs, config, ws, we, tz),
        transformer_overload(meter_hourly, meters, transformers, obs, config, ws, we),
    ]
    parts = [p for p in parts if not p.empty]
    if not parts:
        return empty_events()
    found = pd.concat(parts, ignore_index=True)
    return merge_events(empty_events(), from_candidates(found, DETECTOR_VERSION))
