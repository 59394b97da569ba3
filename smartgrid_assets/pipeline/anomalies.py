"""Detect anomaly events over local days and fold them into the stored events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pyarrow as pa

from smartgrid_assets import anomalies, contract
from smartgrid_assets.days import days_between
from smartgrid_assets.pipeline.readings import window_bounds
from smartgrid_assets.pipeline.registry import current_meters
from smartgrid_assets.platform import Platform

LOOKBACK_DAYS = 14
EVENTS_TABLE = "anomaly_events"


@dataclass(frozen=True)
class AnomalyLoad:
    detected: pa.Table
    written: pa.Table
    superseded: list[str]


def detect_anomalies(platform: Platform, days: list[date]) -> AnomalyLoad:
    """Events overlapping the window, from cleaned readings with a lookback of local days.

    An event continuing an already stored one keeps its id and start; re-running a window
    rewrites the same events.
    """
    history = [*days_between(days[0] - timedelta(days=LOOKBACK_DAYS), days[0]), *days]
    cleaned = platform.lake.read_days("cleaned_readings", history, contract.CLEANED_READINGS)
    hourly = platform.lake.read_days("meter_hourly", history, contract.METER_HOURLY)
    start, end = window_bounds(days, platform.tz)
    detected = anomalies.detect(
        cleaned,
        hourly,
        current_meters(platform),
        platform.warehouse.read("SELECT * FROM transformers"),
        window_start=start,
        window_end=end,
        tz=platform.tz,
    )
    stored = contract.ANOMALY_EVENTS.empty_table()
    if platform.warehouse.has_table(EVENTS_TABLE):
        since = start - timedelta(days=LOOKBACK_DAYS, hours=1)
        stored = contract.conform(
            platform.warehouse.read(f'SELECT * FROM {EVENTS_TABLE} WHERE "end" >= ?', [since]),
            contract.ANOMALY_EVENTS,
        )
    merged = anomalies.merge_events_detail(stored, detected)
    ids = merged.events["event_id"].to_pylist() + merged.superseded
    platform.warehouse.replace(EVENTS_TABLE, merged.events, match={"event_id": ids})
    return AnomalyLoad(detected=detected, written=merged.events, superseded=merged.superseded)
