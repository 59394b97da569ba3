"""The SQLAlchemy dialect GX validates DuckDB files through.

GX runs a query on a pooled connection, closes it, then fetches the result. With
duckdb-engine, closing the connection rolls back the transaction SQLAlchemy began, and DuckDB
drops a pending result on rollback: GX would see empty results. The workspace is opened
read-only and nothing is ever written through it, so this dialect issues no BEGIN, COMMIT or
ROLLBACK at all: every statement autocommits and its result survives the connection's return
to the pool.
"""

from __future__ import annotations

from typing import Any

from duckdb_engine import Dialect
from sqlalchemy.dialects import registry

DIALECT = "duckdb.readonly"


class ReadOnlyDuckDBDialect(Dialect):
    supports_statement_cache = False

    def do_begin(self, dbapi_connection: Any) -> None:
        return None

    def do_commit(self, dbapi_connection: Any) -> None:
        return None

    def do_rollback(self, dbapi_connection: Any) -> None:
        return None


registry.register(DIALECT, __name__, "ReadOnlyDuckDBDialect")


def connection_string(path: str) -> str:
    """A GX `add_sql` connection string for a DuckDB file, opened read-only."""
    return f"duckdb+readonly:///{path}"
