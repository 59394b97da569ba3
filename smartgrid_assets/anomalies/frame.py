"""What the detectors read: cleaned readings as observed, as sorted numpy arrays.

- quality `E` rows (estimates) and rows without `kwh_raw` are dropped: detection never sees a
  filled-in value, so a gap is a gap;
- the value is `kwh_raw` (as landed) for `A` and `S` rows; for `X` rows it is the corrected
  `kwh` (an edit fixes a known data error such as Wh sent as kWh, it invents nothing);
- rows flagged with any of `DetectorConfig.exclude_rules` (e.g. `future`, `install_period`)
  and rows at or after `window_end` are dropped, so a run never depends on later data;
- the VEE rules of each row are kept as a bit mask over the rule names present, for evidence
  and for per-detector exclusions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from smartgrid_assets.contract import CHANNELS, UTC_TS

US_PER_MINUTE = 60_000_000
US_PER_HOUR = 60 * US_PER_MINUTE
DELIVERED, RECEIVED = 0, 1

_NEEDED = ("meter_id", "ts", "interval_minutes", "channel", "kwh", "quality", "kwh_raw")


def to_us(value: dt.datetime | pd.Timestamp, name: str = "timestamp") -> int:
    """A timezone-aware instant as integer microseconds since the Unix epoch."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (got naive {value!r})")
    return int(ts.tz_convert("UTC").value // 1000)


def local_hour_weekday(ts: np.ndarray, tz: str) -> tuple[np.ndarray, np.ndarray]:
    """(local hour, local weekday Monday=0) of UTC instants in us: the offset only changes on
    whole hours, so pandas converts each UTC hour of the span once and the rows take theirs."""
    ts = np.asarray(ts, dtype=np.int64)
    if not len(ts):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    hour = ts // US_PER_HOUR
    first = int(hour.min())
    span = first + np.arange(int(hour.max()) - first + 1)
    grid = pd.DatetimeIndex(pd.to_datetime(span * US_PER_HOUR, unit="us", utc=True)).tz_convert(tz)
    at = hour - first
    hours = np.asarray(grid.hour, dtype=np.int64)
    days = np.asarray(grid.dayofweek, dtype=np.int64)
    return hours[at], days[at]


def ts_us(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A timestamp column as int64 microseconds (UTC)."""
    arr = pc.cast(pc.cast(column, UTC_TS), pa.int64())
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.int64)


@dataclass(frozen=True)
class Registry:
    """One row per meter (its latest installation): id and whether it has solar."""

    meter_ids: np.ndarray  # object, sorted unique
    has_solar: np.ndarray  # bool
    customer_class: np.ndarray  # object ("unknown" when absent)
    region: np.ndarray  # object ("" when absent)

    def lookup(self, meter_ids: np.ndarray) -> np.ndarray:
        """Index of each id in the registry, -1 when unknown."""
        pos = np.searchsorted(self.meter_ids, meter_ids)
        pos = np.clip(pos, 0, max(len(self.meter_ids) - 1, 0))
        if not len(self.meter_ids):
            return np.full(len(meter_ids), -1, dtype=np.int64)
        return np.where(self.meter_ids[pos] == meter_ids, pos, -1).astype(np.int64)


def registry(meters: pa.Table) -> Registry:
    missing = [c for c in ("meter_id", "has_solar") if c not in meters.column_names]
    if missing:
        raise ValueError(f"meters lacks columns {missing}")

    def text(name: str, default: str) -> pd.Series:
        if name not in meters.column_names:
            return pd.Series([default] * meters.num_rows, dtype=object)
        return pc.cast(meters[name], pa.string()).fill_null(default).to_pandas()

    frame = pd.DataFrame(
        {
            "meter_id": pc.cast(meters["meter_id"], pa.string()).to_pandas(),
            "customer_class": text("customer_class", "unknown"),
            "region": text("region", ""),
            "has_solar": pc.cast(meters["has_solar"], pa.bool_()).fill_null(False).to_pandas(),
            "installed": (
                ts_us(meters["installed_at"].fill_null(pa.scalar(0, UTC_TS)))
                if "installed_at" in meters.column_names
                else np.zeros(meters.num_rows, dtype=np.int64)
            ),
        }
    ).dropna(subset=["meter_id"])
    frame = frame.sort_values(["meter_id", "installed"]).drop_duplicates("meter_id", keep="last")
    return Registry(
        frame["meter_id"].to_numpy(dtype=object),
        frame["has_solar"].to_numpy(dtype=bool),
        frame["customer_class"].to_numpy(dtype=object),
        frame["region"].to_numpy(dtype=object),
    )


@dataclass(frozen=True)
class Observed:
    """Usable readings sorted by meter, channel, ts; `meter` indexes `meter_ids`."""

    meter_ids: np.ndarray  # object: id of each meter code
    has_solar: np.ndarray  # bool per meter code (False for meters not in the registry)
    has_received: np.ndarray  # bool per meter code: some received reading in the input
    customer_class: np.ndarray  # object per meter code ("unknown" when not in the registry)
    region: np.ndarray  # object per meter code ("" when unknown)
    meter: np.ndarray  # int64 code per row
    channel: np.ndarray  # int8: DELIVERED / RECEIVED
    ts: np.ndarray  # int64 us, interval start
    minutes: np.ndarray  # int64 interval length
    value: np.ndarray  # float64 kWh as observed
    rules: np.ndarray  # int64 bit mask over `rule_names`
    rule_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def end(self) -> np.ndarray:
        return self.ts + self.minutes * US_PER_MINUTE

    def rule_mask(self, names: tuple[str, ...] | list[str]) -> int:
        """Bit mask of the given rule names (names not present in the input are ignored)."""
        return sum(1 << i for i, n in enumerate(self.rule_names) if n in set(names))

    def rules_of(self, mask: int) -> list[str]:
        """Rule names set in a mask."""
        return [n for i, n in enumerate(self.rule_names) if mask >> i & 1]


def _rule_bits(column: pa.ChunkedArray, n: int) -> tuple[np.ndarray, tuple[str, ...]]:
    bits = np.zeros(n, dtype=np.int64)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    flat = pc.list_flatten(column)
    if len(flat) == 0:
        return bits, ()
    names = tuple(sorted(str(v) for v in pc.unique(flat.drop_null()).to_pylist()))
    if len(names) > 62:
        raise ValueError("more than 62 distinct VEE rule names")
    parents = np.asarray(pc.list_parent_indices(column).to_numpy(), dtype=np.int64)
    codes = np.asarray(
        pc.index_in(flat, value_set=pa.array(names, pa.string())).fill_null(63).to_numpy(),
        dtype=np.int64,
    )
    keep = codes < 63
    np.bitwise_or.at(bits, parents[keep], np.left_shift(1, codes[keep]))
    return bits, names


def observed(
    cleaned: pa.Table, meters: pa.Table, *, window_end: int, exclude_rules: tuple[str, ...]
) -> Observed:
    """Usable readings of `cleaned` (CLEANED_READINGS) before `window_end` (us)."""
    missing = [c for c in _NEEDED if c not in cleaned.column_names]
    if missing:
        raise ValueError(f"cleaned lacks columns {missing}")
    reg = registry(meters)
    quality = pc.cast(cleaned["quality"], pa.string())
    keep = pc.and_(
        pc.and_(pc.not_equal(quality, "E"), pc.is_valid(cleaned["kwh_raw"])),
        pc.and_(
            pc.less(pc.cast(cleaned["ts"], UTC_TS), pa.scalar(window_end, UTC_TS)),
            pc.is_in(pc.cast(cleaned["channel"], pa.string()), pa.array(CHANNELS)),
        ),
    )
    columns = list(_NEEDED) + (["vee_rules"] if "vee_rules" in cleaned.column_names else [])
    table = cleaned.select(columns).filter(keep.fill_null(False))
    # meter ids as codes in id order (a dictionary of distinct ids, not one string per row)
    ids = pc.cast(table["meter_id"], pa.string()).combine_chunks()
    encoded = pc.dictionary_encode(ids)
    names_of = np.asarray(encoded.dictionary.to_numpy(zero_copy_only=False), dtype=object)
    order_of = np.argsort(names_of, kind="stable")
    rank = np.empty(len(names_of), dtype=np.int64)
    rank[order_of] = np.arange(len(names_of))
    code = rank[np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)]
    channel = np.asarray(
        pc.equal(pc.cast(table["channel"], pa.string()), "received").to_numpy(zero_copy_only=False),
        dtype=np.int8,
    )
    ts = ts_us(table["ts"])
    n = table.num_rows
    in_order = n < 2 or bool(
        (
            (code[1:] > code[:-1])
            | ((code[1:] == code[:-1]) & (channel[1:] > channel[:-1]))
            | ((code[1:] == code[:-1]) & (channel[1:] == channel[:-1]) & (ts[1:] >= ts[:-1]))
        ).all()
    )
    if not in_order:
        order = np.lexsort((ts, channel, code))
        table = table.take(pa.array(order))
        code, channel, ts = code[order], channel[order], ts[order]
    if "vee_rules" in table.column_names:
        rules, names = _rule_bits(table["vee_rules"], n)
    else:
        rules, names = np.zeros(n, dtype=np.int64), ()
    minutes = np.asarray(table["interval_minutes"].to_numpy(), dtype=np.int64)
    raw = np.asarray(table["kwh_raw"].to_numpy(zero_copy_only=False), dtype=np.float64)
    kwh = np.asarray(table["kwh"].to_numpy(zero_copy_only=False), dtype=np.float64)
    edited = np.asarray(
        pc.equal(pc.cast(table["quality"], pa.string()), "X").to_numpy(zero_copy_only=False),
        dtype=bool,
    )
    value = np.where(edited, kwh, raw)
    drop_mask = sum(1 << i for i, name in enumerate(names) if name in set(exclude_rules))
    usable = (rules & drop_mask) == 0
    if not usable.all():
        code, channel, ts, minutes, value, rules = (
            a[usable] for a in (code, channel, ts, minutes, value, rules)
        )
    new = np.ones(len(code), dtype=bool)
    new[1:] = code[1:] != code[:-1]
    meter = np.cumsum(new) - 1
    meter_ids = names_of[order_of][code[new]]
    pos = reg.lookup(meter_ids)
    known = pos >= 0
    if len(reg.meter_ids):
        safe = np.maximum(pos, 0)
        has_solar = known & reg.has_solar[safe]
        customer_class = np.where(known, reg.customer_class[safe], "unknown").astype(object)
        region = np.where(known, reg.region[safe], "").astype(object)
    else:
        has_solar = np.zeros(len(meter_ids), dtype=bool)
        customer_class = np.full(len(meter_ids), "unknown", dtype=object)
        region = np.full(len(meter_ids), "", dtype=object)
    has_received = np.zeros(len(meter_ids), dtype=bool)
    has_received[meter[channel == RECEIVED]] = True
    return Observed(
        meter_ids=meter_ids,
        has_solar=has_solar,
        has_received=has_received,
        customer_class=customer_class,
        region=region,
        meter=meter.astype(np.int64),
        channel=channel,
        ts=ts,
        minutes=minutes,
        value=value,
        rules=rules,
        rule_names=names,
    )
