"""Known anomalies written into a copy of a utility's own readings: the ground truth that
`own_data.evaluate_readings` scores the detectors against.

The value changes are the ones the synthetic utility (`synth.inject`) writes, so a detector
is judged on the same anomalies in both. What is injected, per meter and type (seeded):

| type | change | length |
|---|---|---|
| `stuck_meter` | every reading = the (non-zero) first one | 1-3 days |
| `zero_run` | every reading 0 | 1-4 days |
| `reverse_flow` | -max(\\|reading\\| x U(0.3, 1), 0.01 kWh) | 6-24 h |
| `interval_spike` | one interval = U(15, 30) x the meter's median + 5 kWh | 1 interval |
| `theft_drop` | every reading x U(0.25, 0.70): a 30-75 % drop | 10-30 days (a) |

(a) the first on each meter runs to the end of its data, still going on when it ends.

One of each type per 120 meter-days (`DAYS_EACH`), spread over the meters. An injection
goes only where the meter has every reading of the stretch (plus a day's margin)
and uses: not in a vacancy (the day before holds usage), not within a day of another
injection, and not over an event already found in the untouched readings (`avoid`), so each
label is one fresh anomaly. A meter with too little data for a type gets none of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from smartgrid_assets.contract import UTC_TS

from .config import INTERVAL_SPIKE, REVERSE_FLOW, STUCK_METER, THEFT_DROP, ZERO_RUN
from .evaluate import LABELS
from .frame import US_PER_MINUTE, ts_us

#: Types `inject_anomalies` can write, in the order they are placed.
INJECTED_TYPES: tuple[str, ...] = (THEFT_DROP, STUCK_METER, ZERO_RUN, REVERSE_FLOW, INTERVAL_SPIKE)
#: Types a meter with generation does not get.
GENERATION_EXEMPT = (REVERSE_FLOW, ZERO_RUN)
#: (shortest, longest) hours of each type's stretch.
HOURS = {
    STUCK_METER: (24.0, 72.0),
    ZERO_RUN: (24.0, 96.0),
    REVERSE_FLOW: (6.0, 24.0),
    THEFT_DROP: (240.0, 720.0),
}
#: Days of history a theft_drop needs before it (its baseline), and the share of the
#: baseline and the drop that readings must cover.
DROP_BASELINE_DAYS = 21
DROP_MIN_COVERAGE = 0.9
SPIKE_FACTOR = (15.0, 30.0)
SPIKE_ADD_KWH = 5.0
DROP_KEEP = (0.25, 0.70)
REVERSE_SHARE = (0.3, 1.0)
MIN_REVERSE_KWH = 0.01
MARGIN_HOURS = 24.0
#: One injection of each type per this many meter-days (and at most one per this many days of
#: a meter's own data), and at least this many
#: days between two of the same type on a meter (distinct anomalies, not one long one).
DAYS_EACH = 120
SPACING_DAYS = 14
ATTEMPTS = 200


def stuck(values: np.ndarray, value: float) -> None:
    """A register that stopped moving: every reading of the stretch is `value`."""
    values[:] = value


def zeros(values: np.ndarray) -> None:
    """No energy recorded at all."""
    values[:] = 0.0


def reverse(values: np.ndarray, share: np.ndarray, floor_kwh: float) -> None:
    """Backfeed or a reversed CT: the size of the meter's own load, but negative."""
    values[:] = -np.maximum(np.abs(values) * share, floor_kwh)


def scale(values: np.ndarray, factor: float) -> None:
    """A theft-like drop (factor < 1) or a unit error (factor 1000)."""
    values *= factor


def spike_kwh(median_kwh: float, factor: float, add_kwh: float) -> float:
    """An absurd single interval: far above the meter's median and at least `add_kwh`."""
    return factor * median_kwh + add_kwh


@dataclass
class _Meter:
    """One meter's delivered readings in time order, edited in place."""

    meter_id: str
    rows: np.ndarray  # positions in the readings table
    ts: np.ndarray  # us
    minutes: np.ndarray
    kwh: np.ndarray
    busy: np.ndarray  # bool per reading: reserved
    placed: list[tuple[str, int, int]] = field(default_factory=list)  # type, start, end us

    def contiguous(self, a: int, b: int) -> bool:
        """Readings a..b-1 follow each other without a gap."""
        if a < 0 or b > len(self.ts) or b <= a:
            return False
        step = self.ts[a + 1 : b] - (self.ts[a : b - 1] + self.minutes[a : b - 1] * US_PER_MINUTE)
        return bool((step == 0).all())

    def days(self) -> int:
        """Days of data: the readings' minutes over a day's."""
        return int(self.minutes.sum() // 1440)

    def hours(self, hours: float, at: int) -> int:
        """Readings that make `hours` from reading `at` (its own interval length)."""
        return max(1, round(hours * 60 / max(int(self.minutes[at]), 1)))


def _avoid_mask(meter: _Meter, avoid: pd.DataFrame, margin_us: int) -> np.ndarray:
    busy = np.zeros(len(meter.ts), dtype=bool)
    if avoid.empty:
        return busy
    for start, end in avoid.loc[avoid["meter_id"] == meter.meter_id, ["start", "end"]].itertuples(
        index=False
    ):
        busy |= (meter.ts < end + margin_us) & (meter.ts >= start - margin_us)
    return busy


def _meters(readings: pa.Table, avoid: pd.DataFrame) -> tuple[list[_Meter], np.ndarray]:
    kwh = np.asarray(readings["kwh"].to_numpy(zero_copy_only=False), dtype=np.float64).copy()
    ids = np.asarray(pc.cast(readings["meter_id"], pa.string()).to_numpy(zero_copy_only=False))
    ts = ts_us(readings["ts"])
    minutes = np.asarray(readings["interval_minutes"].to_numpy(), dtype=np.int64)
    delivered = np.asarray(
        pc.equal(pc.cast(readings["channel"], pa.string()), "delivered").to_numpy(
            zero_copy_only=False
        ),
        dtype=bool,
    )
    rows = np.flatnonzero(delivered & np.isfinite(kwh))
    rows = rows[np.lexsort((ts[rows], ids[rows]))]
    margin = int(MARGIN_HOURS * 60) * US_PER_MINUTE
    meters = []
    for meter_id in np.unique(ids[rows]):
        mine = rows[ids[rows] == meter_id]
        m = _Meter(str(meter_id), mine, ts[mine], minutes[mine], kwh[mine].copy(), np.array([]))
        m.busy = _avoid_mask(m, avoid, margin)
        meters.append(m)
    return meters, kwh


def _in_use(meter: _Meter, a: int, b: int) -> bool:
    """The day before the stretch and the stretch's original readings hold usage (no
    vacancy), and every reading is distinct from zero somewhere."""
    day = meter.hours(24.0, a)
    before = meter.kwh[max(0, a - day) : a]
    return bool(len(before) == day and (before > 0).mean() >= 0.5 and (meter.kwh[a:b] > 0).any())


def _free(meter: _Meter, a: int, b: int) -> bool:
    margin = meter.hours(MARGIN_HOURS, a)
    lo, hi = max(0, a - margin), min(len(meter.ts), b + margin)
    return meter.contiguous(lo, hi) and not meter.busy[lo:hi].any() and _in_use(meter, a, b)


def _place(meter: _Meter, type_: str, ordinal: int, rng: np.random.Generator) -> dict | None:
    n_rows = len(meter.ts)
    if n_rows < 2:
        return None
    for _ in range(ATTEMPTS):
        if type_ == INTERVAL_SPIKE:
            a = int(rng.integers(0, n_rows))
            b = a + 1
        else:
            lo, hi = HOURS[type_]
            length = meter.hours(float(rng.uniform(lo, hi)), 0)
            if type_ == THEFT_DROP and ordinal == 0:
                b = n_rows
                a = b - length
            else:
                a = int(rng.integers(0, max(1, n_rows - length)))
                b = a + length
        if a < 0 or b > n_rows or _near_same(meter, type_, a, b):
            continue
        if type_ == THEFT_DROP:
            if not _drop_fits(meter, a, b):
                continue
        elif not _free(meter, a, b):
            continue
        return _write(meter, type_, a, b, rng)
    return None


def _near_same(meter: _Meter, type_: str, a: int, b: int) -> bool:
    spacing = SPACING_DAYS * 1440 * US_PER_MINUTE
    start, end = int(meter.ts[a]), int(meter.ts[b - 1])
    return any(t == type_ and s - spacing < end and start < e + spacing for t, s, e in meter.placed)


def _drop_fits(meter: _Meter, a: int, b: int) -> bool:
    """A drop needs most of its stretch and of a baseline before it in data, with usage, and
    nothing else there; it may run to the end of the data."""
    baseline = meter.hours(24.0 * DROP_BASELINE_DAYS, a)
    lo, hi = a - baseline, min(len(meter.ts), b + meter.hours(MARGIN_HOURS, a))
    if lo < 0 or meter.busy[lo:hi].any():
        return False
    return _coverage(meter, lo, b) >= DROP_MIN_COVERAGE and _in_use(meter, a, b)


def _coverage(meter: _Meter, a: int, b: int) -> float:
    """Share of the time from reading a to the end of reading b-1 that readings cover."""
    span = meter.ts[b - 1] + meter.minutes[b - 1] * US_PER_MINUTE - meter.ts[a]
    return float(meter.minutes[a:b].sum() * US_PER_MINUTE / span) if span > 0 else 0.0


def _write(meter: _Meter, type_: str, a: int, b: int, rng: np.random.Generator) -> dict:
    values = meter.kwh[a:b]
    if type_ == STUCK_METER:
        value = max(round(float(values[0]), 3), 0.001)
        stuck(values, value)
        detail = f"value={value:g}"
    elif type_ == ZERO_RUN:
        zeros(values)
        detail = ""
    elif type_ == REVERSE_FLOW:
        reverse(values, rng.uniform(*REVERSE_SHARE, len(values)), MIN_REVERSE_KWH)
        detail = f"kwh={-float(values.sum()):.3f}"
    elif type_ == INTERVAL_SPIKE:
        positive = meter.kwh[meter.kwh > 0]
        median = float(np.median(positive)) if len(positive) else 0.0
        factor = round(float(rng.uniform(*SPIKE_FACTOR)), 1)
        values[:] = round(spike_kwh(median, factor, SPIKE_ADD_KWH), 3)
        detail = f"kwh={float(values[0]):g};factor={factor:g};median_kwh={median:g}"
    else:
        keep = round(float(rng.uniform(*DROP_KEEP)), 2)
        scale(values, keep)
        detail = f"drop={1 - keep:.2f};to_data_end={str(b == len(meter.ts)).lower()}"
    meter.busy[a:b] = True
    end = int(meter.ts[b - 1] + meter.minutes[b - 1] * US_PER_MINUTE)
    meter.placed.append((type_, int(meter.ts[a]), end))
    hours = (end - int(meter.ts[a])) / (60 * US_PER_MINUTE)
    return {
        "type": type_,
        "meter_id": meter.meter_id,
        "start": int(meter.ts[a]),
        "end": end,
        "detail": ";".join(p for p in (detail, f"hours={hours:g}") if p),
    }


def inject_anomalies(
    readings: pa.Table,
    *,
    seed: int = 0,
    types: tuple[str, ...] | list[str] = INJECTED_TYPES,
    days_each: int = DAYS_EACH,
    avoid: pd.DataFrame | None = None,
    generation: set[str] | frozenset[str] = frozenset(),
) -> tuple[pa.Table, pa.Table]:
    """(a copy of `readings` with anomalies written in, their LABELS).

    `readings` has meter_id, ts, interval_minutes, channel and kwh (other columns are kept);
    one injection of each type per `days_each` meter-days of data (at least one), on meters
    in a seeded order, each getting at most one per `days_each` days of its own data (at
    least one), on its delivered channel, where they fit; so anomalies stay about as rare as
    real ones however long the history; `avoid` (meter_id, start, end in UTC us)
    marks stretches where nothing is injected. Meters with `generation` get no reverse flow
    (their export is legitimate) and no zero run (their delivered channel reads zero while
    they export).
    """
    unknown = sorted(set(types) - set(INJECTED_TYPES))
    if unknown:
        raise ValueError(f"cannot inject {unknown}: expected some of {list(INJECTED_TYPES)}")
    if days_each < 1:
        raise ValueError(f"days_each must be >= 1, got {days_each}")
    rng = np.random.default_rng(seed)
    avoid = avoid if avoid is not None else pd.DataFrame(columns=["meter_id", "start", "end"])
    meters, kwh = _meters(readings, avoid)
    placed = []
    quota = max(1, sum(m.days() for m in meters) // days_each)
    for type_ in [t for t in INJECTED_TYPES if t in set(types)]:
        eligible = [
            m for m in meters if not (type_ in GENERATION_EXEMPT and m.meter_id in generation)
        ]
        caps = [max(1, m.days() // days_each) for m in eligible]
        done = 0
        for ordinal in range(max(caps, default=0)):
            for i in rng.permutation(len(eligible)):
                if done >= quota or ordinal >= caps[i]:
                    continue
                label = _place(eligible[i], type_, ordinal, rng)
                if label is not None:
                    placed.append(label)
                    done += 1
    for meter in meters:
        kwh[meter.rows] = meter.kwh
    index = readings.column_names.index("kwh")
    injected = readings.set_column(index, readings.schema.field("kwh"), pa.array(kwh))
    return injected, _labels(placed)


def _labels(placed: list[dict]) -> pa.Table:
    placed = sorted(placed, key=lambda p: (p["meter_id"], p["start"], p["type"]))
    return pa.table(
        {
            "label_id": pa.array([f"injected-{i + 1:04d}" for i in range(len(placed))]),
            "class": pa.array(["anomaly"] * len(placed), pa.string()),
            "type": pa.array([p["type"] for p in placed], pa.string()),
            "meter_id": pa.array([p["meter_id"] for p in placed], pa.string()),
            "asset_id": pa.nulls(len(placed), pa.string()),
            "start": pc.cast(pa.array([p["start"] for p in placed], pa.int64()), UTC_TS),
            "end": pc.cast(pa.array([p["end"] for p in placed], pa.int64()), UTC_TS),
            "detail": pa.array([p["detail"] for p in placed], pa.string()),
        },
        schema=LABELS,
    )
