"""Run an asset's expectation groups on its partitions with GX Core and summarise the results.

`run_checks(platform, asset, days)` builds one DuckDB workspace per batch of up to
`BATCH_DAYS` local days (see `workspace.py`), validates every group as its own GX suite over a
SQL query asset on it, each expectation's query answering per day, and returns one
`GroupResult` per group and day: passed, unexpected count, a sample of offending rows and the
outcome of each expectation. An expectation GX could not evaluate fails its group on every day
of the batch: a check that cannot look does not pass.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import tempfile
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from smartgrid_assets.platform import Platform
from smartgrid_assets.quality import engine
from smartgrid_assets.quality.suites import (
    ERROR,
    IN_SERVICE,
    PER_METER,
    SUITE_VERSION,
    WARN,
    Group,
    Partition,
    QualityConfig,
    groups_for,
)
from smartgrid_assets.quality.workspace import build_workspace


@dataclass(frozen=True)
class ExpectationOutcome:
    expectation: str
    passed: bool
    unexpected_count: int
    error: str | None = None


@dataclass(frozen=True)
class GroupResult:
    asset: str
    check: str
    day: dt.date | None
    passed: bool
    severity: str
    blocking: bool
    unexpected_count: int
    sample: list[dict[str, Any]]
    expectations: list[ExpectationOutcome] = field(default_factory=list)
    suite_version: str = SUITE_VERSION
    #: of the meters in service, the share a per-meter expectation found affected
    affected_share: float | None = None

    @property
    def holds_day(self) -> bool:
        """A failed blocking ERROR result: what is downstream does not build the day."""
        return self.blocking and not self.passed and self.severity == ERROR


#: days validated in one workspace and one GX run: a long backfill is checked a month at a
#: time (GX's work is per expectation, not per row), each batch a few bounded queries
BATCH_DAYS = 31


def run_checks(
    platform: Platform,
    asset: str,
    days: list[dt.date] | None,
    checks: Collection[str] | None = None,
    config: QualityConfig | None = None,
) -> list[GroupResult]:
    """Every group of `asset` (or those named in `checks`) on each local day of `days`; `days`
    None for an unpartitioned asset (the registry)."""
    groups = [g for g in groups_for(asset) if checks is None or g.name in checks]
    if not groups:
        return []
    config = config or QualityConfig(
        max_affected_share=platform.settings.quality_max_affected_share
    )
    batches = (
        [None]
        if days is None
        else [tuple(days[i : i + BATCH_DAYS]) for i in range(0, len(days), BATCH_DAYS)]
    )
    results: list[GroupResult] = []
    for batch in batches:
        partition = Partition(batch, config)
        with tempfile.TemporaryDirectory(prefix="smartgrid-quality-") as tmp:
            path = Path(tmp) / "workspace.duckdb"
            build_workspace(platform, asset, list(batch) if batch else None, path)
            fleet = _fleet(path) if batch and any(g.judges_fleet for g in groups) else {}
            results += validate(path, groups, partition, fleet)
    return results


def _fleet(path: Path) -> dict[dt.date, int]:
    """Meters in service on each day of the workspace's batch."""
    con = duckdb.connect(str(path))
    try:
        rows = con.execute(
            f"SELECT d.local_day, count(m.meter_id) FROM days AS d "
            f"LEFT JOIN ({IN_SERVICE}) AS m ON m.local_day = d.local_day GROUP BY 1"
        ).fetchall()
    finally:
        con.close()
    return {day: int(n) for day, n in rows}


def _by_day(query: str, sample_rows: int) -> str:
    """A partitioned expectation's query, one row per day it finds something on: the count
    and a sample, so a batch's one query tells each day its own verdict."""
    return (
        f"SELECT local_day, count(*) AS unexpected, list(to_json(q))[1:{sample_rows}] AS sample "
        f"FROM ({query}) AS q GROUP BY local_day"
    )


def validate(
    path: Path, groups: list[Group], partition: Partition, fleet: dict[dt.date, int] | None = None
) -> list[GroupResult]:
    """Validate the groups on the workspace DuckDB file at `path`: one GX suite and run per
    relation (the asset's suite, or its part on that relation), each expectation tagged with
    its group, so one query pass serves every check on the relation; one result per group and
    day of the batch."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
    )

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    # in memory only: the default ephemeral context leaves a docs-site folder in /tmp per run
    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults()),
    )
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}
    source = context.data_sources.add_sql(
        name="workspace",
        connection_string=engine.connection_string(str(path)),
        kwargs={"connect_args": {"read_only": True}},
    )
    by_relation: dict[str, list[Group]] = {}
    for group in groups:
        by_relation.setdefault(group.relation, []).append(group)
    validations: dict[str, list[Any]] = {g.name: [] for g in groups}
    partitioned = partition.days is not None
    try:
        for relation, members in by_relation.items():
            expectations = []
            for group in members:
                for expectation in group.build(partition):
                    if partitioned:
                        expectation.unexpected_rows_query = _by_day(
                            expectation.unexpected_rows_query, partition.config.sample_rows
                        )
                    expectation.meta = {**(expectation.meta or {}), "group": group.name}
                    expectations.append(expectation)
            suite = context.suites.add(
                gx.ExpectationSuite(
                    name=f"{members[0].asset}.{relation}",
                    expectations=expectations,
                    meta={"suite_version": SUITE_VERSION},
                )
            )
            asset = source.add_query_asset(name=relation, query=f"SELECT * FROM {relation}")
            definition = context.validation_definitions.add(
                gx.ValidationDefinition(
                    name=relation,
                    data=asset.add_batch_definition_whole_table("partition"),
                    suite=suite,
                )
            )
            # COMPLETE: the registry's rows, or one row per day an expectation found something
            outcome = definition.run(
                result_format={
                    "result_format": "COMPLETE",
                    "partial_unexpected_count": partition.config.sample_rows,
                    "unexpected_index_column_names": list(members[0].keys),
                }
            )
            for result in outcome.results:
                validations[result.expectation_config.meta["group"]].append(result)
    finally:
        source.get_engine().dispose()
    if not partitioned:
        return [_summarise(g, partition, None, validations[g.name], {}) for g in groups]
    return [
        _summarise(g, partition, day, validations[g.name], fleet or {})
        for day in partition.days or ()
        for g in groups
    ]


def _found(validation: Any, day: dt.date | None) -> tuple[int, list[dict[str, Any]]]:
    """What an expectation found on `day` (None: the unpartitioned registry): count, sample."""
    result = validation.result or {}
    if day is None:
        if "unexpected_count" in result:
            rows = result.get("partial_unexpected_index_list") or [
                {"value": v} for v in result.get("partial_unexpected_list") or []
            ]
            return int(result["unexpected_count"] or 0), rows
        rows = (result.get("details") or {}).get("unexpected_rows") or []
        return int(result.get("observed_value") or 0), rows
    for row in (result.get("details") or {}).get("unexpected_rows") or []:
        row = dict(row)
        if _as_date(row.get("local_day")) == day:
            return int(row["unexpected"]), [json.loads(r) for r in row.get("sample") or []]
    return 0, []


def _as_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)) if value is not None else None


def _summarise(
    group: Group,
    partition: Partition,
    day: dt.date | None,
    validations: list[Any],
    fleet: dict[dt.date, int],
) -> GroupResult:
    """The group's verdict on `day`; a group failed only by per-meter expectations whose
    affected meters are at most `max_affected_share` of the fleet in service warns instead."""
    outcomes, sample = [], []
    affected, structural_failed = 0, False
    for validation in validations:
        name = _name(validation.expectation_config)
        error = _error(validation.exception_info)
        count, rows = _found(validation, day)
        passed = (count == 0 if day is not None else bool(validation.success)) and error is None
        if (validation.expectation_config.meta or {}).get(PER_METER) and error is None:
            affected += count
        elif not passed:
            structural_failed = True
        outcomes.append(ExpectationOutcome(name, passed, count, error))
        room = partition.config.sample_rows - len(sample)
        sample += [{"expectation": name, **_plain(dict(r))} for r in rows[: max(room, 0)]]
    in_service = fleet.get(day, 0) if day is not None else 0
    share = min(affected / in_service, 1.0) if in_service else None
    severity = group.severity
    tolerated = share is not None and share <= partition.config.max_affected_share
    if severity == ERROR and not structural_failed and affected and tolerated:
        severity = WARN
    return GroupResult(
        asset=group.asset,
        check=group.name,
        day=day,
        passed=all(o.passed for o in outcomes),
        severity=severity,
        blocking=group.blocking,
        unexpected_count=sum(o.unexpected_count for o in outcomes),
        sample=sample,
        expectations=outcomes,
        affected_share=share if affected else None,
    )


def _name(config: Any) -> str:
    kwargs = config.kwargs
    target = kwargs.get("column") or "/".join(
        str(kwargs[k]) for k in ("column_A", "column_B") if k in kwargs
    )
    return f"{config.type}({target})" if target else config.description or config.type


def _error(info: Any) -> str | None:
    """The first exception GX caught while evaluating an expectation, if any."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe values for metadata."""
    out = {}
    for key, value in row.items():
        if isinstance(value, dt.datetime | dt.date):
            value = value.isoformat()
        elif isinstance(value, decimal.Decimal):
            value = float(value)
        elif isinstance(value, list):
            value = [_plain({"v": v})["v"] for v in value]
        elif value is not None and not isinstance(value, str | int | float | bool):
            value = str(value)
        out[key] = value
    return out
