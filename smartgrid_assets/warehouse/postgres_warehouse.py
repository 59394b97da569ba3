"""The production warehouse: PostgreSQL, loaded with psycopg COPY, read back as Arrow.

Readings-level data stays in the lake (no views over it here); the warehouse holds the tables the
Python assets load (registry, weather, aggregates, forecasts, events) and the dbt marts.

SQL the pipeline passes to `read` uses DuckDB-style `?` placeholders; they are rewritten to
psycopg's `%s` outside string literals, so a step's query runs on either implementation as long
as it sticks to SQL both dialects share (`x IN (SELECT unnest(?))` with a list works on both).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg import sql as pgsql

from smartgrid_assets.lake import Lake
from smartgrid_assets.warehouse.base import (
    ReadOnlyViolation,
    Warehouse,
    WarehouseError,
    Window,
)

# First keywords an analyst's statement may start with; a read-only transaction backs this up.
_READ_KEYWORDS = {"SELECT", "WITH", "VALUES", "TABLE", "EXPLAIN", "SHOW"}
# Functions that reach outside the database (server files, other sessions, settings) even in a
# read-only transaction when the login is privileged.
_REFUSED_FUNCTIONS = re.compile(
    r"\b(pg_read_file|pg_read_binary_file|pg_ls_\w+|pg_stat_file|lo_\w+|pg_terminate_backend|"
    r"pg_cancel_backend|pg_reload_conf|pg_rotate_logfile|set_config|dblink\w*|pg_sleep\w*|"
    r"pg_advisory\w*|pg_notify|txid_current|nextval|setval)\s*\(",
    re.IGNORECASE,
)
_PARAMETERIZED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|\?|%", re.S)

# OIDs of the PostgreSQL types the warehouse uses, and their Arrow types.
_ARROW_TYPES: dict[int, pa.DataType] = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int32(),
    23: pa.int32(),
    26: pa.int64(),
    700: pa.float64(),
    701: pa.float64(),
    1700: pa.float64(),
    25: pa.string(),
    19: pa.string(),
    1042: pa.string(),
    1043: pa.string(),
    114: pa.string(),
    3802: pa.string(),
    2950: pa.string(),
    1082: pa.date32(),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="UTC"),
    1009: pa.list_(pa.string()),
    1015: pa.list_(pa.string()),
    1007: pa.list_(pa.int32()),
    1016: pa.list_(pa.int64()),
    1022: pa.list_(pa.float64()),
}


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[-1]}"))


def _q(name: str) -> pgsql.Identifier:
    return pgsql.Identifier(name)


def _pg_type(kind: pa.DataType) -> str:
    if pa.types.is_dictionary(kind):
        return _pg_type(kind.value_type)
    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_int8(kind) or pa.types.is_int16(kind) or pa.types.is_uint8(kind):
        return "smallint"
    if pa.types.is_int32(kind) or pa.types.is_uint16(kind):
        return "integer"
    if pa.types.is_integer(kind):
        return "bigint"
    if pa.types.is_float16(kind) or pa.types.is_float32(kind):
        return "real"
    if pa.types.is_floating(kind):
        return "double precision"
    if pa.types.is_decimal(kind):
        return f"numeric({kind.precision}, {kind.scale})"
    if pa.types.is_date(kind):
        return "date"
    if pa.types.is_timestamp(kind):
        return "timestamp with time zone" if kind.tz else "timestamp without time zone"
    if pa.types.is_duration(kind):
        return "interval"
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _pg_type(kind.value_type) + "[]"
    return "text"


def _array_literal(values: list | None) -> str | None:
    if values is None:
        return None
    items = []
    for v in values:
        if v is None:
            items.append("NULL")
        else:
            text = str(v).replace("\\", "\\\\").replace('"', '\\"')
            items.append(f'"{text}"')
    return "{" + ",".join(items) + "}"


def _csv_ready(data: pa.Table) -> pa.Table:
    """Columns PostgreSQL's CSV COPY reads back as written: lists as array literals, durations
    as seconds, dictionaries decoded."""
    columns = []
    for column in data.columns:
        kind = column.type
        if pa.types.is_dictionary(kind):
            column = pc.cast(column, kind.value_type)
            kind = kind.value_type
        if pa.types.is_list(kind) or pa.types.is_large_list(kind):
            column = pa.array([_array_literal(v) for v in column.to_pylist()], pa.string())
        elif pa.types.is_duration(kind):
            column = pa.array(
                [None if v is None else f"{v.total_seconds()} seconds" for v in column.to_pylist()],
                pa.string(),
            )
        columns.append(column)
    return pa.table(columns, names=data.column_names)


def to_pg_params(query: str) -> str:
    """Rewrite `?` placeholders as `%s` (and a literal `%` as `%%`) outside quotes and comments."""

    def swap(match: re.Match) -> str:
        token = match.group(0)
        if token == "?":
            return "%s"
        return token.replace("%", "%%")  # psycopg reads % everywhere, quotes included

    return _PARAMETERIZED.sub(swap, query)


def _adapt(value: object) -> object:
    if isinstance(value, tuple):
        return list(value)
    return value


def _column(values: list, oid: int) -> pa.Array:
    kind = _ARROW_TYPES.get(oid)
    if oid == 1700:
        values = [None if v is None else float(v) for v in values]
    elif oid in (114, 3802):
        import json

        values = [None if v is None else json.dumps(v) for v in values]
    elif oid == 2950:
        values = [None if v is None else str(v) for v in values]
    if kind is not None:
        return pa.array(values, kind)
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def _to_arrow(cursor: psycopg.Cursor) -> pa.Table:
    if cursor.description is None:
        return pa.table({})
    rows = cursor.fetchall()
    names, arrays = [], []
    for i, column in enumerate(cursor.description):
        names.append(column.name)
        arrays.append(_column([row[i] for row in rows], column.type_code))
    return pa.Table.from_arrays(arrays, names=_unique(names))


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        n = seen.get(name, 0)
        seen[name] = n + 1
        out.append(name if n == 0 else f"{name}_{n}")
    return out


def _first_keyword(query: str) -> str:
    text = re.sub(r"--[^\n]*|/\*.*?\*/", " ", query, flags=re.S).lstrip(" \t\r\n(")
    match = re.match(r"[A-Za-z]+", text)
    return match.group(0).upper() if match else ""


class PostgresWarehouse(Warehouse):
    """Tables in the URL's database, in its default schema (`public` unless the URL sets a
    search_path); one short-lived connection per call."""

    def __init__(self, url: str, lake: Lake | None = None, connect_timeout_s: int = 10):
        self.url = url
        self.lake = lake
        self.connect_timeout_s = connect_timeout_s

    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(
                self.url,
                connect_timeout=self.connect_timeout_s,
                options="-c TimeZone=UTC",
                application_name="smartgrid",
            )
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise WarehouseError(
                f"cannot connect to the PostgreSQL warehouse {redact(self.url)}: {reason}"
            ) from exc

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection]:
        con = self._connect()
        try:
            with con.transaction():
                yield con
        finally:
            con.close()

    def replace(
        self,
        table: str,
        data: pa.Table,
        match: Mapping[str, Sequence[object]] | None = None,
        window: Window | None = None,
    ) -> int:
        columns = pgsql.SQL(", ").join(
            pgsql.SQL("{} {}").format(_q(f.name), pgsql.SQL(_pg_type(f.type))) for f in data.schema
        )
        where, params = _match_sql(match, window)
        with self._transaction() as con, con.cursor() as cur:
            # Serialises creating a table two writers might both find missing.
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"smartgrid:{table}"])
            cur.execute(pgsql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(_q(table), columns))
            _add_new_columns(cur, table, data.schema)
            cur.execute(pgsql.SQL("DELETE FROM {} WHERE ").format(_q(table)) + where, params)
            if data.num_rows:
                # With a header: pyarrow writes garbage for a headerless table whose first
                # chunks are empty (25.0); COPY skips the header line.
                buffer = io.BytesIO()
                pacsv.write_csv(_csv_ready(data).combine_chunks(), buffer)
                copy = pgsql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, HEADER true)").format(
                    _q(table), pgsql.SQL(", ").join(_q(c) for c in data.column_names)
                )
                with cur.copy(copy) as sink:
                    sink.write(buffer.getbuffer())
        return data.num_rows

    def read(self, sql: str, params: Sequence[object] = ()) -> pa.Table:
        con = self._connect()
        try:
            with con.cursor() as cur:
                if params:
                    cur.execute(to_pg_params(sql), [_adapt(p) for p in params])
                else:
                    cur.execute(sql)
                return _to_arrow(cur)
        except psycopg.Error as exc:
            raise WarehouseError(_one_line(exc)) from exc
        finally:
            con.close()

    def query_readonly(self, sql: str) -> pa.Table:
        """One statement in a READ ONLY transaction that is always rolled back.

        Refused before reaching the server: statements that do not start like a query, and
        functions that reach files, other sessions or settings. Refused by the server: anything
        that writes (including data-modifying CTEs and EXPLAIN ANALYZE of a write).
        """
        text = sql.strip()
        while text.endswith(";"):
            text = text[:-1].rstrip()
        if not text:
            raise WarehouseError("empty query")
        kind = _first_keyword(text)
        if kind not in _READ_KEYWORDS:
            raise ReadOnlyViolation(
                f"refused: {kind or 'this'} statements are not allowed; the warehouse is "
                "read-only here (only SELECT, WITH, VALUES, TABLE, SHOW and EXPLAIN)"
            )
        found = _REFUSED_FUNCTIONS.search(text)
        if found:
            raise ReadOnlyViolation(
                f"refused: {found.group(1)}() is not allowed in a read-only query"
            )
        con = self._connect()
        try:
            con.read_only = True
            with con.cursor() as cur:
                # prepare=True: the extended protocol, which takes exactly one statement.
                cur.execute(text, prepare=True)
                result = _to_arrow(cur)
            con.rollback()
            return result
        except psycopg.errors.ReadOnlySqlTransaction as exc:
            raise ReadOnlyViolation(f"refused: {_one_line(exc)}") from exc
        except psycopg.errors.SyntaxError as exc:
            if "multiple commands" in str(exc):
                raise ReadOnlyViolation(
                    "refused: one statement at a time (the warehouse is read-only here)"
                ) from exc
            raise WarehouseError(_one_line(exc)) from exc
        except psycopg.errors.InsufficientPrivilege as exc:
            raise ReadOnlyViolation(f"refused: {_one_line(exc)}") from exc
        except psycopg.Error as exc:
            raise WarehouseError(_one_line(exc)) from exc
        finally:
            con.close()

    def has_table(self, name: str) -> bool:
        found = self.read(
            "SELECT count(*) AS n FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_name = ?",
            [name],
        )
        return bool(found["n"][0].as_py())

    def tables(self) -> list[str]:
        names = self.read(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() ORDER BY 1"
        )
        return sorted(names["table_name"].to_pylist())


def _one_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _match_sql(
    match: Mapping[str, Sequence[object]] | None, window: Window | None
) -> tuple[pgsql.Composable, list[object]]:
    clauses: list[pgsql.Composable] = []
    params: list[object] = []
    if window is not None:
        clauses.append(pgsql.SQL("{c} >= %s AND {c} < %s").format(c=_q(window.column)))
        params += [window.start, window.end]
    for column, values in (match or {}).items():
        values = list(values)
        parts: list[pgsql.Composable] = []
        non_null = [_plain(v) for v in values if v is not None]
        if non_null:
            parts.append(pgsql.SQL("{} = ANY(%s)").format(_q(column)))
            params.append(non_null)
        if len(non_null) < len(values):
            parts.append(pgsql.SQL("{} IS NULL").format(_q(column)))
        if parts:
            clauses.append(pgsql.SQL("(") + pgsql.SQL(" OR ").join(parts) + pgsql.SQL(")"))
        else:
            clauses.append(pgsql.SQL("false"))
    if not clauses:
        return pgsql.SQL("true"), params
    return pgsql.SQL(" AND ").join(clauses), params


def _plain(value: object) -> object:
    """Python values psycopg adapts (Arrow scalars and numpy values become Python ones)."""
    if isinstance(value, pa.Scalar):
        return value.as_py()
    if hasattr(value, "item") and not isinstance(value, (str, bytes, date, datetime, Decimal)):
        return value.item()
    return value


def _add_new_columns(cur: psycopg.Cursor, table: str, schema: pa.Schema) -> None:
    """Columns a newer contract added (nullable) are added to a table an earlier version
    created, so the write that brings them succeeds and older rows read as null. Only missing
    ones: ALTER TABLE locks the table against readers until the write commits."""
    cur.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s",
        [table],
    )
    present = {row[0] for row in cur.fetchall()}
    missing = [f for f in schema if f.name not in present]
    if missing:
        cur.execute(
            pgsql.SQL("ALTER TABLE {} {}").format(
                _q(table),
                pgsql.SQL(", ").join(
                    pgsql.SQL("ADD COLUMN {} {}").format(_q(f.name), pgsql.SQL(_pg_type(f.type)))
                    for f in missing
                ),
            )
        )
