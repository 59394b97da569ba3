"""The warehouse interface shared by its DuckDB (embedded) and PostgreSQL implementations."""

from __future__ import annotations

import re
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


def first_keyword(query: str) -> str:
    """The statement's first word (comments and opening parentheses skipped), upper-cased:
    what a refusal names, so INSTALL is called INSTALL whatever the parser files it under."""
    text = re.sub(r"--[^\n]*|/\*.*?\*/", " ", query, flags=re.S).lstrip(" \t\r\n(")
    match = re.match(r"[A-Za-z]+", text)
    return match.group(0).upper() if match else ""


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
        """Run an analyst's query (`smartgrid sql`) read-only, within the statement timeout.

        The database enforces it (a read-only DuckDB connection without external access; a
        least-privilege PostgreSQL role in a READ ONLY transaction); what it refuses raises
        ReadOnlyViolation. A statement-type check before it only gives a friendlier message.
        """

    @abstractmethod
    def has_table(self, name: str) -> bool:
        """Whether the warehouse holds a table of that name (lake views excluded)."""

    @abstractmethod
    def tables(self) -> list[str]:
        """Tables and views an analyst can query."""
