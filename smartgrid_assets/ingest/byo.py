"""Bring your own export: convert a head-end or market export into the canonical readings
contract and land it (`smartgrid land`).

An `ExportSpec` says how to read one export: which column holds the meter, the time and the
value (or `wide`: one column per meter), the unit (energy per interval, or average power over
the interval), whether a time label marks the interval start or end, the time zone of naive
timestamps and the interval length (given, or inferred per meter). `convert` turns the bytes of
one file into a `Conversion`: the canonical readings (`meter_id`, `ts` = UTC interval start,
`interval_minutes`, `channel`, `kwh`) plus what was found on the way (notes, bad rows), and the
rows it could not use: one per bad field of a row and one per exact duplicate, with the field,
the value as found and the reason (`contract.REJECT_COLUMNS`) and the reading's columns where
known. Both land in one Parquet file, each row with the export row it came from
(`contract.SOURCE_ROW`), so the bad rows reach `rejected_readings` instead of vanishing.
`land` puts conversions into the landing zone and registers meters the registry does not know.

Time rules, vectorised over the whole file:
- a timestamp with an offset (`Z`, `+01:00`) is an instant and is used as it is;
- a naive timestamp is a wall-clock time in `tz`. A local time the clocks repeat (the fall-back
  hour) is placed by `dst_fold`: `first` / `second` take it as before / after the change,
  `reject` rejects it, and `order` (the default) lets the file's order decide, but only where
  that order can be trusted for the series (meter and channel): around the change, its readings
  from the hour before the repeated hour to the hour after it are consecutive in the file and in
  time order, except one step back of at most the DST shift within the repeated hour (sorted by
  UTC, as head-ends write: what follows the step is after the change) or none (sorted by wall
  time: of two equal times the second is after the change). Where the order cannot be trusted
  (a shuffled file; a file in chunks is judged around each change), and for a repeated time the
  file holds once, the repeated-hour rows are rejected, never guessed. A local time the clocks
  skip (spring forward) is a bad row;
- with `time_label="end"` the label is the interval's nominal end on the export's clock, so the
  start's clock time is label - interval (the hour-ending convention of ISOs and head-ends:
  `HE03` is the hour starting 02:00, which does not exist on the spring-forward day, while `HE02`
  repeats in autumn). A start that falls into the spring-forward gap while its end label exists
  is an end-labelled instant: it is placed at the label's instant minus the interval.

Plain Python on pandas/pyarrow: no Dagster, no environment variables.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import partial
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from smartgrid_assets import contract
from smartgrid_assets.anomalies import generation
from smartgrid_assets.contract import REJECT_COLUMNS, SOURCE_ROW
from smartgrid_assets.ingest.files import INTERVALS, constant, local_day, parse
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
# what lands: the canonical columns (null in a rejected row where not known), the export row,
# and why a row was rejected (null on good rows)
LANDED = pa.schema(
    [f.with_nullable(True) for f in CANONICAL]
    + [pa.field(SOURCE_ROW, pa.int64(), nullable=False)]
    + [pa.field(c, pa.string()) for c in REJECT_COLUMNS]
)
DST_FOLDS = ("order", "first", "second", "reject")
DECIMALS = (".", ",")
# channel labels of --channel-col (any case) and their channel codes
CHANNEL_LABELS = ("delivered", "received", "import", "export")
_CHANNEL_OF_LABEL = np.array([0, 1, 0, 1], dtype=np.int8)
CHANNEL_COL = "channel"  # a column of this name holds the channel unless one is given
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
    channel_col: str | None = None
    dst_fold: str = "order"
    decimal: str = "."
    delimiter: str | None = None  # None: the one of , ; tab | the header uses most

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
        if self.dst_fold not in DST_FOLDS:
            raise bad(
                f"{self.time_col} (--dst-fold)", "one of " + ", ".join(DST_FOLDS), self.dst_fold
            )
        if self.decimal not in DECIMALS:
            raise bad(f"{self.value_col or 'values'} (--decimal)", ". or ,", self.decimal)
        delimiter = "\t" if self.delimiter == "\\t" else self.delimiter
        if delimiter is not None and (len(delimiter) != 1 or delimiter in '\r\n"'):
            raise bad("(--delimiter)", "one character (\\t for a tab)", self.delimiter)
        if self.wide:
            given = [
                opt
                for opt, value in (
                    ("--meter-col", self.meter_col),
                    ("--value-col", self.value_col),
                    ("--received-col", self.received_col),
                    ("--channel-col", self.channel_col),
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
            if self.channel_col and self.received_col:
                raise ByoError(
                    f"file {name}: give either --channel-col (a column of channel labels) or "
                    "--received-col (a column of received values)"
                )
        return replace(self, unit=unit, delimiter=delimiter)


@dataclass(frozen=True)
class Conversion:
    """One export in the canonical contract, and what was found on the way."""

    name: str
    readings: pa.Table  # CANONICAL columns, sorted by meter_id, channel, ts: the good rows
    source_rows: pa.Array  # int64: the 1-based export row of each reading
    rejected: pa.Table  # LANDED: the rows that could not be used, with the reason
    meters: list[str]
    notes: list[str]
    rows_in: int
    rows_out: int
    kwh_total: float
    bad_rows: int = 0
    bad_examples: list[str] = field(default_factory=list)
    intervals: dict[str, int] = field(default_factory=dict)  # meter -> interval minutes
    solar_meters: list[str] = field(default_factory=list)  # received channel or regular export
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

    def landed(self) -> pa.Table:
        """What lands (LANDED): the readings, then the rejected rows, so ingestion can pass
        those on to rejected_readings."""
        n = self.readings.num_rows
        good = pa.table(
            [
                *self.readings.columns,
                self.source_rows,
                *(pa.nulls(n, pa.string()) for _ in REJECT_COLUMNS),
            ],
            schema=LANDED,
        )
        return pa.concat_tables([good, self.rejected])

    def parquet_bytes(self) -> bytes:
        """`landed()` as Parquet (zstd); the same export always gives the same bytes."""
        sink = io.BytesIO()
        pq.write_table(self.landed(), sink, compression="zstd")
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
            "rejected_rows": self.rejected.num_rows,
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


def read_export(
    data: bytes, name: str, fmt: str | None = None, delimiter: str | None = None
) -> pa.Table:
    """CSV (every column as text; separated by `delimiter`, else by whichever of `,` `;` tab or
    `|` the header uses most; a UTF-8 byte order mark ignored; gzip by its magic bytes) or
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
        table = _read_csv(data.removeprefix(codecs.BOM_UTF8), name, delimiter)
    if table.num_rows == 0:
        raise ByoError(f"file {name}: a header but no data rows")
    return table


def _read_csv(data: bytes, name: str, delimiter: str | None) -> pa.Table:
    head = data[:65536].decode("utf-8", errors="replace")
    first_line = head.splitlines()[0] if head.strip() else ""
    if delimiter is None:
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


_PROBLEM = pa.schema(
    [("row", pa.int64()), ("field", pa.string()), ("value", pa.string()), ("reason", pa.string())]
)


class _Problems:
    """Bad fields of a file: which rows are bad, and each bad (row, field) with the value as
    found and what was expected, each to land as a rejected row."""

    def __init__(self, name: str, n_rows: int):
        self.name = name
        self.row_bad = np.zeros(n_rows, dtype=bool)
        self._parts: list[pa.Table] = []

    def add(
        self,
        rows: np.ndarray,
        field_: str,
        expected: str | np.ndarray,
        found: pa.ChunkedArray | None,
    ) -> None:
        """Rows (0-based file rows, each once) whose `field_` is bad: what was `expected` (one
        text, or one per row) and the column the values are taken from (None: empty)."""
        n = len(rows)
        if n == 0:
            return
        self.row_bad[rows] = True
        value = pa.nulls(n, pa.string()) if found is None else found.take(rows).cast(pa.string())
        reason = expected if not isinstance(expected, str) else constant(expected, pa.string(), n)
        part = {"row": rows, "field": constant(field_, pa.string(), n), "value": value}
        self._parts.append(pa.table({**part, "reason": reason}, schema=_PROBLEM))

    @property
    def count(self) -> int:
        return int(self.row_bad.sum())

    def table(self) -> pa.Table:
        """Every bad (row, field), by row and field."""
        if not self._parts:
            return _PROBLEM.empty_table()
        return pa.concat_tables(self._parts).sort_by([("row", "ascending"), ("field", "ascending")])

    def examples(self) -> list[str]:
        return [
            f"file {self.name} row {p['row'] + 1} field {p['field']}: expected {p['reason']}, "
            f"found {_shown(p['value'])}"
            for p in self.table().slice(0, EXAMPLES).to_pylist()
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
        problems.add(np.flatnonzero(empty), field_, "a timestamp", None)
        problems.add(np.flatnonzero(~empty & (ns == _NAT)), field_, expected, col)
        return _Times(ns=ns, aware=aware, expected=expected)
    else:
        raise ByoError(
            f"file {name} field {field_}: expected timestamps (text or a timestamp column), "
            f"found a column of {typ}"
        )
    problems.add(np.flatnonzero(ns == _NAT), field_, expected, None)
    return _Times(ns=ns, aware=aware, expected=expected)


def _localize(wall: np.ndarray, tz: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wall-clock times in `tz` -> (UTC if before a change, UTC if after it, skipped): the two
    differ only for a local time the clocks repeat; both are NaT for one they skip."""
    uniq, inv = np.unique(wall, return_inverse=True)
    index = pd.DatetimeIndex(uniq.view("datetime64[ns]"))
    early = index.tz_localize(tz, ambiguous=np.ones(len(uniq), bool), nonexistent="NaT").asi8
    late = index.tz_localize(tz, ambiguous=np.zeros(len(uniq), bool), nonexistent="NaT").asi8
    early, late = np.minimum(early, late), np.maximum(early, late)
    return early[inv], late[inv], ((early == _NAT) & (late == _NAT))[inv]


def _order_folds(
    wall: np.ndarray, series: np.ndarray, row: np.ndarray, ambiguous: np.ndarray, shift: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """`--dst-fold order`: per naive reading, whether it is after the change, or refused as
    out of order, or refused as seen once; and how many distinct repeated local times the order
    placed after the change.

    The order is trusted per series and fall-back change only where the series' readings from
    the hour before the repeated hour to the hour after it are consecutive in the file and in
    time order, but for at most one step back of at most the DST shift within the repeated hour.
    With the step back, the readings after it are after the change; without, the second of two
    equal times is, and a time seen once cannot be placed. Elsewhere every repeated-hour
    reading is refused: a shuffled file's order says nothing about which side of the change a
    reading is on."""
    n = len(wall)
    after, disordered, once = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
    if not ambiguous.any():
        return after, disordered, once, 0
    # the fall-back changes: runs of repeated local times, each with the hour around it
    times, first = np.unique(wall[ambiguous], return_index=True)
    shifts = shift[ambiguous][first]
    starts = np.flatnonzero(np.r_[True, np.diff(times) > shifts[1:]])
    lo = times[starts] - shifts[starts]
    hi = np.maximum.reduceat(times, starts) + shifts[starts]
    change = np.searchsorted(lo, wall, side="right") - 1
    near = np.flatnonzero((change >= 0) & (wall <= hi[np.maximum(change, 0)]))
    # position of each reading in its series' file order
    position = np.empty(n, np.int64)
    position[np.lexsort((row, series))] = np.arange(n)
    m = near[np.lexsort((position[near], change[near], series[near]))]
    s, c, w, a = series[m], change[m], wall[m], ambiguous[m]
    same = np.r_[False, (s[1:] == s[:-1]) & (c[1:] == c[:-1])]
    step = np.r_[0, np.diff(w)]
    back = same & (step < 0)
    fits = back & a & np.r_[False, a[:-1]] & (-step <= shift[m])
    gapped = same & (np.r_[1, np.diff(position[m])] != 1)
    group = np.cumsum(~same) - 1
    backs = np.bincount(group, weights=back)
    trusted = (np.bincount(group, weights=gapped | (back & ~fits)) == 0) & (backs <= 1)
    stepped = (backs == 1)[group]
    behind = np.cumsum(back)
    behind = behind - behind[np.flatnonzero(~same)][group]
    tie = same & (step == 0)
    placed = a & trusted[group]
    late = placed & np.where(stepped, behind > 0, tie)
    after[m], disordered[m] = late, a & ~trusted[group]
    once[m] = placed & ~stepped & ~tie & ~np.r_[tie[1:], False]
    return after, disordered, once, len(np.unique(w[late]))


def _fold_reasons(label: np.ndarray, spec: ExportSpec, why: str) -> np.ndarray:
    """Why readings at repeated local times (their wall-clock labels) are rejected, one text
    per label."""
    walls = pd.DatetimeIndex(label.view("datetime64[ns]"))
    clock = walls.strftime("%H:%M") + (" (an interval end)" if spec.time_label == "end" else "")
    text = "an unambiguous local time: " + clock + " occurs twice on " + walls.strftime("%Y-%m-%d")
    return np.asarray(text + f" in {spec.tz}{why}", dtype=object)


def _to_utc(
    start: np.ndarray,
    label: np.ndarray,
    step: np.ndarray,
    r: _Readings,
    naive: np.ndarray,
    spec: ExportSpec,
    time_col: pa.ChunkedArray,
    problems: _Problems,
) -> list[str]:
    """Naive interval starts (wall clock in `spec.tz`) -> UTC, in place, and notes on the way.
    Local times the clocks skip, and repeated ones `spec.dst_fold` does not place, become bad
    rows (start NaT)."""
    notes = []
    idx = np.flatnonzero(naive)
    early, late, gap = _localize(start[idx], spec.tz)
    ambiguous = early != late
    pass_fold = "pass --dst-fold first|second"
    if spec.dst_fold == "order":
        series = r.meter[idx].astype(np.int64) * len(CHANNELS) + r.channel[idx]
        after, disordered, once, repeated = _order_folds(
            start[idx], series, r.row[idx], ambiguous, late - early
        )
        refusals = [
            (disordered, f" and the file is not in time order; {pass_fold}"),
            (once, f" and the file has it once (its order cannot tell which); {pass_fold}"),
        ]
        if repeated:
            notes.append(
                f"{repeated} repeated local times at the DST fall-back in {spec.tz} resolved "
                "through UTC by the file's order (first = before the change)"
            )
        for refused, why in (
            (disordered, "the file is not in time order around the DST fall-back"),
            (once, "each is in the file once and its order cannot tell which it is"),
        ):
            if refused.any():
                notes.append(
                    f"{int(refused.sum())} readings at repeated local times in {spec.tz} "
                    f"rejected: {why}; {pass_fold}"
                )
    else:
        after = ambiguous & (spec.dst_fold == "second")
        refusals = [(ambiguous & (spec.dst_fold == "reject"), " (--dst-fold reject)")]
        if ambiguous.any():
            taken = {"first": "taken as before the change", "second": "taken as after it"}
            notes.append(
                f"{int(ambiguous.sum())} readings at repeated local times in {spec.tz} "
                f"{taken.get(spec.dst_fold, 'rejected')} (--dst-fold {spec.dst_fold})"
            )
    start[idx] = np.where(after, late, early)
    if spec.time_label == "end" and gap.any():
        gap_idx = idx[gap]
        end, _, end_gap = _localize(label[gap_idx], spec.tz)
        placed = ~end_gap
        start[gap_idx[placed]] = end[placed] - step[gap_idx[placed]]
        if placed.any():
            notes.append(
                f"{int(placed.sum())} interval starts fell into the spring-forward gap; "
                "placed by their end label's instant"
            )
        gap = gap.copy()
        gap[np.flatnonzero(gap)[placed]] = False
    problems.add(
        np.unique(r.row[idx[gap]]),
        spec.time_col,
        f"a local time that exists in {spec.tz} (the clocks skip it at the spring-forward change)",
        time_col,
    )
    for refused, why in refusals:
        rows, first = np.unique(r.row[idx[refused]], return_index=True)
        reasons = _fold_reasons(label[idx[refused]][first], spec, why)
        problems.add(rows, spec.time_col, reasons, time_col)
        start[idx[refused]] = _NAT
    return notes


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------


def _number(decimal: str) -> str:
    return "a finite number" + (" with a decimal comma (--decimal ,)" if decimal == "," else "")


def _parse_values(
    col: pa.ChunkedArray, name: str, field_: str, decimal: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, empty, bad) of a value column: text (with `decimal` as the decimal mark; with a
    comma, a point is bad: it may be a thousands separator) or numeric."""
    typ = col.type
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        strings = col.to_pandas().str.strip()
        empty = (strings.isna() | (strings == "")).to_numpy()
        pointed = np.zeros(len(strings), bool)
        if decimal == ",":
            pointed = strings.str.contains(".", regex=False, na=False).to_numpy()
            strings = strings.str.replace(",", ".", regex=False)
        values = pd.to_numeric(strings, errors="coerce").to_numpy(dtype=np.float64)
        return values, empty, ~empty & (~np.isfinite(values) | pointed)
    if pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        series = col.cast(pa.float64()).to_pandas()
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        empty = series.isna().to_numpy() if col.null_count else np.zeros(len(values), bool)
        return values, empty, ~empty & ~np.isfinite(values)
    raise ByoError(f"file {name} field {field_}: expected numbers, found a column of {typ}")


# ---------------------------------------------------------------------------------------------
# convert
# ---------------------------------------------------------------------------------------------


@dataclass
class _Readings:
    """Candidate readings, one per (file row, value column) or wide cell: parts of one row per
    file row each, so candidate `part * rows + row` is that row's reading of that part."""

    row: np.ndarray  # int64, 0-based file row
    meter: np.ndarray  # int32 code into names (sorted); -1 where unknown
    channel: np.ndarray  # int8 code into CHANNELS; -1 where unknown
    value: np.ndarray  # float64, as read
    bad: np.ndarray  # bool: a bad value, meter or channel
    present: np.ndarray  # bool: False for an empty cell of a wide file (no reading)


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
        problems.add(np.flatnonzero(codes < 0), spec.meter_col, "a meter id", None)
    labelled = np.zeros(n, dtype=np.int8)
    if spec.channel_col:
        col = _column(table, spec.channel_col, "--channel-col", name)
        labelled = _channel_codes(col, spec.channel_col, problems)
    columns = [(spec.value_col, "--value-col", labelled)]
    if spec.received_col:
        columns.append((spec.received_col, "--received-col", np.ones(n, dtype=np.int8)))
    parts = []
    for col_name, option, channel in columns:
        col = _column(table, col_name, option, name)
        values, empty, bad = _parse_values(col, name, col_name, spec.decimal)
        problems.add(np.flatnonzero(empty), col_name, "a number", None)
        problems.add(np.flatnonzero(bad), col_name, _number(spec.decimal), col)
        parts.append(
            _Readings(
                row=np.arange(n, dtype=np.int64),
                meter=codes,
                channel=channel,
                value=values,
                bad=empty | bad | (codes < 0) | (channel < 0),
                present=np.ones(n, dtype=bool),
            )
        )
    return _concat(parts), names


def _channel_codes(col: pa.ChunkedArray, field_: str, problems: _Problems) -> np.ndarray:
    """Channel codes of a column of labels (CHANNEL_LABELS, any case); -1 and a bad row where
    a label is none of them."""
    labels = pc.utf8_lower(pc.utf8_trim_whitespace(col.cast(pa.string())))
    index = pc.fill_null(pc.index_in(labels, value_set=pa.array(CHANNEL_LABELS)), -1).to_numpy()
    codes = np.where(index >= 0, _CHANNEL_OF_LABEL[index], -1).astype(np.int8)
    expected = "a channel: delivered or received (or import or export)"
    problems.add(np.flatnonzero(codes < 0), field_, expected, col)
    return codes


def _wide_readings(
    table: pa.Table, spec: ExportSpec, name: str, problems: _Problems
) -> tuple[_Readings, list[str], int]:
    names = sorted(c for c in table.column_names if c != spec.time_col)
    if not names:
        raise ByoError(
            f"file {name} header: --wide needs one column per meter besides {spec.time_col}"
        )
    n, parts, skipped = table.num_rows, [], 0
    for code, col_name in enumerate(names):
        col = table.column(col_name)
        values, empty, bad = _parse_values(col, name, col_name, spec.decimal)
        problems.add(np.flatnonzero(bad), col_name, _number(spec.decimal), col)
        skipped += int(empty.sum())
        parts.append(
            _Readings(
                row=np.arange(n, dtype=np.int64),
                meter=np.full(n, code, dtype=np.int32),
                channel=np.zeros(n, dtype=np.int8),
                value=values,
                bad=bad,
                present=~empty,
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
    """One export file -> canonical readings, and the rows it cannot use as rejected rows (to
    land with them, so they reach rejected_readings). Raises ByoError (one line: file, row,
    field) when the file cannot be used at all or has no good row."""
    spec = spec.checked(name)
    table = read_export(data, name, spec.format, spec.delimiter)
    notes: list[str] = []
    if (
        not (spec.wide or spec.channel_col or spec.received_col)
        and CHANNEL_COL in table.column_names
        and CHANNEL_COL not in (spec.time_col, spec.value_col, spec.meter_col)
    ):
        spec = replace(spec, channel_col=CHANNEL_COL)
        notes.append(f"channels as labelled in the column {CHANNEL_COL!r}")
    n = table.num_rows
    problems = _Problems(name, n)
    time_col = _column(table, spec.time_col, "--time-col", name)
    if spec.wide:
        r, names, skipped = _wide_readings(table, spec, name, problems)
        if skipped:
            notes.append(f"{skipped} empty cells skipped (no reading)")
    else:
        r, names = _long_readings(table, spec, name, problems)
    times = _parse_times(time_col, spec, name, problems)

    label = times.ns[r.row]
    # a bad value does not make its time wrong: such readings count for intervals and DST order
    timed = r.present & (r.meter >= 0) & (r.channel >= 0) & (label != _NAT)
    if spec.interval_minutes:
        minutes = np.full(len(names), spec.interval_minutes, dtype=np.int64)
    elif (timed & ~r.bad).any():
        minutes = _infer_intervals(_take(r, timed), label[timed], names, name, spec.time_col)
        inferred = sorted(set(minutes[np.unique(r.meter[timed & ~r.bad])].tolist()))
        notes.append(f"interval inferred from the timestamps: {', '.join(map(str, inferred))} min")
    else:
        minutes = np.zeros(len(names), dtype=np.int64)
    iv = np.append(minutes, 0)[r.meter]  # 0 where the meter is unknown
    step = iv * _NS_PER_MIN

    # Interval starts in UTC.
    start = np.where(timed, label - step if spec.time_label == "end" else label, _NAT)
    naive = timed & ~times.aware[r.row]
    if naive.any() and spec.tz != "UTC":
        notes.extend(_to_utc(start, label, step, r, naive, spec, time_col, problems))

    factor = ENERGY_UNITS.get(spec.unit)
    kwh = r.value * factor if factor is not None else r.value * POWER_UNITS[spec.unit] * iv / 60.0
    if factor is None:
        kwh[iv == 0] = np.nan  # power of an unknown meter: its interval is not known
    # A bad field spoils its whole row; in a wide file a bad cell only spoils its own reading.
    good = timed & ~r.bad & (start != _NAT)
    if not spec.wide:
        good &= ~problems.row_bad[r.row]
    if not good.any():
        first = problems.examples()[:1]
        raise ByoError(
            (first[0] + f" ({problems.count} bad rows; nothing to land)")
            if first
            else f"file {name}: no readings (every value is empty)"
        )

    # Good readings sorted (meter, channel, ts); exact duplicates are rejected, the rest noted.
    g = np.flatnonzero(good)
    g = g[np.lexsort((kwh[g], start[g], r.channel[g], r.meter[g]))]
    key = (r.meter[g], r.channel[g], start[g])
    exact = np.r_[False, np.logical_and.reduce([k[1:] == k[:-1] for k in (*key, kwh[g])])]
    kept = g[np.maximum.accumulate(np.where(exact, 0, np.arange(len(g))))]
    duplicates, duplicated = g[exact], r.row[kept[exact]] + 1
    if exact.any():
        notes.append(
            f"{int(exact.sum())} exact duplicate row{'s' if exact.sum() != 1 else ''} "
            "(same meter, channel, interval and value) landed as rejected rows"
        )
    g = g[~exact]
    meter, channel, ts = r.meter[g], r.channel[g], start[g]
    key_same = (meter[1:] == meter[:-1]) & (channel[1:] == channel[:-1]) & (ts[1:] == ts[:-1])
    if key_same.any():
        notes.append(
            f"{int(key_same.sum())} duplicate intervals with different values kept (VEE flags them)"
        )
    notes.extend(_gap_notes(meter, channel, ts, iv[g]))
    readings = pa.table(
        {
            "meter_id": _named(meter, names),
            "ts": _instants(ts),
            "interval_minutes": pa.array(iv[g].astype(np.int32), pa.int32()),
            "channel": _named(channel, CHANNELS),
            "kwh": pa.array(kwh[g], pa.float64()),
        },
        schema=CANONICAL,
    )

    # Rejected rows: each bad field of a row (with its reading where the field is a reading's
    # value, or the row holds one reading), and each exact duplicate.
    bad = problems.table()
    rows = bad["row"].to_numpy()
    value_part = (
        {col: k for k, col in enumerate(names)}
        if spec.wide
        else {col: k for k, col in enumerate([spec.value_col, spec.received_col]) if col}
    )
    parts = len(r.row) // n
    part = pd.Series(bad["field"].to_numpy(zero_copy_only=False)).map(value_part)
    part = part.fillna(0 if parts == 1 else -1).to_numpy(np.int64)
    reject = partial(
        _rejected,
        r,
        start=start,
        kwh=kwh,
        minutes=np.append(minutes, 0),
        row_meter=np.full(n, -1, np.int32) if spec.wide else r.meter[:n],
        names=names,
    )
    k = len(duplicates)
    duplicate = pc.binary_join_element_wise(
        "exact duplicate of row ",
        pa.array(duplicated).cast(pa.string()),
        ": same meter, channel, interval and value",
        "",
    )
    rejected = pa.concat_tables(
        [
            reject(
                np.where(part >= 0, part * n + rows, -1),
                rows,
                [bad["field"], bad["value"], bad["reason"]],
            ),
            reject(
                duplicates,
                r.row[duplicates],
                [
                    constant(spec.time_col, pa.string(), k),
                    time_col.take(r.row[duplicates]).cast(pa.string()),
                    duplicate,
                ],
            ),
        ]
    ).sort_by([(SOURCE_ROW, "ascending"), (REJECT_COLUMNS[0], "ascending")])
    present = np.unique(meter)
    first_ts = pd.DataFrame({"m": meter, "t": ts}).groupby("m")["t"].min()
    solar = set(np.unique(meter[channel == 1]).tolist())
    n_codes = len(names)
    delivered = channel == 0
    with_data, negative_days = generation.export_days(
        meter[delivered], ts[delivered] // 1000, kwh[g][delivered] < 0, n_codes
    )
    for code in np.flatnonzero(generation.exports_regularly(with_data, negative_days)):
        if int(code) not in solar:
            solar.add(int(code))
            notes.append(
                f"meter {names[code]} exported (negative values) on {negative_days[code]} of "
                f"its {with_data[code]} days: registered as having generation (has_solar)"
            )
    if problems.count:
        notes.append(
            f"{problems.count} bad rows landed as rejected rows (they go to rejected_readings)"
        )
    return Conversion(
        name=name,
        readings=readings,
        source_rows=pa.array(r.row[g] + 1, pa.int64()),
        rejected=rejected,
        meters=[names[c] for c in present.tolist()],
        notes=notes,
        rows_in=n,
        rows_out=readings.num_rows,
        kwh_total=float(kwh[g].sum()),
        bad_rows=problems.count,
        bad_examples=problems.examples(),
        intervals={names[c]: int(minutes[c]) for c in present.tolist()},
        solar_meters=[names[c] for c in sorted(solar)],
        first_ts={
            names[int(c)]: _EPOCH + timedelta(microseconds=int(t) // 1000)
            for c, t in first_ts.items()
        },
    )


def _named(codes: np.ndarray, names: Sequence[str]) -> pa.Array:
    """Codes into `names` as strings; null where a code is -1."""
    indices = pa.array(codes.astype(np.int32), pa.int32(), mask=codes < 0)
    return pa.DictionaryArray.from_arrays(indices, pa.array(list(names), pa.string())).cast(
        pa.string()
    )


def _instants(ns: np.ndarray) -> pa.Array:
    """UTC nanoseconds as contract timestamps; null where NaT."""
    utc = pa.array(ns, pa.int64(), mask=ns == _NAT).cast(pa.timestamp("ns", tz="UTC"))
    return utc.cast(contract.UTC_TS, safe=False)


def _rejected(
    r: _Readings,
    candidate: np.ndarray,
    row: np.ndarray,
    why: list[pa.Array | pa.ChunkedArray],
    *,
    start: np.ndarray,
    kwh: np.ndarray,
    minutes: np.ndarray,
    row_meter: np.ndarray,
    names: list[str],
) -> pa.Table:
    """Rejected rows (LANDED) of export rows `row`: `why` = field, value as found and reason;
    the reading's columns from the `candidate` reading where there is one (-1: only the row's
    meter is known)."""
    linked = candidate >= 0
    c = np.maximum(candidate, 0)
    meter = np.where(linked, r.meter[c], row_meter[row])
    kwh = np.where(linked, kwh[c], np.nan)
    iv = minutes[meter]
    return pa.table(
        [
            _named(meter, names),
            _instants(np.where(linked, start[c], _NAT)),
            pa.array(iv.astype(np.int32), pa.int32(), mask=iv == 0),
            _named(np.where(linked, r.channel[c], -1), CHANNELS),
            pa.array(kwh, pa.float64(), mask=~np.isfinite(kwh)),
            pa.array(row + 1, pa.int64()),
            *why,
        ],
        schema=LANDED,
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
    at their first reading, solar iff a received channel or regular export
    (`anomalies.generation`), no topology."""
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
