"""A failed asset check, end to end in the Dagster UI.

A synthetic utility whose export for one region and day has not arrived is materialized
in-process into a fresh Dagster instance for that day, as the schedules run it: raw and cleaned
readings, then the data quality job (the freshness check, the data quality report);
`dagster-webserver` then serves it on loopback. The failed check is found through GraphQL, as
any client would find it, and headless chromium must render its name and result on the asset's
checks page (and save a screenshot there).
Chromium: skipped when /usr/bin/chromium is missing, a failure if SMARTGRID_REQUIRE_CHROMIUM=1.
"""

from __future__ import annotations

import csv
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import dagster as dg
import pytest

from smartgrid_assets.definitions import defs
from smartgrid_assets.defs.quality_report import data_quality_job
from smartgrid_assets.pipeline.land import land_tree
from smartgrid_assets.platform import Platform
from smartgrid_assets.settings import load_settings
from smartgrid_assets.synth import synthesize
from smartgrid_tests.conftest import TEST_ENV
from smartgrid_tests.webserver import (
    DAGSTER_YAML,
    Webserver,
    graphql,
    no_proxy_session,
    rendered_text,
    require_chromium,
    screenshot,
    serve,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SYNTH_START = date(2026, 3, 26)
FRESHNESS = ("raw_readings", "readings_arrived")  # the check a late export fails
READINGS = ["raw_readings", "cleaned_readings"]


@dataclass(frozen=True)
class FailedRun:
    dagster_home: Path
    env: dict[str, str]
    late_day: date
    run_id: str


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory: pytest.TempPathFactory) -> FailedRun:
    require_chromium()  # skips (or fails) before the pipeline runs when there is no browser
    dagster_home = tmp_path_factory.mktemp("dagster_home")
    (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
    env = {**TEST_ENV, "SMARTGRID_HOME": str(tmp_path_factory.mktemp("smartgrid_home"))}
    platform = Platform(load_settings(env))

    utility = tmp_path_factory.mktemp("utility")
    synthesize(
        utility, meters=20, days=3, interval_minutes=15, seed=5, tz=platform.tz, start=SYNTH_START
    )
    with (utility / "labels.csv").open() as f:
        (late,) = [row for row in csv.DictReader(f) if row["type"] == "late_file"]
    late_day = date.fromisoformat(re.search(r"\d{4}-\d{2}-\d{2}", late["asset_id"]).group())
    assert land_tree(platform.landing, utility), "nothing landed"  # late/ stays behind

    assets = [*(defs.assets or []), *(defs.asset_checks or [])]
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = [
            dg.materialize(
                assets,
                selection=selection,
                instance=instance,
                resources={"platform": platform},
                partition_key=partition,
                raise_on_error=False,  # a failed blocking check fails a run after its assets
            )
            for selection, partition in (
                (["meters"], None),
                (READINGS, late_day.isoformat()),
                (data_quality_job.selection, late_day.isoformat()),
            )
        ]
    made = {e.asset_key.to_user_string() for e in runs[1].get_asset_materialization_events()}
    assert runs[0].success and made == set(READINGS)
    result = runs[2]
    assert result.success, "a failed freshness check (a warning) fails no run"
    return FailedRun(dagster_home, env, late_day, result.run_id)


@pytest.fixture(scope="module")
def webserver(
    failed_run: FailedRun, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Webserver]:
    with serve(
        failed_run.dagster_home, failed_run.env, tmp_path_factory.mktemp("webserver")
    ) as server:
        yield server


@pytest.fixture(scope="module")
def api(webserver: Webserver) -> Callable[..., dict[str, Any]]:
    session = no_proxy_session()
    return lambda text, variables=None: graphql(session, webserver.base_url, text, variables)


CHECKS_QUERY = """
query {
  assetNodes {
    assetKey { path }
    assetChecksOrError { ... on AssetChecks { checks { name } } }
  }
}
"""

EXECUTIONS_QUERY = """
query Executions($assetKey: AssetKeyInput!, $checkName: String!) {
  assetCheckExecutions(assetKey: $assetKey, checkName: $checkName, limit: 5) {
    runId
    status
    evaluation { severity description metadataEntries { label } }
  }
}
"""


@pytest.fixture(scope="module")
def failed_checks(api: Callable[..., dict[str, Any]]) -> dict[tuple[str, str], dict]:
    """(asset key, check name) -> latest execution, for every check whose latest one failed."""
    failed = {}
    for node in api(CHECKS_QUERY)["assetNodes"]:
        path = node["assetKey"]["path"]
        for check in node["assetChecksOrError"].get("checks", []):
            variables = {"assetKey": {"path": path}, "checkName": check["name"]}
            executions = api(EXECUTIONS_QUERY, variables)["assetCheckExecutions"]
            if executions and executions[0]["status"] == "FAILED":
                failed["/".join(path), check["name"]] = executions[0]
    return failed


def test_the_failed_check_is_found_through_graphql(
    failed_checks: dict[tuple[str, str], dict], failed_run: FailedRun
) -> None:
    assert FRESHNESS in failed_checks, f"failed checks: {sorted(failed_checks)}"
    execution = failed_checks[FRESHNESS]
    assert execution["runId"] == failed_run.run_id
    evaluation = execution["evaluation"]
    assert evaluation["severity"] == "WARN"
    assert failed_run.late_day.isoformat() in evaluation["description"]
    labels = {m["label"] for m in evaluation["metadataEntries"]}
    assert {"failed_days", "missing", "feeders_without_readings"} <= labels


def test_the_checks_page_renders_the_failed_check(
    failed_checks: dict[tuple[str, str], dict],
    failed_run: FailedRun,
    webserver: Webserver,
    tmp_path: Path,
) -> None:
    asset, name = FRESHNESS
    assert (asset, name) in failed_checks
    url = f"{webserver.base_url}/assets/{quote(asset)}?" + urlencode(
        {"view": "checks", "checkDetail": name}
    )
    # The check's name, its latest result and that result's description (naming the late day)
    # are on the page only once the app has rendered the check from GraphQL.
    rendered_text(url, tmp_path, [name, "Failed", f"late: {failed_run.late_day.isoformat()}"])

    png = screenshot(url, tmp_path / "checks.png", tmp_path)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (1400, 900)
    assert len(png) > 20_000, f"screenshot is only {len(png)} bytes: a blank page?"
