"""Anomaly detection on cleaned readings: detectors, the event model, evaluation (no Dagster).

``detect(cleaned, meter_hourly, meters, transformers, window_start=..., window_end=...,
config=DetectorConfig(), tz=...)`` returns ANOMALY_EVENTS rows overlapping the window. One
module per detector family:

- `runs.py`: `stuck_meter` (same non-zero delivered value >= 6 h) and `zero_run` (delivered
  zeros >= 6 h; both channels on a solar meter);
- `reverse.py`: `reverse_flow` (negative delivered on a meter without solar >= 1 h);
- `drop.py`: `theft_drop` (sustained drop >= 30 % of the meter's daily energy, >= 7 days,
  robust change point);
- `overload.py`: `transformer_overload` (hourly loading > 1.0 of kVA x power factor);
- `events.py`: `event_id`, severity, evidence JSON, `merge_events`;
- `evaluate.py`: `load_labels`, `evaluate` (precision / recall against labels);
- `frame.py`: what detectors read (kwh_raw, never estimates; VEE flags as bit masks).

Calling it from an asset, one local-day partition at a time:

1. pass cleaned readings and meter_hourly of the window plus a lookback (14 local days is
   enough for every detector; a longer one lets `theft_drop` follow a drop longer);
2. `window_start` / `window_end` are the partition's local-day bounds as UTC instants, `tz`
   the utility's time zone;
3. read stored events of the same types that end at or after window_start - lookback - 1 h
   and `merge_events_detail(stored, detected)`: write back `.events` (replace by event_id)
   and delete `.superseded` ids. Re-running a partition then changes nothing, and an event
   crossing midnight stays one event.
"""

from .config import (
    ANOMALY_TYPES,
    ASSET_TYPES,
    DETECTOR_VERSION,
    REVERSE_FLOW,
    SEVERITIES,
    STUCK_METER,
    THEFT_DROP,
    TRANSFORMER_OVERLOAD,
    ZERO_RUN,
    DetectorConfig,
)
from .detect import detect
from .evaluate import LABELS, evaluate, load_labels
from .events import MergeResult, event_id, merge_events, merge_events_detail
from .overload import hourly_loading, transformer_loading

__all__ = [
    "ANOMALY_TYPES",
    "ASSET_TYPES",
    "DETECTOR_VERSION",
    "LABELS",
    "REVERSE_FLOW",
    "SEVERITIES",
    "STUCK_METER",
    "THEFT_DROP",
    "TRANSFORMER_OVERLOAD",
    "ZERO_RUN",
    "DetectorConfig",
    "MergeResult",
    "detect",
    "evaluate",
    "event_id",
    "hourly_loading",
    "load_labels",
    "merge_events",
    "merge_events_detail",
    "transformer_loading",
]
