"""The Dagster UI over real runs: a synthetic utility is materialized in-process into a fresh
Dagster instance, then `dagster-webserver` serves the code location over that instance and the
GraphQL API (and, when chromium is installed, the rendered UI) must show every asset and asset
check of `defs`, the partitions, the runs and their metadata.

Everything expected is derived from `defs` and from the in-process results, so assets and checks
added later are covered without editing this module. Only loopback is used; telemetry is off.
Chromium: skipped when /usr/bin/chromium is missing, a failure if SMARTGRID_REQUIRE_CHROMIUM=1.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from smartgrid_assets.definitions import defs
from smartgrid_assets.demo import partition_range_tags
from smartgrid_assets.pipeline.land import land_tree
from smartgrid_assets.platform import Platform
from smartgrid_assets.settings import load_settings
from smartgrid_assets.synth import synthesize
from smartgrid_tests.conftest import TEST_ENV, TEST_TZ
from smartgrid_tests.webserver import (
    DAGSTER_YAML,
    HTTP_TIMEOUT_S,
    VIRTUAL_TIME_BUDGETS_MS,
    Webserver,
    graphql,
    log_tail,
    no_proxy_session,
    rendered_text,
    require_chromium,
    run_chromium,
    serve,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

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


@pytest.fixture(scope="module")
def webserver(
    materialized: Materialized, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Webserver]:
    with serve(
        materialized.dagster_home, materialized.env, tmp_path_factory.mktemp("webserver")
    ) as server:
        yield server


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


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Module scope, so a missing chromium skips before the webserver is started for it."""
    return require_chromium()


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
