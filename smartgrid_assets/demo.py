"""`smartgrid demo`: a synthetic utility landed and materialized end to end, runs recorded in the
Dagster instance so they show in the UI afterwards."""

from __future__ import annotations

import time
from datetime import date, timedelta

import dagster as dg

from smartgrid_assets import anomalies, contract
from smartgrid_assets.definitions import defs
from smartgrid_assets.defs.marts import MART_ASSETS
from smartgrid_assets.pipeline.land import arrival_key, land_tree
from smartgrid_assets.pipeline.readings import window_bounds
from smartgrid_assets.platform import Platform
from smartgrid_assets.settings import load_settings

DEMO_START = date(2026, 3, 16)
DAILY_ASSETS = [
    "weather",
    "raw_readings",
    "cleaned_readings",
    "meter_hourly",
    "feeder_hourly",
    "load_forecasts",
    "forecast_accuracy",
    "anomaly_report",
    "anomaly_evaluation",
    "meter_daily",
    "transformer_loading",
    "data_quality_report",
    *MART_ASSETS,  # the dbt project: staging, dims, the dim_meter snapshot and the facts
]


# The console shows warnings; every event is still in the Dagster instance for the UI.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def partition_range_tags(first: date, last: date) -> dict[str, str]:
    """Run tags that make one run of a single-run backfill over [first, last]."""
    return {
        "dagster/asset_partition_range_start": first.isoformat(),
        "dagster/asset_partition_range_end": last.isoformat(),
    }


def materialize(
    platform: Platform,
    selection: list[str],
    instance: dg.DagsterInstance,
    first: date | None = None,
    last: date | None = None,
    ops: dict[str, dict] | None = None,
) -> dict[str, dict]:
    """One in-process run of the selected assets (over a partition range when given; `ops`:
    an asset's run config by name); returns each asset's materialization metadata."""
    result = dg.materialize(
        list(defs.assets or []),
        selection=selection,
        instance=instance,
        resources={"platform": platform},
        tags=partition_range_tags(first, last or first) if first else None,
        run_config={**QUIET, "ops": {k: {"config": v} for k, v in (ops or {}).items()}},
    )
    return {
        e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }


def _rounded(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _forecast_summary(platform: Platform, day: date) -> list[dict]:
    return platform.warehouse.read(
        """
        SELECT model, level, round(CAST(avg(mae) AS numeric), 2) AS mae,
               round(CAST(avg(mae_naive_1d) AS numeric), 2) AS mae_naive_1d,
               round(CAST(avg(mae) / nullif(avg(mae_naive_1d), 0) AS numeric), 3) AS rmae
        FROM forecast_accuracy WHERE target_day = ? GROUP BY model, level ORDER BY level, model
        """,
        [day],
    ).to_pylist()


def run_demo(meters: int, days: int, seed: int) -> None:
    from smartgrid_assets.synth import synthesize

    settings = load_settings()
    platform = Platform(settings)
    started = time.monotonic()
    out = settings.home / "synth"
    synthesize(
        out,
        meters=meters,
        days=days,
        interval_minutes=15,
        seed=seed,
        tz=settings.tz,
        start=DEMO_START,
    )
    last = DEMO_START + timedelta(days=days - 1)
    # the late exports arrive the day after the period: without them their days are mostly
    # estimated and fail the blocking check cleaned_estimated_share
    landed = land_tree(platform.landing, out, late_arrival=last + timedelta(days=1))
    platform.landing.put(arrival_key("labels", "labels.csv"), (out / "labels.csv").read_bytes())
    print(
        f"generated {meters} meters x {days} days into {out}; landed {len(landed)} files (the "
        f"late exports as arriving on {last + timedelta(days=1)})"
    )
    instance = dg.DagsterInstance.get() if settings.dagster_home else dg.DagsterInstance.ephemeral()
    pipeline_started = time.monotonic()
    materialize(platform, ["meters"], instance)
    meta = materialize(platform, DAILY_ASSETS, instance, DEMO_START, last)
    pipeline_s = time.monotonic() - pipeline_started
    own = materialize(
        platform,
        ["detector_evaluation"],
        instance,
        ops={"detector_evaluation": {"last_day": last.isoformat(), "days": days}},
    )["detector_evaluation"]
    raw, cleaned = meta["raw_readings"], meta["cleaned_readings"]

    total_s = time.monotonic() - started
    print(f"pipeline: 2 runs, {pipeline_s:.1f} s (with generation and landing: {total_s:.1f} s)")
    print(
        f"readings in: {raw['rows'].value:,}  rejected rows: {raw['rejected_rows'].value}  "
        f"quarantined files: {raw['quarantined_total'].value}"
    )
    quality = cleaned["rows_by_quality"].value
    print(f"cleaned readings out: {cleaned['rows_out'].value:,}  quality: {quality}")
    print("VEE flags by rule:")
    for rule, count in sorted(cleaned["flags_by_rule"].value.items()):
        if count:
            print(f"  {rule:<18} {count:>8,}")
    print(f"day-ahead forecast MAE (kWh per hour) on {last}, against naive-1d:")
    for row in _forecast_summary(platform, last):
        print(
            f"  {row['level']:<11} {row['model']:<18} MAE {row['mae']:>9}  "
            f"naive-1d {row['mae_naive_1d']:>9}  rMAE {row['rmae']}"
        )
    start, end = window_bounds([DEMO_START, last], settings.tz)
    events = platform.warehouse.read("SELECT * FROM anomaly_events")
    period = [DEMO_START + timedelta(days=i) for i in range(days)]
    hourly = platform.lake.read_days("meter_hourly", period, contract.METER_HOURLY)
    meter_days = anomalies.meter_days(hourly, settings.tz)
    scores = anomalies.evaluate(
        events, anomalies.load_labels(out / "labels.csv"), start, end, meter_days=meter_days
    )
    print("anomalies found against those injected (meter or transformer, type, overlapping time):")
    for kind, stats in sorted(scores["by_type"].items()):
        note = ""
        if kind in anomalies.SCORE_TYPES:
            note = "  (info only: an event matches an injected anomaly of any type)"
        elif kind in anomalies.DATA_PROBLEM_TYPES:
            note = "  (data problems VEE flagged)"
        print(
            f"  {kind:<21} events {stats['events']:>3}  matched {stats['matched_events']:>3}  "
            f"injected {stats['labels']:>3}  precision {_rounded(stats['precision'])}  "
            f"recall {_rounded(stats['recall'])}{note}"
        )
    overall = scores["overall"]
    print(
        f"  anomalies (rule types) precision {_rounded(overall['precision'])}  "
        f"recall {_rounded(overall['recall'])}  F1 {_rounded(overall['f1'])}"
    )
    print(
        f"  {scores['false_alarms']} false alarms (unmatched warning or critical) over "
        f"{meter_days:,} meter-days: {_rounded(scores['false_alarms_per_1000_meter_days'])} per "
        f"1,000 meter-days (budget {settings.anomaly_budget:g}, SMARTGRID_ANOMALY_BUDGET)"
    )
    print(
        f"detector_evaluation (known anomalies injected into a copy of these meters): recall "
        f"{own['recall'].value:.2f}  precision {own['precision'].value:.2f}  F1 "
        f"{own['f1'].value:.2f}; the untouched readings: "
        f"{own['untouched_alarms_per_1000_meter_days'].value:.2f} alarms per 1,000 meter-days"
    )
    print(f"warehouse: {settings.warehouse_url}")
    query = "SELECT type, count(*) FROM anomaly_events GROUP BY 1"
    print(f'query it:  .venv/bin/smartgrid sql "{query}"')
    marts = "SELECT * FROM fct_transformer_loading ORDER BY hours_above_rating DESC LIMIT 5"
    print(f'the marts: .venv/bin/smartgrid sql "{marts}"   (README: Querying the warehouse)')
    print("open the UI:  make dev   (then http://127.0.0.1:3000)")
