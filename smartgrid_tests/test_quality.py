"""The GX suites as asset checks: every group passes on clean synthetic data and fails, with
its sample, on data broken the way it guards against; a failed blocking check on
cleaned_readings stops what is downstream in the run, and holds it under automation."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date, datetime, timedelta

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from smartgrid_assets import contract, quality
from smartgrid_assets.defs import features, readings, registry, weather
from smartgrid_assets.defs import quality as quality_defs
from smartgrid_assets.pipeline.land import land_tree
from smartgrid_assets.platform import Platform
from smartgrid_assets.settings import load_settings
from smartgrid_assets.synth import synthesize
from smartgrid_tests.conftest import TEST_TZ

DAY, DST_DAY = date(2026, 3, 28), date(2026, 3, 29)
ASSETS = dg.load_assets_from_modules([registry, weather, readings, features])
CHECKS = [quality_defs.meters_checks, quality_defs.weather_checks]
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


@dataclasses.dataclass
class Graph:
    platform: Platform
    instance: dg.DagsterInstance
    result: dg.ExecuteInProcessResult


def _run(platform, instance, selection, first=None, last=None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*ASSETS, *CHECKS],
        selection=selection,
        instance=instance,
        resources={"platform": platform},
        tags={
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
        }
        if first
        else None,
        run_config=QUIET,
        raise_on_error=False,
    )


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Graph:
    home = tmp_path_factory.mktemp("quality")
    synthesize(home / "utility", meters=60, days=5, seed=11, tz=TEST_TZ, start=date(2026, 3, 27))
    settings = dataclasses.replace(load_settings({"SMARTGRID_HOME": str(home)}), tz=TEST_TZ)
    platform = Platform(settings)
    land_tree(platform.landing, home / "utility")
    instance = dg.DagsterInstance.ephemeral()
    assert _run(platform, instance, ["meters"]).success
    result = _run(platform, instance, ["weather", "raw_readings", "cleaned_readings"], DAY, DST_DAY)
    assert result.success
    return Graph(platform, instance, result)


def _evaluations(result: dg.ExecuteInProcessResult) -> list:
    return [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]


def test_every_check_passes_on_clean_synthetic_data(graph: Graph) -> None:
    evaluations = _evaluations(graph.result)
    by_key = {(e.asset_key.to_user_string(), e.check_name, e.partition) for e in evaluations}
    for group in quality.GROUPS:
        if group.asset in ("raw_readings", "cleaned_readings", "weather"):
            for day in (DAY, DST_DAY):
                assert (group.asset, group.name, day.isoformat()) in by_key, group.name
    assert all(e.passed for e in evaluations), [e.check_name for e in evaluations if not e.passed]
    cleaned = next(e for e in evaluations if e.check_name == "cleaned_row_count")
    assert cleaned.blocking and cleaned.metadata["unexpected_count"].value == 0
    assert cleaned.target_materialization_data is not None, "result targets the day's write"
    meters = quality.run_checks(graph.platform, "meters", None)
    forecasts = quality.run_checks(graph.platform, "load_forecasts", [DAY])
    assert [r.check for r in meters] == ["meters_keys", "meters_validity"]
    assert all(r.passed for r in [*meters, *forecasts])


# ---- broken data: each group fails on what it guards against ---------------------------------
def _rewrite(platform: Platform, table: str, day: date, change: Callable[[pa.Table], pa.Table]):
    """Replace a lake partition with a changed copy (nulls allowed); returns the original."""
    original = platform.lake.read_partition(table, day)
    changed = change(original)
    path = platform.lake.location(f"{table}/day={day.isoformat()}/part-0.parquet")
    pq.write_table(changed.cast(pa.schema([f.with_nullable(True) for f in changed.schema])), path)
    return original


def _set(table: pa.Table, column: str, row: int, value: object) -> pa.Table:
    values = table[column].to_pylist()
    values[row] = value
    field = table.schema.field(column).with_nullable(True)
    return table.set_column(
        table.schema.get_field_index(column), field, pa.array(values, field.type)
    )


def _first_a_row(table: pa.Table) -> int:
    mask = pc.and_(pc.equal(table["quality"], "A"), pc.equal(table["channel"], "delivered"))
    return pc.index(mask, True).as_py()


def _drop_a_fifth(t: pa.Table) -> pa.Table:
    return t.slice(0, t.num_rows * 4 // 5)


def _estimate_most(t: pa.Table) -> pa.Table:
    return t.set_column(
        t.schema.get_field_index("quality"), "quality", pa.array(["E"] * t.num_rows)
    )


def _shift_ts(t: pa.Table, row: int, by: timedelta) -> pa.Table:
    return _set(t, "ts", row, t["ts"][row].as_py() + by)


LAKE_BREAKS = [
    ("raw_readings", "raw_keys", lambda t: _set(t, "channel", 0, "sideways")),
    ("raw_readings", "raw_in_partition_day", lambda t: _shift_ts(t, 0, timedelta(days=1))),
    ("cleaned_readings", "cleaned_keys", lambda t: _set(t, "kwh", _first_a_row(t), None)),
    ("cleaned_readings", "cleaned_unique", lambda t: pa.concat_tables([t, t.slice(0, 1)])),
    (
        "cleaned_readings",
        "cleaned_intervals_aligned",
        lambda t: _shift_ts(t, _first_a_row(t), timedelta(minutes=7)),
    ),
    (
        "cleaned_readings",
        "cleaned_values_in_class_range",
        lambda t: _set(t, "kwh", _first_a_row(t), 5e4),
    ),
    ("cleaned_readings", "cleaned_row_count", _drop_a_fifth),
    ("cleaned_readings", "cleaned_estimated_share", _estimate_most),
]


@pytest.mark.parametrize(("asset", "check", "change"), LAKE_BREAKS, ids=[b[1] for b in LAKE_BREAKS])
def test_each_readings_check_fails_on_what_it_guards_against(graph, asset, check, change) -> None:
    original = _rewrite(graph.platform, asset, DAY, change)
    try:
        results = {r.check: r for r in quality.run_checks(graph.platform, asset, [DAY])}
    finally:
        graph.platform.lake.write_partition(asset, DAY, original)
    failed = results[check]
    assert not failed.passed and failed.unexpected_count >= 1
    assert failed.sample and failed.sample[0]["expectation"]
    assert any(not o.passed and o.unexpected_count for o in failed.expectations)
    blocking = asset == "cleaned_readings"
    assert failed.blocking == blocking
    assert failed.severity == (quality.ERROR if blocking else quality.WARN)


def _forecasts(day: date) -> pa.Table:
    """One clean forecast series for `day` (23 hours: the spring DST day's eve is 24 h)."""
    issued = datetime.fromisoformat("2026-03-27T00:00:00+01:00")
    hours = [issued + timedelta(hours=24 + h) for h in range(23)]
    n = len(hours)
    values = {
        "level": ["feeder"] * n,
        "asset_id": ["F1"] * n,
        "model": ["gbm"] * n,
        "issued_at": pa.array([issued] * n, contract.UTC_TS),
        "target_day": pa.array([day] * n, pa.date32()),
        "ts": pa.array(hours, contract.UTC_TS),
        "p10": [1.0] * n,
        "p90": [3.0] * n,
        "quantity": ["net"] * n,
    }
    columns = [
        values[f.name] if f.name in values else pa.array([2.0] * n, f.type)
        for f in contract.LOAD_FORECASTS
    ]
    return pa.Table.from_arrays(columns, schema=contract.LOAD_FORECASTS)


WAREHOUSE_BREAKS = [
    ("meters", "meters_keys", lambda t: _set(t, "customer_class", 0, "household")),
    ("meters", "meters_validity", lambda t: _set(t, "multiplier", 0, -1.0)),
    ("weather_observed", "weather_observed_valid", lambda t: _set(t, "temperature_c", 0, 99.0)),
    ("load_forecasts", "forecast_quantiles_ordered", lambda t: _set(t, "p10", 3, 2.5)),
    ("load_forecasts", "forecast_keys", lambda t: pa.concat_tables([t, t.slice(0, 1)])),
]


@pytest.mark.parametrize(
    ("table", "check", "change"), WAREHOUSE_BREAKS, ids=[b[1] for b in WAREHOUSE_BREAKS]
)
def test_each_warehouse_check_fails_on_what_it_guards_against(graph, table, check, change):
    platform = graph.platform
    if table == "load_forecasts":
        platform.warehouse.replace(table, _forecasts(DAY), match={"target_day": [DAY]})
        table_rows = _forecasts(DAY)
    else:
        table_rows = contract.conform(
            platform.warehouse.read(f"SELECT * FROM {table} ORDER BY ALL"), contract.SCHEMAS[table]
        )
    asset = {"weather_observed": "weather"}.get(table, table)
    days = None if asset == "meters" else [DAY]
    assert all(r.passed for r in quality.run_checks(platform, asset, days, checks=[check]))
    platform.warehouse.replace(table, change(table_rows), match=None)
    try:
        (result,) = quality.run_checks(platform, asset, days, checks=[check])
    finally:
        platform.warehouse.replace(table, table_rows)
    assert not result.passed and result.unexpected_count >= 1 and result.sample


# ---- blocking -----------------------------------------------------------------------------
def test_a_failed_blocking_check_holds_its_day_and_the_run_goes_on(graph, monkeypatch) -> None:
    """A VEE regression that writes a duplicate interval on the DST day: in a run over two
    days, its cleaned_unique check fails for that day only, which is held (recorded, its check
    failed per day), and meter_hourly builds the other day in the same run. A run of the held
    day alone fails and runs nothing downstream; once mended, a re-run releases the day."""
    real = readings.clean_readings

    def duplicating(platform, days, **kwargs):
        load = real(platform, days, **kwargs)
        if DST_DAY in days:
            table = platform.lake.read_partition("cleaned_readings", DST_DAY)
            platform.lake.write_partition(
                "cleaned_readings", DST_DAY, pa.concat_tables([table, table.slice(0, 1)])
            )
        return load

    monkeypatch.setattr(readings, "clean_readings", duplicating)
    instance = dg.DagsterInstance.ephemeral()
    selection = ["cleaned_readings", "meter_hourly"]
    result = _run(graph.platform, instance, selection, DAY, DST_DAY)
    assert result.success, "the day that passed goes on"
    evaluations = {(e.check_name, e.partition): e for e in _evaluations(result)}
    failed = evaluations[("cleaned_unique", DST_DAY.isoformat())]
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    assert failed.metadata["unexpected_count"].value == 1
    assert "distinct_slots" in failed.metadata["sample"].value
    assert "held" in failed.metadata
    assert evaluations[("cleaned_unique", DAY.isoformat())].passed, "the other day passed"
    hourly = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("meter_hourly")
    ]
    assert hourly, "meter_hourly ran in the same run"
    assert set(hourly[0].metadata["rows_by_day"].value) == {DAY.isoformat()}
    assert hourly[0].metadata["held_days"].value == 1
    holds = graph.platform.warehouse.read("SELECT local_day, check_name FROM quality_holds")
    assert set(holds["local_day"].to_pylist()) == {DST_DAY}
    # the duplicate is also one reading more than the day's slots
    assert set(holds["check_name"].to_pylist()) == {"cleaned_unique", "cleaned_row_count"}

    alone = _run(graph.platform, instance, selection, DST_DAY, DST_DAY)
    assert not alone.success, "a run whose every day is held stops"
    materialized = {e.asset_key.to_user_string() for e in alone.get_asset_materialization_events()}
    assert materialized == {"cleaned_readings"}, "meter_hourly must not run"

    monkeypatch.setattr(readings, "clean_readings", real)
    mended = _run(graph.platform, instance, selection, DST_DAY, DST_DAY)
    assert mended.success
    assert graph.platform.warehouse.read("SELECT * FROM quality_holds").num_rows == 0


@pytest.mark.filterwarnings("ignore::dagster.PreviewWarning")
def test_automation_holds_downstream_of_a_failed_blocking_check() -> None:
    """The condition load_forecasts and anomaly_report carry: requested after the upstream
    day's blocking check passed, held after it failed."""
    parts = dg.DailyPartitionsDefinition(start_date="2026-03-27", timezone=TEST_TZ)
    spec = dg.AssetCheckSpec("ok", asset="up", blocking=True, partitions_def=parts)

    @dg.asset(partitions_def=parts, check_specs=[spec])
    def up(context):
        yield dg.MaterializeResult()
        yield dg.AssetCheckResult(passed=context.run.tags["passed"] == "yes")

    @dg.asset(
        partitions_def=parts,
        deps=[up],
        automation_condition=quality_defs.gated_by_blocking_checks(dg.AutomationCondition.eager()),
    )
    def down() -> None:
        return None

    now = datetime.fromisoformat("2026-03-30T06:00:00+02:00")
    requested = {}
    for passed in ("yes", "no"):
        instance = dg.DagsterInstance.ephemeral()
        before = dg.evaluate_automation_conditions([up, down], instance, evaluation_time=now)
        run = dg.materialize(
            [up, down],
            selection=[up],
            instance=instance,
            partition_key="2026-03-29",
            tags={"passed": passed},
            raise_on_error=False,
        )
        assert run.success == (passed == "yes")
        after = dg.evaluate_automation_conditions(
            [up, down], instance, evaluation_time=now + timedelta(minutes=1), cursor=before.cursor
        )
        requested[passed] = after.get_requested_partitions(dg.AssetKey("down"))
    assert requested == {"yes": {"2026-03-29"}, "no": set()}
    for asset in ("anomaly_report", "load_forecasts"):
        label = _automation_label(asset)
        assert label == "gated by upstream blocking checks", asset


def _automation_label(asset: str) -> str | None:
    from smartgrid_assets.defs import anomalies, forecasts

    module = anomalies if asset == "anomaly_report" else forecasts
    definition = getattr(module, asset)
    condition = definition.specs_by_key[dg.AssetKey(asset)].automation_condition
    return condition.get_label() if condition else None
