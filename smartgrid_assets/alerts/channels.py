"""The configured channels and one tick's delivery: each channel sends its own digest, and
only what a channel delivered is marked sent for it, so a channel that is down gets the same
alerts (plus any newer ones) on a later tick while the others are not sent them twice."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from smartgrid_assets.settings import Settings

from .cursor import AlertCursor, AlertPlan
from .delivery import DeliveryError, RetryPolicy, SmtpTarget, post_webhook, send_email, with_retry
from .format import email_message, plain_text, slack_payload
from .model import Digest


@dataclass(frozen=True)
class Channel:
    name: str
    send: Callable[[Digest], None]


def channels_from_settings(
    settings: Settings, log: logging.Logger, policy: RetryPolicy
) -> list[Channel]:
    """`webhook` and/or `email` as configured; with neither, `log`: alerts go to the log only."""
    tz = settings.tz
    channels = []
    if settings.alert_webhook_url:
        url = settings.alert_webhook_url

        def webhook(digest: Digest) -> None:
            payload = slack_payload(digest, tz)
            with_retry(lambda: post_webhook(url, payload, policy.timeout_s), policy)

        channels.append(Channel("webhook", webhook))
    if settings.smtp_url:
        channels.append(Channel("email", _email_sender(settings, policy)))
    if not channels:
        channels.append(Channel("log", lambda digest: log.warning(plain_text(digest, tz))))
    return channels


def _email_sender(settings: Settings, policy: RetryPolicy) -> Callable[[Digest], None]:
    """An unusable SMTP configuration gives a sender that fails every tick (and is logged),
    so the mail waits for the fix and the other channels go on."""
    recipients = [a.strip() for a in (settings.alert_email_to or "").split(",") if a.strip()]
    try:
        target = SmtpTarget.from_url(settings.smtp_url or "")
        if not recipients:
            raise DeliveryError(
                "SMARTGRID_SMTP_URL is set but SMARTGRID_ALERT_EMAIL_TO names no recipient",
                permanent=True,
            )
    except DeliveryError as exc:
        problem = exc

        def misconfigured(digest: Digest) -> None:
            raise problem

        return misconfigured

    def email(digest: Digest) -> None:
        message = email_message(digest, settings.tz, settings.alert_email_from, recipients)
        with_retry(lambda: send_email(target, message, policy.timeout_s), policy)

    return email


@dataclass(frozen=True)
class Delivery:
    cursor: AlertCursor
    delivered: Mapping[str, int]
    failed: Mapping[str, str]


def deliver(plan: AlertPlan, channels: Sequence[Channel], log: logging.Logger) -> Delivery:
    """Send each channel's digest; never raises. A failed channel is logged and its alerts
    stay unsent, to be tried again on the next tick."""
    cursor, delivered, failed = plan.cursor, {}, {}
    for channel in channels:
        digest = plan.digests.get(channel.name)
        if digest is None:
            continue
        try:
            channel.send(digest)
        except DeliveryError as exc:
            failed[channel.name] = str(exc)
            log.warning(f"alerts via {channel.name} not delivered, retried next tick: {exc}")
            continue
        except Exception as exc:  # a sender's bug must not stop the other channels or the tick
            failed[channel.name] = f"{type(exc).__name__}: {exc}"
            log.exception(f"alerts via {channel.name} failed unexpectedly, retried next tick")
            continue
        cursor = cursor.mark_sent(channel.name, digest.alerts)
        delivered[channel.name] = len(digest.alerts)
    return Delivery(cursor, delivered, failed)
