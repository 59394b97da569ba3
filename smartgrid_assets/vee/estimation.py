"""Gaps and estimation: the expected grid, missing slots, linear and profile estimates.

Per meter-channel ("group key" `gkey = meter_index * 2 + channel`, channel 0 = delivered,
1 = received) the expected grid is every interval of the window's local days that lies in the
meter's install period and has ended by `as_of`, on the meter's dominant interval. A slot is
present when a kept reading starts on it or covers it (a longer reading before it).

A missing slot is estimated only when the gap it belongs to (from the end of the previous
reading to the start of the next one, over the whole input, context included) is short and
not bordered by a suspect reading:

- gap <= `linear_max_minutes` with readings on both sides -> linear interpolation between the
  two neighbouring values (`estimate.linear`);
- otherwise gap <= `profile_max_minutes` -> mean of the meter-channel's non-suspect readings
  at the same local time of day on the other local days of the input (`estimate.profile`);
- otherwise, or without a profile value, the slot stays missing (no row).

Suspect readings are never replaced, and a gap next to one is not estimated: a long flat or
zero run may be a real outage that anomaly detection must see.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arrays import rows_of
from .config import VeeConfig
from .timegrid import US_PER_MINUTE, day_index, local_minute_of_day

NONE, LINEAR, PROFILE = 0, 1, 2
MINUTES_PER_DAY = 1440


@dataclass(frozen=True)
class ExpectedGrid:
    """Expected slots per gkey: every multiple of `step_us` in [lo, hi); counted per window day.

    The range is contiguous per gkey: window days are consecutive and the install period and
    `as_of` only cut its ends.
    """

    step_us: np.ndarray  # (n_gkeys,) slot length
    lo: np.ndarray  # (n_gkeys,) first expected slot start
    hi: np.ndarray  # (n_gkeys,) exclusive bound on expected slot starts (hi <= lo: none)
    expected: np.ndarray  # (n_gkeys, n_days) number of expected slots per window day


def _count_slots(first: np.ndarray, stop: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Number of multiples of `step` in [first, stop) (first already on the grid)."""
    return np.where(stop > first, (stop - first + step - 1) // step, 0)


def _ceil_to(value: np.ndarray, step: np.ndarray) -> np.ndarray:
    return -((-value) // step) * step


def expected_grid(
    day_bounds: np.ndarray,
    installed_us: np.ndarray,
    removed_us: np.ndarray,
    interval_minutes: np.ndarray,
    expect_channel: np.ndarray,
    as_of_us: int,
) -> ExpectedGrid:
    """Expected slots for every gkey (per-meter arrays are indexed by gkey // 2).

    `day_bounds` are the D+1 UTC bounds of the window's local days (already clipped to the
    window); `expect_channel` (n_gkeys,) says which meter-channels are expected at all. A slot
    is expected once it has ended: slot + step <= as_of.
    """
    n_gkeys = len(expect_channel)
    meter = np.arange(n_gkeys) // 2
    step = np.asarray(interval_minutes, dtype=np.int64)[meter] * US_PER_MINUTE
    installed = np.asarray(installed_us, dtype=np.int64)[meter]
    end = np.minimum(np.asarray(removed_us, dtype=np.int64)[meter], as_of_us - step + 1)
    lo = _ceil_to(np.maximum(day_bounds[0], installed), step)
    hi = np.minimum(day_bounds[-1], end)
    hi = np.where(np.asarray(expect_channel, dtype=bool), hi, lo)  # not expected: empty
    day_lo = _ceil_to(np.maximum(day_bounds[None, :-1], lo[:, None]), step[:, None])
    day_hi = np.minimum(day_bounds[None, 1:], hi[:, None])
    expected = _count_slots(day_lo, day_hi, step[:, None]).astype(np.int64)
    return ExpectedGrid(step, lo, hi, expected)


@dataclass(frozen=True)
class MissingSlots:
    gkey: np.ndarray
    ts: np.ndarray
    day: np.ndarray  # window day index
    prev: np.ndarray  # index of the previous reading of the gkey (-1: none)
    next: np.ndarray  # index of the next reading of the gkey (-1: none)


class MinutesAsUs:
    """Interval lengths in minutes that index like an array of microseconds (no full copy)."""

    def __init__(self, minutes: np.ndarray) -> None:
        self.minutes = minutes

    def __len__(self) -> int:
        return len(self.minutes)

    def __getitem__(self, index: object) -> np.ndarray:
        return np.asarray(self.minutes[index], dtype=np.int64) * US_PER_MINUTE


def missing_slots(
    grid: ExpectedGrid,
    row_gkey: np.ndarray,
    row_ts: np.ndarray,
    row_interval_us: np.ndarray | MinutesAsUs,
    day_bounds: np.ndarray,
    gap_rows: np.ndarray | None = None,
    last_rows: np.ndarray | None = None,
) -> MissingSlots:
    """Expected slots no reading starts on or covers, found from the gaps between readings.

    `row_*` are the kept readings (context included) sorted by gkey and ts. Each reading ends a
    gap that started where the previous reading of its gkey ended; the expected slots inside
    each gap are missing. Slots come out sorted by gkey and ts.

    `gap_rows` (ascending) may list the only rows that can end a gap: every other row starts
    exactly where the previous row of its gkey ends. `last_rows` then lists the last row of each
    gkey (ascending).
    """
    n = len(row_gkey)
    n_gkeys = len(grid.lo)
    row_gkey = np.asarray(row_gkey, dtype=np.int64)
    if gap_rows is None or last_rows is None:
        # candidate gaps: before each reading (after the previous reading of its gkey, or from
        # the start of time), and after the last reading of each gkey / for gkeys without any
        same_prev = np.zeros(n, dtype=bool)
        if n > 1:
            np.equal(row_gkey[1:], row_gkey[:-1], out=same_prev[1:])
        last = np.ones(n, dtype=bool)
        last[:-1] = ~same_prev[1:]
        gap_rows = np.arange(n, dtype=np.int64)
        last_rows = np.flatnonzero(last)
    else:
        gap_rows = np.asarray(gap_rows, dtype=np.int64)
        last_rows = np.asarray(last_rows, dtype=np.int64)
        same_prev = gap_rows > 0
        before = np.maximum(gap_rows - 1, 0)
        same_prev &= row_gkey[before] == row_gkey[gap_rows]
    has_rows = np.zeros(n_gkeys, dtype=bool)
    has_rows[row_gkey[last_rows]] = True
    empty = np.flatnonzero(~has_rows & (grid.hi > grid.lo))
    prev_row = np.where(same_prev, gap_rows - 1, -1)
    prev_end = np.full(len(gap_rows), np.iinfo(np.int64).min)
    linked = np.flatnonzero(same_prev)
    prev_end[linked] = row_ts[prev_row[linked]] + row_interval_us[prev_row[linked]]
    g = np.concatenate([row_gkey[gap_rows], row_gkey[last_rows], empty])
    start = np.concatenate(
        [
            prev_end,
            row_ts[last_rows] + row_interval_us[last_rows],
            np.full(len(empty), np.iinfo(np.int64).min),
        ]
    )
    n_open = len(last_rows) + len(empty)
    stop = np.concatenate([row_ts[gap_rows], np.full(n_open, np.iinfo(np.int64).max)])
    prev = np.concatenate([prev_row, last_rows, np.full(len(empty), -1)])
    nxt = np.concatenate([gap_rows, np.full(n_open, -1)])
    step = grid.step_us[g]
    first = _ceil_to(np.maximum(start, grid.lo[g]), step)
    count = _count_slots(first, np.minimum(stop, grid.hi[g]), step)
    gaps = np.flatnonzero(count > 0)
    if len(gaps) == 0:
        none = np.zeros(0, dtype=np.int64)
        return MissingSlots(none, none, none, none, none)
    # order gaps by gkey then time (tail and empty gaps were appended)
    gaps = gaps[np.lexsort((first[gaps], g[gaps]))]
    counts = count[gaps]
    gap = np.repeat(gaps, counts)
    offset = np.arange(len(gap), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    ts = first[gap] + offset * step[gap]
    day = np.searchsorted(day_bounds, ts, side="right") - 1
    return MissingSlots(g[gap], ts, day, prev[gap], nxt[gap])


@dataclass(frozen=True)
class Estimates:
    kwh: np.ndarray  # estimated value per missing slot (NaN: left missing)
    method: np.ndarray  # NONE, LINEAR or PROFILE per missing slot


def estimate(
    slots: MissingSlots,
    row_gkey: np.ndarray,
    row_ts: np.ndarray,
    row_interval_us: np.ndarray,
    row_kwh: np.ndarray,
    row_suspect: np.ndarray,
    gap_start_floor_us: np.ndarray,
    gap_end_ceiling_us: np.ndarray,
    input_day_bounds: np.ndarray,
    tz: str,
    config: VeeConfig,
) -> Estimates:
    """Estimate missing slots (see the module doc).

    `gap_start_floor_us` / `gap_end_ceiling_us` (per slot) bound a gap that has no reading on
    one side: the later of the input start and installed_at, and the earlier of the window
    end, removed_at and as_of. `input_day_bounds` are the local-day bounds over the whole input.
    """
    n = len(slots.ts)
    value = np.full(n, np.nan)
    method = np.zeros(n, dtype=np.int8)
    if n == 0 or len(row_ts) == 0:
        return Estimates(value, method)
    has_prev = slots.prev >= 0
    has_next = slots.next >= 0
    p = np.maximum(slots.prev, 0)
    q = np.maximum(slots.next, 0)
    prev_ts = row_ts[p]
    next_ts = row_ts[q]
    gap_lo = np.where(has_prev, prev_ts + row_interval_us[p], gap_start_floor_us)
    gap_hi = np.where(has_next, next_ts, gap_end_ceiling_us)
    gap_minutes = (gap_hi - gap_lo) / US_PER_MINUTE
    prev_ok = ~has_prev | ~row_suspect[p]
    next_ok = ~has_next | ~row_suspect[q]
    clean_sides = prev_ok & next_ok

    linear = has_prev & has_next & clean_sides & (gap_minutes <= config.linear_max_minutes)
    if linear.any():
        frac = (slots.ts[linear] - prev_ts[linear]) / (next_ts[linear] - prev_ts[linear])
        pv = row_kwh[p[linear]]
        nv = row_kwh[q[linear]]
        value[linear] = pv + (nv - pv) * frac
        method[linear] = LINEAR

    wants_profile = ~linear & clean_sides & (gap_minutes <= config.profile_max_minutes)
    if wants_profile.any():
        idx = np.flatnonzero(wants_profile)
        prof = _profile(
            slots.gkey[idx],
            slots.ts[idx],
            row_gkey,
            row_ts,
            row_kwh,
            row_suspect,
            input_day_bounds,
            tz,
        )
        ok = ~np.isnan(prof)
        value[idx[ok]] = prof[ok]
        method[idx[ok]] = PROFILE
    return Estimates(value, method)


# Largest (groups x times of day) table summed densely; beyond it, sparse keys.
_DENSE_PROFILE_CELLS = 50_000_000


def _profile(
    slot_gkey: np.ndarray,
    slot_ts: np.ndarray,
    row_gkey: np.ndarray,
    row_ts: np.ndarray,
    row_kwh: np.ndarray,
    row_suspect: np.ndarray,
    input_day_bounds: np.ndarray,
    tz: str,
) -> np.ndarray:
    """Mean of same-local-time readings on the other local days (NaN where none).

    Only a day longer than 24 hours (DST fall-back) holds a local time twice, so the slot's own
    day is subtracted from the all-days totals only on such days.
    """
    groups = np.unique(slot_gkey)
    rows = _rows_of_groups(row_gkey, groups)
    rows = rows[~np.asarray(row_suspect)[rows]]
    out = np.full(len(slot_ts), np.nan)
    if len(rows) == 0:
        return out
    r_tod = local_minute_of_day(row_ts[rows], tz)
    s_tod = local_minute_of_day(slot_ts, tz)
    # times of day in units of their greatest common divisor (15 min for quarter hours)
    unit = int(np.gcd.reduce(np.concatenate([r_tod, s_tod, [MINUTES_PER_DAY]])))
    per_day = MINUTES_PER_DAY // unit
    r_key = np.searchsorted(groups, row_gkey[rows]) * per_day + r_tod // unit
    s_key = np.searchsorted(groups, slot_gkey) * per_day + s_tod // unit
    r_kwh = row_kwh[rows]
    total, count = _sum_count(r_key, r_kwh, s_key, len(groups) * per_day)

    day_us = np.diff(input_day_bounds)
    long_days = np.flatnonzero(day_us > MINUTES_PER_DAY * US_PER_MINUTE)
    if len(long_days):
        s_day = day_index(slot_ts, input_day_bounds)
        r_day = day_index(row_ts[rows], input_day_bounds)
        on_long = np.isin(r_day, long_days)
        n_days = len(day_us) + 2
        own_total, own_count = _sum_count(
            r_key[on_long] * n_days + r_day[on_long] + 1,
            r_kwh[on_long],
            s_key * n_days + s_day + 1,
            None,
        )
        total -= own_total
        count -= own_count
    ok = count > 0
    out[ok] = total[ok] / count[ok]
    return out


def _rows_of_groups(row_gkey: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Rows (ascending) whose gkey is one of `groups` (sorted unique)."""
    row_gkey = np.asarray(row_gkey)
    if len(row_gkey) > 1 and not bool(np.all(row_gkey[1:] >= row_gkey[:-1])):
        return np.flatnonzero(np.isin(row_gkey, groups))
    # rows sorted by gkey: each group is one range of rows
    first = np.searchsorted(row_gkey, groups, side="left")
    last = np.searchsorted(row_gkey, groups, side="right")
    return rows_of(np.flatnonzero(last > first), first, last)


def _sum_count(
    keys: np.ndarray, values: np.ndarray, queries: np.ndarray, size: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Sum and count of `values` per key, looked up for each query key (0 if absent).

    Keys in [0, size) are summed densely when `size` is small enough, else through a sort.
    """
    if size is not None and size <= _DENSE_PROFILE_CELLS:
        sums = np.bincount(keys, weights=values, minlength=size)
        counts = np.bincount(keys, minlength=size)
        return sums[queries], counts[queries].astype(np.int64)
    uniq, inverse = np.unique(keys, return_inverse=True)
    sums = np.bincount(inverse, weights=values, minlength=len(uniq))
    counts = np.bincount(inverse, minlength=len(uniq))
    if len(uniq) == 0:
        return np.zeros(len(queries)), np.zeros(len(queries), dtype=np.int64)
    at = np.minimum(np.searchsorted(uniq, queries), len(uniq) - 1)
    hit = uniq[at] == queries
    return np.where(hit, sums[at], 0.0), np.where(hit, counts[at], 0).astype(np.int64)
