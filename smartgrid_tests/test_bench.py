"""`smartgrid bench` on a small day: both paths of each benchmark run and agree on the output."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bench_reports_ratios_against_in_run_baselines() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "smartgrid_assets.cli",
            "bench",
            "--only",
            "cleaning",
            "ingestion",
            "--meters",
            "300",
            "--files",
            "3",
            "--rows",
            "960",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    report = json.loads(out)
    assert set(report) == {"cleaning", "ingestion"}
    cleaning = report["cleaning"]
    hand, assets = cleaning["paths"]
    assert hand["rows_out"] == assets["rows_out"] == 300 * 24, "same hourly rows both ways"
    assert cleaning["ratio_assets_to_hand_sql"] > 0
    ingestion = report["ingestion"]
    assert ingestion["rows_ingested"] == ingestion["rows"] == 3 * 960
    assert ingestion["ratio_ingest_to_local_read"] > 0
