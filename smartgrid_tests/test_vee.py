"""VEE engine tests on small hand-made READINGS / METERS tables.

Most tests run one UTC window day (2026-06-10) with the previous day as context, for meters
whose load is a smooth, never-repeating daily curve (`load`), so a normal day is all `A` and
each test adds exactly the defect it checks.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Iterable, Sequence
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from smartgrid_assets.contract import CLEANED_READINGS, METERS, READINGS, conform
from smartgrid_assets.vee import (
    CLEANED_ARROW,
    RULES,
    SUFFICIENCY,
    VEE_VERSION,
    VeeConfig,
    VeeResult,
    apply,
)

UTC = dt.UTC
#: Context day and window day used by most tests (time zone UTC unless a test says otherwise).
CONTEXT_DAY = dt.datetime(2026, 6, 9, tzinfo=UTC)
WINDOW_DAY = dt.datetime(2026, 6, 10, tzinfo=UTC)
LANDED = dt.datetime(2026, 6, 11, 3, tzinfo=UTC)
Q = dt.timedelta(minutes=15)


def at(day: dt.datetime, hour: int, minute: int = 0) -> dt.datetime:
    return day + dt.timedelta(hours=hour, minutes=minute)


def load(i: int) -> float:
    """A smooth, never-repeating residential load for quarter hour i of a day (kWh)."""
    tod = i % 96
    evening = 1.2 * math.exp(-((tod - 76) ** 2) / 30.0)
    return round(0.25 + 0.1 * math.sin(2 * math.pi * tod / 96) + evening + 0.003 * (tod % 5), 6)


def reading(
    meter_id: str,
    ts: dt.datetime,
    kwh: float,
    *,
    channel: str = "delivered",
    interval: int = 15,
    source_file: str = "a.csv",
    source_row: int = 1,
    landed_at: dt.datetime = LANDED,
) -> dict:
    return {
        "meter_id": meter_id,
        "ts": ts,
        "interval_minutes": interval,
        "channel": channel,
        "kwh": float(kwh),
        "source_file": source_file,
        "source_row": source_row,
        "landed_at": landed_at,
    }


def series(
    meter_id: str,
    start: dt.datetime,
    values: Sequence[float],
    *,
    interval: int = 15,
    **kwargs,
) -> list[dict]:
    step = dt.timedelta(minutes=interval)
    return [
        reading(meter_id, start + i * step, v, interval=interval, source_row=i + 1, **kwargs)
        for i, v in enumerate(values)
    ]


def normal_days(
    meter_id: str, start: dt.datetime = CONTEXT_DAY, days: int = 2, scale: float = 1.0, **kwargs
) -> list[dict]:
    """`days` full days (96 quarter hours each) of the smooth load, starting at `start`."""
    return series(meter_id, start, [load(i) * scale for i in range(96 * days)], **kwargs)


def readings_table(rows: Iterable[dict]) -> pa.Table:
    rows = list(rows)
    columns = {name: [r[name] for r in rows] for name in READINGS.names}
    arrays = {
        name: pa.array(values, type=READINGS.field(name).type) for name, values in columns.items()
    }
    return conform(pa.table(arrays), READINGS)


def meter(
    meter_id: str,
    *,
    customer_class: str = "residential",
    has_solar: bool = False,
    installed_at: dt.datetime = dt.datetime(2020, 1, 1, tzinfo=UTC),
    removed_at: dt.datetime | None = None,
) -> dict:
    return {
        "meter_id": meter_id,
        "customer_class": customer_class,
        "transformer_id": "T1",
        "feeder_id": "F1",
        "substation_id": "S1",
        "region": "R1",
        "has_solar": has_solar,
        "multiplier": 1.0,
        "installed_at": installed_at,
        "removed_at": removed_at,
        "lat": None,
        "lon": None,
    }


def meters_table(*meters: dict) -> pa.Table:
    arrays = {
        name: pa.array([m[name] for m in meters], type=METERS.field(name).type)
        for name in METERS.names
    }
    return conform(pa.table(arrays), METERS)


def run(
    rows: Iterable[dict] | pa.Table,
    meters: Sequence[dict] | pa.Table,
    *,
    day: dt.datetime = WINDOW_DAY,
    tz: str = "UTC",
    as_of: dt.datetime | None = None,
    config: VeeConfig | None = None,
) -> VeeResult:
    """Run VEE over one local day starting at `day` (a local midnight in `tz`)."""
    table = rows if isinstance(rows, pa.Table) else readings_table(rows)
    registry = meters if isinstance(meters, pa.Table) else meters_table(*meters)
    start = day.astimezone(ZoneInfo(tz))
    end_local = dt.datetime.combine(
        start.date() + dt.timedelta(days=1), dt.time(), tzinfo=ZoneInfo(tz)
    )
    window_start = start.astimezone(UTC)
    window_end = end_local.astimezone(UTC)
    return apply(
        table,
        registry,
        window_start=window_start,
        window_end=window_end,
        tz=tz,
        as_of=as_of or window_end + dt.timedelta(days=1),
        config=config or VeeConfig(),
    )


def rows_of(result: VeeResult, meter_id: str | None = None, channel: str = "delivered") -> list:
    """Cleaned rows of one meter-channel as dicts, in output order."""
    out = result.cleaned.to_pylist()
    return [
        r
        for r in out
        if (meter_id is None or r["meter_id"] == meter_id) and r["channel"] == channel
    ]


def by_ts(result: VeeResult, meter_id: str, channel: str = "delivered") -> dict:
    return {r["ts"]: r for r in rows_of(result, meter_id, channel)}


def suff(result: VeeResult, meter_id: str, channel: str = "delivered") -> dict:
    rows = [
        r
        for r in result.sufficiency.to_pylist()
        if r["meter_id"] == meter_id and r["channel"] == channel
    ]
    assert len(rows) == 1, rows
    return rows[0]


def window_index(hour: int, minute: int = 0) -> int:
    """Index in `normal_days` rows (context day first) of a window-day time."""
    return 96 + hour * 4 + minute // 15


def without(rows: list[dict], *indices: int) -> list[dict]:
    drop = set(indices)
    return [r for i, r in enumerate(rows) if i not in drop]


def with_values(rows: list[dict], changes: dict[int, float]) -> list[dict]:
    return [dict(r, kwh=changes[i]) if i in changes else r for i, r in enumerate(rows)]


# =========================================================================================
# normal day, schema, bookkeeping
# =========================================================================================


def test_normal_day_is_all_actual():
    rows = normal_days("M1")
    result = run(rows, [meter("M1")])
    out = rows_of(result, "M1")
    assert len(out) == 96
    assert {r["quality"] for r in out} == {"A"}
    assert all(r["vee_rules"] == [] for r in out)
    assert all(r["vee_version"] == VEE_VERSION for r in out)
    assert [r["kwh"] for r in out] == [load(i) for i in range(96)]
    assert all(r["kwh_raw"] == r["kwh"] and r["ts_raw"] == r["ts"] for r in out)
    assert out[0]["ts"] == WINDOW_DAY and out[-1]["ts"] == at(WINDOW_DAY, 23, 45)
    assert set(result.flags_by_rule) == set(RULES)
    assert not any(result.flags_by_rule.values())
    assert result.rows_in == result.rows_out == 96
    assert result.rows_context == 96
    s = suff(result, "M1")
    assert (s["expected"], s["actual"], s["missing"], s["sufficiency"]) == (96, 96, 0, 1.0)
    assert s["local_day"] == dt.date(2026, 6, 10)


def _plain(cleaned: pa.Table) -> pa.Table:
    """Cleaned rows with plain strings: equal values, whatever order their dictionaries hold."""
    return cleaned.cast(CLEANED_READINGS)


def test_output_schema_is_the_contract():
    result = run(normal_days("M1"), [meter("M1")])
    # the contract's schema with every string column as a dictionary of its strings
    assert result.cleaned.schema.equals(CLEANED_ARROW, check_metadata=True)
    assert result.cleaned.cast(CLEANED_READINGS).schema.equals(CLEANED_READINGS)
    assert result.sufficiency.schema.equals(SUFFICIENCY, check_metadata=True)


def test_empty_input_still_reports_expected_slots():
    result = run([], [meter("M1")])
    assert result.cleaned.num_rows == 0
    assert result.cleaned.schema.equals(CLEANED_ARROW, check_metadata=True)
    s = suff(result, "M1")
    assert (s["expected"], s["actual"], s["missing"]) == (96, 0, 96)


def test_unknown_meters_are_dropped_and_counted():
    rows = normal_days("M1") + normal_days("GHOST")
    result = run(rows, [meter("M1")])
    assert {r["meter_id"] for r in rows_of(result)} == {"M1"}
    assert result.rows_dropped["unknown_meter"] == 96
    assert result.rows_in == 192


def test_output_is_sorted_by_meter_channel_ts():
    rows = (
        normal_days("M2")
        + normal_days("M1")
        + normal_days("M2", channel="received", source_file="r.csv")
    )
    random.Random(1).shuffle(rows)
    result = run(rows, [meter("M1"), meter("M2", has_solar=True)])
    keys = [(r["meter_id"], r["channel"], r["ts"]) for r in result.cleaned.to_pylist()]
    assert keys == sorted(keys)
    assert len(keys) == 3 * 96


# =========================================================================================
# duplicate, alignment, interval length
# =========================================================================================


def test_duplicate_keeps_latest_landed_and_flags_it():
    later = LANDED + dt.timedelta(hours=1)
    earlier = LANDED - dt.timedelta(hours=1)
    rows = [
        *normal_days("M1"),
        reading("M1", at(WINDOW_DAY, 12), 0.999, source_file="b.csv", landed_at=later),
        reading("M1", at(WINDOW_DAY, 13), 0.111, source_file="old.csv", landed_at=earlier),
    ]
    result = run(rows, [meter("M1")])
    got = by_ts(result, "M1")
    assert len(got) == 96
    noon = got[at(WINDOW_DAY, 12)]
    assert (noon["kwh"], noon["source_file"], noon["quality"]) == (0.999, "b.csv", "A")
    assert noon["vee_rules"] == ["duplicate"]
    one = got[at(WINDOW_DAY, 13)]
    assert (one["kwh"], one["source_file"], one["vee_rules"]) == (load(52), "a.csv", ["duplicate"])
    assert result.flags_by_rule["duplicate"] == 2
    assert result.rows_dropped["superseded"] == 2
    assert result.rows_in - result.rows_dropped["superseded"] == result.rows_out


def test_duplicate_tie_on_landed_at_keeps_greatest_source_file():
    rows = [
        *normal_days("M1"),
        reading("M1", at(WINDOW_DAY, 12), 0.7, source_file="c.csv"),
        reading("M1", at(WINDOW_DAY, 12), 0.6, source_file="b.csv"),
    ]
    noon = by_ts(run(rows, [meter("M1")]), "M1")[at(WINDOW_DAY, 12)]
    assert (noon["kwh"], noon["source_file"]) == (0.7, "c.csv")


def test_duplicate_keeps_quality_of_the_kept_row():
    rows = [
        *normal_days("M1"),
        reading("M1", at(WINDOW_DAY, 12), -0.5, landed_at=LANDED + dt.timedelta(hours=1)),
    ]
    noon = by_ts(run(rows, [meter("M1")]), "M1")[at(WINDOW_DAY, 12)]
    assert noon["quality"] == "S"
    assert noon["vee_rules"] == ["duplicate", "negative"]


def test_alignment_snaps_to_the_grid_and_keeps_ts_raw():
    i = window_index(10)
    rows = [*without(normal_days("M1"), i), reading("M1", at(WINDOW_DAY, 10, 7), 0.4)]
    result = run(rows, [meter("M1")])
    got = by_ts(result, "M1")
    assert len(got) == 96
    row = got[at(WINDOW_DAY, 10)]
    assert (row["kwh"], row["kwh_raw"], row["quality"]) == (0.4, 0.4, "X")
    assert row["ts_raw"] == at(WINDOW_DAY, 10, 7)
    assert row["vee_rules"] == ["alignment"]
    assert result.flags_by_rule["alignment"] == 1
    assert suff(result, "M1")["edited"] == 1


def test_alignment_conflict_keeps_the_aligned_reading():
    rows = [
        *normal_days("M1"),
        reading("M1", at(WINDOW_DAY, 11, 3), 0.9, landed_at=LANDED + dt.timedelta(hours=2)),
    ]
    result = run(rows, [meter("M1")])
    got = by_ts(result, "M1")
    assert len(got) == 96
    row = got[at(WINDOW_DAY, 11)]
    assert (row["kwh"], row["ts_raw"], row["quality"]) == (load(44), at(WINDOW_DAY, 11), "A")
    assert row["vee_rules"] == ["alignment"]
    assert result.rows_dropped["superseded"] == 1


def test_interval_length_differs_from_the_dominant_interval():
    i = window_index(12)
    rows = [
        *without(normal_days("M1"), i, i + 1),
        reading("M1", at(WINDOW_DAY, 12), 0.8, interval=30),
    ]
    result = run(rows, [meter("M1")])
    got = by_ts(result, "M1")
    assert len(got) == 95  # the 30-minute reading covers 12:15: not missing, not estimated
    row = got[at(WINDOW_DAY, 12)]
    assert (row["quality"], row["vee_rules"], row["interval_minutes"]) == (
        "S",
        ["interval_length"],
        30,
    )
    others = [r for r in got.values() if r is not row]
    assert all(r["interval_minutes"] == 15 and r["quality"] == "A" for r in others)
    s = suff(result, "M1")
    assert (s["expected"], s["suspect"], s["missing"], s["estimated"]) == (96, 1, 0, 0)


def test_hourly_meter_uses_its_own_grid():
    rows = series("H1", CONTEXT_DAY, [load(4 * i) for i in range(48)], interval=60)
    result = run(rows, [meter("H1")])
    out = rows_of(result, "H1")
    assert len(out) == 24 and {r["quality"] for r in out} == {"A"}
    assert suff(result, "H1")["expected"] == 24


# =========================================================================================
# future, install period, negative, limits
# =========================================================================================


def test_future_readings_are_suspect_and_not_expected():
    as_of = at(WINDOW_DAY, 12)
    result = run(normal_days("M1"), [meter("M1")], as_of=as_of)
    got = by_ts(result, "M1")
    assert len(got) == 96
    for ts, row in got.items():
        if ts >= as_of:
            assert (row["quality"], row["vee_rules"]) == ("S", ["future"])
        else:
            assert row["quality"] == "A"
    assert result.flags_by_rule["future"] == 48
    s = suff(result, "M1")
    assert (s["expected"], s["actual"], s["suspect"], s["missing"]) == (48, 48, 48, 0)


def test_slots_not_yet_ended_are_neither_expected_nor_estimated():
    as_of = at(WINDOW_DAY, 12)
    rows = [r for r in normal_days("M1") if r["ts"] < at(WINDOW_DAY, 11)]
    result = run(rows, [meter("M1")], as_of=as_of)
    s = suff(result, "M1")
    assert s["expected"] == 48
    assert s["actual"] == 44
    # 11:00..11:45 has no reading after it: a profile estimate from the context day
    assert s["estimated"] + s["missing"] == 4
    assert all(r["ts"] < as_of for r in rows_of(result, "M1"))


def test_install_period():
    installed = at(WINDOW_DAY, 6)
    removed = at(WINDOW_DAY, 18)
    result = run(normal_days("M1"), [meter("M1", installed_at=installed, removed_at=removed)])
    got = by_ts(result, "M1")
    assert len(got) == 96
    for ts, row in got.items():
        inside = installed <= ts < removed
        assert row["quality"] == ("A" if inside else "S")
        assert row["vee_rules"] == ([] if inside else ["install_period"])
    s = suff(result, "M1")
    assert (s["expected"], s["actual"], s["suspect"], s["missing"]) == (48, 48, 48, 0)


def test_no_estimation_outside_the_install_period():
    installed = at(WINDOW_DAY, 6)
    rows = [r for r in normal_days("M1") if r["ts"] >= installed]
    result = run(rows, [meter("M1", installed_at=installed)])
    assert len(rows_of(result, "M1")) == 72
    s = suff(result, "M1")
    assert (s["expected"], s["actual"], s["estimated"], s["missing"]) == (72, 72, 0, 0)


def test_negative_with_and_without_solar():
    noon = window_index(12)
    neg = {noon: -0.3}
    rows = (
        with_values(normal_days("PLAIN"), neg)
        + with_values(normal_days("SOLAR"), neg)
        + with_values(normal_days("SOLAR", channel="received", source_file="r.csv"), neg)
    )
    result = run(rows, [meter("PLAIN"), meter("SOLAR", has_solar=True)])
    ts = at(WINDOW_DAY, 12)
    plain = by_ts(result, "PLAIN")[ts]
    assert (plain["quality"], plain["vee_rules"]) == ("S", ["negative"])
    solar = by_ts(result, "SOLAR")[ts]
    assert (solar["quality"], solar["vee_rules"]) == ("A", [])
    export = by_ts(result, "SOLAR", "received")[ts]
    assert (export["quality"], export["vee_rules"]) == ("S", ["negative"])
    assert result.flags_by_rule["negative"] == 2


@pytest.mark.parametrize(
    ("customer_class", "kwh", "has_solar", "expected_rule"),
    [
        ("residential", 10.0, False, "limit.high"),  # 40 kW > 30
        ("residential", 7.0, False, None),  # 28 kW
        ("commercial", 10.0, False, None),  # 40 kW < 600
        ("commercial", 160.0, False, "limit.high"),  # 640 kW > 600
        ("residential", -5.0, True, "limit.low"),  # -20 kW < -15 on a solar meter
        ("residential", -3.0, True, None),  # -12 kW
        ("residential", -5.0, False, "negative"),  # non-solar: negative, not limit.low
        ("industrial", 1000.0, False, None),  # 4000 kW < 6000
    ],
)
def test_limits_by_class(customer_class, kwh, has_solar, expected_rule):
    # a plateau of three equal values, so the middle one is no spike; the meter's normal load
    # is sized to its class, so the plateau is no Wh-as-kWh error
    scale = {"residential": 1.0, "commercial": 20.0, "industrial": 200.0}[customer_class]
    i = window_index(12)
    rows = with_values(normal_days("M1", scale=scale), {i - 1: kwh, i: kwh, i + 1: kwh})
    result = run(rows, [meter("M1", customer_class=customer_class, has_solar=has_solar)])
    row = by_ts(result, "M1")[at(WINDOW_DAY, 12)]
    assert row["kwh"] == kwh
    if expected_rule is None:
        assert row["quality"] == "A" and row["vee_rules"] == []
    else:
        assert row["quality"] == "S" and row["vee_rules"] == [expected_rule]


def test_limits_of_unknown_class_and_custom_config():
    i = window_index(12)
    rows = with_values(normal_days("M1"), {i - 1: 10.0, i: 10.0, i + 1: 10.0})
    result = run(rows, [meter("M1", customer_class="agricultural")])
    assert by_ts(result, "M1")[at(WINDOW_DAY, 12)]["vee_rules"] == []
    config = VeeConfig(class_limits_kw={"unknown": (-1.0, 20.0)})
    result = run(rows, [meter("M1", customer_class="agricultural")], config=config)
    assert by_ts(result, "M1")[at(WINDOW_DAY, 12)]["vee_rules"] == ["limit.high"]


# =========================================================================================
# unit error, spike
# =========================================================================================


def test_unit_error_single_reading_is_corrected():
    i = window_index(3)
    rows = with_values(normal_days("M1"), {i: load(12) * 1000})
    result = run(rows, [meter("M1")])
    row = by_ts(result, "M1")[at(WINDOW_DAY, 3)]
    assert row["quality"] == "X"
    assert row["vee_rules"] == ["unit.wh_as_kwh"]
    assert row["kwh"] == pytest.approx(load(12), rel=1e-12)
    assert row["kwh_raw"] == load(12) * 1000
    others = [r for r in rows_of(result, "M1") if r is not row and r["ts"] != row["ts"]]
    assert {r["quality"] for r in others} == {"A"}
    assert result.flags_by_rule["unit.wh_as_kwh"] == 1


def test_unit_error_whole_day_is_corrected_before_limits_and_spike():
    rows = normal_days("M1")
    rows = rows[:96] + [dict(r, kwh=r["kwh"] * 1000) for r in rows[96:]]
    result = run(rows, [meter("M1")])
    out = rows_of(result, "M1")
    assert len(out) == 96
    assert {r["quality"] for r in out} == {"X"}
    assert all(r["vee_rules"] == ["unit.wh_as_kwh"] for r in out)
    for i, r in enumerate(out):
        assert r["kwh"] == pytest.approx(load(i), rel=1e-12)
        assert r["kwh_raw"] == pytest.approx(load(i) * 1000, rel=1e-12)
    assert result.flags_by_rule["limit.high"] == result.flags_by_rule["spike"] == 0
    assert suff(result, "M1")["edited"] == 96


def test_genuine_high_value_is_not_a_unit_error():
    # 40 kWh in 15 minutes = 160 kW: far above the residential limit, but 40 Wh would be far
    # below this meter's normal range, so it stays as read and is flagged, not "corrected".
    i = window_index(12)
    rows = with_values(normal_days("M1"), {i - 1: 40.0, i: 40.0, i + 1: 40.0})
    row = by_ts(run(rows, [meter("M1")]), "M1")[at(WINDOW_DAY, 12)]
    assert (row["kwh"], row["quality"], row["vee_rules"]) == (40.0, "S", ["limit.high"])


def test_spike_is_flagged_and_kept_as_read():
    i = window_index(4)
    rows = with_values(normal_days("M1"), {i: 2.5})
    result = run(rows, [meter("M1")])
    row = by_ts(result, "M1")[at(WINDOW_DAY, 4)]
    assert (row["kwh"], row["kwh_raw"], row["quality"]) == (2.5, 2.5, "S")
    assert row["vee_rules"] == ["spike"]
    assert result.flags_by_rule["spike"] == 1


def test_high_but_normal_peak_is_not_a_spike():
    i = window_index(4)
    # a sharp evening-like peak: far above the meter's median, but its neighbours are high too
    rows = with_values(normal_days("M1"), {i - 1: 1.1, i: 2.5, i + 1: 1.4, i + 2: 0.6})
    result = run(rows, [meter("M1")])
    assert {r["quality"] for r in rows_of(result, "M1")} == {"A"}
    assert result.flags_by_rule["spike"] == 0


def test_spike_below_minimum_kwh_is_not_flagged():
    rows = series("LOW", CONTEXT_DAY, [0.001 + 0.0001 * (i % 3) for i in range(192)])
    i = window_index(4)
    rows[i] = dict(rows[i], kwh=0.04)  # 40x the neighbours, but below spike_min_kwh
    result = run(rows, [meter("LOW")])
    assert result.flags_by_rule["spike"] == 0
    rows[i] = dict(rows[i], kwh=0.06)
    assert run(rows, [meter("LOW")]).flags_by_rule["spike"] == 1


# =========================================================================================
# flat line, zero run
# =========================================================================================


@pytest.mark.parametrize(("length", "flagged"), [(15, False), (16, True)])
def test_flat_line_threshold(length, flagged):
    start = window_index(1)
    rows = with_values(normal_days("M1"), {start + k: 0.5 for k in range(length)})
    result = run(rows, [meter("M1")])
    out = rows_of(result, "M1")
    run_rows = out[4 : 4 + length]
    assert all(r["kwh"] == 0.5 for r in run_rows)
    if flagged:
        assert all(r["quality"] == "S" and r["vee_rules"] == ["flat_line"] for r in run_rows)
    assert result.flags_by_rule["flat_line"] == (length if flagged else 0)
    assert sum(r["quality"] == "A" for r in out) == (96 - length if flagged else 96)


@pytest.mark.parametrize(("length", "flagged"), [(15, False), (16, True)])
def test_zero_run_threshold(length, flagged):
    start = window_index(1)
    rows = with_values(normal_days("M1"), {start + k: 0.0 for k in range(length)})
    result = run(rows, [meter("M1")])
    assert result.flags_by_rule["zero_run"] == (length if flagged else 0)
    if flagged:
        row = by_ts(result, "M1")[at(WINDOW_DAY, 1)]
        assert (row["kwh"], row["quality"], row["vee_rules"]) == (0.0, "S", ["zero_run"])


def test_zero_run_crossing_midnight_from_the_context_day():
    # 22:00 context day .. 02:00 window day: 16 quarter hours, only 8 in the window
    first = window_index(0) - 8
    rows = with_values(normal_days("M1"), {first + k: 0.0 for k in range(16)})
    result = run(rows, [meter("M1")])
    flagged = [r["ts"] for r in rows_of(result, "M1") if r["vee_rules"] == ["zero_run"]]
    assert flagged == [at(WINDOW_DAY, 0, 15 * k) for k in range(8)]
    # the same 8 window zeros without the context zeros are no run
    rows = with_values(normal_days("M1"), {window_index(0) + k: 0.0 for k in range(8)})
    assert run(rows, [meter("M1")]).flags_by_rule["zero_run"] == 0


def test_runs_do_not_apply_to_the_received_channel():
    night = {window_index(0) + k: 0.0 for k in range(24)} | {
        window_index(20) + k: 0.0 for k in range(16)
    }
    rows = normal_days("S1") + with_values(
        normal_days("S1", channel="received", source_file="r.csv"), night
    )
    result = run(rows, [meter("S1", has_solar=True)])
    assert result.flags_by_rule["zero_run"] == 0
    assert {r["quality"] for r in rows_of(result, "S1", "received")} == {"A"}


# =========================================================================================
# gaps and estimation
# =========================================================================================


def test_linear_estimate_values():
    i = window_index(10)
    rows = without(normal_days("M1"), i, i + 1)
    result = run(rows, [meter("M1")])
    got = by_ts(result, "M1")
    before, after = load(39), load(42)  # 09:45 and 10:30
    first, second = got[at(WINDOW_DAY, 10)], got[at(WINDOW_DAY, 10, 15)]
    assert first["kwh"] == pytest.approx(before + (after - before) / 3, rel=1e-12)
    assert second["kwh"] == pytest.approx(before + 2 * (after - before) / 3, rel=1e-12)
    for row in (first, second):
        assert (row["quality"], row["vee_rules"]) == ("E", ["estimate.linear"])
        assert row["kwh_raw"] is None and row["ts_raw"] is None and row["source_file"] is None
        assert row["interval_minutes"] == 15
    assert result.flags_by_rule["estimate.linear"] == 2
    s = suff(result, "M1")
    assert (s["actual"], s["estimated"], s["missing"], s["sufficiency"]) == (94, 2, 0, 94 / 96)


@pytest.mark.parametrize(("slots", "method"), [(8, "estimate.linear"), (9, "estimate.profile")])
def test_linear_limit_is_120_minutes(slots, method):
    i = window_index(10)
    rows = without(normal_days("M1"), *range(i, i + slots))
    result = run(rows, [meter("M1")])
    assert result.flags_by_rule[method] == slots
    assert len(rows_of(result, "M1")) == 96


def test_profile_estimate_is_the_mean_of_the_other_days():
    # three input days: two context days at 1x and 2x the load, the window day at 1x
    start = CONTEXT_DAY - dt.timedelta(days=1)
    rows = (
        normal_days("M1", start=start, days=1)
        + normal_days("M1", start=CONTEXT_DAY, days=1, scale=2.0)
        + normal_days("M1", start=WINDOW_DAY, days=1)
    )
    rows = [r for r in rows if not (at(WINDOW_DAY, 12) <= r["ts"] < at(WINDOW_DAY, 15))]  # 3 h
    result = run(rows, [meter("M1")])
    got = by_ts(result, "M1")
    for k in range(12):
        row = got[at(WINDOW_DAY, 12, 15 * k)]
        assert row["quality"] == "E" and row["vee_rules"] == ["estimate.profile"]
        assert row["kwh"] == pytest.approx(1.5 * load(48 + k), rel=1e-12)
    assert result.flags_by_rule["estimate.profile"] == 12


def test_profile_excludes_suspect_readings():
    start = CONTEXT_DAY - dt.timedelta(days=1)
    rows = normal_days("M1", start=start, days=3)
    # the first context day reads 0 from 11:00 to 16:00: a zero run (S), not profile material
    zero = {96 * 0 + 44 + k: 0.0 for k in range(20)}
    rows = with_values(rows, zero)
    rows = [r for r in rows if not (at(WINDOW_DAY, 12) <= r["ts"] < at(WINDOW_DAY, 15))]
    result = run(rows, [meter("M1")])
    row = by_ts(result, "M1")[at(WINDOW_DAY, 12)]
    assert row["kwh"] == pytest.approx(load(48), rel=1e-12)  # the other context day only


def test_too_long_gap_stays_missing():
    rows = [r for r in normal_days("M1") if r["ts"] < at(CONTEXT_DAY, 12)]
    result = run(rows, [meter("M1")])
    assert rows_of(result, "M1") == []
    s = suff(result, "M1")
    assert (s["expected"], s["actual"], s["estimated"], s["missing"]) == (96, 0, 0, 96)
    assert s["sufficiency"] == 0.0


def test_gap_without_profile_stays_missing():
    # only the window day exists: a 3-hour gap has no other day to take a profile from
    rows = normal_days("M1", start=WINDOW_DAY, days=1)
    rows = [r for r in rows if not (at(WINDOW_DAY, 12) <= r["ts"] < at(WINDOW_DAY, 15))]
    s = suff(run(rows, [meter("M1")]), "M1")
    assert (s["actual"], s["estimated"], s["missing"]) == (84, 0, 12)


def test_no_estimation_over_or_next_to_suspect_rows():
    # zeros 00:00-04:00, a 30-minute gap, zeros 04:30-08:30: two zero runs (S) around the gap
    base = window_index(0)
    zeros = {base + k: 0.0 for k in range(34)}
    rows = without(with_values(normal_days("M1"), zeros), base + 16, base + 17)
    result = run(rows, [meter("M1")])
    out = by_ts(result, "M1")
    assert at(WINDOW_DAY, 4) not in out and at(WINDOW_DAY, 4, 15) not in out
    assert result.flags_by_rule["zero_run"] == 32
    assert result.flags_by_rule["estimate.linear"] == result.flags_by_rule["estimate.profile"] == 0
    assert all(out[at(WINDOW_DAY, 0, 15 * k)]["kwh"] == 0.0 for k in range(16))
    s = suff(result, "M1")
    assert (s["suspect"], s["missing"], s["estimated"]) == (32, 2, 0)


def test_gap_crossing_midnight_is_measured_over_the_context():
    # missing from 23:00 context day to 00:30 window day: 90 minutes -> linear
    rows = [
        r for r in normal_days("M1") if not (at(CONTEXT_DAY, 23) <= r["ts"] < at(WINDOW_DAY, 0, 30))
    ]
    result = run(rows, [meter("M1")])
    assert result.flags_by_rule["estimate.linear"] == 2  # only window slots are output
    # missing from 20:00 context day to 00:30: 4.5 hours -> profile, not linear
    rows = [
        r for r in normal_days("M1") if not (at(CONTEXT_DAY, 20) <= r["ts"] < at(WINDOW_DAY, 0, 30))
    ]
    result = run(rows, [meter("M1")])
    assert result.flags_by_rule["estimate.linear"] == 0


def test_sufficiency_counts():
    rows = normal_days("M1")
    i10, i3, i15 = window_index(10), window_index(3), window_index(15)
    rows = with_values(rows, {i3: load(12) * 1000, i15: 3.0})  # unit error, spike
    rows = without(rows, i10, i10 + 1, i15 + 1)  # a short gap; a slot next to the spike
    result = run(rows, [meter("M1"), meter("IDLE")])
    s = suff(result, "M1")
    assert s == {
        "meter_id": "M1",
        "channel": "delivered",
        "local_day": dt.date(2026, 6, 10),
        "expected": 96,
        "actual": 91,
        "estimated": 2,
        "edited": 1,
        "suspect": 1,
        "missing": 1,
        "sufficiency": 91 / 96,
    }
    idle = suff(result, "IDLE")
    assert (idle["expected"], idle["actual"], idle["missing"]) == (96, 0, 96)
    estimated = result.flags_by_rule["estimate.linear"] + result.flags_by_rule["estimate.profile"]
    assert result.rows_in - sum(result.rows_dropped.values()) + estimated == result.rows_out


def test_received_channel_expected_only_for_solar_meters_with_export_data():
    rows = normal_days("S1") + normal_days("S2")
    rows += normal_days("S1", channel="received", source_file="r.csv")
    meters = [meter("S1", has_solar=True), meter("S2", has_solar=True), meter("P1")]
    result = run(rows, meters)
    channels = {(r["meter_id"], r["channel"]) for r in result.sufficiency.to_pylist()}
    assert channels == {
        ("S1", "delivered"),
        ("S1", "received"),
        ("S2", "delivered"),
        ("P1", "delivered"),
    }
    result = run(rows, meters, config=VeeConfig(received_requires_data=False))
    s2 = suff(result, "S2", "received")
    assert (s2["expected"], s2["missing"]) == (96, 96)
    assert ("P1", "received") not in {
        (r["meter_id"], r["channel"]) for r in result.sufficiency.to_pylist()
    }


# =========================================================================================
# DST local days (Europe/Berlin)
# =========================================================================================

BERLIN = ZoneInfo("Europe/Berlin")


def local_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=BERLIN).astimezone(UTC)


@pytest.mark.parametrize(
    ("day", "quarters"), [(dt.date(2026, 3, 29), 92), (dt.date(2026, 10, 25), 100)]
)
def test_dst_days_complete(day, quarters):
    start = local_midnight(day - dt.timedelta(days=1))
    end = local_midnight(day + dt.timedelta(days=1))
    n = int((end - start) / Q)
    rows = series("M1", start, [load(i) for i in range(n)])
    result = run(rows, [meter("M1")], day=local_midnight(day), tz="Europe/Berlin")
    out = rows_of(result, "M1")
    assert len(out) == quarters
    assert len({r["ts"] for r in out}) == quarters
    assert {r["quality"] for r in out} == {"A"}
    assert not any(result.flags_by_rule.values())
    s = suff(result, "M1")
    assert s["local_day"] == day
    assert (s["expected"], s["actual"], s["missing"]) == (quarters, quarters, 0)


def test_dst_repeated_hour_gap_is_estimated_without_duplicates():
    day = dt.date(2026, 10, 25)
    start = local_midnight(day - dt.timedelta(days=1))
    end = local_midnight(day + dt.timedelta(days=1))
    n = int((end - start) / Q)
    rows = series("M1", start, [load(i) for i in range(n)])
    # the second 02:00-02:15 local (CET, 01:00 and 01:15 UTC) is missing
    second = dt.datetime(2026, 10, 25, 1, tzinfo=UTC)
    rows = [r for r in rows if r["ts"] not in (second, second + Q)]
    result = run(rows, [meter("M1")], day=local_midnight(day), tz="Europe/Berlin")
    got = by_ts(result, "M1")
    assert len(got) == 100
    assert got[second]["quality"] == got[second + Q]["quality"] == "E"
    first = dt.datetime(2026, 10, 25, 0, tzinfo=UTC)  # 02:00 CEST, the first 02:00
    assert got[first]["quality"] == "A"
    assert result.flags_by_rule["duplicate"] == 0
    s = suff(result, "M1")
    assert (s["expected"], s["actual"], s["estimated"]) == (100, 98, 2)


def test_dst_spring_day_expected_count_with_gap():
    day = dt.date(2026, 3, 29)
    start = local_midnight(day - dt.timedelta(days=1))
    end = local_midnight(day + dt.timedelta(days=1))
    rows = series("M1", start, [load(i) for i in range(int((end - start) / Q))])
    rows = [r for r in rows if r["ts"] < local_midnight(day) + dt.timedelta(hours=20)]
    result = run(rows, [meter("M1")], day=local_midnight(day), tz="Europe/Berlin")
    s = suff(result, "M1")
    assert s["expected"] == 92
    assert s["actual"] == 80
    assert s["estimated"] + s["missing"] == 12


# =========================================================================================
# determinism
# =========================================================================================


def messy_rows() -> list[dict]:
    rows = with_values(normal_days("M1"), {window_index(3): 300.0, window_index(15): 3.0})
    rows = without(rows, window_index(10), window_index(10) + 1, window_index(20))
    rows += [
        reading("M1", at(WINDOW_DAY, 12), 0.9, source_file="b.csv", landed_at=LANDED + Q),
        reading("M1", at(WINDOW_DAY, 12), 0.8, source_file="c.csv", landed_at=LANDED + Q),
        reading("M1", at(WINDOW_DAY, 20, 4), 0.5),
        reading("M1", at(WINDOW_DAY, 13, 2), 0.5),
    ]
    rows += with_values(normal_days("S1", scale=2.0), {window_index(12): -50.0})
    rows += without(normal_days("S1", channel="received", source_file="r.csv"), *range(120, 140))
    rows += with_values(normal_days("Z1"), {k: 0.0 for k in range(90, 130)})
    rows += normal_days("GHOST")
    return rows


def test_same_input_gives_identical_output():
    meters = [meter("M1"), meter("S1", has_solar=True), meter("Z1", customer_class="commercial")]
    first = run(messy_rows(), meters)
    second = run(messy_rows(), meters)
    assert _plain(first.cleaned).equals(_plain(second.cleaned))
    assert first.sufficiency.equals(second.sufficiency)
    assert first.flags_by_rule == second.flags_by_rule
    fired = {name for name, count in first.flags_by_rule.items() if count}
    assert {"duplicate", "alignment", "unit.wh_as_kwh", "spike", "limit.low", "zero_run"} <= fired
    assert {"estimate.linear", "estimate.profile"} <= fired


def test_shuffled_input_gives_identical_output():
    meters = [meter("M1"), meter("S1", has_solar=True), meter("Z1", customer_class="commercial")]
    expected = run(messy_rows(), meters)
    for seed in range(3):
        rows = messy_rows()
        random.Random(seed).shuffle(rows)
        shuffled_meters = meters_table(*random.Random(seed).sample(meters, len(meters)))
        result = run(rows, shuffled_meters)
        assert _plain(result.cleaned).equals(_plain(expected.cleaned))
        assert result.sufficiency.equals(expected.sufficiency)
        assert result.flags_by_rule == expected.flags_by_rule


# =========================================================================================
# inputs
# =========================================================================================


def test_chunked_and_nanosecond_input_is_accepted():
    table = readings_table(normal_days("M1"))
    chunked = pa.concat_tables([table.slice(0, 50), table.slice(50)])
    expected = run(table, [meter("M1")]).cleaned
    assert _plain(run(chunked, [meter("M1")]).cleaned).equals(_plain(expected))
    nanos = table.set_column(1, "ts", table["ts"].cast(pa.timestamp("ns", tz="UTC")))
    assert _plain(run(nanos, [meter("M1")]).cleaned).equals(_plain(expected))


def test_chunked_input_with_late_redeliveries_matches_the_sorted_input():
    # as the lake holds it: sorted rows in several chunks, a later file's re-deliveries last
    rows = normal_days("M1") + normal_days("M2")
    late = [
        dict(rows[i], kwh=rows[i]["kwh"] * 1.02, source_file="late.csv", landed_at=LANDED + Q)
        for i in (3, 100, 150, 300)
    ]
    table = readings_table(rows + late)
    chunked = pa.concat_tables([table.slice(k, 70) for k in range(0, table.num_rows, 70)])
    in_order = readings_table(sorted(rows + late, key=lambda r: (r["meter_id"], r["ts"])))
    meters = [meter("M1"), meter("M2")]
    result = run(chunked, meters)
    assert _plain(result.cleaned).equals(_plain(run(in_order, meters).cleaned))
    assert result.flags_by_rule["duplicate"] == 3  # one re-delivery is in the context day
    late_rows = [r for r in result.cleaned.to_pylist() if r["source_file"] == "late.csv"]
    assert len(late_rows) == 3
    assert all(r["vee_rules"] == ["duplicate"] for r in late_rows)


def test_window_without_readings_is_estimated_from_the_context_profile():
    result = run(normal_days("M1", days=1), [meter("M1")])
    got = rows_of(result, "M1")
    assert len(got) == 96
    assert {r["vee_rules"][0] for r in got} == {"estimate.profile"}
    assert all(r["source_file"] is None and r["kwh_raw"] is None for r in got)
    assert [r["kwh"] for r in got] == pytest.approx([load(i) for i in range(96)], rel=1e-12)
    assert suff(result, "M1")["estimated"] == 96


def test_minimal_meters_table_is_enough():
    minimal = pa.table(
        {
            "meter_id": ["M1"],
            "customer_class": ["residential"],
            "has_solar": [False],
            "installed_at": pa.array([dt.datetime(2020, 1, 1, tzinfo=UTC)], pa.timestamp("us")),
        }
    )
    result = run(normal_days("M1"), minimal)
    assert result.rows_out == 96 and {r["quality"] for r in rows_of(result)} == {"A"}


def test_naive_window_bounds_are_rejected():
    with pytest.raises(ValueError, match="timezone-aware"):
        apply(
            readings_table(normal_days("M1")),
            meters_table(meter("M1")),
            window_start=dt.datetime(2026, 6, 10),
            window_end=dt.datetime(2026, 6, 11),
            tz="UTC",
            as_of=dt.datetime(2026, 6, 12, tzinfo=UTC),
        )


def test_config_is_hashable_and_comparable():
    assert hash(VeeConfig()) == hash(VeeConfig()) and VeeConfig() == VeeConfig()
    assert VeeConfig(spike_z=9) != VeeConfig()


def test_dst_profile_leaves_out_the_first_of_the_repeated_hours():
    # context day at 2x, window day (25 h) at 1x the load, both by local time of day
    day = dt.date(2026, 10, 25)
    start = local_midnight(day - dt.timedelta(days=1))
    window = local_midnight(day)
    end = local_midnight(day + dt.timedelta(days=1))
    rows = []
    ts = start
    while ts < end:
        local = ts.astimezone(BERLIN)
        scale = 2.0 if ts < window else 1.0
        rows.append(reading("M1", ts, scale * load(local.hour * 4 + local.minute // 15)))
        ts += Q
    gap_start = dt.datetime(2026, 10, 25, 1, tzinfo=UTC)  # the second 02:00 local (CET)
    rows = [r for r in rows if not (gap_start <= r["ts"] < gap_start + 12 * Q)]  # 3 hours
    result = run(rows, [meter("M1")], day=window, tz="Europe/Berlin")
    got = by_ts(result, "M1")
    assert len(got) == 100
    for k in range(12):
        local = (gap_start + k * Q).astimezone(BERLIN)
        row = got[gap_start + k * Q]
        assert row["vee_rules"] == ["estimate.profile"]
        # only the context day counts, not the window day's first 02:00-03:00 (CEST)
        assert row["kwh"] == pytest.approx(2 * load(local.hour * 4 + local.minute // 15))


def test_solar_meter_importing_nothing_while_exporting_is_no_zero_run():
    midday = {window_index(10) + k: 0.0 for k in range(24)}  # 10:00-16:00
    export = {window_index(10) + k: 0.5 + 0.01 * k for k in range(24)}
    rows = with_values(normal_days("S1"), midday) + with_values(
        normal_days("S1", channel="received", source_file="r.csv"), export
    )
    result = run(rows, [meter("S1", has_solar=True)])
    assert result.flags_by_rule["zero_run"] == 0
    # an outage reads zero on both channels: a zero run on delivered
    rows = with_values(normal_days("S1"), midday) + with_values(
        normal_days("S1", channel="received", source_file="r.csv"), dict.fromkeys(midday, 0.0)
    )
    result = run(rows, [meter("S1", has_solar=True)])
    assert result.flags_by_rule["zero_run"] == 24
    assert {r["quality"] for r in rows_of(result, "S1", "received")} == {"A"}


def test_meter_shards_clean_to_the_unsharded_result():
    """Meters with gaps, a spike, a zero run, a duplicate, a solar received channel, a meter
    with no readings and readings of an unknown meter, in two tables (context day and window
    day, the second unsorted): any number of shards concatenates to the one-shot result."""
    from smartgrid_assets.vee import meter_shards

    rows = []
    for k in range(12):
        rows += normal_days(f"M{k:02d}", scale=1 + k / 10)
    rows = with_values(rows, {96 + 40: 30.0, 300: 0.0})
    rows = without(rows, *range(96 * 2 + 10, 96 * 2 + 14))
    rows += [reading("M05", at(WINDOW_DAY, 8), 9.9, landed_at=LANDED + dt.timedelta(hours=1))]
    rows += normal_days("M07", channel="received", scale=0.5)
    rows += normal_days("X99")  # not in the registry
    registry = meters_table(
        *[meter(f"M{k:02d}", has_solar=k == 7) for k in range(12)], meter("M12")
    )
    table = readings_table(rows)
    context = table.filter(pa.compute.less(table["ts"], pa.scalar(WINDOW_DAY)))
    window = table.filter(pa.compute.greater_equal(table["ts"], pa.scalar(WINDOW_DAY)))
    window = window.take(pa.array(list(reversed(range(window.num_rows)))))
    whole = run(pa.concat_tables([context, window]), registry)
    assert whole.rows_dropped["unknown_meter"] == 96
    for count in (1, 2, 5, 13, 40):
        shards = meter_shards([context, window], registry, count)
        assert len(shards) == min(count, 13)
        results = [run(shard.readings, shard.meters) for shard in shards]
        cleaned = pa.concat_tables([r.cleaned for r in results])
        assert _plain(cleaned).equals(_plain(whole.cleaned)), count
        assert pa.concat_tables([r.sufficiency for r in results]).equals(whole.sufficiency)
        assert sum(r.rows_in for r in results) == whole.rows_in
        assert sum(r.rows_dropped["unknown_meter"] for r in results) == 96
        flags = {rule: sum(r.flags_by_rule.get(rule, 0) for r in results) for rule in RULES}
        assert {k: v for k, v in flags.items() if v} == {
            k: v for k, v in whole.flags_by_rule.items() if v
        }
