"""The time span of a landed readings file, read cheaply: what the landing sensor needs to know
which local days a file touches, without parsing it whole."""

from __future__ import annotations

import io
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from smartgrid_assets import contract
from smartgrid_assets.ingest.files import READINGS_FIELDS
from smartgrid_assets.ingest.validate import (
    FileRejected,
    file_format,
    read_tabular,
    require_columns,
)
from smartgrid_assets.scratch import thread_connection


def _parquet_span(data: bytes) -> tuple[datetime, datetime] | None:
    """From the footer's column statistics, when every row group has them."""
    try:
        meta = pq.ParquetFile(io.BytesIO(data)).metadata
    except (pa.ArrowException, OSError) as exc:
        raise FileRejected(f"corrupt Parquet file: {exc}") from exc
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    if "ts" not in names or meta.num_rows == 0:
        return None
    col = names.index("ts")
    lows, highs = [], []
    for rg in range(meta.num_row_groups):
        stats = meta.row_group(rg).column(col).statistics
        if stats is None or not stats.has_min_max or not isinstance(stats.min, datetime):
            return None
        lows.append(stats.min)
        highs.append(stats.max)
    return min(lows), max(highs)


def time_span(
    key: str, data: bytes, allowed: tuple[datetime, datetime] | None = None
) -> tuple[datetime, datetime] | None:
    """Earliest and latest readable interval start of a readings file within the `allowed`
    [start, end) (None if no row has one); raises FileRejected for a file that cannot be read
    at all. A time outside `allowed` is a rejected row and names no day to run."""
    if file_format(key) == "parquet" and data:
        span = _parquet_span(data)
        if (
            span is not None
            and span[0].tzinfo is not None
            and (allowed is None or (allowed[0] <= span[0] and span[1] < allowed[1]))
        ):
            return span
    table = read_tabular(key, data)
    require_columns(table, READINGS_FIELDS)
    ts = table["ts"]
    try:
        parsed = ts.cast(contract.UTC_TS)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        parsed = _lenient(ts)
    if allowed is not None:
        low, high = (pa.scalar(t, contract.UTC_TS) for t in allowed)
        parsed = parsed.filter(pc.and_(pc.greater_equal(parsed, low), pc.less(parsed, high)))
    bounds = pc.min_max(parsed)
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    return (low, high) if low is not None else None


def _lenient(ts: pa.ChunkedArray) -> pa.Array:
    """Timestamps of a column with some unreadable values (those become null)."""
    con = thread_connection()
    con.register("span_ts", pa.table({"ts": ts}))
    try:
        query = "SELECT TRY_CAST(ts AS TIMESTAMPTZ) AS ts FROM span_ts"
        return con.sql(query).to_arrow_table()["ts"]
    finally:
        con.unregister("span_ts")
