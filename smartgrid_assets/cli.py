"""The `smartgrid` command: what the Dagster UI does not do."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.csv as pacsv

from smartgrid_assets.settings import Settings, SettingsError, load_settings
from smartgrid_assets.warehouse import WarehouseError, warehouse

if TYPE_CHECKING:
    from smartgrid_assets.anomalies import DetectorConfig
    from smartgrid_assets.ingest.byo import ExportSpec
    from smartgrid_assets.platform import Platform


class CliError(Exception):
    """Bad input: printed as one line, exit code 2."""


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text}")
    return value


def _cmd_synth(args: argparse.Namespace) -> int:
    from smartgrid_assets.synth import synthesize

    summary = synthesize(
        Path(args.out),
        meters=args.meters,
        days=args.days,
        interval_minutes=args.interval_minutes,
        seed=args.seed,
        tz=args.tz,
        start=args.start,
    )
    report = summary.to_dict()
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")
    return 0


def _print_table(table: pa.Table, fmt: str) -> None:
    if fmt == "csv":
        sink = pa.BufferOutputStream()
        pacsv.write_csv(table, sink)
        sys.stdout.write(sink.getvalue().to_pybytes().decode())
    elif fmt == "json":
        print(json.dumps(table.to_pylist(), indent=2, default=str))
    else:
        frame = table.to_pandas()
        print(frame.to_string(index=False) if len(frame.columns) else "(no columns)")
        print(f"({table.num_rows} row{'s' if table.num_rows != 1 else ''})")


def _cmd_sql(args: argparse.Namespace) -> int:
    """Every failure is one line, whatever raised it (a refusal, a typo, the lake or the
    database out of reach, a result the format cannot print): an analyst's tool."""
    try:
        result = warehouse(load_settings()).query_readonly(args.query)
        _print_table(result, args.format)
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        reason = lines[0] if lines else ""
        if not isinstance(exc, (SettingsError, WarehouseError)):
            reason = f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
        raise CliError(reason) from exc
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from smartgrid_assets.demo import run_demo

    run_demo(meters=args.meters, days=args.days, seed=args.seed)
    return 0


BENCHES = ("cleaning", "ingestion", "quality", "forecasting", "peer", "detection")


def _cmd_bench(args: argparse.Namespace) -> int:
    from smartgrid_assets import bench

    runs = {
        "cleaning": lambda: bench.run_bench(meters=args.meters, seed=args.seed),
        "ingestion": lambda: bench.run_ingest_bench(
            files=args.files, rows=args.rows, seed=args.seed
        ),
        "quality": lambda: bench.run_quality_bench(meters=args.meters, seed=args.seed),
        "forecasting": lambda: bench.run_forecast_bench(seed=args.seed),
        "peer": lambda: bench.run_peer_bench(Path(args.shared_data)),
        "detection": lambda: bench.run_detect_bench(meters=args.meters, seed=args.seed),
    }
    chosen = [name for name in BENCHES if name in (args.only or BENCHES)]
    if args.json:
        with contextlib.redirect_stdout(sys.stderr):  # their progress lines stay off the JSON
            report = {name: runs[name]() for name in chosen}
        print(json.dumps(report, indent=2))
        return 0
    for name in chosen:
        figures = runs[name]()
        if name == "cleaning":
            _print_cleaning(figures)
        elif name == "ingestion":
            _print_ingestion(figures)
        elif name == "detection":
            _print_detection(figures)
    return 0


def _print_detection(detection: dict) -> None:
    print(
        f"anomaly detection: {detection['meters']:,} meters x {detection['days']} days, "
        f"{detection['readings']:,} hourly readings"
    )
    for step in ("calibrate", "detect"):
        f = detection[step]
        print(
            f"  {step:<10} {f['seconds']:7.1f} s  {f['readings_per_second']:>12,.0f} readings/s  "
            f"peak {f['peak_rss_mb']:,.0f} MB"
        )
    print(
        f"  both steps {detection['seconds']:.1f} s (target under "
        f"{detection['target_seconds']} s here)"
    )


def _print_cleaning(cleaning: dict) -> None:
    print(
        f"one local day: {cleaning['meters']:,} meters, {cleaning['readings']:,} readings "
        f"(median of {cleaning['repeats']} runs of each path)"
    )
    for path in cleaning["paths"]:
        print(
            f"  {path['name']:<48} {path['seconds']:7.2f} s  "
            f"{path['readings_per_second']:>12,.0f} readings/s  peak {path['peak_rss_mb']:,.0f} MB"
        )
    print(
        f"  ratio assets / hand SQL: {cleaning['ratio_assets_to_hand_sql']:.2f}x "
        f"(target >= {cleaning['target_ratio']}x; runs {cleaning['ratios_of_runs']})"
    )


def _print_ingestion(ingestion: dict) -> None:
    print(
        f"ingestion: {ingestion['files']} files, {ingestion['rows']:,} rows "
        f"(the median of {ingestion['repeats']} runs of each path)"
    )
    for name, label in (
        ("duckdb_read_csv_local", "DuckDB read_csv from local disk"),
        ("ingest_from_s3", "ingest (fetch, parse, validate) from S3"),
    ):
        path = ingestion[name]
        print(f"  {label:<48} {path['seconds']:7.2f} s  {path['rows_per_second']:>12,.0f} rows/s")
    print(
        f"  ratio ingest / local read: {ingestion['ratio_ingest_to_local_read']:.2f}x "
        f"(target >= {ingestion['target_ratio']}x; runs {ingestion['ratios_of_runs']})"
    )


def _land_spec(args: argparse.Namespace) -> ExportSpec:
    from smartgrid_assets.ingest.byo import ExportSpec

    return ExportSpec(
        time_col=args.time_col,
        value_col=args.value_col,
        meter_col=args.meter_col,
        received_col=args.received_col,
        unit=args.unit,
        time_label=args.time_label,
        tz=args.tz,
        interval_minutes=args.interval_minutes,
        format=args.format,
        wide=args.wide,
        meter_id=args.meter_id,
        time_format=args.time_format,
        channel_col=args.channel_col,
        dst_fold=args.dst_fold,
        decimal=args.decimal,
        delimiter=args.delimiter,
    )


def _partition_window(settings: Settings, first: date, last: date) -> tuple[date, date, list[str]]:
    """The part of [first, last] that has daily partitions, and what was left out."""
    from smartgrid_assets.defs.common import daily_partitions

    last_key = daily_partitions.get_last_partition_key()
    newest = date.fromisoformat(last_key) if last_key else None
    lo, hi = max(first, settings.start_date), min(last, newest) if newest else None
    span = f"{first}..{last} ({settings.tz})"
    if hi is None or lo > hi:
        if last < settings.start_date:
            why = (
                f"the data's local days {span} are before the first daily partition "
                f"{settings.start_date} (SMARTGRID_START_DATE); set SMARTGRID_START_DATE to "
                f"{first} or earlier, or land without --materialize"
            )
        else:
            why = (
                f"the data's local days {span} have no daily partition yet (the newest is "
                f"{newest}); land without --materialize and materialize once the days are over"
            )
        raise CliError(f"nothing landed: cannot materialize: {why}")
    left_out = []
    if lo > first:
        left_out.append(
            f"{first}..{lo - timedelta(days=1)} is before the first partition "
            f"{settings.start_date} (SMARTGRID_START_DATE): not materialized"
        )
    if hi < last:
        left_out.append(f"{hi + timedelta(days=1)}..{last} has no partition yet: not materialized")
    return lo, hi, left_out


def _landed_days(platform: Platform, keys: list[str]) -> tuple[date, date] | None:
    """The local days the landed files' readings span as ingestion reads them: a row dated
    1970 or 2999 is a rejected row there and names no day to materialize."""
    import pyarrow.compute as pc

    from smartgrid_assets.ingest.files import local_day

    platform.catalog.refresh()
    index = platform.catalog.index()
    files = index.filter(
        pc.and_(pc.is_in(index["key"], pa.array(keys)), pc.equal(index["status"], "ok"))
    )
    bounds = pa.chunked_array(files["min_ts"].chunks + files["max_ts"].chunks)
    days = local_day(bounds, platform.tz).drop_null()
    if not len(days):
        return None
    span = pc.min_max(days)
    return span["min"].as_py(), span["max"].as_py()


def _run_assets(
    platform: Platform, selection: list[str], first: date | None, last: date | None
) -> dict:
    """One in-process run; its id, partition range and outcome."""
    import dagster as dg

    from smartgrid_assets.definitions import defs
    from smartgrid_assets.demo import partition_range_tags

    settings = platform.settings
    instance = dg.DagsterInstance.get() if settings.dagster_home else dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        list(defs.assets or []),
        selection=selection,
        instance=instance,
        resources={"platform": platform},
        tags=partition_range_tags(first, last) if first and last else None,
        raise_on_error=False,
    )
    error = None
    if not result.success:
        failures = result.get_step_failure_events()
        if failures:
            cause = failures[0].step_failure_data.error
            while cause is not None and cause.cause is not None:
                cause = cause.cause  # the asset's own exception, not Dagster's wrapper
            message = cause.message.strip().splitlines()[0] if cause else "failed"
            error = f"step {failures[0].step_key}: {message}"
        else:
            error = "run failed"
    return {
        "assets": selection,
        "partitions": [first.isoformat(), last.isoformat()] if first and last else None,
        "run_id": result.run_id,
        "success": result.success,
        "error": error,
    }


def _cmd_land(args: argparse.Namespace) -> int:
    from smartgrid_assets.demo import DAILY_ASSETS
    from smartgrid_assets.ingest import byo
    from smartgrid_assets.landing import LandingError
    from smartgrid_assets.platform import Platform

    settings = load_settings()
    spec = _land_spec(args)
    conversions = []
    for file in args.files:
        path = Path(file)
        if not path.is_file():
            raise CliError(f"file {file}: no such file")
        conversions.append(byo.convert(path.read_bytes(), path.name, _for_file(spec, path)))
    window = None
    if args.materialize:
        days = [d for c in conversions for d in c.local_days(settings.tz)]
        window = _partition_window(settings, min(days), max(days))
    platform = Platform(settings)
    try:
        result = byo.land(platform.landing, conversions, strict=args.strict)
    except LandingError as exc:
        raise CliError(str(exc)) from exc
    report = {
        "files": [
            {**conv.summary(settings.tz), "key": landed.key, "status": landed.status}
            for conv, landed in zip(conversions, result.readings, strict=True)
        ],
        "registry": None
        if result.registry is None
        else {
            "key": result.registry.key,
            "status": result.registry.status,
            "extends": result.registry_base,
            "new_meters": result.new_meters,
        },
        "notes": result.notes,
        "materialize": None,
    }
    for conv in conversions:
        if conv.bad_rows:
            print(
                f"smartgrid land: file {conv.name}: {conv.bad_rows} bad rows landed as rejected "
                f"rows (they go to rejected_readings); first: {conv.bad_examples[0]}",
                file=sys.stderr,
            )
    if not args.json:
        _print_land(report)
    runs = []
    if window is not None:
        landed_days = _landed_days(platform, [landed.key for landed in result.readings])
        if landed_days is not None:  # the days the landed rows name, out-of-range rows apart
            window = _partition_window(settings, *landed_days)
        first, last, left_out = window
        report["materialize"] = {"skipped": left_out, "runs": runs}
        for note in left_out:
            if not args.json:
                print(f"materialize: {note}")
        for selection, lo, hi in ((["meters"], None, None), (DAILY_ASSETS, first, last)):
            run = _run_assets(platform, selection, lo, hi)
            runs.append(run)
            if not args.json:
                span = f" {lo}..{hi}" if lo else ""
                outcome = "success" if run["success"] else f"FAILED ({run['error']})"
                print(f"materialize: {', '.join(selection)}{span}  run {run['run_id']}  {outcome}")
            if not run["success"]:
                break
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    return 0 if all(run["success"] for run in runs) else 1


def _for_file(spec: ExportSpec, path: Path) -> ExportSpec:
    """The spec with `{file}` in --meter-id replaced by the file's name without extensions."""
    if spec.meter_id is None or "{file}" not in spec.meter_id:
        return spec
    stem = path.name.split(".")[0]
    return replace(spec, meter_id=spec.meter_id.replace("{file}", stem))


def _read_exports(args: argparse.Namespace) -> tuple[pa.Table, set[str], list[str]]:
    """(readings, meters with generation, notes) of the FILE arguments, read as `land` reads
    them."""
    from smartgrid_assets.ingest import byo

    spec = _land_spec(args)
    conversions = []
    for file in args.files:
        path = Path(file)
        if not path.is_file():
            raise CliError(f"file {file}: no such file")
        conversions.append(byo.convert(path.read_bytes(), path.name, _for_file(spec, path)))
    readings = pa.concat_tables([c.readings for c in conversions])
    solar = {m for c in conversions for m in c.solar_meters}
    notes = [f"{c.name}: {note}" for c in conversions for note in c.notes]
    return readings, solar, notes


def _detector_config() -> DetectorConfig:
    from smartgrid_assets.pipeline.anomalies import detector_config

    return detector_config(load_settings())


def _cmd_detect(args: argparse.Namespace) -> int:
    from smartgrid_assets.anomalies import calibration, detect_readings, event_class

    readings, solar, notes = _read_exports(args)
    detected = detect_readings(readings, tz=args.tz, solar_meters=solar, config=_detector_config())
    events, meter_days = detected.events, detected.meter_days
    rows = [
        {
            "meter_id": r["meter_id"],
            "type": r["type"],
            "class": event_class(r["type"]),
            "start": r["start"].isoformat(),
            "end": r["end"].isoformat(),
            "severity": r["severity"],
            "score": r["score"],
        }
        for r in events.sort_by([("start", "ascending"), ("type", "ascending")]).to_pylist()
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    alarms = sum(r["severity"] != "info" for r in rows)
    rate = f"{1000.0 * alarms / meter_days:.1f}" if meter_days else "-"
    print(
        f"{len(rows)} events over {meter_days} meter-days: {alarms} alarms "
        f"({rate} per 1,000 meter-days), the rest info"
    )
    for note in notes:
        print(f"note: {note}")
    cal = detected.calibration
    exporting = sorted(calibration.inferred_generation(cal))
    if exporting:
        print(f"exports regularly, treated as having generation: {_few(exporting)}")
    short = sorted(calibration.insufficient_history(cal))
    if short:
        print(f"insufficient_history (under a week; judged by rules only): {_few(short)}")
    for r in rows:
        print(
            f"  {r['start']}  {r['end']}  {r['meter_id']:<12} {r['type']:<18} "
            f"{r['class']:<12} {r['severity']:<8} score {r['score']:.2f}"
        )
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from smartgrid_assets.anomalies import INJECTED_TYPES, evaluate_readings

    types = [t.strip() for t in args.types.split(",")] if args.types else list(INJECTED_TYPES)
    unknown = sorted(set(types) - set(INJECTED_TYPES))
    if unknown or not types:
        raise CliError(f"--types {args.types!r}: expected some of {','.join(INJECTED_TYPES)}")
    readings, solar, notes = _read_exports(args)
    config = _detector_config()
    result = evaluate_readings(
        readings,
        tz=args.tz,
        solar_meters=solar,
        seeds=args.seed,
        types=types,
        days_each=args.days_each,
        config=config,
    )
    if args.json:
        runs = [
            {k: v for k, v in r.items() if k not in ("labels", "events")} for r in result["runs"]
        ]
        drop = ("labels", "events", "calibration", "runs")
        report = {**{k: v for k, v in result.items() if k not in drop}, "runs": runs}
        print(json.dumps(report, indent=2, default=str))
        return 0
    for note in notes:
        print(f"note: {note}")
    print(
        f"{result['meters']} meters, {result['meter_days']} meter-days; one injection of each "
        f"type per {args.days_each} meter-days, spread over the meters; seeds "
        f"{', '.join(map(str, args.seed))}"
    )

    def num(value: object) -> str:
        return "-" if value is None else f"{value:.2f}"

    print(
        f"{'type':<20}{'injected':>9}{'found':>7}{'recall':>8}{'new':>6}{'precision':>10}{'F1':>6}"
    )
    pooled = result["pooled"]
    for name, r in [*pooled["by_type"].items(), ("overall", pooled["overall"])]:
        print(
            f"{name:<20}{r['injected']:>9}{r['found']:>7}{num(r['recall']):>8}"
            f"{r['new_events']:>6}{num(r['precision']):>10}{num(r['f1']):>6}"
        )
    untouched = result["untouched"]
    print(
        f"untouched readings: {untouched['events']} events, {untouched['alarms']} of them alarms "
        f"(warning or critical): {num(untouched['events_per_1000_meter_days'])} events and "
        f"{num(untouched['alarms_per_1000_meter_days'])} alarms per 1,000 meter-days; alarm "
        f"budget of the calibrated detectors {config.anomaly_budget:g} (SMARTGRID_ANOMALY_BUDGET)"
    )
    return 0


def _site(text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    try:
        lat, lon = (float(v) for v in text.split(","))
    except ValueError:
        raise CliError(f"--site {text!r}: expected LAT,LON in degrees, e.g. 52.1,5.2") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise CliError(f"--site {text!r}: latitude -90..90, longitude -180..180")
    return lat, lon


def _cmd_backtest(args: argparse.Namespace) -> int:
    import numpy as np

    from smartgrid_assets.forecasting import ZOO, run_backtest
    from smartgrid_assets.forecasting.backtest import BacktestError, series_config
    from smartgrid_assets.forecasting.grid import day_of
    from smartgrid_assets.forecasting.peer import REFERENCE
    from smartgrid_assets.forecasting.series import read_series
    from smartgrid_assets.ingest.byo import ExportSpec

    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"file {args.file}: no such file")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in ZOO]
    if unknown or not models:
        raise CliError(
            f"--models: unknown {', '.join(unknown) or '(none)'}; choose from {', '.join(ZOO)}"
        )
    weather = tuple(c.strip() for c in (args.weather_cols or "").split(",") if c.strip())
    spec = ExportSpec(
        time_col=args.time_col,
        value_col=args.value_col,
        meter_id=path.name,
        unit=args.unit,
        time_label=args.time_label,
        tz=args.tz,
        interval_minutes=args.interval_minutes,
        format=args.format,
        time_format=args.time_format,
        dst_fold=args.dst_fold,
        decimal=args.decimal,
        delimiter=args.delimiter,
    )
    series = read_series(path.read_bytes(), path.name, spec, weather, site=_site(args.site))
    config = series_config(series.grid, args.train_days)
    for note in [*series.conversion.notes, *(n for v in series.weather_notes.values() for n in v)]:
        print(f"smartgrid backtest: note: {note}", file=sys.stderr)
    try:
        result = run_backtest(
            series.grid,
            models,
            horizon=args.horizon,
            test_days=args.test_days,
            select_days=args.select_days,
            config=config,
        )
    except BacktestError as exc:
        raise CliError(f"file {path.name}: {exc}") from exc
    for name, why in result.skipped.items():
        print(f"smartgrid backtest: {name} skipped: {why}", file=sys.stderr)
    summary = result.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    grid = series.grid
    test, select = result.test_targets, result.select_targets
    what = {
        "1d": "day-ahead (issued 00:00 local the day before the target day)",
        "48h": "48 h (issued 00:00 local on the target day and the day before)",
    }
    print(
        f"{path.name}: {args.value_col} as kWh per {grid.interval_minutes}-min interval, "
        f"{day_of(grid.day0)}..{day_of(grid.end_day - 1)} ({grid.tz}), "
        f"weather: {', '.join(weather) or 'none'}"
    )
    print(
        f"{what[args.horizon]}, one issue a day; test {day_of(test[0])}..{day_of(test[-1])} "
        f"({len(test)} days); model chosen on {result.folds} rolling folds of "
        f"{day_of(select[0])}..{day_of(select[-1])}"
    )
    header = (
        f"{'model':<34}{'MAE':>14}{'RMSE':>14}{'MAPE %':>8}{'rMAE':>7}{'÷ peer':>8}"
        f"{'pinball':>13}{'P10-P90':>9}"
    )
    print(header)
    names = {m: m for m in result.models} | {REFERENCE: f"{REFERENCE} (peer, reference)"}
    rows = [(names[m], result.score(m)) for m in result.models]
    rows.append((f"champion ({summary['champion']})", result.champion_score()))
    for name, m in rows:
        band = "-" if np.isnan(m["coverage_p10_p90"]) else f"{m['coverage_p10_p90']:.1%}"
        pinball = "-" if np.isnan(m["coverage_p10_p90"]) else f"{m['pinball']:,.1f}"
        print(
            f"{name:<34}{m['mae']:>14,.1f}{m['rmse']:>14,.1f}{m['mape']:>8.2f}{m['rmae']:>7.3f}"
            f"{result.ratio_to_reference(m):>8.3f}{pinball:>13}{band:>9}"
        )
    for row in summary["choice"]:
        folds = "; ".join(
            f"{m} {' / '.join('-' if v is None else f'{v:,.1f}' for v in scores)}"
            for m, scores in row["fold_mae"].items()
        )
        blend = f" (blend of {' and '.join(row['blend_of'])})" if row["blend_of"] else ""
        print(f"champion: {row['champion']}{blend}; MAE on the selection folds: {folds}")
    if REFERENCE in result.models:
        print(
            f"{REFERENCE}: scikit-learn HistGradientBoostingRegressor(max_iter=500, "
            "learning_rate=0.05) on the same information, fit once before the test window; a "
            "yardstick, never chosen"
        )
    return 0


def _few(items: list[str], limit: int = 10) -> str:
    more = len(items) - limit
    return ", ".join(items[:limit]) + (f" and {more} more" if more > 0 else "")


def _print_land(report: dict) -> None:
    for f in report["files"]:
        intervals = ", ".join(f"{m} min" for m in f["meters_by_interval_minutes"])
        print(f"{f['file']} -> {f['key']} ({f['status']})")
        print(
            f"  rows in {f['rows_in']:,}  out {f['rows_out']:,}  bad {f['bad_rows']:,}  "
            f"landed as rejected {f['rejected_rows']:,}"
        )
        print(f"  meters {f['meters']:,} ({intervals}): {_few(f['meter_ids'])}")
        days = f["local_days"]
        print(f"  local days {days[0]}..{days[1]} ({f['tz']})  UTC {f['first_ts']}..{f['last_ts']}")
        by_channel = "  ".join(f"{c} {v:,.3f}" for c, v in f["kwh_by_channel"].items())
        print(f"  kWh total {f['kwh_total']:,.3f}  ({by_channel})")
        for note in f["notes"]:
            print(f"  note: {note}")
        for example in f["bad_examples"]:
            print(f"  bad: {example}")
    registry = report["registry"]
    if registry:
        print(
            f"registry -> {registry['key']} ({registry['status']}): "
            f"{len(registry['new_meters'])} new meter(s) registered as class unknown: "
            f"{_few(registry['new_meters'])}; "
            f"extends {registry['extends'] or 'no earlier registry'}"
        )
    for note in report["notes"]:
        print(f"note: {note}")


def _add_time_options(parser: argparse.ArgumentParser) -> None:
    """How an export's timestamps and values are read: `land`, `detect` and `backtest` alike."""
    parser.add_argument("--time-col", required=True, help="column of timestamps")
    parser.add_argument(
        "--unit",
        default="kWh",
        help="Wh, kWh, MWh (energy per interval) or W, kW, MW (average power); default kWh",
    )
    parser.add_argument(
        "--time-label",
        choices=("start", "end"),
        default="start",
        help="the timestamp marks the interval start (default) or end (hour ending)",
    )
    parser.add_argument(
        "--tz", default="UTC", help="time zone of naive timestamps, e.g. America/New_York"
    )
    parser.add_argument(
        "--interval-minutes",
        type=int,
        help="5, 10, 15, 30 or 60 (default: inferred per meter from the timestamps)",
    )
    parser.add_argument(
        "--time-format", help="strptime layout of the timestamps, e.g. %%d-%%m-%%Y %%H:%%M"
    )
    parser.add_argument(
        "--format", choices=("csv", "parquet"), help="file format (default: by extension)"
    )
    parser.add_argument(
        "--dst-fold",
        choices=("order", "first", "second", "reject"),
        default="order",
        help="a naive local time the clocks repeat at the fall-back change: order (default: "
        "by the file's order where it is in time order around the change; else, or when the "
        "file holds the time once, the row is rejected), first / second (before / after the "
        "change) or reject",
    )
    parser.add_argument(
        "--decimal",
        choices=(".", ","),
        default=".",
        metavar="MARK",
        help="decimal mark of the values: . (default) or , (then a value holding a point is a "
        "bad row: it may be a thousands separator)",
    )
    parser.add_argument(
        "--delimiter",
        help="CSV field separator, one character, \\t for a tab (default: whichever of , ; tab "
        "| the header line uses most)",
    )


def _add_series_options(parser: argparse.ArgumentParser) -> None:
    """Which columns hold the meters' series: `land` and `detect`."""
    parser.add_argument("--value-col", help="column of values (energy or average power)")
    parser.add_argument("--meter-col", help="column of meter ids")
    parser.add_argument(
        "--meter-id",
        help="meter id of a single-series file without a meter column; {file} in it is each "
        "file's name without extensions (several single-meter files at once)",
    )
    parser.add_argument("--received-col", help="column of exported (received) values, if any")
    parser.add_argument(
        "--channel-col",
        help="column of channel labels: delivered or received (also import or export), any case "
        "(default: a column named channel, if there is one and no --received-col)",
    )
    parser.add_argument(
        "--wide", action="store_true", help="one column per meter (its name is the meter id)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smartgrid", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    synth = sub.add_parser("synth", help="generate a synthetic utility's exports and labels")
    synth.add_argument("--meters", type=_positive, required=True)
    synth.add_argument("--days", type=_positive, required=True)
    synth.add_argument("--interval-minutes", type=int, choices=(15, 30, 60), default=15)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument(
        "--tz", default="UTC", help="IANA time zone of the utility, e.g. Europe/Berlin"
    )
    synth.add_argument(
        "--start", type=date.fromisoformat, default=date(2026, 3, 16), help="first local day"
    )
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--json", action="store_true", help="print the summary as JSON")
    synth.set_defaults(func=_cmd_synth)

    sql = sub.add_parser(
        "sql",
        help="query the warehouse read-only",
        description="Query the warehouse read-only, as the database enforces it: a read-only "
        "DuckDB connection without file access, or a least-privilege PostgreSQL role "
        "(SMARTGRID_SQL_URL) in a READ ONLY transaction; cancelled after "
        "SMARTGRID_SQL_TIMEOUT_S seconds.",
    )
    sql.add_argument("query", help='e.g. "SELECT count(*) FROM cleaned_readings"')
    sql.add_argument("--format", choices=("table", "csv", "json"), default="table")
    sql.set_defaults(func=_cmd_sql)

    bench = sub.add_parser(
        "bench",
        help="cleaning, ingestion, quality checks and forecasting against in-run baselines",
    )
    bench.add_argument(
        "--only", nargs="+", choices=BENCHES, help="run these benchmarks only (default: all)"
    )
    bench.add_argument("--meters", type=_positive, default=60_000)
    bench.add_argument(
        "--shared-data",
        default="../shared/data",
        help="peer: the folder of real series (default ../shared/data); skipped where absent",
    )
    bench.add_argument("--files", type=_positive, default=100, help="ingestion: files")
    bench.add_argument("--rows", type=_positive, default=50_000, help="ingestion: rows a file")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--json", action="store_true", help="print the figures as JSON")
    bench.set_defaults(func=_cmd_bench)

    land = sub.add_parser(
        "land",
        help="convert your own export to the readings contract and land it",
        description="Convert exports (CSV, .csv.gz, Parquet) into the canonical readings "
        "contract and land them as Parquet under readings/<today>/; meters the registry does "
        "not know are registered as class unknown (unless --strict). Rows are numbered from 1 "
        "after the header. Rows that cannot be used (and exact duplicates) land beside the "
        "readings as rejected rows with the field, the value and the reason, and reach the "
        "rejected_readings table.",
    )
    land.add_argument("files", nargs="+", metavar="FILE")
    _add_time_options(land)
    _add_series_options(land)
    land.add_argument(
        "--strict", action="store_true", help="refuse meters the registry does not know"
    )
    land.add_argument(
        "--materialize",
        action="store_true",
        help="then run meters and the daily assets for the affected local days in-process",
    )
    land.add_argument("--json", action="store_true", help="print the report as JSON")
    land.set_defaults(func=_cmd_land)

    detect = sub.add_parser(
        "detect",
        help="run the anomaly detectors on your own export and print the events",
        description="Read exports like `land` (same column-mapping options), run VEE and every "
        "meter-level detector over the local days (in --tz) the readings cover, and print the "
        "events. Nothing is landed or stored.",
    )
    detect.add_argument("files", nargs="+", metavar="FILE")
    _add_time_options(detect)
    _add_series_options(detect)
    detect.add_argument("--json", action="store_true", help="print the events as a JSON list")
    detect.set_defaults(func=_cmd_detect)

    evaluate = sub.add_parser(
        "evaluate",
        help="score the anomaly detectors on your own export with injected anomalies",
        description="Read exports like `land` (same options), inject a seeded, documented set "
        "of known anomalies (stuck register, zero run, reverse flow, one absurd interval, a "
        "theft-like drop; the synthetic utility's own injector) into a copy, run VEE and every "
        "detector on the copy and on the untouched readings, and print per type: injected, "
        "found, recall; precision of the events new in the copy; F1; and the untouched "
        "readings' events and alarms per 1,000 meter-days. Nothing is landed or stored.",
    )
    evaluate.add_argument("files", nargs="+", metavar="FILE")
    _add_time_options(evaluate)
    _add_series_options(evaluate)
    evaluate.add_argument(
        "--seed",
        type=int,
        nargs="+",
        default=[0],
        help="injection seeds (default 0); several are scored one by one and pooled, the "
        "untouched readings detected once",
    )
    evaluate.add_argument("--types", help="comma-separated types to inject (default: all of them)")
    evaluate.add_argument(
        "--days-each",
        type=_positive,
        default=120,
        help="one injection of each type per this many meter-days, spread over the meters, at "
        "most one per this many days of a meter's own data (default 120)",
    )
    evaluate.add_argument("--json", action="store_true", help="print the figures as JSON")
    evaluate.set_defaults(func=_cmd_evaluate)

    backtest = sub.add_parser(
        "backtest",
        help="backtest every forecasting model on a series from a CSV",
        description="Read one series (and optional weather columns) from a CSV or Parquet "
        "export, parsed as `land` parses it, and backtest every model with a rolling origin "
        "(one issue a day) over the last --test-days days; each series' model (a family or the "
        "blend of the two best) is chosen on two rolling folds of the --select-days days "
        "before them; local days are days of --tz. A reference peer (a plain scikit-learn "
        "HistGradientBoostingRegressor on the same information, fit once before the test "
        "window) runs beside them and is never chosen. Prints MAE, RMSE, MAPE, rMAE (against "
        "naive-1d), MAE over the peer's, pinball loss and P10-P90 coverage per model, or with "
        '--json {"models": {name: {"mae", "rmse", "rmae", "coverage_p10_p90", '
        '"ratio_to_reference"}}, "champion": name, "champion_score": {...}, "reference": '
        'name, "choice": [{"series", "champion", "blend_of", "fold_mae"}]}.',
    )
    backtest.add_argument("file", metavar="FILE")
    backtest.add_argument("--value-col", required=True, help="column of the load values")
    _add_time_options(backtest)
    backtest.add_argument(
        "--weather-cols",
        help="comma-separated weather columns (forecast regressors), e.g. Temperature",
    )
    backtest.add_argument(
        "--site",
        metavar="LAT,LON",
        help="the site's latitude and longitude (degrees): the models also read the sun's "
        "height over it (irradiance makes power by it); the reference peer does not",
    )
    backtest.add_argument("--horizon", choices=("1d", "48h"), default="1d")
    backtest.add_argument("--test-days", type=_positive, default=28)
    backtest.add_argument(
        "--select-days",
        type=_positive,
        default=28,
        help="days before the test window on which the model family is chosen (default 28)",
    )
    backtest.add_argument(
        "--models",
        default="seasonal_naive_1d,seasonal_naive_7d,gbm,prophet",
        help="comma-separated models (default: all; prophet needs the prophet extra)",
    )
    backtest.add_argument(
        "--train-days",
        type=_positive,
        help="days of history each gbm fit reads (default: all of the file)",
    )
    backtest.add_argument("--json", action="store_true", help="print the figures as JSON")
    backtest.set_defaults(func=_cmd_backtest)

    demo = sub.add_parser("demo", help="generate, land and materialize a small utility end to end")
    demo.add_argument("--meters", type=_positive, default=200)
    demo.add_argument("--days", type=_positive, default=21)
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CliError, SettingsError, WarehouseError, ValueError, FileNotFoundError) as exc:
        print(f"smartgrid {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
