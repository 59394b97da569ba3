"""Shared pytest fixtures. Each section is self-contained; add new ones in their own section."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from smartgrid_assets.settings import Settings, load_settings

# =========================================================================================
# Test environment: only loopback is reachable, so every telemetry is off; the code location's
# daily partitions are local days in Europe/Berlin (DST days of 92 and 100 quarter hours).
# =========================================================================================

TEST_TZ = "Europe/Berlin"
TEST_ENV = {
    "DO_NOT_TRACK": "1",
    "DAGSTER_DISABLE_TELEMETRY": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "SMARTGRID_TZ": TEST_TZ,
    "SMARTGRID_START_DATE": "2026-03-01",
}


def pytest_configure(config: pytest.Config) -> None:
    os.environ.update(TEST_ENV)


# =========================================================================================
# S3 / MinIO stand-in and storage settings (landing zone, lake)
#
#   s3_server       session: a moto S3 server on 127.0.0.1 (real HTTP), yields its endpoint URL
#   s3_settings     Settings with landing and lake in a fresh bucket on s3_server
#   local_settings  Settings with landing and lake in folders under tmp_path
# =========================================================================================

S3_TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A moto S3 server on loopback; yields ``http://127.0.0.1:PORT``."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _isolate_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's AWS profile, config and proxies out of tests against s3_server."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ENDPOINT_URL_S3",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in S3_TEST_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("NO_PROXY", "no_proxy"):
        current = os.environ.get(name, "")
        monkeypatch.setenv(name, ",".join(filter(None, [current, "127.0.0.1", "localhost"])))


@pytest.fixture
def s3_settings(tmp_path: Path, s3_server: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings whose landing zone is ``s3://<fresh bucket>/landing`` and lake
    ``s3://<same bucket>/lake`` on ``s3_server`` (dummy credentials, us-east-1)."""
    import boto3

    _isolate_aws_env(monkeypatch, tmp_path)
    bucket = f"sg-test-{uuid.uuid4().hex[:16]}"
    settings = load_settings(
        {
            "SMARTGRID_HOME": str(tmp_path),
            "SMARTGRID_LANDING_URL": f"s3://{bucket}/landing",
            "SMARTGRID_LAKE_URL": f"s3://{bucket}/lake",
            "AWS_ENDPOINT_URL": s3_server,
            **S3_TEST_CREDENTIALS,
        }
    )
    boto3.client("s3", **settings.aws_client_kwargs()).create_bucket(Bucket=bucket)
    return settings


@pytest.fixture
def local_settings(tmp_path: Path) -> Settings:
    """Settings whose landing zone and lake are the folders ``tmp_path/landing`` and
    ``tmp_path/lake``."""
    return load_settings(
        {
            "SMARTGRID_HOME": str(tmp_path),
            "SMARTGRID_LANDING_URL": str(tmp_path / "landing"),
            "SMARTGRID_LAKE_URL": str(tmp_path / "lake"),
        }
    )


# =========================================================================================
# PostgreSQL (the local server: 127.0.0.1:5432, user postgres, trust auth)
#
#   postgres_database   a throwaway database `smartgrid_test_<uuid>`, created for the test and
#                       dropped after it; yields its URL (postgresql://postgres@127.0.0.1:5432/...).
#                       Skips with the reason when the server is unreachable, unless
#                       SMARTGRID_REQUIRE_POSTGRES=1 (set by .ci/run): then it fails.
# =========================================================================================

POSTGRES_SERVER_URL = "postgresql://postgres@127.0.0.1:5432"


def _postgres_unreachable(reason: str) -> None:
    """Skips the test, or fails it when PostgreSQL is required; never returns."""
    message = (
        f"PostgreSQL at {POSTGRES_SERVER_URL} is unreachable ({reason}); start it with "
        "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
    )
    if os.environ.get("SMARTGRID_REQUIRE_POSTGRES") == "1":
        pytest.fail(message + " [SMARTGRID_REQUIRE_POSTGRES=1]", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh database on the local PostgreSQL server, dropped after the test; yields its URL."""
    import psycopg

    try:
        admin = psycopg.connect(
            f"{POSTGRES_SERVER_URL}/postgres", autocommit=True, connect_timeout=5
        )
    except psycopg.OperationalError as exc:
        _postgres_unreachable(str(exc).strip().splitlines()[0] if str(exc).strip() else "no answer")
    name = f"smartgrid_test_{uuid.uuid4().hex}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{POSTGRES_SERVER_URL}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            _drop_reader_role(admin, f"{POSTGRES_SERVER_URL}/{name}")


def _drop_reader_role(admin, url: str) -> None:
    """The `smartgrid sql` reader role a warehouse creates outlives its database."""
    from smartgrid_assets.warehouse.postgres_warehouse import default_reader_role

    admin.execute(f'DROP ROLE IF EXISTS "{default_reader_role(url)}"')


# =========================================================================================
# A PostgreSQL warehouse for a whole test module (the marts tests build the graph once)
#
#   postgres_warehouse   module: a throwaway database (as postgres_database) and a fresh LOGIN
#                        role `smartgrid_analyst_<uuid>` to grant the marts to; yields
#                        PostgresWarehouseDb(url, analyst_role). Drops the database, then the
#                        role. Skips / fails like postgres_database when the server is down.
# =========================================================================================


class PostgresWarehouseDb:
    def __init__(self, url: str, analyst_role: str) -> None:
        self.url = url
        self.analyst_role = analyst_role

    def url_as(self, role: str) -> str:
        """The database's URL for another login (trust auth: no password)."""
        return self.url.replace("postgresql://postgres@", f"postgresql://{role}@", 1)


@pytest.fixture(scope="module")
def postgres_warehouse() -> Iterator[PostgresWarehouseDb]:
    import psycopg

    try:
        admin = psycopg.connect(
            f"{POSTGRES_SERVER_URL}/postgres", autocommit=True, connect_timeout=5
        )
    except psycopg.OperationalError as exc:
        _postgres_unreachable(str(exc).strip().splitlines()[0] if str(exc).strip() else "no answer")
    token = uuid.uuid4().hex
    name, role = f"smartgrid_test_{token}", f"smartgrid_analyst_{token[:16]}"
    with admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
        try:
            admin.execute(f'CREATE DATABASE "{name}"')
            try:
                yield PostgresWarehouseDb(f"{POSTGRES_SERVER_URL}/{name}", role)
            finally:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                _drop_reader_role(admin, f"{POSTGRES_SERVER_URL}/{name}")
        finally:
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')
