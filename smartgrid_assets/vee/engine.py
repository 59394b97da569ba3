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
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..contract import CHANNELS, CLEANED_READINGS, READINGS, UTC_TS, conform
from . import estimation, flags
from .arrays import SortedGroups, same_as_previous, segment_ids
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


@dataclass(frozen=True)
class VeeResult:
    """Outcome of one VEE run over a window.

    - `cleaned`: CLEANED_READINGS rows whose ts is in [window_start, window_end);
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
            rel = rel // self.unit
        return (np.asarray(gkey, dtype=np.int64) << self.tbits) | rel


# READINGS columns VEE needs; others (e.g. source_row) are optional.
_NEEDED = ("meter_id", "ts", "interval_minutes", "channel", "kwh", "source_file", "landed_at")


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


def _index_in(values: pa.ChunkedArray, value_set: pa.Array) -> np.ndarray:
    idx = pc.index_in(pc.cast(values, pa.string()), value_set=value_set)
    return np.asarray(idx.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


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
    raw_ts = _ts_us(table["ts"])
    raw_in_window = (raw_ts >= ws) & (raw_ts < we)
    rows_in = int(np.count_nonzero(raw_in_window))
    meter = _index_in(table["meter_id"], reg.ids)
    channel = _index_in(table["channel"], pa.array(CHANNELS, type=pa.string()))
    valid = (meter >= 0) & (channel >= 0)
    dropped = {
        "unknown_meter": int(np.count_nonzero(raw_in_window & (meter < 0))),
        "unknown_channel": int(np.count_nonzero(raw_in_window & (meter >= 0) & (channel < 0))),
    }

    # --- slots: snap, sort once, one reading per slot -----------------------------------
    all_valid = bool(valid.all())
    src = np.arange(table.num_rows) if all_valid else np.flatnonzero(valid)  # row in `table`
    ts_raw = raw_ts if all_valid else raw_ts[src]
    interval = _numpy(table["interval_minutes"], np.int64)
    kwh_raw = _numpy(table["kwh"], np.float64)
    gkey = meter * 2 + channel
    if not all_valid:
        interval, kwh_raw, gkey = interval[src], kwh_raw[src], gkey[src]
    ts, mis = alignment.snap_and_flag(ts_raw, interval)
    ts_lo = min(int(ts.min()), ws) if len(ts) else ws
    ts_hi = max(int(ts.max()), we) if len(ts) else we
    key_of = _Keyer(n_gkeys, ts_lo, ts_hi)
    key = key_of(gkey, ts)
    if len(key) > 1 and not bool(np.all(key[1:] >= key[:-1])):
        order = np.argsort(key, kind="stable")
        src, ts_raw, interval, kwh_raw, gkey, mis, ts, key = (
            a[order] for a in (src, ts_raw, interval, kwh_raw, gkey, mis, ts, key)
        )
    dup_flag = np.zeros(len(src), dtype=bool)
    align_flag = mis
    dropped["superseded"] = 0
    sub = duplicate.conflicting(key)
    if len(sub):
        rows = pa.array(src[sub])
        res = duplicate.resolve_slots(
            key[sub],
            ts_raw[sub],
            mis[sub],
            _ts_us(table["landed_at"].take(rows)),
            _source_rank(table["source_file"].take(rows)),
            _numpy(table["source_row"].take(rows).fill_null(0), np.int64),
            kwh_raw[sub],
        )
        keep = np.ones(len(src), dtype=bool)
        keep[sub] = res.keep
        dup_flag[sub] = res.duplicate
        align_flag = mis.copy()
        align_flag[sub] = res.alignment
        lost = sub[~res.keep]
        dropped["superseded"] = int(np.count_nonzero((ts[lost] >= ws) & (ts[lost] < we)))
        src, ts_raw, interval, kwh_raw, gkey, mis, ts, key, dup_flag, align_flag = (
            a[keep]
            for a in (src, ts_raw, interval, kwh_raw, gkey, mis, ts, key, dup_flag, align_flag)
        )
    n = len(src)
    rule = np.zeros(n, dtype=np.int32)
    rule[dup_flag] |= BIT["duplicate"]
    rule[align_flag] |= BIT["alignment"]
    edited = mis.copy()  # a snapped timestamp is an edit

    # --- row rules over the whole input ----------------------------------------------------
    m = gkey // 2
    received = (gkey & 1) == 1
    gid, _ = segment_ids(gkey)
    n_groups = int(gid[-1]) + 1 if n else 0
    dominant = interval_length.dominant_interval(
        m, interval, n_meters, config.default_interval_minutes
    )
    dominant[dominant <= 0] = config.default_interval_minutes  # garbage cannot define a grid
    rule[interval_length.wrong_length(interval, dominant[m])] |= BIT["interval_length"]
    rule[future.future(ts, now)] |= BIT["future"]
    outside = install_period.outside_install(ts, reg.installed_us[m], reg.removed_us[m])
    rule[outside] |= BIT["install_period"]
    rule[negative.negative(kwh_raw, reg.has_solar[m], received)] |= BIT["negative"]

    input_days, input_bounds = local_days(min(ts_lo, ws), max(ts_hi + 1, we), tz)
    day = day_index(ts, input_bounds)
    day_segment, _ = segment_ids(gid * (len(input_days) + 2) + (day + 1))
    raw_groups = SortedGroups(kwh_raw, gid, n_groups)
    unit = unit_error.wh_as_kwh(
        kwh_raw, interval, reg.high_kw[m], gid, n_groups, day_segment, config, raw_groups
    )
    rule[unit] |= BIT["unit.wh_as_kwh"]
    edited |= unit
    kwh = unit_error.correct(kwh_raw, unit) if unit.any() else kwh_raw

    kw = limits.average_kw(kwh, interval)
    rule[limits.limit_high(kw, reg.high_kw[m])] |= BIT["limit.high"]
    rule[limits.limit_low(kw, reg.low_kw[m], reg.has_solar[m])] |= BIT["limit.low"]
    same_prev = same_as_previous(gid)
    groups = None if unit.any() else raw_groups  # the values spike sees, already sorted
    rule[spike.spike(kwh, gid, n_groups, same_prev, config, groups)] |= BIT["spike"]
    del raw_groups, groups
    link = runs.contiguous(gid, ts, interval)
    delivered = ~received
    rule[runs.flat_line(kwh, link, interval, delivered, config)] |= BIT["flat_line"]
    has_received = np.zeros(n_meters, dtype=bool)
    has_received[m[received]] = True
    zero_eligible = delivered
    two_channel = np.flatnonzero(delivered & has_received[m] & (kwh == 0))
    if len(two_channel):
        busy = runs.exporting(key_of(gkey[two_channel] + 1, ts[two_channel]), key, kwh)
        zero_eligible = delivered.copy()
        zero_eligible[two_channel[busy]] = False
    rule[runs.zero_run(kwh, link, interval, zero_eligible, config)] |= BIT["zero_run"]
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
    interval_us = interval * US_PER_MINUTE
    slots = estimation.missing_slots(grid, gkey, ts, interval_us, win_bounds)
    in_win = (ts >= ws) & (ts < we)
    w = np.flatnonzero(in_win)
    w_day = day_index(ts[w], win_bounds)
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
    e = np.flatnonzero(est.method != estimation.NONE)
    e_rule = np.where(
        est.method[e] == estimation.LINEAR, BIT["estimate.linear"], BIT["estimate.profile"]
    ).astype(np.int64)

    # --- cleaned rows of the window --------------------------------------------------------
    e_gkey, e_ts = slots.gkey[e], slots.ts[e]  # sorted by (gkey, ts), like the rows
    n_w, n_e = len(w), len(e)
    if n_e:
        e_pos = np.searchsorted(key[w], key_of(e_gkey, e_ts)) + np.arange(n_e)
        w_slot = np.ones(n_w + n_e, dtype=bool)
        w_slot[e_pos] = False

    def merged(window_values: np.ndarray, estimate_values: np.ndarray) -> np.ndarray:
        if not n_e:
            return window_values
        out = np.empty(n_w + n_e, dtype=window_values.dtype)
        out[w_slot] = window_values
        out[e_pos] = estimate_values
        return out

    zeros_e = np.zeros(n_e, dtype=np.int64)
    o_gkey = merged(gkey[w], e_gkey)
    o_rule = merged(rule[w], e_rule.astype(rule.dtype))
    o_quality = flags.quality(o_rule, merged(edited[w], np.zeros(n_e, dtype=bool)))
    o_src = merged(src[w], zeros_e - 1)
    is_est = o_src < 0
    null = is_est if n_e else None
    o_day = merged(w_day, slots.day[e])
    cleaned = pa.table(
        {
            "meter_id": reg.ids.take(pa.array(o_gkey // 2)),
            "ts": pa.array(merged(ts[w], e_ts), type=pa.int64()).cast(UTC_TS),
            "interval_minutes": pa.array(
                merged(interval[w], dominant[e_gkey // 2]).astype(np.int32), type=pa.int32()
            ),
            "channel": _channel_array(o_gkey & 1),
            "kwh": pa.array(merged(kwh[w], est.kwh[e]), type=pa.float64()),
            "source_file": table["source_file"].take(pa.array(o_src, mask=null)),
            "quality": flags.quality_array(o_quality),
            "vee_rules": flags.rules_list_array(o_rule),
            "vee_version": _constant(VEE_VERSION, len(o_gkey)),
            "kwh_raw": pa.array(merged(kwh_raw[w], zeros_e.astype(np.float64)), mask=null),
            "ts_raw": pa.array(merged(ts_raw[w], zeros_e), type=pa.int64(), mask=null).cast(UTC_TS),
        }
    )
    cleaned = conform(cleaned, CLEANED_READINGS)

    # --- sufficiency --------------------------------------------------------------------
    n_cells = n_gkeys * n_days
    o_cell = o_gkey * n_days + o_day
    by_quality = np.bincount(o_cell * 4 + o_quality, minlength=n_cells * 4).reshape(n_cells, 4)
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
        flags_by_rule=flags.count_by_rule(o_rule),
        rows_in=rows_in,
        rows_out=cleaned.num_rows,
        rows_context=int(table.num_rows - rows_in),
        rows_dropped=dropped,
    )


def _channel_array(codes: np.ndarray) -> pa.Array:
    return pa.DictionaryArray.from_arrays(
        pa.array(codes.astype(np.int8), type=pa.int8()), pa.array(CHANNELS, type=pa.string())
    ).cast(pa.string())


def _constant(value: str, length: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(length, dtype=np.int8), type=pa.int8()), pa.array([value])
    ).cast(pa.string())
