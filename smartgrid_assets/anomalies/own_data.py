"""How the detectors do on a utility's own meters: inject known anomalies into a copy of its
readings and score what is found.

1. detect on the untouched readings: its events per 1,000 meter-days are the alarm rate a
   utility would live with (nothing there is known to be wrong or right);
2. inject a seeded set of each type (`inject.inject_anomalies`) away from every event already
   found, and detect on the injected copy;
3. per type: recall = injected anomalies found by an event of their type (a single absurd
   interval by `interval_spike` or `load_spike`: reported either way) on the same meter and
   overlapping them; precision = events new in the injected copy (no untouched event of the
   same type and meter overlaps them) that overlap an injected anomaly on their meter, of any
   type (an injected stuck register that also bends the day's shape points at the right place);
   F1 their harmonic mean; and the same micro-averaged over every type.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from .calibration import inferred_generation
from .config import INTERVAL_SPIKE, LOAD_SPIKE, DetectorConfig
from .evaluate import ALARM_SEVERITIES, f1
from .events import to_frame
from .fleet import detect_readings
from .frame import ts_us
from .inject import DAYS_EACH, INJECTED_TYPES, inject_anomalies

#: Event types that find an injected type.
FOUND_BY = {INTERVAL_SPIKE: (INTERVAL_SPIKE, LOAD_SPIKE)}
_COUNTS = ("injected", "found", "new_events", "new_events_real")


def _overlaps(a: pd.DataFrame, b: pd.DataFrame, on: list[str]) -> np.ndarray:
    """Per row of `a`: some row of `b` with the same `on` values overlaps it in time."""
    if a.empty or b.empty:
        return np.zeros(len(a), dtype=bool)
    pairs = a.reset_index(drop=True).reset_index().merge(b[[*on, "start", "end"]], on=on)
    hit = pairs[(pairs["start_x"] < pairs["end_y"]) & (pairs["start_y"] < pairs["end_x"])]
    return np.isin(np.arange(len(a)), hit["index"].to_numpy())


def _events(events: pa.Table) -> pd.DataFrame:
    frame = to_frame(events)
    return frame[frame["meter_id"].notna()].reset_index(drop=True)


def _labels(labels: pa.Table) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "type": labels["type"].to_pylist(),
            "meter_id": labels["meter_id"].to_pylist(),
            "start": ts_us(labels["start"]),
            "end": ts_us(labels["end"]),
        }
    )


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _stats(injected: int, found: int, new: int, real: int) -> dict[str, object]:
    precision, recall = _ratio(real, new), _ratio(found, injected)
    return {
        "injected": injected,
        "found": found,
        "recall": recall,
        "new_events": new,
        "new_events_real": real,
        "precision": precision,
        "f1": f1(precision, recall),
    }


def score(
    untouched: pd.DataFrame, injected: pd.DataFrame, labels: pd.DataFrame, types: Sequence[str]
) -> dict[str, object]:
    """Per type and overall: injected, found, recall, new events (and how many of them
    overlap an injection), precision, F1."""
    new = injected[~_overlaps(injected, untouched, ["type", "meter_id"])].reset_index(drop=True)
    new["real"] = _overlaps(new, labels, ["meter_id"])
    rows = {}
    for type_ in [*types, *sorted(set(new["type"]) - set(types))]:
        mine = labels[labels["type"] == type_]
        finders = injected[injected["type"].isin(FOUND_BY.get(type_, (type_,)))]
        events = new[new["type"] == type_]
        rows[type_] = _stats(
            len(mine),
            int(_overlaps(mine, finders, ["meter_id"]).sum()),
            len(events),
            int(events["real"].sum()),
        )
    return {"by_type": rows, "overall": _overall(rows)}


def _overall(rows: dict[str, dict[str, object]]) -> dict[str, object]:
    total = {k: sum(int(r[k]) for r in rows.values()) for k in _COUNTS}
    return _stats(*(total[k] for k in _COUNTS))


def pooled(runs: list[dict[str, object]]) -> dict[str, object]:
    """Several seeds' figures as one: counts summed per type, ratios recomputed."""
    types: dict[str, dict[str, int]] = {}
    for run in runs:
        for name, r in run["by_type"].items():  # type: ignore[union-attr]
            acc = types.setdefault(name, dict.fromkeys(_COUNTS, 0))
            for k in _COUNTS:
                acc[k] += int(r[k])
    rows = {name: _stats(*(acc[k] for k in _COUNTS)) for name, acc in types.items()}
    return {"by_type": rows, "overall": _overall(rows)}


def evaluate_readings(
    readings: pa.Table,
    *,
    tz: str,
    solar_meters: set[str] | frozenset[str] = frozenset(),
    seeds: Sequence[int] = (0,),
    types: Sequence[str] = INJECTED_TYPES,
    days_each: int = DAYS_EACH,
    config: DetectorConfig = DetectorConfig(),  # noqa: B008 - frozen, never mutated
) -> dict[str, object]:
    """Score the detectors on `readings` (meter_id, ts, interval_minutes, channel, kwh): the
    untouched readings once, then per seed a copy with one injection of each of `types` per
    `days_each` days of each meter's data. Returns ``{"untouched", "meters", "meter_days",
    "runs": [{"seed", "by_type", "overall", "labels", "events"}], "pooled"}``."""
    clean = detect_readings(readings, tz=tz, solar_meters=solar_meters, config=config)
    generation = set(solar_meters) | inferred_generation(clean.calibration)
    untouched = _events(clean.events)
    avoid = untouched[["meter_id", "start", "end"]]
    runs = []
    for seed in seeds:
        copy, labels = inject_anomalies(
            readings,
            seed=seed,
            types=types,
            days_each=days_each,
            avoid=avoid,
            generation=generation,
        )
        found = detect_readings(copy, tz=tz, solar_meters=solar_meters, config=config)
        result = score(untouched, _events(found.events), _labels(labels), list(types))
        runs.append({"seed": seed, **result, "labels": labels, "events": found.events})
    alarms = int(untouched["severity"].isin(ALARM_SEVERITIES).sum())
    meter_days = clean.meter_days
    per_1000 = 1000.0 / meter_days if meter_days else None
    return {
        "types": list(types),
        "days_each": days_each,
        "meters": len(set(readings["meter_id"].to_pylist())),
        "meter_days": meter_days,
        "untouched": {
            "events": len(untouched),
            "alarms": alarms,
            "events_per_1000_meter_days": len(untouched) * per_1000 if per_1000 else None,
            "alarms_per_1000_meter_days": alarms * per_1000 if per_1000 else None,
            "by_type": untouched["type"].value_counts().sort_index().to_dict(),
            "alarms_by_type": (
                untouched[untouched["severity"].isin(ALARM_SEVERITIES)]["type"]
                .value_counts()
                .sort_index()
                .to_dict()
            ),
        },
        "calibration": clean.calibration,
        "runs": runs,
        "pooled": pooled(runs),
    }
