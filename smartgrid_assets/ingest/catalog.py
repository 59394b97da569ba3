"""Which landed readings files hold which times: each file version is parsed once and cached.

The landing zone is never modified. Each (key, etag) is parsed once into the lake's `_ingest/`
cache together with its UTC time span, so a partition run reads only the files that touch it,
whatever their names say. Identical content landed under two keys is used once.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from smartgrid_assets import contract
from smartgrid_assets.ingest.files import parse, within_range
from smartgrid_assets.ingest.validate import FileRejected
from smartgrid_assets.lake import Lake
from smartgrid_assets.landing import LandedFile, LandingProblem, LandingZone

READINGS_PREFIX = "readings/"
PARSE_THREADS = 8  # fetching and parsing mostly release the GIL: overlap I/O and parsing
INDEX_PATH = "_ingest/readings_index.parquet"
CONTRACT = f"readings {contract.schema_version(contract.READINGS)}"
#: how far past its landing a file's readings may reach (clocks off, a day-ahead export)
LATEST_AFTER_LANDING = timedelta(days=1)

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
        # the earliest allowed reading time the version was parsed with: a new
        # SMARTGRID_START_DATE parses every file again
        pa.field("earliest", contract.UTC_TS),
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
    """The index rows of the file versions one refresh parsed, and the zone's files under
    keys it cannot use (copied to quarantine where they could be)."""

    added: pa.Table
    problems: list[LandingProblem]

    @property
    def quarantined(self) -> list[dict]:
        bad = self.added.filter(pc.equal(self.added["status"], "quarantined"))
        return bad.select(["key", "reason"]).to_pylist()


def _cache_path(etag: str, part: str) -> str:
    return f"_ingest/readings/{etag}.{part}.parquet"


class ReadingsCatalog:
    """Readings times must lie in [earliest, landing time + LATEST_AFTER_LANDING): a row
    dated 1970 or 2999 is a rejected row, never a reason to run thousands of days."""

    def __init__(self, landing: LandingZone, lake: Lake, earliest: datetime):
        self.landing = landing
        self.lake = lake
        self.earliest = earliest

    def index(self) -> pa.Table:
        """The versions parsed with this catalog's earliest allowed time."""
        table = self.lake.read_table(INDEX_PATH)
        if table is None:
            return INDEX_SCHEMA.empty_table()
        if "earliest" not in table.column_names:  # an index from before the range rule
            table = table.append_column("earliest", pa.nulls(table.num_rows, contract.UTC_TS))
        table = table.select(INDEX_SCHEMA.names).cast(INDEX_SCHEMA)
        return table.filter(pc.equal(table["earliest"], pa.scalar(self.earliest, contract.UTC_TS)))

    def _write_index(self, added: pa.Table) -> None:
        """Append to the stored index, keeping the versions parsed with other ranges."""
        stored = self.lake.read_table(INDEX_PATH)
        if stored is not None and "earliest" not in stored.column_names:
            stored = stored.append_column("earliest", pa.nulls(stored.num_rows, contract.UTC_TS))
        kept = [] if stored is None else [stored.select(INDEX_SCHEMA.names).cast(INDEX_SCHEMA)]
        self.lake.write_table(INDEX_PATH, pa.concat_tables([*kept, added]))

    def refresh(self) -> Refresh:
        """Parse every landed readings file version not seen before, a few at a time;
        quarantine unusable ones. The whole zone is listed once, so a file under a key it
        cannot use, readings or not, is reported and copied aside instead of stopping this."""
        index = self.index()
        seen = set(zip(index["key"].to_pylist(), index["etag"].to_pylist(), strict=True))
        listing = self.landing.scan()
        problems = [self.landing.quarantine_problem(p) for p in listing.problems]
        new = sorted(
            (
                f
                for f in listing.files
                if f.key.startswith(READINGS_PREFIX) and (f.key, f.etag) not in seen
            ),
            key=lambda f: (f.last_modified, f.key),
        )
        rows = self._ingest_once_per_content(index, new)
        added = pa.Table.from_pylist(rows, schema=INDEX_SCHEMA)
        if rows:
            self._write_index(added)
        return Refresh(added=added, problems=problems)

    def _ingest_once_per_content(self, index: pa.Table, new: list[LandedFile]) -> list[dict]:
        """Index rows of the new versions, oldest first. Content is parsed once, under the key it
        first landed with (the one `files_between` uses, whose name its rows carry); the same
        content under a later key shares that parse, unless it was quarantined: then the later
        key is quarantined too."""
        known = {r["etag"]: r for r in index.to_pylist()}
        first: dict[str, LandedFile] = {}
        for file in new:
            if file.etag not in known:
                first.setdefault(file.etag, file)
        with ThreadPoolExecutor(max_workers=PARSE_THREADS) as pool:
            parsed = dict(zip(first, pool.map(self._ingest, first.values()), strict=True))
        known.update(parsed)
        rows = []
        for file in new:
            row = parsed.get(file.etag) if first.get(file.etag) is file else None
            if row is None:
                shared = known[file.etag]
                row = (
                    self._ingest(file)
                    if shared["status"] != "ok"
                    else shared
                    | {"key": file.key, "size": file.size}
                    | {"landed_at": file.last_modified}
                )
            rows.append(row)
        return rows

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
            "earliest": self.earliest,
        }
        try:
            result = within_range(
                parse("readings", file.key, self.landing.read_bytes(file.key), file.last_modified),
                self.earliest,
                file.last_modified + LATEST_AFTER_LANDING,
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
