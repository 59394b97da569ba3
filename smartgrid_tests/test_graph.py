"""The whole lineage graph in-process: history first, then two partitions through every asset,
with forecasts per feeder and events per injected anomaly checked."""

from __future__ import annotations

import base64
import dataclasses
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest

from smartgrid_assets import anomalies, forecasting
from smartgrid_assets.days import day_bounds_utc
from smartgrid_assets.definitions import defs
from smartgrid_assets.demo import DAILY_ASSETS, materialize
from smartgrid_assets.pipeline.land import land_tree
from smartgrid_assets.platform import Platform
from smartgrid_assets.settings import load_settings
from smartgrid_assets.synth import synthesize
from smartgrid_tests.conftest import TEST_TZ

START = date(2026, 3, 16)
DAYS = 14
LAST = START + timedelta(days=DAYS - 1)
TWO = [LAST - timedelta(days=1), LAST]


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> tuple[Platform, Path, dict]:
    home = tmp_path_factory.mktemp("graph")
    utility = home / "utility"
    synthesize(utility, meters=120, days=DAYS, seed=3, tz=TEST_TZ, start=START)
    settings = dataclasses.replace(load_settings({"SMARTGRID_HOME": str(home)}), tz=TEST_TZ)
    platform = Platform(settings)
    land_tree(platform.landing, utility, late_arrival=START + timedelta(days=DAYS))
    instance = dg.DagsterInstance.ephemeral()
    materialize(platform, ["meters"], instance)
    materialize(platform, DAILY_ASSETS, instance, START, TWO[0] - timedelta(days=1))
    meta = materialize(platform, DAILY_ASSETS, instance, TWO[0], TWO[1])
    return platform, utility, meta


def test_every_asset_of_the_graph_materialized_for_the_two_partitions(graph) -> None:
    _, _, meta = graph
    assert set(meta) == set(DAILY_ASSETS)
    all_keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    weekly = {"meters", "detector_evaluation"}
    assert set(DAILY_ASSETS) | weekly == all_keys, "the demo runs every asset of the graph"


def test_detector_evaluation_on_the_utility_s_own_meters(graph) -> None:
    platform, _, _ = graph
    config = {"last_day": LAST.isoformat(), "days": DAYS, "max_meters": 40}
    meta = materialize(
        platform,
        ["detector_evaluation"],
        dg.DagsterInstance.ephemeral(),
        ops={"detector_evaluation": config},
    )["detector_evaluation"]
    assert meta["meters"].value == 40 and meta["meter_days"].value >= 40 * (DAYS - 1)
    assert meta["period"].value == f"{START}..{LAST}"
    rows = platform.warehouse.read("SELECT * FROM detector_evaluation ORDER BY type").to_pylist()
    by_type = {r["type"]: r for r in rows}
    assert set(anomalies.INJECTED_TYPES) | {"overall"} <= set(by_type)
    # one of each type per 120 meter-days; a drop needs 21 days of baseline: none in 14 days
    for type_ in set(anomalies.INJECTED_TYPES) - {"theft_drop"}:
        assert by_type[type_]["injected"] == 40 * DAYS // 120, by_type[type_]
    assert by_type["overall"]["recall"] >= 0.8 and by_type["overall"]["f1"] >= 0.8
    assert meta["anomaly_budget_per_1000_meter_days"].value == 10.0


def test_forecasts_per_feeder_and_system_as_issued(graph) -> None:
    platform, _, meta = graph
    rows = platform.warehouse.read(
        "SELECT level, asset_id, model, target_day, issued_at, count(*) AS hours, "
        "bool_and(p10 <= p50 AND p50 <= p90) AS ordered "
        "FROM load_forecasts WHERE target_day IN (SELECT unnest(?)) GROUP BY ALL",
        [TWO],
    ).to_pylist()
    feeders = platform.warehouse.read("SELECT DISTINCT feeder_id FROM meters")["feeder_id"]
    for day in TWO:
        for model in forecasting.MODELS:
            series = {
                (r["level"], r["asset_id"])
                for r in rows
                if r["target_day"] == day and r["model"] == model
            }
            assert {("feeder", f) for f in feeders.to_pylist()} | {("system", "system")} <= series
    for r in rows:
        assert r["hours"] == len(forecasting.target_hours(r["target_day"], TEST_TZ))
        assert r["issued_at"] == forecasting.issue_time(r["target_day"], TEST_TZ)
        assert r["ordered"], "P10 <= P50 <= P90"
    assert {r["hours"] for r in rows if r["target_day"] == date(2026, 3, 29)} == {23}, "DST day"
    assert meta["load_forecasts"]["rows"].value == sum(r["hours"] for r in rows)


def test_forecast_accuracy_against_naive(graph) -> None:
    platform, _, _ = graph
    acc = platform.warehouse.read(
        "SELECT model, avg(mae) AS mae, avg(mae_naive_1d) AS naive FROM forecast_accuracy "
        "WHERE target_day IN (SELECT unnest(?)) AND level = 'feeder' GROUP BY model",
        [TWO],
    ).to_pylist()
    by_model = {r["model"]: r for r in acc}
    assert set(by_model) == set(forecasting.MODELS)
    assert by_model["seasonal_naive_1d"]["mae"] == pytest.approx(
        by_model["seasonal_naive_1d"]["naive"]
    )
    assert by_model["gbm"]["mae"] < by_model["seasonal_naive_1d"]["mae"]


def test_feeder_hourly_carries_net_load_beside_gross_and_forecasts_say_which(graph) -> None:
    platform, _, meta = graph
    row = platform.warehouse.read(
        "SELECT count(*) AS n, max(abs(kwh - (kwh_delivered - kwh_received))) AS gap, "
        "sum(kwh_received) AS received, min(kwh_delivered) AS lowest FROM feeder_hourly"
    ).to_pylist()[0]
    assert row["n"] > 0 and row["gap"] < 1e-9 and row["lowest"] >= 0
    assert row["received"] > 0  # the synthetic utility has rooftop solar
    quantities = platform.warehouse.read("SELECT DISTINCT quantity FROM load_forecasts")
    assert quantities["quantity"].to_pylist() == ["net"]
    assert meta["load_forecasts"]["naive_only_series"].value == {}
    choice = meta["load_forecasts"]["model_choice_by_series"].value
    assert f"| {TWO[1]} | feeder |" in choice and "mae_folds" in choice


def test_a_planner_sees_the_forecasts_against_the_actuals(graph) -> None:
    platform, _, meta = graph
    for asset, key in (
        ("load_forecasts", "forecasts"),
        ("forecast_accuracy", "forecasts_against_actuals"),
    ):
        text = meta[asset][key].value
        png = text.split("data:image/png;base64,")[1].split(")")[0]
        assert base64.b64decode(png).startswith(b"\x89PNG")
        assert "kWh per hour" in text and "| feeder | model | hours | mae | mae_naive_1d |" in text
    rows = meta["forecast_accuracy"]["accuracy_by_model_and_level"].value
    acc = platform.warehouse.read(
        "SELECT sum(mae * hours) / sum(mae_naive_1d * hours) AS rmae FROM forecast_accuracy "
        "WHERE target_day IN (SELECT unnest(?)) AND level = 'feeder' AND model = 'gbm'",
        [TWO],
    ).to_pylist()[0]
    gbm = next(line for line in rows.splitlines() if line.startswith("| gbm | feeder |")).split("|")
    assert float(gbm[6]) == pytest.approx(acc["rmae"], abs=1e-3)  # pooled, hour-weighted


def test_events_per_injected_anomaly(graph) -> None:
    platform, utility, meta = graph
    events = platform.warehouse.read("SELECT * FROM anomaly_events")
    start, _ = day_bounds_utc(START, TEST_TZ)
    _, end = day_bounds_utc(LAST, TEST_TZ)
    scores = anomalies.evaluate(events, anomalies.load_labels(utility / "labels.csv"), start, end)
    injected = {t for t, s in scores["by_type"].items() if s["labels"]}
    assert {"stuck_meter", "zero_run", "reverse_flow", "theft_drop"} <= injected
    # a profile deviation shows after three deviating days against the meter's own baseline:
    # more history than two partitions hold (it is scored on whole fleets in test_anomalies)
    for kind in injected - {"profile_deviation"}:
        assert scores["by_type"][kind]["recall"] >= 0.5, (kind, scores["by_type"][kind])
    assert scores["overall"]["recall"] >= 0.8, scores["overall"]
    assert scores["overall"]["precision"] >= 0.7, scores["overall"]
    ids = events["event_id"].to_pylist()
    assert len(ids) == len(set(ids)), "no event is reported twice"
    report = meta["anomaly_report"]
    assert report["events"].value >= 1
    assert report["anomaly_budget_per_1000_meter_days"].value == 10.0
    assert report["meter_days"].value > 0 and report["alarms_per_1000_meter_days"].value >= 0
    table = report["events_to_act_on"].value
    assert "| severity | type | class | meter | transformer | feeder |" in table
    assert "None" not in table
    calibration = platform.warehouse.read("SELECT * FROM detector_calibration")
    assert set(calibration["detector"].to_pylist()) == set(anomalies.CALIBRATED_TYPES)
    assert set(calibration["source"].to_pylist()) <= {"meter", "class", "insufficient_history"}


def test_rerunning_the_two_partitions_changes_nothing(graph) -> None:
    platform, _, _ = graph
    queries = {
        "forecasts": "SELECT * FROM load_forecasts ORDER BY ALL",
        "accuracy": "SELECT * FROM forecast_accuracy ORDER BY ALL",
        "events": "SELECT * FROM anomaly_events ORDER BY ALL",
        "feeder_hourly": "SELECT * FROM feeder_hourly ORDER BY ALL",
    }
    before = {k: platform.warehouse.read(q) for k, q in queries.items()}
    materialize(platform, DAILY_ASSETS, dg.DagsterInstance.ephemeral(), TWO[0], TWO[1])
    for key, query in queries.items():
        assert platform.warehouse.read(query).equals(before[key]), key


def test_a_backfill_spreading_past_the_data_skips_those_days_with_a_reason(graph) -> None:
    """A 2-day cleaned_readings backfill with downstream reaches 36 days of load_forecasts,
    most after the newest reading: those are skipped with their reason, none fails."""
    platform, _, _ = graph
    asset_graph = defs.resolve_asset_graph()
    forecasts = dg.AssetKey("load_forecasts")
    partitions = asset_graph.get(forecasts).partitions_def
    mapping = asset_graph.get_partition_mapping(forecasts, dg.AssetKey("cleaned_readings"))
    upstream = partitions.empty_subset().with_partition_keys([str(d) for d in TWO])
    spread = sorted(
        mapping.get_downstream_partitions_for_partitions(
            upstream, partitions, partitions
        ).get_partition_keys()
    )
    assert len(spread) == 36 and spread[0] == str(LAST + timedelta(days=1))
    first, last = date.fromisoformat(spread[0]), date.fromisoformat(spread[-1])
    meta = materialize(platform, ["load_forecasts"], dg.DagsterInstance.ephemeral(), first, last)
    skipped = meta["load_forecasts"]["skipped_days"].value
    # issued at 00:00 of D-1 from data before it: a complete day within the 7 before the issue
    issued = [str(LAST + timedelta(days=i)) for i in range(1, 9)]
    assert sorted(skipped) == [d for d in spread if d not in issued]
    assert all(
        "no complete local day in the 7 days before the issue" in v for v in skipped.values()
    )
    rows = platform.warehouse.read(
        "SELECT DISTINCT CAST(target_day AS VARCHAR) AS day FROM load_forecasts "
        "WHERE target_day > ? ORDER BY day",
        [LAST],
    )
    assert rows["day"].to_pylist() == issued
