"""Detect anomaly events over local days and fold them into the stored events; score the
stored events against ground-truth labels where a utility (or the synthetic one) landed
them."""

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
EVALUATION_TABLE = "anomaly_evaluation"
#: ground truth lands as `labels/<arrival date>/<name>.csv` (the synthetic utility's
#: labels.csv); the newest key is the one scored against
LABELS_PREFIX = "labels/"


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


@dataclass(frozen=True)
class EvaluationLoad:
    labels_key: str | None  # None: no labels landed, nothing scored
    scores: dict[str, object]
    table: pa.Table


def latest_labels(platform: Platform) -> tuple[str, pa.Table] | None:
    """The newest landed labels file (key, LABELS table), or None."""
    files = [f for f in platform.landing.list(LABELS_PREFIX) if f.key.endswith(".csv")]
    if not files:
        return None
    key = files[-1].key
    return key, anomalies.load_labels(platform.landing.read_bytes(key))


def evaluate_anomalies(platform: Platform, days: list[date]) -> EvaluationLoad:
    """Precision, recall, F1 and false alarms per 1,000 meter-days of the stored events over
    the days, against the newest landed labels; rows replace those of the same window."""
    start, end = window_bounds(days, platform.tz)
    found = latest_labels(platform)
    if found is None:
        return EvaluationLoad(None, {}, anomalies.EVALUATION.empty_table())
    key, labels = found
    events = contract.ANOMALY_EVENTS.empty_table()
    if platform.warehouse.has_table(EVENTS_TABLE):
        events = contract.conform(
            platform.warehouse.read(
                f'SELECT * FROM {EVENTS_TABLE} WHERE start < ? AND "end" > ?', [end, start]
            ),
            contract.ANOMALY_EVENTS,
        )
    hourly = platform.lake.read_days("meter_hourly", days, contract.METER_HOURLY)
    scores = anomalies.evaluate(
        events, labels, start, end, meter_days=anomalies.meter_days(hourly, platform.tz)
    )
    table = anomalies.evaluation_table(scores, start, end)
    platform.warehouse.replace(
        EVALUATION_TABLE, table, match={"window_start": [start], "window_end": [end]}
    )
    return EvaluationLoad(key, scores, table)
