"""VEE rules tested directly on small numpy arrays (one test group per rule module)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from smartgrid_assets.vee import VeeConfig, estimation, flags, timegrid
from smartgrid_assets.vee.arrays import (
    SortedGroups,
    group_median,
    rows_of,
    run_flags,
    run_minutes,
    same_as_previous,
)
from smartgrid_assets.vee.rules import (
    alignment,
    duplicate,
    future,
    install_period,
    interval_length,
    limits,
    negative,
    runs,
    spike,
    unit_error,
)

MIN = 60_000_000  # microseconds per minute
T0 = 1_781_049_600_000_000  # 2026-06-10T00:00Z in microseconds
CFG = VeeConfig()


def quarter_hours(n: int, start: int = T0) -> np.ndarray:
    return start + np.arange(n, dtype=np.int64) * 15 * MIN


# --- alignment ------------------------------------------------------------------------------


def test_alignment_detects_and_snaps_off_grid_timestamps():
    ts = np.array([T0, T0 + 7 * MIN, T0 + 30 * MIN, T0 + 45 * MIN + 1, T0 + 20 * MIN])
    interval = np.array([15, 15, 30, 15, 60])
    assert alignment.misaligned(ts, interval).tolist() == [False, True, False, True, True]
    assert (alignment.snap(ts, interval) - T0).tolist() == [0, 0, 30 * MIN, 45 * MIN, 0]
    snapped, mis = alignment.snap_and_flag(ts, interval)
    assert snapped.tolist() == alignment.snap(ts, interval).tolist()
    assert mis.tolist() == alignment.misaligned(ts, interval).tolist()
    snapped, mis = alignment.snap_and_flag(ts[:2], interval[:2])  # one interval: fast path
    assert (snapped - T0).tolist() == [0, 0] and mis.tolist() == [False, True]


# --- duplicate ------------------------------------------------------------------------------


def resolve(slot, ts_raw, mis, landed, rank, row=None, kwh=None):
    n = len(slot)
    return duplicate.resolve_slots(
        np.array(slot),
        np.array(ts_raw),
        np.array(mis, dtype=bool),
        np.array(landed),
        np.array(rank),
        np.zeros(n, dtype=np.int64) if row is None else np.array(row),
        np.zeros(n) if kwh is None else np.array(kwh, dtype=float),
    )


def test_duplicate_latest_landed_then_greatest_source_file():
    res = resolve([1, 1, 1, 2], [0, 0, 0, 5], [0, 0, 0, 0], [10, 30, 20, 1], [0, 0, 5, 0])
    assert res.keep.tolist() == [False, True, False, True]
    assert res.duplicate.tolist() == [False, True, False, False]
    res = resolve([1, 1], [0, 0], [0, 0], [10, 10], [3, 7])
    assert res.keep.tolist() == [False, True]


def test_aligned_reading_beats_a_later_misaligned_one():
    # slot 1: aligned (ts 0, landed 1) vs snapped from ts 3 (landed 9)
    res = resolve([1, 1], [0, 3], [0, 1], [1, 9], [0, 0])
    assert res.keep.tolist() == [True, False]
    assert res.alignment.tolist() == [True, False]
    assert res.duplicate.tolist() == [False, False]


def test_resolution_is_deterministic_on_identical_deliveries():
    a = resolve([1, 1], [0, 0], [0, 0], [5, 5], [1, 1], kwh=[0.2, 0.3])
    b = resolve([1, 1], [0, 0], [0, 0], [5, 5], [1, 1], kwh=[0.3, 0.2])
    assert a.keep.tolist() == [False, True] and b.keep.tolist() == [True, False]


def test_conflicting_rows():
    assert duplicate.conflicting(np.array([1, 2, 2, 3, 4, 4, 4])).tolist() == [1, 2, 4, 5, 6]
    assert duplicate.conflicting(np.array([1, 2, 3])).tolist() == []


# --- interval length ------------------------------------------------------------------------


def test_dominant_interval_and_wrong_length():
    meter = np.array([0, 0, 0, 1, 1, 1, 1, 3])
    interval = np.array([15, 15, 30, 60, 30, 30, 60, 5])
    dom = interval_length.dominant_interval(meter, interval, 4, default=15)
    assert dom.tolist() == [15, 30, 15, 5]  # meter 1 ties 30/60 -> 30; meter 2 no rows
    assert interval_length.wrong_length(interval, dom[meter]).tolist() == [
        False, False, True, True, False, False, True, False
    ]  # fmt: skip


# --- future, install period, negative, limits -----------------------------------------------


def test_future():
    assert future.future(np.array([T0 - 1, T0, T0 + 1]), T0).tolist() == [False, True, True]


def test_install_period():
    ts = np.array([T0 - 1, T0, T0 + 10, T0 + 20])
    removed = np.array([install_period.NEVER] * 3 + [T0 + 20])
    assert install_period.outside_install(ts, np.full(4, T0), removed).tolist() == [
        True, False, False, True
    ]  # fmt: skip


def test_negative():
    kwh = np.array([-0.1, -0.1, -0.1, 0.2, 0.0])
    solar = np.array([False, True, True, False, False])
    received = np.array([False, False, True, False, False])
    assert negative.negative(kwh, solar, received).tolist() == [True, False, True, False, False]


def test_limits():
    kw = limits.average_kw(np.array([7.5, 7.6, 15.0, -4.0]), np.array([15, 15, 30, 15]))
    assert kw.tolist() == pytest.approx([30.0, 30.4, 30.0, -16.0])
    low, high = limits.class_limits(np.array(["residential", "commercial", "x"], dtype=object), CFG)
    assert low.tolist() == [-15, -150, -1500] and high.tolist() == [30, 600, 6000]
    assert limits.limit_high(kw, 30.0).tolist() == [False, True, False, False]
    solar = np.array([True, True, True, True])
    assert limits.limit_low(kw, -15.0, solar).tolist() == [False, False, False, True]
    assert not limits.limit_low(kw, -15.0, ~solar).any()


# --- unit error -----------------------------------------------------------------------------


def unit_case(values: np.ndarray, days: np.ndarray, high: float = 30.0) -> np.ndarray:
    n = len(values)
    gid = np.zeros(n, dtype=np.int64)
    return unit_error.wh_as_kwh(values, np.full(n, 15), np.full(n, high), gid, 1, days, CFG)


def test_unit_error_single_reading():
    values = 0.2 + 0.05 * np.sin(np.arange(192) / 7)
    values[100] = values[100] * 1000
    mask = unit_case(values, np.repeat([0, 1], 96))
    assert np.flatnonzero(mask).tolist() == [100]
    fixed = unit_error.correct(values, mask)
    assert fixed[100] == pytest.approx(values[100] / 1000)


def test_unit_error_whole_day_including_low_values():
    values = 0.2 + 0.15 * np.sin(np.arange(192) / 7)
    values[96:] *= 1000  # the second day in Wh, its lows below 200x the median
    mask = unit_case(values, np.repeat([0, 1], 96))
    assert mask[96:].all() and not mask[:96].any()


def test_unit_error_leaves_genuine_overloads_alone():
    values = 0.2 + 0.05 * np.sin(np.arange(96) / 7)
    values[40] = 40.0  # 160 kW, but 40 Wh is far below this meter's normal range
    assert not unit_case(values, np.zeros(96, dtype=np.int64)).any()


def test_unit_error_whole_input_in_wh_uses_the_class_limit():
    values = (0.2 + 0.05 * np.sin(np.arange(96) / 7)) * 1000
    assert unit_case(values, np.zeros(96, dtype=np.int64)).all()


# --- spike ----------------------------------------------------------------------------------


def spike_case(values: np.ndarray) -> np.ndarray:
    gid = np.zeros(len(values), dtype=np.int64)
    return spike.spike(values, gid, 1, same_as_previous(gid), CFG)


def test_spike_needs_z_neighbours_and_minimum():
    values = 0.3 + 0.02 * np.sin(np.arange(96))
    values[50] = 2.0
    assert np.flatnonzero(spike_case(values)).tolist() == [50]
    values[51] = 1.0  # a high neighbour: 2.0 < 4 x 1.0
    assert not spike_case(values).any()


def test_spike_at_series_edges_uses_the_one_neighbour():
    values = 0.3 + 0.02 * np.sin(np.arange(96))
    values[0] = 2.0
    values[95] = 2.0
    assert np.flatnonzero(spike_case(values)).tolist() == [0, 95]


def test_robust_z_with_zero_mad():
    values = np.full(20, 0.2)
    values[3] = 1.0
    z = spike.robust_z(values, np.zeros(20, dtype=np.int64), 1)
    assert np.isinf(z[3]) and z[3] > 0 and (z[np.arange(20) != 3] == 0).all()


def test_robust_z_ignores_zeros():
    # a solar export channel: zero at night, a varying production by day
    day = 0.3 + 0.2 * np.sin(np.linspace(0, np.pi, 40))
    values = np.concatenate([np.zeros(56), day])
    values[60] = 0.12  # a cloud edge: low, not a spike
    z = spike.robust_z(values, np.zeros(len(values), dtype=np.int64), 1)
    assert z[60] < 0 and (z[:56] <= 0).all()


def test_spike_on_an_export_channel_cloud_edge_is_not_flagged():
    # night zeros dominate an export channel: statistics over all readings would give
    # median 0 and MAD 0, making the cloud edge (0.15 between 0.03s) an infinite-z "spike"
    day = 0.35 + 0.1 * np.sin(np.arange(30))
    values = np.concatenate([np.zeros(60), [0.03, 0.15, 0.03], day, np.zeros(40)])
    assert not spike_case(values).any()
    values[80] = 4.0  # a real spike on the same channel
    assert np.flatnonzero(spike_case(values)).tolist() == [80]


# --- runs -----------------------------------------------------------------------------------


def runs_case(values, ts=None, eligible=None):
    n = len(values)
    gid = np.zeros(n, dtype=np.int64)
    ts = quarter_hours(n) if ts is None else ts
    interval = np.full(n, 15)
    link = runs.contiguous(gid, ts, interval)
    eligible = np.ones(n, dtype=bool) if eligible is None else eligible
    return (
        runs.flat_line(np.asarray(values, float), link, interval, eligible, CFG),
        runs.zero_run(np.asarray(values, float), link, interval, eligible, CFG),
    )


def test_flat_line_threshold_and_tolerance():
    values = np.concatenate([[0.1], np.full(16, 0.5), [0.2]])
    values[5] += 1e-12  # within tolerance
    flat, zero = runs_case(values)
    assert flat.tolist() == [False] + [True] * 16 + [False] and not zero.any()
    flat, _ = runs_case(values[:16])  # 15 identical values: 225 minutes
    assert not flat.any()


def test_zero_run_threshold_and_gap_breaks_the_run():
    values = np.zeros(16)
    _, zero = runs_case(values)
    assert zero.all()
    ts = quarter_hours(16)
    ts[8:] += 15 * MIN  # a missing slot in the middle: two runs of 120 minutes
    _, zero = runs_case(values, ts=ts)
    assert not zero.any()
    _, zero = runs_case(values, eligible=np.zeros(16, dtype=bool))
    assert not zero.any()


def test_run_minutes():
    member = np.array([1, 1, 0, 1, 1, 1], dtype=bool)
    link = np.array([0, 1, 1, 1, 1, 0], dtype=bool)
    minutes = run_minutes(member, link, np.full(6, 15))
    assert minutes.tolist() == [30, 30, 0, 30, 30, 15]


@pytest.mark.parametrize("seed", range(5))
def test_run_flags_is_run_minutes_over_a_threshold(seed):
    rng = np.random.default_rng(seed)
    n = 300
    member = rng.random(n) < 0.7
    link = rng.random(n) < 0.8
    minutes = rng.choice([5, 15, 60, 240], n)
    for threshold in (15, 60, 240, 241.5):
        expected = member & (run_minutes(member, link, minutes) >= threshold)
        assert run_flags(member, link, minutes, threshold).tolist() == expected.tolist()


def test_rows_of_selected_groups():
    starts, ends = np.array([0, 2, 2, 5]), np.array([2, 2, 5, 9])
    assert rows_of(np.array([0, 2, 3]), starts, ends).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8]
    assert rows_of(np.array([1, 3]), starts, ends).tolist() == [5, 6, 7, 8]
    assert rows_of(np.array([], dtype=np.int64), starts, ends).tolist() == []


# --- group statistics -----------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [[5, 5, 5], [1, 4, 7, 2], [1, 50], [3, 0, 4]])
def test_group_median_matches_numpy(sizes):
    rng = np.random.default_rng(len(sizes))
    gid = np.repeat(np.arange(len(sizes)), sizes)
    values = rng.normal(size=len(gid))
    valid = rng.random(len(gid)) > 0.3
    got = group_median(values, gid, len(sizes), valid=valid)
    for g in range(len(sizes)):
        sel = values[(gid == g) & valid]
        assert got[g] == pytest.approx(np.median(sel)) if len(sel) else np.isnan(got[g])
    values[rng.random(len(gid)) < 0.3] = 0.0
    groups = SortedGroups(values, gid, len(sizes))
    med = groups.median()
    mad = groups.mad(med)
    nz_med = groups.median(exclude_zero=True)
    nz_mad = groups.mad(nz_med, exclude_zero=True)
    for g in range(len(sizes)):
        sel = values[gid == g]
        if len(sel) == 0:
            assert np.isnan(med[g]) and np.isnan(mad[g]) and np.isnan(nz_med[g])
            continue
        assert med[g] == pytest.approx(np.median(sel))
        assert mad[g] == pytest.approx(np.median(np.abs(sel - np.median(sel))))
        nz = sel[sel != 0]
        if len(nz):
            assert nz_med[g] == pytest.approx(np.median(nz))
            assert nz_mad[g] == pytest.approx(np.median(np.abs(nz - np.median(nz))))
        else:
            assert np.isnan(nz_med[g]) and np.isnan(nz_mad[g])


@pytest.mark.parametrize("sizes", [[5, 5, 5], [1, 4, 7, 2], [1, 50], [3, 0, 4]])
def test_sorted_groups_extremes_and_counts(sizes):
    rng = np.random.default_rng(len(sizes))
    gid = np.repeat(np.arange(len(sizes)), sizes)
    values = rng.normal(size=len(gid))
    values[rng.random(len(gid)) < 0.2] = np.nan
    groups = SortedGroups(values, gid, len(sizes))
    low, high = groups.extremes()
    limit = rng.normal(size=len(sizes))
    at_most = groups.count_at_most(limit)
    for g in range(len(sizes)):
        sel = values[gid == g]
        sel = sel[~np.isnan(sel)]
        if len(sel):
            assert (low[g], high[g]) == (sel.min(), sel.max())
        else:
            assert np.isnan(low[g]) and np.isnan(high[g])
        assert at_most[g] == np.count_nonzero(sel <= limit[g])


# --- time grid and estimation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "hours"),
    [(dt.date(2026, 3, 29), 23), (dt.date(2026, 10, 25), 25), (dt.date(2026, 6, 10), 24)],
)
def test_local_day_bounds(day, hours):
    start = timegrid.to_us(
        dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone(dt.timedelta(hours=1))), "x"
    )
    days, bounds = timegrid.local_days(start, start + 1, "Europe/Berlin")
    assert days == [day]
    assert (bounds[1] - bounds[0]) // (60 * MIN) == hours


def test_local_minute_of_day():
    ts = np.array([T0, T0 + 90 * MIN])  # 2026-06-10 00:00Z and 01:30Z = 02:00 and 03:30 CEST
    assert timegrid.local_minute_of_day(ts, "Europe/Berlin").tolist() == [120, 210]


def test_to_us_rejects_naive_datetimes():
    with pytest.raises(ValueError, match="timezone-aware"):
        timegrid.to_us(dt.datetime(2026, 1, 1), "as_of")


def test_expected_grid_respects_install_period_and_as_of():
    bounds = np.array([T0, T0 + 1440 * MIN])
    grid = estimation.expected_grid(
        bounds,
        installed_us=np.array([T0 + 6 * 60 * MIN, T0]),
        removed_us=np.array([install_period.NEVER, T0 + 12 * 60 * MIN]),
        interval_minutes=np.array([15, 60]),
        expect_channel=np.array([True, False, True, True]),
        as_of_us=T0 + 20 * 60 * MIN + 1,
    )
    # meter 0: 06:00..20:00 in quarter hours; its received channel not expected;
    # meter 1: hourly until removal at 12:00
    assert grid.expected[:, 0].tolist() == [56, 0, 12, 12]


@pytest.mark.parametrize("seed", range(4))
def test_missing_slots_from_gap_rows_only(seed):
    # rows that start where the previous row of their gkey ended cannot end a gap
    rng = np.random.default_rng(seed)
    bounds = np.array([T0, T0 + 1440 * MIN])
    grid = estimation.expected_grid(
        bounds,
        installed_us=np.full(3, T0 - 1440 * MIN),
        removed_us=np.full(3, install_period.NEVER),
        interval_minutes=np.array([15, 30, 60]),
        expect_channel=np.array([True, False, True, True, True, True]),
        as_of_us=T0 + 2000 * MIN,
    )
    gkeys, ts, interval = [], [], []
    for gkey in (0, 2, 3):  # gkey 4 and 5 have no rows
        step = int(grid.step_us[gkey])
        slots = np.sort(rng.choice(200, 120, replace=False)) - 60
        gkeys += [gkey] * len(slots)
        ts += (T0 + slots * step).tolist()
        interval += [step // MIN] * len(slots)
    gkeys, ts, interval = np.array(gkeys), np.array(ts), np.array(interval)
    interval_us = interval * MIN
    full = estimation.missing_slots(grid, gkeys, ts, interval_us, bounds)
    link = runs.contiguous(gkeys, ts, interval)
    last = np.flatnonzero(np.append(gkeys[1:] != gkeys[:-1], True))
    sparse = estimation.missing_slots(
        grid,
        gkeys,
        ts,
        estimation.MinutesAsUs(interval),
        bounds,
        gap_rows=np.flatnonzero(~link),
        last_rows=last,
    )
    for name in ("gkey", "ts", "day", "prev", "next"):
        assert getattr(sparse, name).tolist() == getattr(full, name).tolist()
    assert len(full.ts) and set(full.gkey.tolist()) >= {4, 5}


def test_linear_estimate_function():
    row_ts = quarter_hours(4)[[0, 3]]
    slots = estimation.MissingSlots(
        gkey=np.array([0, 0]),
        ts=quarter_hours(4)[1:3],
        day=np.array([0, 0]),
        prev=np.array([0, 0]),
        next=np.array([1, 1]),
    )
    est = estimation.estimate(
        slots,
        row_gkey=np.array([0, 0]),
        row_ts=row_ts,
        row_interval_us=np.full(2, 15 * MIN),
        row_kwh=np.array([0.3, 0.6]),
        row_suspect=np.array([False, False]),
        gap_start_floor_us=np.full(2, T0),
        gap_end_ceiling_us=np.full(2, T0 + 1440 * MIN),
        input_day_bounds=np.array([T0, T0 + 1440 * MIN]),
        tz="UTC",
        config=CFG,
    )
    assert est.kwh.tolist() == pytest.approx([0.4, 0.5])
    assert est.method.tolist() == [estimation.LINEAR] * 2
    est = estimation.estimate(
        slots,
        row_gkey=np.array([0, 0]),
        row_ts=row_ts,
        row_interval_us=np.full(2, 15 * MIN),
        row_kwh=np.array([0.3, 0.6]),
        row_suspect=np.array([False, True]),
        gap_start_floor_us=np.full(2, T0),
        gap_end_ceiling_us=np.full(2, T0 + 1440 * MIN),
        input_day_bounds=np.array([T0, T0 + 1440 * MIN]),
        tz="UTC",
        config=CFG,
    )
    assert est.method.tolist() == [estimation.NONE] * 2


# --- flags ----------------------------------------------------------------------------------


def test_quality_precedence_and_rule_lists():
    bit = flags.BIT
    rule = np.array(
        [
            0,
            bit["duplicate"],
            bit["unit.wh_as_kwh"],
            bit["unit.wh_as_kwh"] | bit["limit.high"],
            bit["estimate.linear"],
            bit["alignment"],
        ]
    )
    edited = np.array([False, False, True, True, False, False])
    assert flags.quality(rule, edited).tolist() == [
        flags.Q_A, flags.Q_A, flags.Q_X, flags.Q_S, flags.Q_E, flags.Q_A
    ]  # fmt: skip
    assert flags.rules_list_array(rule).to_pylist() == [
        [],
        ["duplicate"],
        ["unit.wh_as_kwh"],
        ["limit.high", "unit.wh_as_kwh"],
        ["estimate.linear"],
        ["alignment"],
    ]
    assert flags.count_by_rule(rule)["unit.wh_as_kwh"] == 2


def test_config_validation():
    with pytest.raises(ValueError):
        VeeConfig(spike_z=0)
    with pytest.raises(ValueError):
        VeeConfig(class_limits_kw={"residential": (-1.0, 1.0)})
    with pytest.raises(ValueError):
        VeeConfig(class_limits_kw={"unknown": (5.0, 1.0)})
    assert VeeConfig().limits_for("nope") == (-1500.0, 6000.0)
