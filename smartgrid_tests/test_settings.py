"""Settings: one module reads the environment; bad values get a clear error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import smartgrid_assets
from smartgrid_assets.settings import SettingsError, load_settings

PACKAGE = Path(smartgrid_assets.__file__).parent
ENV_ACCESS = re.compile(r"os\.environ|os\.getenv|getenv\(|environ\[")


def test_defaults_follow_the_design(tmp_path: Path) -> None:
    s = load_settings({"SMARTGRID_HOME": str(tmp_path)})
    assert s.home == tmp_path.resolve()
    assert s.tz == "UTC"
    assert s.landing_url == (tmp_path / "landing").resolve().as_uri()
    assert s.lake_url == (tmp_path / "lake").resolve().as_uri()
    assert s.warehouse_url == f"duckdb:///{tmp_path.resolve() / 'warehouse.duckdb'}"
    assert s.mlflow_tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert s.aws_client_kwargs() == {}


def test_s3_and_aws_settings_pass_through() -> None:
    s = load_settings(
        {
            "SMARTGRID_LANDING_URL": "s3://bucket/landing",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
            "AWS_ACCESS_KEY_ID": "k",
            "AWS_SECRET_ACCESS_KEY": "s",
            "AWS_REGION": "eu-west-1",
            "SMARTGRID_TZ": "Europe/Berlin",
        }
    )
    assert s.landing_url == "s3://bucket/landing"
    assert s.zone.key == "Europe/Berlin"
    assert s.aws_client_kwargs() == {
        "endpoint_url": "http://127.0.0.1:9000",
        "aws_access_key_id": "k",
        "aws_secret_access_key": "s",
        "region_name": "eu-west-1",
    }


def test_sql_login_and_timeout(tmp_path: Path) -> None:
    s = load_settings({"SMARTGRID_HOME": str(tmp_path)})
    assert (s.sql_url, s.sql_timeout_s) == (None, 60.0)
    url = "postgresql://grid_reader:testing@db.internal:5432/grid"
    s = load_settings({"SMARTGRID_SQL_URL": url, "SMARTGRID_SQL_TIMEOUT_S": "0.5"})
    assert (s.sql_url, s.sql_timeout_s) == (url, 0.5)
    with pytest.raises(SettingsError, match="SMARTGRID_SQL_URL") as refused:
        load_settings({"SMARTGRID_SQL_URL": "mysql://grid_reader:testing@db.internal/grid"})
    assert "testing" not in str(refused.value), "a password is not echoed"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SMARTGRID_TZ", "Mars/Olympus", "SMARTGRID_TZ"),
        ("SMARTGRID_WAREHOUSE_URL", "mysql://x", "SMARTGRID_WAREHOUSE_URL"),
        ("SMARTGRID_START_DATE", "yesterday", "SMARTGRID_START_DATE"),
        ("SMARTGRID_SQL_TIMEOUT_S", "0", "SMARTGRID_SQL_TIMEOUT_S"),
        ("SMARTGRID_SQL_TIMEOUT_S", "a minute", "SMARTGRID_SQL_TIMEOUT_S"),
        ("SMARTGRID_SQL_URL", "postgresql://db.internal/grid", "SMARTGRID_SQL_URL: expected"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings({name: value})


def test_no_module_but_settings_reads_the_environment() -> None:
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "settings.py" and ENV_ACCESS.search(path.read_text())
    ]
    assert offenders == []


def test_runs_log_one_planned_event_per_asset_unless_told_otherwise() -> None:
    from smartgrid_assets.settings import PLANNED_EVENTS_VARIABLE, select_dagster_planned_events

    unset: dict[str, str] = {}
    select_dagster_planned_events(unset)
    assert unset == {PLANNED_EVENTS_VARIABLE: "1"}
    chosen = {PLANNED_EVENTS_VARIABLE: "0"}
    select_dagster_planned_events(chosen)
    assert chosen == {PLANNED_EVENTS_VARIABLE: "0"}
