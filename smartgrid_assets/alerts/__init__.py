"""Alerts for new warning / critical anomaly events and failed runs, by webhook (Slack-compatible
JSON) and SMTP: planning against a de-duplication cursor, formatting, delivery with bounded
retries. Plain Python; the sensor in `smartgrid_assets.defs.alerts` wires it to Dagster."""

from .channels import Channel, Delivery, channels_from_settings, deliver
from .cursor import AlertCursor, AlertPlan, AlertWindow, plan_alerts
from .delivery import DeliveryError, RetryPolicy, SmtpTarget, post_webhook, send_email, with_retry
from .format import email_message, plain_text, slack_payload
from .model import ALERT_SEVERITIES, Digest, EventAlert, RunFailure, digest, event_alerts
from .source import quick, read_alert_events

__all__ = [
    "ALERT_SEVERITIES",
    "AlertCursor",
    "AlertPlan",
    "AlertWindow",
    "Channel",
    "Delivery",
    "DeliveryError",
    "Digest",
    "EventAlert",
    "RetryPolicy",
    "RunFailure",
    "SmtpTarget",
    "channels_from_settings",
    "deliver",
    "digest",
    "email_message",
    "event_alerts",
    "plain_text",
    "plan_alerts",
    "post_webhook",
    "quick",
    "read_alert_events",
    "send_email",
    "slack_payload",
    "with_retry",
]
