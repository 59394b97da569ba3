"""Alerts: the pure planning (de-dup, watermarks, rate limit), retry and backoff, message
formats, and the sensor against a real HTTP server and a real SMTP server (aiosmtpd) on
loopback: delivery, receivers that are down or answer 500 and come back (delivered later,
exactly once), one channel down while the other works, and a real failed run."""

from __future__ import annotations

import dataclasses
import email
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pyarrow as pa
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from smartgrid_assets.alerts import (
    AlertCursor,
    AlertWindow,
    DeliveryError,
    RetryPolicy,
    RunFailure,
    SmtpTarget,
    email_message,
    plan_alerts,
    quick,
    read_alert_events,
    slack_payload,
    with_retry,
)
from smartgrid_assets.contract import ANOMALY_EVENTS
from smartgrid_assets.defs.alerts import alert_sensor
from smartgrid_assets.platform import Platform
from smartgrid_assets.settings import Settings, SettingsError, load_settings
from smartgrid_assets.warehouse import Warehouse, warehouse
from smartgrid_tests.conftest import TEST_TZ, _free_port

T0 = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)  # 14:00 CET
WINDOW = AlertWindow(horizon=timedelta(days=16), run_horizon=timedelta(days=1))
NOW = datetime(2026, 3, 20, tzinfo=UTC)


def _store_in(store: Warehouse, table: pa.Table) -> None:
    """Add or replace events, as the anomaly report does."""
    store.replace("anomaly_events", table, match={"event_id": table["event_id"].to_pylist()})


def events(*rows: dict) -> pa.Table:
    defaults = {
        "type": "zero_run",
        "meter_id": "M1",
        "asset_id": None,
        "start": T0,
        "end": T0 + timedelta(hours=12),
        "severity": "warning",
        "score": 3.5,
        "evidence": "{}",
        "detector_version": "test",
    }
    return pa.Table.from_pylist([{**defaults, **r} for r in rows], schema=ANOMALY_EVENTS)


def ev(event_id: str, hours: float = 0, **fields: object) -> dict:
    start = T0 + timedelta(hours=hours)
    return {"event_id": event_id, "start": start, "end": start + timedelta(hours=6), **fields}


def keys(plan_digest) -> list[str]:
    return [a.key for a in plan_digest.alerts]


# --- planning: de-dup, watermarks, rate limit ---------------------------------------------------


def test_plan_sends_new_warning_and_critical_once_per_channel() -> None:
    table = events(ev("a"), ev("b", 1, severity="critical"), ev("c", 2, severity="info"))
    plan = plan_alerts(table, [], AlertCursor(), ["webhook"], now=NOW, window=WINDOW, limit=10)
    assert keys(plan.digests["webhook"]) == ["event:b", "event:a"], "critical first, no info"

    cursor = AlertCursor.parse(
        plan.cursor.mark_sent("webhook", plan.digests["webhook"].alerts).dumps()
    )
    again = plan_alerts(table, [], cursor, ["webhook"], now=NOW, window=WINDOW, limit=10)
    assert again.digests == {}

    grown = events(ev("a"), ev("b", 1, severity="critical"), ev("d", 3))
    later = plan_alerts(grown, [], cursor, ["webhook", "email"], now=NOW, window=WINDOW, limit=10)
    assert keys(later.digests["webhook"]) == ["event:d"]
    assert keys(later.digests["email"]) == ["event:b", "event:a", "event:d"], (
        "a channel configured later gets what is still in the window"
    )


def test_watermark_bounds_the_cursor_and_ignores_backfilled_history() -> None:
    table = events(ev("old"), ev("new", 24 * 20))
    plan = plan_alerts(table, [], AlertCursor(), ["webhook"], now=NOW, window=WINDOW, limit=10)
    assert keys(plan.digests["webhook"]) == ["event:new"], "more than 16 days before the newest"
    cursor = plan.cursor.mark_sent("webhook", plan.digests["webhook"].alerts)

    much_later = events(ev("new", 24 * 20), ev("newest", 24 * 40), ev("backfilled", 24 * 21))
    plan = plan_alerts(much_later, [], cursor, ["webhook"], now=NOW, window=WINDOW, limit=10)
    assert keys(plan.digests["webhook"]) == ["event:newest"]
    assert plan.cursor.events_since == T0 + timedelta(days=40) - WINDOW.horizon
    assert "event:new" not in plan.cursor.sent["webhook"], "forgotten below the watermark"

    shrunk = plan_alerts(
        events(ev("x", 24 * 22)), [], plan.cursor, ["webhook"], now=NOW, window=WINDOW, limit=10
    )
    assert shrunk.cursor.events_since == plan.cursor.events_since, "never moves back"
    assert shrunk.digests == {}, "an event below the watermark is never sent"


def test_rate_limit_lists_some_and_summarises_the_rest() -> None:
    table = events(*(ev(f"e{i:02d}", i) for i in range(12)))
    run = RunFailure("r1", "daily_job", NOW - timedelta(hours=1), message="boom")
    plan = plan_alerts(table, [run], AlertCursor(), ["webhook"], now=NOW, window=WINDOW, limit=4)
    found = plan.digests["webhook"]
    assert [a.key for a in found.shown] == ["run:r1", "event:e00", "event:e01", "event:e02"]
    assert len(found.more) == 9
    payload = slack_payload(found, TEST_TZ)
    assert len(payload["blocks"]) == 1 + 4 + 1
    assert payload["blocks"][-1]["elements"][0]["text"].startswith("and 9 more: 9 zero_run")


def test_failed_runs_older_than_the_run_horizon_are_not_sent() -> None:
    runs = [
        RunFailure("fresh", "daily_job", NOW - timedelta(hours=2)),
        RunFailure("stale", "daily_job", NOW - timedelta(days=2)),
    ]
    plan = plan_alerts(events(), runs, AlertCursor(), ["email"], now=NOW, window=WINDOW, limit=5)
    assert keys(plan.digests["email"]) == ["run:fresh"]


def test_an_unreadable_cursor_starts_afresh() -> None:
    assert AlertCursor.parse("not json") == AlertCursor()
    assert AlertCursor.parse('{"version": 0}') == AlertCursor()
    assert AlertCursor.parse('{"version": 1, "sent": {"webhook": {"event:a": 3}}}') == AlertCursor()


def test_alert_settings() -> None:
    defaults = load_settings({})
    assert (defaults.alert_max_per_tick, defaults.alert_email_from) == (
        20,
        "smartgrid-alerts@localhost",
    )
    custom = load_settings(
        {"SMARTGRID_ALERT_MAX_PER_TICK": "5", "SMARTGRID_ALERT_EMAIL_FROM": "grid@example.org"}
    )
    assert (custom.alert_max_per_tick, custom.alert_email_from) == (5, "grid@example.org")
    for bad in ("0", "46", "ten"):
        with pytest.raises(SettingsError, match="SMARTGRID_ALERT_MAX_PER_TICK"):
            load_settings({"SMARTGRID_ALERT_MAX_PER_TICK": bad})


@pytest.mark.parametrize(
    "backend", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_reading_alertable_events(
    backend: str, local_settings: Settings, request: pytest.FixtureRequest
) -> None:
    settings = local_settings
    if backend == "postgres":
        url = request.getfixturevalue("postgres_database")
        settings = dataclasses.replace(local_settings, warehouse_url=url)
    store = warehouse(settings)
    assert read_alert_events(quick(store), None, WINDOW.horizon).num_rows == 0
    _store_in(
        store,
        events(
            ev("info", 24 * 20, severity="info"),
            ev("old", 0),
            ev("warn", 24 * 19),
            ev("crit", 24 * 20, severity="critical"),
        ),
    )
    found = read_alert_events(quick(store), None, WINDOW.horizon)
    assert sorted(found["event_id"].to_pylist()) == ["crit", "warn"], "16 days before the newest"
    since = read_alert_events(quick(store), T0 + timedelta(days=20), WINDOW.horizon)
    assert since["event_id"].to_pylist() == ["crit"]


# --- retry, SMTP URLs, message formats ---------------------------------------------------------


def test_retry_backs_off_exponentially_and_stops_on_permanent_errors() -> None:
    slept: list[float] = []
    outcomes = iter([DeliveryError("down"), DeliveryError("down"), None])

    def flaky() -> None:
        outcome = next(outcomes)
        if outcome:
            raise outcome

    policy = RetryPolicy(attempts=4, first_delay_s=0.5, max_delay_s=0.75)
    assert with_retry(flaky, policy, sleep=slept.append) == 3
    assert slept == [0.5, 0.75]

    calls: list[int] = []

    def refused() -> None:
        calls.append(1)
        raise DeliveryError("HTTP 404", permanent=True)

    with pytest.raises(DeliveryError, match="after 1 attempts"):
        with_retry(refused, policy, sleep=slept.append)
    assert calls == [1]


def test_retry_gives_up_within_the_deadline() -> None:
    clock = iter(range(0, 100, 4))
    slept: list[float] = []

    def down() -> None:
        raise DeliveryError("down")

    policy = RetryPolicy(attempts=10, first_delay_s=1, max_delay_s=1, deadline_s=10)
    with pytest.raises(DeliveryError, match="after 3 attempts"):
        with_retry(down, policy, sleep=slept.append, clock=lambda: next(clock))
    assert slept == [1, 1], "each failure costs 4 s of clock: no third wait past 10 s"


def test_smtp_urls() -> None:
    target = SmtpTarget.from_url("smtp://alerts%40grid:testing@mail.example:2525")
    assert (target.host, target.port, target.security) == ("mail.example", 2525, "plain")
    assert (target.username, target.password) == ("alerts@grid", "testing")
    assert "testing" not in repr(target)
    assert SmtpTarget.from_url("smtp://mail.example?starttls=true").port == 587
    assert SmtpTarget.from_url("smtp://mail.example?starttls=true").security == "starttls"
    assert SmtpTarget.from_url("smtps://mail.example").port == 465
    with pytest.raises(DeliveryError, match="SMARTGRID_SMTP_URL") as info:
        SmtpTarget.from_url("http://mail.example")
    assert info.value.permanent


def test_messages_list_events_in_local_time() -> None:
    table = events(
        ev("a", type="transformer_overload", meter_id=None, asset_id="T7", severity="critical"),
        ev("b", 24 * 5 + 7),  # spans midnight in Berlin
    )
    found = plan_alerts(table, [], AlertCursor(), ["x"], now=NOW, window=WINDOW, limit=5)
    payload = slack_payload(found.digests["x"], TEST_TZ)
    assert payload["text"].startswith("SmartGrid alerts: 1 critical and 1 warning anomaly events")
    first, second = (b["text"]["text"] for b in payload["blocks"][1:])
    assert "*critical* `transformer_overload` asset T7 · 2026-03-10 14:00–20:00 CET" in first
    assert "score 3.50" in first
    assert "meter M1 · 2026-03-15 21:00 CET – 2026-03-16 03:00 CET" in second

    message = email_message(found.digests["x"], TEST_TZ, "alerts@grid.example", ["ops@x", "b@y"])
    assert message["Subject"] == "[SmartGrid] 1 critical and 1 warning anomaly events"
    assert message["To"] == "ops@x, b@y"
    body = message.get_content()
    assert "CRITICAL transformer_overload asset T7, 2026-03-10 14:00–20:00 CET, score 3.50" in body
    assert "WARNING zero_run meter M1" in body


# --- real receivers on loopback ----------------------------------------------------------------


class Webhook:
    """An HTTP server on a loopback port that records JSON bodies; `status` is what it answers.
    The port is reserved at once, but nothing listens until `start()`."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks/alerts"
        self.status = 200
        self.received: list[dict] = []
        self.answered: list[int] = []
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.answered.append(hook.status)
                if hook.status == 200:
                    hook.received.append(json.loads(body))
                self.send_response(hook.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()


class Mailbox:
    """An aiosmtpd server on a loopback port requiring login as alerts / testing."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"smtp://alerts:testing@127.0.0.1:{self.port}"
        self.messages: list[Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self._controller: Controller | None = None

    async def handle_DATA(self, server, session, envelope) -> str:
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def start(self) -> None:
        def login(server, session, envelope, mechanism, auth_data) -> AuthResult:
            ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"testing"
            return AuthResult(success=ok and auth_data.login == b"alerts")

        self._controller = Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=login,
            auth_require_tls=False,
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller:
            self._controller.stop()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.stop()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    yield box
    box.stop()


def _platform(
    settings: Settings, webhook: Webhook | None, mailbox: Mailbox | None, **more
) -> Platform:
    return Platform(
        dataclasses.replace(
            settings,
            tz=TEST_TZ,
            alert_webhook_url=webhook.url if webhook else None,
            **{
                "smtp_url": mailbox.url if mailbox else None,
                "alert_email_to": "ops@grid.example, planner@grid.example",
                "alert_email_from": "smartgrid@grid.example",
                **more,
            },
        )
    )


def _store(platform: Platform, table: pa.Table) -> None:
    _store_in(platform.warehouse, table)


def _tick(platform: Platform, cursor: str | None, instance: dg.DagsterInstance) -> tuple[str, str]:
    context = dg.build_sensor_context(
        cursor=cursor, instance=instance, resources={"platform": platform}
    )
    result = alert_sensor(context)
    return result.cursor, result.skip_reason.skip_message


def _event_ids(payload: dict) -> list[str]:
    return [
        block["text"]["text"].rsplit("event `", 1)[1].rstrip("`")
        for block in payload["blocks"][1:]
        if block["type"] == "section"
    ]


@pytest.fixture
def instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.ephemeral()


def test_sensor_delivers_to_webhook_and_email_once_per_event(
    local_settings: Settings, webhook: Webhook, mailbox: Mailbox, instance: dg.DagsterInstance
) -> None:
    webhook.start()
    mailbox.start()
    platform = _platform(local_settings, webhook, mailbox)
    cursor, outcome = _tick(platform, None, instance)
    assert outcome == "no new alerts", "no events table yet: nothing, no error"

    _store(platform, events(ev("a"), ev("b", 2, severity="critical"), ev("i", 3, severity="info")))
    cursor, outcome = _tick(platform, cursor, instance)
    assert outcome == "2 alerts via webhook; 2 alerts via email"
    assert [_event_ids(p) for p in webhook.received] == [["b", "a"]]
    assert webhook.received[0]["text"].startswith("SmartGrid alerts: 1 critical and 1 warning")
    [message] = mailbox.messages
    assert mailbox.envelopes == [
        ("smartgrid@grid.example", ["ops@grid.example", "planner@grid.example"])
    ]
    assert message["Subject"] == "[SmartGrid] 1 critical and 1 warning anomaly events"
    body = message.get_payload(decode=True).decode()
    assert "CRITICAL zero_run meter M1, 2026-03-10 16:00–22:00 CET, score 3.50 (event b)" in body

    _store(platform, events(ev("a", end=T0 + timedelta(days=2))))  # the event continues
    cursor, outcome = _tick(platform, cursor, instance)
    assert outcome == "no new alerts"

    _store(platform, events(ev("c", 30)))
    cursor, outcome = _tick(platform, cursor, instance)
    assert [_event_ids(p) for p in webhook.received] == [["b", "a"], ["c"]]
    assert len(mailbox.messages) == 2
    assert set(json.loads(cursor)["sent"]) == {"webhook", "email"}


def test_receivers_down_then_back_get_the_alerts_exactly_once(
    local_settings: Settings, webhook: Webhook, mailbox: Mailbox, instance: dg.DagsterInstance
) -> None:
    platform = _platform(local_settings, webhook, mailbox)
    _store(platform, events(ev("a"), ev("b", 1)))
    cursor, outcome = _tick(platform, None, instance)  # nothing listens on either port
    assert "webhook failed: webhook unreachable (ConnectionError) (after 3 attempts)" in outcome
    assert "email failed: SMTP server unreachable" in outcome
    assert json.loads(cursor)["sent"] == {"webhook": {}, "email": {}}

    webhook.start()
    cursor, outcome = _tick(platform, cursor, instance)
    assert outcome.startswith("2 alerts via webhook; email failed")
    assert [_event_ids(p) for p in webhook.received] == [["a", "b"]]

    mailbox.start()
    _store(platform, events(ev("c", 2)))
    cursor, outcome = _tick(platform, cursor, instance)
    assert outcome == "1 alerts via webhook; 3 alerts via email"
    assert [_event_ids(p) for p in webhook.received] == [["a", "b"], ["c"]]
    [message] = mailbox.messages
    body = message.get_payload(decode=True).decode()
    assert all(f"(event {e})" in body for e in "abc")

    cursor, outcome = _tick(platform, cursor, instance)
    assert outcome == "no new alerts"
    assert (len(webhook.received), len(mailbox.messages)) == (2, 1)


def test_webhook_answering_500_is_retried_within_the_tick_and_on_the_next(
    local_settings: Settings, webhook: Webhook, instance: dg.DagsterInstance
) -> None:
    webhook.start()
    webhook.status = 500
    platform = _platform(local_settings, webhook, None)
    _store(platform, events(ev("a")))
    cursor, outcome = _tick(platform, None, instance)
    assert outcome == "webhook failed: webhook answered HTTP 500 (after 3 attempts)"
    assert webhook.answered == [500, 500, 500]

    webhook.status = 200
    cursor, outcome = _tick(platform, cursor, instance)
    cursor, again = _tick(platform, cursor, instance)
    assert (outcome, again) == ("1 alerts via webhook", "no new alerts")
    assert [_event_ids(p) for p in webhook.received] == [["a"]]

    webhook.status = 404
    _store(platform, events(ev("b", 1)))
    cursor, outcome = _tick(platform, cursor, instance)
    assert outcome == "webhook failed: webhook answered HTTP 404 (after 1 attempts)"


def test_rate_limit_per_tick(
    local_settings: Settings, webhook: Webhook, instance: dg.DagsterInstance
) -> None:
    webhook.start()
    platform = _platform(local_settings, webhook, None, alert_max_per_tick=5)
    _store(platform, events(*(ev(f"e{i:02d}", i) for i in range(30))))
    cursor, outcome = _tick(platform, None, instance)
    assert outcome == "30 alerts via webhook"
    [payload] = webhook.received
    assert _event_ids(payload) == ["e00", "e01", "e02", "e03", "e04"]
    assert payload["blocks"][-1]["elements"][0]["text"].startswith("and 25 more: 25 zero_run")
    assert _tick(platform, cursor, instance)[1] == "no new alerts"


@dg.op
def load_meters() -> None:
    raise RuntimeError("registry file unreadable")


@dg.job
def registry_job() -> None:
    load_meters()


def test_failed_run_alert_from_a_real_run(
    local_settings: Settings, webhook: Webhook, mailbox: Mailbox, instance: dg.DagsterInstance
) -> None:
    webhook.start()
    mailbox.start()
    platform = _platform(local_settings, webhook, mailbox)
    result = registry_job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success

    cursor, outcome = _tick(platform, None, instance)
    assert outcome == "1 alerts via webhook; 1 alerts via email"
    [payload] = webhook.received
    assert payload["text"].startswith("SmartGrid alerts: 1 failed run")
    text = payload["blocks"][1]["text"]["text"]
    assert f"*failed run* registry_job (run {result.run_id})" in text
    assert "at step load_meters: RuntimeError: registry file unreadable" in text
    assert mailbox.messages[0]["Subject"] == "[SmartGrid] 1 failed run"

    assert _tick(platform, cursor, instance)[1] == "no new alerts"


def test_failed_runs_are_alerted_while_the_warehouse_is_unreachable(
    local_settings: Settings, webhook: Webhook, instance: dg.DagsterInstance
) -> None:
    webhook.start()
    down = f"postgresql://postgres@127.0.0.1:{_free_port()}/smartgrid"
    platform = _platform(local_settings, webhook, None, warehouse_url=down)
    result = registry_job.execute_in_process(instance=instance, raise_on_error=False)
    _, outcome = _tick(platform, None, instance)
    assert outcome == "1 alerts via webhook"
    assert result.run_id in webhook.received[0]["blocks"][1]["text"]["text"]


def test_without_channels_alerts_go_to_the_log(
    local_settings: Settings, instance: dg.DagsterInstance
) -> None:
    platform = _platform(local_settings, None, None)
    _store(platform, events(ev("a")))
    cursor, outcome = _tick(platform, None, instance)
    assert outcome == "1 alerts via log"
    assert _tick(platform, cursor, instance)[1] == "no new alerts"


def test_bad_email_settings_do_not_stop_the_webhook(
    local_settings: Settings, webhook: Webhook, instance: dg.DagsterInstance
) -> None:
    webhook.start()
    platform = _platform(local_settings, webhook, None, smtp_url="http://not-smtp")
    _store(platform, events(ev("a")))
    _, outcome = _tick(platform, None, instance)
    assert outcome.startswith("1 alerts via webhook; email failed: SMARTGRID_SMTP_URL: expected")
