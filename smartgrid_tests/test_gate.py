"""The quality gate per day, sized for real fleets: a fleet with gappy meter-days builds every
day downstream, a day whose export is missing is held in the same run, and released once the
late file lands and the day re-runs."""

from __future__ import annotations

import dataclasses
import io
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from smartgrid_assets import contract
from smartgrid_assets.demo import DAILY_ASSETS, materialize
from smartgrid_assets.pipeline.land import land_tree
from smartgrid_assets.platform import Platform
from smartgrid_assets.settings import load_settings
from smartgrid_assets.synth import synthesize
from smartgrid_tests.conftest import TEST_TZ

START = date(2026, 3, 2)
DAYS = 8
LAST = START + timedelta(days=DAYS - 1)
GAPPY_SHARE = 0.10
GAP_HOURS = 8

pytestmark = pytest.mark.slow


def _thin_out(path: Path, rng: np.random.Generator) -> int:
    """Drop GAP_HOURS of readings from about GAPPY_SHARE of the meter-days of an export, in
    place (before it lands): real fleets always have meters with gaps. Returns meter-days hit."""
    data = path.read_bytes()
    parquet = path.suffix == ".parquet"
    table = pq.read_table(io.BytesIO(data)) if parquet else pacsv.read_csv(io.BytesIO(data))
    ts = table["ts"].cast(pa.timestamp("us", tz="UTC"))
    meters = np.unique(table["meter_id"].to_numpy(zero_copy_only=False))
    hit = meters[rng.random(len(meters)) < GAPPY_SHARE]
    local_hour = pc.hour(pc.local_timestamp(ts.cast(pa.timestamp("us", tz=TEST_TZ))))
    gap = pc.and_(
        pc.is_in(table["meter_id"], pa.array(hit)),
        pc.and_(pc.greater_equal(local_hour, 6), pc.less(local_hour, 6 + GAP_HOURS)),
    )
    kept = table.filter(pc.invert(gap))
    sink = io.BytesIO()
    if parquet:
        pq.write_table(kept, sink)
    else:
        pacsv.write_csv(kept, sink)
    path.write_bytes(sink.getvalue())
    return len(hit)


def _late_days(utility: Path) -> set[date]:
    return {
        date.fromisoformat(p.stem.rsplit("_", 1)[-1].split(".")[0])
        for p in (utility / "late").rglob("*")
        if p.is_file()
    }


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("gate")
    utility = home / "utility"
    synthesize(utility, meters=60, days=DAYS, seed=7, tz=TEST_TZ, start=START)
    rng = np.random.default_rng(7)
    hit = sum(_thin_out(p, rng) for p in sorted((utility / "readings").rglob("*.*")))
    settings = dataclasses.replace(load_settings({"SMARTGRID_HOME": str(home)}), tz=TEST_TZ)
    platform = Platform(settings)
    land_tree(platform.landing, utility)  # the late exports have not arrived
    instance = dg.DagsterInstance.ephemeral()
    materialize(platform, ["meters"], instance)
    meta = materialize(platform, DAILY_ASSETS, instance, START, LAST)
    run_id = instance.get_runs(limit=1)[0].run_id
    return platform, utility, instance, meta, hit, run_id


def _holds(platform: Platform) -> set[date]:
    return set(
        platform.warehouse.read("SELECT local_day FROM quality_holds")["local_day"].to_pylist()
    )


def test_a_gappy_fleet_builds_every_day_but_the_one_without_its_export(gated) -> None:
    platform, utility, _, meta, hit, _ = gated
    late = _late_days(utility)
    assert late and hit >= DAYS * 60 * GAPPY_SHARE / 2, "the fixture has gaps and a late file"
    assert _holds(platform) == late, "only the days whose export is missing are held"
    built = [d for d in (START + timedelta(days=i) for i in range(DAYS)) if d not in late]
    assert set(platform.lake.partitions("meter_hourly")) >= set(built)
    assert not set(platform.lake.partitions("meter_hourly")) & late
    feeder_days = set(
        platform.warehouse.read("SELECT DISTINCT local_day FROM feeder_hourly")[
            "local_day"
        ].to_pylist()
    )
    assert feeder_days == set(built)
    targets = set(
        platform.warehouse.read("SELECT DISTINCT target_day FROM load_forecasts")[
            "target_day"
        ].to_pylist()
    )
    assert not {d + timedelta(days=1) for d in late} & targets, "no forecast from a held day"
    for asset in ("meter_hourly", "feeder_hourly", "anomaly_report", "load_forecasts"):
        assert meta[asset]["held_days"].value >= 1, asset


def test_gaps_below_the_threshold_warn_and_a_missing_export_blocks(gated) -> None:
    platform, utility, instance, _, _, run_id = gated
    late = _late_days(utility)
    evaluations = [
        e.event_specific_data
        for e in instance.get_records_for_run(
            run_id=run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ).records
        for e in [e.event_log_entry.dagster_event]
    ]
    row_count = {
        date.fromisoformat(e.partition): e
        for e in evaluations
        if e.check_name == "cleaned_row_count" or e.check_name == "cleaned_estimated_share"
        if not e.passed
    }
    warned = {d for d, e in row_count.items() if e.severity == dg.AssetCheckSeverity.WARN}
    blocked = {d for d, e in row_count.items() if e.severity == dg.AssetCheckSeverity.ERROR}
    assert warned, "gappy meters below the threshold are a warning"
    assert blocked == late
    for day in warned:
        share = row_count[day].metadata["affected_meter_share"].value
        assert 0 < share <= platform.settings.quality_max_affected_share


def test_the_held_day_is_released_when_its_late_file_lands(gated) -> None:
    platform, utility, instance, _, _, _ = gated
    late = sorted(_late_days(utility))
    land_tree(platform.landing, utility, late_arrival=LAST + timedelta(days=1))
    materialize(platform, DAILY_ASSETS, instance, late[0], late[-1])
    assert _holds(platform) == set()
    assert set(platform.lake.partitions("meter_hourly")) >= set(late)


# ---- real households ----------------------------------------------------------------------
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
HOUSEHOLD_DAYS = 60
HOUSEHOLD_START = date(2026, 3, 2)
#: (sample, days after its first day): ten households from the three real samples
HOUSEHOLDS = [(0, 0), (0, 200), (0, 400), (1, 0), (1, 120), (1, 240)] + [
    (2, d) for d in range(0, 1000, 250)
]


def _households(out: Path) -> int:
    """Real households' readings (hourly and half-hourly, with their own gaps and zero runs):
    slices of the samples moved by whole weeks to the same days. Returns the rows written."""
    import pandas as pd

    target = pd.Timestamp(HOUSEHOLD_START, tz="UTC")
    end = target + pd.Timedelta(days=HOUSEHOLD_DAYS)
    week = pd.Timedelta(weeks=1)
    parts, samples = [], {}
    for n, (sample, offset) in enumerate(HOUSEHOLDS):
        path = SHARED / f"uk-electricity-hdd-only-hourly-sample-{sample}.csv.gz"
        if not path.is_file():
            pytest.skip(
                f"../shared/data is absent: {path} (real public load data, not in the repo)"
            )
        if sample not in samples:
            frame = pd.read_csv(path)
            samples[sample] = frame.assign(
                ts=pd.to_datetime(frame["start"], utc=True, format="mixed")
            )
        frame = samples[sample]
        first = frame["ts"].min().normalize() + pd.Timedelta(days=offset)
        moved = frame["ts"] + ((target - first) // week) * week
        keep = (moved >= target) & (moved < end)
        parts.append(
            pd.DataFrame(
                {
                    "meter": f"H{n + 1:02d}",
                    "start": moved[keep].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "value": frame["value"][keep],
                }
            )
        )
    table = pd.concat(parts)
    table.to_csv(out, index=False)
    return len(table)


def test_real_households_build_every_day_that_passed(tmp_path: Path, monkeypatch) -> None:
    """Ten real households land with --materialize: the run succeeds, every day that passed its
    blocking checks is built downstream in it, and a held day says why."""
    from smartgrid_assets import cli
    from smartgrid_assets.days import days_between

    monkeypatch.setenv("SMARTGRID_HOME", str(tmp_path))
    monkeypatch.setenv("SMARTGRID_TZ", "UTC")
    for name in ("SMARTGRID_LANDING_URL", "SMARTGRID_LAKE_URL", "SMARTGRID_WAREHOUSE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    export = tmp_path / "households.csv"
    rows = _households(export)
    args = ["--meter-col", "meter", "--time-col", "start", "--value-col", "value"]
    code = cli.main(["land", str(export), *args, "--unit", "kWh", "--tz", "UTC", "--materialize"])
    assert code == 0, "the run goes on past the days it holds"
    platform = Platform(load_settings())
    days = days_between(HOUSEHOLD_START, HOUSEHOLD_START + timedelta(days=HOUSEHOLD_DAYS))
    holds = platform.warehouse.read("SELECT local_day, reason FROM quality_holds").to_pylist()
    held = {h["local_day"] for h in holds}
    built = [d for d in days if d not in held]
    assert len(built) >= 0.9 * len(days), f"real gaps hold few days: {sorted(held)}"
    assert all("of the meters in service affected" in h["reason"] for h in holds)
    feeder_days = platform.warehouse.read("SELECT DISTINCT local_day FROM feeder_hourly")
    assert set(feeder_days["local_day"].to_pylist()) == set(built)
    assert set(platform.lake.partitions("meter_hourly")) & set(days) == set(built)
    raw = platform.lake.read_days("raw_readings", days, contract.READINGS)
    rejected = platform.warehouse.read(
        "SELECT count(*) AS n FROM (SELECT DISTINCT source_file, row FROM rejected_readings)"
    )
    assert raw.num_rows + rejected["n"][0].as_py() == rows, "every export row accounted for"
