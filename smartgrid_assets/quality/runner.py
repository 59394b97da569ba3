"""Run an asset's expectation groups on its partitions with GX Core and summarise the results.

`run_checks(platform, asset, days)` builds one DuckDB workspace per local day (see
`workspace.py`), validates every group as its own GX suite over a SQL query asset on it, and
returns one `GroupResult` per group and day: passed, unexpected count, a sample of offending
rows and the outcome of each expectation. An expectation GX could not evaluate fails its group:
a check that cannot look does not pass.
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
import tempfile
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smartgrid_assets.days import day_bounds_utc
from smartgrid_assets.platform import Platform
from smartgrid_assets.quality import engine
from smartgrid_assets.quality.suites import (
    SUITE_VERSION,
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
    config = config or QualityConfig()
    results: list[GroupResult] = []
    for day in days if days is not None else [None]:
        bounds = day_bounds_utc(day, platform.tz) if day is not None else (None, None)
        partition = Partition(day, *bounds, config)
        with tempfile.TemporaryDirectory(prefix="smartgrid-quality-") as tmp:
            path = Path(tmp) / "workspace.duckdb"
            build_workspace(platform, asset, partition, path)
            results += validate(path, groups, partition)
    return results


def validate(path: Path, groups: list[Group], partition: Partition) -> list[GroupResult]:
    """Validate the groups on the workspace DuckDB file at `path`: one GX suite and run per
    relation (the asset's suite, or its part on that relation), each expectation tagged with
    its group, so one query pass serves every check on the relation."""
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
    try:
        for relation, members in by_relation.items():
            expectations = []
            for group in members:
                for expectation in group.build(partition):
                    expectation.meta = {"group": group.name}
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
            # COMPLETE: every relation is a partition's warehouse rows or per-series aggregates
            # (at most one row per meter and channel), never millions of readings
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
    return [_summarise(g, partition, validations[g.name]) for g in groups]


def _summarise(group: Group, partition: Partition, validations: list[Any]) -> GroupResult:
    outcomes, sample = [], []
    for validation in validations:
        name = _name(validation.expectation_config)
        result = validation.result or {}
        error = _error(validation.exception_info)
        if "unexpected_count" in result:
            count = int(result["unexpected_count"] or 0)
            rows = result.get("partial_unexpected_index_list") or [
                {"value": v} for v in result.get("partial_unexpected_list") or []
            ]
        else:
            count = int(result.get("observed_value") or 0)
            rows = (result.get("details") or {}).get("unexpected_rows") or []
        passed = bool(validation.success) and error is None
        outcomes.append(ExpectationOutcome(name, passed, count, error))
        room = partition.config.sample_rows - len(sample)
        sample += [{"expectation": name, **_plain(dict(r))} for r in rows[: max(room, 0)]]
    return GroupResult(
        asset=group.asset,
        check=group.name,
        day=partition.day,
        passed=all(o.passed for o in outcomes),
        severity=group.severity,
        blocking=group.blocking,
        unexpected_count=sum(o.unexpected_count for o in outcomes),
        sample=sample,
        expectations=outcomes,
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
