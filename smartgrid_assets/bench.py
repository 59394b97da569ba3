"""`smartgrid bench`: one local day of a large utility, raw → cleaned → hourly as the assets do,
against a hand-written DuckDB SQL doing the same de-duplication and hourly aggregation.

Both paths run in the same invocation, each in a fresh process (so peak memory is its own), on
the same raw partition; the figures are ratios against that in-run baseline.
"""

from __future__ import annotations

import logging
import multiprocessing
import resource
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from smartgrid_assets import contract
from smartgrid_assets.days import day_bounds_utc
from smartgrid_assets.ingest.files import constant
from smartgrid_assets.pipeline.readings import RAW_ORDER
from smartgrid_assets.settings import load_settings

if TYPE_CHECKING:
    from smartgrid_assets.platform import Platform

BENCH_DAY = date(2026, 3, 17)
BENCH_TZ = "UTC"


@dataclass(frozen=True)
class PathResult:
    name: str
    seconds: float
    readings: int
    rows_out: int
    peak_rss_mb: float

    @property
    def readings_per_second(self) -> float:
        return self.readings / self.seconds


def make_raw_day(meters: int, seed: int = 0) -> tuple[pa.Table, pa.Table]:
    """A registry and one local day of 15-min readings: 1 % of slots missing, 0.5 % re-delivered
    in a later file (the duplicates VEE and the hand SQL must both resolve), in the order the
    raw_readings asset writes them."""
    rng = np.random.default_rng(seed)
    start, _ = day_bounds_utc(BENCH_DAY, BENCH_TZ)
    slots = 96
    ids = np.char.add("M", np.char.zfill(np.arange(meters).astype(str), 7)).astype(object)
    meter_idx = np.repeat(np.arange(meters), slots)
    slot = np.tile(np.arange(slots), meters)
    hour = slot / 4.0
    shape = 0.15 + 0.1 * np.sin((hour - 7) / 24 * 2 * np.pi) ** 2
    kwh = np.round(
        shape * rng.lognormal(0, 0.4, meters)[meter_idx] * rng.gamma(8, 1 / 8, slot.size), 4
    )
    keep = rng.random(slot.size) >= 0.01
    dup = np.flatnonzero(keep & (rng.random(slot.size) < 0.005))
    rows = np.concatenate([np.flatnonzero(keep), dup])
    start_us = int(start.timestamp() * 1_000_000)
    ts = start_us + slot[rows].astype(np.int64) * 15 * 60 * 1_000_000
    late = np.zeros(rows.size, dtype=bool)
    late[-dup.size :] = True
    values = kwh[rows] * np.where(late, 1.02, 1.0)
    n = rows.size
    raw = pa.table(
        {
            "meter_id": pa.array(ids[meter_idx[rows]], pa.string()),
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "interval_minutes": constant(15, pa.int32(), n),
            "channel": constant("delivered", pa.string(), n),
            "kwh": pa.array(values),
            "source_file": pa.array(np.where(late, "readings/late.csv", "readings/day.csv")),
            "source_row": pa.array(np.arange(1, n + 1, dtype=np.int64)),
            "landed_at": pa.array(
                np.where(late, start_us + 30 * 3_600_000_000, start_us + 25 * 3_600_000_000),
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )
    registry = _residential_registry(
        pa.array(ids, pa.string()),
        transformer_id=pa.array(np.char.add("TX", (np.arange(meters) // 8).astype(str))),
        feeder_id=constant("FDR01", pa.string(), meters),
        substation_id=constant("SUB01", pa.string(), meters),
        region=constant("north", pa.string(), meters),
    )
    raw = contract.conform(raw.sort_by(RAW_ORDER), contract.READINGS)
    return raw, registry


def _residential_registry(ids: pa.Array, **topology: pa.Array) -> pa.Table:
    """METERS of residential meters without solar installed in 2025; `topology`: the
    transformer_id, feeder_id, substation_id and region columns."""
    meters = len(ids)
    registry = pa.table(
        {
            "meter_id": ids,
            "customer_class": constant("residential", pa.string(), meters),
            **topology,
            "has_solar": constant(False, pa.bool_(), meters),
            "multiplier": constant(1.0, pa.float64(), meters),
            "installed_at": constant(datetime(2025, 1, 1, tzinfo=UTC), contract.UTC_TS, meters),
            "removed_at": pa.nulls(meters, contract.UTC_TS),
            "lat": pa.nulls(meters, pa.float64()),
            "lon": pa.nulls(meters, pa.float64()),
        }
    )
    return contract.conform(registry, contract.METERS)


def _peak_rss_mb() -> float:
    """This process's peak resident memory. Linux's ru_maxrss survives exec, so a spawned
    worker would report its parent's peak: the kernel's high-water mark of this address space
    (VmHWM) is read instead where there is one."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _platform(home: Path) -> Platform:
    import dataclasses

    from smartgrid_assets.platform import Platform

    settings = load_settings({"SMARTGRID_HOME": str(home)})
    return Platform(dataclasses.replace(settings, tz=BENCH_TZ))


def _asset_path(home: str, readings: int) -> PathResult:
    from smartgrid_assets.pipeline.features import build_meter_hourly
    from smartgrid_assets.pipeline.readings import clean_readings

    platform = _platform(Path(home))
    started = time.perf_counter()
    clean_readings(platform, [BENCH_DAY], as_of=datetime.now(UTC))
    rows = build_meter_hourly(platform, [BENCH_DAY])
    elapsed = time.perf_counter() - started
    name = "assets: raw -> cleaned (VEE) -> meter_hourly"
    return PathResult(name, elapsed, readings, sum(rows.values()), _peak_rss_mb())


def _hand_sql_path(home: str, readings: int) -> PathResult:
    platform = _platform(Path(home))
    source = platform.lake.location(f"raw_readings/day={BENCH_DAY.isoformat()}/part-0.parquet")
    target = Path(home) / "hand_sql_hourly.parquet"
    started = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    con.execute(
        f"""
        COPY (
            SELECT meter_id, time_bucket(INTERVAL 1 HOUR, ts, '{BENCH_TZ}') AS ts,
                   sum(kwh) AS kwh, count(*) AS intervals
            FROM (
                SELECT * FROM read_parquet('{source}')
                QUALIFY row_number() OVER (
                    PARTITION BY meter_id, channel, ts ORDER BY landed_at DESC, source_file DESC
                ) = 1
            )
            GROUP BY ALL
        ) TO '{target}' (FORMAT parquet, COMPRESSION zstd)
        """
    )
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchone()[0]
    con.close()
    elapsed = time.perf_counter() - started
    name = "hand SQL: de-duplicate -> hourly"
    return PathResult(name, elapsed, readings, rows, _peak_rss_mb())


def _in_fresh_process(target, *args):
    """Run `target(*args)` in a new process, so its peak memory is its own; its errors surface
    here."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(target, *args).result()


def run_bench(meters: int = 60_000, seed: int = 0, repeats: int = 3) -> dict:
    """Prepare one raw partition and registry, then time both paths on it `repeats` times,
    alternately, each run in a fresh process. This machine's noise moves single runs by a
    quarter either way: the headline ratio is the median of the runs' ratios, and each path's
    figures are those of its median run."""
    with tempfile.TemporaryDirectory(prefix="smartgrid-bench-") as tmp:
        home = Path(tmp)
        platform = _platform(home)
        raw, registry = make_raw_day(meters, seed)
        platform.lake.write_partition("raw_readings", BENCH_DAY, raw)
        platform.warehouse.replace("meters", registry)
        del platform
        runs = [
            (
                _in_fresh_process(_hand_sql_path, str(home), raw.num_rows),
                _in_fresh_process(_asset_path, str(home), raw.num_rows),
            )
            for _ in range(repeats)
        ]
    ratios = [hand.seconds / assets.seconds for hand, assets in runs]
    hand = _median_run([h for h, _ in runs])
    assets = _median_run([a for _, a in runs])
    return {
        "meters": meters,
        "readings": raw.num_rows,
        "repeats": repeats,
        "paths": [
            asdict(hand) | {"readings_per_second": hand.readings_per_second},
            asdict(assets) | {"readings_per_second": assets.readings_per_second},
        ],
        "ratio_assets_to_hand_sql": float(np.median(ratios)),
        "ratios_of_runs": [round(r, 3) for r in ratios],
        "target_ratio": 0.5,
    }


def _median_run(results: list[PathResult]) -> PathResult:
    return sorted(results, key=lambda r: r.seconds)[len(results) // 2]


def _export_csv(path: Path, index: int, rows: int, rng: np.random.Generator) -> None:
    """One head-end export: `rows` readings of 96 intervals per meter (meters unique per file)."""
    start, _ = day_bounds_utc(BENCH_DAY, BENCH_TZ)
    meters = rows // 96
    meter = np.repeat(np.arange(meters), 96)
    slot = np.tile(np.arange(96), meters)
    ts = pa.array(
        int(start.timestamp() * 1_000_000) + slot.astype(np.int64) * 900_000_000,
        pa.timestamp("us", tz="UTC"),
    )
    table = pa.table(
        {
            "meter_id": pa.array(np.char.add(f"F{index:03d}-", meter.astype(str)).astype(object)),
            "ts": pc.strftime(ts, format="%Y-%m-%dT%H:%M:%S+00:00"),
            "interval_minutes": constant(15, pa.int32(), slot.size),
            "channel": constant("delivered", pa.string(), slot.size),
            "kwh": pa.array(np.round(rng.gamma(2.0, 0.1, slot.size), 4)),
        }
    )
    pacsv.write_csv(table, str(path), pacsv.WriteOptions(quoting_style="none"))


def run_ingest_bench(files: int = 100, rows: int = 50_000, seed: int = 0, repeats: int = 3) -> dict:
    """Ingest `files` CSV exports landed on an S3 server (moto, in this process, over HTTP on
    loopback) against DuckDB's `read_csv` of the same files from local disk, in the same run:
    `repeats` times alternately, each ingest into an empty catalog; the headline ratio is the
    median of the runs' ratios, as for the cleaning bench."""
    import socket

    import boto3
    from moto.server import ThreadedMotoServer

    from smartgrid_assets.platform import Platform

    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="smartgrid-ingest-bench-") as tmp:
        folder = Path(tmp) / "exports"
        folder.mkdir()
        paths = [folder / f"export_{i:03d}.csv" for i in range(files)]
        for i, path in enumerate(paths):
            _export_csv(path, i, rows, rng)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            env = {
                "SMARTGRID_LANDING_URL": "s3://bench-landing/landing",
                "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench",
                "AWS_REGION": "us-east-1",
            }
            settings = load_settings({**env, "SMARTGRID_HOME": tmp})
            boto3.client("s3", **settings.aws_client_kwargs()).create_bucket(Bucket="bench-landing")
            landing = Platform(settings).landing
            for path in paths:
                landing.put(f"readings/2026-03-18/{path.name}", path.read_bytes())
            runs = []
            for run in range(repeats):
                local = _read_csv_locally(paths)
                home = Path(tmp) / f"catalog-{run}"  # an empty catalog: every file parsed anew
                catalog = Platform(load_settings({**env, "SMARTGRID_HOME": str(home)})).catalog
                started = time.perf_counter()
                refresh = catalog.refresh()
                ingest = (
                    time.perf_counter() - started,
                    int(pc.sum(refresh.added["rows"]).as_py() or 0),
                )
                runs.append((local, ingest))
        finally:
            server.stop()
    ratios = [(n / s) / (local_n / local_s) for (local_s, local_n), (s, n) in runs]
    (local_s, local_rows), (ingest_s, ingested) = runs[int(np.argsort(ratios)[len(ratios) // 2])]
    return {
        "files": files,
        "rows": local_rows,
        "repeats": repeats,
        "duckdb_read_csv_local": {"seconds": local_s, "rows_per_second": local_rows / local_s},
        "ingest_from_s3": {"seconds": ingest_s, "rows_per_second": ingested / ingest_s},
        "rows_ingested": ingested,
        "ratio_ingest_to_local_read": float(np.median(ratios)),
        "ratios_of_runs": [round(r, 3) for r in ratios],
        "target_ratio": 0.5,
    }


def _read_csv_locally(paths: list[Path]) -> tuple[float, int]:
    """(seconds, rows) of DuckDB reading every file from local disk into Arrow."""
    started = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    table = con.sql("SELECT * FROM read_csv(?, header = true)", params=[[str(p) for p in paths]])
    rows = table.to_arrow_table().num_rows
    con.close()
    return time.perf_counter() - started, rows


# ---- data quality checks: their cost on one local day -------------------------------------
EXPORT_FILES = 12
EXPORT_COLUMNS = ["meter_id", "ts", "interval_minutes", "channel", "kwh"]
ASSET_STEPS = ("raw_readings", "cleaned_readings", "meter_hourly")


def _land_exports(platform: Platform, raw: pa.Table) -> None:
    """The raw day as a head-end delivers it: `EXPORT_FILES` Parquet exports of meter ranges,
    then the re-delivered readings in a later file."""
    late = pc.equal(raw["source_file"], "readings/late.csv")
    day = raw.filter(pc.invert(late)).select(EXPORT_COLUMNS)
    size = -(-day.num_rows // EXPORT_FILES)
    exports = [day.slice(i * size, size) for i in range(EXPORT_FILES)]
    exports.append(raw.filter(late).select(EXPORT_COLUMNS))
    for i, table in enumerate(exports):
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        arrived = "2026-03-18" if i < EXPORT_FILES else "2026-03-19"
        platform.landing.put(f"readings/{arrived}/export_{i:02d}.parquet", sink.getvalue())


def _materialize_partition(template: str, home: str, with_checks: bool) -> dict:
    """What the raw_readings, cleaned_readings and meter_hourly steps compute for the bench day
    from its landed exports (parsed from scratch: a copy of `template` with an empty lake),
    with or without the quality suites their steps run (an @asset's checks run in its own
    step: `run_checks` on the day, timed where the step calls them). GX is imported before the
    clock starts and timed apart: a run worker pays that once per run, not per partition."""
    from smartgrid_assets.pipeline.features import build_meter_hourly
    from smartgrid_assets.pipeline.readings import clean_readings, ingest_raw_readings
    from smartgrid_assets.quality import run_checks

    shutil.copytree(template, home)
    started = time.perf_counter()
    import great_expectations  # noqa: F401

    gx_import_s = time.perf_counter() - started
    platform = _platform(Path(home))
    seconds: dict[str, float] = {}
    results = []
    for step, materialize in (
        ("raw_readings", lambda: ingest_raw_readings(platform, [BENCH_DAY])),
        ("cleaned_readings", lambda: clean_readings(platform, [BENCH_DAY], datetime.now(UTC))),
        ("meter_hourly", lambda: build_meter_hourly(platform, [BENCH_DAY])),
    ):
        started = time.perf_counter()
        materialize()
        seconds[step] = time.perf_counter() - started
        started = time.perf_counter()
        if with_checks:
            results += run_checks(platform, step, [BENCH_DAY])
        seconds[f"{step}_checks"] = time.perf_counter() - started
    return {
        "seconds": seconds,
        "checks": len(results),
        "checks_passed": sum(r.passed for r in results),
        "gx_import_s": gx_import_s,
        "peak_rss_mb": _peak_rss_mb(),
    }


def run_quality_bench(meters: int = 60_000, seed: int = 0, repeats: int = 2) -> dict:
    """One local day of `meters` x 96 quarter hours landed as exports: the partition's
    readings-level assets (raw_readings, cleaned_readings, meter_hourly) materialized with and
    without their quality checks, alternately, each run in a fresh process from the same
    landed files; the best of `repeats` of each. Prints and returns the figures, for the whole
    partition and per checked asset; the target is checks adding at most 25 %."""
    with tempfile.TemporaryDirectory(prefix="smartgrid-quality-bench-") as tmp:
        template = Path(tmp) / "template"
        platform = _platform(template)
        raw, registry = make_raw_day(meters, seed)
        _land_exports(platform, raw)
        platform.warehouse.replace("meters", registry)
        del platform
        runs: dict[bool, list[dict]] = {False: [], True: []}
        for run in range(repeats):
            for with_checks in (False, True):
                home = str(Path(tmp) / f"run-{run}-{with_checks}")
                runs[with_checks].append(
                    _in_fresh_process(_materialize_partition, str(template), home, with_checks)
                )

    def materialize(run: dict) -> float:
        return sum(run["seconds"][step] for step in ASSET_STEPS)

    def total(run: dict) -> float:
        return sum(run["seconds"].values())

    without = min(runs[False], key=total)
    with_ = min(runs[True], key=total)
    base, steps = materialize(without), without["seconds"]
    checks = {step: with_["seconds"][f"{step}_checks"] for step in ASSET_STEPS}
    cleaned_base = steps["cleaned_readings"] + steps["meter_hourly"]
    figures = {
        "meters": meters,
        "readings": raw.num_rows,
        "without_checks_s": round(base, 2),
        "steps_without_checks_s": {step: round(steps[step], 2) for step in ASSET_STEPS},
        "checks_s": {step: round(checks[step], 2) for step in ASSET_STEPS},
        "ratio_partition": round((base + sum(checks.values())) / base, 3),
        "ratio_raw_readings": round(
            (steps["raw_readings"] + checks["raw_readings"]) / steps["raw_readings"], 3
        ),
        "ratio_cleaned_readings_and_meter_hourly": round(
            (cleaned_base + checks["cleaned_readings"]) / cleaned_base, 3
        ),
        "target_ratio": 1.25,
        "checks": with_["checks"],
        "checks_passed": with_["checks_passed"],
        "gx_import_s_once_per_process": round(with_["gx_import_s"], 2),
        "all_runs_s": {
            "without": [round(total(r), 2) for r in runs[False]],
            "with": [round(total(r), 2) for r in runs[True]],
        },
    }
    print(
        f"{meters:,} meters, {raw.num_rows:,} readings landed in {EXPORT_FILES + 1} exports: "
        f"raw_readings + cleaned_readings + meter_hourly {figures['without_checks_s']} s "
        f"without checks, their checks add x{figures['ratio_partition']} (target x1.25); "
        f"per asset: raw_readings x{figures['ratio_raw_readings']}, cleaned_readings (with "
        f"meter_hourly) x{figures['ratio_cleaned_readings_and_meter_hourly']}; "
        f"{figures['checks_passed']}/{figures['checks']} checks passed; GX import "
        f"{figures['gx_import_s_once_per_process']} s once per process"
    )
    return figures


def run_forecast_bench(
    series: int = 200, days: int = 60, prophet_sample: int = 20, seed: int = 0
) -> dict:
    """Training + rolling-origin backtesting of the global model on ``series`` synthetic feeders
    of ``days`` days at 15 minutes (target: under 3 minutes on 2 cores), and Prophet on
    ``prophet_sample`` of them, extrapolated to all (forecasting.speed)."""
    from smartgrid_assets.forecasting.speed import forecast_bench

    figures = forecast_bench(series=series, days=days, prophet_sample=prophet_sample, seed=seed)
    gbm, prophet = figures["gbm"], figures["prophet"] or {}
    print(
        f"forecasting: {series} feeders x {days} days x 15 min, {figures['issues']} daily issues: "
        f"gbm train + backtest {gbm['seconds']} s ({gbm['fits']} weekly fits; target < "
        f"{gbm['target_seconds']:.0f} s), rMAE {gbm['rmae']}, P10-P90 coverage "
        f"{gbm['coverage_p10_p90']}"
    )
    if "seconds_sample" in prophet:
        print(
            f"  prophet on {prophet['sample_series']} feeders {prophet['seconds_sample']} s -> "
            f"{prophet['seconds_extrapolated']} s for {series} (rMAE {prophet['rmae_sample']}, "
            f"P10-P90 coverage {prophet['coverage_p10_p90_sample']}; gbm on the same feeders: "
            f"rMAE {prophet['gbm_rmae_same_sample']})"
        )
    elif prophet:
        print(f"  prophet skipped: {prophet['skipped']}")
    return figures


def run_peer_bench(data_dir: Path) -> dict:
    """The champion against the reference peer on every real series of the shared data folder
    ``data_dir``, as ``smartgrid backtest`` runs it."""
    from smartgrid_assets.forecasting.speed import peer_bench

    figures = peer_bench(data_dir)
    if not figures["series"]:
        print(f"forecasts against the peer: skipped, no shared data in {figures['data_dir']}")
        return figures
    print(
        "forecasts against the reference peer (MAE over the peer's on the last 28 days), "
        f"{figures['data_dir']}:"
    )
    for row in figures["series"]:
        others = ", ".join(f"{m} {v:.3f}" for m, v in row["over_peer"].items() if v is not None)
        print(
            f"  {row['series']:<28} champion {row['champion']:<18} x{row['champion_over_peer']:.3f}"
            f"  P10-P90 {row['coverage_p10_p90']:.1%}  ({others}; {row['seconds']} s)"
        )
    print(f"  mean over the series: x{figures['mean_champion_over_peer']}")
    for name in figures["skipped"]:
        print(f"  skipped: {name} is absent")
    return figures


# ---- anomaly detection: calibrate over a period, then one daily partition ------------------
DETECT_START = datetime(2026, 3, 2, tzinfo=UTC)
DETECT_LOOKBACK_DAYS = 14
DETECT_REGIONS = ("north", "south", "east", "west")
_US_PER_HOUR = 3_600_000_000


def make_cleaned_period(meters: int, days: int, seed: int = 0) -> tuple[pa.Table, pa.Table]:
    """A registry and `days` UTC days from `DETECT_START` of hourly delivered CLEANED_READINGS
    (quality A, as landed, no VEE rule), sorted by meter_id, channel, ts as VEE writes them: a
    daily shape (evening peak) scaled per meter, with +-10 % noise so no two neighbours are
    equal. Built column by column, without a Python loop per meter or reading."""
    from smartgrid_assets.vee.config import VEE_VERSION

    rng = np.random.default_rng(seed)
    hours = days * 24
    n = meters * hours
    ids = pa.array(np.char.add("M", np.char.zfill(np.arange(meters).astype(str), 7)), pa.string())
    tod = np.arange(24)
    shape = 0.35 + 0.15 * np.sin(2 * np.pi * (tod - 6) / 24) + 0.6 * np.exp(-((tod - 19) ** 2) / 4)
    level = rng.lognormal(0, 0.4, meters)
    kwh = np.repeat(level, hours)
    kwh *= np.tile(np.tile(shape, days), meters)
    kwh *= rng.uniform(0.9, 1.1, n)
    kwh = pa.array(np.round(kwh, 6))
    start_us = int(DETECT_START.timestamp() * 1_000_000)
    ts = pa.array(start_us + np.arange(hours, dtype=np.int64) * _US_PER_HOUR, contract.UTC_TS)
    ts = pa.concat_arrays([ts] * meters) if meters else ts.slice(0, 0)
    no_rules = pa.ListArray.from_arrays(
        pa.array(np.zeros(n + 1, dtype=np.int32)), pa.array([], pa.string())
    )
    cleaned = pa.table(
        {
            "meter_id": ids.take(pa.array(np.repeat(np.arange(meters, dtype=np.int32), hours))),
            "ts": ts,
            "interval_minutes": constant(60, pa.int32(), n),
            "channel": constant("delivered", pa.string(), n),
            "kwh": kwh,
            "source_file": constant("readings/bench.csv", pa.string(), n),
            "quality": constant("A", pa.string(), n),
            "vee_rules": no_rules,
            "vee_version": constant(VEE_VERSION, pa.string(), n),
            "kwh_raw": kwh,
            "ts_raw": ts,
        },
        schema=contract.CLEANED_READINGS,
    )
    regions = pa.array(DETECT_REGIONS, pa.string())
    registry = _residential_registry(
        ids,
        transformer_id=pa.nulls(meters, pa.string()),
        feeder_id=pa.nulls(meters, pa.string()),  # no feeder heads: no feeder_imbalance
        substation_id=pa.nulls(meters, pa.string()),
        region=regions.take(pa.array(np.arange(meters) % len(DETECT_REGIONS))),
    )
    return cleaned, registry


def _hourly_of(cleaned: pa.Table) -> pa.Table:
    """METER_HOURLY of hourly delivered readings of UTC hours: one row per reading."""
    n = cleaned.num_rows
    return pa.table(
        {
            "meter_id": cleaned["meter_id"],
            "ts": cleaned["ts"],
            "kwh_delivered": cleaned["kwh"],
            "kwh_received": constant(0.0, pa.float64(), n),
            "kwh_net": cleaned["kwh"],
            "intervals": constant(1, pa.int32(), n),
            "intervals_estimated": constant(0, pa.int32(), n),
            "intervals_suspect": constant(0, pa.int32(), n),
        },
        schema=contract.METER_HOURLY,
    )


def _reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux: clear_refs 5); False if not."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def _detect_path(meters: int, days: int, seed: int) -> dict:
    """Build the period, then time `calibrate` over all of it and `detect` of its last day with
    a 14-day lookback (what the pipeline's daily partition reads), with the calibration."""
    from datetime import timedelta

    from smartgrid_assets import anomalies

    started = time.perf_counter()
    cleaned, registry = make_cleaned_period(meters, days, seed)
    build_s = time.perf_counter() - started
    built_peak = _peak_rss_mb()
    period_end = DETECT_START + timedelta(days=days)
    day_start = period_end - timedelta(days=1)
    since = max(DETECT_START, day_start - timedelta(days=DETECT_LOOKBACK_DAYS))
    resets = _reset_peak_rss()

    started = time.perf_counter()
    calibration = anomalies.calibrate(
        cleaned, registry, start=DETECT_START, end=period_end, tz=BENCH_TZ
    )
    calibrate_s = time.perf_counter() - started
    calibrate_peak = _peak_rss_mb()
    period_readings = cleaned.num_rows

    window = cleaned.filter(pc.greater_equal(cleaned["ts"], pa.scalar(since, contract.UTC_TS)))
    del cleaned
    hourly = _hourly_of(window)
    _reset_peak_rss()
    started = time.perf_counter()
    events = anomalies.detect(
        window,
        hourly,
        registry,
        contract.TRANSFORMERS.empty_table(),
        window_start=day_start,
        window_end=period_end,
        tz=BENCH_TZ,
        calibration_table=calibration,
    )
    detect_s = time.perf_counter() - started
    types = pc.value_counts(events["type"]).to_pylist() if events.num_rows else []
    return {
        "readings": period_readings,
        "build_s": build_s,
        "build_peak_rss_mb": built_peak,
        "peak_rss_resets": resets,
        "calibrate": {
            "seconds": calibrate_s,
            "readings": period_readings,
            "calibration_rows": calibration.num_rows,
            "peak_rss_mb": calibrate_peak,
        },
        "detect": {
            "seconds": detect_s,
            "readings": window.num_rows,
            "peak_rss_mb": _peak_rss_mb(),
        },
        "events": events.num_rows,
        "events_by_type": {t["values"]: t["counts"] for t in types},
    }


def run_detect_bench(meters: int = 60_000, days: int = 30, seed: int = 0) -> dict:
    """Anomaly detection on `meters` x `days` days of hourly cleaned readings, in a fresh
    process: (1) `anomalies.calibrate` over the whole period, (2) `anomalies.detect` of the
    last day (one daily partition, 14-day lookback, as the pipeline runs it) with that
    calibration. The readings are built in the measured process (so its peak memory holds them,
    as a run worker's would); with the kernel's peak reset after each step where it can be,
    each step's `peak_rss_mb` is its own. Target: both steps under 2 minutes on 2 cores."""
    run = _in_fresh_process(_detect_path, meters, days, seed)
    steps = {}
    for step in ("calibrate", "detect"):
        figures = run[step]
        steps[step] = figures | {"readings_per_second": figures["readings"] / figures["seconds"]}
    return {
        "meters": meters,
        "days": days,
        "readings": run["readings"],
        "calibrate": steps["calibrate"],
        "detect": steps["detect"],
        "seconds": steps["calibrate"]["seconds"] + steps["detect"]["seconds"],
        "peak_rss_mb": max(
            run["build_peak_rss_mb"],
            steps["calibrate"]["peak_rss_mb"],
            steps["detect"]["peak_rss_mb"],
        ),
        "peak_rss_reset_per_step": run["peak_rss_resets"],
        "build_s": run["build_s"],
        "events": run["events"],
        "events_by_type": run["events_by_type"],
        "target_seconds": 120.0,
    }
