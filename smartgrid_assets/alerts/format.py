"""Messages: Slack-compatible webhook JSON and a plain-text email, times in the utility's zone."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from zoneinfo import ZoneInfo

from .model import Alert, Digest, EventAlert, RunFailure

_ICON = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "failed run": ":x:"}
#: Slack refuses a section whose text exceeds 3,000 characters.
_SECTION_CHARS = 2900


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def headline(digest: Digest) -> str:
    """E.g. '1 failed run, 2 critical and 5 warning anomaly events'."""
    counts = digest.counts()
    parts = []
    if counts["failed run"]:
        parts.append(_plural(counts["failed run"], "failed run"))
    severities = [f"{counts[s]} {s}" for s in ("critical", "warning") if counts[s]]
    if severities:
        events = counts["critical"] + counts["warning"]
        parts.append(f"{' and '.join(severities)} anomaly event{'' if events == 1 else 's'}")
    return ", ".join(parts)


def period(start: datetime, end: datetime, tz: str) -> str:
    """'2026-03-10 14:00 – 2026-03-11 02:00 CET', or '2026-03-10 14:00–18:00 CET' within a day."""
    zone = ZoneInfo(tz)
    a, b = start.astimezone(zone), end.astimezone(zone)
    if a.date() == b.date() and a.tzname() == b.tzname():
        return f"{a:%Y-%m-%d %H:%M}–{b:%H:%M} {b.tzname()}"
    return f"{a:%Y-%m-%d %H:%M} {a.tzname()} – {b:%Y-%m-%d %H:%M} {b.tzname()}"


def alert_line(alert: Alert, tz: str) -> str:
    """One alert on one line of plain text."""
    if isinstance(alert, RunFailure):
        ended = alert.ended_at.astimezone(ZoneInfo(tz))
        where = f" partition {alert.partition}" if alert.partition else ""
        step = f" at step {alert.step}" if alert.step else ""
        reason = f": {_one_line(alert.message)}" if alert.message else ""
        return (
            f"FAILED RUN {alert.job_name}{where} (run {alert.run_id}) ended "
            f"{ended:%Y-%m-%d %H:%M} {ended.tzname()}{step}{reason}"
        )
    return (
        f"{alert.severity.upper()} {alert.type} {alert.subject}, "
        f"{period(alert.start, alert.end, tz)}, score {alert.score:.2f} (event {alert.event_id})"
    )


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def more_line(digest: Digest) -> str | None:
    """'and 12 more: 3 failed runs, 7 stuck_meter (warning), 2 zero_run (critical)'."""
    if not digest.more:
        return None
    kinds = Counter(
        "failed runs" if isinstance(a, RunFailure) else f"{a.type} ({a.severity})"
        for a in digest.more
    )
    listed = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    return f"and {len(digest.more)} more: {listed} (see anomaly_report / fct_anomalies)"


def plain_text(digest: Digest, tz: str) -> str:
    lines = [f"SmartGrid alerts: {headline(digest)}", ""]
    lines += [alert_line(a, tz) for a in digest.shown]
    more = more_line(digest)
    return "\n".join(lines + ([more] if more else []))


def _escape(text: str) -> str:
    """Slack mrkdwn control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _block(alert: Alert, tz: str) -> dict:
    if isinstance(alert, RunFailure):
        body = alert_line(alert, tz).removeprefix("FAILED RUN ")
        text = f"{_ICON['failed run']} *failed run* {_escape(body)}"
    else:
        text = _event_text(alert, tz)
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:_SECTION_CHARS]}}


def _event_text(event: EventAlert, tz: str) -> str:
    return (
        f"{_ICON[event.severity]} *{event.severity}* `{_escape(event.type)}` "
        f"{_escape(event.subject)} · {_escape(period(event.start, event.end, tz))} · "
        f"score {event.score:.2f} · event `{event.event_id}`"
    )


def slack_payload(digest: Digest, tz: str) -> dict:
    """`text` (notification and fallback) plus Block Kit `blocks`: one section per listed
    alert and a context line for the rest; at most 45 + 2 blocks (Slack allows 50)."""
    blocks: list[dict] = [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"*SmartGrid alerts:* {headline(digest)}"},
        },
        *(_block(a, tz) for a in digest.shown),
    ]
    more = more_line(digest)
    if more:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _escape(more)}]})
    return {"text": plain_text(digest, tz)[:_SECTION_CHARS], "blocks": blocks}


def email_message(digest: Digest, tz: str, sender: str, recipients: list[str]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"[SmartGrid] {headline(digest)}"
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(plain_text(digest, tz) + "\n")
    return message
