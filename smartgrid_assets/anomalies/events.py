"""The event model: stable ids, severity, evidence, the ANOMALY_EVENTS table, and merging.

An event's subject is its meter (`meter_id`), or its grid asset (`asset_id`) for asset types
such as `transformer_overload`. `event_id` hashes type, subject and start, so detecting the same
event again gives the same id. Events of the same type and subject that overlap or touch
(within `gap`) are one event: `merge_events` folds a new detection into what is already stored,
keeping the stored id, so a run over day D and then D+1 of an event spanning midnight leaves one
event, and re-running a day changes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from smartgrid_assets.contract import ANOMALY_EVENTS

from .config import DETECTOR_VERSION, SEVERITIES, event_class
from .frame import ts_us

#: Columns of a detector's candidate frame (start / end as int64 UTC microseconds).
CANDIDATE_COLUMNS = (
    "type",
    "meter_id",
    "asset_id",
    "start",
    "end",
    "severity",
    "score",
    "evidence",
)
_RANK = {name: i for i, name in enumerate(SEVERITIES)}


def _iso(value: dt.datetime | pd.Timestamp | int) -> str:
    if isinstance(value, int | np.integer):
        ts = pd.Timestamp(int(value), unit="us", tz="UTC")
    else:
        ts = pd.Timestamp(value)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.isoformat()


def event_id(type: str, subject: str, start: dt.datetime | pd.Timestamp | int) -> str:
    """Stable id: sha1 of ``type|subject|start`` (start in UTC ISO 8601), 20 hex characters.

    `start` is a datetime (naive means UTC) or integer microseconds since the epoch.
    """
    key = f"{type}|{subject}|{_iso(start)}"
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:20]


def evidence_json(values: Mapping[str, object]) -> str:
    """Compact, key-sorted JSON; floats rounded to 4 decimals, numpy scalars made plain."""

    def plain(v: object) -> object:
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float):
            return round(v, 4) if np.isfinite(v) else None
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        return v

    return json.dumps(
        {k: plain(v) for k, v in values.items()}, separators=(",", ":"), sort_keys=True
    )


def severity_by_hours(hours: float, warning_hours: float, critical_hours: float) -> str:
    """info below `warning_hours`, warning below `critical_hours`, else critical."""
    if hours >= critical_hours:
        return "critical"
    return "warning" if hours >= warning_hours else "info"


def max_severity(values: list[str] | pd.Series) -> str:
    return max(values, key=lambda s: _RANK.get(s, -1))


def empty_candidates() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "type": pd.Series(dtype=object),
            "meter_id": pd.Series(dtype=object),
            "asset_id": pd.Series(dtype=object),
            "start": pd.Series(dtype=np.int64),
            "end": pd.Series(dtype=np.int64),
            "severity": pd.Series(dtype=object),
            "score": pd.Series(dtype=np.float64),
            "evidence": pd.Series(dtype=object),
        }
    )


def candidates(rows: list[dict[str, object]]) -> pd.DataFrame:
    """A candidate frame from dicts with CANDIDATE_COLUMNS (missing ids are None)."""
    if not rows:
        return empty_candidates()
    frame = pd.DataFrame(rows)
    for name in ("meter_id", "asset_id"):
        if name not in frame:
            frame[name] = None
    frame = frame[list(CANDIDATE_COLUMNS)].astype({"start": np.int64, "end": np.int64})
    return frame.astype({"score": np.float64})


def subject_of(meter_id: object, asset_id: object) -> str:
    """The subject of an event or label: its meter, else its asset."""
    if isinstance(meter_id, str) and meter_id:
        return meter_id
    return asset_id if isinstance(asset_id, str) else ""


# --- ANOMALY_EVENTS tables --------------------------------------------------------------------


def empty_events() -> pa.Table:
    return ANOMALY_EVENTS.empty_table()


def to_frame(events: pa.Table) -> pd.DataFrame:
    """ANOMALY_EVENTS rows as a frame with int64 microsecond start / end."""
    frame = pd.DataFrame(
        {
            name: events[name].to_pylist()
            for name in ANOMALY_EVENTS.names
            if name not in ("start", "end")
        }
    )
    frame["start"] = ts_us(events["start"]) if events.num_rows else np.zeros(0, np.int64)
    frame["end"] = ts_us(events["end"]) if events.num_rows else np.zeros(0, np.int64)
    frame["score"] = frame["score"].astype(np.float64)
    return frame[list(ANOMALY_EVENTS.names)]


def to_table(frame: pd.DataFrame) -> pa.Table:
    """A frame with ANOMALY_EVENTS columns (start / end int64 us) as a contract table."""
    if frame.empty:
        return empty_events()
    columns = {}
    for name in ANOMALY_EVENTS.names:
        f = ANOMALY_EVENTS.field(name)
        values = frame[name]
        if name in ("start", "end"):
            columns[name] = pa.array(values.to_numpy(np.int64), pa.int64()).cast(f.type)
        else:
            columns[name] = pa.array(
                [None if isinstance(v, float) and np.isnan(v) else v for v in values]
                if f.type == pa.string()
                else values.to_numpy(),
                f.type,
            )
    return pa.table(columns, schema=ANOMALY_EVENTS)


def from_candidates(frame: pd.DataFrame, version: str = DETECTOR_VERSION) -> pa.Table:
    """Give each candidate its event_id and version: an ANOMALY_EVENTS table."""
    if frame.empty:
        return empty_events()
    out = frame.copy()
    out["event_id"] = [
        event_id(t, subject_of(m, a), int(s))
        for t, m, a, s in zip(
            out["type"], out["meter_id"], out["asset_id"], out["start"], strict=True
        )
    ]
    out["detector_version"] = version
    return to_table(out)


# --- merging --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MergeResult:
    """`events`: the affected events after merging (new ones and stored ones they extend);
    `superseded`: ids of stored events absorbed into another event (a new detection bridged
    two stored events): delete them when writing `events`."""

    events: pa.Table
    superseded: list[str] = field(default_factory=list)


def merge_events_detail(
    existing: pa.Table, new: pa.Table, gap: dt.timedelta = dt.timedelta(hours=1)
) -> MergeResult:
    """Fold `new` events into `existing` ones (both ANOMALY_EVENTS); see `merge_events`."""
    gap_us = int(gap / dt.timedelta(microseconds=1))
    old = to_frame(existing) if existing.num_rows else to_frame(empty_events())
    fresh = to_frame(new) if new.num_rows else to_frame(empty_events())
    if fresh.empty:
        return MergeResult(empty_events(), [])
    old["is_new"] = False
    fresh["is_new"] = True
    both = pd.concat([old, fresh], ignore_index=True)
    both["subject"] = [
        subject_of(m, a) for m, a in zip(both["meter_id"], both["asset_id"], strict=True)
    ]
    both = both.sort_values(
        ["type", "subject", "start", "is_new", "end"], ascending=[True, True, True, True, False]
    ).reset_index(drop=True)
    # a new cluster starts where the group changes or the start is past every earlier end + gap
    key = both["type"] + "\x00" + both["subject"]
    reach = both.groupby(key, sort=False)["end"].cummax()
    prev_reach = reach.shift(1)
    same_group = key.eq(key.shift(1))
    starts_cluster = ~same_group | (both["start"] > prev_reach + gap_us)
    both["cluster"] = np.cumsum(starts_cluster.to_numpy())
    affected = both.groupby("cluster")["is_new"].transform("any")
    rows: list[dict[str, object]] = []
    superseded: list[str] = []
    for _, group in both[affected].groupby("cluster", sort=True):
        stored = group[~group["is_new"]]
        # evidence from the detection that saw the most (latest end; a new one on ties), so
        # re-running an earlier day does not roll back what a later day found; its severity
        # too when it saw the whole event (days of zeros become a vacancy, not an alarm)
        latest = group.sort_values(["end", "is_new", "score"]).iloc[-1]
        first = group.iloc[0]
        if len(stored):
            keeper = stored.sort_values(["start", "event_id"]).iloc[0]
            eid = keeper["event_id"]
            superseded.extend(sorted(set(stored["event_id"]) - {eid}))
        else:
            eid = event_id(first["type"], first["subject"], int(group["start"].min()))
        rows.append(
            {
                "event_id": eid,
                "type": first["type"],
                "meter_id": latest["meter_id"],
                "asset_id": latest["asset_id"],
                "start": int(group["start"].min()),
                "end": int(group["end"].max()),
                "severity": (
                    latest["severity"]
                    if latest["start"] <= group["start"].min()
                    else max_severity(list(group["severity"]))
                ),
                "score": float(group["score"].max()),
                "evidence": latest["evidence"],
                "detector_version": latest["detector_version"],
            }
        )
    return MergeResult(to_table(pd.DataFrame(rows)), superseded)


def merge_events(
    existing: pa.Table, new: pa.Table, gap: dt.timedelta = dt.timedelta(hours=1)
) -> pa.Table:
    """Merge new detections into stored events; return the affected events.

    An event of the same type and subject that overlaps or touches (within `gap`) a stored
    one is the same event: the stored `event_id` and the earliest start are kept, the end is
    extended, the score is the maximum, evidence (and detector_version) come from the
    detection with the latest end (a new one on ties: a re-run refreshes it), and so does the
    severity when that detection spans the whole event (else the maximum). New events that
    touch nothing are returned with their own ids; new events touching each other are folded
    together too. Stored events no new event touches are
    not returned, so a caller replaces the returned ids in the warehouse (and deletes
    `merge_events_detail(...).superseded`, non-empty only when one detection bridges two stored
    events). Idempotent: merging the same detection again returns the same rows.
    """
    return merge_events_detail(existing, new, gap).events


__all__ = [
    "CANDIDATE_COLUMNS",
    "MergeResult",
    "candidates",
    "event_id",
    "evidence_json",
    "from_candidates",
    "merge_events",
    "merge_events_detail",
    "severity_by_hours",
    "to_frame",
    "to_table",
]


def report_rows(events: pa.Table, meters: pa.Table, limit: int = 50) -> list[dict[str, object]]:
    """Events for a person to act on: most severe first, then the least likely under the
    calibration (tail probability, comparable across calibrated types; a rule's event has
    none and follows them), then the highest score; with the meter's transformer and feeder,
    rounded figures and no empty cells."""
    frame = to_frame(events)
    if frame.empty:
        return []
    tail = frame["evidence"].map(lambda e: json.loads(e).get("tail_probability"))
    place = {}
    if meters.num_rows:
        names = set(meters.column_names)
        cols = [c for c in ("transformer_id", "feeder_id") if c in names]
        place = {r["meter_id"]: r for r in meters.select(["meter_id", *cols]).to_pylist()}
    frame = frame.assign(
        rank=-frame["severity"].map(_RANK).fillna(-1),
        tail=pd.to_numeric(tail, errors="coerce"),
    ).sort_values(["rank", "tail", "score"], ascending=[True, True, False], na_position="last")

    def text(value: object) -> str:
        return (
            "-" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
        )

    rows = []
    for r in frame.head(limit).itertuples():
        where = place.get(r.meter_id, {})
        rows.append(
            {
                "severity": r.severity,
                "type": r.type,
                "class": event_class(r.type),
                "meter": text(r.meter_id),
                "transformer": text(where.get("transformer_id", r.asset_id)),
                "feeder": text(where.get("feeder_id")),
                "start": _iso(int(r.start))[:16],
                "end": _iso(int(r.end))[:16],
                "score": round(float(r.score), 2),
                "tail_probability": "rule" if np.isnan(r.tail) else f"{r.tail:.2g}",
            }
        )
    return rows
