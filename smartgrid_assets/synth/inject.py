"""Ground-truth data problems (VEE's job) and anomalies (detection's job), each one labelled.

The value changes of the anomalies are `anomalies.inject`'s, the same ones `smartgrid
evaluate` writes into a utility's own readings. Injections never share a meter-interval (with
a margin between them), start after the first two local days so every affected meter has
history (a load_spike after a week: the calibrated detectors' least history), and only touch
meters in service for the whole period, so a label's effect is never hidden by an install or
removal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from smartgrid_assets.anomalies.inject import reverse, scale, stuck
from smartgrid_assets.synth.layout import readings_key, region_format
from smartgrid_assets.synth.timegrid import TimeGrid
from smartgrid_assets.synth.topology import Topology

DATA_PROBLEM = "data_problem"
ANOMALY = "anomaly"
LABEL_TYPES = {
    "gap": DATA_PROBLEM,
    "duplicate": DATA_PROBLEM,
    "spike": DATA_PROBLEM,
    "unit_wh_as_kwh": DATA_PROBLEM,
    "misaligned": DATA_PROBLEM,
    "late_file": DATA_PROBLEM,
    "stuck_meter": ANOMALY,
    "zero_run": ANOMALY,
    "theft_drop": ANOMALY,
    "reverse_flow": ANOMALY,
    "transformer_overload": ANOMALY,
    "load_spike": ANOMALY,
    "profile_deviation": ANOMALY,
}
# Injections per meter (overload: per residential transformer).
RATES = {
    "gap": 0.04,
    "duplicate": 0.01,
    "spike": 0.02,
    "unit_wh_as_kwh": 0.005,
    "misaligned": 0.01,
    "stuck_meter": 0.01,
    "zero_run": 0.015,
    "theft_drop": 0.01,
    "reverse_flow": 0.01,
    "transformer_overload": 0.02,
    "load_spike": 0.01,
    "profile_deviation": 0.01,
}
MIN_DAYS = {"duplicate": 4, "theft_drop": 10, "load_spike": 8, "profile_deviation": 11}
# The calibrated detectors judge a meter once it has a week of history
# (`DetectorConfig.calibration_min_days`): a load_spike starts after it.
CALIBRATED_AFTER_DAYS = 7
# A profile deviation starts once the meter has this many ordinary days to compare with.
PROFILE_HISTORY_DAYS = 7
# Headroom an injected load leaves on the meter's transformer (share of its rating), so it
# never reads as a transformer overload.
TX_HEADROOM = 0.9
HISTORY_DAYS = 2
MARGIN_HOURS = 2.0
ATTEMPTS = 80
UNIT_FACTOR = 1000.0


@dataclass(frozen=True)
class Label:
    cls: str
    type: str
    meter: int | None
    asset_id: str
    start_us: int
    end_us: int
    detail: str


@dataclass(frozen=True)
class Duplicate:
    """Readings of [a, b) repeated at the end of the next local day's file of the region."""

    meter: int
    a: int
    b: int
    file_day: int
    factors: np.ndarray | None  # (channels, b - a) multiplicative revision, None if identical


@dataclass
class Canvas:
    """The clean data being edited in place, plus what has been reserved so far."""

    grid: TimeGrid
    topo: Topology
    delivered: np.ndarray  # (M, T) kWh
    received: np.ndarray  # (S, T) kWh, rows by solar index
    present: np.ndarray  # (M, T) a reading exists
    shift_min: np.ndarray = field(init=False)  # (M, T) minutes a ts is moved off the grid
    busy: np.ndarray = field(init=False)
    solar_row: np.ndarray = field(init=False)
    labels: list[Label] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    late: set[tuple[int, int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        shape = self.delivered.shape
        self.shift_min = np.zeros(shape, dtype=np.int8)
        self.busy = np.zeros(shape, dtype=bool)
        self.solar_row = np.full(shape[0], -1, dtype=np.int64)
        self.solar_row[self.topo.solar_index] = np.arange(len(self.topo.solar_index))

    @property
    def earliest(self) -> int:
        return int(self.grid.day_bounds[HISTORY_DAYS])

    def reserve(self, meters: np.ndarray | list[int], a: int, b: int) -> bool:
        margin = self.grid.hours(MARGIN_HOURS)
        rows = np.asarray(meters)
        if a < self.earliest or b > self.grid.n or a >= b:
            return False
        if self.busy[rows, max(0, a - margin) : b + margin].any():
            return False
        self.busy[rows, a:b] = True
        return True

    def label(
        self, type_: str, meter: int | None, a: int, b: int, detail: str, asset: str = ""
    ) -> None:
        g = self.grid
        start = g.t0_us + a * g.step_us
        self.labels.append(
            Label(
                LABEL_TYPES[type_], type_, meter, asset, start, start + (b - a) * g.step_us, detail
            )
        )

    def scale_all_channels(self, m: int, a: int, b: int, factor: float) -> None:
        scale(self.delivered[m, a:b], factor)
        if self.solar_row[m] >= 0:
            scale(self.received[self.solar_row[m], a:b], factor)


# (canvas, rng, meter or transformer or region index, ordinal of this injection) -> placed?
Placer = Callable[[Canvas, np.random.Generator, int, int], bool]


def _pick(rng: np.random.Generator, pool: np.ndarray) -> int:
    return int(pool[rng.integers(len(pool))])


def _random_start(rng: np.random.Generator, c: Canvas, length: int, after_day: int = 0) -> int:
    earliest = max(c.earliest, int(c.grid.day_bounds[min(after_day, c.grid.days - 1)]))
    return int(rng.integers(earliest, max(earliest + 1, c.grid.n - length + 1)))


def _random_day(rng: np.random.Generator, c: Canvas, last_offset: int = 1) -> int:
    return int(rng.integers(HISTORY_DAYS, c.grid.days - last_offset + 1))


def place_gap(c: Canvas, rng: np.random.Generator, m: int, i: int) -> bool:
    minutes = rng.uniform(180, 360) if i % 3 == 1 else rng.choice([15, 30, 45, 60])
    n = c.grid.hours(minutes / 60.0)
    a = _random_start(rng, c, n)
    if not c.reserve([m], a, a + n):
        return False
    c.present[m, a : a + n] = False
    c.label("gap", m, a, a + n, f"minutes={n * c.grid.interval_minutes}")
    return True


def place_duplicate(c: Canvas, rng: np.random.Generator, m: int, i: int) -> bool:
    region = int(c.topo.meter_region[m])
    day = _random_day(rng, c, last_offset=2)
    if (region, day) in c.late or (region, day + 1) in c.late:
        return False
    sl = c.grid.day_slice(day)
    n = min(c.grid.hours(rng.uniform(1, 6)), sl.stop - sl.start)
    a = int(rng.integers(sl.start, sl.stop - n + 1))
    if not c.reserve([m], a, a + n):
        return False
    channels = 2 if c.solar_row[m] >= 0 else 1
    revised = i % 2 == 1
    factors = 1.0 + rng.normal(0.0, 0.02, (channels, n)) if revised else None
    c.duplicates.append(Duplicate(m, a, a + n, day + 1, factors))
    key = readings_key(c.topo.regions[region], c.grid.dates[day + 1], region_format(region))
    values = "revised" if revised else "identical"
    c.label("duplicate", m, a, a + n, f"repeated_in={key};values={values}")
    return True


def place_spike(c: Canvas, rng: np.random.Generator, m: int, i: int) -> bool:
    t = _random_start(rng, c, 1)
    if c.delivered[m, t] <= max(np.median(c.delivered[m]), 1e-3) or not c.reserve([m], t, t + 1):
        return False
    factor = round(float(rng.uniform(8.0, 20.0)), 1)
    scale(c.delivered[m, t : t + 1], factor)
    c.label("spike", m, t, t + 1, f"factor={factor};channel=delivered")
    return True


def place_unit(c: Canvas, rng: np.random.Generator, m: int, i: int) -> bool:
    sl = c.grid.day_slice(_random_day(rng, c))
    if not c.reserve([m], sl.start, sl.stop):
        return False
    c.scale_all_channels(m, sl.start, sl.stop, UNIT_FACTOR)
    c.label("unit_wh_as_kwh", m, sl.start, sl.stop, f"factor={UNIT_FACTOR:g}")
    return True


def place_misaligned(c: Canvas, rng: np.random.Generator, m: int, i: int) -> bool:
    n = int(rng.integers(1, 5))
    a = _random_start(rng, c, n)
    if not c.reserve([m], a, a + n):
        return False
    shift = int(rng.integers(1, max(2, min(8, c.grid.interval_minutes // 2))))
    c.shift_min[m, a : a + n] = shift
    c.label("misaligned", m, a, a + n, f"shift_minutes={shift}")
    return True


def place_stuck(c: Canvas, rng: np.random.Generator, m: int, i: int) -> bool:
    n = c.grid.hours(rng.uniform(6, 48))
    a = _random_start(rng, c, n)
    if not c.reserve([m], a, a + n):
        return False
    value = max(round(float(c.delivered[m, a]), 4), 0.001)
    stuck(c.delivered[m, a : a + n], value)
    c.label("stuck_meter", m, a, a + n, f"value={value:.4f};hours={n / c.grid.per_hour:g}")
    return True


def place_zero_run(c: Canvas, rng: np.random.Generator, m: int, i: int) -> bool:
    n = c.grid.hours(rng.uniform(6, 72))
    a = _random_start(rng, c, n)
    if not c.reserve([m], a, a + n):
        return False
    c.scale_all_channels(m, a, a + n, 0.0)
    c.label("zero_run", m, a, a + n, f"hours={n / c.grid.per_hour:g}")
    return True


def place_theft(c: Canvas, rng: np.random.Generator, m: int, i: int) -> bool:
    week = c.grid.hours(7 * 24)
    a = _random_start(rng, c, week)
    to_end = rng.random() < 0.5
    b = c.grid.n if to_end else min(c.grid.n, a + week + int(rng.integers(0, week)))
    if b - a < week or not c.reserve([m], a, b):
        return False
    drop = round(float(rng.uniform(0.3, 0.6)), 2)
    scale(c.delivered[m, a:b], 1.0 - drop)
    c.label("theft_drop", m, a, b, f"drop={drop};to_period_end={str(b == c.grid.n).lower()}")
    return True


def place_reverse_flow(c: Canvas, rng: np.random.Generator, m: int, i: int) -> bool:
    a = c.grid.index_at_local(_random_day(rng, c), float(rng.uniform(9.0, 12.0)))
    n = c.grid.hours(rng.uniform(3, 6))
    if not c.reserve([m], a, a + n):
        return False
    reverse(c.delivered[m, a : a + n], rng.uniform(0.3, 1.0, n), 0.001)
    c.label("reverse_flow", m, a, a + n, f"hours={n / c.grid.per_hour:g};channel=delivered")
    return True


def _fits_transformer(c: Canvas, m: int, a: int, extra_kwh: np.ndarray) -> bool:
    """Whether adding `extra_kwh` to meter m from interval a keeps its transformer within
    TX_HEADROOM of its rating."""
    tx = int(c.topo.meter_tx[m])
    meters = np.flatnonzero(c.topo.meter_tx == tx)
    b = a + len(extra_kwh)
    solar = c.solar_row[meters][c.solar_row[meters] >= 0]
    net = c.delivered[meters, a:b].sum(axis=0) - c.received[solar, a:b].sum(axis=0)
    kw = (net + extra_kwh) / c.grid.interval_h
    return bool(kw.max() <= TX_HEADROOM * c.topo.tx_kva[tx])


def place_load_spike(c: Canvas, rng: np.random.Generator, m: int, i: int) -> bool:
    """A burst of 1-4 h at 3.5-6x the meter's typical daily peak (an unexpected heavy load)."""
    n = max(2, c.grid.hours(float(rng.uniform(1.0, 4.0))))
    a = _random_start(rng, c, n, CALIBRATED_AFTER_DAYS)
    day_starts = np.asarray(c.grid.day_bounds[:-1], dtype=np.int64)
    daily_peak_kw = np.maximum.reduceat(c.delivered[m], day_starts) / c.grid.interval_h
    typical = float(np.median(daily_peak_kw))
    kw = min(max(typical * float(rng.uniform(3.5, 6.0)), typical + 4.0), 25.0)
    kwh = kw * c.grid.interval_h * rng.uniform(0.95, 1.05, n)
    extra = kwh - c.delivered[m, a : a + n]
    if not _fits_transformer(c, m, a, extra) or not c.reserve([m], a, a + n):
        return False
    c.delivered[m, a : a + n] = kwh
    detail = f"peak_kw={kw:.2f};typical_daily_peak_kw={typical:.2f};hours={n / c.grid.per_hour:g}"
    c.label("load_spike", m, a, a + n, detail)
    return True


def place_profile_deviation(c: Canvas, rng: np.random.Generator, m: int, i: int) -> bool:
    """A new night-time load for 4-7 days (a heater, grow lights): 20-30 % more energy a day,
    all of it in 5-7 night hours, so the day's shape changes, not much its level."""
    n_days = int(rng.integers(4, 8))
    last_first = c.grid.days - n_days
    if last_first < PROFILE_HISTORY_DAYS:
        return False
    first = int(rng.integers(PROFILE_HISTORY_DAYS, last_first + 1))
    start_h, length_h = float(rng.integers(0, 3)), float(rng.integers(5, 8))
    mean_day_kwh = float(c.delivered[m].sum()) / c.grid.days
    kw = float(rng.uniform(0.2, 0.3)) * mean_day_kwh / length_h
    spans = [
        (c.grid.index_at_local(d, start_h), c.grid.index_at_local(d, start_h + length_h))
        for d in range(first, first + n_days)
    ]
    a, b = spans[0][0], spans[-1][1]
    extra = np.zeros(b - a)
    for lo, hi in spans:
        extra[lo - a : hi - a] = kw * c.grid.interval_h * rng.uniform(0.95, 1.05, hi - lo)
    if not _fits_transformer(c, m, a, extra) or not c.reserve([m], a, b):
        return False
    c.delivered[m, a:b] += extra
    detail = f"extra_kw={kw:.3f};local_hours={start_h:g}-{start_h + length_h:g};days={n_days}"
    c.label("profile_deviation", m, a, b, detail)
    return True


def place_overload(c: Canvas, rng: np.random.Generator, tx: int, i: int) -> bool:
    """Raise some meters of a transformer so its summed load runs 20-50% above nameplate."""
    meters = np.flatnonzero(c.topo.meter_tx == tx)
    candidates = meters[c.solar_row[meters] < 0]
    a = c.grid.index_at_local(_random_day(rng, c), float(rng.integers(17, 20)))
    n = c.grid.hours(float(rng.integers(2, 5)))
    if len(candidates) < 2 or not c.reserve(meters, a, a + n):
        return False
    k = max(2, (len(candidates) + 1) // 2)
    chosen = np.sort(rng.choice(candidates, k, replace=False))
    solar = c.solar_row[meters][c.solar_row[meters] >= 0]
    net = c.delivered[meters, a : a + n].sum(axis=0) - c.received[solar, a : a + n].sum(axis=0)
    part = c.delivered[chosen, a : a + n].sum(axis=0)
    kva = c.topo.tx_kva[tx]
    target = kva * rng.uniform(1.2, 1.5) * (1.0 + rng.normal(0.0, 0.03, n)) * c.grid.interval_h
    factor = np.maximum((target - (net - part)) / np.maximum(part, 1e-6), 1.0)
    c.delivered[chosen, a : a + n] *= factor[None, :]
    peak = float((net - part + part * factor).max() / c.grid.interval_h / kva)
    raised = "|".join(c.topo.meter_ids[j] for j in chosen)
    detail = f"kva_rating={kva:g};peak_loading={peak:.2f};meters={raised}"
    c.label("transformer_overload", None, a, a + n, detail, asset=c.topo.tx_ids[tx])
    return True


def place_late_file(c: Canvas, rng: np.random.Generator, region: int, i: int) -> bool:
    day = _random_day(rng, c)
    if (region, day) in c.late:
        return False
    c.late.add((region, day))
    sl = c.grid.day_slice(day)
    key = readings_key(c.topo.regions[region], c.grid.dates[day], region_format(region))
    c.label("late_file", None, sl.start, sl.stop, f"late_path=late/{key}", asset=key)
    return True


def _count(type_: str, base: int, grid: TimeGrid, meters: int) -> int:
    if grid.days < max(HISTORY_DAYS + 1, MIN_DAYS.get(type_, 0)):
        return 0
    n = round(RATES[type_] * base)
    return max(n, 1) if meters >= 50 else n


def _place_many(
    c: Canvas, rng: np.random.Generator, place: Placer, pool: np.ndarray, n: int
) -> None:
    if len(pool) == 0:
        return
    for i in range(n):
        for _ in range(ATTEMPTS):
            if place(c, rng, _pick(rng, pool), i):
                break


def inject(c: Canvas, rng: np.random.Generator) -> None:
    """Place every injection type, the hardest to fit (whole transformers, weeks) first, and
    the types added later after all others."""
    topo, grid = c.topo, c.grid
    m_total = topo.n_meters
    eligible = topo.full_period(grid)
    any_meter = np.flatnonzero(eligible)
    no_solar = np.flatnonzero(eligible & ~topo.has_solar)
    theft_pool = np.flatnonzero(eligible & ~topo.has_solar & (topo.meter_class != "industrial"))
    residential_pool = np.flatnonzero(
        eligible & ~topo.has_solar & (topo.meter_class == "residential")
    )
    res_tx = np.unique(topo.meter_tx[topo.meter_class == "residential"])
    full_tx = np.array(
        [
            tx
            for tx in res_tx
            if eligible[topo.meter_tx == tx].all() and (topo.meter_tx == tx).sum() >= 3
        ],
        dtype=np.int64,
    )
    if grid.days >= HISTORY_DAYS + 1:
        _place_many(c, rng, place_late_file, np.arange(len(topo.regions)), 1)
    plan: list[tuple[str, Placer, np.ndarray, int]] = [
        ("transformer_overload", place_overload, full_tx, len(res_tx)),
        ("theft_drop", place_theft, theft_pool, m_total),
        ("zero_run", place_zero_run, any_meter, m_total),
        ("stuck_meter", place_stuck, no_solar, m_total),
        ("reverse_flow", place_reverse_flow, no_solar, m_total),
        ("unit_wh_as_kwh", place_unit, any_meter, m_total),
        ("duplicate", place_duplicate, any_meter, m_total),
        ("gap", place_gap, any_meter, m_total),
        ("spike", place_spike, any_meter, m_total),
        ("misaligned", place_misaligned, any_meter, m_total),
        # last, so adding them left every earlier injection of a seed as it was
        ("profile_deviation", place_profile_deviation, residential_pool, m_total),
        ("load_spike", place_load_spike, residential_pool, m_total),
    ]
    for type_, place, pool, base in plan:
        _place_many(c, rng, place, pool, _count(type_, base, grid, m_total))
