"""Runs launched outside the test process (CLI, daemon, webserver) use the code location's
executor: step processes forked from a server that has imported the code location and GX once.

One partition of raw_readings and cleaned_readings (with their GX checks) is materialized by
`dagster asset materialize` in a subprocess: every step succeeds, each in a process of its own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

from smartgrid_assets.definitions import defs
from smartgrid_assets.pipeline.land import land_tree
from smartgrid_assets.platform import Platform
from smartgrid_assets.settings import load_settings
from smartgrid_assets.synth import synthesize

DAY = "2026-03-02"


def _dagster(env: dict[str, str], *args: str) -> str:
    dagster = Path(sys.executable).with_name("dagster")
    done = subprocess.run(
        [str(dagster), "asset", "materialize", "-m", "smartgrid_assets.definitions", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def test_a_cli_run_forks_its_steps_from_a_preloaded_server(tmp_path: Path) -> None:
    home, dagster_home = tmp_path / "home", tmp_path / "dagster"
    dagster_home.mkdir()
    env = os.environ | {
        "SMARTGRID_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "SMARTGRID_TZ": "UTC",
    }
    settings = load_settings(env)
    exports = tmp_path / "exports"
    synthesize(exports, meters=12, days=3, seed=3, tz="UTC", start=date(2026, 3, 1))
    land_tree(Platform(settings).landing, exports)

    _dagster(env, "--select", "meters")
    log = _dagster(env, "--select", "raw_readings,cleaned_readings", "--partition", DAY)

    assert "RUN_SUCCESS" in log
    step_pids = {step: pid for pid, step in re.findall(r" - (\d+) - (\w+) - STEP_SUCCESS - ", log)}
    assert {"raw_readings", "cleaned_readings"} <= set(step_pids)
    assert len(set(step_pids.values())) == len(step_pids), "one process per step"
    checks = re.findall(r"Asset check '(\w+)' on 'cleaned_readings' passed", log)
    assert "cleaned_unique" in checks


def test_the_code_location_preloads_itself_and_gx_in_a_forkserver() -> None:
    assert defs.executor is not None
    config = defs.executor.config_schema.resolve_config({}).value["config"]
    preload = config["start_method"]["forkserver"]["preload_modules"]
    assert preload == ["smartgrid_assets.definitions", "great_expectations"]
