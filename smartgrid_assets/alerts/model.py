"""What an alert is about (a new anomaly event or a failed run), and one channel's digest."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa

#: Severities that alert; `info` events stay in the warehouse and the reports.
ALERT_SEVERITIES = ("critical", "warning")


@dataclass(frozen=True)
class EventAlert:
    event_id: str
    type: str
    meter_id: str | None
    asset_id: str | None
    start: datetime
    end: datetime
    severity: str
    score: float

    @property
    def key(self) -> str:
        return f"event:{self.event_id}"

    @property
    def at(self) -> datetime:
        """The event's start: stable for the event's life (its id hashes it)."""
        return self.start

    @property
    def subject(self) -> str:
        return f"meter {self.meter_id}" if self.meter_id else f"asset {self.asset_id}"


@dataclass(frozen=True)
class RunFailure:
    run_id: str
    job_name: str
    ended_at: datetime
    partition: str | None = None
    step: str | None = None
    message: str | None = None

    @property
    def key(self) -> str:
        return f"run:{self.run_id}"

    @property
    def at(self) -> datetime:
        return self.ended_at


Alert = EventAlert | RunFailure


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def event_alerts(events: pa.Table) -> list[EventAlert]:
    """The warning and critical rows of an ANOMALY_EVENTS table (naive timestamps are UTC)."""
    alerts = []
    for row in events.to_pylist():
        if row["severity"] not in ALERT_SEVERITIES:
            continue
        alerts.append(
            EventAlert(
                event_id=row["event_id"],
                type=row["type"],
                meter_id=row["meter_id"],
                asset_id=row["asset_id"],
                start=_utc(row["start"]),
                end=_utc(row["end"]),
                severity=row["severity"],
                score=float(row["score"]),
            )
        )
    return alerts


def _order(alert: Alert) -> tuple:
    """Failed runs first, then critical before warning events, then oldest first."""
    if isinstance(alert, RunFailure):
        return (0, alert.ended_at, alert.run_id)
    return (1 + ALERT_SEVERITIES.index(alert.severity), alert.start, alert.event_id)


@dataclass(frozen=True)
class Digest:
    """One message of one channel: `shown` listed one by one, `more` only counted."""

    shown: tuple[Alert, ...]
    more: tuple[Alert, ...] = ()

    @property
    def alerts(self) -> tuple[Alert, ...]:
        return self.shown + self.more

    def counts(self) -> Counter[str]:
        """How many failed runs, and critical / warning events."""
        return Counter(
            "failed run" if isinstance(a, RunFailure) else a.severity for a in self.alerts
        )


def digest(pending: Sequence[Alert], limit: int) -> Digest | None:
    """The rate limit: at most `limit` alerts listed, the rest summarised (and marked sent
    with them, so a backlog becomes one message, not a stream). None when nothing is pending."""
    if not pending:
        return None
    ordered = sorted(pending, key=_order)
    return Digest(shown=tuple(ordered[:limit]), more=tuple(ordered[limit:]))
