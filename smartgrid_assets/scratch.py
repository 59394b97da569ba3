"""In-memory DuckDB for vectorised transforms of Arrow tables (not the warehouse).

One way to get such a connection: UTC session time zone, so TIMESTAMPTZ values come back as
UTC instants whatever the machine's zone; no progress bar in run logs.
"""

from __future__ import annotations

import threading

import duckdb

_local = threading.local()


def connect() -> duckdb.DuckDBPyConnection:
    """A new in-memory connection; close it when done."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    return con


def thread_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory connection kept per thread: opening one costs ~10 ms, a query on it a
    fraction of that, so per-file work reuses it (register, query, unregister)."""
    con = getattr(_local, "con", None)
    if con is None:
        con = _local.con = connect()
    return con


def literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"
