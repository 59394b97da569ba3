"""Detection over a whole period and fleet, as the pipeline does it, and its score.

`detect_period` slides a window of `step_days` local days over the period, each detected with
`lookback_days` of history before it, and folds every window's events into the ones stored
so far with `merge_events_detail`, exactly as the `anomaly_report` asset does partition by
partition. `evaluate_synth` runs a synthetic utility's exports through VEE, the hourly
roll-up and `detect_period` and scores the events against its labels: the figure the
detectors are tuned and judged by.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from smartgrid_assets import contract
from smartgrid_assets.contract import UTC_TS
from smartgrid_assets.scratch import connect

from .config import DetectorConfig
from .detect import calibrate, detect
from .evaluate import evaluate, load_labels
from .events import empty_events, merge_events_detail

LOOKBACK_DAYS = 14
#: a synth file lands the day after its date at 02:00 UTC, a late one three days later
_LATE_DAYS = 3


def local_midnight(day: dt.date, tz: str) -> dt.datetime:
    """A local midnight as a UTC datetime (a skipped midnight moves to the next instant)."""
    stamp = pd.Timestamp(day).tz_localize(tz, nonexistent="shift_forward", ambiguous=True)
    return stamp.tz_convert("UTC").to_pydatetime()


def _between(table: pa.Table, start: dt.datetime, end: dt.datetime) -> pa.Table:
    ts = pc.cast(table["ts"], UTC_TS)
    keep = pc.and_(
        pc.greater_equal(ts, pa.scalar(start, UTC_TS)), pc.less(ts, pa.scalar(end, UTC_TS))
    )
    return table.filter(keep)


def store(stored: pa.Table, found: pa.Table) -> pa.Table:
    """Fold detected events into stored ones as the warehouse does: merged ids replaced,
    superseded ids deleted."""
    merged = merge_events_detail(stored, found)
    drop = pa.array([*merged.events["event_id"].to_pylist(), *merged.superseded], pa.string())
    kept = stored.filter(pc.invert(pc.is_in(stored["event_id"], drop)))
    return pa.concat_tables([kept, merged.events]).sort_by("event_id")


def detect_period(
    cleaned: pa.Table,
    meter_hourly: pa.Table,
    meters: pa.Table,
    transformers: pa.Table,
    *,
    first_day: dt.date,
    days: int,
    tz: str,
    step_days: int = 1,
    lookback_days: int = LOOKBACK_DAYS,
    config: DetectorConfig = DetectorConfig(),  # noqa: B008 - frozen, never mutated
    calibration_table: pa.Table | None = None,
) -> pa.Table:
    """ANOMALY_EVENTS of `days` local days from `first_day`, detected `step_days` at a time
    with `lookback_days` of history and merged across windows like the pipeline; with a
    `calibration_table` (`calibrate` over the period, say) for the calibrated detectors, else
    each window learns its own from its lookback."""
    stored = empty_events()
    for offset in range(0, days, step_days):
        day = first_day + dt.timedelta(days=offset)
        ws = local_midnight(day, tz)
        we = local_midnight(first_day + dt.timedelta(days=min(offset + step_days, days)), tz)
        since = local_midnight(day - dt.timedelta(days=lookback_days), tz)
        found = detect(
            _between(cleaned, since, we),
            _between(meter_hourly, since, we),
            meters,
            transformers,
            window_start=ws,
            window_end=we,
            config=config,
            tz=tz,
            calibration_table=calibration_table,
        )
        stored = store(stored, found)
    return stored


def prepare(
    readings: pa.Table, meters: pa.Table, *, first_day: dt.date, days: int, tz: str
) -> tuple[pa.Table, pa.Table]:
    """(cleaned readings, meter_hourly) of READINGS over the period: VEE, then the roll-up."""
    from smartgrid_assets import vee
    from smartgrid_assets.features.hourly import meter_hourly

    start = local_midnight(first_day, tz)
    end = local_midnight(first_day + dt.timedelta(days=days), tz)
    result = vee.apply(
        readings,
        meters,
        window_start=start,
        window_end=end,
        tz=tz,
        as_of=end + dt.timedelta(days=_LATE_DAYS + 1),
    )
    cleaned = result.cleaned.cast(contract.CLEANED_READINGS)  # the detectors sort by strings
    return cleaned, meter_hourly(cleaned, tz)


def meter_days(cleaned: pa.Table, tz: str) -> int:
    """Distinct (meter, local day) pairs with at least one reading."""
    con = connect()
    try:
        con.execute(f"SET TimeZone = '{tz}'")
        con.register("cleaned", cleaned.select(["meter_id", "ts"]))
        (n,) = con.execute(
            "SELECT count(*) FROM (SELECT DISTINCT meter_id, CAST(ts AS DATE) FROM cleaned)"
        ).fetchone()
    finally:
        con.close()
    return int(n)


def registry_of(readings: pa.Table, solar_meters: set[str]) -> pa.Table:
    """A METERS registry for readings without one: each meter class `unknown`, installed at
    its first reading, solar when it exports (`solar_meters`), on no transformer."""
    first = readings.group_by("meter_id").aggregate([("ts", "min")]).sort_by("meter_id").to_pylist()
    rows = [
        {
            "meter_id": r["meter_id"],
            "customer_class": "unknown",
            "has_solar": r["meter_id"] in solar_meters,
            "multiplier": 1.0,
            "installed_at": r["ts_min"],
        }
        for r in first
    ]
    return pa.Table.from_pylist(rows, schema=contract.METERS)


def detect_readings(
    readings: pa.Table,
    *,
    tz: str,
    solar_meters: set[str] | frozenset[str] = frozenset(),
    step_days: int = 7,
    config: DetectorConfig = DetectorConfig(),  # noqa: B008 - frozen, never mutated
) -> Detected:
    """Events, meter-days and calibration of bare readings (meter_id, ts, interval_minutes,
    channel, kwh) with no registry: VEE, the hourly roll-up, a calibration over all of it
    (each meter on its own history where it is long enough), then `detect_period` over every
    local day in `tz` the readings touch, `step_days` at a time. No transformers: no
    transformer_overload."""
    n = readings.num_rows
    bounds = pc.min_max(readings["ts"])
    first = pd.Timestamp(bounds["min"].as_py()).tz_convert(tz).date()
    last = pd.Timestamp(bounds["max"].as_py()).tz_convert(tz).date()
    days = (last - first).days + 1
    landed = local_midnight(last + dt.timedelta(days=1), tz)
    table = pa.table(
        {
            **{name: readings[name] for name in ("meter_id", "ts", "interval_minutes")},
            "channel": readings["channel"],
            "kwh": readings["kwh"],
            "source_file": pa.array(["detect"] * n, pa.string()),
            "source_row": pa.array(np.arange(1, n + 1), pa.int64()),
            "landed_at": pa.array([landed] * n, UTC_TS),
        }
    ).cast(contract.READINGS)
    meters = registry_of(table, set(solar_meters))
    cleaned, hourly = prepare(table, meters, first_day=first, days=days, tz=tz)
    learned = calibrate(
        cleaned,
        meters,
        start=local_midnight(first, tz),
        end=local_midnight(first + dt.timedelta(days=days), tz),
        config=config,
        tz=tz,
    )
    events = detect_period(
        cleaned,
        hourly,
        meters,
        contract.TRANSFORMERS.empty_table(),
        first_day=first,
        days=days,
        tz=tz,
        step_days=step_days,
        config=config,
        calibration_table=learned,
    )
    return Detected(events, meter_days(cleaned, tz), learned)


@dataclass(frozen=True)
class Detected:
    """What `detect_readings` found: ANOMALY_EVENTS, the meter-days judged and the
    CALIBRATION the detectors used."""

    events: pa.Table
    meter_days: int
    calibration: pa.Table


@dataclass(frozen=True)
class SynthUtility:
    """A synthetic utility's exports as the pipeline would see them."""

    readings: pa.Table  # READINGS (late files included)
    meters: pa.Table
    transformers: pa.Table
    labels: pa.Table  # evaluate.LABELS
    first_day: dt.date
    days: int
    tz: str


def _read_export(path: Path) -> pa.Table:
    columns = {
        "meter_id": pa.string(),
        "ts": UTC_TS,
        "interval_minutes": pa.int32(),
        "channel": pa.string(),
        "kwh": pa.float64(),
    }
    if path.suffix == ".csv":
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=columns))
    else:
        table = pq.read_table(path)
    return table.select(list(columns)).cast(pa.schema(columns))


def read_synth(out: Path) -> SynthUtility:
    """Registry, every readings export (late ones too) and labels of a `synthesize` folder."""
    manifest = json.loads((out / "manifest.json").read_text())
    params = manifest["parameters"]
    tables = []
    for path in sorted([*out.glob("readings/*/*"), *out.glob("late/readings/*/*")]):
        table = _read_export(path)
        date = dt.date.fromisoformat(path.stem.split("_")[-1])
        late = _LATE_DAYS if "late" in path.relative_to(out).parts else 0
        landed = dt.datetime.combine(date + dt.timedelta(days=1 + late), dt.time(2), dt.UTC)
        n = table.num_rows
        table = table.append_column("source_file", pa.array([str(path.relative_to(out))] * n))
        table = table.append_column("source_row", pa.array(np.arange(1, n + 1), pa.int64()))
        table = table.append_column("landed_at", pa.array([landed] * n, UTC_TS))
        tables.append(table)
    con = connect()
    try:
        meters, transformers = (
            con.sql(
                f"SELECT * FROM read_csv('{out / 'registry' / name}', header = true)"
            ).to_arrow_table()
            for name in ("meters.csv", "transformers.csv")
        )
    finally:
        con.close()
    return SynthUtility(
        readings=pa.concat_tables(tables).cast(contract.READINGS),
        meters=contract.conform(meters, contract.METERS),
        transformers=contract.conform(transformers, contract.TRANSFORMERS),
        labels=load_labels(out / "labels.csv"),
        first_day=dt.date.fromisoformat(params["start"]),
        days=int(params["days"]),
        tz=params["tz"],
    )


def evaluate_synth(
    out: Path,
    *,
    step_days: int = 1,
    config: DetectorConfig = DetectorConfig(),  # noqa: B008 - frozen, never mutated
) -> dict[str, object]:
    """Score the detectors on a synthetic utility (a `synthesize` folder): `evaluate`'s
    result with the events and the meter-days judged."""
    utility = read_synth(out)
    cleaned, hourly = prepare(
        utility.readings,
        utility.meters,
        first_day=utility.first_day,
        days=utility.days,
        tz=utility.tz,
    )
    events = detect_period(
        cleaned,
        hourly,
        utility.meters,
        utility.transformers,
        first_day=utility.first_day,
        days=utility.days,
        tz=utility.tz,
        step_days=step_days,
        config=config,
    )
    start = local_midnight(utility.first_day, utility.tz)
    end = local_midnight(utility.first_day + dt.timedelta(days=utility.days), utility.tz)
    scores = evaluate(
        events, utility.labels, start, end, meter_days=meter_days(cleaned, utility.tz)
    )
    return {**scores, "events": events}
