"""VEE engine: composes the rules over one window of readings, vectorised end to end.

Steps (all on numpy arrays, one sort):
1. map readings to the meter registry (unknown meters / channels are dropped and counted);
2. snap misaligned timestamps, sort by (meter, channel, ts) once, keep one reading per slot
   (`duplicate`, `alignment`);
3. row rules over the whole input, context included: `interval_length`, `future`,
   `install_period`, `negative`, `unit.wh_as_kwh` (corrects the value), `limit.high` /
   `limit.low`, `spike`, `flat_line`, `zero_run`;
4. expected grid of the window's local days, missing slots, estimates;
5. cleaned rows of the window (CLEANED_READINGS, sorted by meter_id, channel, ts) and the
   sufficiency table.

Cost is mostly memory traffic, so the engine keeps few full-length arrays alive: readings are
gathered into sorted order once (no sort when already sorted), rules that fire on few rows test
whole groups or a cheap necessary condition first (a group's largest value, a row that does not
continue the previous one) and evaluate the exact row test only where it may hold, and the
cleaned table is built column by column, each working array dropped once its column exists.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..contract import CHANNELS, CLEANED_READINGS, READINGS, UTC_TS, conform, dictionary_strings
from . import estimation, flags
from .arrays import SortedGroups, group_ends, rows_of, same_as_previous, segment_ids
from .config import VEE_VERSION, VeeConfig
from .flags import BIT
from .rules import (
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
from .schemas import SUFFICIENCY
from .timegrid import US_PER_MINUTE, day_index, local_days, to_us

EPOCH = dt.date(1970, 1, 1)
#: CLEANED_READINGS as VEE returns it and the lake stores it: every string column as a
#: dictionary (meter ids, channels, source files, quality letters and the VEE version repeat on
#: every row; a string per row costs more to build than the whole Parquet encoding of them)
CLEANED_ARROW = dictionary_strings(CLEANED_READINGS)


@dataclass(frozen=True)
class VeeResult:
    """Outcome of one VEE run over a window.

    - `cleaned`: CLEANED_READINGS rows (as CLEANED_ARROW) whose ts is in [window_start,
      window_end);
    - `sufficiency`: per meter_id, channel, local_day (see `schemas.SUFFICIENCY`);
    - `flags_by_rule`: rows of `cleaned` on which each rule fired (every rule listed);
    - `rows_in`: input readings whose ts as landed is in the window (context rows excluded);
    - `rows_out`: rows of `cleaned`;
    - `rows_context`: input readings outside the window (used for runs, gaps and statistics);
    - `rows_dropped`: window readings not in `cleaned`: `unknown_meter` (not in the
      registry), `unknown_channel`, `superseded` (lost a duplicate or alignment conflict).
      Normally rows_in - sum(rows_dropped) + estimated rows == rows_out.
    """

    cleaned: pa.Table
    sufficiency: pa.Table
    flags_by_rule: dict[str, int]
    rows_in: int
    rows_out: int
    rows_context: int = 0
    rows_dropped: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Registry:
    ids: pa.Array  # sorted unique meter_id
    low_kw: np.ndarray
    high_kw: np.ndarray
    has_solar: np.ndarray
    installed_us: np.ndarray
    removed_us: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def _ts_us(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    arr = pc.cast(column, UTC_TS)
    return np.asarray(pc.cast(arr, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def _registry(meters: pa.Table, config: VeeConfig) -> _Registry:
    need = ["meter_id", "customer_class", "has_solar", "installed_at"]
    missing = [name for name in need if name not in meters.column_names]
    if missing:
        raise ValueError(f"meters lacks columns {missing}")
    if "removed_at" not in meters.column_names:
        meters = meters.append_column("removed_at", pa.nulls(meters.num_rows, UTC_TS))
    table = pa.table(
        {
            "meter_id": pc.cast(meters["meter_id"], pa.string()),
            "customer_class": pc.cast(meters["customer_class"], pa.string()),
            "has_solar": pc.cast(meters["has_solar"], pa.bool_()),
            "installed_at": pc.cast(meters["installed_at"], UTC_TS),
            "removed_at": pc.cast(meters["removed_at"], UTC_TS),
        }
    ).filter(pc.is_valid(meters["meter_id"]))
    # one row per meter: the latest installation if the registry repeats a meter
    table = table.sort_by([("meter_id", "ascending"), ("installed_at", "descending")])
    ids = table["meter_id"].combine_chunks()
    if len(ids) > 1:
        first = np.ones(len(ids), dtype=bool)
        first[1:] = pc.not_equal(ids[1:], ids[:-1]).to_numpy(zero_copy_only=False)
        table = table.filter(pa.array(first))
        ids = table["meter_id"].combine_chunks()
    low, high = limits.class_limits(
        np.asarray(table["customer_class"].fill_null("unknown").to_pylist(), dtype=object),
        config,
    )
    installed = _ts_us(table["installed_at"].fill_null(pa.scalar(0, UTC_TS)))
    removed = _ts_us(table["removed_at"].fill_null(pa.scalar(0, UTC_TS)))
    removed = np.where(
        table["removed_at"].is_null().to_numpy(zero_copy_only=False), install_period.NEVER, removed
    )
    solar = table["has_solar"].fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
    return _Registry(ids, low, high, solar, installed, removed)


class _Keyer:
    """Sort key (gkey, ts) packed into one int64; ts quantised only if the span needs it."""

    def __init__(self, n_gkeys: int, ts_min: int, ts_max: int) -> None:
        gbits = max(1, int(n_gkeys).bit_length())
        span = ts_max - ts_min + 1
        for unit in (1, 1_000_000, US_PER_MINUTE):
            tbits = max(1, int(span // unit + 1).bit_length())
            if gbits + tbits <= 62:
                break
        else:  # pragma: no cover - needs > 2**40 meters
            raise ValueError("too many meters for one VEE run")
        self.base, self.unit, self.tbits = ts_min, unit, tbits

    def __call__(self, gkey: np.ndarray, ts: np.ndarray) -> np.ndarray:
        rel = np.asarray(ts, dtype=np.int64) - self.base
        if self.unit != 1:
            rel //= self.unit
        rel |= np.asarray(gkey, dtype=np.int64) << self.tbits
        return rel


# READINGS columns VEE needs; others (e.g. source_row) are optional.
_NEEDED = ("meter_id", "ts", "interval_minutes", "channel", "kwh", "source_file", "landed_at")
_CHANNEL_SET = pa.array(CHANNELS, type=pa.string())


def _select_readings(readings: pa.Table) -> pa.Table:
    missing = [name for name in _NEEDED if name not in readings.column_names]
    if missing:
        raise ValueError(f"readings lacks columns {missing}")
    columns = {name: pc.cast(readings[name], READINGS.field(name).type) for name in _NEEDED}
    if "source_row" in readings.column_names:
        columns["source_row"] = pc.cast(readings["source_row"], pa.int64())
    else:
        columns["source_row"] = pa.array(np.zeros(readings.num_rows, dtype=np.int64))
    return pa.table(columns)


def _numpy(column: pa.ChunkedArray | pa.Array, dtype: type) -> np.ndarray:
    return np.asarray(column.to_numpy(), dtype=dtype)


def _codes(values: pa.ChunkedArray, value_set: pa.Array) -> np.ndarray:
    """Index of each value in `value_set` (int32; -1 for a value not in it)."""
    idx = pc.index_in(pc.cast(values, pa.string()), value_set=value_set)
    if idx.null_count:
        idx = idx.fill_null(-1)
    return _numpy(idx, np.int32)


def _source_rank(source_file: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Rank of each row's source_file name among the names given (null ranks lowest)."""
    if isinstance(source_file, pa.ChunkedArray):
        source_file = source_file.combine_chunks()
    encoded = pc.cast(source_file, pa.string()).dictionary_encode()
    order = np.asarray(pc.sort_indices(encoded.dictionary.fill_null("")), dtype=np.int64)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return np.where(indices >= 0, rank[np.maximum(indices, 0)], -1)


def _take_few(column: pa.ChunkedArray, rows: np.ndarray) -> pa.Array:
    """`column.take(rows)` for a few rows, chunk by chunk (a chunked take may first
    concatenate the whole column)."""
    rows = np.asarray(rows, dtype=np.int64)
    if column.num_chunks <= 1:
        return column.take(pa.array(rows)).combine_chunks()
    offsets = np.cumsum([0] + [len(chunk) for chunk in column.chunks])
    chunk_of = np.searchsorted(offsets, rows, side="right") - 1
    order = np.argsort(chunk_of, kind="stable")
    pieces = []
    for c in np.unique(chunk_of):
        at = rows[order[chunk_of[order] == c]] - offsets[c]
        pieces.append(column.chunk(int(c)).take(pa.array(at)))
    if not pieces:
        return column.chunk(0).slice(0, 0)
    inverse = np.empty(len(rows), dtype=np.int64)
    inverse[order] = np.arange(len(rows))
    return pa.concat_arrays(pieces).take(pa.array(inverse))


def _string_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """(int32 code per row, -1 for null; dictionary) of a string column."""
    encoded = pc.cast(column, pa.string()).dictionary_encode()
    chunks = encoded.chunks
    dictionary = chunks[-1].dictionary if chunks else pa.array([], type=pa.string())
    codes = np.empty(len(column), dtype=np.int32)
    at = 0
    for chunk in chunks:
        indices = chunk.indices
        if indices.null_count:
            indices = indices.fill_null(-1)
        part = indices.to_numpy()
        if not chunk.dictionary.equals(dictionary):  # map to the final dictionary
            remap = _numpy(pc.index_in(chunk.dictionary, value_set=dictionary), np.int32)
            part = np.where(part >= 0, remap[np.maximum(part, 0)], -1)
        codes[at : at + len(part)] = part
        at += len(part)
    return codes, dictionary


def _is_sorted(values: np.ndarray) -> bool:
    return len(values) < 2 or bool(np.all(values[1:] >= values[:-1]))


def _per_row(per_group: np.ndarray, gid: np.ndarray) -> np.ndarray:
    """Per-group values spread to rows; one scalar when every group has the same value."""
    if len(per_group):
        bits = per_group.view(f"u{per_group.itemsize}")
        if bool(np.all(bits == bits[0])):
            return per_group[0]
    return per_group[gid]


def _flag(rule: np.ndarray, hit: np.ndarray, bit: int) -> None:
    """Set `bit` in `rule` where `hit` (a mask) is true."""
    np.bitwise_or(rule, bit, out=rule, where=hit)


@dataclass
class _Kept:
    """The readings kept (one per slot) sorted by (gkey, ts), before the row rules."""

    ts: np.ndarray  # int64 UTC us, snapped to the interval grid
    gkey: np.ndarray  # int64 meter index * 2 + channel
    interval: np.ndarray  # int32 minutes
    kwh_raw: np.ndarray  # float64 as landed
    src: np.ndarray | None  # row of the input table (None: row i is input row i)
    misaligned: np.ndarray  # bool: ts was snapped
    misaligned_raw_ts: np.ndarray  # ts as landed of the misaligned rows
    duplicate_rows: np.ndarray  # rows flagged `duplicate`
    alignment_rows: np.ndarray  # rows flagged `alignment` for winning over a snapped reading
    rows_in: int
    dropped: dict[str, int]
    key_of: _Keyer
    ts_lo: int
    ts_hi: int


def _kept_rows(table: pa.Table, reg: _Registry, ws: int, we: int) -> _Kept:
    """Map readings to the registry, snap, sort once (unless already sorted), one per slot."""
    raw_ts = _ts_us(table["ts"])
    in_window = (raw_ts >= ws) & (raw_ts < we)
    rows_in = int(np.count_nonzero(in_window))
    meter = _codes(table["meter_id"], reg.ids)
    channel = _codes(table["channel"], _CHANNEL_SET)
    valid = (meter >= 0) & (channel >= 0)
    valid_rows = None  # rows of `table` kept (None: all)
    dropped = {"unknown_meter": 0, "unknown_channel": 0}
    if not valid.all():
        dropped["unknown_meter"] = int(np.count_nonzero(in_window & (meter < 0)))
        dropped["unknown_channel"] = int(np.count_nonzero(in_window & (meter >= 0) & (channel < 0)))
        valid_rows = np.flatnonzero(valid)
    del in_window, valid
    gkey = meter.astype(np.int64)
    del meter
    gkey *= 2
    gkey += channel
    del channel
    interval = _numpy(table["interval_minutes"], np.int32)
    if valid_rows is not None:
        raw_ts = raw_ts[valid_rows]
        gkey = gkey[valid_rows]
        interval = interval[valid_rows]

    # --- slots: snap, sort once, one reading per slot ---------------------------------------
    ts, mis = alignment.snap_and_flag(raw_ts, interval)
    ts_lo = min(int(ts.min()), ws) if len(ts) else ws
    ts_hi = max(int(ts.max()), we) if len(ts) else we
    key_of = _Keyer(2 * len(reg), ts_lo, ts_hi)
    key = key_of(gkey, ts)
    order = None  # sorted position -> position before sorting
    if not _is_sorted(key):
        order = np.argsort(key, kind="stable")
        key = key[order]
    duplicate_rows = alignment_rows = np.zeros(0, dtype=np.int64)
    keep = None
    dropped["superseded"] = 0
    sub = duplicate.conflicting(key)
    if len(sub):
        pos = order[sub] if order is not None else sub
        rows = valid_rows[pos] if valid_rows is not None else pos
        res = duplicate.resolve_slots(
            key[sub],
            raw_ts[pos],
            mis[pos],
            _ts_us(_take_few(table["landed_at"], rows)),
            _source_rank(_take_few(table["source_file"], rows)),
            _numpy(_take_few(table["source_row"], rows).fill_null(0), np.int64),
            _numpy(_take_few(table["kwh"], rows), np.float64),
        )
        lost = sub[~res.keep]
        lost_ts = ts[pos[~res.keep]]
        dropped["superseded"] = int(np.count_nonzero((lost_ts >= ws) & (lost_ts < we)))
        winners = sub[res.keep]
        moved = winners - np.searchsorted(lost, winners)  # their rows once the lost are gone
        duplicate_rows = moved[res.duplicate[res.keep]]
        alignment_rows = moved[res.alignment[res.keep]]
        keep = np.ones(len(key), dtype=bool)
        keep[lost] = False
    del key  # recomputed from the kept gkey and ts where needed
    if keep is not None:
        order = np.flatnonzero(keep) if order is None else order[keep]
    sel = order  # kept row -> position before sorting (None: the same)
    del order, keep
    if sel is not None:  # gather one array at a time, freeing the unsorted one
        ts = ts[sel]
        gkey = gkey[sel]
        interval = interval[sel]
        mis = mis[sel]
    mis_rows = np.flatnonzero(mis)
    misaligned_raw_ts = raw_ts[sel[mis_rows] if sel is not None else mis_rows]
    del raw_ts
    src = valid_rows  # kept row -> row of `table`
    if sel is not None:
        src = sel if valid_rows is None else valid_rows[sel]
    del sel, valid_rows
    if src is not None and table.num_rows < 2**31:
        src = src.astype(np.int32)
    kwh = table["kwh"] if src is None else table["kwh"].take(pa.array(src))
    kwh_raw = _numpy(kwh, np.float64)
    return _Kept(
        ts=ts,
        gkey=gkey,
        interval=interval,
        kwh_raw=kwh_raw,
        src=src,
        misaligned=mis,
        misaligned_raw_ts=misaligned_raw_ts,
        duplicate_rows=duplicate_rows,
        alignment_rows=alignment_rows,
        rows_in=rows_in,
        dropped=dropped,
        key_of=key_of,
        ts_lo=ts_lo,
        ts_hi=ts_hi,
    )


def _dominant_interval(
    g_meter: np.ndarray,
    g_lo: np.ndarray,
    g_hi: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    interval: np.ndarray,
    n_meters: int,
    default: int,
) -> np.ndarray:
    """`interval_length.dominant_interval` from per-group interval bounds: only the rows of
    meters with mixed intervals are counted."""
    out = np.full(n_meters, default, dtype=np.int64)
    if len(g_meter) == 0:
        return out
    first = np.flatnonzero(np.diff(g_meter, prepend=-1))  # first group of each meter
    meters = g_meter[first]
    lo = np.minimum.reduceat(g_lo, first)
    hi = np.maximum.reduceat(g_hi, first)
    out[meters] = lo
    mixed = np.flatnonzero(lo != hi)
    if len(mixed):
        last = np.append(first[1:], len(g_meter)) - 1  # last group of each meter
        row_start, row_end = starts[first], ends[last]
        rows = rows_of(mixed, row_start, row_end)
        meter = np.repeat(meters[mixed], row_end[mixed] - row_start[mixed])
        counted = interval_length.dominant_interval(meter, interval[rows], n_meters, default)
        out[meters[mixed]] = counted[meters[mixed]]
    return out


def apply(
    readings: pa.Table,
    meters: pa.Table,
    *,
    window_start: dt.datetime,
    window_end: dt.datetime,
    tz: str,
    as_of: dt.datetime,
    config: VeeConfig = VeeConfig(),  # noqa: B008 - frozen, never mutated
) -> VeeResult:
    """Validate, estimate and edit the readings of [window_start, window_end).

    `readings` (READINGS) may include context rows before the window (one local day is
    expected, so runs and gaps crossing midnight are seen); only window rows are output.
    `window_start` / `window_end` are the UTC instants of local-day bounds in `tz`; `as_of`
    is the run's "now" (readings at or after it are `future`, slots not yet ended are not
    expected).
    """
    ws = to_us(window_start, "window_start")
    we = to_us(window_end, "window_end")
    now = to_us(as_of, "as_of")
    if we <= ws:
        raise ValueError("window_end must be after window_start")
    reg = _registry(meters, config)
    n_meters = len(reg)
    n_gkeys = 2 * n_meters

    table = _select_readings(readings)
    kept = _kept_rows(table, reg, ws, we)
    ts, gkey, interval, kwh_raw, src = kept.ts, kept.gkey, kept.interval, kept.kwh_raw, kept.src
    key_of, ts_lo, ts_hi = kept.key_of, kept.ts_lo, kept.ts_hi
    n = len(ts)
    rule = np.zeros(n, dtype=np.int32)
    rule[kept.duplicate_rows] |= BIT["duplicate"]
    rule[kept.alignment_rows] |= BIT["alignment"]
    mis_rows = np.flatnonzero(kept.misaligned)
    rule[mis_rows] |= BIT["alignment"]
    mis_raw_ts = kept.misaligned_raw_ts
    edited = kept.misaligned  # a snapped timestamp is an edit
    rows_in, dropped = kept.rows_in, kept.dropped
    del kept

    # --- row rules over the whole input ----------------------------------------------------
    # per group (meter-channel, one contiguous run of rows): bounds, meter, channel
    gid, starts = segment_ids(gkey)
    n_groups = len(starts)
    ends = group_ends(starts, n)
    g_meter = gkey[starts] >> 1
    g_received = (gkey[starts] & 1) == 1
    any_received = bool(g_received.any())
    has_received = np.zeros(n_meters, dtype=bool)
    has_received[g_meter[g_received]] = True
    g_lo = np.minimum.reduceat(interval, starts) if n_groups else interval[:0]
    g_hi = np.maximum.reduceat(interval, starts) if n_groups else interval[:0]

    dominant = _dominant_interval(
        g_meter, g_lo, g_hi, starts, ends, interval, n_meters, config.default_interval_minutes
    )
    dominant[dominant <= 0] = config.default_interval_minutes  # garbage cannot define a grid
    g_dominant = dominant[g_meter]
    odd = np.flatnonzero((g_lo != g_hi) | (g_lo != g_dominant))
    if len(odd):
        rows = rows_of(odd, starts, ends)
        wrong = interval_length.wrong_length(interval[rows], g_dominant[gid[rows]])
        rule[rows[wrong]] |= BIT["interval_length"]
    _flag(rule, future.future(ts, now), BIT["future"])
    # ts ascends within a group: only groups reaching outside the install period are checked
    outside = np.flatnonzero(
        (ts[starts] < reg.installed_us[g_meter]) | (ts[ends - 1] >= reg.removed_us[g_meter])
    )
    if len(outside):
        rows = rows_of(outside, starts, ends)
        m = gkey[rows] >> 1
        out = install_period.outside_install(ts[rows], reg.installed_us[m], reg.removed_us[m])
        rule[rows[out]] |= BIT["install_period"]
    rows = np.flatnonzero(kwh_raw < 0)
    if len(rows):
        m = gkey[rows] >> 1
        hit = negative.negative(kwh_raw[rows], reg.has_solar[m], (gkey[rows] & 1) == 1)
        rule[rows[hit]] |= BIT["negative"]

    input_days, input_bounds = local_days(min(ts_lo, ws), max(ts_hi + 1, we), tz)
    high_kw = _per_row(reg.high_kw[g_meter], gid)
    raw_groups = SortedGroups(kwh_raw, gid, n_groups)
    candidates = unit_error.candidates(
        kwh_raw, interval, high_kw, gid, n_groups, config, raw_groups
    )
    kwh = kwh_raw
    corrected = len(candidates) > 0
    solar = reg.has_solar[g_meter]
    if corrected:
        day = day_index(ts, input_bounds)
        day_segment, _ = segment_ids(gid * (len(input_days) + 2) + (day + 1))
        del day
        unit = unit_error.whole_days(candidates, kwh_raw, interval, high_kw, day_segment, config)
        del day_segment
        _flag(rule, unit, BIT["unit.wh_as_kwh"])
        edited = edited | unit
        kwh = unit_error.correct(kwh_raw, unit)
        del unit
        kw = limits.average_kw(kwh, interval)
        _flag(rule, limits.limit_high(kw, high_kw), BIT["limit.high"])
        if solar.any():
            low_kw = _per_row(reg.low_kw[g_meter], gid)
            _flag(rule, limits.limit_low(kw, low_kw, _per_row(solar, gid)), BIT["limit.low"])
        del kw
    else:
        # average kW grows with kWh at a fixed interval: a single-interval group reaches past
        # a limit only if its largest (smallest) value does
        smallest, largest = raw_groups.extremes()
        fixed = (g_lo == g_hi) & (g_lo > 0)
        with np.errstate(invalid="ignore"):
            maybe = ~fixed | (limits.average_kw(largest, g_lo) > reg.high_kw[g_meter])
        rows = rows_of(np.flatnonzero(maybe), starts, ends)
        kw = limits.average_kw(kwh[rows], interval[rows])
        high = limits.limit_high(kw, reg.high_kw[gkey[rows] >> 1])
        rule[rows[high]] |= BIT["limit.high"]
        if solar.any():
            with np.errstate(invalid="ignore"):
                maybe = ~fixed | (limits.average_kw(smallest, g_lo) < reg.low_kw[g_meter])
            rows = rows_of(np.flatnonzero(solar & maybe), starts, ends)
            m = gkey[rows] >> 1
            kw = limits.average_kw(kwh[rows], interval[rows])
            low = limits.limit_low(kw, reg.low_kw[m], reg.has_solar[m])
            rule[rows[low]] |= BIT["limit.low"]
        del kw, rows
    same_prev = same_as_previous(gid)
    groups = None if corrected else raw_groups  # the values spike sees, already sorted
    _flag(rule, spike.spike(kwh, gid, n_groups, same_prev, config, groups), BIT["spike"])
    del raw_groups, groups, same_prev
    link = runs.contiguous(gid, ts, interval)
    delivered = (gkey & 1) == 0 if any_received else np.True_
    _flag(rule, runs.flat_line(kwh, link, interval, delivered, config), BIT["flat_line"])
    zero_eligible = delivered
    if any_received:
        zeros = np.flatnonzero(kwh == 0)
        two_channel = zeros[delivered[zeros] & has_received[gkey[zeros] >> 1]]
        if len(two_channel):
            key = key_of(gkey, ts)
            busy = runs.exporting(key_of(gkey[two_channel] + 1, ts[two_channel]), key, kwh)
            del key
            zero_eligible = delivered.copy()
            zero_eligible[two_channel[busy]] = False
    _flag(rule, runs.zero_run(kwh, link, interval, zero_eligible, config), BIT["zero_run"])
    del delivered, zero_eligible, gid
    suspect = (rule & flags.SUSPECT_MASK) != 0

    # --- expected grid, gaps and estimates --------------------------------------------------
    win_days, win_bounds = local_days(ws, we, tz)
    win_bounds = np.clip(win_bounds, ws, we)
    n_days = len(win_days)
    expect = np.zeros(n_gkeys, dtype=bool)
    expect[0::2] = True
    expect[1::2] = reg.has_solar & (has_received | (not config.received_requires_data))
    grid = estimation.expected_grid(
        win_bounds, reg.installed_us, reg.removed_us, dominant, expect, now
    )
    interval_us = estimation.MinutesAsUs(interval)
    # a gap can only end at a row that does not start where the previous row ended
    gap_rows = np.flatnonzero(~link)
    del link
    slots = estimation.missing_slots(
        grid, gkey, ts, interval_us, win_bounds, gap_rows=gap_rows, last_rows=ends - 1
    )
    del gap_rows
    sm = slots.gkey // 2
    input_start = min(ts_lo, ws)
    est = estimation.estimate(
        slots,
        gkey,
        ts,
        interval_us,
        kwh,
        suspect,
        np.maximum(reg.installed_us[sm], input_start),
        np.minimum(np.minimum(reg.removed_us[sm], we), now),
        input_bounds,
        tz,
        config,
    )
    del suspect, sm
    e = np.flatnonzero(est.method != estimation.NONE)
    e_rule = np.where(
        est.method[e] == estimation.LINEAR, BIT["estimate.linear"], BIT["estimate.profile"]
    ).astype(rule.dtype)

    # --- cleaned rows of the window --------------------------------------------------------
    # output row -> kept row; estimates (sorted by gkey, ts like the rows) are slotted in
    e_gkey, e_ts = slots.gkey[e], slots.ts[e]
    n_e = len(e)
    in_win = (ts >= ws) & (ts < we)
    w = None if bool(in_win.all()) else np.flatnonzero(in_win)
    del in_win
    n_w = n if w is None else len(w)
    n_out = n_w + n_e
    o_row = w  # None: output row i is kept row i
    e_pos = np.zeros(0, dtype=np.int64)
    is_est = None
    if n_e:
        key = key_of(gkey, ts)
        at = np.searchsorted(key, key_of(e_gkey, e_ts))  # kept rows before each estimate
        del key
        if w is not None:
            at = np.searchsorted(w, at)  # ... of which in the window
        e_pos = at + np.arange(n_e, dtype=np.int64)
        del at
        is_est = np.zeros(n_out, dtype=bool)
        is_est[e_pos] = True
        o_row = np.cumsum(~is_est, dtype=np.int64)
        o_row -= 1  # window row index (estimates: the row before, or -1)
        if n_w == 0:
            o_row[:] = 0
        elif w is not None:
            o_row = w[o_row]
    del w

    o_ts = _merge(ts, o_row, e_pos, e_ts)
    if len(mis_rows):
        ts_raw = ts.copy()
        ts_raw[mis_rows] = mis_raw_ts
        o_ts_raw = _merge(ts_raw, o_row, e_pos, 0)
        del ts_raw
    else:  # no timestamp snapped: ts_raw is ts (null where estimated)
        o_ts_raw = o_ts
    del ts
    o_day = None if n_days == 1 else day_index(o_ts, win_bounds)
    o_rule = _merge(rule, o_row, e_pos, e_rule)
    del rule
    o_quality = flags.quality(o_rule, _merge(edited, o_row, e_pos, False))
    del edited
    vee_rules = flags.rules_list_array(o_rule)
    flags_by_rule = flags.count_by_rule(o_rule)
    del o_rule
    quality = flags.quality_array(o_quality)
    o_gkey = _merge(gkey, o_row, e_pos, e_gkey)
    del gkey
    # sufficiency: output rows per (gkey, window day) and quality
    n_cells = n_gkeys * n_days
    o_code = o_gkey * 4 if o_day is None else (o_gkey * n_days + o_day) * 4
    del o_day
    o_code += o_quality
    del o_quality
    by_quality = np.bincount(o_code, minlength=n_cells * 4).reshape(n_cells, 4)
    del o_code
    channel = _channel_array(o_gkey & 1)
    meter_id = _dictionary((o_gkey >> 1).astype(np.int32), reg.ids)
    del o_gkey
    o_interval = _merge(interval, o_row, e_pos, dominant[e_gkey // 2].astype(np.int32))
    del interval
    o_kwh = _merge(kwh, o_row, e_pos, est.kwh[e])
    # no value edited: kwh_raw is kwh (null where estimated)
    o_kwh_raw = o_kwh if kwh is kwh_raw else _merge(kwh_raw, o_row, e_pos, 0.0)
    del kwh, kwh_raw
    # source_file through its dictionary codes: a take of the strings themselves would
    # concatenate the chunked column first
    codes, names = _string_codes(table["source_file"])
    if src is not None:
        codes = codes.take(src)
    del src
    codes = _merge(codes, o_row, e_pos, -1)
    del o_row
    source_file = pa.DictionaryArray.from_arrays(
        pa.array(codes, type=pa.int32(), mask=codes < 0), names
    )
    del codes
    cleaned = pa.table(
        {
            "meter_id": meter_id,
            "ts": pa.array(o_ts, type=pa.int64()).cast(UTC_TS),
            "interval_minutes": pa.array(o_interval, type=pa.int32()),
            "channel": channel,
            "kwh": pa.array(o_kwh, type=pa.float64()),
            "source_file": source_file,
            "quality": quality,
            "vee_rules": vee_rules,
            "vee_version": _constant(VEE_VERSION, n_out),
            "kwh_raw": pa.array(o_kwh_raw, type=pa.float64(), mask=is_est),
            "ts_raw": pa.array(o_ts_raw, type=pa.int64(), mask=is_est).cast(UTC_TS),
        }
    )
    cleaned = conform(cleaned, CLEANED_ARROW)

    # --- sufficiency --------------------------------------------------------------------
    counts = {
        name: by_quality[:, code].astype(np.int64)
        for name, code in (
            ("actual", flags.Q_A),
            ("estimated", flags.Q_E),
            ("edited", flags.Q_X),
            ("suspect", flags.Q_S),
        )
    }
    missing = np.bincount(slots.gkey * n_days + slots.day, minlength=n_cells)
    missing = missing - counts["estimated"]
    expected = grid.expected.ravel()
    total_rows = by_quality.sum(axis=1)
    cells = np.flatnonzero((expected > 0) | (total_rows > 0))
    c_gkey = cells // n_days
    day_numbers = np.array([(d - EPOCH).days for d in win_days], dtype=np.int32)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = counts["actual"][cells] / expected[cells]
    sufficiency = pa.table(
        {
            "meter_id": reg.ids.take(pa.array(c_gkey // 2)),
            "channel": _channel_array(c_gkey & 1),
            "local_day": pa.array(day_numbers[cells % n_days], type=pa.int32()).cast(pa.date32()),
            "expected": pa.array(expected[cells], type=pa.int64()),
            "actual": pa.array(counts["actual"][cells], type=pa.int64()),
            "estimated": pa.array(counts["estimated"][cells], type=pa.int64()),
            "edited": pa.array(counts["edited"][cells], type=pa.int64()),
            "suspect": pa.array(counts["suspect"][cells], type=pa.int64()),
            "missing": pa.array(missing[cells], type=pa.int64()),
            "sufficiency": pa.array(ratio, type=pa.float64(), mask=expected[cells] == 0),
        }
    )
    sufficiency = conform(sufficiency, SUFFICIENCY)

    return VeeResult(
        cleaned=cleaned,
        sufficiency=sufficiency,
        flags_by_rule=flags_by_rule,
        rows_in=rows_in,
        rows_out=cleaned.num_rows,
        rows_context=int(table.num_rows - rows_in),
        rows_dropped=dropped,
    )


def _merge(
    values: np.ndarray, o_row: np.ndarray | None, e_pos: np.ndarray, estimated: object
) -> np.ndarray:
    """Values of the output rows: the window rows' values (`o_row`: kept row of each output
    row, None for all rows in order), with the estimates' values at `e_pos`."""
    if o_row is None:
        return values
    merged = values.take(o_row)
    if len(e_pos):
        merged[e_pos] = estimated
    return merged


def _dictionary(codes: np.ndarray, values: pa.Array) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(codes, type=pa.int32()), values)


def _channel_array(codes: np.ndarray) -> pa.DictionaryArray:
    return _dictionary(codes.astype(np.int32), pa.array(CHANNELS, type=pa.string()))


def _constant(value: str, length: int) -> pa.DictionaryArray:
    return _dictionary(np.zeros(length, dtype=np.int32), pa.array([value]))
