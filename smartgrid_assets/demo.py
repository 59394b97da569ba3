"""`smartgrid demo`: a synthetic utility landed and materialized end to end, runs recorded in the
Dagster instance so they show in the UI afterwards."""

from __future__ import annotations

import time
from datetime import date, timedelta

import dagster as dg

from smartgrid_assets.definitions import defs
from smartgrid_assets.pipeline.land import land_tree
from smartgrid_assets.platform import Platform
from smartgrid_assets.settings import load_settings

DEMO_START = date(2026, 3, 16)


def partition_range_tags(first: date, last: date) -> dict[str, str]:
    """Run tags that make one run of a single-run backfill over [first, last]."""
    return {
        "dagster/asset_partition_range_start": first.isoformat(),
        "dagster/asset_partition_range_end": last.isoformat(),
    }


def materialize_days(
    platform: Platform,
    first: date,
    last: date,
    selection: list[str],
    instance: dg.DagsterInstance,
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        list(defs.assets or []),
        selection=selection,
        instance=instance,
        resources={"platform": platform},
        tags=partition_range_tags(first, last),
    )


def run_demo(meters: int, days: int, seed: int) -> None:
    from smartgrid_assets.synth import synthesize

    settings = load_settings()
    platform = Platform(settings)
    started = time.monotonic()
    out = settings.home / "synth"
    summary = synthesize(
        out,
        meters=meters,
        days=days,
        interval_minutes=15,
        seed=seed,
        tz=settings.tz,
        start=DEMO_START,
    )
    landed = land_tree(platform.landing, out)
    print(f"generated {meters} meters x {days} days into {out}; landed {len(landed)} files")
    instance = dg.DagsterInstance.get() if settings.dagster_home else dg.DagsterInstance.ephemeral()
    dg.materialize(
        list(defs.assets or []),
        selection=["meters"],
        instance=instance,
        resources={"platform": platform},
    )
    last = DEMO_START + timedelta(days=days - 1)
    result = materialize_days(
        platform, DEMO_START, last, ["weather", "raw_readings", "cleaned_readings"], instance
    )
    meta = {
        e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    raw, cleaned = meta["raw_readings"], meta["cleaned_readings"]
    print(f"pipeline finished in {time.monotonic() - started:.1f} s")
    print(
        f"readings in: {raw['rows'].value}, rejected rows: {raw['rejected_rows'].value}, "
        f"quarantined files: {raw['quarantined_total'].value}"
    )
    print(f"cleaned readings out: {cleaned['rows_out'].value}")
    print(f"quality: {cleaned['rows_by_quality'].value}")
    print("VEE flags by rule:")
    for rule, count in sorted(cleaned["flags_by_rule"].value.items()):
        print(f"  {rule:<20} {count}")
    print(f"labels injected: {summary.to_dict().get('labels_by_type', {})}")
    print(f"warehouse: {settings.warehouse_url}")
    query = "SELECT quality, count(*) FROM cleaned_readings GROUP BY 1"
    print(f'query it:  .venv/bin/smartgrid sql "{query}"')
    print("open the UI:  make dev   (then http://127.0.0.1:3000)")
