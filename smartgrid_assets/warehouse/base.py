"""The warehouse interface shared by its DuckDB (embedded) and PostgreSQL implementations."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class Window:
    column: str
    start: object
    end: object


class WarehouseError(Exception):
    """A warehouse operation failed for a reason a person can act on."""


class WarehouseBusy(WarehouseError):
    """Another process holds the warehouse for writing; retrying later will work."""


class ReadOnlyViolation(WarehouseError):
    """A read-only query tried to change something; nothing was changed."""


class Warehouse(ABC):
    url: str

    @abstractmethod
    def replace(
        self,
        table: str,
        data: pa.Table,
        match: Mapping[str, Sequence[object]] | None = None,
        window: Window | None = None,
    ) -> int:
        """Delete the rows of `table` matching `match` and `window` (all rows when both are
        None), then insert `data`.

        `match` maps columns to the values to delete (None in a list matches NULL); `window`
        deletes rows whose column lies in [start, end). Delete and insert are one transaction,
        so a re-run replaces exactly what it wrote before. The table is created from `data`'s
        schema when missing. Returns rows inserted.
        """

    @abstractmethod
    def read(self, sql: str, params: Sequence[object] = ()) -> pa.Table:
        """Run a query for the pipeline (waits for a busy warehouse)."""

    @abstractmethod
    def query_readonly(self, sql: str) -> pa.Table:
        """Run an analyst's query read-only; writing statements raise ReadOnlyViolation."""

    @abstractmethod
    def has_table(self, name: str) -> bool:
        """Whether the warehouse holds a table of that name (lake views excluded)."""

    @abstractmethod
    def tables(self) -> list[str]:
        """Tables and views an analyst can query."""
