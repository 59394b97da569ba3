"""The production warehouse: PostgreSQL, loaded with psycopg COPY, read back as Arrow.

Readings-level data stays in the lake (no views over it here); the warehouse holds the tables the
Python assets load (registry, weather, aggregates, forecasts, events) and the dbt marts.

`smartgrid sql` never uses the owner's login: it connects as a least-privilege reader role
(SMARTGRID_SQL_URL, or `<database>_sql_reader` on the warehouse's host), which the warehouse
creates when its login may and grants what analysts may read whenever it writes a table. The
database, not statement parsing, refuses what the reader may not do.

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
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg import sql as pgsql
from psycopg.conninfo import conninfo_to_dict

from smartgrid_assets.lake import Lake
from smartgrid_assets.warehouse.base import (
    ReadOnlyViolation,
    Warehouse,
    WarehouseError,
    Window,
    first_keyword,
)

# First keywords an analyst's statement may start with: a friendlier first message only, the
# reader role and the READ ONLY transaction are what refuse.
_READ_KEYWORDS = {"SELECT", "WITH", "VALUES", "TABLE", "EXPLAIN", "SHOW"}
# Membership in these reaches the server's files and programs or other sessions' backends.
_SERVER_ROLES = [
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_execute_server_program",
    "pg_signal_backend",
]
# Whether the current login could do more than read: `smartgrid sql` refuses to run as one.
_PRIVILEGED_LOGIN = """
SELECT r.rolsuper OR r.rolcreaterole OR r.rolreplication OR r.rolbypassrls
    OR pg_has_role(r.oid, (SELECT datdba FROM pg_database WHERE datname = current_database()),
                   'MEMBER')
    OR EXISTS (SELECT 1 FROM pg_roles p
               WHERE p.rolname = ANY(%s) AND pg_has_role(r.oid, p.oid, 'MEMBER'))
    OR EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = current_schema() AND pg_has_role(r.oid, c.relowner, 'MEMBER'))
FROM pg_roles r WHERE r.rolname = current_user
"""
_CREATE_READER = (
    "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
)
# The reader's rights without an analyst role: the schema's tables and views, and those created
# later by this login (dbt's marts); with one, they come from its membership instead.
_READER_GRANTS = (
    "GRANT USAGE ON SCHEMA {schema} TO {reader}",
    "GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {reader}",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT ON TABLES TO {reader}",
)
_READER_REVOKES = (
    "REVOKE SELECT ON ALL TABLES IN SCHEMA {schema} FROM {reader}",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} REVOKE SELECT ON TABLES FROM {reader}",
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


def default_reader_role(url: str) -> str:
    """The reader role a warehouse URL implies: `<database>_sql_reader` (63 bytes at most)."""
    database = conninfo_to_dict(url).get("dbname") or "smartgrid"
    return database.encode()[:52].decode(errors="ignore") + "_sql_reader"


def reader_url(url: str, role: str) -> str:
    """The warehouse URL with `role` as its user and no password: never the owner's login."""
    parts = urlsplit(url)
    hosts = parts.netloc.rsplit("@", 1)[-1]
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("user", "password")]
    return urlunsplit(
        parts._replace(
            netloc=f"{quote(role, safe='')}@{hosts}", query=urlencode(query, quote_via=quote)
        )
    )


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


class PostgresWarehouse(Warehouse):
    """Tables in the URL's database, in its default schema (`public` unless the URL sets a
    search_path); one short-lived connection per call.

    `sql_url` is the reader's login for `query_readonly` (default: `reader_url` with
    `default_reader_role`). With `analyst_role`, the reader is made a member of it and reads
    what analysts read (the marts dbt grants them); without, it may SELECT every table and
    view of the schema.
    """

    def __init__(
        self,
        url: str,
        lake: Lake | None = None,
        connect_timeout_s: int = 10,
        *,
        sql_url: str | None = None,
        analyst_role: str | None = None,
        sql_timeout_s: float = 60.0,
    ):
        self.url = url
        self.lake = lake
        self.connect_timeout_s = connect_timeout_s
        self.sql_url = sql_url or reader_url(url, default_reader_role(url))
        self.reader_role = unquote(urlsplit(self.sql_url).username or "")
        if not self.reader_role:
            raise WarehouseError("SMARTGRID_SQL_URL must name its user, the reader role")
        self.analyst_role = analyst_role
        self.sql_timeout_s = sql_timeout_s

    def _connect(self, url: str | None = None, options: str = "") -> psycopg.Connection:
        """A connection to `url` (default: the owner's), keeping the URL's own `options`
        (a search_path) beside UTC and `options`."""
        url = url or self.url
        try:
            params = conninfo_to_dict(url)
            params["options"] = " ".join(
                filter(None, [params.get("options"), "-c TimeZone=UTC", options])
            )
            params |= {"connect_timeout": self.connect_timeout_s, "application_name": "smartgrid"}
            return psycopg.connect(**params)
        except (psycopg.OperationalError, psycopg.ProgrammingError) as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            who = " (the `smartgrid sql` login, SMARTGRID_SQL_URL)" if url != self.url else ""
            raise WarehouseError(
                f"cannot connect to the PostgreSQL warehouse {redact(url)}{who}: {reason}"
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
            if not self._reader_can_read(cur, table):
                self._grant_reader(cur)
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

    def _reader_can_read(self, cur: psycopg.Cursor, table: str) -> bool:
        """Whether the reader already has its rights on `table` (one query per write)."""
        if self.analyst_role:
            cur.execute(
                "SELECT pg_has_role(r.oid, a.oid, 'MEMBER') FROM pg_roles r, pg_roles a "
                "WHERE r.rolname = %s AND a.rolname = %s",
                [self.reader_role, self.analyst_role],
            )
        else:
            cur.execute(
                "SELECT has_table_privilege(r.oid, quote_ident(%s)::regclass, 'SELECT') "
                "FROM pg_roles r WHERE r.rolname = %s",
                [table, self.reader_role],
            )
        found = cur.fetchone()
        return bool(found and found[0])

    def _grant_reader(self, cur: psycopg.Cursor) -> None:
        """Give the `smartgrid sql` reader its rights, in the writer's transaction.

        The role is created when missing and this login may create roles: LOGIN and nothing
        else (no superuser, CREATEDB, CREATEROLE, replication or RLS bypass), read-only by
        default. Then CONNECT, and either membership of the analyst role or USAGE on the schema
        and SELECT on its tables and views, existing and future (default privileges: dbt's
        marts too). What this login may not grant is the operator's to grant (README).
        """
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('smartgrid:sql_reader'))")
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [self.reader_role])
        reader = _q(self.reader_role)
        if cur.fetchone() is None and not _best_effort(
            cur,
            pgsql.SQL(_CREATE_READER).format(reader),
            pgsql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(reader),
        ):
            return
        cur.execute("SELECT current_database(), current_schema()")
        database, schema = (_q(name) for name in cur.fetchone())
        statements = [pgsql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, reader)]
        templates = _READER_REVOKES if self.analyst_role else _READER_GRANTS
        statements += [pgsql.SQL(t).format(schema=schema, reader=reader) for t in templates]
        if self.analyst_role:
            statements.append(pgsql.SQL("GRANT {} TO {}").format(_q(self.analyst_role), reader))
        for statement in statements:
            _best_effort(cur, statement)

    def query_readonly(self, sql: str) -> pa.Table:
        """A friendly refusal of statements that do not start like a query, then
        `run_readonly`, where the database decides."""
        text = _statement_text(sql)
        kind = first_keyword(text)
        if kind not in _READ_KEYWORDS:
            raise ReadOnlyViolation(
                f"refused: {kind or 'this'} statements are not allowed; the warehouse is "
                "read-only here (only SELECT, WITH, VALUES, TABLE, SHOW and EXPLAIN)"
            )
        return self.run_readonly(text)

    def run_readonly(self, sql: str) -> pa.Table:
        """One statement as the reader role, in a READ ONLY transaction under the statement
        timeout, always rolled back; no statement check of its own: what the role or the
        transaction may not do (write, read server files, change role, signal other sessions,
        run programs) the server refuses, whatever the spelling. Refuses to run at all as a
        privileged login (SMARTGRID_SQL_URL pointing at the owner, say)."""
        text = _statement_text(sql)
        timeout_ms = max(1, round(self.sql_timeout_s * 1000))
        con = self._connect(
            self.sql_url, f"-c statement_timeout={timeout_ms} -c default_transaction_read_only=on"
        )
        try:
            con.read_only = True
            with con.cursor() as cur:
                cur.execute(_PRIVILEGED_LOGIN, [_SERVER_ROLES])
                if cur.fetchone() != (False,):
                    raise WarehouseError(
                        f"refused: `smartgrid sql` does not run as {self.reader_role!r}, a role "
                        "that can do more than read (superuser, CREATEROLE, owner, or member of "
                        "a server-file or signalling role): point SMARTGRID_SQL_URL at a "
                        "least-privilege login"
                    )
                # prepare=True: the extended protocol, which takes exactly one statement.
                cur.execute(text, prepare=True)
                result = _to_arrow(cur)
            con.rollback()
            return result
        except psycopg.errors.QueryCanceled as exc:
            raise WarehouseError(
                f"cancelled: the query ran longer than {self.sql_timeout_s:g} s "
                "(SMARTGRID_SQL_TIMEOUT_S)"
            ) from exc
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


def _statement_text(sql: str) -> str:
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    if not text:
        raise WarehouseError("empty query")
    return text


def _best_effort(cur: psycopg.Cursor, *statements: pgsql.Composable) -> bool:
    """Runs the statements in a savepoint; False, and nothing done, when this login lacks the
    right (or a named role is missing): granting the reader must not fail a write."""
    try:
        with cur.connection.transaction():
            for statement in statements:
                cur.execute(statement)
    except (psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedObject):
        return False
    return True


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
