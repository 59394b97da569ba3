"""`smartgrid bench` on a small day: both paths of each benchmark run and agree on the output."""

from __future__ import annotations

import json
import os
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
    # every run ingests every file anew (an empty catalog each time)
    assert len(ingestion["ratios_of_runs"]) == ingestion["repeats"] == 3


def _arrow_pool(env: dict[str, str]) -> str:
    code = "import smartgrid_assets, pyarrow as pa; print(pa.default_memory_pool().backend_name)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return out.stdout.strip()


def test_arrow_allocates_from_jemalloc_unless_told_otherwise() -> None:
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    assert _arrow_pool(env) == "jemalloc"
    assert _arrow_pool({**env, "ARROW_DEFAULT_MEMORY_POOL": "system"}) == "system"


def test_detect_bench_on_a_small_fleet() -> None:
    from smartgrid_assets.bench import run_detect_bench

    figures = run_detect_bench(meters=200, days=20)
    assert {
        "meters",
        "days",
        "readings",
        "calibrate",
        "detect",
        "seconds",
        "peak_rss_mb",
        "events",
    } <= set(figures)
    assert (figures["meters"], figures["days"]) == (200, 20)
    assert figures["readings"] == 200 * 20 * 24
    assert figures["calibrate"]["readings"] == 200 * 20 * 24
    assert figures["detect"]["readings"] == 200 * 15 * 24, "the day and its 14-day lookback"
    for step in ("calibrate", "detect"):
        assert figures[step]["seconds"] > 0
        assert figures[step]["readings_per_second"] > 0
    assert figures["peak_rss_mb"] > 0
    assert isinstance(figures["events"], int) and figures["events"] >= 0
