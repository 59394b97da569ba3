"""Detector thresholds learned from the fleet's own readings, to an alarm budget.

A calibrated detector reduces each meter-day to one statistic (e.g. the day's highest
reading against the meter's usual level at that time of day and week). Its threshold is
where that statistic's upper tail leaves `rate` of the meter-days above it, `rate` being the
detector's share of `DetectorConfig.anomaly_budget` (events per 1,000 meter-days): on normal
data the detector then raises about its share of the budget, whatever the meter.

The tail is fitted, not counted: from the 90th and 99th percentiles an exponential tail is
extrapolated (P(S > x) = 0.1 exp(-(x - q90) / scale)), so a few real anomalies in the
calibration days hardly move the threshold, and a small rate needs no thousands of days. A
meter with `calibration_meter_days` days of the statistic is calibrated on its own; one with
at least `calibration_min_days` on its class's pooled days (each meter's statistic is already
relative to its own level), or on its own short history when the class has fewer days than
that; one with fewer is `insufficient_history` and only judged by rules that need no history.
Meters found to export regularly (`generation.py`) get a `reverse_flow` row: treated as having
generation, and said so.

The result is a table (CALIBRATION): per meter and detector, what was learned (the tail, the
threshold), from which days and at which budget; events cite it as their evidence.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from smartgrid_assets.contract import UTC_TS

from . import generation
from .config import (
    INTERVAL_SPIKE,
    LOAD_SPIKE,
    PROFILE_DEVIATION,
    REVERSE_FLOW,
    THEFT_DROP,
    DetectorConfig,
)

CALIBRATION_VERSION = "1.0.0"
#: Detectors whose threshold is learned; the budget is shared evenly between them.
CALIBRATED_TYPES: tuple[str, ...] = (LOAD_SPIKE, INTERVAL_SPIKE, PROFILE_DEVIATION, THEFT_DROP)
METER, CLASS, INSUFFICIENT = "meter", "class", "insufficient_history"
BODY_Q, EDGE_Q = 0.90, 0.99
MIN_SCALE = 1e-3

CALIBRATION = pa.schema(
    [
        pa.field("meter_id", pa.string(), nullable=False),
        pa.field("detector", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("statistic", pa.string(), nullable=False),
        pa.field("body", pa.float64()),
        pa.field("scale", pa.float64()),
        pa.field("threshold", pa.float64()),
        pa.field("reference", pa.list_(pa.float64())),
        pa.field("days", pa.int64(), nullable=False),
        pa.field("first_ts", UTC_TS, nullable=False),
        pa.field("last_ts", UTC_TS, nullable=False),
        pa.field("budget_per_1000_meter_days", pa.float64(), nullable=False),
        pa.field("version", pa.string(), nullable=False),
    ],
    metadata={
        "smartgrid.name": "detector_calibration",
        "smartgrid.version": "1.0",
        "smartgrid.doc": "What each calibrated detector learned per meter: the statistic's "
        "fitted tail (body = 90th percentile, scale), the threshold for the detector's share "
        "of the alarm budget, and the days [first_ts, last_ts) it was learned from; source is "
        "meter, class or insufficient_history (not judged). reverse_flow rows name the meters "
        "found to export regularly, treated as having generation.",
    },
)


def daily_rate(config: DetectorConfig) -> float:
    """Expected events per meter-day each calibrated detector may raise on normal data."""
    return config.anomaly_budget / len(CALIBRATED_TYPES) / 1000.0


def z_threshold(config: DetectorConfig) -> float:
    """One-sided normal quantile for the detector's share of the budget (a test statistic's
    threshold: theft_drop)."""
    return NormalDist().inv_cdf(1.0 - daily_rate(config))


@dataclass(frozen=True)
class Learned:
    """One detector's calibration per meter code (NaN threshold: not judged)."""

    threshold: np.ndarray
    body: np.ndarray
    scale: np.ndarray
    source: np.ndarray  # object: METER, CLASS or INSUFFICIENT
    days: np.ndarray  # int: days of the statistic it was learned from
    first_us: np.ndarray  # int: the period it was learned from, [first, last)
    last_us: np.ndarray
    #: (meters, k) what the statistic is measured against (e.g. usual kW per slot), if any
    reference: np.ndarray | None = None

    @property
    def judged(self) -> np.ndarray:
        return np.isfinite(self.threshold)

    def tail_probability(self, meter: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Calibrated P(statistic > x) for a meter's day: comparable across detectors."""
        body, scale = self.body[meter], self.scale[meter]
        with np.errstate(invalid="ignore", over="ignore"):
            return np.clip((1.0 - BODY_Q) * np.exp(-(x - body) / scale), 0.0, 1.0)


def _quantiles(values: np.ndarray) -> tuple[float, float]:
    body, edge = np.quantile(values, [BODY_Q, EDGE_Q])
    return float(body), float(edge)


def fit_tails(
    stat: np.ndarray,
    classes: np.ndarray,
    config: DetectorConfig,
    period: tuple[int, int],
    rate: float | None = None,
) -> Learned:
    """Per row of `stat` ([meter, day], NaN where no statistic): the tail and the threshold
    leaving `rate` (default: the detector's share of the budget) of the days above it; own
    days, else the class's pooled days, else (a small class) the meter's own short history.
    `period` is [first, last) in UTC us."""
    rate = daily_rate(config) if rate is None else rate
    m = stat.shape[0]
    n = (~np.isnan(stat)).sum(axis=1) if stat.size else np.zeros(m, dtype=np.int64)
    body, edge = np.full(m, np.nan), np.full(m, np.nan)
    own = n >= config.calibration_meter_days
    if own.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            q = np.nanquantile(stat[own], [BODY_Q, EDGE_Q], axis=1)
        body[own], edge[own] = q[0], q[1]
    source = np.where(own, METER, INSUFFICIENT).astype(object)
    days = np.where(own, n, 0).astype(np.int64)
    enough = n >= config.calibration_min_days
    for cls in np.unique(classes[enough & ~own]) if (enough & ~own).any() else []:
        members = enough & (classes == cls)
        pooled = stat[members][~np.isnan(stat[members])]
        rows = members & ~own
        if len(pooled) >= config.calibration_meter_days:
            body[rows], edge[rows] = _quantiles(pooled)
            source[rows] = CLASS
            days[rows] = len(pooled)
            continue
        # a small class: each meter on its own short history (a week at least)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            q = np.nanquantile(stat[rows], [BODY_Q, EDGE_Q], axis=1)
        body[rows], edge[rows] = q[0], q[1]
        source[rows] = METER
        days[rows] = n[rows]
    scale = np.maximum((edge - body) / math.log((1 - BODY_Q) / (1 - EDGE_Q)), MIN_SCALE)
    threshold = body + scale * math.log((1 - BODY_Q) / rate)
    threshold = np.where(source == INSUFFICIENT, np.nan, threshold)
    first, last = (np.full(m, v, dtype=np.int64) for v in period)
    return Learned(threshold, body, scale, source, days, first, last)


def rows_of(
    meter_ids: np.ndarray,
    detector: str,
    statistic: str,
    learned: Learned,
    config: DetectorConfig,
    reference: np.ndarray | None = None,
) -> pa.Table:
    """CALIBRATION rows of one detector; `reference` (meters, k; default the learned one) is
    stored with them."""
    n = len(meter_ids)
    reference = learned.reference if reference is None else reference
    if reference is None:
        refs = pa.nulls(n, pa.list_(pa.float64()))
    else:
        k = reference.shape[1]
        flat = np.asarray(reference, dtype=np.float64).ravel()
        refs = pa.ListArray.from_arrays(
            pa.array(np.arange(0, n * k + 1, k, dtype=np.int32)),
            pa.array(flat, pa.float64(), mask=~np.isfinite(flat)),
        )

    def floats(values: np.ndarray) -> pa.Array:
        return pa.array(
            np.asarray(values, dtype=np.float64), pa.float64(), mask=~np.isfinite(values)
        )

    return pa.table(
        {
            "meter_id": pa.array(meter_ids.astype(str), pa.string()),
            "detector": pa.array([detector] * n, pa.string()),
            "source": pa.array(learned.source.astype(str), pa.string()),
            "statistic": pa.array([statistic] * n, pa.string()),
            "body": floats(learned.body),
            "scale": floats(np.where(learned.judged, learned.scale, np.nan)),
            "threshold": floats(learned.threshold),
            "reference": refs,
            "days": pa.array(learned.days, pa.int64()),
            "first_ts": pc.cast(pa.array(learned.first_us, pa.int64()), UTC_TS),
            "last_ts": pc.cast(pa.array(learned.last_us, pa.int64()), UTC_TS),
            "budget_per_1000_meter_days": pa.array([config.anomaly_budget] * n, pa.float64()),
            "version": pa.array([CALIBRATION_VERSION] * n, pa.string()),
        },
        schema=CALIBRATION,
    )


def lookup(calibration: pa.Table, detector: str, meter_ids: np.ndarray) -> Learned:
    """The `detector` rows of a CALIBRATION table for `meter_ids` (a meter it lacks: not
    judged)."""
    mine = calibration.filter(pc.equal(calibration["detector"], detector))
    ids = np.asarray(mine["meter_id"].to_numpy(zero_copy_only=False)).astype(object)
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    pos = np.clip(np.searchsorted(ids, meter_ids), 0, max(len(ids) - 1, 0))
    found = (ids[pos] == meter_ids) if len(ids) else np.zeros(len(meter_ids), dtype=bool)

    def column(name: str, fill: object, kind: type) -> np.ndarray:
        if not len(ids):
            return np.full(len(meter_ids), fill, dtype=kind)
        values = mine[name]
        if values.type == UTC_TS:
            values = pc.cast(values, pa.int64())
        values = pc.fill_null(values, pa.scalar(fill, values.type))
        picked = np.asarray(values.to_numpy(zero_copy_only=False), dtype=kind)[order][pos]
        return np.where(found, picked, fill).astype(kind)

    return Learned(
        reference=_references(mine, order, pos, found),
        threshold=column("threshold", np.nan, np.float64),
        body=column("body", np.nan, np.float64),
        scale=column("scale", np.nan, np.float64),
        source=column("source", INSUFFICIENT, object),
        days=column("days", 0, np.int64),
        first_us=column("first_ts", 0, np.int64),
        last_us=column("last_ts", 0, np.int64),
    )


GENERATION_STATISTIC = (
    "days with a negative delivered reading (body) of the days with data (days): exports "
    "regularly, treated as having generation"
)


def generation_rows(
    meter_ids: np.ndarray,
    inferred: np.ndarray,
    negative_days: np.ndarray,
    days: np.ndarray,
    period: tuple[int, int],
    config: DetectorConfig,
) -> pa.Table:
    """CALIBRATION rows (detector reverse_flow) of the meters found to export regularly."""
    rows = np.flatnonzero(inferred)
    n = len(rows)
    learned = Learned(
        threshold=np.full(n, generation.MIN_SHARE),
        body=negative_days[rows].astype(np.float64),
        scale=np.full(n, np.nan),
        source=np.full(n, METER, dtype=object),
        days=days[rows].astype(np.int64),
        first_us=np.full(n, period[0], dtype=np.int64),
        last_us=np.full(n, period[1], dtype=np.int64),
    )
    return rows_of(meter_ids[rows], REVERSE_FLOW, GENERATION_STATISTIC, learned, config)


def inferred_generation(calibration: pa.Table) -> set[str]:
    """Meters a calibration found to export regularly (treated as having generation)."""
    mine = calibration.filter(pc.equal(calibration["detector"], REVERSE_FLOW))
    return set(mine["meter_id"].to_pylist())


def insufficient_history(calibration: pa.Table) -> set[str]:
    """Meters with too little history for any calibrated detector to judge them."""
    mine = calibration.filter(pc.equal(calibration["source"], INSUFFICIENT))
    return set(mine["meter_id"].to_pylist())


def _references(
    mine: pa.Table, order: np.ndarray, pos: np.ndarray, found: np.ndarray
) -> np.ndarray:
    """(meters, k) reference values, NaN for a meter without them; k = 1 when none."""
    column = mine["reference"].combine_chunks() if mine.num_rows else None
    if column is None or column.null_count == len(column):
        return np.full((len(pos), 1), np.nan)
    k = int(pc.max(pc.list_value_length(column)).as_py())
    values = pc.list_flatten(column.fill_null(pa.scalar([np.nan] * k, column.type)))
    table = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64).reshape(-1, k)
    return np.where(found[:, None], table[order][pos], np.nan)


def _day(us: int) -> str:
    return pd.Timestamp(int(us), unit="us", tz="UTC").date().isoformat()


def why(learned: Learned, meter: int, config: DetectorConfig) -> dict[str, object]:
    """Evidence: a meter's threshold and where it came from."""
    return {
        "threshold": round(float(learned.threshold[meter]), 4),
        "threshold_source": str(learned.source[meter]),
        "calibration_days": int(learned.days[meter]),
        "calibrated_on": f"{_day(learned.first_us[meter])}..{_day(learned.last_us[meter])}",
        "budget_per_1000_meter_days": config.anomaly_budget,
    }
