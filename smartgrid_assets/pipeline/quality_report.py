"""The data quality of a local day at a glance, per feeder: what VEE flagged, how sufficient the
data was, what ingestion rejected or quarantined, and how the asset checks judged the day.

Nothing is recomputed: VEE flags come from `cleaned_readings` in the lake, sufficiency from the
warehouse's `meter_day_sufficiency`, rejected rows from `rejected_readings`, quarantined files
from the landing zone's quarantine, and check outcomes are handed in by the caller (the Dagster
instance holds them). The report is stored as `data_quality_report` and `data_quality_checks`
and rendered as Markdown with a PNG chart.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from smartgrid_assets import contract
from smartgrid_assets.days import day_bounds_utc, days_between, local_date
from smartgrid_assets.ingest.catalog import READINGS_PREFIX
from smartgrid_assets.ingest.span import time_span
from smartgrid_assets.ingest.validate import FileRejected
from smartgrid_assets.pipeline.freshness import NO_FEEDER
from smartgrid_assets.pipeline.registry import current_meters
from smartgrid_assets.platform import Platform
from smartgrid_assets.scratch import connect

QUALITY_CODES = ("actual", "estimated", "edited", "suspect", "missing")
QUALITY_COLOURS = ("#2e7d32", "#1976d2", "#7b1fa2", "#f9a825", "#9e9e9e")
MAX_DAYS_SHOWN = 7  # a backfill's Markdown shows its last days; the table holds them all

QUARANTINED = pa.schema(
    [
        pa.field("local_day", pa.date32()),
        pa.field("file", pa.string()),
        pa.field("reason", pa.string()),
    ]
)


@dataclass(frozen=True)
class QualityReport:
    days: list[date]
    table: pa.Table  # contract.DATA_QUALITY_REPORT
    checks: pa.Table  # contract.DATA_QUALITY_CHECKS
    quarantined: pa.Table  # QUARANTINED

    def day_row(self, day: date) -> dict:
        """The whole-day row (feeder_id null)."""
        rows = self.table.filter(
            pc.and_(pc.equal(self.table["local_day"], day), pc.is_null(self.table["feeder_id"]))
        )
        return rows.to_pylist()[0]

    def feeder_rows(self, day: date) -> list[dict]:
        rows = self.table.filter(
            pc.and_(pc.equal(self.table["local_day"], day), pc.is_valid(self.table["feeder_id"]))
        )
        return rows.sort_by("feeder_id").to_pylist()


# ---- inputs ------------------------------------------------------------------------------
def _day_table(days: list[date], tz: str) -> pa.Table:
    bounds = [day_bounds_utc(day, tz) for day in days]
    return pa.table(
        {
            "local_day": pa.array(days, pa.date32()),
            "start_utc": pa.array([b[0] for b in bounds], contract.UTC_TS),
            "end_utc": pa.array([b[1] for b in bounds], contract.UTC_TS),
        }
    )


def _warehouse_days(platform: Platform, table: str, column: str, days: list[date]) -> pa.Table:
    """Rows of a warehouse table for the days; none when the table does not exist yet."""
    if not platform.warehouse.has_table(table):
        return pa.table({column: pa.array([], pa.date32())})
    return platform.warehouse.read(
        f"SELECT * FROM {table} WHERE {column} IN (SELECT unnest(?))", [days]
    )


def _vee_flags(platform: Platform, days: list[date]) -> pa.Table:
    """meter_id, local_day and vee_rules of the days' cleaned readings (the lake)."""
    dataset = platform.lake.dataset("cleaned_readings", contract.CLEANED_READINGS)
    if dataset is None:
        return pa.table(
            {
                "meter_id": pa.array([], pa.string()),
                "local_day": pa.array([], pa.date32()),
                "vee_rules": pa.array([], pa.list_(pa.string())),
            }
        )
    table = dataset.to_table(
        columns=["meter_id", "day", "vee_rules"],
        filter=pc.field("day").isin(pa.array(days, pa.date32())),
    )
    return table.rename_columns(["meter_id", "local_day", "vee_rules"])


def quarantined_files(platform: Platform, days: list[date]) -> pa.Table:
    """Quarantined readings files by the local days they are about.

    A file's days are those of its readable timestamps (what the landing sensor reads); a file
    too broken for that counts on the local day it landed, the only day it is known by.
    """
    rows = []
    for doc in platform.landing.quarantined():
        key = doc["key"]
        if not key.startswith(READINGS_PREFIX):
            continue
        landed = platform.landing.stat(key)
        try:
            span = time_span(key, platform.landing.read_bytes(key)) if landed else None
        except FileRejected:
            span = None
        if span is not None:
            first, last = (local_date(t, platform.tz) for t in span)
            file_days = days_between(first, last + timedelta(days=1))
        elif landed is not None:
            file_days = [local_date(landed.last_modified, platform.tz)]
        else:
            file_days = []
        rows += [
            {"local_day": d, "file": key, "reason": doc.get("reason")}
            for d in file_days
            if d in days
        ]
    return pa.Table.from_pylist(rows, schema=QUARANTINED)


# ---- the report --------------------------------------------------------------------------
#: the sufficiency counts of a day and feeder (meter_day_sufficiency summed), zero when absent
_SUFFICIENCY_COUNTS = (
    "intervals_expected",
    "intervals_actual",
    "intervals_estimated",
    "intervals_edited",
    "intervals_suspect",
    "intervals_missing",
)


def _sufficiency_columns(alias: str) -> str:
    """The counts from `alias`, zero where it has no row, with the sufficiency they give."""
    counts = [f"coalesce({alias}.{c}, 0) AS {c}" for c in _SUFFICIENCY_COUNTS]
    return ",\n       ".join(
        [
            *counts,
            f"{alias}.intervals_actual / nullif({alias}.intervals_expected, 0) AS sufficiency",
            f"coalesce({alias}.meter_channels_below_90pct, 0) AS meter_channels_below_90pct,",
        ]
    )


def _summed_counts() -> str:
    columns = [*_SUFFICIENCY_COUNTS, "meter_channels_below_90pct"]
    return ",\n           ".join(f"sum({c}) AS {c}" for c in columns) + ","


_FEEDER_SQL = f"""
WITH m AS (
    SELECT meter_id, coalesce(feeder_id, $none) AS feeder_id, installed_at, removed_at
    FROM meters
), active AS (
    SELECT d.local_day, m.feeder_id, count(*) AS meters
    FROM days d JOIN m
      ON m.installed_at < d.end_utc AND (m.removed_at IS NULL OR m.removed_at > d.start_utc)
    GROUP BY ALL
), suff AS (
    SELECT s.local_day, coalesce(m.feeder_id, $none) AS feeder_id,
           count(DISTINCT s.meter_id) FILTER (WHERE s.actual + s.edited + s.suspect > 0)
               AS meters_reporting,
           sum(s.expected) AS intervals_expected, sum(s.actual) AS intervals_actual,
           sum(s.estimated) AS intervals_estimated, sum(s.edited) AS intervals_edited,
           sum(s.suspect) AS intervals_suspect, sum(s.missing) AS intervals_missing,
           count(*) FILTER (WHERE s.sufficiency < 0.9) AS meter_channels_below_90pct
    FROM sufficiency s LEFT JOIN m USING (meter_id)
    GROUP BY ALL
), rules AS (
    SELECT local_day, feeder_id, rule, count(*) AS intervals
    FROM (
        SELECT f.local_day, coalesce(m.feeder_id, $none) AS feeder_id, unnest(f.vee_rules) AS rule
        FROM flags f LEFT JOIN m USING (meter_id)
    )
    GROUP BY ALL
), flagged AS (
    SELECT f.local_day, coalesce(m.feeder_id, $none) AS feeder_id, count(*) AS intervals_flagged
    FROM flags f LEFT JOIN m USING (meter_id)
    WHERE len(f.vee_rules) > 0
    GROUP BY ALL
), vee AS (
    SELECT local_day, feeder_id,
           to_json(map_from_entries(list((rule, intervals) ORDER BY rule))) AS vee_flags
    FROM rules GROUP BY ALL
), rej AS (
    SELECT r.day AS local_day, m.feeder_id,
           count(DISTINCT r.source_file || '#' || CAST(r."row" AS VARCHAR)) AS rows_rejected
    FROM rejected r JOIN m USING (meter_id)
    GROUP BY ALL
), keys AS (
    SELECT local_day, feeder_id FROM active UNION SELECT local_day, feeder_id FROM suff
    UNION SELECT local_day, feeder_id FROM flagged UNION SELECT local_day, feeder_id FROM rej
)
SELECT k.local_day, k.feeder_id,
       coalesce(a.meters, 0) AS meters,
       coalesce(s.meters_reporting, 0) AS meters_reporting,
       {_sufficiency_columns("s")}
       coalesce(f.intervals_flagged, 0) AS intervals_flagged,
       coalesce(CAST(v.vee_flags AS VARCHAR), '{{}}') AS vee_flags,
       coalesce(r.rows_rejected, 0) AS rows_rejected,
       NULL AS files_quarantined, NULL AS checks_passed, NULL AS checks_failed
FROM keys k
LEFT JOIN active a USING (local_day, feeder_id)
LEFT JOIN suff s USING (local_day, feeder_id)
LEFT JOIN flagged f USING (local_day, feeder_id)
LEFT JOIN vee v USING (local_day, feeder_id)
LEFT JOIN rej r USING (local_day, feeder_id)
"""

_DAY_SQL = f"""
WITH totals AS (
    SELECT local_day, sum(meters) AS meters, sum(meters_reporting) AS meters_reporting,
           {_summed_counts()}
           sum(intervals_flagged) AS intervals_flagged
    FROM feeders GROUP BY local_day
), rules AS (
    SELECT local_day, key AS rule, sum(CAST(value AS BIGINT)) AS intervals
    FROM feeders, json_each(vee_flags)
    GROUP BY ALL
), vee AS (
    SELECT local_day, to_json(map_from_entries(list((rule, intervals) ORDER BY rule))) AS vee_flags
    FROM rules GROUP BY local_day
), rej AS (
    SELECT day AS local_day,
           count(DISTINCT source_file || '#' || CAST("row" AS VARCHAR)) AS rows_rejected
    FROM rejected GROUP BY ALL
), quar AS (
    SELECT local_day, count(DISTINCT file) AS files_quarantined FROM quarantined GROUP BY ALL
), chk AS (
    SELECT local_day, count(*) FILTER (WHERE passed) AS checks_passed,
           count(*) FILTER (WHERE NOT passed) AS checks_failed
    FROM checks GROUP BY ALL
)
SELECT d.local_day, NULL AS feeder_id,
       coalesce(t.meters, 0) AS meters, coalesce(t.meters_reporting, 0) AS meters_reporting,
       {_sufficiency_columns("t")}
       coalesce(t.intervals_flagged, 0) AS intervals_flagged,
       coalesce(CAST(v.vee_flags AS VARCHAR), '{{}}') AS vee_flags,
       coalesce(r.rows_rejected, 0) AS rows_rejected,
       coalesce(q.files_quarantined, 0) AS files_quarantined,
       coalesce(c.checks_passed, 0) AS checks_passed,
       coalesce(c.checks_failed, 0) AS checks_failed
FROM days d
LEFT JOIN totals t USING (local_day)
LEFT JOIN vee v USING (local_day)
LEFT JOIN rej r USING (local_day)
LEFT JOIN quar q USING (local_day)
LEFT JOIN chk c USING (local_day)
"""


def quality_table(
    days: list[date],
    tz: str,
    meters: pa.Table,
    sufficiency: pa.Table,
    flags: pa.Table,
    rejected: pa.Table,
    quarantined: pa.Table,
    checks: pa.Table,
) -> pa.Table:
    """The report rows: one per local day and feeder, and one per day with feeder_id null."""
    con = connect()
    try:
        con.register("days", _day_table(days, tz))
        con.register("meters", meters)
        con.register("sufficiency", _or_empty(sufficiency, _SUFFICIENCY_COLUMNS))
        con.register("flags", flags)
        con.register("rejected", _or_empty(rejected, _REJECTED_COLUMNS))
        con.register("quarantined", quarantined)
        con.register("checks", checks)
        feeders = con.sql(_FEEDER_SQL, params={"none": NO_FEEDER}).to_arrow_table()
        con.register("feeders", feeders)
        whole_days = con.sql(_DAY_SQL).to_arrow_table()
    finally:
        con.close()
    schema = contract.DATA_QUALITY_REPORT
    table = pa.concat_tables([feeders.cast(schema), whole_days.cast(schema)])
    return table.sort_by([("local_day", "ascending"), ("feeder_id", "ascending")])


_SUFFICIENCY_COLUMNS = {
    "meter_id": pa.string(),
    "local_day": pa.date32(),
    **{name: pa.int64() for name in ("expected", "actual", "estimated", "edited")},
    **{name: pa.int64() for name in ("suspect", "missing")},
    "sufficiency": pa.float64(),
}
_REJECTED_COLUMNS = {
    "source_file": pa.string(),
    "row": pa.int64(),
    "meter_id": pa.string(),
    "day": pa.date32(),
}


def _or_empty(table: pa.Table, columns: dict[str, pa.DataType]) -> pa.Table:
    """The table, or an empty one with the columns the SQL needs when the source is absent."""
    if all(name in table.column_names for name in columns):
        return table
    return pa.schema(list(columns.items())).empty_table()


def check_table(outcomes: list[dict]) -> pa.Table:
    """Check outcomes as handed in (one dict per check and day) in the contract's schema."""
    table = pa.Table.from_pylist(outcomes, schema=contract.DATA_QUALITY_CHECKS)
    return table.sort_by(
        [("local_day", "ascending"), ("asset_key", "ascending"), ("check_name", "ascending")]
    )


def load_quality_report(
    platform: Platform, days: list[date], check_outcomes: list[dict]
) -> QualityReport:
    """Build the days' report from what the pipeline stored and write it to the warehouse."""
    checks = check_table(check_outcomes)
    quarantined = quarantined_files(platform, days)
    table = quality_table(
        days,
        platform.tz,
        current_meters(platform),
        _warehouse_days(platform, "meter_day_sufficiency", "local_day", days),
        _vee_flags(platform, days),
        _warehouse_days(platform, "rejected_readings", "day", days),
        quarantined,
        checks,
    )
    platform.warehouse.replace("data_quality_report", table, match={"local_day": days})
    platform.warehouse.replace("data_quality_checks", checks, match={"local_day": days})
    return QualityReport(days=days, table=table, checks=checks, quarantined=quarantined)


# ---- rendering ---------------------------------------------------------------------------
def _shares(row: dict) -> list[float]:
    """Intervals by quality as shares of the expected ones (missing: what has no row)."""
    expected = row["intervals_expected"] or 0
    if not expected:
        return [0.0] * len(QUALITY_CODES)
    return [row[f"intervals_{code}"] / expected for code in QUALITY_CODES]


def render_chart(report: QualityReport, day: date) -> bytes:
    """A PNG: per feeder, its intervals by quality; beside it, the day's VEE flags by rule."""
    feeders = report.feeder_rows(day)
    whole = report.day_row(day)
    flags = sorted(json.loads(whole["vee_flags"]).items(), key=lambda kv: kv[1])
    height = 1.6 + 0.32 * max(len(feeders), len(flags), 3)
    figure = Figure(figsize=(10, height), dpi=80, layout="constrained")
    FigureCanvasAgg(figure)
    by_quality, by_rule = figure.subplots(1, 2, width_ratios=(3, 2))
    names = [row["feeder_id"] for row in feeders]
    left = [0.0] * len(feeders)
    for i, (code, colour) in enumerate(zip(QUALITY_CODES, QUALITY_COLOURS, strict=True)):
        widths = [_shares(row)[i] for row in feeders]
        by_quality.barh(names, widths, left=left, color=colour, label=code)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    by_quality.set_xlim(0, 1)
    by_quality.invert_yaxis()
    by_quality.set_xlabel("share of expected intervals")
    by_quality.set_title("intervals by quality, per feeder")
    figure.legend(loc="outside lower left", ncols=len(QUALITY_CODES), fontsize="small")
    if flags:
        by_rule.barh([rule for rule, _ in flags], [n for _, n in flags], color="#c62828")
    else:
        by_rule.text(0.5, 0.5, "no VEE flags", ha="center", va="center")
    by_rule.set_xlabel("intervals flagged")
    by_rule.set_title("VEE flags by rule")
    figure.suptitle(f"Data quality {day.isoformat()}: {_headline(whole)}")
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def _percent(row: dict) -> str:
    return "n/a" if row["sufficiency"] is None else f"{row['sufficiency']:.1%}"


def _headline(whole: dict) -> str:
    return (
        f"sufficiency {_percent(whole)}, checks failed: {whole['checks_failed']}, "
        f"rows rejected: {whole['rows_rejected']}, files quarantined: {whole['files_quarantined']}"
    )


def md_rows(rows: list[dict], columns: list[str]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = (str(row[c]).replace("|", "\\|").replace("\n", " ") for c in columns)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_markdown(report: QualityReport) -> str:
    """Markdown of the last days of the report, each with its chart as an embedded PNG."""
    lines: list[str] = []
    shown = report.days[-MAX_DAYS_SHOWN:]
    if len(shown) < len(report.days):
        lines.append(f"_{len(report.days) - len(shown)} earlier days are in the table only_\n")
    for day in shown:
        whole = report.day_row(day)
        png = base64.b64encode(render_chart(report, day)).decode()
        lines += [
            f"## {day.isoformat()}",
            "",
            f"![data quality {day.isoformat()}](data:image/png;base64,{png})",
            "",
            f"**{_headline(whole)}**, checks passed: {whole['checks_passed']}",
            "",
        ]
        day_checks = report.checks.filter(pc.equal(report.checks["local_day"], day)).to_pylist()
        failed = [c for c in day_checks if not c["passed"]]
        if failed:
            lines += ["### Failed checks", ""]
            lines += md_rows(failed, ["asset_key", "check_name", "severity", "description"])
            lines.append("")
        feeders = [{**row, "sufficiency": _percent(row)} for row in report.feeder_rows(day)]
        lines += ["### Feeders", ""]
        lines += md_rows(
            feeders,
            [
                "feeder_id",
                "meters",
                "meters_reporting",
                "sufficiency",
                "intervals_estimated",
                "intervals_edited",
                "intervals_suspect",
                "intervals_missing",
                "intervals_flagged",
                "rows_rejected",
            ],
        )
        files = report.quarantined.filter(pc.equal(report.quarantined["local_day"], day))
        if files.num_rows:
            lines += ["", "### Quarantined files", ""]
            lines += md_rows(files.to_pylist(), ["file", "reason"])
        lines.append("")
    return "\n".join(lines)
