"""What the landing sensor should run for the files that arrived since its cursor.

A new readings file's timestamp range, not its name, says which local days it touches (read
cheaply: Parquet footers, one CSV column; full parsing is `raw_readings`' job). Files are
batched into one request per local day; a request's run key comes from the keys and ETags
behind it, so the same files never run twice and a changed file runs its days again. Content
already landed under another key runs nothing. A file under a key the zone cannot use runs
nothing either: it is copied to quarantine and reported once per key and ETag (the sensor's
log; every `raw_readings` run keeps the warehouse's `landing_problems` up to date).
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa

from smartgrid_assets import contract
from smartgrid_assets.days import days_between, local_date
from smartgrid_assets.ingest.catalog import LATEST_AFTER_LANDING, READINGS_PREFIX
from smartgrid_assets.ingest.span import time_span
from smartgrid_assets.ingest.validate import FileRejected
from smartgrid_assets.landing import LandedFile, LandingProblem
from smartgrid_assets.pipeline.registry import REGISTRY_PREFIX
from smartgrid_assets.platform import Platform

RELIST_DAYS = 1  # arrival days listed again, to see a file replaced since the last tick
SPAN_THREADS = 8  # reading spans is mostly waiting for the object store


@dataclass(frozen=True)
class DayRequest:
    day: date
    files: list[str]
    run_key: str


@dataclass(frozen=True)
class ArrivalPlan:
    days: list[DayRequest]
    registry_run_key: str | None
    cursor: dict[str, str]
    quarantined: list[str] = field(default_factory=list)
    landed_again: list[str] = field(default_factory=list)
    problems: list[LandingProblem] = field(default_factory=list)


def _run_key(kind: str, pairs: list[tuple[str, str]]) -> str:
    digest = hashlib.sha1("\n".join(f"{k}\t{e}" for k, e in sorted(pairs)).encode()).hexdigest()
    return f"{kind}:{digest[:20]}"


def rewind(cursor: str, days: int = RELIST_DAYS) -> str:
    """Where to start listing: `days` arrival days before the cursor's arrival day."""
    parts = cursor.split("/")
    try:
        arrived = date.fromisoformat(parts[1])
    except (IndexError, ValueError):
        return ""
    return f"{parts[0]}/{(arrived - timedelta(days=days)).isoformat()}"


def _span(platform: Platform, file: LandedFile) -> tuple[LandedFile, tuple | None]:
    try:
        allowed = (platform.catalog.earliest, file.last_modified + LATEST_AFTER_LANDING)
        return file, time_span(file.key, platform.landing.read_bytes(file.key), allowed)
    except FileRejected as exc:
        platform.landing.quarantine(file, exc.reason, dict(exc.details))
        return file, None


def plan_arrivals(platform: Platform, cursor: dict) -> ArrivalPlan:
    """Requests for the readings and registry files that arrived after the cursor's keys.

    The cursor keeps the last key listed and the ETags of the keys in the arrival days listed
    again, so a file replaced under the same key is seen and an unchanged one is not; files
    under unusable keys are kept apart (never in `seen`: their content was not ingested), so
    each is reported once.
    """
    readings_after = cursor.get("readings", "")
    registry_after = cursor.get("registry", "")
    seen: dict[str, str] = cursor.get("seen", {})
    reported: dict[str, str] = cursor.get("problems", {})
    listing = platform.landing.scan(READINGS_PREFIX, start_after=rewind(readings_after))
    listed = listing.files
    problems = [
        platform.landing.quarantine_problem(p)
        for p in listing.problems
        if reported.get(p.key) != (p.etag or "")
    ]
    new = [f for f in listed if seen.get(f.key) != f.etag]
    known = platform.catalog.known_etags() | set(seen.values()) if new else set()
    again = [f.key for f in new if f.etag in known]
    with ThreadPoolExecutor(max_workers=SPAN_THREADS) as pool:
        spans = list(
            pool.map(lambda f: _span(platform, f), [f for f in new if f.etag not in known])
        )
    by_day: dict[date, list[tuple[str, str]]] = {}
    quarantined = []
    for file, span in spans:
        if span is None:
            quarantined.append(file.key)
            continue
        first, last = (local_date(t, platform.tz) for t in span)
        for day in days_between(first, last + timedelta(days=1)):
            by_day.setdefault(day, []).append((file.key, file.etag))
    newest = max([readings_after, *(f.key for f in listed)])
    registry = platform.landing.list(REGISTRY_PREFIX, start_after=registry_after)
    return ArrivalPlan(
        days=[
            DayRequest(day, sorted(k for k, _ in pairs), _run_key(day.isoformat(), pairs))
            for day, pairs in sorted(by_day.items())
        ],
        registry_run_key=(
            _run_key("registry", [(f.key, f.etag) for f in registry]) if registry else None
        ),
        cursor={
            "readings": newest,
            "registry": max([registry_after, *(f.key for f in registry)]),
            "seen": {f.key: f.etag for f in listed if f.key > rewind(newest)},
            "problems": {p.key: p.etag or "" for p in listing.problems if p.key > rewind(newest)},
        },
        quarantined=quarantined,
        landed_again=sorted(again),
        problems=problems,
    )


def record_landing_problems(platform: Platform, problems: list[LandingProblem]) -> list[dict]:
    """Replace the warehouse's `landing_problems` with the problems of the zone as listed now
    and return its rows. A key and ETag recorded before keeps the time it was first found, so
    a re-run changes nothing; a file removed or renamed to a usable key leaves the table."""
    first_found = {}
    if platform.warehouse.has_table("landing_problems"):
        previous = platform.warehouse.read("SELECT key, etag, found_at FROM landing_problems")
        first_found = {(r["key"], r["etag"]): r["found_at"] for r in previous.to_pylist()}
    now = datetime.now(UTC)
    rows = [
        {
            "key": p.text_key,
            "size": p.size,
            "etag": p.etag,
            "reason": p.reason,
            "quarantine_key": p.quarantine_key,
            "found_at": first_found.get((p.text_key, p.etag), now),
        }
        for p in problems
    ]
    platform.warehouse.replace(
        "landing_problems", pa.Table.from_pylist(rows, schema=contract.LANDING_PROBLEMS)
    )
    return rows
