"""Which landed readings files hold which times: each file version is parsed once and cached.

The landing zone is never modified. Each (key, etag) is parsed once into the lake's `_ingest/`
cache together with its UTC time span, so a partition run reads only the files that touch it,
whatever their names say. Identical content landed under two keys is used once.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from smartgrid_assets import contract
from smartgrid_assets.ingest.files import parse
from smartgrid_assets.ingest.validate import FileRejected
from smartgrid_assets.lake import Lake
from smartgrid_assets.landing import LandedFile, LandingZone

READINGS_PREFIX = "readings/"
PARSE_THREADS = 8  # fetching and parsing mostly release the GIL: overlap I/O and parsing
INDEX_PATH = "_ingest/readings_index.parquet"
CONTRACT = f"readings {contract.schema_version(contract.READINGS)}"

INDEX_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string()),
        pa.field("etag", pa.string()),
        pa.field("size", pa.int64()),
        pa.field("landed_at", contract.UTC_TS),
        pa.field("status", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("rows", pa.int64()),
        pa.field("rejected_rows", pa.int64()),
        pa.field("min_ts", contract.UTC_TS),
        pa.field("max_ts", contract.UTC_TS),
    ]
)

REJECTED_CACHE_SCHEMA = pa.schema(
    [
        pa.field("source_file", pa.string()),
        pa.field("row", pa.int64()),
        pa.field("field", pa.string()),
        pa.field("value", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("meter_id", pa.string()),
        pa.field("ts", contract.UTC_TS),
        pa.field("landed_at", contract.UTC_TS),
    ]
)


class CatalogError(Exception):
    """A landed file the catalog knows cannot be read any more."""


@dataclass(frozen=True)
class Refresh:
    """The index rows of the file versions one refresh parsed."""

    added: pa.Table

    @property
    def quarantined(self) -> list[dict]:
        bad = self.added.filter(pc.equal(self.added["status"], "quarantined"))
        return bad.select(["key", "reason"]).to_pylist()


def _cache_path(etag: str, part: str) -> str:
    return f"_ingest/readings/{etag}.{part}.parquet"


class ReadingsCatalog:
    def __init__(self, landing: LandingZone, lake: Lake):
        self.landing = landing
        self.lake = lake

    def index(self) -> pa.Table:
        table = self.lake.read_table(INDEX_PATH)
        return table if table is not None else INDEX_SCHEMA.empty_table()

    def refresh(self) -> Refresh:
        """Parse every landed readings file version not seen before, a few at a time;
        quarantine unusable ones."""
        index = self.index()
        seen = set(zip(index["key"].to_pylist(), index["etag"].to_pylist(), strict=True))
        new = sorted(
            (f for f in self.landing.list(READINGS_PREFIX) if (f.key, f.etag) not in seen),
            key=lambda f: (f.last_modified, f.key),
        )
        with ThreadPoolExecutor(max_workers=PARSE_THREADS) as pool:
            rows = list(pool.map(self._ingest, new))
        added = pa.Table.from_pylist(rows, schema=INDEX_SCHEMA)
        if rows:
            self.lake.write_table(INDEX_PATH, pa.concat_tables([index, added]))
        return Refresh(added=added)

    def known_etags(self) -> set[str]:
        """Contents already parsed, under whatever key."""
        return set(self.index()["etag"].to_pylist())

    def _ingest(self, file: LandedFile) -> dict:
        entry = {
            "key": file.key,
            "etag": file.etag,
            "size": file.size,
            "landed_at": file.last_modified,
            "status": "ok",
            "reason": None,
            "rows": 0,
            "rejected_rows": 0,
            "min_ts": None,
            "max_ts": None,
        }
        try:
            result = parse(
                "readings", file.key, self.landing.read_bytes(file.key), file.last_modified
            )
        except FileRejected as exc:
            self.landing.quarantine(file, exc.reason, {"contract": CONTRACT, **exc.details})
            return entry | {"status": "quarantined", "reason": exc.reason}
        readings = result.table
        if readings.num_rows == 0:
            first = result.rejected.slice(0, 5).to_pylist()
            reason = "no row could be read; every row breaks the contract"
            self.landing.quarantine(
                file,
                reason,
                {
                    "contract": CONTRACT,
                    "rejected_rows": [
                        {
                            "row": r["row"],
                            "field": r["field"],
                            "found": r["value"],
                            "expected": r["reason"],
                        }
                        for r in first
                    ],
                },
            )
            return entry | {"status": "quarantined", "reason": reason}
        self.lake.write_table(_cache_path(file.etag, "readings"), readings)
        rejected = result.rejected.select(REJECTED_CACHE_SCHEMA.names).cast(REJECTED_CACHE_SCHEMA)
        if rejected.num_rows:
            self.lake.write_table(_cache_path(file.etag, "rejected"), rejected)
        all_ts = pa.chunked_array(readings["ts"].chunks + rejected["ts"].chunks, contract.UTC_TS)
        span = pc.min_max(all_ts)
        return entry | {
            "rows": readings.num_rows,
            "rejected_rows": rejected.num_rows,
            "min_ts": span["min"].as_py(),
            "max_ts": span["max"].as_py(),
        }

    def files_between(self, start: datetime, end: datetime) -> pa.Table:
        """Usable file versions holding times in [start, end): the latest version of each key,
        and of identical contents the first landed."""
        index = self.index()
        current = self._current_versions(index)
        ok = current.filter(pc.equal(current["status"], "ok"))
        overlaps = pc.and_(
            pc.less(ok["min_ts"], pa.scalar(end, contract.UTC_TS)),
            pc.greater_equal(ok["max_ts"], pa.scalar(start, contract.UTC_TS)),
        )
        return ok.filter(overlaps)

    def _current_versions(self, index: pa.Table) -> pa.Table:
        listed = {(f.key, f.etag) for f in self.landing.list(READINGS_PREFIX)}
        rows = [r for r in index.to_pylist() if (r["key"], r["etag"]) in listed]
        rows.sort(key=lambda r: (r["landed_at"], r["key"]))
        first_by_etag: dict[str, dict] = {}
        for row in rows:
            first_by_etag.setdefault(row["etag"], row)
        return pa.Table.from_pylist(list(first_by_etag.values()), schema=INDEX_SCHEMA)

    def _cached(self, file: dict, part: str) -> pa.Table:
        """A file version's parsed `part`; if the cache is gone (a lake restored without its
        `_ingest/` folder), the landed file, which is never modified, is parsed again."""
        path = _cache_path(file["etag"], part)
        table = self.lake.read_table(path)
        if table is None:
            self._ingest(LandedFile(file["key"], file["size"], file["etag"], file["landed_at"]))
            table = self.lake.read_table(path)
        if table is None:
            raise CatalogError(
                f"landed file {file['key']} (etag {file['etag']}) was parsed before but its "
                f"{part} could not be read again from the landing zone"
            )
        return table

    def readings(self, files: pa.Table, start: datetime, end: datetime) -> pa.Table:
        tables = [self._cached(file, "readings") for file in files.to_pylist()]
        table = pa.concat_tables(tables or [contract.READINGS.empty_table()])
        keep = pc.and_(
            pc.greater_equal(table["ts"], pa.scalar(start, contract.UTC_TS)),
            pc.less(table["ts"], pa.scalar(end, contract.UTC_TS)),
        )
        return table.filter(keep)

    def rejected(self, files: pa.Table) -> pa.Table:
        """Rejected rows of the files (cached only for files that had some)."""
        with_rejects = files.filter(pc.greater(files["rejected_rows"], 0))
        tables = [self._cached(file, "rejected") for file in with_rejects.to_pylist()]
        return pa.concat_tables(tables or [REJECTED_CACHE_SCHEMA.empty_table()])
