"""Delivery: the webhook and SMTP senders, and bounded retry with exponential backoff.

Every failure becomes a `DeliveryError`; `permanent` ones (a 4xx answer, a refused login) are
not retried within the tick, since only a configuration change fixes them. Nothing here logs a
webhook URL or a password: a Slack webhook URL is itself a credential.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

import requests


class DeliveryError(Exception):
    """A message was not delivered; `permanent` when retrying cannot help."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded so a sensor tick never hangs: at most `attempts` tries, and no new try once
    `deadline_s` would be passed; each try has its own network `timeout_s`."""

    attempts: int = 3
    first_delay_s: float = 0.25
    max_delay_s: float = 2.0
    deadline_s: float = 10.0
    timeout_s: float = 5.0


def with_retry(
    action: Callable[[], None],
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Run `action` until it succeeds; returns the attempts used, or raises the last
    DeliveryError (at once when it is permanent)."""
    started = clock()
    delay = policy.first_delay_s
    attempt = 1
    while True:
        try:
            action()
            return attempt
        except DeliveryError as exc:
            out_of_time = clock() - started + delay > policy.deadline_s
            if exc.permanent or attempt >= policy.attempts or out_of_time:
                raise DeliveryError(f"{exc} (after {attempt} attempts)", exc.permanent) from exc
        sleep(delay)
        delay = min(delay * 2, policy.max_delay_s)
        attempt += 1


def post_webhook(url: str, payload: dict, timeout_s: float) -> None:
    """POST the JSON; any 2xx is delivered. 408, 429 and 5xx are worth retrying."""
    try:
        response = requests.post(url, json=payload, timeout=timeout_s)
    except requests.RequestException as exc:
        raise DeliveryError(f"webhook unreachable ({type(exc).__name__})") from exc
    code = response.status_code
    if code >= 300:
        permanent = 300 <= code < 500 and code not in (408, 429)
        raise DeliveryError(f"webhook answered HTTP {code}", permanent=permanent)


@dataclass(frozen=True)
class SmtpTarget:
    """`smtp://<user>:<password>@<host>:<port>?starttls=true`, credentials, port and STARTTLS
    optional (port 25, or 587 with STARTTLS), or `smtps://…` (TLS from the start, port 465);
    user and password percent-encoded."""

    host: str
    port: int
    security: str = "plain"
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise DeliveryError(
                "SMARTGRID_SMTP_URL: expected smtp://<user>:<password>@<host>:<port>?starttls=true "
                "(credentials, port and STARTTLS optional) or smtps://…",
                permanent=True,
            )
        starttls = parse_qs(parts.query).get("starttls", ["false"])[-1].lower()
        if parts.scheme == "smtps":
            security, port = "ssl", 465
        elif starttls in ("1", "true", "yes"):
            security, port = "starttls", 587
        else:
            security, port = "plain", 25
        return cls(
            host=parts.hostname,
            port=parts.port or port,
            security=security,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


def send_email(target: SmtpTarget, message: EmailMessage, timeout_s: float) -> None:
    """Send through the server; 4xx answers and network errors are worth retrying."""
    try:
        if target.security == "ssl":
            smtp = smtplib.SMTP_SSL(
                target.host, target.port, timeout=timeout_s, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(target.host, target.port, timeout=timeout_s)
        with smtp:
            if target.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if target.username:
                smtp.login(target.username, target.password or "")
            smtp.send_message(message)
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(
            f"SMTP server answered {exc.smtp_code}", permanent=exc.smtp_code >= 500
        ) from exc
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        raise DeliveryError(
            f"SMTP server refused every recipient ({sorted(set(codes))})",
            permanent=all(code >= 500 for code in codes),
        ) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"SMTP server unreachable ({type(exc).__name__})") from exc
