"""Bring your own export: convert a head-end or market export into the canonical readings
contract and land it (`smartgrid land`).

An `ExportSpec` says how to read one export: which column holds the meter, the time and the
value (or `wide`: one column per meter), the unit (energy per interval, or average power over
the interval), whether a time label marks the interval start or end, the time zone of naive
timestamps and the interval length (given, or inferred per meter). `convert` turns the bytes of
one file into a `Conversion`: the canonical readings (`meter_id`, `ts` = UTC interval start,
`interval_minutes`, `channel`, `kwh`) plus what was found on the way (notes, bad rows).
`land` puts conversions into the landing zone and registers meters the registry does not know.

Time rules, vectorised over the whole file:
- a timestamp with an offset (`Z`, `+01:00`) is an instant and is used as it is;
- a naive timestamp is a wall-clock time in `tz`. A local time the clocks repeat (the fall-back
  hour) is resolved through UTC by order of appearance within its series (meter and channel):
  the first occurrence is before the change, the second after it. A local time the clocks skip
  (spring forward) is a bad row;
- with `time_label="end"` the label is the interval's nominal end on the export's clock, so the
  start's clock time is label - interval (the hour-ending convention of ISOs and head-ends:
  `HE03` is the hour starting 02:00, which does not exist on the spring-forward day, while `HE02`
  repeats in autumn). A start that falls into the spring-forward gap while its end label exists
  is an end-labelled instant: it is placed at the label's instant minus the interval.

Plain Python on pandas/pyarrow: no Dagster, no environment variables.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from smartgrid_assets import contract
from smartgrid_assets.ingest.files import INTERVALS, local_day, parse
from smartgrid_assets.ingest.validate import FileRejected, read_tabular
from smartgrid_assets.landing import LandedFile, LandingZone
from smartgrid_assets.landing.base import md5_hex
from smartgrid_assets.pipeline.land import arrival_key

ENERGY_UNITS = {"Wh": 1e-3, "kWh": 1.0, "MWh": 1e3}
POWER_UNITS = {"W": 1e-3, "kW": 1.0, "MW": 1e3}  # average power over the interval
UNITS = (*ENERGY_UNITS, *POWER_UNITS)
TIME_LABELS = ("start", "end")
FORMATS = ("csv", "parquet")
CHANNELS = contract.CHANNELS  # ("delivered", "received"): code 0 and 1, in sort order
CANONICAL = pa.schema(
    [contract.READINGS.field(n) for n in ("meter_id", "ts", "interval_minutes", "channel", "kwh")]
)
REGISTRY_PREFIX = "registry/"
EXAMPLES = 5  # bad-row examples kept per file

_NAT = np.iinfo(np.int64).min
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NS_PER_MIN = 60_000_000_000
_AWARE = re.compile(r"\d:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$")
# Naive layouts tried when ISO 8601 does not fit; day-first and month-first twins are told
# apart only when the data decides it (a day above 12), never guessed.
_LAYOUTS = [
    f"{date_part}{time_part}"
    for date_part in (
        "%d-%m-%Y",
        "%m-%d-%Y",
        "%d/%m/%Y",
        "%m/%d/%Y",
        "%d.%m.%Y",
        "%m.%d.%Y",
        "%Y/%m/%d",
        "%Y.%m.%d",
    )
    for time_part in (" %H:%M", " %H:%M:%S", "T%H:%M", "T%H:%M:%S", "", " %I:%M %p")
]
_TWINS = {
    a: a.replace("%d", "\0").replace("%m", "%d").replace("\0", "%m")
    for a in _LAYOUTS
    if "%d" in a and "%m" in a and not a.startswith("%Y")
}


class ByoError(ValueError):
    """An export cannot be converted: one line naming the file (and row and field)."""


# ---------------------------------------------------------------------------------------------
# The spec and the result
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportSpec:
    """How to read one export; the `smartgrid land` options."""

    time_col: str
    value_col: str | None = None
    meter_col: str | None = None
    received_col: str | None = None
    unit: str = "kWh"
    time_label: str = "start"
    tz: str = "UTC"
    interval_minutes: int | None = None
    format: str | None = None
    wide: bool = False
    meter_id: str | None = None
    time_format: str | None = None

    def checked(self, name: str) -> ExportSpec:
        """The spec with its unit spelt canonically; a bad option raises ByoError naming `name`."""

        def bad(field_: str, expected: str, found: object) -> ByoError:
            return ByoError(f"file {name} field {field_}: expected {expected}, found {found!r}")

        units = {u.lower(): u for u in UNITS}
        unit = units.get(str(self.unit).strip().lower())
        if unit is None:
            raise bad(
                f"{self.value_col or 'values'} (--unit)", "one of " + ", ".join(UNITS), self.unit
            )
        if self.time_label not in TIME_LABELS:
            raise bad(f"{self.time_col} (--time-label)", "start or end", self.time_label)
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise bad(
                f"{self.time_col} (--tz)", "an IANA time zone such as America/New_York", self.tz
            ) from None
        if self.interval_minutes is not None and self.interval_minutes not in INTERVALS:
            raise bad(
                "interval (--interval-minutes)",
                "one of " + ", ".join(map(str, INTERVALS)),
                self.interval_minutes,
            )
        if self.format is not None and self.format not in FORMATS:
            raise bad("(--format)", "csv or parquet", self.format)
        if self.wide:
            given = [
                opt
                for opt, value in (
                    ("--meter-col", self.meter_col),
                    ("--value-col", self.value_col),
                    ("--received-col", self.received_col),
                    ("--meter-id", self.meter_id),
                )
                if value
            ]
            if given:
                raise ByoError(
                    f"file {name}: --wide takes every column but the time column as a meter; "
                    f"drop {', '.join(given)}"
                )
        else:
            if not self.value_col:
                raise ByoError(f"file {name}: name the value column (--value-col) or use --wide")
            if bool(self.meter_col) == bool(self.meter_id):
                raise ByoError(
                    f"file {name}: give either --meter-col (a column of meter ids) or --meter-id "
                    "(one meter for the whole file)"
                )
        return replace(self, unit=unit)


@dataclass(frozen=True)
class Conversion:
    """One export in the canonical contract, and what was found on the way."""

    name: str
    readings: pa.Table  # CANONICAL columns, sorted by meter_id, channel, ts
    meters: list[str]
    notes: list[str]
    rows_in: int
    rows_out: int
    kwh_total: float
    bad_rows: int = 0
    bad_examples: list[str] = field(default_factory=list)
    intervals: dict[str, int] = field(default_factory=dict)  # meter -> interval minutes
    solar_meters: list[str] = field(default_factory=list)  # received channel or negative kWh
    first_ts: dict[str, datetime] = field(default_factory=dict)  # meter -> first interval start

    @property
    def stem(self) -> str:
        return safe_stem(self.name)

    def span(self) -> tuple[datetime, datetime]:
        """The first and the last interval start (UTC)."""
        bounds = pc.min_max(self.readings["ts"])
        return bounds["min"].as_py(), bounds["max"].as_py()

    def local_days(self, tz: str) -> tuple[date, date]:
        """The first and the last local day in `tz` that readings start on."""
        first, last = self.span()
        days = local_day(pa.array([first, last], contract.UTC_TS), tz).to_pylist()
        return days[0], days[1]

    def kwh_by_channel(self) -> dict[str, float]:
        sums = self.readings.group_by("channel").aggregate([("kwh", "sum")]).to_pylist()
        return {r["channel"]: r["kwh_sum"] for r in sorted(sums, key=lambda r: r["channel"])}

    def parquet_bytes(self) -> bytes:
        """The readings as Parquet (zstd); the same readings always give the same bytes."""
        sink = io.BytesIO()
        pq.write_table(self.readings, sink, compression="zstd")
        return sink.getvalue()

    def summary(self, tz: str) -> dict:
        """JSON-ready figures; local days in `tz` (the utility's, for partitions)."""
        first, last = self.span()
        first_day, last_day = self.local_days(tz)
        per_interval: dict[int, int] = {}
        for minutes in self.intervals.values():
            per_interval[minutes] = per_interval.get(minutes, 0) + 1
        return {
            "file": self.name,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "bad_rows": self.bad_rows,
            "bad_examples": self.bad_examples,
            "meters": len(self.meters),
            "meter_ids": self.meters,
            "meters_by_interval_minutes": dict(sorted(per_interval.items())),
            "first_ts": first.isoformat(),
            "last_ts": last.isoformat(),
            "tz": tz,
            "local_days": [first_day.isoformat(), last_day.isoformat()],
            "kwh_total": self.kwh_total,
            "kwh_by_channel": self.kwh_by_channel(),
            "notes": self.notes,
        }


def safe_stem(name: str) -> str:
    """A file name without its export suffixes, usable as a landing-key segment."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    for suffix in (".gz", ".csv", ".parquet", ".pq", ".txt"):
        if base.lower().endswith(suffix):
            base = base[: -len(suffix)]
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).lstrip(".")
    return base or "export"


# ---------------------------------------------------------------------------------------------
# Reading the file
# ---------------------------------------------------------------------------------------------


def read_export(data: bytes, name: str, fmt: str | None = None) -> pa.Table:
    """CSV (every column as text; `,` `;` tab or `|` separated; gzip by its magic bytes) or
    Parquet (typed), by `fmt`, else by the name's extension, else by the content."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise ByoError(f"file {name}: corrupt gzip data: {exc}") from None
    lower = name.lower().removesuffix(".gz")
    if fmt is None:
        parquet = lower.endswith((".parquet", ".pq")) or data[:4] == b"PAR1"
        fmt = "parquet" if parquet else "csv"
    if not data.strip():
        raise ByoError(f"file {name}: empty file")
    if fmt == "parquet":
        try:
            table = pq.read_table(io.BytesIO(data))
        except (pa.ArrowException, OSError) as exc:
            raise ByoError(f"file {name}: not a readable Parquet file: {exc}") from None
    else:
        table = _read_csv(data, name)
    if table.num_rows == 0:
        raise ByoError(f"file {name}: a header but no data rows")
    return table


def _read_csv(data: bytes, name: str) -> pa.Table:
    head = data[:65536].decode("utf-8", errors="replace").lstrip("\ufeff")
    first_line = head.splitlines()[0] if head.strip() else ""
    delimiter = max(",;\t|", key=first_line.count) if first_line else ","
    names = [n.strip() for n in next(csv.reader([first_line], delimiter=delimiter))]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ByoError(f"file {name} header: column(s) {', '.join(repeated)} appear twice")
    try:
        return pacsv.read_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=True,
                null_values=[""],
            ),
        )
    except pa.ArrowInvalid as exc:
        raise ByoError(f"file {name}: unreadable CSV: {str(exc).splitlines()[0]}") from None


def _column(table: pa.Table, col: str, option: str, name: str) -> pa.ChunkedArray:
    if col not in table.column_names:
        raise ByoError(
            f"file {name} header field {col}: expected a column {col!r} ({option}), "
            f"found {', '.join(table.column_names)}"
        )
    return table.column(col)


# ---------------------------------------------------------------------------------------------
# Bad rows
# ---------------------------------------------------------------------------------------------


def _shown(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
        return "an empty value"
    return repr(value.strip() if isinstance(value, str) else value)


class _Problems:
    """Bad fields of a file: which rows are bad and the first few examples."""

    def __init__(self, name: str, n_rows: int):
        self.name = name
        self.row_bad = np.zeros(n_rows, dtype=bool)
        self._examples: list[tuple[int, str, str, str]] = []

    def add(
        self, rows: np.ndarray, field_: str, expected: str, found: Callable[[int], object]
    ) -> None:
        """Rows (0-based file rows) whose `field_` is bad; `found(row)` gives the raw value."""
        if len(rows) == 0:
            return
        self.row_bad[rows] = True
        for row in np.unique(rows)[:EXAMPLES]:
            self._examples.append((int(row) + 1, field_, expected, _shown(found(int(row)))))

    @property
    def count(self) -> int:
        return int(self.row_bad.sum())

    def examples(self) -> list[str]:
        return [
            f"file {self.name} row {row} field {f}: expected {expected}, found {found}"
            for row, f, expected, found in sorted(self._examples)[:EXAMPLES]
        ]


# ---------------------------------------------------------------------------------------------
# Times
# ---------------------------------------------------------------------------------------------


@dataclass
class _Times:
    ns: np.ndarray  # int64: UTC where aware, wall-clock where naive; _NAT where unreadable
    aware: np.ndarray  # bool per row
    expected: str


def _to_ns(values: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    if isinstance(values, pd.Series):
        if getattr(values.dtype, "tz", None) is not None:
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        return values.astype("datetime64[ns]").to_numpy().view(np.int64)
    if values.tz is not None:
        values = values.tz_convert("UTC").tz_localize(None)
    return values.astype("datetime64[ns]").asi8


def _try(strings: pd.Series, layout: str, utc: bool) -> pd.Series:
    return pd.to_datetime(strings, format=layout, errors="coerce", utc=utc)


def _best_layout(strings: pd.Series, utc: bool, name: str, field_: str) -> tuple[pd.Series, str]:
    """Parse with ISO 8601 or the one layout that reads most values; refuse to guess between
    day-first and month-first when the data does not decide."""
    iso = _try(strings, "ISO8601", utc)
    failed = strings[iso.isna()]
    if failed.empty:
        return iso, "ISO 8601"
    suffix = "%z" if utc else ""
    sample = failed.drop_duplicates().iloc[:20]
    results = {"ISO 8601": iso}
    for layout in _LAYOUTS:
        if _try(sample, layout + suffix, utc).notna().any():
            results[layout] = _try(strings, layout + suffix, utc)
    best = max(results, key=lambda k: int(results[k].notna().sum()))
    twin = _TWINS.get(best)
    tie = twin in results and results[twin].notna().sum() == results[best].notna().sum()
    if tie and not results[twin].equals(results[best]):
        raise ByoError(
            f"file {name} field {field_}: cannot tell day-first from month-first dates "
            f"(no day above 12, e.g. {sample.iloc[0]!r}); pass --time-format, "
            f"e.g. '{best}' or '{twin}'"
        )
    return results[best], best


def _parse_times(col: pa.ChunkedArray, spec: ExportSpec, name: str, problems: _Problems) -> _Times:
    field_ = spec.time_col
    n = len(col)
    typ = col.type
    if pa.types.is_timestamp(typ) or pa.types.is_date(typ):
        if pa.types.is_date(typ):
            col = col.cast(pa.timestamp("s"))
            typ = col.type
        ns = _to_ns(col.to_pandas())
        aware = np.full(n, typ.tz is not None)
        expected = "a timestamp"
    elif pa.types.is_string(typ) or pa.types.is_large_string(typ):
        raw = col.to_pandas()
        strings = raw.str.strip()
        empty = (strings.isna() | (strings == "")).to_numpy()
        ns = np.full(n, _NAT, dtype=np.int64)
        aware = np.zeros(n, dtype=bool)
        present = np.flatnonzero(~empty)
        if spec.time_format:
            utc = "%z" in spec.time_format
            parsed = _try(strings.iloc[present], spec.time_format, utc)
            ok = parsed.notna().to_numpy()
            ns[present[ok]] = _to_ns(parsed[ok])
            aware[present] = utc
            expected = f"a timestamp in the layout {spec.time_format}"
        else:
            has_offset = strings.iloc[present].str.contains(_AWARE, na=False).to_numpy()
            layouts = []
            for utc in (True, False):
                idx = present[has_offset == utc]
                if len(idx) == 0:
                    continue
                parsed, layout = _best_layout(strings.iloc[idx], utc, name, field_)
                ok = parsed.notna().to_numpy()
                ns[idx[ok]] = _to_ns(parsed[ok])
                aware[idx] = utc
                layouts.append(layout + (" with offset" if utc and layout != "ISO 8601" else ""))
            layouts = list(dict.fromkeys(layouts))
            expected = "a timestamp" + (f" ({' or '.join(layouts)})" if layouts else "")
        problems.add(np.flatnonzero(empty), field_, "a timestamp", lambda i: None)
        unreadable = np.flatnonzero(~empty & (ns == _NAT))
        problems.add(unreadable, field_, expected, lambda i: raw.iloc[i])
        return _Times(ns=ns, aware=aware, expected=expected)
    else:
        raise ByoError(
            f"file {name} field {field_}: expected timestamps (text or a timestamp column), "
            f"found a column of {typ}"
        )
    problems.add(np.flatnonzero(ns == _NAT), field_, expected, lambda i: None)
    return _Times(ns=ns, aware=aware, expected=expected)


@dataclass
class _Localized:
    utc: np.ndarray
    nonexistent: np.ndarray
    repeated: int  # distinct repeated local times resolved by order of appearance
    single: int  # distinct ambiguous local times seen once (taken as before the change)


def _localize(wall: np.ndarray, series: np.ndarray, order: np.ndarray, tz: str) -> _Localized:
    """Wall-clock times in `tz` -> UTC; repeated local times by order of appearance per series."""
    uniq, inv = np.unique(wall, return_inverse=True)
    index = pd.DatetimeIndex(uniq.view("datetime64[ns]"))
    early = index.tz_localize(tz, ambiguous=np.ones(len(uniq), bool), nonexistent="NaT").asi8
    late = index.tz_localize(tz, ambiguous=np.zeros(len(uniq), bool), nonexistent="NaT").asi8
    early, late = np.minimum(early, late), np.maximum(early, late)
    missing_u = (early == _NAT) & (late == _NAT)
    ambiguous_u = (early != late) & ~missing_u
    utc = early[inv]
    repeated = single = 0
    ambiguous = ambiguous_u[inv]
    if ambiguous.any():
        sel = np.flatnonzero(ambiguous)
        frame = pd.DataFrame({"s": series[sel], "w": wall[sel], "o": order[sel], "i": sel})
        frame = frame.sort_values("o", kind="stable")
        rank = frame.groupby(["s", "w"], sort=False).cumcount().to_numpy()
        later = frame["i"].to_numpy()[rank >= 1]
        utc[later] = late[inv[later]]
        repeated_walls = set(frame["w"].to_numpy()[rank >= 1].tolist())
        repeated = len(repeated_walls)
        single = len(set(frame["w"].tolist()) - repeated_walls)
    return _Localized(utc=utc, nonexistent=missing_u[inv], repeated=repeated, single=single)


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------


def _parse_values(
    col: pa.ChunkedArray | pa.Array, name: str, field_: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Callable[[int], object]]:
    """(values, empty, bad, raw) of a value column: text or numeric."""
    typ = col.type
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        raw = col.to_pandas()
        strings = raw.str.strip()
        empty = (strings.isna() | (strings == "")).to_numpy()
        values = pd.to_numeric(strings, errors="coerce").to_numpy(dtype=np.float64)
        return values, empty, ~empty & ~np.isfinite(values), lambda i: raw.iloc[i]
    if pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        series = col.cast(pa.float64()).to_pandas()
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        empty = series.isna().to_numpy() if col.null_count else np.zeros(len(values), bool)
        return values, empty, ~empty & ~np.isfinite(values), lambda i: values[i]
    raise ByoError(f"file {name} field {field_}: expected numbers, found a column of {typ}")


# ---------------------------------------------------------------------------------------------
# convert
# ---------------------------------------------------------------------------------------------


@dataclass
class _Readings:
    """Candidate readings, one per (file row, channel) or wide cell."""

    row: np.ndarray  # int64, 0-based file row
    meter: np.ndarray  # int32 code into names (sorted)
    channel: np.ndarray  # int8 code into CHANNELS
    value: np.ndarray  # float64, as read
    bad: np.ndarray  # bool: a bad value or meter


def _long_readings(
    table: pa.Table, spec: ExportSpec, name: str, problems: _Problems
) -> tuple[_Readings, list[str]]:
    n = table.num_rows
    if spec.meter_id is not None:
        names = [spec.meter_id]
        codes = np.zeros(n, dtype=np.int32)
    else:
        col = _column(table, spec.meter_col, "--meter-col", name)
        raw = pc.utf8_trim_whitespace(col.cast(pa.string())).to_pandas()
        raw = raw.where(raw != "", None)
        factor, uniques = pd.factorize(raw, sort=True)
        names = [str(u) for u in uniques]
        codes = factor.astype(np.int32)
        missing = np.flatnonzero(codes < 0)
        problems.add(missing, spec.meter_col, "a meter id", lambda i: None)
    columns = [(spec.value_col, "--value-col", 0)]
    if spec.received_col:
        columns.append((spec.received_col, "--received-col", 1))
    parts = []
    for col_name, option, channel in columns:
        col = _column(table, col_name, option, name)
        values, empty, bad, raw_of = _parse_values(col, name, col_name)
        problems.add(np.flatnonzero(empty), col_name, "a number", lambda i: None)
        problems.add(np.flatnonzero(bad), col_name, "a finite number", raw_of)
        parts.append(
            _Readings(
                row=np.arange(n, dtype=np.int64),
                meter=codes,
                channel=np.full(n, channel, dtype=np.int8),
                value=values,
                bad=empty | bad | (codes < 0),
            )
        )
    return _concat(parts), names


def _wide_readings(
    table: pa.Table, spec: ExportSpec, name: str, problems: _Problems
) -> tuple[_Readings, list[str], int]:
    names = sorted(c for c in table.column_names if c != spec.time_col)
    if not names:
        raise ByoError(
            f"file {name} header: --wide needs one column per meter besides {spec.time_col}"
        )
    parts, skipped = [], 0
    for code, col_name in enumerate(names):
        values, empty, bad, raw_of = _parse_values(table.column(col_name), name, col_name)
        problems.add(np.flatnonzero(bad), col_name, "a finite number", raw_of)
        keep = np.flatnonzero(~empty)
        skipped += int(empty.sum())
        parts.append(
            _Readings(
                row=keep.astype(np.int64),
                meter=np.full(len(keep), code, dtype=np.int32),
                channel=np.zeros(len(keep), dtype=np.int8),
                value=values[keep],
                bad=bad[keep],
            )
        )
    return _concat(parts), names, skipped


def _concat(parts: Sequence[_Readings]) -> _Readings:
    return _Readings(
        **{
            k: np.concatenate([getattr(p, k) for p in parts])
            for k in _Readings.__dataclass_fields__
        }
    )


def _take(r: _Readings, mask: np.ndarray) -> _Readings:
    return _Readings(**{k: getattr(r, k)[mask] for k in _Readings.__dataclass_fields__})


def _infer_intervals(
    r: _Readings, label: np.ndarray, names: list[str], name: str, field_: str
) -> np.ndarray:
    """Minutes per meter code: the most common step between a meter's sorted distinct times."""
    frame = pd.DataFrame({"m": r.meter, "t": label}).drop_duplicates().sort_values(["m", "t"])
    m, t = frame["m"].to_numpy(), frame["t"].to_numpy()
    same = m[1:] == m[:-1]
    steps = pd.DataFrame({"m": m[1:][same], "d": (t[1:] - t[:-1])[same]})
    counts = steps.groupby(["m", "d"]).size().reset_index(name="n")
    mode = counts.sort_values(["m", "n", "d"], ascending=[True, False, True]).drop_duplicates("m")
    step_of = dict(zip(mode["m"].tolist(), mode["d"].tolist(), strict=True))
    minutes = np.zeros(len(names), dtype=np.int64)
    for code in np.unique(m).tolist():
        step = step_of.get(code)
        if step is None:
            raise ByoError(
                f"file {name} field {field_}: cannot infer the interval of meter {names[code]}: "
                "it has a single timestamp; pass --interval-minutes"
            )
        if step % _NS_PER_MIN or step // _NS_PER_MIN not in INTERVALS:
            raise ByoError(
                f"file {name} field {field_}: cannot infer the interval of meter {names[code]}: "
                f"its most common step is {step / _NS_PER_MIN:g} minutes, expected one of "
                f"{', '.join(map(str, INTERVALS))}; pass --interval-minutes"
            )
        minutes[code] = step // _NS_PER_MIN
    return minutes


def convert(data: bytes, name: str, spec: ExportSpec) -> Conversion:
    """One export file -> canonical readings. Raises ByoError (one line: file, row, field) when
    the file cannot be used at all; rows that fail on their own are counted and left out."""
    spec = spec.checked(name)
    table = read_export(data, name, spec.format)
    n = table.num_rows
    problems = _Problems(name, n)
    time_col = _column(table, spec.time_col, "--time-col", name)
    notes: list[str] = []
    if spec.wide:
        r, names, skipped = _wide_readings(table, spec, name, problems)
        if skipped:
            notes.append(f"{skipped} empty cells skipped (no reading)")
    else:
        r, names = _long_readings(table, spec, name, problems)
    times = _parse_times(time_col, spec, name, problems)

    label = times.ns[r.row]
    usable = ~r.bad & (label != _NAT)
    if spec.interval_minutes:
        minutes = np.full(len(names), spec.interval_minutes, dtype=np.int64)
    elif usable.any():
        timed = (label != _NAT) & (r.meter >= 0)  # a bad value does not make its time wrong
        minutes = _infer_intervals(_take(r, timed), label[timed], names, name, spec.time_col)
        inferred = sorted(set(minutes[np.unique(r.meter[usable])].tolist()))
        notes.append(f"interval inferred from the timestamps: {', '.join(map(str, inferred))} min")
    else:
        minutes = np.zeros(len(names), dtype=np.int64)
    step = minutes[r.meter] * _NS_PER_MIN

    # Interval starts in UTC.
    start = np.where(usable, label - step if spec.time_label == "end" else label, _NAT)
    aware = times.aware[r.row]
    naive = usable & ~aware
    if naive.any() and spec.tz != "UTC":
        idx = np.flatnonzero(naive)
        series = r.meter[idx].astype(np.int64) * len(CHANNELS) + r.channel[idx]
        loc = _localize(start[idx], series, r.row[idx], spec.tz)
        start[idx] = loc.utc
        gap = loc.nonexistent
        if spec.time_label == "end" and gap.any():
            gap_idx = idx[gap]
            end = _localize(label[gap_idx], np.zeros(len(gap_idx)), r.row[gap_idx], spec.tz)
            placed = ~end.nonexistent
            start[gap_idx[placed]] = end.utc[placed] - step[gap_idx[placed]]
            if placed.any():
                notes.append(
                    f"{int(placed.sum())} interval starts fell into the spring-forward gap; "
                    "placed by their end label's instant"
                )
            gap = gap.copy()
            gap[np.flatnonzero(gap)[placed]] = False
        if loc.repeated:
            notes.append(
                f"{loc.repeated} repeated local times at the DST fall-back in {spec.tz} "
                "resolved through UTC by order of appearance (first = before the change)"
            )
        if loc.single:
            notes.append(
                f"{loc.single} local times of a repeated DST hour seen once, taken as before "
                "the change"
            )
        gap_rows = r.row[idx[gap]]
        raw_times = time_col.to_pandas()
        problems.add(
            gap_rows,
            spec.time_col,
            f"a local time that exists in {spec.tz} (the clocks skip it at the spring-forward "
            "change)",
            lambda i: raw_times.iloc[i],
        )
        usable[idx[gap]] = False

    # A bad field spoils its whole row; in a wide file a bad cell only spoils its own reading.
    good = usable & ~(np.zeros(len(usable), bool) if spec.wide else problems.row_bad[r.row])
    if not good.any():
        first = problems.examples()[:1]
        raise ByoError(
            (first[0] + f" ({problems.count} bad rows; nothing to land)")
            if first
            else f"file {name}: no readings (every value is empty)"
        )

    r = _take(r, good)
    start = start[good]
    iv = minutes[r.meter]
    factor = ENERGY_UNITS.get(spec.unit)
    kwh = r.value * factor if factor is not None else r.value * POWER_UNITS[spec.unit] * iv / 60.0

    # Sort (meter, channel, ts), drop exact duplicate readings, note the rest.
    order = np.lexsort((kwh, start, r.channel, r.meter))
    meter, channel, start, kwh, iv = (a[order] for a in (r.meter, r.channel, start, kwh, iv))
    key_same = (meter[1:] == meter[:-1]) & (channel[1:] == channel[:-1]) & (start[1:] == start[:-1])
    exact = np.concatenate([[False], key_same & (kwh[1:] == kwh[:-1])])
    if exact.any():
        notes.append(
            f"{int(exact.sum())} exact duplicate row{'s' if exact.sum() != 1 else ''} "
            "(same meter, channel, interval and value) dropped"
        )
        meter, channel, start, kwh, iv = (a[~exact] for a in (meter, channel, start, kwh, iv))
        key_same = (
            (meter[1:] == meter[:-1]) & (channel[1:] == channel[:-1]) & (start[1:] == start[:-1])
        )
    if key_same.any():
        notes.append(
            f"{int(key_same.sum())} duplicate intervals with different values kept (VEE flags them)"
        )
    notes.extend(_gap_notes(meter, channel, start, iv))

    meter_names = pa.array(names, pa.string())
    readings = pa.table(
        {
            "meter_id": pa.DictionaryArray.from_arrays(pa.array(meter), meter_names).cast(
                pa.string()
            ),
            "ts": pa.array(start, pa.int64())
            .cast(pa.timestamp("ns", tz="UTC"))
            .cast(contract.UTC_TS, safe=False),
            "interval_minutes": pa.array(iv.astype(np.int32), pa.int32()),
            "channel": pa.DictionaryArray.from_arrays(
                pa.array(channel.astype(np.int32)), pa.array(list(CHANNELS))
            ).cast(pa.string()),
            "kwh": pa.array(kwh, pa.float64()),
        },
        schema=CANONICAL,
    )
    present = np.unique(meter)
    first_ts = pd.DataFrame({"m": meter, "t": start}).groupby("m")["t"].min()
    solar = set(np.unique(meter[(channel == 1) | (kwh < 0)]).tolist())
    if problems.count:
        notes.append(f"{problems.count} bad rows left out")
    return Conversion(
        name=name,
        readings=readings,
        meters=[names[c] for c in present.tolist()],
        notes=notes,
        rows_in=n,
        rows_out=readings.num_rows,
        kwh_total=float(kwh.sum()),
        bad_rows=problems.count,
        bad_examples=problems.examples(),
        intervals={names[c]: int(minutes[c]) for c in present.tolist()},
        solar_meters=[names[c] for c in sorted(solar)],
        first_ts={
            names[int(c)]: _EPOCH + timedelta(microseconds=int(t) // 1000)
            for c, t in first_ts.items()
        },
    )


def _gap_notes(
    meter: np.ndarray, channel: np.ndarray, start: np.ndarray, iv: np.ndarray
) -> list[str]:
    """Missing intervals inside each series' span (readings sorted by series and time)."""
    frame = pd.DataFrame({"m": meter, "c": channel, "t": start, "iv": iv})
    spans = frame.groupby(["m", "c"]).agg(
        first=("t", "min"), last=("t", "max"), n=("t", "nunique"), iv=("iv", "first")
    )
    expected = (spans["last"] - spans["first"]) // (spans["iv"] * _NS_PER_MIN) + 1
    missing = int((expected - spans["n"]).clip(lower=0).sum())
    return [f"{missing} missing intervals inside the span of the data"] if missing else []


# ---------------------------------------------------------------------------------------------
# Registry and landing
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Landed:
    key: str
    status: str  # "landed" (new) or "unchanged" (identical bytes were already there)
    name: str = ""


@dataclass(frozen=True)
class LandResult:
    readings: list[Landed]
    registry: Landed | None  # the new full registry file, when meters were added
    registry_base: str | None  # the registry file it extends (the newest landed)
    new_meters: list[str]
    notes: list[str]


def current_registry(landing: LandingZone) -> tuple[LandedFile | None, pa.Table, set[str]]:
    """The newest usable landed meters file (the one the `meters` asset loads): the file, its
    columns as text (every row kept, bad ones too) and the ids it registers."""
    files = [f for f in landing.list(REGISTRY_PREFIX) if "meters" in f.key.rsplit("/", 1)[-1]]
    for file in sorted(files, key=lambda f: (f.last_modified, f.key), reverse=True):
        data = landing.read_bytes(file.key)
        try:
            parsed = parse("meters", file.key, data, file.last_modified)
            raw = read_tabular(file.key, data)
        except FileRejected:
            continue
        return file, raw, set(parsed.table["meter_id"].to_pylist())
    return None, pa.table({n: pa.array([], pa.string()) for n in contract.METERS.names}), set()


def _as_text(col: pa.ChunkedArray) -> pa.ChunkedArray:
    typ = col.type
    if pa.types.is_string(typ):
        return col
    if pa.types.is_timestamp(typ):
        values = [
            None if v is None else v.isoformat() for v in col.cast(contract.UTC_TS).to_pylist()
        ]
        return pa.chunked_array([pa.array(values, pa.string())])
    if pa.types.is_boolean(typ):
        values = [None if v is None else ("true" if v else "false") for v in col.to_pylist()]
        return pa.chunked_array([pa.array(values, pa.string())])
    return col.cast(pa.string())


def registry_with(raw: pa.Table, new_rows: list[dict]) -> bytes:
    """The full registry CSV: the current file's rows as they are, then the new meters."""
    current = pa.table(
        {
            n: _as_text(raw.column(n))
            if n in raw.column_names
            else pa.nulls(raw.num_rows, pa.string())
            for n in contract.METERS.names
        }
    )
    names = contract.METERS.names
    sink = io.StringIO()
    writer = csv.writer(sink, lineterminator="\n")
    writer.writerow(names)
    for row in [*current.to_pylist(), *new_rows]:
        writer.writerow(["" if row.get(n) is None else row[n] for n in names])
    return sink.getvalue().encode()


def unknown_meter_rows(conversions: Sequence[Conversion], known: set[str]) -> list[dict]:
    """Registry rows (text) for meters no registry knows: class unknown, multiplier 1, installed
    at their first reading, solar iff a received channel or negative values, no topology."""
    first: dict[str, datetime] = {}
    solar: set[str] = set()
    for conv in conversions:
        for meter, ts in conv.first_ts.items():
            if meter not in known:
                first[meter] = min(ts, first.get(meter, ts))
        solar.update(conv.solar_meters)
    return [
        {
            "meter_id": meter,
            "customer_class": "unknown",
            "has_solar": "true" if meter in solar else "false",
            "multiplier": "1",
            "installed_at": first[meter].isoformat(),
        }
        for meter in sorted(first)
    ]


def _free_key(landing: LandingZone, make: Callable[[str], str], data: bytes) -> Landed:
    """The first key (`x`, `x_2`, `x_3`, ...) that is free or already holds these bytes."""
    etag, n = md5_hex(data), 1
    while True:
        key = make("" if n == 1 else f"_{n}")
        existing = landing.stat(key)
        if existing is None:
            return Landed(key=key, status="landed")
        if existing.etag == etag and existing.size == len(data):
            return Landed(key=key, status="unchanged")
        n += 1


def land(
    landing: LandingZone,
    conversions: Sequence[Conversion],
    strict: bool = False,
    arrived: date | None = None,
) -> LandResult:
    """Land converted exports at `readings/<arrival day>/<stem>.parquet`, and, for meters the
    current registry lacks, a full registry file `registry/<arrival day>/meters_<stem>.csv`
    (refused with `strict`: then nothing lands). The same exports again land nothing new."""
    stems: dict[str, str] = {}
    for conv in conversions:
        other = stems.setdefault(conv.stem, conv.name)
        if other != conv.name:
            raise ByoError(
                f"files {other} and {conv.name} would land under the same name {conv.stem}; "
                "rename one"
            )
    base, raw, known = current_registry(landing)
    new_rows = unknown_meter_rows(conversions, known)
    new_meters = [row["meter_id"] for row in new_rows]
    where = f"the meter registry {base.key}" if base else "a meter registry (none is landed)"
    if strict and new_meters:
        shown = ", ".join(new_meters[:20]) + (
            f" and {len(new_meters) - 20} more" if len(new_meters) > 20 else ""
        )
        raise ByoError(
            f"--strict: {len(new_meters)} meter{'s are' if len(new_meters) > 1 else ' is'} not "
            f"in {where}: {shown}; nothing landed"
        )
    notes = []
    payloads = [(conv, conv.parquet_bytes()) for conv in conversions]
    plans = [
        (
            conv,
            data,
            _free_key(
                landing,
                lambda v, s=conv.stem: arrival_key("readings", f"{s}{v}.parquet", arrived),
                data,
            ),
        )
        for conv, data in payloads
    ]
    for conv, _, plan in plans:
        if plan.key != arrival_key("readings", f"{conv.stem}.parquet", arrived):
            notes.append(
                f"{conv.name}: a different conversion of it landed earlier today; this one lands "
                f"as {plan.key} (where intervals overlap, the later file wins)"
            )
    registry = None
    if new_rows:
        contributing = [c.stem for c in conversions if set(c.meters) & set(new_meters)]
        stem = contributing[0] + (
            f"_and_{len(contributing) - 1}_more" if len(contributing) > 1 else ""
        )
        data = registry_with(raw, new_rows)
        registry = _free_key(
            landing, lambda v: arrival_key("registry", f"meters_{stem}{v}.csv", arrived), data
        )
        if registry.status == "landed":
            landing.put(registry.key, data)
    landed = []
    for conv, data, plan in plans:
        if plan.status == "landed":
            landing.put(plan.key, data)
        landed.append(Landed(key=plan.key, status=plan.status, name=conv.name))
    return LandResult(
        readings=landed,
        registry=registry,
        registry_base=base.key if base else None,
        new_meters=new_meters,
        notes=notes,
    )
