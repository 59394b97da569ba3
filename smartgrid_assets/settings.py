"""Every environment variable the product reads, in one place.

No other module reads ``os.environ``: they take a ``Settings`` (usually from ``load_settings()``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa

#: A Slack message holds at most 50 blocks: one per alert, plus a headline and a summary.
MAX_ALERTS_PER_TICK = 45


class SettingsError(ValueError):
    """A setting has a value the product cannot use."""


@dataclass(frozen=True)
class Settings:
    home: Path
    tz: str
    start_date: date
    landing_url: str
    lake_url: str
    warehouse_url: str
    aws_endpoint_url: str | None
    aws_access_key_id: str | None
    aws_secret_access_key: str | None
    aws_region: str | None
    mlflow_tracking_uri: str
    alert_webhook_url: str | None
    smtp_url: str | None
    alert_email_to: str | None
    dagster_home: str | None
    #: PostgreSQL role the dbt marts are granted to (SELECT only); None: no grants
    analyst_role: str | None = None
    #: local hour (0-23) by which a local day's readings must have arrived, on the next day
    freshness_hour: int = 6
    #: alerts listed one by one in a channel's message per sensor tick; the rest are summarised
    alert_max_per_tick: int = 20
    #: sender address of alert emails
    alert_email_from: str = "smartgrid-alerts@localhost"
    #: share of the meters in service that may be short of readings (or mostly estimated) on a
    #: day while the day still goes on downstream (with a warning); above it the day is held
    quality_max_affected_share: float = 0.2
    #: the least-privilege login `smartgrid sql` uses on a PostgreSQL warehouse; None: the
    #: warehouse URL with the reader role `<database>_sql_reader` as user and no password
    sql_url: str | None = None
    #: seconds a `smartgrid sql` query may run before it is cancelled
    sql_timeout_s: float = 60.0
    #: alarms per 1,000 meter-days the calibrated anomaly detectors may raise on normal data
    anomaly_budget: float = 10.0

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    def aws_client_kwargs(self) -> dict[str, str]:
        """Keyword arguments for boto3 clients, so MinIO and AWS S3 are reached the same way."""
        kwargs = {
            "endpoint_url": self.aws_endpoint_url,
            "aws_access_key_id": self.aws_access_key_id,
            "aws_secret_access_key": self.aws_secret_access_key,
            "region_name": self.aws_region,
        }
        return {k: v for k, v in kwargs.items() if v}


def _path_url(value: str) -> str:
    """Plain paths become absolute ``file://`` URLs; ``s3://`` and other URLs pass through."""
    if "://" in value:
        return value
    return Path(value).expanduser().resolve().as_uri()


def select_arrow_memory_pool(environ: Mapping[str, str] | None = None) -> None:
    """Arrow allocates the readings tables from jemalloc unless ARROW_DEFAULT_MEMORY_POOL (which
    Arrow reads itself) names another pool: the wheel's default, mimalloc, made the cleaning of
    a 5.7 M-reading day about 1.5x slower here (`smartgrid bench --only cleaning`, assets
    4.6-4.9 s against 3.0-3.5 s)."""
    env = os.environ if environ is None else environ
    if not env.get("ARROW_DEFAULT_MEMORY_POOL"):
        pa.set_memory_pool(pa.jemalloc_memory_pool())


#: Dagster reads it itself. Unset, a single-run backfill logs one planned event per asset and
#: day before it starts: 26,000 SQLite writes for two years of days, more than 50 minutes here.
#: Set, one event per asset; Dagster then does not mark the days of a failed run failed, which
#: the product records per day itself (`pipeline/holds.py`).
PLANNED_EVENTS_VARIABLE = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"


def select_dagster_planned_events(environ: MutableMapping[str, str] | None = None) -> None:
    """One planned event per asset of a run in every process that starts runs from this code
    (`smartgrid land --materialize`, `smartgrid demo`), unless the variable is set already;
    `make dev` and the deploy image set it for the webserver and the daemon."""
    env = os.environ if environ is None else environ
    env.setdefault(PLANNED_EVENTS_VARIABLE, "1")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ

    def get(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    home = Path(get("SMARTGRID_HOME") or "./data").expanduser().resolve()
    tz = get("SMARTGRID_TZ") or "UTC"
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SettingsError(
            f"SMARTGRID_TZ={tz!r} is not an IANA time zone (expected e.g. 'Europe/Berlin')"
        ) from exc
    start = get("SMARTGRID_START_DATE") or "2026-01-01"
    try:
        start_date = date.fromisoformat(start)
    except ValueError as exc:
        raise SettingsError(f"SMARTGRID_START_DATE={start!r} is not a date (YYYY-MM-DD)") from exc
    warehouse = get("SMARTGRID_WAREHOUSE_URL") or f"duckdb:///{home / 'warehouse.duckdb'}"
    if not warehouse.startswith(("duckdb://", "postgresql://", "postgres://")):
        raise SettingsError(
            f"SMARTGRID_WAREHOUSE_URL={warehouse!r}: expected duckdb:///path or postgresql://..."
        )
    analyst_role = get("SMARTGRID_ANALYST_ROLE")
    if analyst_role is not None and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", analyst_role):
        raise SettingsError(
            f"SMARTGRID_ANALYST_ROLE={analyst_role!r}: expected a lower-case PostgreSQL role name "
            "(letters, digits, underscores)"
        )
    max_per_tick = get("SMARTGRID_ALERT_MAX_PER_TICK") or "20"
    if not max_per_tick.isdigit() or not 1 <= int(max_per_tick) <= MAX_ALERTS_PER_TICK:
        raise SettingsError(
            f"SMARTGRID_ALERT_MAX_PER_TICK={max_per_tick!r}: expected a whole number from 1 to "
            f"{MAX_ALERTS_PER_TICK}"
        )
    hour = get("SMARTGRID_FRESHNESS_HOUR") or "6"
    if not re.fullmatch(r"\d{1,2}", hour) or int(hour) > 23:
        raise SettingsError(
            f"SMARTGRID_FRESHNESS_HOUR={hour!r}: expected a local hour from 0 to 23"
        )
    affected = get("SMARTGRID_QUALITY_MAX_AFFECTED_SHARE") or "0.2"
    try:
        affected_share = float(affected)
    except ValueError:
        affected_share = -1.0
    if not 0 <= affected_share <= 1:
        raise SettingsError(
            f"SMARTGRID_QUALITY_MAX_AFFECTED_SHARE={affected!r}: expected a share from 0 to 1 "
            "(e.g. 0.2)"
        )
    sql_url = get("SMARTGRID_SQL_URL")
    if sql_url is not None and (
        not sql_url.startswith(("postgresql://", "postgres://")) or not urlsplit(sql_url).username
    ):
        # The value is not echoed: it may hold a password.
        raise SettingsError(
            "SMARTGRID_SQL_URL: expected a postgresql:// URL that names its user, the login of a "
            "least-privilege role"
        )
    timeout = get("SMARTGRID_SQL_TIMEOUT_S") or "60"
    if not re.fullmatch(r"\d+(\.\d+)?", timeout) or float(timeout) <= 0:
        raise SettingsError(
            f"SMARTGRID_SQL_TIMEOUT_S={timeout!r}: expected seconds above 0 (e.g. 60 or 0.5)"
        )
    budget = get("SMARTGRID_ANOMALY_BUDGET") or "10"
    if not re.fullmatch(r"\d+(\.\d+)?", budget) or not 0 < float(budget) <= 1000:
        raise SettingsError(
            f"SMARTGRID_ANOMALY_BUDGET={budget!r}: expected alarms per 1,000 meter-days above 0 "
            "and at most 1000 (e.g. 10)"
        )
    return Settings(
        home=home,
        tz=tz,
        start_date=start_date,
        landing_url=_path_url(get("SMARTGRID_LANDING_URL") or str(home / "landing")),
        lake_url=_path_url(get("SMARTGRID_LAKE_URL") or str(home / "lake")),
        warehouse_url=warehouse,
        aws_endpoint_url=get("AWS_ENDPOINT_URL"),
        aws_access_key_id=get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=get("AWS_SECRET_ACCESS_KEY"),
        aws_region=get("AWS_REGION") or get("AWS_DEFAULT_REGION"),
        mlflow_tracking_uri=get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}",
        alert_webhook_url=get("SMARTGRID_ALERT_WEBHOOK_URL"),
        smtp_url=get("SMARTGRID_SMTP_URL"),
        alert_email_to=get("SMARTGRID_ALERT_EMAIL_TO"),
        dagster_home=get("DAGSTER_HOME"),
        analyst_role=analyst_role,
        freshness_hour=int(hour),
        alert_max_per_tick=int(max_per_tick),
        alert_email_from=get("SMARTGRID_ALERT_EMAIL_FROM") or "smartgrid-alerts@localhost",
        quality_max_affected_share=affected_share,
        sql_url=sql_url,
        sql_timeout_s=float(timeout),
        anomaly_budget=float(budget),
    )
