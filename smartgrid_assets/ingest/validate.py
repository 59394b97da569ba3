"""Row-level validation of a landed table against field rules, in DuckDB.

A readable file keeps its good rows; every bad field of a bad row becomes one rejected row that
names the file, the row, the field, the value and what was expected.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from smartgrid_assets.scratch import connect, thread_connection
from smartgrid_assets.scratch import literal as _lit

ROW = "__row"
_OFFSET_RE = "(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$"


class FileRejected(Exception):
    """A whole file cannot be used: it goes to quarantine with this reason."""

    def __init__(self, reason: str, **details: object) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


@dataclass(frozen=True)
class Field:
    name: str
    sql_type: str
    expected: str
    required: bool = True
    allowed: tuple[object, ...] = ()
    check: str | None = None
    default: str | None = None  # SQL literal used where an optional value is absent


ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
    "INTEGER": pa.int32(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
}


@dataclass(frozen=True)
class Validated:
    good: pa.Table
    rejected: pa.Table


def file_format(key: str) -> str:
    name = key.lower()
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise FileRejected(
        f"unsupported file type of {key!r}: expected .csv, .csv.gz or .parquet",
        field="file name",
        expected=".csv, .csv.gz or .parquet",
        found=key.rsplit("/", 1)[-1],
    )


def read_tabular(key: str, data: bytes, fields: list[Field] | None = None) -> pa.Table:
    """Read a CSV or Parquet file; unreadable files are rejected whole.

    CSV columns of `fields` are read with their types when every value converts (the usual,
    fast case), else every column as text so each bad value can be named."""
    fmt = file_format(key)
    if not data:
        raise FileRejected(
            "empty file (0 bytes)", expected="a header and data rows", found="0 bytes"
        )
    if fmt == "parquet":
        try:
            table = pq.read_table(io.BytesIO(data))
        except (pa.ArrowException, OSError) as exc:
            raise FileRejected(
                f"corrupt Parquet file: {exc}", expected="a Parquet file", found=str(exc)
            ) from exc
    else:
        table = _read_csv(key, data, fields or [])
    if table.num_rows == 0:
        raise FileRejected(
            "empty file: a header but no data rows",
            expected="at least one data row",
            found=f"columns {', '.join(table.column_names)} and no rows",
        )
    return table


def _read_csv(key: str, data: bytes, fields: list[Field]) -> pa.Table:
    if key.lower().endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise FileRejected(
                f"corrupt gzip file: {exc}", expected="gzip-compressed CSV", found=str(exc)
            ) from exc
    head = data[:65536].decode("utf-8", errors="replace").lstrip("\ufeff")
    first_line = head.splitlines()[0] if head.strip() else ""
    if not first_line.strip():
        raise FileRejected(
            "empty file: no header line", expected="a header line", found="blank text"
        )
    names = next(csv.reader([first_line]))
    as_text = {name: pa.string() for name in names}
    typed = as_text | {f.name: ARROW_TYPES[f.sql_type] for f in fields if f.name in as_text}
    try:
        return _csv_table(data, typed)
    except (pa.ArrowInvalid, UnicodeDecodeError):
        pass
    try:
        return _csv_table(data, as_text)
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise _unreadable_csv(data, exc) from exc


def _unreadable_csv(data: bytes, exc: Exception) -> FileRejected:
    """Where a CSV that cannot be read breaks: the first byte that is not UTF-8 text, or the
    first line with the wrong number of fields, so the sender can find it."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as bad:
        line = data.count(b"\n", 0, bad.start) + 1
        return FileRejected(
            f"unreadable CSV: byte offset {bad.start} (line {line}) is not UTF-8 text",
            field="file content",
            expected="UTF-8 CSV text",
            found=f"byte 0x{data[bad.start]:02x} at byte offset {bad.start}, line {line}",
            line=line,
            byte_offset=bad.start,
        )
    invalid: list[pacsv.InvalidRow] = []

    def note(row: pacsv.InvalidRow) -> str:
        invalid.append(row)
        return "skip"

    with contextlib.suppress(pa.ArrowInvalid, UnicodeDecodeError):
        pacsv.read_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(use_threads=False),
            parse_options=pacsv.ParseOptions(invalid_row_handler=note),
            convert_options=pacsv.ConvertOptions(column_types={}, strings_can_be_null=True),
        )
    if invalid:
        row = invalid[0]
        where = f"line {row.number}" if row.number is not None else "a line"
        return FileRejected(
            f"unreadable CSV: {where} has {row.actual_columns} fields, the header "
            f"{row.expected_columns}",
            field="file content",
            expected=f"{row.expected_columns} comma-separated fields on every line",
            found=f"{row.actual_columns} fields on {where}: {row.text[:80]!r}",
            line=row.number,
        )
    return FileRejected(
        f"unreadable CSV (from line 1): {exc}", expected="CSV", found=str(exc), line=1
    )


def _csv_table(data: bytes, types: dict[str, pa.DataType]) -> pa.Table:
    options = pacsv.ConvertOptions(column_types=types, strings_can_be_null=True, null_values=[""])
    return pacsv.read_csv(pa.BufferReader(data), convert_options=options)


def require_columns(table: pa.Table, fields: list[Field]) -> None:
    missing = [f.name for f in fields if f.required and f.name not in table.column_names]
    if missing:
        raise FileRejected(
            f"missing column(s) {', '.join(missing)}; expected columns "
            f"{', '.join(f.name for f in fields)}",
            field=", ".join(missing),
            expected=[f.name for f in fields],
            found=table.column_names,
        )
    for f in fields:
        if f.name in table.column_names and f.sql_type == "TIMESTAMPTZ":
            col_type = table.schema.field(f.name).type
            if pa.types.is_timestamp(col_type) and col_type.tz is None:
                raise FileRejected(
                    f"column {f.name} is a timestamp without time zone; the contract needs UTC "
                    "instants (land such exports with an explicit time zone)",
                    field=f.name,
                    expected="timestamp with a time zone (UTC)",
                    found=str(col_type),
                )


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _value_expr(f: Field) -> str:
    cast = f"TRY_CAST({_q(f.name)} AS {f.sql_type})"
    if f.default is not None:
        cast = f"COALESCE({cast}, CAST({f.default} AS {f.sql_type}))"
    return f"{cast} AS {_q(f.name)}"


def _ok_expr(f: Field, is_text: bool) -> str:
    raw = _q(f.name)
    cast = f"TRY_CAST({raw} AS {f.sql_type})"
    conds = [f"{cast} IS NOT NULL"]
    if is_text and f.sql_type == "TIMESTAMPTZ":
        conds.append(f"regexp_matches(trim({raw}), '{_OFFSET_RE}')")
    if f.allowed:
        conds.append(f"{cast} IN ({', '.join(repr(a) for a in f.allowed)})")
    if f.check:
        conds.append(f.check.replace("{v}", cast))
    ok = " AND ".join(conds)
    missing = f"({raw} IS NULL OR trim({raw}) = '')" if is_text else f"{raw} IS NULL"
    return f"CASE WHEN {missing} THEN {'false' if f.required else 'true'} ELSE ({ok}) END"


def _typed(column: pa.ChunkedArray, f: Field) -> pa.ChunkedArray | None:
    """The column cast strictly to the field's type, or None if any value does not cast.

    Arrow's timestamp parser refuses text without a UTC offset, as the contract does."""
    target = ARROW_TYPES[f.sql_type]
    if pa.types.is_null(column.type) or column.null_count == len(column):
        return pa.nulls(len(column), target) if not f.required else None
    try:
        return column.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None


def _all_valid(table: pa.Table, fields: list[Field], rows: pa.Array) -> pa.Table | None:
    """The typed table when every row passes every rule (the usual case: no row-by-row work),
    else None and the caller finds which rows and fields fail."""
    columns = {}
    for f in fields:
        typed = _typed(table[f.name], f)
        if typed is None or (f.required and typed.null_count):
            return None
        if (
            pa.types.is_string(typed.type)
            and f.required
            and pc.any(pc.equal(pc.utf8_trim_whitespace(typed), "")).as_py()
        ):
            return None
        columns[f.name] = typed
    typed_table = pa.table(columns)
    conds = []
    for f in fields:
        value = _q(f.name)
        rule = []
        if f.allowed:
            rule.append(f"{value} IN ({', '.join(repr(a) for a in f.allowed)})")
        if f.check:
            rule.append(f.check.replace("{v}", value))
        if rule:
            conds.append(f"({value} IS NULL OR ({' AND '.join(rule)}))")
    if conds:
        con = thread_connection()
        con.register("typed", typed_table)
        try:
            ok = con.execute(f"SELECT bool_and({' AND '.join(conds)}) FROM typed").fetchall()
        finally:
            con.unregister("typed")
        if not ok[0][0]:
            return None
    for f in fields:
        if f.default is not None and typed_table[f.name].null_count:
            return None
    return typed_table.add_column(0, ROW, rows)


def _no_rejects(fields: list[Field], context: tuple[str, ...]) -> pa.Table:
    by_name = {f.name: f for f in fields}
    schema = [
        ("source_file", pa.string()),
        ("row", pa.int64()),
        ("field", pa.string()),
        ("value", pa.string()),
        ("reason", pa.string()),
    ] + [
        (name, ARROW_TYPES[by_name[name].sql_type] if name in by_name else pa.null())
        for name in context
    ]
    return pa.schema(schema).empty_table()


def validate(
    table: pa.Table,
    fields: list[Field],
    source_file: str,
    context: tuple[str, ...] = (),
    rows: pa.Array | None = None,
) -> Validated:
    """Split a table into typed good rows and rejected rows (one per bad field).

    Rejected rows carry the `context` fields (cast, null where unreadable) so that, say, a bad
    value can still be traced to its meter and day. `rows` are the table's 1-based row numbers
    in its file (by default 1..n).
    """
    require_columns(table, fields)
    for f in fields:
        if f.name not in table.column_names:
            table = table.append_column(f.name, pa.nulls(table.num_rows, pa.string()))
    if rows is None:
        rows = pa.array(np.arange(1, table.num_rows + 1, dtype=np.int64))
    clean = _all_valid(table, fields, rows)
    if clean is not None:
        return Validated(good=clean, rejected=_no_rejects(fields, context))
    present = fields
    src = table.select([f.name for f in present]).append_column(ROW, rows)
    text = {f.name: pa.types.is_string(src.schema.field(f.name).type) for f in present}
    oks = ", ".join(f"{_ok_expr(f, text[f.name])} AS {_q('ok_' + f.name)}" for f in present)
    good_cols = ", ".join(_value_expr(f) for f in present)
    all_ok = " AND ".join(_q("ok_" + f.name) for f in present)
    by_name = {f.name: f for f in present}
    ctx = "".join(
        f", CASE WHEN c.{_q('ok_' + name)} THEN TRY_CAST(c.{_q(name)} AS "
        f"{by_name[name].sql_type}) END AS {_q(name)}"
        if name in by_name
        else f", NULL AS {_q(name)}"
        for name in context
    )
    rejects = " UNION ALL ".join(
        f"SELECT {ROW} AS row, {_lit(f.name)} AS field, CAST({_q(f.name)} AS VARCHAR) AS value, "
        f"CASE WHEN {_q(f.name)} IS NULL THEN {_lit('missing value; expected ' + f.expected)} "
        f"ELSE {_lit('expected ' + f.expected)} END AS reason FROM checked "
        f"WHERE NOT {_q('ok_' + f.name)}"
        for f in present
    )
    con = connect()
    try:
        con.register("src", src)
        con.execute(f"CREATE TEMP TABLE checked AS SELECT *, {oks} FROM src")
        good = con.sql(
            f"SELECT {ROW}, {good_cols} FROM checked WHERE {all_ok} ORDER BY {ROW}"
        ).to_arrow_table()
        rejected = con.sql(
            f"SELECT {_lit(source_file)} AS source_file, r.* {ctx} "
            f"FROM ({rejects}) r JOIN checked c ON c.{ROW} = r.row ORDER BY row, field"
        ).to_arrow_table()
    finally:
        con.close()
    return Validated(good=good, rejected=rejected)
