"""When things run: the landing sensor (files as they arrive, late ones included) and the daily
schedule for the local day that just ended."""

import json

import dagster as dg

from smartgrid_assets.defs.marts import MART_ASSETS
from smartgrid_assets.pipeline.arrivals import plan_arrivals
from smartgrid_assets.platform import Platform

# What a landed readings file changes for its own local days. Forecasts are not here: they are
# stored as issued, and a late file does not change what was known at an issue time.
INGEST_ASSETS = [
    "raw_readings",
    "cleaned_readings",
    "meter_hourly",
    "feeder_hourly",
    "forecast_accuracy",
    "anomaly_report",
    "meter_daily",
    "transformer_loading",
    *MART_ASSETS,
]

daily_job = dg.define_asset_job(
    "daily_job",
    selection=dg.AssetSelection.groups(
        "weather", "readings", "features", "forecasts", "anomalies", "marts"
    )
    # weekly, on its own schedule: 90 days of the fleet, detected twice
    - dg.AssetSelection.assets("detector_evaluation"),
)

daily_schedule = dg.build_schedule_from_partitioned_job(
    daily_job,
    hour_of_day=1,
    description="Every local day at 01:00 in SMARTGRID_TZ, the day that just ended.",
)


@dg.sensor(
    asset_selection=[*INGEST_ASSETS, "meters"],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def landing_sensor(
    context: dg.SensorEvaluationContext, platform: dg.ResourceParam[Platform]
) -> dg.SensorResult:
    """New, late or changed readings files: one run per local day they touch; new registry
    files: a `meters` run; files under unusable keys: no run, a warning once each."""
    plan = plan_arrivals(platform, json.loads(context.cursor) if context.cursor else {})
    requests = [
        dg.RunRequest(
            run_key=day.run_key,
            partition_key=day.day.isoformat(),
            asset_selection=[dg.AssetKey(a) for a in INGEST_ASSETS],
            tags={"smartgrid/files": ",".join(day.files)[:4000]},
        )
        for day in plan.days
    ]
    if plan.registry_run_key:
        requests.insert(
            0, dg.RunRequest(run_key=plan.registry_run_key, asset_selection=[dg.AssetKey("meters")])
        )
    for key in plan.quarantined:
        context.log.warning(f"quarantined {key}: unreadable (see quarantine/{key}.reason.json)")
    if plan.landed_again:
        context.log.info(f"content already landed under another key: {plan.landed_again[:20]}")
    for problem in plan.problems:
        copy = f" (copy: {problem.quarantine_key})" if problem.quarantine_key else ""
        context.log.warning(f"unusable landing key {problem.key!r}: {problem.reason}{copy}")
    skip = f"{len(plan.problems)} new file(s) under unusable landing keys (see the log)"
    return dg.SensorResult(
        run_requests=requests,
        skip_reason=skip if plan.problems and not requests else None,
        cursor=json.dumps(plan.cursor),
    )
