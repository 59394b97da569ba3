"""The embedded warehouse: one DuckDB file, plus the lake's tables as read-only views."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

from smartgrid_assets.lake import Lake, LakeError
from smartgrid_assets.warehouse.base import (
    ReadOnlyViolation,
    Warehouse,
    WarehouseBusy,
    WarehouseError,
    Window,
    first_keyword,
)

LAKE_TABLES = ("raw_readings", "cleaned_readings", "meter_hourly")
_READ_STATEMENTS = {"SELECT", "EXPLAIN"}


def _is_lock_error(exc: Exception) -> bool:
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class DuckDBWarehouse(Warehouse):
    def __init__(
        self,
        path: Path,
        lake: Lake | None = None,
        busy_timeout_s: float = 120.0,
        sql_timeout_s: float = 60.0,
    ):
        self.path = Path(path)
        self.url = f"duckdb:///{self.path}"
        self.lake = lake
        self.busy_timeout_s = busy_timeout_s
        self.sql_timeout_s = sql_timeout_s

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        if read_only and not self.path.exists():
            raise WarehouseError(
                f"warehouse {self.path} does not exist yet: materialize the assets first"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as exc:
            if _is_lock_error(exc):
                raise WarehouseBusy(
                    f"warehouse busy: {self.path} is held by a running writer; retry in a moment"
                ) from exc
            raise
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        return con

    @contextmanager
    def _connection(self, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection; waits (with backoff) while another process writes."""
        deadline = time.monotonic() + self.busy_timeout_s
        delay = 0.05
        while True:
            try:
                con = self._open(read_only)
                break
            except WarehouseBusy:
                if time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        try:
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
        with self._connection(read_only=False) as con:
            con.register("__data", data)
            con.execute("BEGIN")
            try:
                con.execute(
                    f"CREATE TABLE IF NOT EXISTS {_q(table)} AS SELECT * FROM __data LIMIT 0"
                )
                _add_new_columns(con, table)
                where, params = _match_sql(match, window)
                con.execute(f"DELETE FROM {_q(table)} WHERE {where}", params)
                cols = ", ".join(_q(c) for c in data.column_names)
                con.execute(f"INSERT INTO {_q(table)} ({cols}) SELECT {cols} FROM __data")
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
        return data.num_rows

    def read(self, sql: str, params: Sequence[object] = ()) -> pa.Table:
        with self._connection(read_only=True) as con:
            self._register_lake(con, sql)
            return con.sql(sql, params=list(params) or None).to_arrow_table()

    def query_readonly(self, sql: str) -> pa.Table:
        """On a read-only connection without file or network access (locked, so the query
        cannot turn it back on); interrupted after `sql_timeout_s`."""
        con = self._open(read_only=True)
        timer = threading.Timer(self.sql_timeout_s, con.interrupt)
        try:
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
            statements = con.extract_statements(sql)
            if not statements:
                raise WarehouseError("empty query")
            for statement in statements:
                if _statement_type(statement) not in _READ_STATEMENTS:
                    raise ReadOnlyViolation(
                        f"refused: {first_keyword(statement.query) or 'this'} statements are not "
                        "allowed; the warehouse is read-only here (only SELECT, SHOW, DESCRIBE "
                        "and EXPLAIN)"
                    )
            self._register_lake(con, sql)
            timer.start()
            for statement in statements:
                result = con.sql(statement.query)
            return _plain_numbers(result.to_arrow_table())
        except duckdb.InterruptException as exc:
            raise WarehouseError(
                f"cancelled: the query ran longer than {self.sql_timeout_s:g} s "
                "(SMARTGRID_SQL_TIMEOUT_S)"
            ) from exc
        except duckdb.Error as exc:
            raise WarehouseError(str(exc).splitlines()[0]) from exc
        finally:
            timer.cancel()
            con.close()

    def has_table(self, name: str) -> bool:
        if not self.path.exists():
            return False
        with self._connection(read_only=True) as con:
            found = con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
            ).fetchone()
        return bool(found and found[0])

    def tables(self) -> list[str]:
        with self._connection(read_only=True) as con:
            names = [r[0] for r in con.execute("SHOW TABLES").fetchall()]
        lake = [t for t in LAKE_TABLES if self.lake is not None and self.lake.dataset(t)]
        return sorted(set(names) | set(lake))

    def _register_lake(self, con: duckdb.DuckDBPyConnection, sql: str) -> None:
        """Expose the lake tables the query names as views (a pyarrow scan: local or S3), and
        only those: a query of warehouse tables runs while the lake is unreachable, and one of
        a lake table gets one line naming the lake."""
        if self.lake is None:
            return
        for name in _named_lake_tables(sql):
            try:
                dataset = self.lake.dataset(name)
            except (LakeError, OSError) as exc:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                raise WarehouseError(
                    f"lake table {name} is unavailable (lake {self.lake.url}): {reason}"
                ) from exc
            if dataset is not None:
                con.register(name, dataset)


def _statement_type(statement: duckdb.Statement) -> str:
    try:
        return statement.type.name
    except ValueError:  # a type the Python binding has no name for (UPDATE EXTENSIONS)
        return ""


def _named_lake_tables(sql: str) -> set[str]:
    """The lake tables among the query's identifiers (quoted or not; DuckDB matches names
    case-insensitively). Over-inclusive at worst (a column of that name): a lake listing."""
    tokens = duckdb.tokenize(sql)
    bounds = [start for start, _ in tokens] + [len(sql)]
    words = {
        sql[bounds[i] : bounds[i + 1]].strip().strip('"').lower()
        for i, (_, kind) in enumerate(tokens)
        if kind == duckdb.token_type.identifier
    }
    return words & set(LAKE_TABLES)


def _plain_numbers(table: pa.Table) -> pa.Table:
    """DuckDB's wide integers and decimals (sum of integers is a HUGEINT, seen as a decimal) as
    int64 or float64, so an analyst's CSV and JSON show 4, not "4" (as on PostgreSQL)."""
    columns = []
    for column in table.columns:
        if pa.types.is_decimal(column.type):
            try:
                if column.type.scale != 0:
                    raise pa.ArrowInvalid("fractional")
                column = column.cast(pa.int64())
            except pa.ArrowInvalid:
                column = column.cast(pa.float64(), safe=False)
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def _match_sql(
    match: Mapping[str, Sequence[object]] | None, window: Window | None
) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    if window is not None:
        clauses.append(f"{_q(window.column)} >= ? AND {_q(window.column)} < ?")
        params += [window.start, window.end]
    for column, values in (match or {}).items():
        values = list(values)
        parts = []
        non_null = [v for v in values if v is not None]
        if non_null:
            parts.append(f"{_q(column)} IN (SELECT unnest(?))")
            params.append(non_null)
        if len(non_null) < len(values):
            parts.append(f"{_q(column)} IS NULL")
        clauses.append("(" + " OR ".join(parts) + ")" if parts else "false")
    return " AND ".join(clauses) or "true", params


def _add_new_columns(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Columns a newer contract added (nullable) are added to a table an earlier version
    created, so the write that brings them succeeds and older rows read as null."""
    present = {
        row[0]
        for row in con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ?",
            [table],
        ).fetchall()
    }
    for name, column_type, *_ in con.execute("DESCRIBE SELECT * FROM __data").fetchall():
        if name not in present:
            con.execute(f"ALTER TABLE {_q(table)} ADD COLUMN {_q(name)} {column_type}")
