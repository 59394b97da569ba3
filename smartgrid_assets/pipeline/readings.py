"""From landed files to `raw_readings` and from raw to VEE'd `cleaned_readings`, by local day."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial

import pyarrow as pa
import pyarrow.compute as pc

from smartgrid_assets import contract, vee
from smartgrid_assets.days import day_bounds_utc
from smartgrid_assets.ingest.files import local_day, rejected_readings
from smartgrid_assets.pipeline.arrivals import record_landing_problems
from smartgrid_assets.pipeline.registry import current_meters
from smartgrid_assets.platform import Platform


@dataclass(frozen=True)
class RawLoad:
    rows_by_day: dict[str, int]
    files: list[str]
    rejected: pa.Table
    quarantined: list[dict]
    landing_problems: list[dict]  # the zone's files under unusable keys, as recorded


@dataclass(frozen=True)
class CleanLoad:
    rows_in: int
    rows_out: int
    flags_by_rule: dict[str, int]
    rows_by_quality: dict[str, int]
    sufficiency: pa.Table
    rows_by_day: dict[str, int]


#: the order of raw_readings rows: by series and time, so VEE shards are slices of it
RAW_ORDER = [(c, "ascending") for c in ("meter_id", "channel", "ts", "landed_at", "source_file")]


def window_bounds(days: list[date], tz: str) -> tuple[datetime, datetime]:
    return day_bounds_utc(days[0], tz)[0], day_bounds_utc(days[-1], tz)[1]


def _unknown_meter_rejects(readings: pa.Table, known: pa.Array) -> tuple[pa.Table, pa.Table]:
    is_known = pc.is_in(readings["meter_id"], value_set=known)
    unknown = readings.filter(pc.invert(is_known))
    n = unknown.num_rows
    rejects = pa.table(
        {
            "source_file": unknown["source_file"],
            "row": unknown["source_row"],
            "field": pa.array(["meter_id"] * n, pa.string()),
            "value": unknown["meter_id"],
            "reason": pc.binary_join_element_wise(
                "meter ", unknown["meter_id"], " is not in the meter registry", ""
            ),
            "meter_id": unknown["meter_id"],
            "ts": unknown["ts"],
            "landed_at": unknown["landed_at"],
        }
    )
    return readings.filter(is_known), rejects


def write_days(
    platform: Platform, table_name: str, table: pa.Table, days: list[date]
) -> dict[str, int]:
    """Write every day of the window whole, an empty day too, so a re-run replaces it.

    `table` holds rows of these days only; a one-day window is written as it is.
    """
    if len(days) == 1:
        platform.lake.write_partition(table_name, days[0], table)
        return {days[0].isoformat(): table.num_rows}
    day_col = local_day(table["ts"], platform.tz)
    counts = {}
    for day in days:
        part = table.filter(pc.equal(day_col, pa.scalar(day, pa.date32())))
        platform.lake.write_partition(table_name, day, part)
        counts[day.isoformat()] = part.num_rows
    return counts


def ingest_raw_readings(platform: Platform, days: list[date]) -> RawLoad:
    """Parse new landed files and write the window's raw readings; bad rows to the warehouse."""
    refresh = platform.catalog.refresh()
    start, end = window_bounds(days, platform.tz)
    files = platform.catalog.files_between(start, end)
    readings = platform.catalog.readings(files, start, end)
    readings, unknown = _unknown_meter_rejects(readings, current_meters(platform)["meter_id"])
    readings = readings.sort_by(RAW_ORDER)
    rows_by_day = write_days(
        platform, "raw_readings", contract.conform(readings, contract.READINGS), days
    )
    parsed_rejects = platform.catalog.rejected(files)
    rejected = rejected_readings(
        pa.concat_tables([parsed_rejects, unknown.cast(parsed_rejects.schema)]), platform.tz
    )
    in_window = pc.or_kleene(
        pc.is_in(rejected["day"], value_set=pa.array(days, pa.date32())),
        pc.is_null(rejected["day"]),
    )
    rejected = rejected.filter(in_window).sort_by(
        [("source_file", "ascending"), ("row", "ascending"), ("field", "ascending")]
    )
    keys = files["key"].to_pylist()
    platform.warehouse.replace(
        "rejected_readings", rejected, match={"source_file": keys, "day": [*days, None]}
    )
    return RawLoad(
        rows_by_day=rows_by_day,
        files=keys,
        rejected=rejected,
        quarantined=refresh.quarantined,
        landing_problems=record_landing_problems(platform, refresh.problems),
    )


def clean_readings(
    platform: Platform, days: list[date], as_of: datetime, config: vee.VeeConfig | None = None
) -> CleanLoad:
    """VEE day by day, each with the day before as context for runs and gaps across midnight,
    so a day cleans the same in a backfill as in its own daily run."""
    raw = {
        day: platform.lake.read_days("raw_readings", [day], contract.READINGS)
        for day in [days[0] - timedelta(days=1), *days]
    }
    meters = current_meters(platform)
    totals: Counter[str] = Counter()
    flags: Counter[str] = Counter()
    quality: Counter[str] = Counter()
    sufficiency, rows_by_day = [], {}
    for day in days:
        start, end = window_bounds([day], platform.tz)
        clean = partial(
            vee.apply,
            window_start=start,
            window_end=end,
            tz=platform.tz,
            as_of=as_of,
            config=config or vee.VeeConfig(),
        )
        shards = vee.meter_shards(
            [raw[day - timedelta(days=1)], raw[day]],
            meters,
            count=-(-raw[day].num_rows // SHARD_READINGS),
        )
        results = _clean_day(platform, day, shards, clean)
        rows_by_day[day.isoformat()] = sum(result.rows_out for result in results)
        for result in results:
            totals.update(rows_in=result.rows_in, rows_out=result.rows_out)
            flags.update(result.flags_by_rule)
            for count in pc.value_counts(result.cleaned["quality"]).to_pylist():
                quality[count["values"]] += count["counts"]
            sufficiency.append(result.sufficiency)
    table = pa.concat_tables(sufficiency)
    platform.warehouse.replace("meter_day_sufficiency", table, match={"local_day": days})
    return CleanLoad(
        rows_in=totals["rows_in"],
        rows_out=totals["rows_out"],
        flags_by_rule=dict(sorted(flags.items())),
        rows_by_quality=dict(sorted(quality.items())),
        sufficiency=table,
        rows_by_day=rows_by_day,
    )


#: readings a VEE shard takes: a large day is cleaned by meter ranges on every core while the
#: shards already done are encoded into the partition file
SHARD_READINGS = 1_500_000


def _clean_day(
    platform: Platform,
    day: date,
    shards: list[vee.Shard],
    clean: Callable[[pa.Table, pa.Table], vee.VeeResult],
) -> list[vee.VeeResult]:
    """Clean the shards in parallel and write them, in order, as one partition file."""
    results: list[vee.VeeResult] = []

    def cleaned() -> Iterator[pa.Table]:
        workers = min(len(shards), os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for result in pool.map(lambda shard: clean(shard.readings, shard.meters), shards):
                results.append(result)
                yield result.cleaned

    platform.lake.write_partition_parts("cleaned_readings", day, vee.CLEANED_ARROW, cleaned())
    return results
