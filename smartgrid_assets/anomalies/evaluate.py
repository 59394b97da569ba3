"""Scoring events against ground-truth labels (the synthetic utility's `labels.csv`).

An event matches a label of the same type and subject (meter_id, or asset_id for asset
types) whose [start, end) overlaps the event's (optionally widened by `tolerance`). Only labels
of class `anomaly` that overlap the evaluation window count, and only events that overlap it.
Precision = matched events / events, recall = matched labels / labels, per type and overall
(micro-averaged); None where there is nothing to divide by.
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

from .config import ANOMALY_TYPES
from .events import subject_of, to_frame
from .frame import to_us, ts_us

ANOMALY_CLASS = "anomaly"

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


def load_labels(path: str | PathLike[str]) -> pa.Table:
    """labels.csv as a table (LABELS): UTC timestamps, empty ids as nulls."""
    table = pacsv.read_csv(
        path,
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


def _window_frame(frame: pd.DataFrame, start_us: int, end_us: int) -> pd.DataFrame:
    frame = frame[(frame["start"] < end_us) & (frame["end"] > start_us)].copy()
    frame["subject"] = [
        subject_of(m, a) for m, a in zip(frame["meter_id"], frame["asset_id"], strict=True)
    ]
    return frame.reset_index(drop=True)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def evaluate(
    events: pa.Table,
    labels: pa.Table,
    window_start: dt.datetime,
    window_end: dt.datetime,
    *,
    tolerance: dt.timedelta = dt.timedelta(0),
) -> dict[str, object]:
    """Precision and recall per anomaly type and overall, over [window_start, window_end).

    Returns ``{"overall": stats, "by_type": {type: stats}, "false_positives": [...],
    "missed": [...]}`` where stats = ``{"events", "labels", "matched_events",
    "matched_labels", "precision", "recall"}``; `by_type` lists every type with an event or a
    label in the window; `false_positives` the unmatched events (type, subject, start, end),
    `missed` the unmatched labels (label_id, type, subject, start, end).
    """
    ws, we = to_us(window_start, "window_start"), to_us(window_end, "window_end")
    tol = int(tolerance / dt.timedelta(microseconds=1))
    ev = _window_frame(to_frame(events), ws, we)
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
    lab = _window_frame(lab[lab["class"] == ANOMALY_CLASS], ws, we)
    ev["ev"] = np.arange(len(ev))
    lab["lab"] = np.arange(len(lab))
    pairs = ev[["ev", "type", "subject", "start", "end"]].merge(
        lab[["lab", "type", "subject", "start", "end"]],
        on=["type", "subject"],
        suffixes=("_e", "_l"),
    )
    pairs = pairs[
        (pairs["start_e"] < pairs["end_l"] + tol) & (pairs["start_l"] < pairs["end_e"] + tol)
    ]
    ev["matched"] = ev["ev"].isin(pairs["ev"])
    lab["matched"] = lab["lab"].isin(pairs["lab"])

    def stats(e: pd.DataFrame, la: pd.DataFrame) -> dict[str, object]:
        me, ml = int(e["matched"].sum()), int(la["matched"].sum())
        return {
            "events": len(e),
            "labels": len(la),
            "matched_events": me,
            "matched_labels": ml,
            "precision": _ratio(me, len(e)),
            "recall": _ratio(ml, len(la)),
        }

    present = set(ev["type"]) | set(lab["type"])
    types = [t for t in ANOMALY_TYPES if t in present] + sorted(present - set(ANOMALY_TYPES))

    def iso(us: int) -> str:
        return pd.Timestamp(int(us), unit="us", tz="UTC").isoformat()

    return {
        "overall": stats(ev, lab),
        "by_type": {t: stats(ev[ev["type"] == t], lab[lab["type"] == t]) for t in types},
        "false_positives": [
            {"type": r.type, "subject": r.subject, "start": iso(r.start), "end": iso(r.end)}
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
    }
