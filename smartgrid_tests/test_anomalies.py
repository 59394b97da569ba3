"""Anomaly detection tests: each detector on hand-made series (fires / stays quiet just below
its threshold), the event model (ids, merging across midnight, idempotent re-runs), evaluation
against labels, and one end-to-end run on the synthetic utility scored against its labels.

Hand-made tests use UTC days from `DAY0` and a smooth, never-repeating load (`profile`), so
a normal series raises nothing and each test adds exactly the anomaly it checks.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from smartgrid_assets import anomalies as an
from smartgrid_assets.contract import (
    ANOMALY_EVENTS,
    CLEANED_READINGS,
    METER_HOURLY,
    METERS,
    UTC_TS,
)

UTC = dt.UTC
DAY0 = dt.datetime(2026, 3, 2, tzinfo=UTC)
DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)


def day(i: int, hour: float = 0.0) -> dt.datetime:
    return DAY0 + i * DAY + dt.timedelta(hours=hour)


def profile(n: int, minutes: int = 15, *, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    """A positive daily-shaped load (kWh per interval) with noise: no two neighbours equal."""
    rng = np.random.default_rng(seed)
    hours = np.arange(n) * minutes / 60.0
    tod = hours % 24
    shape = 0.35 + 0.15 * np.sin(2 * np.pi * (tod - 6) / 24) + 0.6 * np.exp(-((tod - 19) ** 2) / 4)
    return np.round(scale * shape * minutes / 60.0 * rng.uniform(0.9, 1.1, n), 6)


# --- table builders ------------------------------------------------------------------------------


def part(
    meter_id: str,
    start: dt.datetime,
    values: np.ndarray | list[float],
    *,
    channel: str = "delivered",
    minutes: int = 15,
    quality: str = "A",
    rules: tuple[str, ...] = (),
) -> pa.Table:
    """Cleaned readings of one meter-channel from `start`, one value per interval."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    start_us = int(start.timestamp() * 1_000_000)
    ts = pa.array(start_us + np.arange(n, dtype=np.int64) * minutes * 60_000_000).cast(UTC_TS)
    raw = pa.nulls(n, pa.float64()) if quality == "E" else pa.array(values)
    return pa.table(
        {
            "meter_id": pa.array([meter_id] * n),
            "ts": ts,
            "interval_minutes": pa.array(np.full(n, minutes, dtype=np.int32)),
            "channel": pa.array([channel] * n),
            "kwh": pa.array(values),
            "source_file": pa.array(["test.csv"] * n),
            "quality": pa.array([quality] * n),
            "vee_rules": pa.array([list(rules)] * n, pa.list_(pa.string())),
            "vee_version": pa.array(["1.0.0"] * n),
            "kwh_raw": raw,
            "ts_raw": ts,
        },
        schema=CLEANED_READINGS,
    )


def cleaned(*parts: pa.Table) -> pa.Table:
    return pa.concat_tables(parts).sort_by(
        [("meter_id", "ascending"), ("channel", "ascending"), ("ts", "ascending")]
    )


def meters_table(*specs: dict) -> pa.Table:
    rows = [
        {
            "meter_id": s["meter_id"],
            "customer_class": s.get("customer_class", "residential"),
            "transformer_id": s.get("transformer_id", "TX1"),
            "feeder_id": "F1",
            "substation_id": "S1",
            "region": "north",
            "has_solar": s.get("has_solar", False),
            "multiplier": 1.0,
            "installed_at": dt.datetime(2020, 1, 1, tzinfo=UTC),
            "removed_at": None,
            "lat": None,
            "lon": None,
        }
        for s in specs
    ]
    return pa.Table.from_pylist(rows, schema=METERS)


def transformers_table(**ratings: float) -> pa.Table:
    return pa.table(
        {
            "transformer_id": list(ratings),
            "feeder_id": ["F1"] * len(ratings),
            "substation_id": ["S1"] * len(ratings),
            "kva_rating": [float(v) for v in ratings.values()],
        }
    )


def meter_hourly(table: pa.Table) -> pa.Table:
    """METER_HOURLY from cleaned readings (UTC hours; what the features asset computes)."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("cleaned", table)
        out = con.sql(
            """
            SELECT meter_id, time_bucket(INTERVAL 1 HOUR, ts) AS ts,
                   coalesce(sum(kwh) FILTER (WHERE channel = 'delivered'), 0) AS kwh_delivered,
                   coalesce(sum(kwh) FILTER (WHERE channel = 'received'), 0) AS kwh_received,
                   kwh_delivered - kwh_received AS kwh_net,
                   count(*)::INTEGER AS intervals,
                   count(*) FILTER (WHERE quality = 'E')::INTEGER AS intervals_estimated,
                   count(*) FILTER (WHERE quality = 'S')::INTEGER AS intervals_suspect
            FROM cleaned GROUP BY ALL ORDER BY meter_id, ts
            """
        ).to_arrow_table()
    finally:
        con.close()
    return out.select(METER_HOURLY.names).cast(METER_HOURLY)


def run(
    table: pa.Table,
    meters: pa.Table,
    start: dt.datetime,
    end: dt.datetime,
    *,
    transformers: pa.Table | None = None,
    config: an.DetectorConfig = an.DetectorConfig(),  # noqa: B008
    tz: str = "UTC",
    history: pa.Table | None = None,
) -> list[dict]:
    """Events of [start, end); the calibrated detectors learn from `history` (normal
    readings of the same span) when given, else from `table` itself."""
    events = an.detect(
        table,
        meter_hourly(table),
        meters,
        transformers if transformers is not None else transformers_table(TX1=1000.0),
        window_start=start,
        window_end=end,
        config=config,
        tz=tz,
        calibration_table=(
            None
            if history is None
            else an.calibrate(history, meters, start=start, end=end, config=config, tz=tz)
        ),
    )
    assert events.schema == ANOMALY_EVENTS
    return events.to_pylist()


def of_type(events: list[dict], type_: str) -> list[dict]:
    return [e for e in events if e["type"] == type_]


def with_run(values: np.ndarray, start: int, n: int, value: float) -> np.ndarray:
    out = values.copy()
    out[start : start + n] = value
    return out


# --- stuck_meter -------------------------------------------------------------------------------

M1 = {"meter_id": "M1"}
SOLAR = {"meter_id": "PV1", "has_solar": True}


def two_days(meter: str = "M1", seed: int = 0) -> np.ndarray:
    return profile(2 * 96, seed=seed)


def test_stuck_meter_fires_at_six_hours():
    values = with_run(two_days(), 96 + 40, 24, 0.4321)  # day 1, 10:00-16:00
    events = run(cleaned(part("M1", day(0), values)), meters_table(M1), day(1), day(2))
    (event,) = of_type(events, "stuck_meter")
    assert event["meter_id"] == "M1" and event["asset_id"] is None
    assert event["start"] == day(1, 10) and event["end"] == day(1, 16)
    assert event["score"] == pytest.approx(6.0)
    assert event["severity"] == "info"  # < 12 h
    evidence = json.loads(event["evidence"])
    assert evidence["value_kwh"] == pytest.approx(0.4321) and evidence["hours"] == 6.0
    assert event["event_id"] == an.event_id("stuck_meter", "M1", day(1, 10))
    assert event["detector_version"] == an.DETECTOR_VERSION
    assert len(events) == 1


def test_stuck_meter_quiet_just_below_threshold():
    values = with_run(two_days(), 96 + 40, 23, 0.4321)  # 5 h 45 min
    assert run(cleaned(part("M1", day(0), values)), meters_table(M1), day(1), day(2)) == []


def test_stuck_meter_severity_grows_with_duration():
    values = with_run(profile(4 * 96), 96, 2 * 96, 0.25)  # 48 h
    events = run(cleaned(part("M1", day(0), values)), meters_table(M1), day(2), day(3))
    (event,) = of_type(events, "stuck_meter")
    assert event["severity"] == "warning" and event["score"] == pytest.approx(48.0)


def test_estimates_are_never_read():
    """Estimated rows (kwh_raw null) neither make a run nor break one."""
    base = two_days()
    table = cleaned(
        part("M1", day(0), base[: 96 + 40]),
        part("M1", day(1, 10), np.zeros(32), quality="E", rules=("estimate.profile",)),
        part("M1", day(1, 18), base[96 + 72 :]),
    )
    assert run(table, meters_table(M1), day(1), day(2)) == []


def test_detectors_read_kwh_raw_and_the_corrected_value_of_edits():
    from smartgrid_assets.anomalies.frame import observed

    table = cleaned(
        part("M1", day(0), [0.1]),
        part("M1", day(0, 0.25), [0.2], quality="E", rules=("estimate.linear",)),
        part("M1", day(0, 0.5), [0.3], quality="X", rules=("unit.wh_as_kwh",)),
        part("M1", day(0, 0.75), [0.4], quality="S", rules=("future",)),
    )
    # kwh_raw as landed: 1000x for the unit error, and differs from kwh on the A row
    raw = pa.array([0.15, None, 300.0, 0.4])
    table = table.set_column(table.schema.get_field_index("kwh_raw"), "kwh_raw", raw)
    obs = observed(table, meters_table(M1), window_end=2**62, exclude_rules=("future",))
    assert obs.value.tolist() == [0.15, 0.3]
    assert obs.rules_of(int(obs.rules[1])) == ["unit.wh_as_kwh"]


# --- zero_run ----------------------------------------------------------------------------------


def test_zero_run_fires_at_six_hours_on_a_meter_without_solar():
    values = with_run(two_days(), 96 + 8, 24, 0.0)  # 02:00-08:00
    events = run(cleaned(part("M1", day(0), values, rules=())), meters_table(M1), day(1), day(2))
    (event,) = events
    assert event["type"] == "zero_run" and event["meter_id"] == "M1"
    assert (event["start"], event["end"]) == (day(1, 2), day(1, 8))
    assert event["score"] == pytest.approx(6.0)


def test_zero_run_quiet_just_below_threshold():
    values = with_run(two_days(), 96 + 8, 23, 0.0)
    assert run(cleaned(part("M1", day(0), values)), meters_table(M1), day(1), day(2)) == []


def solar_day(n_days: int = 2, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Delivered is zero 09:00-17:00 (exporting), received zero outside it (night)."""
    delivered = profile(n_days * 96, seed=seed)
    received = np.zeros(n_days * 96)
    tod = np.arange(n_days * 96) % 96
    midday = (tod >= 36) & (tod < 68)
    delivered[midday] = 0.0
    received[midday] = 0.2 + 0.3 * np.sin(np.pi * (tod[midday] - 36) / 32)
    return delivered, received


def test_solar_meter_midday_zero_delivered_is_not_a_zero_run():
    delivered, received = solar_day()
    table = cleaned(
        part("PV1", day(0), delivered), part("PV1", day(0), received, channel="received")
    )
    assert run(table, meters_table(SOLAR), day(1), day(2)) == []


def test_solar_meter_zero_on_both_channels_is_a_zero_run():
    delivered, received = solar_day()
    delivered[96 + 30 : 96 + 80] = 0.0  # 07:30-20:00 on day 1
    received[96 + 30 : 96 + 80] = 0.0
    table = cleaned(
        part("PV1", day(0), delivered), part("PV1", day(0), received, channel="received")
    )
    (event,) = run(table, meters_table(SOLAR), day(1), day(2))
    assert event["type"] == "zero_run" and event["meter_id"] == "PV1"
    assert (event["start"], event["end"]) == (day(1, 7.5), day(1, 20))
    assert event["severity"] == "warning"  # 12.5 h
    assert json.loads(event["evidence"])["channels"] == ["delivered", "received"]


# --- reverse_flow -------------------------------------------------------------------------------


def test_reverse_flow_fires_at_one_hour_without_solar():
    values = two_days()
    values[96 + 40 : 96 + 44] = -0.05
    (event,) = run(cleaned(part("M1", day(0), values)), meters_table(M1), day(1), day(2))
    assert event["type"] == "reverse_flow"
    assert (event["start"], event["end"]) == (day(1, 10), day(1, 11))
    assert event["severity"] == "warning"
    assert json.loads(event["evidence"])["kwh_reversed"] == pytest.approx(0.2)


def test_reverse_flow_quiet_below_one_hour_and_on_solar_meters():
    values = two_days()
    values[96 + 40 : 96 + 43] = -0.05  # 45 min
    assert run(cleaned(part("M1", day(0), values)), meters_table(M1), day(1), day(2)) == []
    net = two_days()
    net[96 + 40 : 96 + 60] = -0.3  # a single-channel net meter exporting for 5 h
    assert run(cleaned(part("PV1", day(0), net)), meters_table(SOLAR), day(1), day(2)) == []


# --- theft_drop ----------------------------------------------------------------------------------

N_DAYS = 21
PEERS = [f"R{i:02d}" for i in range(12)]


def theft_case(drops: dict[str, float], change_day: int, *, common: float = 1.0) -> pa.Table:
    """Hourly data for 12 residential peers over 21 days with a shared weather factor; meters
    in `drops` lose that share of their energy from `change_day`; `common` scales everyone
    from `change_day` (weather, holidays)."""
    rng = np.random.default_rng(42)
    weather = rng.uniform(0.9, 1.1, N_DAYS)
    parts = []
    for k, meter in enumerate(PEERS):
        values = profile(N_DAYS * 24, 60, seed=k, scale=1.0 + 0.1 * k)
        factor = np.repeat(weather, 24)
        factor[change_day * 24 :] *= common * (1.0 - drops.get(meter, 0.0))
        parts.append(part(meter, day(0), np.round(values * factor, 6), minutes=60))
    return cleaned(*parts)


def theft_run(table: pa.Table) -> list[dict]:
    meters = meters_table(*({"meter_id": m} for m in PEERS))
    return run(table, meters, day(N_DAYS - 1), day(N_DAYS))


def test_theft_drop_fires_at_the_change_day():
    (event,) = theft_run(theft_case({"R03": 0.35}, change_day=12))
    assert event["type"] == "theft_drop" and event["meter_id"] == "R03"
    assert event["start"] == day(12) and event["end"] == day(N_DAYS)
    assert event["score"] == pytest.approx(0.35, abs=0.05)
    assert event["severity"] == "warning"
    evidence = json.loads(event["evidence"])
    assert evidence["change_day"] == "2026-03-14"
    assert evidence["after_kwh_per_day"] < 0.7 * evidence["baseline_kwh_per_day"]


def test_theft_drop_quiet_below_threshold_or_too_short():
    assert theft_run(theft_case({"R03": 0.22}, change_day=12)) == []
    # a 40 % drop that has lasted only 6 days so far
    assert theft_run(theft_case({"R03": 0.40}, change_day=N_DAYS - 6)) == []


def test_theft_drop_quiet_when_every_peer_drops_together():
    """Warm weather or a holiday week lowers every meter: no theft."""
    assert theft_run(theft_case({}, change_day=12, common=0.6)) == []


# --- transformer_overload -----------------------------------------------------------------------

TX_METERS = [{"meter_id": f"T{i}", "transformer_id": "TX1"} for i in range(3)]


def overload_case(peak_kwh: dict[int, float], spike: bool = False) -> pa.Table:
    """3 meters on TX1 (10 kVA), hourly: just under 2 kWh each, 3 kWh 18:00-21:00 (<= 0.9);
    `peak_kwh` sets every meter's value in the given hours of day 1."""
    parts = []
    for i, m in enumerate(TX_METERS):
        hours = np.arange(48)
        noise = np.random.default_rng(i).uniform(-0.05, 0.0, 48)
        values = np.where((hours % 24 >= 18) & (hours % 24 < 21), 3.0, 2.0) + noise
        for h, v in peak_kwh.items():
            values[24 + h] = v
        if spike and i == 0:  # a 40 kWh reading VEE flagged as a spike at 12:00
            parts.append(part(m["meter_id"], day(0), values[:36], minutes=60))
            parts.append(part(m["meter_id"], day(1, 12), [40.0], minutes=60, rules=("spike",)))
            parts.append(part(m["meter_id"], day(1, 13), values[37:], minutes=60))
            continue
        parts.append(part(m["meter_id"], day(0), values, minutes=60))
    return cleaned(*parts)


def overload_run(table: pa.Table, **config: float) -> list[dict]:
    return run(
        table,
        meters_table(*TX_METERS),
        day(1),
        day(2),
        transformers=transformers_table(TX1=10.0),
        config=an.DetectorConfig(**config),
    )


def test_normal_evening_peak_is_not_an_overload():
    assert overload_run(overload_case({})) == []


def test_transformer_overload_warning_and_critical():
    (event,) = overload_run(overload_case({19: 3.7}))  # 11.1 kW on 10 kVA
    assert event["type"] == "transformer_overload"
    assert event["asset_id"] == "TX1" and event["meter_id"] is None
    assert (event["start"], event["end"]) == (day(1, 19), day(1, 20))
    assert event["severity"] == "warning"
    assert event["score"] == pytest.approx(1.11)
    evidence = json.loads(event["evidence"])
    assert evidence["kva_rating"] == 10.0 and evidence["hours"] == 1.0
    (event,) = overload_run(overload_case({18: 4.5, 19: 4.2}))
    assert (event["start"], event["end"]) == (day(1, 18), day(1, 20))
    assert event["severity"] == "critical" and event["score"] > 1.2


def test_transformer_overload_uses_the_power_factor():
    assert overload_run(overload_case({19: 3.2})) == []  # loading 0.96 at pf 1
    (event,) = overload_run(overload_case({19: 3.2}), power_factor=0.9)
    assert event["score"] == pytest.approx(9.6 / 9.0)


def test_a_vee_spike_is_not_an_overload():
    assert overload_run(overload_case({}, spike=True)) == []


# --- events: ids, merging, idempotence ---------------------------------------------------------


def test_event_id_is_stable():
    start = dt.datetime(2026, 3, 18, 9, 15, tzinfo=UTC)
    eid = an.event_id("stuck_meter", "M000105", start)
    assert eid == an.event_id("stuck_meter", "M000105", start)
    assert len(eid) == 20 and int(eid, 16) >= 0
    berlin = start.astimezone(ZoneInfo("Europe/Berlin"))
    assert an.event_id("stuck_meter", "M000105", berlin) == eid
    assert an.event_id("stuck_meter", "M000105", start.replace(tzinfo=None)) == eid
    assert an.event_id("zero_run", "M000105", start) != eid
    assert an.event_id("stuck_meter", "M000106", start) != eid
    assert an.event_id("stuck_meter", "M000105", start + HOUR) != eid


def midnight_case() -> pa.Table:
    """M1 stuck at 0.42 from day 1 16:00 to day 2 04:00 (12 h), normal around it."""
    values = with_run(profile(4 * 96), 96 + 64, 48, 0.42)
    return cleaned(part("M1", day(0), values))


def detect_day(table: pa.Table, i: int) -> pa.Table:
    """Detection for UTC day i with everything before it as lookback."""
    upto = table.filter(pc.less(table["ts"], pa.scalar(day(i + 1), UTC_TS)))
    return an.detect(
        upto,
        meter_hourly(upto),
        meters_table(M1),
        transformers_table(TX1=1000.0),
        window_start=day(i),
        window_end=day(i + 1),
    )


def store(events: pa.Table, merged: an.MergeResult) -> pa.Table:
    """What the warehouse does: replace merged ids, delete superseded ones."""
    drop = pa.array([*merged.events["event_id"].to_pylist(), *merged.superseded], pa.string())
    kept = events.filter(pc.invert(pc.is_in(events["event_id"], drop)))
    return pa.concat_tables([kept, merged.events]).sort_by("event_id")


def test_event_spanning_midnight_is_one_event_with_one_id():
    table = midnight_case()
    first = detect_day(table, 1)
    (part1,) = first.to_pylist()
    assert (part1["start"], part1["end"]) == (day(1, 16), day(2))
    assert part1["severity"] == "info"  # 8 h so far
    stored = store(
        ANOMALY_EVENTS.empty_table(), an.merge_events_detail(ANOMALY_EVENTS.empty_table(), first)
    )
    second = detect_day(table, 2)
    merged = an.merge_events_detail(stored, second)
    assert merged.superseded == []
    stored = store(stored, merged)
    (event,) = stored.to_pylist()
    assert event["event_id"] == part1["event_id"] == an.event_id("stuck_meter", "M1", day(1, 16))
    assert (event["start"], event["end"]) == (day(1, 16), day(2, 4))
    assert event["score"] == pytest.approx(12.0) and event["severity"] == "warning"

    # idempotent: re-running either day leaves the stored event as it is
    for i in (2, 1):
        again = an.merge_events_detail(stored, detect_day(table, i))
        assert again.superseded == []
        assert store(stored, again).to_pylist() == stored.to_pylist()


def hand_event(type_: str, subject: str, start: dt.datetime, end: dt.datetime, **kw) -> dict:
    asset = type_ in an.ASSET_TYPES
    return {
        "event_id": an.event_id(type_, subject, start),
        "type": type_,
        "meter_id": None if asset else subject,
        "asset_id": subject if asset else None,
        "start": start,
        "end": end,
        "severity": kw.get("severity", "warning"),
        "score": kw.get("score", 1.0),
        "evidence": kw.get("evidence", "{}"),
        "detector_version": an.DETECTOR_VERSION,
    }


def events_of(*rows: dict) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=ANOMALY_EVENTS)


def test_merge_events_gap_bridging_and_new_subjects():
    a = hand_event("zero_run", "M1", day(1, 0), day(1, 8), score=8.0, severity="info")
    b = hand_event("zero_run", "M1", day(1, 12), day(1, 20), score=8.0)
    existing = events_of(a, b)
    # within the 1 h gap of `a` and overlapping `b`: all three are one event, a's id
    bridge = hand_event("zero_run", "M1", day(1, 8.5), day(1, 13), score=5.0, evidence='{"x":1}')
    other = hand_event("zero_run", "M2", day(1, 8), day(1, 9))
    merged = an.merge_events_detail(existing, events_of(bridge, other))
    rows = {r["meter_id"]: r for r in merged.events.to_pylist()}
    assert set(rows) == {"M1", "M2"}
    assert rows["M1"]["event_id"] == a["event_id"]
    assert (rows["M1"]["start"], rows["M1"]["end"]) == (day(1, 0), day(1, 20))
    assert rows["M1"]["score"] == 8.0 and rows["M1"]["severity"] == "warning"
    assert merged.superseded == [b["event_id"]]
    assert rows["M2"]["event_id"] == an.event_id("zero_run", "M2", day(1, 8))
    # beyond the gap: a separate event; an untouched stored event is not returned
    far = hand_event("zero_run", "M1", day(1, 21) + dt.timedelta(minutes=1), day(1, 23))
    merged = an.merge_events(existing, events_of(far))
    assert merged.to_pylist()[0]["event_id"] == far["event_id"]
    assert merged.num_rows == 1
    assert an.merge_events(existing, events_of()).num_rows == 0


# --- evaluation ----------------------------------------------------------------------------------


LABELS_CSV = """label_id,class,type,meter_id,asset_id,start,end,detail
L1,anomaly,stuck_meter,M1,,2026-03-03T10:00:00+00:00,2026-03-03T18:00:00+00:00,x
L2,anomaly,transformer_overload,,TX1,2026-03-03T18:00:00+00:00,2026-03-03T20:00:00+00:00,
L3,anomaly,zero_run,M2,,2026-03-04T00:00:00+00:00,2026-03-04T12:00:00+00:00,
L4,data_problem,spike,M1,,2026-03-03T10:00:00+00:00,2026-03-03T10:15:00+00:00,
L5,anomaly,zero_run,M3,,2026-03-10T00:00:00+00:00,2026-03-10T12:00:00+00:00,outside
"""


def test_load_labels_and_evaluate_hand_case(tmp_path: Path):
    path = tmp_path / "labels.csv"
    path.write_text(LABELS_CSV)
    labels = an.load_labels(path)
    assert labels.schema == an.LABELS
    first = labels.to_pylist()[0]
    assert first["start"] == dt.datetime(2026, 3, 3, 10, tzinfo=UTC) and first["asset_id"] is None
    assert labels.to_pylist()[1]["meter_id"] is None
    events = events_of(
        hand_event("stuck_meter", "M1", day(1, 12), day(1, 14)),  # matches L1
        hand_event("transformer_overload", "TX1", day(1, 20), day(1, 21)),  # touches, no overlap
        hand_event("zero_run", "M1", day(2, 0), day(2, 12)),  # wrong subject
        hand_event("zero_run", "M3", day(8), day(9)),  # outside the window
    )
    result = an.evaluate(events, labels, day(0), day(5))
    assert result["overall"] == {
        "events": 3,
        "labels": 3,
        "matched_events": 1,
        "matched_labels": 1,
        "precision": pytest.approx(1 / 3),
        "recall": pytest.approx(1 / 3),
        "f1": pytest.approx(1 / 3),
        "false_alarms": 2,
    }
    assert result["false_alarms_per_1000_meter_days"] is None
    assert result["by_type"]["stuck_meter"]["precision"] == 1.0
    assert result["by_type"]["transformer_overload"]["recall"] == 0.0
    assert result["by_type"]["zero_run"]["labels"] == 1
    # a data problem detection reports too: L4 (VEE's spike) is interval_spike's, out of overall
    assert result["by_type"]["interval_spike"]["labels"] == 1
    assert {m["label_id"] for m in result["missed"]} == {"L2", "L3", "L4"}
    assert len(result["false_positives"]) == 2
    tolerant = an.evaluate(events, labels, day(0), day(5), tolerance=HOUR)
    assert tolerant["by_type"]["transformer_overload"]["recall"] == 1.0
    empty = an.evaluate(events_of(), labels, day(0), day(5))
    assert empty["overall"]["precision"] is None and empty["overall"]["recall"] == 0.0


def test_config_validation():
    with pytest.raises(ValueError, match="power_factor"):
        an.DetectorConfig(power_factor=0.0)
    with pytest.raises(ValueError, match="theft_min_drop"):
        an.DetectorConfig(theft_min_drop=1.5)
    assert an.DetectorConfig().as_dict()["exclude_rules"] == ["future", "install_period"]


def test_detect_rejects_an_empty_window_and_handles_empty_input():
    empty = CLEANED_READINGS.empty_table()
    with pytest.raises(ValueError, match="window_end"):
        an.detect(
            empty,
            METER_HOURLY.empty_table(),
            meters_table(M1),
            transformers_table(TX1=1.0),
            window_start=day(1),
            window_end=day(1),
        )
    out = an.detect(
        empty,
        METER_HOURLY.empty_table(),
        meters_table(M1),
        transformers_table(TX1=1.0),
        window_start=day(1),
        window_end=day(2),
    )
    assert out.num_rows == 0 and out.schema == ANOMALY_EVENTS


# --- load_spike ----------------------------------------------------------------------------------


def spike_case(kw: float, intervals: int, *, flagged: bool = False, hour: float = 2.0) -> pa.Table:
    """M1: ten ordinary days (typical daily peak about 1.2 kW), then a burst of `intervals`
    readings at `kw` from day 8 `hour`; `flagged`: VEE marked the burst as `spike`."""
    values = profile(10 * 96)
    at = 8 * 96 + int(hour * 4)
    burst = np.full(intervals, kw / 4)
    return cleaned(
        part("M1", day(0), values[:at]),
        part(
            "M1",
            day(8, hour),
            burst,
            rules=("spike",) if flagged else (),
            quality="S" if flagged else "A",
        ),
        part("M1", day(8, hour) + intervals * dt.timedelta(minutes=15), values[at + intervals :]),
    )


#: ten days of one meter are enough history for it to be calibrated on its own
OWN_HISTORY = an.DetectorConfig(calibration_meter_days=7)


def spikes(case: pa.Table) -> list[dict]:
    return of_type(
        run(case, meters_table(M1), day(0), day(10), config=OWN_HISTORY, history=ORDINARY),
        "load_spike",
    )


ORDINARY = cleaned(part("M1", day(0), profile(10 * 96)))


def test_load_spike_fires_on_a_two_hour_burst():
    (event,) = spikes(spike_case(4.5, 8))
    assert (event["start"], event["end"]) == (day(8, 2), day(8, 4))
    assert event["severity"] in ("warning", "critical") and event["score"] > 5.0
    evidence = json.loads(event["evidence"])
    assert evidence["peak_kw"] == pytest.approx(4.5) and evidence["intervals"] == 8
    # judged against the meter's usual level at 02:00, learned from its own ten days
    assert evidence["usual_kw_at_that_time"] < 1.0 and evidence["threshold_source"] == "meter"
    assert evidence["peak_ratio"] > np.exp(evidence["threshold"])


def test_load_spike_quiet_near_the_usual_evening_peak_for_a_vee_spike_and_a_level_change():
    for case in (
        spike_case(2.5, 8, hour=18.0),  # the evening peak, a little higher: the oven on
        spike_case(9.0, 1, flagged=True),  # one bad reading: VEE's spike, a data problem
        spike_case(4.5, 14 * 4),  # 14 h: a change of level, not a spike
    ):
        assert spikes(case) == []


def test_a_single_absurd_interval_is_reported_as_a_data_problem():
    events = run(
        spike_case(9.0, 1, flagged=True),
        meters_table(M1),
        day(0),
        day(10),
        config=OWN_HISTORY,
        history=ORDINARY,
    )
    (event,) = of_type(events, an.INTERVAL_SPIKE)
    assert an.event_class(event["type"]) == "data_problem"
    assert event["start"] == day(8, 2) and event["end"] == day(8, 2.25)
    evidence = json.loads(event["evidence"])
    assert evidence["class"] == "data_problem" and evidence["kwh"] == pytest.approx(2.25)


def test_a_meter_with_less_than_a_week_is_not_judged_by_calibrated_detectors():
    short = cleaned(part("M1", day(0), profile(5 * 96)))
    table = an.calibrate(short, meters_table(M1), start=day(0), end=day(5))
    assert set(table["source"].to_pylist()) == {"insufficient_history"}
    assert table["threshold"].null_count == table.num_rows


def test_a_burst_that_overloads_its_transformer_is_one_overload_event():
    events = run(
        spike_case(4.5, 8),
        meters_table(M1),
        day(0),
        day(10),
        transformers=transformers_table(TX1=3.0),
        config=OWN_HISTORY,
        history=ORDINARY,
    )
    assert of_type(events, "load_spike") == []
    (overload,) = of_type(events, "transformer_overload")
    assert overload["start"] == day(8, 2)


# --- profile_deviation ---------------------------------------------------------------------------

HOMES = [{"meter_id": f"M{i}"} for i in range(1, 13)]


def night_load_case(first: int, n_days: int, *, drop: float = 0.0) -> pa.Table:
    """Twelve peers over 14 days; M1 gains a night load (01:00-06:00, 30 % of its daily energy)
    on days [first, first + n_days), or with `drop` uses that much less all day instead."""
    parts = []
    for i, spec in enumerate(HOMES):
        values = profile(14 * 96, seed=i)
        if spec["meter_id"] == "M1":
            for d in range(first, first + n_days):
                block = slice(d * 96, (d + 1) * 96)
                if drop:
                    values[block] *= 1.0 - drop
                else:
                    values[d * 96 + 4 : d * 96 + 24] += 0.3 * values[block].sum() / 20
        parts.append(part(spec["meter_id"], day(0), values))
    return cleaned(*parts)


def deviations(case: pa.Table) -> list[dict]:
    """profile_deviation events, the detector calibrated on the same homes' ordinary days."""
    ordinary = night_load_case(10, 0)
    return of_type(
        run(case, meters_table(*HOMES), day(0), day(14), history=ordinary), "profile_deviation"
    )


def test_profile_deviation_fires_on_a_new_night_load():
    events = deviations(night_load_case(10, 4))
    (event,) = events
    assert event["meter_id"] == "M1" and event["severity"] == "warning"
    assert (event["start"], event["end"]) == (day(10), day(14))
    evidence = json.loads(event["evidence"])
    assert evidence["days"] == 4 and set(evidence["hours_gained"]) <= {1, 2, 3, 4, 5}
    assert event["score"] > evidence["threshold"]


def test_profile_deviation_quiet_for_two_days_and_for_a_level_drop():
    assert deviations(night_load_case(10, 2)) == []
    assert deviations(night_load_case(10, 4, drop=0.4)) == []


# --- feeder_imbalance ----------------------------------------------------------------------------


def test_feeder_imbalance_against_the_head_meter():
    m1, m2 = profile(2 * 96, seed=1, scale=3.0), profile(2 * 96, seed=2, scale=3.0)
    head = (m1 + m2) * 1.03  # technical losses
    head[96 + 40 : 96 + 72] *= 1.5  # day 1 10:00-18:00: a third of the feeder is unmetered
    registry = meters_table(
        {"meter_id": "M1"}, {"meter_id": "M2"}, {"meter_id": "HEAD1", "transformer_id": None}
    )
    table = cleaned(part("M1", day(0), m1), part("M2", day(0), m2), part("HEAD1", day(0), head))
    (event,) = of_type(run(table, registry, day(0), day(2)), "feeder_imbalance")
    assert event["asset_id"] == "F1" and event["meter_id"] is None
    assert (event["start"], event["end"]) == (day(1, 10), day(1, 18))
    assert event["score"] == pytest.approx(1 - 1 / (1.03 * 1.5), abs=0.01)
    assert event["severity"] == "critical"
    assert json.loads(event["evidence"])["head_meter"] == "HEAD1"
    balanced = cleaned(
        part("M1", day(0), m1), part("M2", day(0), m2), part("HEAD1", day(0), (m1 + m2) * 1.03)
    )
    assert of_type(run(balanced, registry, day(0), day(2)), "feeder_imbalance") == []
    no_head = cleaned(part("M1", day(0), m1), part("M2", day(0), m2))
    assert of_type(run(no_head, meters_table(M1), day(0), day(2)), "feeder_imbalance") == []


# --- profile_outlier (IsolationForest) -----------------------------------------------------------


def odd_day_case() -> pa.Table:
    """Twelve peers over 14 days; on day 12 M1 uses 95 % of its day's energy 00:00-08:00."""
    parts = []
    for i, spec in enumerate(HOMES):
        values = profile(14 * 96, seed=i)
        if spec["meter_id"] == "M1":
            block = slice(12 * 96, 13 * 96)
            total = values[block].sum()
            values[block] *= 0.05
            values[12 * 96 : 12 * 96 + 32] += 0.95 * total / 32
        parts.append(part(spec["meter_id"], day(0), values))
    return cleaned(*parts)


def test_profile_outlier_scores_the_odd_day_highest_and_reports_it_as_info():
    from smartgrid_assets.anomalies.frame import observed, to_us
    from smartgrid_assets.anomalies.outlier import profile_outlier

    table = odd_day_case()
    config = an.DetectorConfig(outlier_min_score=0.0)
    obs = observed(table, meters_table(*HOMES), window_end=to_us(day(14)), exclude_rules=())
    every = profile_outlier(obs, config, to_us(day(12)), to_us(day(13)), "UTC")
    assert len(every) == len(HOMES)  # every meter-day of the window is scored
    top = every.sort_values("score").iloc[-1]
    assert top["meter_id"] == "M1" and top["score"] > 0.6
    assert set(every["severity"]) == {"info"}
    again = profile_outlier(obs, config, to_us(day(12)), to_us(day(13)), "UTC")
    assert again.equals(every)  # fixed seed: the same input, the same scores
    events = of_type(run(table, meters_table(*HOMES), day(12), day(13)), "profile_outlier")
    assert [e["meter_id"] for e in events] == ["M1"]
    assert events[0]["severity"] == "info"


def test_rule_events_leave_no_room_for_an_outlier_on_the_same_meter_day():
    from smartgrid_assets.anomalies.detect import not_covered

    found = pd.DataFrame({"meter_id": ["M1", "M2"], "start": [0, 0], "end": [10, 10]})
    rules = pd.DataFrame({"meter_id": ["M1", "M1"], "start": [5, 20], "end": [6, 30]})
    assert not_covered(found, rules)["meter_id"].tolist() == ["M2"]


# --- evaluation: F1, false alarms, the score type, the table --------------------------------------


def test_evaluate_f1_false_alarm_rate_and_the_score_type():
    labels = an.load_labels(LABELS_CSV.encode())
    events = events_of(
        hand_event("stuck_meter", "M1", day(1, 12), day(1, 14)),  # matches L1
        hand_event("zero_run", "M1", day(2, 0), day(2, 12)),  # false alarm (warning)
        hand_event("zero_run", "M4", day(2, 0), day(2, 12), severity="info"),  # not an alarm
        hand_event("profile_outlier", "M2", day(2, 1), day(2, 2), severity="info"),  # hits L3
    )
    result = an.evaluate(events, labels, day(0), day(5), meter_days=2000)
    overall = result["overall"]
    assert (overall["events"], overall["matched_events"]) == (3, 1)  # the score type stays out
    assert overall["f1"] == pytest.approx(2 * (1 / 3) * (1 / 3) / (2 / 3))
    assert result["by_type"]["profile_outlier"]["precision"] == 1.0
    assert result["by_type"]["zero_run"]["recall"] == 0.0  # an outlier does not find a label
    assert result["false_alarms"] == 1
    assert result["false_alarms_per_1000_meter_days"] == pytest.approx(0.5)
    table = an.evaluation_table(result, day(0), day(5))
    assert table.schema == an.EVALUATION
    rows = {r["type"]: r for r in table.to_pylist()}
    assert rows["overall"]["false_alarms_per_1000_meter_days"] == pytest.approx(0.5)
    assert rows["stuck_meter"]["f1"] == 1.0 and rows["stuck_meter"]["meter_days"] == 2000


# --- end to end on the synthetic utility ----------------------------------------------------------

TZ = "Europe/Berlin"


@pytest.mark.slow
def test_end_to_end_on_the_synthetic_utility(tmp_path: Path):
    """200 meters x 21 days (seed 7) through VEE and detection day by day with a 14-day
    lookback, merged like the pipeline: every injected type found (recall 1.0), no false
    detection by a rule with a physical threshold, the calibrated detectors within the alarm
    budget, every data problem VEE flagged as a spike reported, no event stored twice."""
    from smartgrid_assets.synth import synthesize

    out = tmp_path / "synth"
    synthesize(out, meters=200, days=21, seed=7, tz=TZ)
    clock = time.perf_counter()
    scores = an.evaluate_synth(out)
    print(f"\nVEE + detection of 21 days {time.perf_counter() - clock:.1f} s")
    for name, s in [("overall", scores["overall"]), *scores["by_type"].items()]:
        print(f"{name:22} events {s['events']:3} labels {s['labels']:3} f1 {s['f1']}")
    labels = an.load_labels(out / "labels.csv").to_pylist()
    injected = {r["type"] for r in labels if r["class"] == "anomaly"}
    # every rule type but feeder_imbalance: the synthetic utility has no feeder-head meters
    assert injected == set(an.RULE_TYPES) - {an.FEEDER_IMBALANCE}
    for type_ in [*injected, an.INTERVAL_SPIKE]:
        stats = scores["by_type"][type_]
        assert stats["recall"] == 1.0, (type_, stats, scores["missed"])
        if type_ not in an.CALIBRATED_TYPES:
            assert stats["precision"] == 1.0, (type_, scores["false_positives"])
    assert scores["overall"]["f1"] >= 0.85, scores["missed"]
    budget = an.DetectorConfig().anomaly_budget
    assert scores["false_alarms_per_1000_meter_days"] <= budget, scores["false_positives"]
    ids = scores["events"]["event_id"].to_pylist()
    assert len(ids) == len(set(ids))
