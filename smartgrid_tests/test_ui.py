"""The Dagster UI over real runs: a synthetic utility is materialized in-process into a fresh
Dagster instance, then `dagster-webserver` serves the code location over that instance and the
GraphQL API (and, when chromium is installed, the rendered UI) must show every asset and asset
check of `defs`, the partitions, the runs and their metadata.

Everything expected is derived from `defs` and from the in-process results, so assets and checks
added later are covered without editing this module. Only loopback is used; telemetry is off.
Chromium: skipped when /usr/bin/chromium is missing, a failure if SMARTGRID_REQUIRE_CHROMIUM=1.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import pytest
import requests
import yaml

from smartgrid_assets.definitions import defs
from smartgrid_assets.demo import partition_range_tags
from smartgrid_assets.pipeline.land import land_tree
from smartgrid_assets.platform import Platform
from smartgrid_assets.settings import load_settings
from smartgrid_assets.synth import synthesize
from smartgrid_tests.conftest import TEST_ENV, TEST_TZ

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKSPACE = REPO_ROOT / "workspace.yaml"
CHROMIUM = Path("/usr/bin/chromium")

SYNTH_START = date(2026, 3, 27)  # 3 synthetic days: the 27th, the 28th and the DST day 29th
FIRST, LAST = date(2026, 3, 27), date(2026, 3, 28)  # the 2-day range materialized
# The UI needs real runs, not the whole pipeline: the registry run, then one single-run backfill
# of the daily assets up to the feeder roll-up. Assets added later still have to show in the UI
# (checked against `defs`); they just have no run here.
UNPARTITIONED_SELECTION = ["meters"]
PARTITIONED_SELECTION = [
    "weather",
    "raw_readings",
    "cleaned_readings",
    "meter_hourly",
    "feeder_hourly",
]

# nux off: otherwise the UI opens a "Join the Dagster community" sign-up modal over every page
# served from 127.0.0.1 (it covers the screenshot; once submitted it loads a remote iframe).
DAGSTER_YAML = """\
telemetry:
  enabled: false
nux:
  enabled: false
concurrency:
  pools:
    default_limit: 1
"""
SERVER_START_TIMEOUT_S = 90
HTTP_TIMEOUT_S = 30
CHROMIUM_TIMEOUT_S = 60
# Virtual time: chromium fast-forwards timers but pauses while network fetches are pending, so
# the JS app gets its GraphQL answers however slow the server is. Retried once with more budget.
VIRTUAL_TIME_BUDGETS_MS = (15_000, 30_000)
T = TypeVar("T")


# =========================================================================================
# Helpers: free port, bounded waiting, process shutdown, GraphQL
# =========================================================================================


class ProcessExited(RuntimeError):
    """The process being waited for is gone: waiting longer cannot help."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (callers retry if it got taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.5
) -> T:
    """Call `probe` until it returns something truthy and return that.

    Exceptions count as "not yet", except ProcessExited, which is raised at once. Raises
    TimeoutError after `timeout` seconds, with the last exception or falsy value.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
            if value:
                return value
            last = value
        except ProcessExited:
            raise
        except Exception as exc:  # not ready yet; keep the reason for the timeout message
            last = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not ready after {timeout:.0f} s (last: {last!r})")
        time.sleep(interval)


def stop_process_group(proc: subprocess.Popen, timeout: float = 15) -> None:
    """Stop a process started with `start_new_session=True`, by its id: SIGTERM, wait, SIGKILL.

    Then SIGKILL whatever is left in its process group (whose id is the process id), e.g. the
    code server `dagster-webserver` spawned, or chromium's renderer processes.
    """
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def log_tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as exc:
        return f"(no log: {exc})"


def no_proxy_session() -> requests.Session:
    """Talk to 127.0.0.1 directly, whatever HTTP(S)_PROXY the environment sets."""
    session = requests.Session()
    session.trust_env = False
    return session


def graphql(
    session: requests.Session, base_url: str, query: str, variables: dict | None = None
) -> dict[str, Any]:
    response = session.post(
        f"{base_url}/graphql",
        json={"query": query, "variables": variables or {}},
        timeout=HTTP_TIMEOUT_S,
    )
    assert response.status_code == 200, f"GraphQL HTTP {response.status_code}: {response.text}"
    body = response.json()
    assert not body.get("errors"), f"GraphQL errors: {body['errors']}"
    return body["data"]


def key_str(path: list[str]) -> str:
    return dg.AssetKey(path).to_user_string()


# =========================================================================================
# Step 1: a Dagster instance with real runs over a synthetic utility
# =========================================================================================


@dataclass(frozen=True)
class Materialized:
    dagster_home: Path
    env: dict[str, str]  # the smartgrid settings both the runs and the webserver use
    run_ids: list[str]  # [registry run, daily range run]
    metadata_labels: dict[str, set[str]]  # asset key -> metadata labels of its materializations
    partitions: dict[str, set[str]]  # asset key -> partitions materialized


@pytest.fixture(scope="module")
def materialized(tmp_path_factory: pytest.TempPathFactory) -> Materialized:
    dagster_home = tmp_path_factory.mktemp("dagster_home")
    (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
    smartgrid_home = tmp_path_factory.mktemp("smartgrid_home")
    env = {**TEST_ENV, "SMARTGRID_HOME": str(smartgrid_home)}
    settings = load_settings(env)
    assert settings.tz == TEST_TZ

    out = tmp_path_factory.mktemp("utility")
    synthesize(out, meters=30, days=3, interval_minutes=15, seed=5, tz=TEST_TZ, start=SYNTH_START)
    platform = Platform(settings)
    assert land_tree(platform.landing, out), "nothing landed"

    assets = list(defs.assets or [])
    results = []
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for selection, tags in (
            (UNPARTITIONED_SELECTION, None),
            (PARTITIONED_SELECTION, partition_range_tags(FIRST, LAST)),
        ):
            result = dg.materialize(
                assets,
                selection=selection,
                instance=instance,
                resources={"platform": platform},
                tags=tags,
            )
            assert result.success, f"in-process run of {selection} failed"
            results.append(result)

    labels: dict[str, set[str]] = {}
    partitions: dict[str, set[str]] = {}
    for result in results:
        for event in result.get_asset_materialization_events():
            materialization = event.step_materialization_data.materialization
            key = materialization.asset_key.to_user_string()
            labels.setdefault(key, set()).update(materialization.metadata)
            if materialization.partition:
                partitions.setdefault(key, set()).add(materialization.partition)
    assert set(labels) == set(UNPARTITIONED_SELECTION + PARTITIONED_SELECTION)
    return Materialized(
        dagster_home=dagster_home,
        env=env,
        run_ids=[r.run_id for r in results],
        metadata_labels=labels,
        partitions=partitions,
    )


# =========================================================================================
# Step 2: dagster-webserver over that instance, stopped by its process id whatever happens
# =========================================================================================

LOCATIONS_QUERY = """
query {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { name repositories { name } }
          ... on PythonError { message cause { message cause { message } } }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""


def workspace_location_name() -> str:
    (entry,) = yaml.safe_load(WORKSPACE.read_text())["load_from"]
    return entry["python_module"]["location_name"]


def webserver_command(port: int) -> list[str]:
    script = Path(sys.executable).with_name("dagster-webserver")
    launcher = [str(script)] if script.exists() else [sys.executable, "-m", "dagster_webserver"]
    return [*launcher, "-h", "127.0.0.1", "-p", str(port), "-w", str(WORKSPACE)]


def webserver_env(materialized: Materialized) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMARTGRID_", "DAGSTER_"))}
    env.update(materialized.env)  # SMARTGRID_HOME, SMARTGRID_TZ, SMARTGRID_START_DATE, telemetry
    env["DAGSTER_HOME"] = str(materialized.dagster_home)
    env["DO_NOT_TRACK"] = "1"
    env["DAGSTER_DISABLE_TELEMETRY"] = "1"
    no_proxy = ",".join(filter(None, [env.get("NO_PROXY", ""), "127.0.0.1", "localhost"]))
    env["NO_PROXY"] = env["no_proxy"] = no_proxy
    return env


def wait_for_location(
    proc: subprocess.Popen, session: requests.Session, base_url: str, location: str, log: Path
) -> None:
    """Wait (bounded) until /server_info answers and the code location is LOADED without error."""

    def alive() -> None:
        if proc.poll() is not None:
            raise ProcessExited(f"webserver exited with {proc.returncode}:\n{log_tail(log)}")

    def server_info() -> bool:
        alive()
        response = session.get(f"{base_url}/server_info", timeout=5)
        return response.status_code == 200 and "dagster_webserver_version" in response.json()

    def location_loaded() -> dict | None:
        alive()
        data = graphql(session, base_url, LOCATIONS_QUERY)["workspaceOrError"]
        assert data["__typename"] == "Workspace", data
        entry = {e["name"]: e for e in data["locationEntries"]}.get(location)
        return entry if entry and entry["loadStatus"] == "LOADED" else None

    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    wait_until(server_info, timeout=SERVER_START_TIMEOUT_S, what="GET /server_info")
    entry = wait_until(
        location_loaded,
        timeout=max(deadline - time.monotonic(), 5),
        what=f"code location {location!r} LOADED",
    )
    loaded = entry["locationOrLoadError"]
    assert loaded and loaded["__typename"] == "RepositoryLocation", (
        f"code location {location!r} failed to load: {loaded}\n{log_tail(log)}"
    )


@dataclass(frozen=True)
class Webserver:
    base_url: str
    proc: subprocess.Popen
    log: Path


@pytest.fixture(scope="module")
def webserver(
    materialized: Materialized, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Webserver]:
    logs = tmp_path_factory.mktemp("webserver")
    location = workspace_location_name()
    session = no_proxy_session()
    # The free port can be taken between probing and binding: then the server exits at once
    # and the next attempt gets another port.
    attempts = 3
    for attempt in range(attempts):
        port = free_port()
        log = logs / f"webserver-{attempt}.log"
        base_url = f"http://127.0.0.1:{port}"
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                webserver_command(port),
                cwd=REPO_ROOT,
                env=webserver_env(materialized),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, with the code server it spawns
            )
        try:
            wait_for_location(proc, session, base_url, location, log)
        except BaseException as exc:
            stop_process_group(proc)
            port_taken = "address already in use" in log_tail(log, 50_000).lower()
            if isinstance(exc, ProcessExited) and port_taken and attempt < attempts - 1:
                continue
            raise
        try:
            yield Webserver(base_url=base_url, proc=proc, log=log)
        finally:
            stop_process_group(proc)
        return


@pytest.fixture(scope="module")
def api(webserver: Webserver) -> Callable[..., dict[str, Any]]:
    session = no_proxy_session()

    def query(text: str, variables: dict | None = None) -> dict[str, Any]:
        return graphql(session, webserver.base_url, text, variables)

    return query


ASSET_NODES_QUERY = """
query {
  assetNodes {
    assetKey { path }
    groupName
    isPartitioned
    partitionDefinition { type description }
    partitionStats { numMaterialized numPartitions }
    assetChecksOrError {
      __typename
      ... on AssetChecks { checks { name assetKey { path } } }
    }
  }
}
"""


@pytest.fixture(scope="module")
def asset_nodes(api: Callable[..., dict[str, Any]]) -> dict[str, dict[str, Any]]:
    nodes = api(ASSET_NODES_QUERY)["assetNodes"]
    return {key_str(node["assetKey"]["path"]): node for node in nodes}


def test_server_info_and_code_location(webserver: Webserver) -> None:
    info = no_proxy_session().get(f"{webserver.base_url}/server_info", timeout=HTTP_TIMEOUT_S)
    assert info.status_code == 200
    assert info.json()["dagster_version"] == dg.__version__
    assert webserver.proc.poll() is None, log_tail(webserver.log)


def test_every_asset_of_defs_is_listed_with_its_group(
    asset_nodes: dict[str, dict[str, Any]],
) -> None:
    graph = defs.resolve_asset_graph()
    expected = {key.to_user_string(): graph.get(key) for key in graph.get_all_asset_keys()}
    assert set(expected) <= set(asset_nodes), f"missing in UI: {set(expected) - set(asset_nodes)}"
    assert set(asset_nodes) == set(expected), "UI lists assets that defs does not define"
    for key, node in expected.items():
        assert asset_nodes[key]["groupName"] == (node.group_name or "default"), key


def test_partition_definitions_are_reported(asset_nodes: dict[str, dict[str, Any]]) -> None:
    graph = defs.resolve_asset_graph()
    partitioned = set()
    for asset_key in graph.get_all_asset_keys():
        key, partitions_def = asset_key.to_user_string(), graph.get(asset_key).partitions_def
        node = asset_nodes[key]
        if partitions_def is None:
            assert not node["isPartitioned"] and node["partitionDefinition"] is None, key
            continue
        partitioned.add(key)
        assert node["isPartitioned"], key
        definition = node["partitionDefinition"]
        assert definition["description"] == str(partitions_def), key
        if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
            assert definition["type"] == "TIME_WINDOW", key
            assert TEST_TZ in definition["description"], key  # daily partitions are local days
    assert set(PARTITIONED_SELECTION) <= partitioned


def test_asset_checks_of_defs_are_listed(asset_nodes: dict[str, dict[str, Any]]) -> None:
    expected = {
        (check_key.asset_key.to_user_string(), check_key.name)
        for check_key in defs.resolve_asset_graph().asset_check_keys
    }
    listed = set()
    for key, node in asset_nodes.items():
        checks = node["assetChecksOrError"]
        assert checks["__typename"] == "AssetChecks", (key, checks)
        listed |= {(key_str(c["assetKey"]["path"]), c["name"]) for c in checks["checks"]}
    assert listed == expected  # also holds (both empty) while defs has no checks yet


RUNS_QUERY = """
query Runs($runIds: [String]) {
  runsOrError(filter: {runIds: $runIds}) {
    __typename
    ... on Runs {
      results { runId status jobName stepStats { stepKey status } tags { key value } }
    }
    ... on InvalidPipelineRunsFilterError { message }
    ... on PythonError { message }
  }
}
"""


def test_runs_are_listed_as_successful(
    api: Callable[..., dict[str, Any]], materialized: Materialized
) -> None:
    data = api(RUNS_QUERY, {"runIds": materialized.run_ids})["runsOrError"]
    assert data["__typename"] == "Runs", data
    runs = {run["runId"]: run for run in data["results"]}
    assert set(runs) == set(materialized.run_ids)
    registry_run, daily_run = (runs[run_id] for run_id in materialized.run_ids)
    for run, selection in (
        (registry_run, UNPARTITIONED_SELECTION),
        (daily_run, PARTITIONED_SELECTION),
    ):
        assert run["status"] == "SUCCESS", run
        # `dg.materialize` runs record no asset selection (it is baked into the hidden
        # __ephemeral_asset_job__), so the assets are checked through their steps.
        steps = {s["stepKey"]: s["status"] for s in run["stepStats"]}
        for key in selection:
            op_name = defs.resolve_assets_def(dg.AssetKey.from_user_string(key)).node_def.name
            assert steps.get(op_name) == "SUCCESS", (key, steps)
    tags = {t["key"]: t["value"] for t in daily_run["tags"]}
    assert tags.items() >= partition_range_tags(FIRST, LAST).items()


ASSET_QUERY = """
query Asset($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) {
    __typename
    ... on Asset {
      assetMaterializations(limit: 20) {
        runId
        partition
        metadataEntries { __typename label }
      }
    }
    ... on AssetNotFoundError { message }
  }
}
"""


def test_materializations_carry_their_metadata(
    api: Callable[..., dict[str, Any]],
    materialized: Materialized,
    asset_nodes: dict[str, dict[str, Any]],
) -> None:
    for key, labels in materialized.metadata_labels.items():
        data = api(ASSET_QUERY, {"path": dg.AssetKey.from_user_string(key).path})["assetOrError"]
        assert data["__typename"] == "Asset", data
        events = data["assetMaterializations"]
        assert events, f"{key}: no materializations in the UI"
        assert {e["runId"] for e in events} <= set(materialized.run_ids), key
        for event in events:
            assert {m["label"] for m in event["metadataEntries"]} == labels, key
        expected_partitions = materialized.partitions.get(key, set())
        assert {e["partition"] for e in events if e["partition"]} == expected_partitions, key
        if expected_partitions:
            assert expected_partitions == {FIRST.isoformat(), LAST.isoformat()}, key
            stats = asset_nodes[key]["partitionStats"]
            assert stats["numMaterialized"] == len(expected_partitions), (key, stats)

    data = api(ASSET_QUERY, {"path": ["cleaned_readings"]})["assetOrError"]
    latest = data["assetMaterializations"][0]["metadataEntries"]
    by_label = {m["label"]: m["__typename"] for m in latest}
    assert by_label.get("flags_by_rule") == "JsonMetadataEntry", by_label


# =========================================================================================
# Step 3: the rendered UI, in headless chromium
#
# The UI is a JS app: index.html alone names no asset, so whatever the checks below find was
# rendered from GraphQL answers. The runs page names no asset for these runs (`dg.materialize`
# records no asset selection; the Target column shows the hidden __ephemeral_asset_job__), so
# it is checked for its run ids and status, and the catalog page for the asset names.
# =========================================================================================


def run_chromium(args: list[str], profile: Path, budget_ms: int) -> subprocess.CompletedProcess:
    """Headless chromium on loopback only, bounded in time; its processes are stopped after."""
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--no-first-run",
        "--no-default-browser-check",
        "--no-proxy-server",
        "--hide-scrollbars",
        "--mute-audio",
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={budget_ms}",
        "--window-size=1400,900",
        *args,
    ]
    proc = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=CHROMIUM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        stop_process_group(proc, timeout=5)
        _, stderr = proc.communicate()
        pytest.fail(f"chromium did not finish in {CHROMIUM_TIMEOUT_S} s: {stderr[-2000:]}")
    finally:
        stop_process_group(proc, timeout=5)
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def visible_text(html: str) -> str:
    html = re.sub(r"<(script|style)\b[^>]*>.*?</\1>", " ", html, flags=re.DOTALL | re.IGNORECASE)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def rendered_text(url: str, workdir: Path, expected: list[str], height: int = 900) -> str:
    """The visible text of `url` rendered by chromium, once it shows every `expected` string.

    `height`: of the window (the last --window-size wins); lists the UI virtualises render only
    the rows that fit."""
    text, stderr = "", ""
    for attempt, budget_ms in enumerate(VIRTUAL_TIME_BUDGETS_MS):
        result = run_chromium(
            [f"--window-size=1400,{height}", "--dump-dom", url],
            workdir / f"profile-dom-{attempt}",
            budget_ms,
        )
        text, stderr = visible_text(result.stdout), result.stderr
        if result.returncode == 0 and all(s in text for s in expected):
            return text
    missing = [s for s in expected if s not in text]
    pytest.fail(f"{url} never rendered {missing}; text: {text[:3000]!r}; stderr: {stderr[-1500:]}")


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Module scope, so a missing chromium skips before the webserver is started for it."""
    if CHROMIUM.exists():
        return CHROMIUM
    reason = f"{CHROMIUM} not found (Debian package `chromium`)"
    if os.environ.get("SMARTGRID_REQUIRE_CHROMIUM") == "1":
        pytest.fail(f"SMARTGRID_REQUIRE_CHROMIUM=1 but {reason}")
    pytest.skip(f"{reason}; set SMARTGRID_REQUIRE_CHROMIUM=1 to make this a failure")


def test_lineage_page_screenshot(chromium: Path, webserver: Webserver, tmp_path: Path) -> None:
    url = f"{webserver.base_url}/asset-groups"
    graph = defs.resolve_asset_graph()
    groups = sorted({graph.get(key).group_name or "default" for key in graph.get_all_asset_keys()})
    rendered_text(url, tmp_path, ["Global asset lineage", *groups])

    screenshot = tmp_path / "ui.png"
    budget_ms = VIRTUAL_TIME_BUDGETS_MS[0]
    shot = run_chromium([f"--screenshot={screenshot}", url], tmp_path / "profile-png", budget_ms)
    assert screenshot.exists(), f"no screenshot (rc {shot.returncode}): {shot.stderr[-2000:]}"
    png = screenshot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR", "not a PNG"
    assert struct.unpack(">II", png[16:24]) == (1400, 900)
    # A blank 1400x900 page compresses to a few kB; the rendered lineage page is ~70 kB.
    assert len(png) > 20_000, f"screenshot is only {len(png)} bytes: a blank page?"
    assert webserver.proc.poll() is None, log_tail(webserver.log)


def test_catalog_and_runs_pages_render(
    chromium: Path, webserver: Webserver, materialized: Materialized, tmp_path: Path
) -> None:
    names = [key.path[-1] for key in defs.resolve_asset_graph().get_all_asset_keys()]
    rendered_text(f"{webserver.base_url}/assets", tmp_path / "catalog", names, 200 * len(names))

    run_ids = [run_id[:8] for run_id in materialized.run_ids]  # the runs table's short ids
    text = rendered_text(f"{webserver.base_url}/runs", tmp_path / "runs", [*run_ids, "Success"])
    assert text.count("Success") >= len(run_ids), text[:3000]
    assert webserver.proc.poll() is None, log_tail(webserver.log)
