"""Detect anomaly events over local days and fold them into the stored events; score the
stored events against ground-truth labels where a utility (or the synthetic one) landed
them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from smartgrid_assets import anomalies, contract
from smartgrid_assets.days import days_between
from smartgrid_assets.pipeline.readings import window_bounds
from smartgrid_assets.pipeline.registry import current_meters
from smartgrid_assets.platform import Platform
from smartgrid_assets.settings import Settings

LOOKBACK_DAYS = 14
EVENTS_TABLE = "anomaly_events"
CALIBRATION_TABLE = "detector_calibration"
EVALUATION_TABLE = "anomaly_evaluation"
#: ground truth lands as `labels/<arrival date>/<name>.csv` (the synthetic utility's
#: labels.csv); the newest key is the one scored against
LABELS_PREFIX = "labels/"


@dataclass(frozen=True)
class AnomalyLoad:
    detected: pa.Table
    written: pa.Table
    superseded: list[str]
    calibration: pa.Table  # CALIBRATION the calibrated detectors used
    meter_days: int  # meter-days of the window with readings
    config: anomalies.DetectorConfig
    meters: pa.Table  # the registry the events were judged with


def detector_config(settings: Settings) -> anomalies.DetectorConfig:
    """The detectors' configuration: defaults, with the utility's alarm budget."""
    return anomalies.DetectorConfig(anomaly_budget=settings.anomaly_budget)


def detect_anomalies(platform: Platform, days: list[date]) -> AnomalyLoad:
    """Events overlapping the window, from cleaned readings with a lookback of local days.

    The calibrated detectors learn from the lookback and the window (the fleet's days, pooled
    by customer class where a meter's own are few); what they learned is written to
    `detector_calibration`, replacing an earlier calibration for the same window end. An event
    continuing an already stored one keeps its id and start; re-running a window rewrites
    the same events.
    """
    history = [*days_between(days[0] - timedelta(days=LOOKBACK_DAYS), days[0]), *days]
    cleaned = platform.lake.read_days("cleaned_readings", history, contract.CLEANED_READINGS)
    hourly = platform.lake.read_days("meter_hourly", history, contract.METER_HOURLY)
    start, end = window_bounds(days, platform.tz)
    meters = current_meters(platform)
    config = detector_config(platform.settings)
    detection = anomalies.detect_detail(
        cleaned,
        hourly,
        meters,
        platform.warehouse.read("SELECT * FROM transformers"),
        window_start=start,
        window_end=end,
        config=config,
        tz=platform.tz,
    )
    detected, learned = detection.events, detection.calibration
    if learned.num_rows:
        platform.warehouse.replace(CALIBRATION_TABLE, learned, match={"last_ts": [end]})
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
    in_window = pc.greater_equal(hourly["ts"], pa.scalar(start, contract.UTC_TS))
    window = anomalies.meter_days(hourly.filter(in_window), platform.tz)
    return AnomalyLoad(
        detected=detected,
        written=merged.events,
        superseded=merged.superseded,
        calibration=learned,
        meter_days=window,
        config=config,
        meters=meters,
    )


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


@dataclass(frozen=True)
class ReportSummary:
    """What a person reads of an `anomaly_report` run."""

    events: int
    alarms_per_1000: float  # warning or critical events per 1,000 meter-days of the window
    budget: float
    by_type: list[dict[str, object]]
    to_act_on: list[dict[str, object]]  # `anomalies.report_rows`
    calibration: list[dict[str, object]]  # meters per calibrated detector and source
    insufficient_history: list[str]
    generation: list[str]  # found to export regularly, treated as having generation


def report_summary(load: AnomalyLoad) -> ReportSummary:
    """The run's events to act on, its alarm rate against the budget, what was learned."""
    events, cal = load.written, load.calibration
    alarms = pc.sum(pc.is_in(events["severity"], pa.array(anomalies.ALARM_SEVERITIES))).as_py()
    per_1000 = 1000.0 * (alarms or 0) / load.meter_days if load.meter_days else 0.0
    calibrated = cal.filter(pc.is_in(cal["detector"], pa.array(anomalies.CALIBRATED_TYPES)))
    sources = calibrated.group_by(["detector", "source"]).aggregate([("meter_id", "count")])
    by_type = events.group_by(["type", "severity"]).aggregate([("event_id", "count")])
    return ReportSummary(
        events=events.num_rows,
        alarms_per_1000=round(per_1000, 2),
        budget=load.config.anomaly_budget,
        by_type=by_type.sort_by("type").to_pylist(),
        to_act_on=anomalies.report_rows(events, load.meters),
        calibration=sources.sort_by("detector").to_pylist(),
        insufficient_history=sorted(anomalies.calibration.insufficient_history(cal)),
        generation=sorted(anomalies.calibration.inferred_generation(cal)),
    )


DETECTOR_EVALUATION_TABLE = "detector_evaluation"
#: days of the live fleet `detector_evaluation` judges, and at most this many meters of it
#: (a seeded sample: the figures are a rate, not a census; detection runs twice per seed)
EVALUATION_DAYS = 90
EVALUATION_MAX_METERS = 500

DETECTOR_EVALUATION = pa.schema(
    [
        pa.field("evaluated_at", contract.UTC_TS, nullable=False),
        pa.field("first_day", pa.date32(), nullable=False),
        pa.field("last_day", pa.date32(), nullable=False),
        pa.field("seed", pa.int64(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("injected", pa.int64(), nullable=False),
        pa.field("found", pa.int64(), nullable=False),
        pa.field("recall", pa.float64()),
        pa.field("new_events", pa.int64(), nullable=False),
        pa.field("precision", pa.float64()),
        pa.field("f1", pa.float64()),
        pa.field("meters", pa.int64(), nullable=False),
        pa.field("meter_days", pa.int64(), nullable=False),
        pa.field("untouched_alarms_per_1000_meter_days", pa.float64()),
        pa.field("anomaly_budget", pa.float64(), nullable=False),
        pa.field("detector_version", pa.string(), nullable=False),
    ],
    metadata={"smartgrid.name": DETECTOR_EVALUATION_TABLE, "smartgrid.version": "1.0"},
)


@dataclass(frozen=True)
class DetectorEvaluation:
    first_day: date | None  # None: no cleaned readings in the period
    last_day: date
    result: dict[str, object]
    table: pa.Table

    def by_type(self) -> list[dict[str, object]]:
        """The figures per type for a person: rounded, "-" where there is nothing to divide."""
        columns = ["type", "injected", "found", "recall", "new_events", "precision", "f1"]
        return [
            {
                k: round(v, 3) if isinstance(v, float) else ("-" if v is None else v)
                for k, v in r.items()
            }
            for r in self.table.select(columns).to_pylist()
        ]


def as_readings(cleaned: pa.Table) -> pa.Table:
    """Cleaned readings back to what landed (meter_id, ts, interval_minutes, channel, kwh as
    read): estimates invented nothing, so they are left out."""
    landed = cleaned.filter(pc.is_valid(cleaned["kwh_raw"]))
    return pa.table(
        {
            "meter_id": landed["meter_id"],
            "ts": landed["ts"],
            "interval_minutes": landed["interval_minutes"],
            "channel": landed["channel"],
            "kwh": landed["kwh_raw"],
        }
    )


def sample_meters(meter_ids: list[str], limit: int, seed: int) -> set[str]:
    """At most `limit` of the meters, a seeded sample (all of them when there are fewer)."""
    ids = sorted(set(meter_ids))
    if len(ids) <= limit:
        return set(ids)
    rng = np.random.default_rng(seed)
    return set(np.asarray(ids, dtype=object)[rng.choice(len(ids), limit, replace=False)])


def evaluate_detectors(
    platform: Platform,
    last_day: date | None = None,
    *,
    days: int = EVALUATION_DAYS,
    max_meters: int = EVALUATION_MAX_METERS,
    seed: int = 0,
) -> DetectorEvaluation:
    """`smartgrid evaluate` on the live fleet: the cleaned readings as landed of the `days`
    local days to `last_day` of a seeded sample of `max_meters` registry meters, injected and
    scored; the rows replace those of the same period and seed in `detector_evaluation`. Each
    day's partition is cut to the sample as it is read: the fleet's days are never all held.
    `last_day` defaults to yesterday in the utility's time zone."""
    if last_day is None:
        last_day = datetime.now(ZoneInfo(platform.tz)).date() - timedelta(days=1)
    period = days_between(last_day - timedelta(days=days - 1), last_day + timedelta(days=1))
    meters = current_meters(platform)
    chosen = pa.array(sorted(sample_meters(meters["meter_id"].to_pylist(), max_meters, seed)))
    parts = [
        as_readings(part.filter(pc.is_in(part["meter_id"], chosen)))
        for day in period
        if (
            part := platform.lake.read_partition("cleaned_readings", day, contract.CLEANED_READINGS)
        )
        is not None
    ]
    readings = pa.concat_tables(parts) if parts else None
    if readings is None or not readings.num_rows:
        return DetectorEvaluation(None, last_day, {}, DETECTOR_EVALUATION.empty_table())
    solar = set(meters.filter(pc.fill_null(meters["has_solar"], False))["meter_id"].to_pylist())
    config = detector_config(platform.settings)
    result = anomalies.evaluate_readings(
        readings, tz=platform.tz, solar_meters=solar, seeds=[seed], config=config
    )
    first = pd.Timestamp(pc.min(readings["ts"]).as_py()).tz_convert(platform.tz).date()
    (run,) = result["runs"]
    untouched = result["untouched"]["alarms_per_1000_meter_days"]
    now = datetime.now(UTC)
    rows = [
        {
            "evaluated_at": now,
            "first_day": first,
            "last_day": last_day,
            "seed": seed,
            "type": name,
            **{
                k: stats[k]
                for k in ("injected", "found", "recall", "new_events", "precision", "f1")
            },
            "meters": result["meters"],
            "meter_days": result["meter_days"],
            "untouched_alarms_per_1000_meter_days": untouched,
            "anomaly_budget": config.anomaly_budget,
            "detector_version": anomalies.DETECTOR_VERSION,
        }
        for name, stats in [*run["by_type"].items(), ("overall", run["overall"])]
    ]
    table = pa.Table.from_pylist(rows, schema=DETECTOR_EVALUATION)
    platform.warehouse.replace(
        DETECTOR_EVALUATION_TABLE,
        table,
        match={"first_day": [first], "last_day": [last_day], "seed": [seed]},
    )
    return DetectorEvaluation(first, last_day, result, table)
