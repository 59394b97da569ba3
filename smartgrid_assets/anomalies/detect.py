"""`detect`: every detector over one window, as one ANOMALY_EVENTS table."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from . import calibration, drop, profile, reverse, spike
from .config import (
    DETECTOR_VERSION,
    INTERVAL_SPIKE,
    LOAD_SPIKE,
    PROFILE_DEVIATION,
    THEFT_DROP,
    DetectorConfig,
)
from .data_problems import interval_spike
from .drop import local_day_bounds
from .events import empty_events, from_candidates, merge_events
from .frame import Observed, observed, to_us
from .imbalance import feeder_imbalance
from .outlier import profile_outlier
from .overload import transformer_overload
from .runs import stuck_meter, zero_run


def not_covered(found: pd.DataFrame, others: pd.DataFrame, on: str = "meter_id") -> pd.DataFrame:
    """Rows of `found` that no row of `others` with the same `on` value overlaps in time."""
    if found.empty or others.empty:
        return found
    pairs = found.reset_index().merge(others[[on, "start", "end"]], on=on)
    hit = pairs[(pairs["start_x"] < pairs["end_y"]) & (pairs["start_y"] < pairs["end_x"])]
    return found.drop(index=hit["index"].unique())


def not_overloading(
    spikes: pd.DataFrame, overloads: pd.DataFrame, meters: pa.Table
) -> pd.DataFrame:
    """load_spike rows whose meter's transformer is not overloaded meanwhile: a burst that
    overloads its transformer is reported once, as the transformer_overload."""
    if spikes.empty or overloads.empty or "transformer_id" not in meters.column_names:
        return spikes
    tx = dict(
        zip(meters["meter_id"].to_pylist(), meters["transformer_id"].to_pylist(), strict=True)
    )
    with_tx = spikes.assign(transformer_id=spikes["meter_id"].map(tx))
    busy = overloads.rename(columns={"asset_id": "transformer_id"})
    return not_covered(with_tx, busy, on="transformer_id").drop(columns="transformer_id")


def calibrate_observed(
    obs: Observed, config: DetectorConfig, tz: str, start_us: int, end_us: int
) -> pa.Table:
    """CALIBRATION of every calibrated detector (and the meters found to have generation)
    learned from `obs` over the local days of [start_us, end_us)."""
    if not len(obs):
        return calibration.CALIBRATION.empty_table()
    _, bounds = local_day_bounds(start_us, end_us, tz)
    load, interval, stats = spike.calibrate(obs, config, tz, bounds)
    parts = [
        calibration.rows_of(
            obs.meter_ids,
            LOAD_SPIKE,
            "log(kW / usual kW at that local hour and day type), day's highest",
            load,
            config,
            reference=stats.levels,
        ),
        calibration.rows_of(
            obs.meter_ids,
            INTERVAL_SPIKE,
            "log(kW / typical daily peak kW), day's highest",
            interval,
            config,
            reference=stats.typical[:, None],
        ),
        calibration.rows_of(
            obs.meter_ids,
            PROFILE_DEVIATION,
            "day distance from the expected shape",
            profile.calibrate(obs, config, tz, bounds),
            config,
        ),
        calibration.rows_of(
            obs.meter_ids,
            THEFT_DROP,
            "day-to-day noise of log daily energy (body); z threshold",
            drop.calibrate(obs, config, bounds),
            config,
        ),
        calibration.generation_rows(
            obs.meter_ids,
            *reverse.inferred_generation(obs, config),
            (int(bounds[0]), int(bounds[-1])),
            config,
        ),
    ]
    return pa.concat_tables(parts)


def calibrate(
    cleaned: pa.Table,
    meters: pa.Table,
    *,
    start: dt.datetime,
    end: dt.datetime,
    config: DetectorConfig = DetectorConfig(),  # noqa: B008 - frozen, never mutated
    tz: str = "UTC",
) -> pa.Table:
    """CALIBRATION learned from cleaned readings (CLEANED_READINGS) of [start, end)."""
    ws, we = to_us(start, "start"), to_us(end, "end")
    obs = observed(cleaned, meters, window_end=we, exclude_rules=config.exclude_rules)
    return calibrate_observed(obs, config, tz, ws, we)


@dataclass(frozen=True)
class Detection:
    """A window's events (ANOMALY_EVENTS) and the CALIBRATION its detectors used."""

    events: pa.Table
    calibration: pa.Table


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
    calibration_table: pa.Table | None = None,
) -> pa.Table:
    """Anomaly events (ANOMALY_EVENTS) overlapping [window_start, window_end): the events of
    `detect_detail`."""
    return detect_detail(
        cleaned,
        meter_hourly,
        meters,
        transformers,
        window_start=window_start,
        window_end=window_end,
        config=config,
        tz=tz,
        calibration_table=calibration_table,
    ).events


def detect_detail(
    cleaned: pa.Table,
    meter_hourly: pa.Table,
    meters: pa.Table,
    transformers: pa.Table,
    *,
    window_start: dt.datetime,
    window_end: dt.datetime,
    config: DetectorConfig = DetectorConfig(),  # noqa: B008 - frozen, never mutated
    tz: str = "UTC",
    calibration_table: pa.Table | None = None,
) -> Detection:
    """Anomaly events (ANOMALY_EVENTS) overlapping [window_start, window_end), and the
    calibration they were judged with.

    `calibration_table` (CALIBRATION, from `calibrate` over a longer history) gives the
    calibrated detectors their thresholds; without it they are learned from the input itself,
    lookback and window (mostly class-pooled: a lookback is short), and returned.

    `cleaned` (CLEANED_READINGS) and `meter_hourly` (METER_HOURLY) hold the window plus a
    lookback (e.g. 14 local days before window_start; theft_drop needs at least 3 baseline days
    and 7 days of drop); rows at or after `window_end` are ignored, so the result for a window
    never depends on later data. `meters` is the registry (meter_id, has_solar,
    transformer_id, installed_at, removed_at), `transformers` has transformer_id and
    kva_rating. `tz` is the utility's time zone: theft_drop, load_spike, profile_deviation and
    profile_outlier work on its local days. Feeder-head meters (a feeder_id, no
    transformer_id) in `meters` enable feeder_imbalance.

    profile_outlier (IsolationForest, info) keeps only meter-days no rule-based event of the
    meter overlaps: it is there for what the rules miss. A load_spike while the meter's
    transformer is overloaded is left to the transformer_overload event.

    Events of one type and subject that touch (within 1 h) are returned as one event, with
    ids from `event_id`; fold them into stored events with `merge_events`.
    """
    ws, we = to_us(window_start, "window_start"), to_us(window_end, "window_end")
    if we <= ws:
        raise ValueError("window_end must be after window_start")
    obs = observed(cleaned, meters, window_end=we, exclude_rules=config.exclude_rules)
    if not (obs.ts >= ws).any() and not meter_hourly.num_rows:
        # nothing read in the window: no event can overlap it
        if calibration_table is None:
            calibration_table = calibration.CALIBRATION.empty_table()
        return Detection(empty_events(), calibration_table)
    if calibration_table is None:
        first = int(obs.ts.min()) if len(obs) else ws
        calibration_table = calibrate_observed(obs, config, tz, min(first, ws), we)
    ids = obs.meter_ids

    def learned(detector: str) -> calibration.Learned:
        return calibration.lookup(calibration_table, detector, ids)

    load, interval = learned(LOAD_SPIKE), learned(INTERVAL_SPIKE)
    stats = spike.spike_stats(
        obs, config, tz, levels=load.reference, typical=interval.reference[:, 0]
    )
    shapes = profile.daily_shapes(obs, config, we, tz) if len(obs) else None
    overloads = transformer_overload(meter_hourly, meters, transformers, obs, config, ws, we)
    parts = [
        stuck_meter(obs, config, ws, we),
        zero_run(obs, config, ws, we),
        reverse.reverse_flow(
            obs,
            config,
            ws,
            we,
            np.isin(ids, list(calibration.inferred_generation(calibration_table))),
        ),
        drop.theft_drop(obs, learned(THEFT_DROP), config, ws, we, tz),
        not_overloading(spike.load_spike(obs, stats, load, config, ws, we), overloads, meters),
        profile.profile_deviation(obs, learned(PROFILE_DEVIATION), config, ws, we, tz, shapes),
        overloads,
        feeder_imbalance(meter_hourly, meters, config, ws, we),
        interval_spike(obs, stats, interval, config, ws, we),
    ]
    parts = [p for p in parts if not p.empty]
    rules = pd.concat(parts, ignore_index=True) if parts else None
    outliers = profile_outlier(obs, config, ws, we, tz, shapes)
    if rules is not None:
        outliers = not_covered(outliers, rules)
    parts = [p for p in (rules, outliers) if p is not None and not p.empty]
    if not parts:
        return Detection(empty_events(), calibration_table)
    found = pd.concat(parts, ignore_index=True)
    events = merge_events(empty_events(), from_candidates(found, DETECTOR_VERSION))
    return Detection(events, calibration_table)
