"""The `smartgrid` command: what the Dagster UI does not do."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from smartgrid_assets.settings import SettingsError, load_settings
from smartgrid_assets.warehouse import WarehouseError, warehouse


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
    result = warehouse(load_settings()).query_readonly(args.query)
    _print_table(result, args.format)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from smartgrid_assets.demo import run_demo

    run_demo(meters=args.meters, days=args.days, seed=args.seed)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from smartgrid_assets.bench import run_bench

    report = run_bench(meters=args.meters, seed=args.seed)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"one local day: {report['meters']:,} meters, {report['readings']:,} readings")
    for path in report["paths"]:
        print(
            f"  {path['name']:<48} {path['seconds']:7.2f} s  "
            f"{path['readings_per_second']:>12,.0f} readings/s  peak {path['peak_rss_mb']:,.0f} MB"
        )
    print(
        f"ratio assets / hand SQL: {report['ratio_assets_to_hand_sql']:.2f}x "
        f"(target >= {report['target_ratio']}x)"
    )
    return 0


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

    sql = sub.add_parser("sql", help="query the warehouse read-only")
    sql.add_argument("query", help='e.g. "SELECT count(*) FROM cleaned_readings"')
    sql.add_argument("--format", choices=("table", "csv", "json"), default="table")
    sql.set_defaults(func=_cmd_sql)

    bench = sub.add_parser("bench", help="time raw -> cleaned -> hourly against hand SQL")
    bench.add_argument("--meters", type=_positive, default=60_000)
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--json", action="store_true", help="print the figures as JSON")
    bench.set_defaults(func=_cmd_bench)

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
