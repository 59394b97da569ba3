"""Bring your own export (`smartgrid land`): column mapping, units, time labels, time zones and
DST, wide files, interval inference, registry of unknown meters, bad input; then the real public
files in ../shared/data and one end-to-end run with --materialize."""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from smartgrid_assets import cli, contract
from smartgrid_assets.ingest.byo import (
    CANONICAL,
    LANDED,
    ByoError,
    Conversion,
    ExportSpec,
    convert,
    current_registry,
    land,
)
from smartgrid_assets.ingest.files import parse
from smartgrid_assets.landing import LocalLandingZone

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
NY = "America/New_York"


def _csv(text: str) -> bytes:
    return "\n".join(line.strip() for line in text.strip().splitlines()).encode() + b"\n"


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _rows(conv: Conversion) -> list[tuple]:
    return [
        (r["meter_id"], r["ts"], r["interval_minutes"], r["channel"], r["kwh"])
        for r in conv.readings.to_pylist()
    ]


SINGLE = ExportSpec(time_col="t", value_col="v", meter_id="M1")


# ---- units and time labels ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "kwh"),
    [
        ("Wh", 0.4),
        ("kWh", 400.0),
        ("MWh", 400_000.0),
        ("W", 0.1),  # 400 W for 15 min = 100 Wh
        ("kW", 100.0),
        ("MW", 100_000.0),
        ("mwh", 400_000.0),  # units are matched without regard to case
    ],
)
def test_units_become_kwh_per_interval(unit: str, kwh: float) -> None:
    data = _csv(
        """
        t,v
        2026-03-16T00:00:00Z,400
        2026-03-16T00:15:00Z,400
        """
    )
    conv = convert(data, "u.csv", ExportSpec(time_col="t", value_col="v", meter_id="M", unit=unit))
    assert conv.readings["kwh"].to_pylist() == pytest.approx([kwh, kwh])
    assert conv.readings["interval_minutes"].to_pylist() == [15, 15]
    assert conv.kwh_total == pytest.approx(2 * kwh)


def test_unknown_unit_is_a_one_line_error_naming_the_file() -> None:
    data = _csv("t,v\n2026-03-16T00:00:00Z,1")
    with pytest.raises(ByoError) as err:
        convert(data, "u.csv", ExportSpec(time_col="t", value_col="v", meter_id="M", unit="kWatt"))
    message = str(err.value)
    assert message.startswith("file u.csv field v (--unit): expected one of Wh, kWh")
    assert "found 'kWatt'" in message
    assert "\n" not in message


def test_time_label_end_gives_interval_starts() -> None:
    data = _csv(
        """
        t,v
        2026-03-16 00:15,1
        2026-03-16 00:30,2
        2026-03-16 00:45,3
        """
    )
    conv = convert(
        data, "e.csv", ExportSpec(time_col="t", value_col="v", meter_id="M", time_label="end")
    )
    assert conv.readings["ts"].to_pylist() == [
        _utc("2026-03-16 00:00"),
        _utc("2026-03-16 00:15"),
        _utc("2026-03-16 00:30"),
    ]


def test_canonical_columns_and_types() -> None:
    conv = convert(_csv("t,v\n2026-03-16T00:00:00Z,1\n2026-03-16T01:00:00Z,2"), "c.csv", SINGLE)
    assert conv.readings.schema == CANONICAL
    assert conv.readings.column_names == ["meter_id", "ts", "interval_minutes", "channel", "kwh"]
    assert conv.readings.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert conv.readings.schema.field("interval_minutes").type == pa.int32()
    # what lands is what the readings ingestion reads
    parsed = parse("readings", "readings/x/c.parquet", conv.parquet_bytes(), _utc("2026-03-20"))
    assert parsed.table.num_rows == 2 and parsed.rejected.num_rows == 0


# ---- time zones and DST ---------------------------------------------------------------------


def test_fall_back_repeated_hour_is_resolved_through_utc_by_order() -> None:
    data = _csv(
        """
        t,v
        2017-11-05 00:00,1
        2017-11-05 01:00,2
        2017-11-05 01:00,3
        2017-11-05 02:00,4
        """
    )
    conv = convert(data, "fb.csv", ExportSpec(time_col="t", value_col="v", meter_id="M", tz=NY))
    assert _rows(conv) == [
        ("M", _utc("2017-11-05 04:00"), 60, "delivered", 1.0),
        ("M", _utc("2017-11-05 05:00"), 60, "delivered", 2.0),  # 01:00 EDT, before the change
        ("M", _utc("2017-11-05 06:00"), 60, "delivered", 3.0),  # 01:00 EST, after it
        ("M", _utc("2017-11-05 07:00"), 60, "delivered", 4.0),
    ]
    assert any("1 repeated local times" in n for n in conv.notes)


def test_fall_back_quarter_hours_each_series_by_its_own_order() -> None:
    local = pd.date_range("2017-11-05 04:00", periods=12, freq="15min", tz="UTC").tz_convert(NY)
    lines = ["meter,t,v"]
    for meter in ("A", "B"):
        lines += [f"{meter},{ts.strftime('%Y-%m-%d %H:%M')},{i}" for i, ts in enumerate(local)]
    conv = convert(
        "\n".join(lines).encode(),
        "q.csv",
        ExportSpec(time_col="t", value_col="v", meter_col="meter", tz=NY),
    )
    for meter in ("A", "B"):
        mine = conv.readings.filter(pc.equal(conv.readings["meter_id"], meter))
        assert mine["ts"].to_pylist() == [t.to_pydatetime() for t in local.tz_convert("UTC")]
        assert mine["kwh"].to_pylist() == [float(i) for i in range(12)]
    assert any("4 repeated local times" in n for n in conv.notes)


def _fall_back_export(meters: int = 5) -> tuple[pd.DataFrame, dict[float, datetime]]:
    """15-min readings of `meters` meters over the New York fall-back night, written in time
    order as head-ends do, with local wall-clock times; each value -> its true UTC start."""
    utc = pd.date_range("2017-11-05 03:00", "2017-11-05 08:45", freq="15min", tz="UTC")
    frame = pd.DataFrame(
        {
            "meter": np.repeat([f"M{m}" for m in range(meters)], len(utc)),
            "t": np.tile(utc.tz_convert(NY).strftime("%Y-%m-%d %H:%M"), meters),
            "v": np.arange(meters * len(utc), dtype=float),
        }
    )
    truth = dict(zip(frame["v"], np.tile(utc.to_pydatetime(), meters), strict=True))
    return frame, truth


def _fall_back_convert(frame: pd.DataFrame, fold: str = "order") -> Conversion:
    spec = ExportSpec(time_col="t", value_col="v", meter_col="meter", tz=NY, dst_fold=fold)
    return convert(frame.to_csv(index=False).encode(), "fb.csv", spec)


def _placements(conv: Conversion, truth: dict[float, datetime]) -> tuple[int, int]:
    """(right, wrong) interval starts of the landed readings."""
    readings = conv.readings
    got = list(zip(readings["kwh"].to_pylist(), readings["ts"].to_pylist(), strict=True))
    wrong = sum(truth[kwh] != ts for kwh, ts in got)
    return len(got) - wrong, wrong


def test_fall_back_in_a_file_in_time_order_is_placed_by_its_order() -> None:
    frame, truth = _fall_back_export()
    repeated = frame["t"].str.contains(" 01:").sum()
    assert repeated == 40  # 4 quarter hours twice, 5 meters
    conv = _fall_back_convert(frame)
    assert _placements(conv, truth) == (len(frame), 0)
    assert conv.bad_rows == 0 and conv.rejected.num_rows == 0
    assert any(n.startswith("4 repeated local times at the DST fall-back") for n in conv.notes)
    # sorted by wall time instead (the two 01:00 side by side): the first is before the change
    by_wall = frame.sort_values(["meter", "t"], kind="stable")
    assert _placements(_fall_back_convert(by_wall), truth) == (len(frame), 0)


def test_fall_back_in_a_shuffled_file_is_never_placed_by_its_order() -> None:
    frame, truth = _fall_back_export()
    shuffled = frame.sample(frac=1.0, random_state=7).reset_index(drop=True)
    conv = _fall_back_convert(shuffled)
    right, wrong = _placements(conv, truth)
    assert wrong == 0
    repeated = shuffled["t"].str.contains(" 01:")
    assert right == len(frame) - repeated.sum()
    # every repeated-hour reading is either placed right or rejected, saying why
    rejected = conv.rejected.to_pylist()
    assert sorted(r["source_row"] for r in rejected) == sorted(
        (np.flatnonzero(repeated) + 1).tolist()
    )
    for r in rejected:
        clock = shuffled["t"][r["source_row"] - 1]
        assert r["rejected_field"] == "t" and r["rejected_value"] == clock
        assert r["rejected_reason"] == (
            f"an unambiguous local time: {clock[11:]} occurs twice on 2017-11-05 in {NY} and "
            "the file is not in time order; pass --dst-fold first|second"
        )
        assert r["ts"] is None and r["meter_id"] == shuffled["meter"][r["source_row"] - 1]
        assert r["kwh"] == shuffled["v"][r["source_row"] - 1]
    assert conv.bad_rows == 40
    assert conv.bad_examples[0].startswith(
        f"file fb.csv row {rejected[0]['source_row']} field t: expected an unambiguous local time"
    )


def test_dst_fold_first_second_and_reject() -> None:
    frame, truth = _fall_back_export(meters=1)
    first_hour = frame.iloc[:12]  # 23:00..01:45 EDT
    second_hour = pd.concat([frame.iloc[:4], frame.iloc[12:]])  # 23:00 EDT, then from 01:00 EST
    assert _placements(_fall_back_convert(first_hour, "first"), truth) == (12, 0)
    assert _placements(_fall_back_convert(second_hour, "second"), truth) == (len(second_hour), 0)
    conv = _fall_back_convert(second_hour.sample(frac=1.0, random_state=1), "second")
    assert _placements(conv, truth) == (len(second_hour), 0)  # whatever the order
    assert "4 readings at repeated local times in America/New_York taken as after it " in (
        " ".join(conv.notes)
    )
    # in time order, but each repeated time once: the order cannot tell which, so no guess
    conv = _fall_back_convert(second_hour)
    assert _placements(conv, truth) == (len(second_hour) - 4, 0)
    assert conv.rejected["rejected_reason"].to_pylist()[0] == (
        f"an unambiguous local time: 01:00 occurs twice on 2017-11-05 in {NY} and the file has "
        "it once (its order cannot tell which); pass --dst-fold first|second"
    )
    conv = _fall_back_convert(frame, "reject")
    assert _placements(conv, truth) == (len(frame) - 8, 0)
    assert conv.rejected.num_rows == 8
    assert set(conv.rejected["rejected_reason"].to_pylist()) == {
        f"an unambiguous local time: 01:{m} occurs twice on 2017-11-05 in {NY} (--dst-fold reject)"
        for m in ("00", "15", "30", "45")
    }
    with pytest.raises(ByoError, match=r"field t \(--dst-fold\): expected one of order, first"):
        _fall_back_convert(frame, "guess")


def test_explicit_offsets_are_used_as_they_are() -> None:
    data = _csv(
        """
        t,v
        2017-11-05 01:00-04:00,1
        2017-11-05 01:00-05:00,2
        2017-11-05T07:00:00Z,3
        """
    )
    conv = convert(data, "o.csv", ExportSpec(time_col="t", value_col="v", meter_id="M", tz=NY))
    assert conv.readings["ts"].to_pylist() == [
        _utc("2017-11-05 05:00"),
        _utc("2017-11-05 06:00"),
        _utc("2017-11-05 07:00"),
    ]


def test_spring_forward_missing_local_time_is_a_bad_row() -> None:
    data = _csv(
        """
        t,v
        2017-03-12 01:00,1
        2017-03-12 02:00,2
        2017-03-12 03:00,3
        2017-03-12 04:00,4
        """
    )
    conv = convert(data, "sf.csv", ExportSpec(time_col="t", value_col="v", meter_id="M", tz=NY))
    assert conv.readings["ts"].to_pylist() == [
        _utc("2017-03-12 06:00"),
        _utc("2017-03-12 07:00"),  # 03:00 EDT follows 01:00 EST directly
        _utc("2017-03-12 08:00"),
    ]
    assert conv.bad_rows == 1
    assert conv.bad_examples == [
        "file sf.csv row 2 field t: expected a local time that exists in America/New_York "
        "(the clocks skip it at the spring-forward change), found '2017-03-12 02:00'"
    ]


def test_hour_ending_labels_across_both_dst_changes() -> None:
    # Hour-ending numbering (HE): HE03 (the hour starting 02:00) does not exist in spring,
    # HE02 repeats in autumn.
    data = _csv(
        """
        t,v
        2017-03-12 01:00,1
        2017-03-12 02:00,2
        2017-03-12 04:00,3
        2017-11-05 01:00,4
        2017-11-05 02:00,5
        2017-11-05 02:00,6
        2017-11-05 03:00,7
        """
    )
    spec = ExportSpec(time_col="t", value_col="v", meter_id="M", tz=NY, time_label="end")
    conv = convert(data, "he.csv", spec)
    assert conv.readings["ts"].to_pylist() == [
        _utc("2017-03-12 05:00"),
        _utc("2017-03-12 06:00"),
        _utc("2017-03-12 07:00"),
        _utc("2017-11-05 04:00"),
        _utc("2017-11-05 05:00"),
        _utc("2017-11-05 06:00"),
        _utc("2017-11-05 07:00"),
    ]
    assert conv.bad_rows == 0


def test_end_labelled_instant_after_the_spring_gap_is_placed_by_its_label() -> None:
    # 15-min readings labelled by their end instant: 03:00 EDT ends the interval 01:45 EST.
    data = _csv(
        """
        t,v
        2017-03-12 01:45,1
        2017-03-12 03:00,2
        2017-03-12 03:15,3
        """
    )
    spec = ExportSpec(time_col="t", value_col="v", meter_id="M", tz=NY, time_label="end")
    conv = convert(data, "gap.csv", spec)
    assert conv.readings["ts"].to_pylist() == [
        _utc("2017-03-12 06:30"),
        _utc("2017-03-12 06:45"),
        _utc("2017-03-12 07:00"),
    ]
    assert any("spring-forward gap" in n for n in conv.notes)


def test_day_first_dates_are_detected_when_the_data_decides() -> None:
    data = _csv(
        """
        t,v
        12-01-2017 23:00,1
        13-01-2017 00:00,2
        """
    )
    conv = convert(data, "d.csv", SINGLE)
    assert conv.readings["ts"].to_pylist() == [_utc("2017-01-12 23:00"), _utc("2017-01-13 00:00")]


def test_ambiguous_day_month_order_asks_for_a_time_format() -> None:
    data = _csv(
        """
        t,v
        01-02-2017 00:00,1
        01-02-2017 01:00,2
        """
    )
    with pytest.raises(ByoError, match=r"file a.csv field t: cannot tell day-first"):
        convert(data, "a.csv", SINGLE)
    spec = ExportSpec(time_col="t", value_col="v", meter_id="M", time_format="%m-%d-%Y %H:%M")
    conv = convert(data, "a.csv", spec)
    assert conv.readings["ts"].to_pylist()[0] == _utc("2017-01-02 00:00")


# ---- layouts: wide, meter id, received channel ----------------------------------------------


def test_wide_file_one_column_per_meter() -> None:
    data = _csv(
        """
        time,M2,M1
        2026-03-16T00:00:00Z,1,10
        2026-03-16T00:30:00Z,,20
        2026-03-16T01:00:00Z,3,30
        2026-03-16T01:30:00Z,4,40
        """
    )
    conv = convert(data, "w.csv", ExportSpec(time_col="time", wide=True))
    assert conv.meters == ["M1", "M2"]
    assert _rows(conv) == [
        ("M1", _utc("2026-03-16 00:00"), 30, "delivered", 10.0),
        ("M1", _utc("2026-03-16 00:30"), 30, "delivered", 20.0),
        ("M1", _utc("2026-03-16 01:00"), 30, "delivered", 30.0),
        ("M1", _utc("2026-03-16 01:30"), 30, "delivered", 40.0),
        ("M2", _utc("2026-03-16 00:00"), 30, "delivered", 1.0),
        ("M2", _utc("2026-03-16 01:00"), 30, "delivered", 3.0),
        ("M2", _utc("2026-03-16 01:30"), 30, "delivered", 4.0),
    ]
    assert "1 empty cells skipped (no reading)" in conv.notes
    assert "1 missing intervals inside the span of the data" in conv.notes


def test_wide_refuses_long_options() -> None:
    with pytest.raises(ByoError, match="--wide takes every column"):
        convert(
            b"t,M1\n2026-03-16T00:00:00Z,1\n",
            "w.csv",
            ExportSpec(time_col="t", value_col="M1", wide=True),
        )


def test_meter_id_for_a_single_series_and_meter_col_otherwise() -> None:
    data = _csv("t,v\n2026-03-16T00:00:00Z,1\n2026-03-16T01:00:00Z,2")
    assert convert(data, "s.csv", SINGLE).meters == ["M1"]
    with pytest.raises(ByoError, match="either --meter-col"):
        convert(data, "s.csv", ExportSpec(time_col="t", value_col="v"))
    long = _csv(
        """
        meter,t,v
        B, 2026-03-16T00:00:00Z ,1
        A,2026-03-16T00:00:00Z,2
        A,2026-03-16T01:00:00Z,3
        B,2026-03-16T01:00:00Z,4
        """
    )
    conv = convert(long, "l.csv", ExportSpec(time_col="t", value_col="v", meter_col="meter"))
    assert conv.meters == ["A", "B"]
    assert conv.readings["meter_id"].to_pylist() == ["A", "A", "B", "B"]


def test_received_column_is_a_second_channel() -> None:
    data = _csv(
        """
        meter,t,imp,exp
        S1,2026-03-16T00:00:00Z,1.5,0
        S1,2026-03-16T00:15:00Z,0.5,2
        """
    )
    spec = ExportSpec(time_col="t", value_col="imp", meter_col="meter", received_col="exp")
    conv = convert(data, "r.csv", spec)
    assert _rows(conv) == [
        ("S1", _utc("2026-03-16 00:00"), 15, "delivered", 1.5),
        ("S1", _utc("2026-03-16 00:15"), 15, "delivered", 0.5),
        ("S1", _utc("2026-03-16 00:00"), 15, "received", 0.0),
        ("S1", _utc("2026-03-16 00:15"), 15, "received", 2.0),
    ]
    assert conv.solar_meters == ["S1"]
    assert conv.kwh_by_channel() == {"delivered": 2.0, "received": 2.0}


def test_a_channel_column_keeps_its_labels() -> None:
    canonical = _csv(
        """
        meter_id,ts,interval_minutes,channel,kwh
        S1,2026-03-16T00:00:00Z,15,delivered,1.5
        S1,2026-03-16T00:00:00Z,15,received,0.5
        S1,2026-03-16T00:15:00Z,15,received,2
        """
    )
    spec = ExportSpec(time_col="ts", value_col="kwh", meter_col="meter_id")
    conv = convert(canonical, "c.csv", spec)
    assert _rows(conv) == [
        ("S1", _utc("2026-03-16 00:00"), 15, "delivered", 1.5),
        ("S1", _utc("2026-03-16 00:00"), 15, "received", 0.5),
        ("S1", _utc("2026-03-16 00:15"), 15, "received", 2.0),
    ]
    assert conv.solar_meters == ["S1"]
    assert "channels as labelled in the column 'channel'" in conv.notes


def test_channel_col_maps_labels_and_rejects_the_rest() -> None:
    data = _csv(
        """
        meter,t,dir,v
        S1,2026-03-16T00:00:00Z,Import,1
        S1,2026-03-16T00:00:00Z, EXPORT ,2
        S1,2026-03-16T00:15:00Z,delivered,3
        S1,2026-03-16T00:15:00Z,Received,4
        S1,2026-03-16T00:30:00Z,net,5
        """
    )
    spec = ExportSpec(time_col="t", value_col="v", meter_col="meter", channel_col="dir")
    conv = convert(data, "ch.csv", spec)
    assert [(r[3], r[4]) for r in _rows(conv)] == [
        ("delivered", 1.0),
        ("delivered", 3.0),
        ("received", 2.0),
        ("received", 4.0),
    ]
    (bad,) = conv.rejected.to_pylist()
    assert (bad["source_row"], bad["rejected_field"], bad["rejected_value"]) == (5, "dir", "net")
    assert bad["rejected_reason"] == "a channel: delivered or received (or import or export)"
    assert bad["channel"] is None and bad["kwh"] == 5.0 and bad["meter_id"] == "S1"
    with pytest.raises(ByoError, match=r"either --channel-col .* or --received-col"):
        convert(data, "ch.csv", replace(spec, received_col="v"))


def test_european_export_semicolons_decimal_commas_and_a_byte_order_mark() -> None:
    data = codecs.BOM_UTF8 + _csv(
        """
        Zähler;Zeit;kWh
        Z1;16.03.2026 00:00;1,5
        Z1;16.03.2026 00:15;0,25
        Z1;16.03.2026 00:30;1.250
        Z1;16.03.2026 00:45;-2
        """
    )
    spec = ExportSpec(
        time_col="Zeit", value_col="kWh", meter_col="Zähler", tz="Europe/Berlin", decimal=","
    )
    conv = convert(data, "de.csv", spec)  # ';' found in the header, the BOM not in a name
    assert conv.readings["kwh"].to_pylist() == [1.5, 0.25, -2.0]
    assert conv.readings["ts"].to_pylist()[0] == _utc("2026-03-15 23:00")
    (bad,) = conv.rejected.to_pylist()  # a point may be a thousands separator: not guessed
    assert (bad["source_row"], bad["rejected_value"]) == (3, "1.250")
    assert bad["rejected_reason"] == "a finite number with a decimal comma (--decimal ,)"
    # an explicit delimiter (any one character) wins over the header's
    piped = b"t|v\n2026-03-16T00:00:00Z|1,5\n2026-03-16T00:15:00Z|2\n"
    one = ExportSpec(time_col="t", value_col="v", meter_id="M", decimal=",")
    assert convert(piped, "p.csv", one).readings["kwh"].to_pylist() == [1.5, 2.0]
    with pytest.raises(ByoError, match="header field t: expected a column 't'"):
        convert(piped, "p.csv", replace(one, delimiter=";"))
    with pytest.raises(ByoError, match=r"\(--delimiter\): expected one character"):
        convert(piped, "p.csv", replace(one, delimiter=";;"))
    tabbed = b"t\tv\n2026-03-16T00:00:00Z\t1\n2026-03-16T00:15:00Z\t2\n"
    assert convert(tabbed, "t.csv", replace(one, delimiter="\\t")).rows_out == 2


def test_gzip_and_parquet_exports() -> None:
    text = _csv("t;v\n2026-03-16T00:00:00Z;1\n2026-03-16T00:05:00Z;2")  # ';' separated
    conv = convert(gzip.compress(text), "g.csv.gz", SINGLE)
    assert conv.readings["interval_minutes"].to_pylist() == [5, 5]
    table = pa.table(
        {
            "t": pa.array([datetime(2026, 3, 16, 1), datetime(2026, 3, 16, 2)], pa.timestamp("s")),
            "v": pa.array([1, 2], pa.int64()),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    spec = ExportSpec(
        time_col="t", value_col="v", meter_id="P", tz="Europe/Berlin", format="parquet"
    )
    conv = convert(sink.getvalue(), "export.bin", spec)
    assert conv.readings["ts"].to_pylist() == [_utc("2026-03-16 00:00"), _utc("2026-03-16 01:00")]


# ---- intervals ------------------------------------------------------------------------------


def test_interval_is_inferred_per_meter() -> None:
    lines = ["meter,t,v"]
    lines += [f"Q,2026-03-16T00:{m:02d}:00Z,1" for m in (0, 15, 30, 45)]
    lines += [f"H,2026-03-16T{h:02d}:00:00Z,1" for h in (0, 1, 2, 4)]  # one gap
    conv = convert(
        "\n".join(lines).encode(),
        "i.csv",
        ExportSpec(time_col="t", value_col="v", meter_col="meter"),
    )
    assert conv.intervals == {"H": 60, "Q": 15}
    assert "1 missing intervals inside the span of the data" in conv.notes


def test_interval_that_cannot_be_inferred_is_a_clear_error() -> None:
    daily = _csv("t,v\n2026-03-16T00:00:00Z,1\n2026-03-17T00:00:00Z,2\n2026-03-18T00:00:00Z,3")
    with pytest.raises(ByoError) as err:
        convert(daily, "d.csv", SINGLE)
    assert str(err.value) == (
        "file d.csv field t: cannot infer the interval of meter M1: its most common step is "
        "1440 minutes, expected one of 5, 10, 15, 30, 60; pass --interval-minutes"
    )
    with pytest.raises(ByoError, match="single timestamp"):
        convert(_csv("t,v\n2026-03-16T00:00:00Z,1"), "one.csv", SINGLE)
    spec = ExportSpec(time_col="t", value_col="v", meter_id="M1", interval_minutes=15)
    assert convert(_csv("t,v\n2026-03-16T00:00:00Z,1"), "one.csv", spec).intervals == {"M1": 15}
    with pytest.raises(ByoError, match="expected one of 5, 10, 15, 30, 60, found 7"):
        convert(
            daily,
            "d.csv",
            ExportSpec(time_col="t", value_col="v", meter_id="M1", interval_minutes=7),
        )


# ---- bad input ------------------------------------------------------------------------------


def test_missing_column_is_a_one_line_error() -> None:
    with pytest.raises(ByoError) as err:
        convert(_csv("t,value\n2026-03-16T00:00:00Z,1"), "x.csv", SINGLE)
    assert str(err.value) == (
        "file x.csv header field v: expected a column 'v' (--value-col), found t, value"
    )


def test_bad_rows_are_counted_with_examples_and_the_good_rows_kept() -> None:
    data = _csv(
        """
        meter,t,v
        M1,2026-03-16T00:00:00Z,1
        M1,2026-03-16T00:15:00Z,abc
        M1,yesterday,3
        ,2026-03-16T00:45:00Z,4
        M1,2026-03-16T01:00:00Z,
        M1,2026-03-16T01:15:00Z,inf
        M1,2026-03-16T01:30:00Z,7
        """
    )
    conv = convert(data, "b.csv", ExportSpec(time_col="t", value_col="v", meter_col="meter"))
    assert conv.rows_in == 7 and conv.rows_out == 2 and conv.bad_rows == 5
    assert conv.readings["kwh"].to_pylist() == [1.0, 7.0]
    assert conv.bad_examples == [
        "file b.csv row 2 field v: expected a finite number, found 'abc'",
        "file b.csv row 3 field t: expected a timestamp (ISO 8601), found 'yesterday'",
        "file b.csv row 4 field meter: expected a meter id, found an empty value",
        "file b.csv row 5 field v: expected a number, found an empty value",
        "file b.csv row 6 field v: expected a finite number, found 'inf'",
    ]
    assert "5 bad rows landed as rejected rows (they go to rejected_readings)" in conv.notes
    # every bad row lands, after the good ones, with its field, value as found and reason
    landed = pq.read_table(io.BytesIO(conv.parquet_bytes()))
    assert landed.schema == LANDED
    assert landed.num_rows == 7 and landed["source_row"].to_pylist() == [1, 7, 2, 3, 4, 5, 6]
    rejected = landed.slice(2).to_pylist()
    assert [
        (r["source_row"], r["rejected_field"], r["rejected_value"], r["rejected_reason"])
        for r in rejected
    ] == [
        (2, "v", "abc", "a finite number"),
        (3, "t", "yesterday", "a timestamp (ISO 8601)"),
        (4, "meter", None, "a meter id"),
        (5, "v", None, "a number"),
        (6, "v", "inf", "a finite number"),
    ]
    # the reading's columns where they are known
    assert [(r["meter_id"], r["ts"], r["channel"], r["kwh"]) for r in rejected] == [
        ("M1", _utc("2026-03-16 00:15"), "delivered", None),
        ("M1", None, "delivered", 3.0),
        (None, None, "delivered", 4.0),
        ("M1", _utc("2026-03-16 01:00"), "delivered", None),
        ("M1", _utc("2026-03-16 01:15"), "delivered", None),
    ]
    good = landed.slice(0, 2)
    assert good["rejected_reason"].null_count == 2
    assert good.select(CANONICAL.names).cast(CANONICAL).equals(conv.readings)


def test_rejected_rows_of_wide_and_two_channel_files() -> None:
    wide = _csv(
        """
        time,M2,M1
        2026-03-16T00:00:00Z,1,x
        2026-03-16T00:30:00Z,,20
        never,3,30
        """
    )
    conv = convert(wide, "w.csv", ExportSpec(time_col="time", wide=True, interval_minutes=30))
    assert conv.source_rows.to_pylist() == [2, 1]  # M1 at row 2, M2 at row 1
    assert [
        (r["source_row"], r["rejected_field"], r["rejected_value"], r["meter_id"], r["kwh"])
        for r in conv.rejected.to_pylist()
    ] == [(1, "M1", "x", "M1", None), (3, "time", "never", None, None)]
    two = _csv(
        """
        meter,t,imp,exp
        S1,2026-03-16T00:00:00Z,1.5,0
        S1,2026-03-16T00:15:00Z,0.5,bad
        S1,2026-03-16T00:30:00Z,0.5,1
        """
    )
    spec = ExportSpec(time_col="t", value_col="imp", meter_col="meter", received_col="exp")
    conv = convert(two, "r.csv", spec)
    assert conv.rows_out == 4  # a bad field spoils its whole row
    (bad,) = conv.rejected.to_pylist()
    assert bad == {
        "meter_id": "S1",
        "ts": _utc("2026-03-16 00:15"),
        "interval_minutes": 15,
        "channel": "received",
        "kwh": None,
        "source_row": 2,
        "rejected_field": "exp",
        "rejected_value": "bad",
        "rejected_reason": "a finite number",
    }


def test_a_file_without_one_good_row_is_refused() -> None:
    with pytest.raises(ByoError, match=r"^file n.csv row 1 field v: expected a finite number"):
        convert(_csv("t,v\n2026-03-16T00:00:00Z,x\n2026-03-16T00:15:00Z,y"), "n.csv", SINGLE)


def test_exact_duplicate_rows_are_dropped_and_reported() -> None:
    data = _csv(
        """
        t,v
        2026-03-16T00:00:00Z,1
        2026-03-16T00:00:00Z,1
        2026-03-16T00:30:00Z,2
        2026-03-16T00:30:00Z,5
        2026-03-16T01:00:00Z,3
        """
    )
    conv = convert(data, "dup.csv", SINGLE)
    assert conv.rows_out == 4 and conv.bad_rows == 0
    assert (
        "1 exact duplicate row (same meter, channel, interval and value) landed as rejected rows"
        in conv.notes
    )
    assert "1 duplicate intervals with different values kept (VEE flags them)" in conv.notes
    assert conv.source_rows.to_pylist() == [1, 3, 4, 5]
    (dup,) = conv.rejected.to_pylist()
    assert dup == {
        "meter_id": "M1",
        "ts": _utc("2026-03-16 00:00"),
        "interval_minutes": 30,
        "channel": "delivered",
        "kwh": 1.0,
        "source_row": 2,
        "rejected_field": "t",
        "rejected_value": "2026-03-16T00:00:00Z",
        "rejected_reason": "exact duplicate of row 1: same meter, channel, interval and value",
    }


# ---- landing and the registry ---------------------------------------------------------------

REGISTRY = (
    "meter_id,customer_class,transformer_id,feeder_id,substation_id,region,has_solar,"
    "multiplier,installed_at,removed_at,lat,lon\n"
    "K1,residential,T1,F1,S1,north,false,1.0,2026-01-01T00:00:00+00:00,,52.5,13.4\n"
)


def _zone(tmp_path: Path, registry: str | None = REGISTRY) -> LocalLandingZone:
    zone = LocalLandingZone(tmp_path / "landing")
    if registry:
        zone.put("registry/2026-01-01/meters.csv", registry.encode())
    return zone


def _export() -> Conversion:
    data = _csv(
        """
        meter,t,v
        K1,2026-03-16T00:00:00Z,1
        K1,2026-03-16T00:15:00Z,1
        N1,2026-03-16T00:15:00Z,-0.5
        N1,2026-03-16T00:30:00Z,1
        N2,2026-03-16T00:00:00Z,2
        N2,2026-03-16T00:15:00Z,2
        """
    )
    return convert(data, "mine.csv", ExportSpec(time_col="t", value_col="v", meter_col="meter"))


def test_unknown_meters_are_registered_in_a_full_registry_file(tmp_path: Path) -> None:
    zone = _zone(tmp_path)
    today = datetime.now(UTC).date().isoformat()
    result = land(zone, [_export()])
    assert result.new_meters == ["N1", "N2"]
    assert result.registry_base == "registry/2026-01-01/meters.csv"
    assert result.registry is not None
    assert result.registry.key == f"registry/{today}/meters_mine.csv"
    assert [r.key for r in result.readings] == [f"readings/{today}/mine.parquet"]
    # the new registry is the newest meters file, and it still holds the old meters
    base, _, known = current_registry(zone)
    assert base is not None and base.key == result.registry.key
    assert known == {"K1", "N1", "N2"}
    parsed = parse("meters", base.key, zone.read_bytes(base.key), base.last_modified)
    assert parsed.rejected.num_rows == 0
    rows = {r["meter_id"]: r for r in parsed.table.to_pylist()}
    assert rows["K1"]["customer_class"] == "residential" and rows["K1"]["lat"] == 52.5
    assert rows["N1"]["customer_class"] == "unknown"
    # one negative reading is no proof of generation (unknown is not solar): a backfeed or a
    # reversed CT is reverse_flow's to report
    assert rows["N1"]["has_solar"] is False
    assert rows["N2"]["has_solar"] is False
    assert rows["N1"]["installed_at"] == _utc("2026-03-16 00:15")
    assert rows["N1"]["multiplier"] == 1.0
    assert rows["N1"]["transformer_id"] is None and rows["N1"]["feeder_id"] is None
    landed = pq.read_table(io.BytesIO(zone.read_bytes(result.readings[0].key)))
    assert landed.schema == LANDED and landed.num_rows == 6


def test_strict_refuses_unknown_meters_and_lands_nothing(tmp_path: Path) -> None:
    zone = _zone(tmp_path)
    before = zone.list()
    with pytest.raises(ByoError) as err:
        land(zone, [_export()], strict=True)
    assert str(err.value) == (
        "--strict: 2 meters are not in the meter registry registry/2026-01-01/meters.csv: "
        "N1, N2; nothing landed"
    )
    assert zone.list() == before


def test_relanding_the_same_export_lands_nothing_new(tmp_path: Path) -> None:
    zone = _zone(tmp_path, registry=None)
    first = land(zone, [_export()])
    assert first.registry is not None and first.registry.status == "landed"
    assert first.registry_base is None
    files = zone.list()
    second = land(zone, [_export()])
    assert [r.status for r in second.readings] == ["unchanged"]
    assert second.registry is None and second.new_meters == []
    assert zone.list() == files
    assert _export().parquet_bytes() == _export().parquet_bytes()  # deterministic bytes


def test_a_changed_export_lands_beside_the_first_version(tmp_path: Path) -> None:
    zone = _zone(tmp_path)
    land(zone, [_export()])
    changed = convert(
        _csv("meter,t,v\nK1,2026-03-16T00:00:00Z,9\nK1,2026-03-16T00:15:00Z,9"),
        "mine.csv",
        ExportSpec(time_col="t", value_col="v", meter_col="meter"),
    )
    result = land(zone, [changed])
    assert result.readings[0].key.endswith("/mine_2.parquet")
    assert result.readings[0].status == "landed"
    assert "a different conversion of it landed earlier today" in result.notes[0]


# ---- the command ----------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SMARTGRID_HOME", str(tmp_path))
    for name in (
        "SMARTGRID_LANDING_URL",
        "SMARTGRID_LAKE_URL",
        "SMARTGRID_WAREHOUSE_URL",
        "DAGSTER_HOME",
    ):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_cli_bad_column_exits_2_with_one_line(home: Path, capsys: pytest.CaptureFixture) -> None:
    export = home / "x.csv"
    export.write_text("t,value\n2026-03-16T00:00:00Z,1\n")
    code = cli.main(["land", str(export), "--meter-id", "M", "--time-col", "t", "--value-col", "v"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == (
        "smartgrid land: file x.csv header field v: expected a column 'v' (--value-col), "
        "found t, value\n"
    )
    assert not (home / "landing").exists()


def test_cli_strict_refusal(home: Path, capsys: pytest.CaptureFixture) -> None:
    export = home / "x.csv"
    export.write_text("t,v\n2026-03-16T00:00:00Z,1\n2026-03-16T00:15:00Z,1\n")
    args = ["land", str(export), "--meter-id", "NEW", "--time-col", "t", "--value-col", "v"]
    assert cli.main([*args, "--strict"]) == 2
    assert "1 meter is not in a meter registry (none is landed): NEW" in capsys.readouterr().err
    assert not (home / "landing" / "readings").exists()


def test_cli_reports_bad_rows_and_json(home: Path, capsys: pytest.CaptureFixture) -> None:
    export = home / "x.csv"
    export.write_text(
        "t,v\n2026-03-16T00:00:00Z,1\n2026-03-16T00:15:00Z,oops\n2026-03-16T00:30:00Z,2\n"
    )
    args = ["land", str(export), "--meter-id", "M", "--time-col", "t", "--value-col", "v"]
    assert cli.main([*args, "--json"]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    (file,) = report["files"]
    assert file["rows_in"] == 3 and file["rows_out"] == 2 and file["bad_rows"] == 1
    assert file["bad_examples"] == [
        "file x.csv row 2 field v: expected a finite number, found 'oops'"
    ]
    assert file["status"] == "landed" and file["key"].endswith("/x.parquet")
    assert report["registry"]["new_meters"] == ["M"]
    assert "1 bad rows landed as rejected rows (they go to rejected_readings)" in err
    assert file["rejected_rows"] == 1
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "(unchanged)" in out and "registry ->" not in out


def test_cli_land_options_for_channels_dst_and_european_files(
    home: Path, capsys: pytest.CaptureFixture
) -> None:
    export = home / "eu.csv"
    export.write_bytes(
        codecs.BOM_UTF8 + b"meter;time;dir;value\n"
        b"E1;2017-10-29 01:30;import;1,5\n"
        b"E1;2017-10-29 02:30;export;0,5\n"
        b"E1;2017-10-29 02:30;import;2,5\n"
        b"E1;2017-10-29 03:30;import;3\n"
    )
    args = [
        "land",
        str(export),
        "--meter-col",
        "meter",
        "--time-col",
        "time",
        "--value-col",
        "value",
        "--channel-col",
        "dir",
        "--tz",
        "Europe/Berlin",
        "--interval-minutes",
        "60",
        "--decimal",
        ",",
        "--delimiter",
        ";",
        "--dst-fold",
        "second",
        "--json",
    ]
    assert cli.main(args) == 0
    (file,) = json.loads(capsys.readouterr().out)["files"]
    assert file["rows_out"] == 4 and file["bad_rows"] == 0
    assert file["kwh_by_channel"] == {"delivered": 7.0, "received": 0.5}
    assert file["first_ts"] == "2017-10-28T23:30:00+00:00"
    assert file["last_ts"] == "2017-10-29T02:30:00+00:00"  # 02:30 CET, after the change
    assert cli.main([*args[:-2], "reject", "--json"]) == 0
    out, err = capsys.readouterr()
    (file,) = json.loads(out)["files"]
    assert file["rows_out"] == 2 and file["bad_rows"] == 2 and file["rejected_rows"] == 2
    assert "2 bad rows landed as rejected rows (they go to rejected_readings)" in err
    assert "02:30 occurs twice on 2017-10-29 in Europe/Berlin (--dst-fold reject)" in err


def test_cli_refuses_to_materialize_data_before_the_first_partition(
    home: Path, capsys: pytest.CaptureFixture
) -> None:
    export = home / "old.csv"
    export.write_text("t,v\n2017-03-16T00:00:00Z,1\n2017-03-16T00:15:00Z,1\n")
    args = ["land", str(export), "--meter-id", "M", "--time-col", "t", "--value-col", "v"]
    assert cli.main([*args, "--materialize"]) == 2
    err = capsys.readouterr().err
    assert "nothing landed: cannot materialize" in err
    assert "before the first daily partition 2026-03-01 (SMARTGRID_START_DATE)" in err
    assert not (home / "landing" / "readings").exists()


@pytest.mark.slow
def test_cli_land_and_materialize_end_to_end(home: Path, capsys: pytest.CaptureFixture) -> None:
    """A utility with one known meter lands a 15-min export in Wh (local Berlin time, across the
    spring-forward day) holding that meter and a new solar meter; then materializes."""
    zone = LocalLandingZone(home / "landing")
    zone.put(
        "registry/2026-03-01/transformers.csv",
        b"transformer_id,feeder_id,substation_id,kva_rating\nT1,F1,S1,100\n",
    )
    zone.put(
        "registry/2026-03-01/meters.csv",
        REGISTRY.replace("K1,", "BYO-2,").replace("north", "").encode(),
    )
    tz = "Europe/Berlin"
    utc = pd.date_range("2026-03-27", "2026-03-30 23:45", freq="15min", tz=tz).tz_convert("UTC")
    local = utc.tz_convert(tz).strftime("%Y-%m-%d %H:%M")
    export = home / "byo_export.csv"
    with export.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["meter", "time", "import_wh", "export_wh"])
        for meter, export_wh in (("BYO-1", 40.0), ("BYO-2", 0.0)):
            writer.writerows([meter, t, 250.0, export_wh] for t in local)
        # a clock reset and an unreadable time: rejected rows, and no day of 1970 to run
        writer.writerows([["BYO-2", "1970-01-01 00:00", 250.0, 0.0], ["BYO-2", "soon", 1, 0]])
    code = cli.main(
        [
            "land",
            str(export),
            "--meter-col",
            "meter",
            "--time-col",
            "time",
            "--value-col",
            "import_wh",
            "--received-col",
            "export_wh",
            "--unit",
            "Wh",
            "--tz",
            tz,
            "--materialize",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "local days 1970-01-01..2026-03-30 (Europe/Berlin)" in out  # as the export says
    assert "1 new meter(s) registered as class unknown: BYO-1" in out
    assert "materialize: meters  run " in out
    daily = [line for line in out.splitlines() if "raw_readings" in line]
    assert len(daily) == 1 and "2026-03-27..2026-03-30" in daily[0]
    assert daily[0].endswith("success")
    from smartgrid_assets.platform import Platform
    from smartgrid_assets.settings import load_settings

    platform = Platform(load_settings())
    days = [date(2026, 3, 27) + timedelta(days=i) for i in range(4)]
    for table in ("raw_readings", "cleaned_readings"):
        assert set(days) <= set(platform.lake.partitions(table))
    raw = platform.lake.read_days("raw_readings", days, contract.READINGS)
    # 4 days of which one has 23 hours: 380 quarter hours per meter and channel
    assert raw.num_rows == 2 * 2 * len(utc) == 2 * 2 * 380
    rejected = platform.warehouse.read(
        "SELECT field, value, reason, day FROM rejected_readings ORDER BY value"
    ).to_pylist()
    assert len(rejected) == 3, rejected  # the 1970 row on both channels, the unreadable time
    assert all(r["day"] is None for r in rejected)
    assert sum("SMARTGRID_START_DATE" in r["reason"] for r in rejected) == 2
    assert any(r["value"] == "soon" and "export row" in r["reason"] for r in rejected)
    meters = platform.warehouse.read("SELECT meter_id, customer_class, has_solar FROM meters")
    assert sorted(meters.to_pylist(), key=lambda r: r["meter_id"]) == [
        {"meter_id": "BYO-1", "customer_class": "unknown", "has_solar": True},
        {"meter_id": "BYO-2", "customer_class": "residential", "has_solar": False},
    ]


# ---- the real public files in ../shared/data ------------------------------------------------


def _shared(name: str) -> Path:
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"../shared/data is absent: {path} (real public load data, not in the repo)")
    return path


def _timed(path: Path, spec: ExportSpec) -> Conversion:
    started = time.perf_counter()
    conv = convert(path.read_bytes(), path.name, spec)
    assert time.perf_counter() - started < 5.0
    return conv


def _local_counts(conv: Conversion, tz: str) -> pd.Series:
    return conv.readings["ts"].to_pandas().dt.tz_convert(tz).dt.date.value_counts()


PJME_SPEC = ExportSpec(
    time_col="Datetime", value_col="PJME_MW", meter_id="PJME", unit="MW", time_label="end", tz=NY
)


def test_pjme_hour_ending_eastern_time() -> None:
    path = _shared("PJME_hourly.csv")
    spec = PJME_SPEC
    conv = _timed(path, spec)
    source = pd.read_csv(path)
    assert conv.rows_in == conv.rows_out == len(source) == 145_366
    assert conv.bad_rows == 0
    assert pc.count_distinct(conv.readings["ts"]).as_py() == conv.rows_out  # unique instants
    assert conv.kwh_total == pytest.approx(source["PJME_MW"].sum() * 1.0 * 1000, rel=1e-12)
    assert conv.intervals == {"PJME": 60}
    assert any(n.startswith("4 repeated local times at the DST fall-back") for n in conv.notes)
    counts = _local_counts(conv, NY)
    assert counts[date(2016, 11, 6)] == 25  # fall back: the repeated hour is two hours
    assert counts[date(2016, 3, 13)] == 23  # spring forward
    assert counts[date(2014, 11, 2)] == 25
    assert counts[date(2013, 11, 3)] == 23  # earlier autumn days lack the repeated hour
    # the first row "31-12-2002 01:00" is the hour ending 01:00 EST
    first = conv.readings.filter(
        pc.equal(conv.readings["ts"], pa.scalar(_utc("2002-12-31 05:00"), contract.UTC_TS))
    )
    assert first["kwh"].to_pylist() == [26498 * 1000.0]
    # 2016-11-06 HE02 appears twice: 01:00 EDT then 01:00 EST
    day = conv.readings.filter(
        pc.and_(
            pc.greater_equal(
                conv.readings["ts"], pa.scalar(_utc("2016-11-06 05:00"), contract.UTC_TS)
            ),
            pc.less(conv.readings["ts"], pa.scalar(_utc("2016-11-06 08:00"), contract.UTC_TS)),
        )
    )
    assert day.num_rows == 3


def test_pjme_repeats_follow_the_file_order_only_where_it_is_in_time_order() -> None:
    path = _shared("PJME_hourly.csv")
    spec = PJME_SPEC
    source = pd.read_csv(path, dtype=str)
    repeats = source[source["Datetime"].duplicated(keep=False)]
    assert len(repeats) == 8 and set(repeats["Datetime"].str[11:]) == {"02:00"}
    # chunked, but each day in time order: HE02 twice, the first before the change
    conv = _timed(path, spec)
    landed = conv.landed()
    landed = landed.filter(pc.is_in(landed["source_row"], pa.array(repeats.index + 1)))
    where = dict(zip(landed["source_row"].to_pylist(), landed["ts"].to_pylist(), strict=True))
    for day, rows in repeats.groupby("Datetime").groups.items():
        date_ = datetime.strptime(day, "%d-%m-%Y %H:%M").date()
        first, second = sorted(r + 1 for r in rows)
        before = datetime.combine(date_, datetime.min.time(), UTC) + timedelta(hours=5)
        assert (where[first], where[second]) == (before, before + timedelta(hours=1)), day
    # shuffled: the repeated hours are rejected, never placed by chance; the rest lands
    order = np.random.default_rng(3).permutation(len(source))
    shuffled = source.iloc[order].to_csv(index=False).encode()
    conv = convert(shuffled, "PJME_shuffled.csv", spec)
    assert conv.rows_out == len(source) - 8 and conv.bad_rows == 8
    rejected = conv.rejected.to_pylist()
    assert sorted(source["Datetime"].iloc[order[[r["source_row"] - 1 for r in rejected]]]) == (
        sorted(repeats["Datetime"])
    )
    assert {r["rejected_reason"] for r in rejected} == {
        f"an unambiguous local time: 02:00 (an interval end) occurs twice on {day} in {NY} and "
        "the file is not in time order; pass --dst-fold first|second"
        for day in ("2014-11-02", "2015-11-01", "2016-11-06", "2017-11-05")
    }
    assert pc.count_distinct(conv.readings["ts"]).as_py() == conv.rows_out


def test_vic_elec_half_hours_in_utc() -> None:
    path = _shared("vic_elec.csv")
    spec = ExportSpec(
        time_col="Time", value_col="Demand", meter_id="VIC", unit="MW", interval_minutes=30
    )
    conv = _timed(path, spec)
    source = pd.read_csv(path)
    assert conv.rows_in == conv.rows_out == 52_608
    assert conv.kwh_total == pytest.approx(source["Demand"].sum() * 0.5 * 1000, rel=1e-12)
    expected = pd.to_datetime(source["Time"], utc=True).sort_values()
    assert conv.readings["ts"].to_pandas().tolist() == expected.tolist()
    assert conv.notes == []


@pytest.mark.parametrize(
    ("sample", "rows", "interval", "duplicates"),
    [(0, 23_508, 60, 0), (1, 22_536, 30, 15), (2, 35_468, 30, 24)],
)
def test_household_samples(sample: int, rows: int, interval: int, duplicates: int) -> None:
    path = _shared(f"uk-electricity-hdd-only-hourly-sample-{sample}.csv.gz")
    spec = ExportSpec(
        time_col="start", value_col="value", unit="kWh", tz="UTC", meter_id=f"H{sample}"
    )
    conv = _timed(path, spec)
    source = pd.read_csv(path)
    assert conv.rows_in == len(source) == rows
    assert conv.bad_rows == 0  # the UK spring-forward hour exists in them: fine in UTC
    assert conv.intervals == {f"H{sample}": interval}
    assert conv.rows_out == rows - duplicates
    unique = source.drop_duplicates()
    assert len(unique) == rows - duplicates
    assert conv.kwh_total == pytest.approx(unique["value"].sum(), rel=1e-12)
    assert conv.kwh_total == pytest.approx(
        source["value"].sum() - source[source.duplicated()]["value"].sum(), rel=1e-12
    )
    expected = pd.to_datetime(unique["start"], utc=True, format="ISO8601").sort_values()
    assert conv.readings["ts"].to_pandas().tolist() == expected.tolist()
    if duplicates:
        note = (
            f"{duplicates} exact duplicate rows (same meter, channel, interval and value) landed "
            "as rejected rows"
        )
        assert note in conv.notes
        assert conv.rejected.num_rows == duplicates
        assert set(conv.rejected["rejected_reason"].to_pylist()) <= {
            f"exact duplicate of row {n}: same meter, channel, interval and value"
            for n in range(1, rows + 1)
        }
    if sample == 1:
        at = pa.scalar(_utc("2013-10-27 00:00"), contract.UTC_TS)
        assert conv.readings.filter(pc.equal(conv.readings["ts"], at)).num_rows == 1


def test_a_meter_that_exports_regularly_is_registered_with_generation() -> None:
    hours = pd.date_range("2026-03-01", periods=10 * 24, freq="h", tz="UTC")
    midday = (hours.hour >= 11) & (hours.hour < 14)
    once = (hours.day == 3) & (hours.hour == 12)
    lines = ["meter,t,v"]
    for t, noon, single in zip(hours, midday, once, strict=True):
        lines.append(f"PV1,{t.isoformat()},{-0.8 if noon else 0.4}")
        lines.append(f"BF1,{t.isoformat()},{-0.8 if single else 0.4}")
    conv = convert(
        "\n".join(lines).encode(),
        "net.csv",
        ExportSpec(time_col="t", value_col="v", meter_col="meter"),
    )
    assert conv.solar_meters == ["PV1"]  # BF1 went negative on one day only
    (note,) = [n for n in conv.notes if "PV1" in n]
    assert "exported (negative values) on 10 of its 10 days" in note
