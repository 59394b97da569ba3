"""The alert sensor: new warning / critical anomaly events and failed runs, sent to the
configured channels (`smartgrid_assets.alerts`), de-duplicated through the sensor's cursor.

One plain sensor covers both kinds, rather than a `run_failure_sensor`: that one advances its
own cursor past a failure whether or not the alert went out, so a receiver that is down would
lose it; here a channel's alerts are marked sent only once delivered. It runs by default:
without a webhook or SMTP server configured, alerts are written to the sensor's log.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from smartgrid_assets.alerts import (
    AlertCursor,
    AlertWindow,
    RetryPolicy,
    RunFailure,
    channels_from_settings,
    deliver,
    plan_alerts,
    quick,
    read_alert_events,
)
from smartgrid_assets.contract import ANOMALY_EVENTS
from smartgrid_assets.pipeline.anomalies import LOOKBACK_DAYS
from smartgrid_assets.platform import Platform
from smartgrid_assets.warehouse import WarehouseError

# A detection run over day D can create or extend events starting up to LOOKBACK_DAYS before
# D: the events horizon reaches further, so such an event is never below the watermark.
WINDOW = AlertWindow(horizon=timedelta(days=LOOKBACK_DAYS + 2), run_horizon=timedelta(days=1))
MAX_FAILED_RUNS = 200
#: Per channel and tick: 3 tries, 0.25 s then 0.5 s apart, none started after 10 s, 5 s each.
RETRY = RetryPolicy()


def _ended(record: dg.RunRecord) -> datetime:
    if record.end_time is not None:
        return datetime.fromtimestamp(record.end_time, UTC)
    updated = record.update_timestamp
    return updated if updated.tzinfo else updated.replace(tzinfo=UTC)


def _why(instance: dg.DagsterInstance, run_id: str) -> tuple[str | None, str | None]:
    """The first failed step and its error, else the run failure's own message."""
    steps = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.STEP_FAILURE, limit=1
    ).records
    if steps:
        event = steps[0].event_log_entry.dagster_event
        error = event.step_failure_data.error if event and event.step_failure_data else None
        message = (error.cause or error).message if error else None
        return (event.step_key if event else None), message
    failures = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.RUN_FAILURE, limit=1, ascending=False
    ).records
    event = failures[0].event_log_entry.dagster_event if failures else None
    return None, event.message if event else None


def failed_runs(instance: dg.DagsterInstance, since: datetime, known: set[str]) -> list[RunFailure]:
    """Runs that failed at or after `since`; the reason is looked up only for runs not in
    `known` (those sent on every channel need just their key and time)."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE], updated_after=since),
        limit=MAX_FAILED_RUNS,
    )
    failures = []
    for record in records:
        run, ended = record.dagster_run, _ended(record)
        if ended < since:
            continue
        step, message = (None, None) if f"run:{run.run_id}" in known else _why(instance, run.run_id)
        failures.append(
            RunFailure(
                run_id=run.run_id,
                job_name=run.job_name,
                ended_at=ended,
                partition=run.tags.get("dagster/partition"),
                step=step,
                message=message,
            )
        )
    return failures


@dg.sensor(minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def alert_sensor(
    context: dg.SensorEvaluationContext, platform: dg.ResourceParam[Platform]
) -> dg.SensorResult:
    """New warning and critical anomaly events and failed runs, to the alert webhook and/or
    email (SMARTGRID_ALERT_WEBHOOK_URL, SMARTGRID_SMTP_URL), or to this log when neither is
    set; at most SMARTGRID_ALERT_MAX_PER_TICK listed per message, the rest summarised. A
    receiver that is down gets them on a later tick."""
    settings, now = platform.settings, datetime.now(UTC)
    cursor = AlertCursor.parse(context.cursor)
    channels = channels_from_settings(settings, context.log, RETRY)
    try:
        events = read_alert_events(quick(platform.warehouse), cursor.events_since, WINDOW.horizon)
    except WarehouseError as exc:
        context.log.info(f"anomaly events not read this tick, next tick will: {exc}")
        events = ANOMALY_EVENTS.empty_table()
    known = set.intersection(*(set(cursor.sent.get(c.name, {})) for c in channels))
    runs = failed_runs(context.instance, cursor.runs_window_start(now, WINDOW), known)
    plan = plan_alerts(
        events,
        runs,
        cursor,
        [c.name for c in channels],
        now=now,
        window=WINDOW,
        limit=settings.alert_max_per_tick,
    )
    result = deliver(plan, channels, context.log)
    outcome = [f"{n} alerts via {name}" for name, n in result.delivered.items()]
    outcome += [f"{name} failed: {reason}" for name, reason in result.failed.items()]
    return dg.SensorResult(
        cursor=result.cursor.dumps(), skip_reason="; ".join(outcome) or "no new alerts"
    )
