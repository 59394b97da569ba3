"""Scoring events against ground-truth labels (the synthetic utility's `labels.csv`).

An event matches a label of the same type and subject (meter_id, or asset_id for asset
types) whose [start, end) overlaps the event's (optionally widened by `tolerance`). Only labels
of class `anomaly` that overlap the evaluation window count (and the data problems detection
reports too: a `spike` label is found by an `interval_spike` event, scored on its own, out of
"overall"), and only events that overlap it.
Precision = matched events / events, recall = matched labels / labels, F1 their harmonic
mean, per type and overall (micro-averaged over the rule-based types); None where there is
nothing to divide by. A score type (`profile_outlier`) has no labels of its own: its events
match an anomaly label of any type on the same subject, and it stays out of "overall".
A false alarm is an unmatched warning or critical event (info events alert nobody); per
1,000 meter-days when the caller says how many meter-days were judged.
"""

from __future__ import annotations

import datetime as dt
from os import PathLike

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from smartgrid_assets.contract import UTC_TS

from .config import ANOMALY_TYPES, DATA_PROBLEM_TYPES, INTERVAL_SPIKE, SCORE_TYPES
from .events import subject_of, to_frame
from .frame import to_us, ts_us

ANOMALY_CLASS = "anomaly"
DATA_PROBLEM_CLASS = "data_problem"
#: Data-problem labels detection reports too, and the event type that finds each.
REPORTED_DATA_PROBLEMS = {"spike": INTERVAL_SPIKE}
ALARM_SEVERITIES = ("warning", "critical")

LABELS = pa.schema(
    [
        pa.field("label_id", pa.string(), nullable=False),
        pa.field("class", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("meter_id", pa.string()),
        pa.field("asset_id", pa.string()),
        pa.field("start", UTC_TS, nullable=False),
        pa.field("end", UTC_TS, nullable=False),
        pa.field("detail", pa.string()),
    ]
)


def load_labels(source: str | PathLike[str] | bytes) -> pa.Table:
    """labels.csv (a path, or its bytes) as a table (LABELS): UTC timestamps, empty ids as
    nulls."""
    table = pacsv.read_csv(
        pa.BufferReader(source) if isinstance(source, bytes) else source,
        convert_options=pacsv.ConvertOptions(
            column_types={f.name: (pa.string() if f.type == UTC_TS else f.type) for f in LABELS},
            null_values=[""],
            strings_can_be_null=True,
        ),
    )
    columns = {}
    for f in LABELS:
        col = table[f.name]
        if f.type == UTC_TS:
            # ISO 8601 with offset (e.g. 2026-03-18T09:15:00+00:00) or Z
            parsed = pd.to_datetime(pd.Series(col.to_pylist(), dtype=object), utc=True)
            col = pa.array(parsed.dt.as_unit("us"), UTC_TS)
        columns[f.name] = pc.cast(col, f.type)
    return pa.table(columns, schema=LABELS)


EVALUATION = pa.schema(
    [
        pa.field("window_start", UTC_TS, nullable=False),
        pa.field("window_end", UTC_TS, nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("events", pa.int64(), nullable=False),
        pa.field("labels", pa.int64(), nullable=False),
        pa.field("matched_events", pa.int64(), nullable=False),
        pa.field("matched_labels", pa.int64(), nullable=False),
        pa.field("precision", pa.float64()),
        pa.field("recall", pa.float64()),
        pa.field("f1", pa.float64()),
        pa.field("false_alarms", pa.int64(), nullable=False),
        pa.field("meter_days", pa.int64()),
        pa.field("false_alarms_per_1000_meter_days", pa.float64()),
    ],
    metadata={"smartgrid.name": "anomaly_evaluation", "smartgrid.version": "1.0"},
)


def evaluation_table(
    scores: dict[str, object], window_start: dt.datetime, window_end: dt.datetime
) -> pa.Table:
    """`evaluate`'s result as EVALUATION rows: one per type, and `overall` (whose false-alarm
    rate is the run's)."""
    rows = []
    by_type = dict(scores["by_type"])  # type: ignore[arg-type]
    for name, stats in [("overall", scores["overall"]), *by_type.items()]:
        overall = name == "overall"
        rows.append(
            {
                "window_start": window_start,
                "window_end": window_end,
                "type": name,
                **{k: stats[k] for k in EVALUATION.names if k in stats},  # type: ignore[index]
                "meter_days": scores["meter_days"],
                "false_alarms_per_1000_meter_days": (
                    scores["false_alarms_per_1000_meter_days"] if overall else None
                ),
            }
        )
    return pa.Table.from_pylist(rows, schema=EVALUATION)


def _window_frame(frame: pd.DataFrame, start_us: int, end_us: int) -> pd.DataFrame:
    frame = frame[(frame["start"] < end_us) & (frame["end"] > start_us)].copy()
    frame["subject"] = [
        subject_of(m, a) for m, a in zip(frame["meter_id"], frame["asset_id"], strict=True)
    ]
    return frame.reset_index(drop=True)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def f1(precision: float | None, recall: float | None) -> float | None:
    """Harmonic mean of precision and recall; None when either is unknown."""
    if precision is None or recall is None:
        return None
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def evaluate(
    events: pa.Table,
    labels: pa.Table,
    window_start: dt.datetime,
    window_end: dt.datetime,
    *,
    tolerance: dt.timedelta = dt.timedelta(0),
    meter_days: int | None = None,
) -> dict[str, object]:
    """Precision, recall and F1 per anomaly type and overall, over [window_start, window_end).

    Returns ``{"overall": stats, "by_type": {type: stats}, "false_positives": [...],
    "missed": [...], "meter_days", "false_alarms", "false_alarms_per_1000_meter_days"}``
    where stats = ``{"events", "labels", "matched_events", "matched_labels", "precision",
    "recall", "f1", "false_alarms"}``; `by_type` lists every type with an event or a label
    in the window; `false_positives` the unmatched events (type, subject, start, end,
    severity), `missed` the unmatched labels (label_id, type, subject, start, end). The rate
    is None without `meter_days`.
    """
    ws, we = to_us(window_start, "window_start"), to_us(window_end, "window_end")
    tol = int(tolerance / dt.timedelta(microseconds=1))
    ev = _window_frame(to_frame(events), ws, we)
    ev["match_type"] = ev["type"].where(~ev["type"].isin(SCORE_TYPES), "")
    lab = pd.DataFrame(
        {
            "label_id": labels["label_id"].to_pylist(),
            "class": labels["class"].to_pylist(),
            "type": labels["type"].to_pylist(),
            "meter_id": labels["meter_id"].to_pylist(),
            "asset_id": labels["asset_id"].to_pylist(),
            "start": ts_us(labels["start"]) if labels.num_rows else np.zeros(0, np.int64),
            "end": ts_us(labels["end"]) if labels.num_rows else np.zeros(0, np.int64),
        }
    )
    reported = (lab["class"] == DATA_PROBLEM_CLASS) & lab["type"].isin(REPORTED_DATA_PROBLEMS)
    lab.loc[reported, "type"] = lab.loc[reported, "type"].map(REPORTED_DATA_PROBLEMS)
    lab = _window_frame(lab[(lab["class"] == ANOMALY_CLASS) | reported], ws, we)
    ev["ev"] = np.arange(len(ev))
    lab["lab"] = np.arange(len(lab))
    lab["match_type"] = lab["type"]
    any_type = lab.assign(match_type="")
    pairs = ev[["ev", "match_type", "subject", "start", "end"]].merge(
        pd.concat([lab, any_type])[["lab", "match_type", "subject", "start", "end", "type"]],
        on=["match_type", "subject"],
        suffixes=("_e", "_l"),
    )
    pairs = pairs[
        (pairs["start_e"] < pairs["end_l"] + tol) & (pairs["start_l"] < pairs["end_e"] + tol)
    ]
    ev["matched"] = ev["ev"].isin(pairs["ev"])
    # a label is found by an event of its own type; a score type's hit finds no label
    lab["matched"] = lab["lab"].isin(pairs.loc[pairs["match_type"] != "", "lab"])
    ev["alarm"] = ~ev["matched"] & ev["severity"].isin(ALARM_SEVERITIES)

    def stats(e: pd.DataFrame, la: pd.DataFrame) -> dict[str, object]:
        me, ml = int(e["matched"].sum()), int(la["matched"].sum())
        precision, recall = _ratio(me, len(e)), _ratio(ml, len(la))
        return {
            "events": len(e),
            "labels": len(la),
            "matched_events": me,
            "matched_labels": ml,
            "precision": precision,
            "recall": recall,
            "f1": f1(precision, recall),
            "false_alarms": int(e["alarm"].sum()),
        }

    present = set(ev["type"]) | set(lab["type"])
    types = [t for t in ANOMALY_TYPES if t in present] + sorted(present - set(ANOMALY_TYPES))
    alarms = int(ev["alarm"].sum())

    def iso(us: int) -> str:
        return pd.Timestamp(int(us), unit="us", tz="UTC").isoformat()

    rules = ~ev["type"].isin(SCORE_TYPES + DATA_PROBLEM_TYPES)
    anomalies = ~lab["type"].isin(DATA_PROBLEM_TYPES)
    return {
        "overall": stats(ev[rules], lab[anomalies]),
        "by_type": {t: stats(ev[ev["type"] == t], lab[lab["type"] == t]) for t in types},
        "false_positives": [
            {
                "type": r.type,
                "subject": r.subject,
                "start": iso(r.start),
                "end": iso(r.end),
                "severity": r.severity,
            }
            for r in ev[~ev["matched"]].itertuples()
        ],
        "missed": [
            {
                "label_id": r.label_id,
                "type": r.type,
                "subject": r.subject,
                "start": iso(r.start),
                "end": iso(r.end),
            }
            for r in lab[~lab["matched"]].itertuples()
        ],
        "meter_days": meter_days,
        "false_alarms": alarms,
        "false_alarms_per_1000_meter_days": (1000.0 * alarms / meter_days if meter_days else None),
    }
