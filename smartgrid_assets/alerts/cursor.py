"""De-duplication state carried in the sensor's cursor, and the pure planning of one tick.

The cursor remembers, per channel, the keys of what that channel has delivered, each with the
item's time: an event's `start` (stable: the event id hashes it), a run's end. It stays bounded
by two watermarks, below which nothing is considered and nothing remembered:

- events: `horizon` before the newest start seen (data time, so a backfilled history or a first
  tick on an old warehouse does not alert for its past). The horizon must exceed how far back a
  detection run can create or extend an event.
- failed runs: `run_horizon` before now (wall time).

Watermarks never move back, so an item that fell below one can never return and be sent twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pyarrow as pa

from .model import Alert, Digest, RunFailure, digest, event_alerts

CURSOR_VERSION = 1


@dataclass(frozen=True)
class AlertWindow:
    horizon: timedelta
    run_horizon: timedelta = timedelta(days=1)


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return max(x for x in (a, b) if x is not None) if (a or b) else None


@dataclass(frozen=True)
class AlertCursor:
    events_since: datetime | None = None
    runs_since: datetime | None = None
    #: channel -> alert key -> the alert's time (ISO 8601)
    sent: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> AlertCursor:
        """The state stored by `dumps`; a missing or unreadable cursor starts afresh."""
        try:
            data = json.loads(text or "null")
            if not isinstance(data, dict) or data.get("version") != CURSOR_VERSION:
                return cls()
            return cls(
                events_since=_parse_time(data.get("events_since")),
                runs_since=_parse_time(data.get("runs_since")),
                sent={
                    channel: {key: _parse_time(at).isoformat() for key, at in keys.items()}
                    for channel, keys in data.get("sent", {}).items()
                },
            )
        except (ValueError, TypeError, AttributeError):
            return cls()

    def dumps(self) -> str:
        return json.dumps(
            {
                "version": CURSOR_VERSION,
                "events_since": self.events_since.isoformat() if self.events_since else None,
                "runs_since": self.runs_since.isoformat() if self.runs_since else None,
                "sent": {c: dict(sorted(keys.items())) for c, keys in sorted(self.sent.items())},
            },
            separators=(",", ":"),
        )

    def runs_window_start(self, now: datetime, window: AlertWindow) -> datetime:
        """Failed runs that ended before this are never alerted."""
        start = now - window.run_horizon
        return max(self.runs_since, start) if self.runs_since else start

    def remembers(self, key: str, at: datetime) -> bool:
        """Whether an item of that key and time is still at or above its watermark."""
        since = self.runs_since if key.startswith("run:") else self.events_since
        return since is None or at >= since

    def in_window(self, alert: Alert) -> bool:
        return self.remembers(alert.key, alert.at)

    def unsent(self, channel: str, alerts: Iterable[Alert]) -> list[Alert]:
        done = self.sent.get(channel, {})
        return [a for a in alerts if a.key not in done and self.in_window(a)]

    def mark_sent(self, channel: str, alerts: Iterable[Alert]) -> AlertCursor:
        keys = {**self.sent.get(channel, {}), **{a.key: a.at.isoformat() for a in alerts}}
        return AlertCursor(self.events_since, self.runs_since, {**self.sent, channel: keys})


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class AlertPlan:
    cursor: AlertCursor
    digests: Mapping[str, Digest]


def plan_alerts(
    events: pa.Table,
    runs: Sequence[RunFailure],
    cursor: AlertCursor,
    channels: Sequence[str],
    *,
    now: datetime,
    window: AlertWindow,
    limit: int,
) -> AlertPlan:
    """What each channel should send now, and the cursor with advanced watermarks and what
    fell below them (or belongs to a channel no longer configured) forgotten.

    `events` holds at least every stored event starting at or after `cursor.events_since`;
    the returned cursor records nothing as sent: call `mark_sent` for what was delivered.
    """
    candidates = event_alerts(events)
    newest = max((e.start for e in candidates), default=None)
    events_since = _later(cursor.events_since, newest - window.horizon if newest else None)
    runs_since = cursor.runs_window_start(now, window)
    bounded = AlertCursor(events_since, runs_since)
    sent = {
        channel: {
            key: at
            for key, at in cursor.sent.get(channel, {}).items()
            if bounded.remembers(key, datetime.fromisoformat(at))
        }
        for channel in channels
    }
    advanced = AlertCursor(events_since, runs_since, sent)
    alerts = [*runs, *candidates]
    digests = {
        channel: found
        for channel in channels
        if (found := digest(advanced.unsent(channel, alerts), limit)) is not None
    }
    return AlertPlan(advanced, digests)
