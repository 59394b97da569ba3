"""The production instance of deploy/dagster.yaml on the real local PostgreSQL: a partitioned
materialization with asset checks and a landing-sensor tick (through a gRPC code server, as the
deploy workspace loads it, and the sensor daemon's own tick code) are stored, and a new instance
object on the same database finds the run history, materializations, check results and the sensor
cursor intact."""

# No `from __future__ import annotations`: Dagster reads the asset checks' context annotation.
import dataclasses
import json
import logging
import os
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import pyarrow.compute as pc
import pytest
import yaml
from dagster._core.scheduler.instigation import InstigatorType, TickStatus
from sqlalchemy.engine import make_url

from smartgrid_assets.definitions import defs
from smartgrid_assets.defs.common import daily_partitions
from smartgrid_assets.pipeline.land import land_tree
from smartgrid_assets.platform import Platform
from smartgrid_assets.settings import Settings
from smartgrid_assets.synth import synthesize
from smartgrid_tests.conftest import TEST_ENV, TEST_TZ

pytestmark = pytest.mark.postgres

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
STORAGE_SECTIONS = ("run_storage", "event_log_storage", "schedule_storage")
START = date(2026, 3, 2)
DAY = date(2026, 3, 3)


# Test-only asset checks: `defs` has none yet. One per partition of raw_readings (partitioned
# checks are a Dagster preview: its warning is silenced here), one on meters.
def raw_readings_partition_in_lake(
    context: dg.AssetCheckExecutionContext, platform: dg.ResourceParam[Platform]
) -> dg.AssetCheckResult:
    table = platform.lake.read_partition("raw_readings", date.fromisoformat(context.partition_key))
    rows = 0 if table is None else table.num_rows
    return dg.AssetCheckResult(passed=rows > 0, metadata={"rows": rows})


with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)
    raw_readings_partition_in_lake = dg.asset_check(
        asset="raw_readings", partitions_def=daily_partitions
    )(raw_readings_partition_in_lake)


@dg.asset_check(asset="meters")
def meters_are_unique(platform: dg.ResourceParam[Platform]) -> dg.AssetCheckResult:
    ids = platform.warehouse.read("SELECT meter_id FROM meters")["meter_id"]
    distinct = pc.count_distinct(ids).as_py()
    return dg.AssetCheckResult(
        passed=distinct == len(ids), metadata={"meters": len(ids), "distinct": distinct}
    )


CHECKS = [raw_readings_partition_in_lake, meters_are_unique]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_env(url: str) -> dict[str, str]:
    """The DAGSTER_PG_* variables deploy/dagster.yaml reads, for a postgresql:// URL."""
    parsed = make_url(url)
    return {
        "DAGSTER_PG_USERNAME": parsed.username or "",
        "DAGSTER_PG_PASSWORD": parsed.password or "",
        "DAGSTER_PG_HOST": parsed.host or "",
        "DAGSTER_PG_PORT": str(parsed.port or 5432),
        "DAGSTER_PG_DB": parsed.database or "",
    }


def _instance_yaml(compute_logs_dir: Path) -> dict:
    """deploy/dagster.yaml with the K8sRunLauncher left out (the default launcher runs in process)
    and step logs on local disk instead of S3; storage, queue, pools and retries as deployed."""
    deployed = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    assert deployed["run_launcher"]["class"] == "K8sRunLauncher"
    kept = (*STORAGE_SECTIONS, "run_coordinator", "concurrency", "run_retries", "telemetry")
    config = {key: deployed[key] for key in kept}
    config["compute_logs"] = {
        "module": "dagster._core.storage.local_compute_log_manager",
        "class": "LocalComputeLogManager",
        "config": {"base_dir": str(compute_logs_dir)},
    }
    return config


@pytest.fixture
def instance_home(tmp_path: Path, postgres_database: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, value in _pg_env(postgres_database).items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "dagster_home"
    home.mkdir()
    config = _instance_yaml(tmp_path / "compute_logs")
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return home


@pytest.fixture
def platform(local_settings: Settings) -> Platform:
    return Platform(dataclasses.replace(local_settings, tz=TEST_TZ))


@pytest.fixture
def code_server(platform: Platform, tmp_path: Path) -> Iterator[Path]:
    """The code location served over gRPC like deploy/workspace.yaml loads it, on loopback; yields
    a workspace file that is deploy/workspace.yaml with the host and port of this server."""
    port = _free_port()
    settings = platform.settings
    inherited = {
        k: v for k, v in os.environ.items() if not k.startswith(("SMARTGRID_", "AWS_", "MLFLOW_"))
    }
    env = {
        **inherited,
        **TEST_ENV,
        "SMARTGRID_HOME": str(settings.home),
        "SMARTGRID_LANDING_URL": settings.landing_url,
        "SMARTGRID_LAKE_URL": settings.lake_url,
        "SMARTGRID_TZ": TEST_TZ,
    }
    log = (tmp_path / "code-server.log").open("wb")
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "dagster", "api", "grpc"),
            *("--module-name", "smartgrid_assets.definitions"),
            *("--host", "127.0.0.1", "--port", str(port)),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            ping = subprocess.run(
                [sys.executable, "-m", "dagster", "api", "grpc-health-check", "--port", str(port)],
                capture_output=True,
                env=env,
            )
            if ping.returncode == 0:
                break
            if server.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(
                    f"code server did not start:\n{(tmp_path / 'code-server.log').read_text()}"
                )
            time.sleep(0.5)
        workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
        entry = workspace["load_from"][0]["grpc_server"]
        entry.update(host="127.0.0.1", port=port)
        path = tmp_path / "workspace.yaml"
        path.write_text(yaml.safe_dump(workspace))
        yield path
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _materialize(instance: dg.DagsterInstance, platform: Platform, selection, **kwargs):
    result = dg.materialize(
        [*(defs.assets or []), *CHECKS],
        selection=selection,
        instance=instance,
        resources={"platform": platform},
        **kwargs,
    )
    assert result.success
    return result


def _sensor_tick(instance: dg.DagsterInstance, workspace_file: Path) -> None:
    """One iteration of the sensor daemon over the workspace: evaluates landing_sensor in the code
    server, stores the tick and the cursor, submits the run requests to the run queue."""
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster._daemon.sensor import execute_sensor_iteration

    target = WorkspaceFileTarget(paths=[str(workspace_file)])
    with WorkspaceProcessContext(instance, target) as context:
        list(
            execute_sensor_iteration(
                context,
                logging.getLogger("smartgrid.test.sensor"),
                threadpool_executor=None,
                submit_threadpool_executor=None,
            )
        )


def test_instance_history_survives_on_postgres(
    instance_home: Path, platform: Platform, code_server: Path, tmp_path: Path
) -> None:
    utility = tmp_path / "utility"
    synthesize(utility, meters=20, days=2, seed=3, tz=TEST_TZ, start=START)
    land_tree(platform.landing, utility)

    with dg.DagsterInstance.from_config(str(instance_home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        # The files arrive: the sensor daemon ticks and queues one run per local day and one for
        # the registry (nothing dequeues them here: no run launcher daemon).
        _sensor_tick(instance, code_server)
        [sensor_state] = [
            state
            for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
            if state.name == "landing_sensor"
        ]
        first_cursor = sensor_state.instigator_data.cursor
        queued_before = {
            r.run_id: r.tags
            for r in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))
        }
        # What two of those runs would do, in process on the same instance.
        meters_run = _materialize(instance, platform, ["meters"]).run_id
        raw_run = _materialize(
            instance, platform, ["raw_readings"], partition_key=DAY.isoformat()
        ).run_id

    with dg.DagsterInstance.from_config(str(instance_home)) as again:
        # Run history: both materializations, with their events and partition.
        runs = {r.run_id: r for r in again.get_runs()}
        assert runs[meters_run].status == dg.DagsterRunStatus.SUCCESS
        assert runs[raw_run].status == dg.DagsterRunStatus.SUCCESS
        assert runs[raw_run].tags["dagster/partition"] == DAY.isoformat()
        events = [e.dagster_event_type for e in again.all_logs(raw_run) if e.is_dagster_event]
        assert dg.DagsterEventType.ASSET_MATERIALIZATION in events
        assert dg.DagsterEventType.RUN_SUCCESS in events

        # Materializations: the partition and the metadata.
        assert again.get_materialized_partitions(dg.AssetKey("raw_readings")) == {DAY.isoformat()}
        [raw_record] = again.fetch_materializations(dg.AssetKey("raw_readings"), limit=5).records
        raw_rows = platform.lake.read_partition("raw_readings", DAY).num_rows
        assert raw_record.asset_materialization.metadata["rows"].value == raw_rows > 0
        meters_event = again.get_latest_materialization_event(dg.AssetKey("meters"))
        assert meters_event is not None and meters_event.run_id == meters_run

        # Asset check results: passed, per partition where the check is partitioned.
        latest = again.event_log_storage.get_latest_asset_check_execution_by_key(
            [c.check_key for c in CHECKS]
        )
        raw_check = latest[raw_readings_partition_in_lake.check_key]
        assert raw_check.run_id == raw_run
        assert raw_check.partition == DAY.isoformat()
        assert raw_check.status.value == "SUCCEEDED"
        evaluation = raw_check.event.dagster_event.event_specific_data
        assert evaluation.passed and evaluation.metadata["rows"].value == raw_rows
        meters_check = latest[meters_are_unique.check_key]
        assert meters_check.run_id == meters_run and meters_check.status.value == "SUCCEEDED"
        assert meters_check.event.dagster_event.event_specific_data.metadata["meters"].value == 20

        # The warehouse pool ran on the instance's PostgreSQL concurrency tables, limit 1, and
        # every slot was given back.
        pool = again.event_log_storage.get_concurrency_info("warehouse")
        assert pool.slot_count == 1 and pool.active_slot_count == 0

        # The sensor: its state and cursor, the tick and the runs it queued.
        [state] = [  # alert_sensor ticks too; its own test is test_alerts
            state
            for state in again.all_instigator_state(instigator_type=InstigatorType.SENSOR)
            if state.name == "landing_sensor"
        ]
        cursor = state.instigator_data.cursor
        assert cursor == first_cursor and json.loads(cursor)["readings"]
        [tick] = again.get_ticks(state.instigator_origin_id, state.selector_id)
        assert tick.status == TickStatus.SUCCESS
        assert tick.cursor == cursor
        assert set(tick.run_ids) == set(queued_before) and len(queued_before) == 3
        queued = again.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))
        assert {r.run_id for r in queued} == set(queued_before)
        assert sorted(r.tags.get("dagster/partition", "meters") for r in queued) == [
            "2026-03-02",
            "2026-03-03",
            "meters",
        ]
        assert all(r.tags["dagster/sensor_name"] == "landing_sensor" for r in queued)

        # The stored cursor still means what it meant: nothing new has landed since.
        context = dg.build_sensor_context(
            instance=again, cursor=cursor, resources={"platform": platform}
        )
        from smartgrid_assets.defs.automation import landing_sensor

        assert list(landing_sensor(context).run_requests or []) == []

        # The queue limits of deploy/dagster.yaml are what this instance enforces.
        limits = again.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert {"key": "smartgrid/workload", "value": "forecast", "limit": 2} in limits
