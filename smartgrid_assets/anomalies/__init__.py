"""Anomaly detection on cleaned readings: detectors, the event model, evaluation (no Dagster).

``detect(cleaned, meter_hourly, meters, transformers, window_start=..., window_end=...,
config=DetectorConfig(), tz=...)`` returns ANOMALY_EVENTS rows overlapping the window. One
module per detector family:

- `runs.py`: `stuck_meter` (same non-zero delivered value >= 6 h) and `zero_run` (delivered
  zeros >= 6 h; both channels on a solar meter);
- `reverse.py`: `reverse_flow` (negative delivered >= 1 h on a meter without generation:
  neither registered solar nor regular export, `generation.py`);
- `drop.py`: `theft_drop` (sustained drop >= 30 % of the meter's daily energy, >= 7 days,
  robust change point standing out of the meter's noise; info when within its usual swings);
- `overload.py`: `transformer_overload` (hourly loading > 1.0 of kVA x power factor);
- `spike.py`: `load_spike` (a 30 min - 12 h burst far above the meter's usual level at that
  local hour and day type, beyond its calibrated threshold);
- `data_problems.py`: `interval_spike` (a single absurd interval VEE flagged: class
  `data_problem`, `event_class`);
- `profile.py`: `profile_deviation` (the day's shape off the meter's own expected shape,
  beyond its calibrated threshold, >= 3 consecutive days);
- `imbalance.py`: `feeder_imbalance` (a feeder-head meter against the sum of its meters);
- `outlier.py`: `profile_outlier` (IsolationForest score on daily profiles, info only, for
  meter-days no rule explains);
- `calibration.py`: thresholds learned from the fleet's own days to the alarm budget
  (`DetectorConfig.anomaly_budget`), as a CALIBRATION table; `calibrate` learns one;
- `inject.py`: known anomalies written into a copy of real readings (shared with the
  synthetic utility); `own_data.py`: `evaluate_readings`, the detectors scored on them;
- `events.py`: `event_id`, severity, evidence JSON, `merge_events`;
- `evaluate.py`: `load_labels`, `evaluate` (precision / recall / F1 and false alarms per
  1,000 meter-days against labels);
- `fleet.py`: `detect_period` (windows + lookback + merging, as the pipeline), `evaluate_synth`
  (a synthetic utility end to end, scored);
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

from . import calibration
from .calibration import CALIBRATED_TYPES, CALIBRATION, CALIBRATION_VERSION
from .config import (
    ANOMALY_TYPES,
    ASSET_TYPES,
    DATA_PROBLEM_TYPES,
    DETECTOR_VERSION,
    FEEDER_IMBALANCE,
    INTERVAL_SPIKE,
    LOAD_SPIKE,
    PROFILE_DEVIATION,
    PROFILE_OUTLIER,
    REVERSE_FLOW,
    RULE_TYPES,
    SCORE_TYPES,
    SEVERITIES,
    STUCK_METER,
    THEFT_DROP,
    TRANSFORMER_OVERLOAD,
    ZERO_RUN,
    DetectorConfig,
    event_class,
)
from .detect import Detection, calibrate, detect, detect_detail
from .evaluate import (
    ALARM_SEVERITIES,
    EVALUATION,
    LABELS,
    evaluate,
    evaluation_table,
    load_labels,
)
from .events import MergeResult, event_id, merge_events, merge_events_detail, report_rows
from .fleet import Detected, detect_period, detect_readings, evaluate_synth, meter_days
from .inject import INJECTED_TYPES, inject_anomalies
from .overload import hourly_loading, transformer_loading
from .own_data import evaluate_readings

__all__ = [
    "ALARM_SEVERITIES",
    "ANOMALY_TYPES",
    "ASSET_TYPES",
    "CALIBRATED_TYPES",
    "CALIBRATION",
    "CALIBRATION_VERSION",
    "DATA_PROBLEM_TYPES",
    "DETECTOR_VERSION",
    "EVALUATION",
    "FEEDER_IMBALANCE",
    "INJECTED_TYPES",
    "INTERVAL_SPIKE",
    "LABELS",
    "LOAD_SPIKE",
    "PROFILE_DEVIATION",
    "PROFILE_OUTLIER",
    "REVERSE_FLOW",
    "RULE_TYPES",
    "SCORE_TYPES",
    "SEVERITIES",
    "STUCK_METER",
    "THEFT_DROP",
    "TRANSFORMER_OVERLOAD",
    "ZERO_RUN",
    "Detected",
    "Detection",
    "DetectorConfig",
    "MergeResult",
    "calibrate",
    "calibration",
    "detect",
    "detect_detail",
    "detect_period",
    "detect_readings",
    "evaluate",
    "evaluate_readings",
    "evaluate_synth",
    "evaluation_table",
    "event_class",
    "event_id",
    "hourly_loading",
    "inject_anomalies",
    "load_labels",
    "merge_events",
    "merge_events_detail",
    "meter_days",
    "report_rows",
    "transformer_loading",
]
