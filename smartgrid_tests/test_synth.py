"""The synthetic utility: determinism, registry, file layout, DST days and ground-truth labels."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from smartgrid_assets.contract import (
    CHANNELS,
    CUSTOMER_CLASSES,
    METERS,
    TRANSFORMERS,
    WEATHER_FORECAST,
    WEATHER_OBSERVED,
)
from smartgrid_assets.synth import LABEL_TYPES, synthesize

UTC_TS = pa.timestamp("us", tz="UTC")
READING_COLUMNS = ["meter_id", "ts", "interval_minutes", "channel", "kwh"]
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")
KWH_4DP = re.compile(r"^-?\d+\.\d{4}$")
SPRING = dict(meters=120, days=14, tz="Europe/Berlin", start=dt.date(2026, 3, 23), seed=7)
STEP = pd.Timedelta(minutes=15)


def _all_files(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()
    }


def _read_file(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        table = pq.read_table(path)
    else:
        opts = pacsv.ConvertOptions(
            column_types={"ts": UTC_TS, "kwh": pa.float64(), "interval_minutes": pa.int32()}
        )
        table = pacsv.read_csv(path, convert_options=opts)
    return table.to_pandas()


def _readings(out: Path) -> pd.DataFrame:
    frames = []
    for path in sorted(out.glob("readings/*/*")) + sorted(out.glob("late/readings/*/*")):
        df = _read_file(path)
        df["file"] = path.relative_to(out).as_posix()
        df["row"] = np.arange(len(df))
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _ts(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values.replace("", None), utc=True)


class Run:
    """A synth output folder and its parsed contents, read once per module."""

    def __init__(self, out: Path, **kwargs) -> None:
        self.out = out
        self.kwargs = kwargs
        self.summary = synthesize(out, **kwargs)
        self.meters = _csv(out / "registry" / "meters.csv")
        self.transformers = _csv(out / "registry" / "transformers.csv")
        self.labels = _csv(out / "labels.csv")
        self.labels["start_ts"] = _ts(self.labels["start"])
        self.labels["end_ts"] = _ts(self.labels["end"])
        self.manifest = json.loads((out / "manifest.json").read_text())
        self.readings = _readings(out)

    def of(self, label: pd.Series, channel: str | None = "delivered") -> pd.DataFrame:
        r = self.readings
        sel = (r.meter_id == label.meter_id) & (r.ts >= label.start_ts) & (r.ts < label.end_ts)
        if channel:
            sel &= r.channel == channel
        return r[sel]

    def labelled(self, type_: str) -> pd.DataFrame:
        found = self.labels[self.labels.type == type_]
        assert len(found) >= 1, f"no {type_} label"
        return found

    def clean_meters(self) -> set[str]:
        """Meters in service all period with no injection at all."""
        m = self.meters
        full = m[
            (_ts(m.installed_at) <= pd.Timestamp(self.manifest["period"]["start_utc"]))
            & (m.removed_at == "")
        ]
        overloaded = self.labels[self.labels.type == "transformer_overload"].asset_id
        touched = set(self.labels.meter_id) | set(m[m.transformer_id.isin(overloaded)].meter_id)
        return set(full.meter_id) - touched


@pytest.fixture(scope="module")
def spring(tmp_path_factory) -> Run:
    return Run(tmp_path_factory.mktemp("spring") / "out", **SPRING)


@pytest.fixture(scope="module")
def autumn(tmp_path_factory) -> Run:
    out = tmp_path_factory.mktemp("autumn") / "out"
    return Run(out, meters=60, days=14, tz="Europe/Berlin", start=dt.date(2026, 10, 19), seed=3)


def test_same_seed_gives_identical_bytes(spring, tmp_path):
    again = tmp_path / "again"
    synthesize(again, **SPRING)
    first, second = _all_files(spring.out), _all_files(again)
    assert sorted(first) == sorted(second)
    for name, content in first.items():
        assert second[name] == content, name


def test_other_seed_gives_other_data(spring, tmp_path):
    other = tmp_path / "other"
    synthesize(other, **{**SPRING, "seed": 8})
    first, second = _all_files(spring.out), _all_files(other)
    assert first["registry/meters.csv"] != second["registry/meters.csv"]
    assert first["labels.csv"] != second["labels.csv"]
    common = [k for k in first if k.startswith("readings/") and k in second]
    assert common and all(first[k] != second[k] for k in common)


def test_registry_is_consistent(spring):
    m, t = spring.meters, spring.transformers
    assert list(m.columns) == METERS.names
    assert list(t.columns) == TRANSFORMERS.names
    assert m.meter_id.is_unique and t.transformer_id.is_unique
    assert m.meter_id.str.fullmatch(r"M\d{6}").all()
    assert t.transformer_id.str.fullmatch(r"TX\d{4}").all()
    assert set(m.customer_class) <= set(CUSTOMER_CLASSES)
    assert set(m.customer_class) == {"residential", "commercial", "industrial"}
    joined = m.merge(t, on="transformer_id", how="left", suffixes=("", "_tx"))
    assert joined.kva_rating.notna().all()
    assert (joined.feeder_id == joined.feeder_id_tx).all()
    assert (joined.substation_id == joined.substation_id_tx).all()
    assert set(m.region) == {"north", "south"}
    # A substation sits in one weather region; C&I meters have a transformer of their own.
    assert (m.groupby("substation_id").region.nunique() == 1).all()
    ci = m[m.customer_class != "residential"]
    assert (m[m.transformer_id.isin(ci.transformer_id)].groupby("transformer_id").size() == 1).all()
    assert (m[m.customer_class == "residential"].multiplier == "1.0").all()
    assert set(m.has_solar) == {"true", "false"}
    assert (m[m.has_solar == "true"].customer_class == "residential").all()
    assert m.installed_at.str.match(ISO_UTC).all()
    assert m[m.removed_at != ""].removed_at.str.match(ISO_UTC).all()
    assert (t.kva_rating.astype(float) > 0).all()
    lat = m.lat.astype(float)
    assert lat.between(51.5, 53.5).all()


def test_only_solar_meters_report_received(spring):
    solar = set(spring.meters[spring.meters.has_solar == "true"].meter_id)
    r = spring.readings
    assert set(r.channel) == set(CHANNELS)
    assert set(r[r.channel == "received"].meter_id) == solar
    assert (r[r.channel == "received"].kwh >= 0).all()


def test_one_file_per_region_and_local_day(spring):
    dates = [SPRING["start"] + dt.timedelta(days=i) for i in range(SPRING["days"])]
    formats = {}
    for region in ("north", "south"):
        found = sorted(spring.out.glob(f"readings/{region}/*")) + sorted(
            spring.out.glob(f"late/readings/{region}/*")
        )
        assert sorted(p.stem for p in found) == [f"{region}_{d}" for d in dates]
        suffixes = {p.suffix for p in found}
        assert len(suffixes) == 1, region
        formats[region] = suffixes.pop()
    assert formats == {"north": ".csv", "south": ".parquet"}
    assert spring.summary.reading_files == 2 * SPRING["days"]
    assert spring.summary.readings_rows == len(spring.readings)
    assert spring.manifest["counts"]["readings_rows"] == len(spring.readings)


def test_file_formats_follow_the_export_layout(spring):
    csv_path = next(spring.out.glob("readings/north/*.csv"))
    lines = csv_path.read_text().splitlines()
    assert lines[0] == ",".join(READING_COLUMNS)
    meter, ts, minutes, channel, kwh = lines[1].split(",")
    assert re.fullmatch(r"M\d{6}", meter) and ISO_UTC.match(ts) and minutes == "15"
    assert channel in CHANNELS and KWH_4DP.match(kwh)
    assert all(KWH_4DP.match(line.rsplit(",", 1)[1]) for line in lines[1:])
    schema = pq.read_schema(next(spring.out.glob("readings/south/*.parquet")))
    assert schema.names == READING_COLUMNS
    assert schema.field("ts").type == UTC_TS
    assert schema.field("interval_minutes").type == pa.int32()
    assert schema.field("kwh").type == pa.float64()
    obs = _csv(spring.out / "weather" / "weather_observed.csv")
    fc = _csv(spring.out / "weather" / "weather_forecast.csv")
    assert list(obs.columns) == WEATHER_OBSERVED.names
    assert list(fc.columns) == WEATHER_FORECAST.names


def test_rows_sorted_with_duplicates_appended(spring):
    appended: dict[str, int] = {}
    for _, lb in spring.labelled("duplicate").iterrows():
        file = re.search(r"repeated_in=([^;]+)", lb.detail).group(1)
        appended[file] = appended.get(file, 0) + len(spring.of(lb, None)) // 2  # copy of each row
    for file, df in spring.readings.groupby("file"):
        body = df.iloc[: len(df) - appended.get(file, 0)]
        keys = list(zip(body.meter_id, body.channel, body.ts, strict=True))
        assert keys == sorted(keys), file


def test_weather_forecasts_issued_at_local_midnight(spring):
    obs = _csv(spring.out / "weather" / "weather_observed.csv")
    fc = _csv(spring.out / "weather" / "weather_forecast.csv")
    assert len(obs) == 2 * (SPRING["days"] * 24 - 1)  # the spring-forward day has 23 hours
    issued = _ts(fc.issued_at).dt.tz_convert("Europe/Berlin")
    assert (issued.dt.hour == 0).all() and issued.dt.date.nunique() == SPRING["days"]
    lead = (_ts(fc.ts) - _ts(fc.issued_at)) / pd.Timedelta(hours=1)
    assert lead.min() == 0 and lead.max() == 47
    assert (fc.groupby(["region", "issued_at"]).size() == 48).all()
    temp = obs.temperature_c.astype(float)
    assert temp.between(-25, 35).all() and temp.std() > 1


def _intervals_on(run: Run, date: str) -> pd.Series:
    clean = run.clean_meters()
    r = run.readings
    day = r[r.file.str.contains(date) & r.meter_id.isin(clean)]
    return day.groupby(["meter_id", "channel"]).size()


def test_spring_forward_day_has_92_intervals(spring):
    counts = _intervals_on(spring, "2026-03-29")
    assert len(counts) > 50 and (counts == 92).all()
    assert (_intervals_on(spring, "2026-03-28") == 96).all()
    assert spring.manifest["period"]["intervals_per_local_day"]["2026-03-29"] == 92


def test_fall_back_day_has_100_intervals(autumn):
    counts = _intervals_on(autumn, "2026-10-25")
    assert len(counts) > 20 and (counts == 100).all()
    assert (_intervals_on(autumn, "2026-10-26") == 96).all()
    first = autumn.readings[autumn.readings.file.str.contains("2026-10-25")].ts.min()
    assert first == pd.Timestamp("2026-10-24T22:00:00Z")


def test_every_label_type_present_and_well_formed(spring):
    lb = spring.labels
    assert list(lb.columns[:8]) == [
        "label_id", "class", "type", "meter_id", "asset_id", "start", "end", "detail"
    ]  # fmt: skip
    assert lb.label_id.is_unique
    assert set(lb.type) == set(LABEL_TYPES)
    assert (lb["class"] == lb.type.map(LABEL_TYPES)).all()
    assert set(lb["class"]) == {"data_problem", "anomaly"}
    assert (lb.start_ts < lb.end_ts).all()
    assert lb.start.str.match(ISO_UTC).all() and lb.end.str.match(ISO_UTC).all()
    meter_level = lb[~lb.type.isin(["transformer_overload", "late_file"])]
    assert set(meter_level.meter_id) <= set(spring.meters.meter_id)
    assert set(lb[lb.type == "transformer_overload"].asset_id) <= set(
        spring.transformers.transformer_id
    )
    history = pd.Timestamp("2026-03-25", tz="Europe/Berlin")
    assert (lb.start_ts >= history).all()
    assert (
        spring.summary.labels_by_type == lb.type.value_counts().reindex(list(LABEL_TYPES)).to_dict()
    )


def test_injections_do_not_overlap(spring):
    lb = spring.labels[spring.labels.meter_id != ""].sort_values(["meter_id", "start_ts"])
    for _, g in lb.groupby("meter_id"):
        assert (g.start_ts.iloc[1:].to_numpy() >= g.end_ts.iloc[:-1].to_numpy()).all()


def test_unit_error_day_is_a_thousand_times_larger(spring):
    r = spring.readings
    for _, lb in spring.labelled("unit_wh_as_kwh").iterrows():
        day = spring.of(lb).kwh.sum()
        rest = r[(r.meter_id == lb.meter_id) & (r.channel == "delivered")]
        rest = rest[(rest.ts < lb.start_ts) | (rest.ts >= lb.end_ts)]
        typical = rest.groupby(rest.ts.dt.tz_convert("Europe/Berlin").dt.date).kwh.sum().median()
        assert 200 < day / typical < 5000
        assert len(spring.of(lb)) in (92, 96, 100)


def test_stuck_meter_repeats_one_value(spring):
    for _, lb in spring.labelled("stuck_meter").iterrows():
        vals = spring.of(lb).kwh
        assert len(vals) >= 24 and vals.nunique() == 1 and vals.iloc[0] > 0
        assert spring.meters.set_index("meter_id").has_solar[lb.meter_id] == "false"


def test_zero_run_is_zeros(spring):
    for _, lb in spring.labelled("zero_run").iterrows():
        rows = spring.of(lb, channel=None)
        assert len(rows) >= 24 and (rows.kwh == 0).all()


def test_reverse_flow_is_negative_on_a_meter_without_solar(spring):
    solar = spring.meters.set_index("meter_id").has_solar
    r = spring.readings
    for _, lb in spring.labelled("reverse_flow").iterrows():
        assert solar[lb.meter_id] == "false"
        window = spring.of(lb)
        assert len(window) >= 12 and (window.kwh < 0).all()
    negative = r[r.kwh < 0]
    assert set(negative.meter_id) == set(spring.labelled("reverse_flow").meter_id)


def test_theft_is_a_sustained_drop(spring):
    r = spring.readings
    for _, lb in spring.labelled("theft_drop").iterrows():
        assert lb.end_ts - lb.start_ts >= pd.Timedelta(days=7)
        during = spring.of(lb).kwh.mean()
        mine = r[(r.meter_id == lb.meter_id) & (r.channel == "delivered")]
        before = mine[mine.ts < lb.start_ts].kwh.mean()
        assert during / before < 0.85


def test_spikes_stand_out(spring):
    r = spring.readings
    for _, lb in spring.labelled("spike").iterrows():
        value = spring.of(lb).kwh
        assert len(value) == 1
        median = r[(r.meter_id == lb.meter_id) & (r.channel == "delivered")].kwh.median()
        assert value.iloc[0] > 5 * median


def test_gaps_are_missing(spring):
    minutes = []
    for _, lb in spring.labelled("gap").iterrows():
        assert spring.of(lb, channel=None).empty
        r = spring.readings
        mine = r[r.meter_id == lb.meter_id]
        assert (mine.ts == lb.start_ts - STEP).any() and (mine.ts == lb.end_ts).any()
        minutes.append((lb.end_ts - lb.start_ts) / pd.Timedelta(minutes=1))
    assert min(minutes) <= 60 and max(minutes) >= 180


def test_misaligned_timestamps_are_off_grid(spring):
    r = spring.readings
    off_grid = r[(r.ts - pd.Timestamp("2026-01-01", tz="UTC")) % STEP != pd.Timedelta(0)]
    labels = spring.labelled("misaligned")
    assert set(off_grid.meter_id) == set(labels.meter_id)
    for _, lb in labels.iterrows():
        shift = pd.Timedelta(minutes=int(lb.detail.split("=")[1]))
        mine = r[(r.meter_id == lb.meter_id) & (r.channel == "delivered")]
        moved = pd.date_range(lb.start_ts, lb.end_ts, freq=STEP, inclusive="left") + shift
        # Each reading moved forward by less than an interval: none left on the grid.
        window = mine[(mine.ts >= lb.start_ts) & (mine.ts < lb.end_ts)].ts
        assert sorted(window) == list(moved)


def test_late_file_is_under_late(spring):
    for _, lb in spring.labelled("late_file").iterrows():
        assert lb.meter_id == ""
        assert not (spring.out / lb.asset_id).exists()
        late = spring.out / "late" / lb.asset_id
        assert late.is_file() and len(_read_file(late)) > 0
        assert lb.detail == f"late_path=late/{lb.asset_id}"


def test_duplicates_appear_in_two_files(spring):
    r = spring.readings
    for _, lb in spring.labelled("duplicate").iterrows():
        rows = spring.of(lb, channel=None)
        repeated_in = re.search(r"repeated_in=([^;]+)", lb.detail).group(1)
        assert set(rows.file) == {rows.file.iloc[0], repeated_in}
        assert rows.file.iloc[0] < repeated_in
        original = rows[rows.file != repeated_in].set_index(["channel", "ts"]).kwh.sort_index()
        copy = rows[rows.file == repeated_in].set_index(["channel", "ts"]).kwh.sort_index()
        assert len(original) == len(copy) > 0 and original.index.equals(copy.index)
        if "values=identical" in lb.detail:
            assert (original == copy).all()
        else:
            assert np.allclose(original, copy, rtol=0.1, atol=1e-3)
        # The repeated rows are appended after the sorted body of the later file.
        later = r[r.file == repeated_in]
        assert rows[rows.file == repeated_in].row.min() >= len(later) - len(copy)


def test_overload_exceeds_the_transformer_rating(spring):
    m = spring.meters
    r = spring.readings.merge(m[["meter_id", "transformer_id"]], on="meter_id")
    kva = spring.transformers.set_index("transformer_id").kva_rating.astype(float)
    signed = np.where(r.channel == "delivered", r.kwh, -r.kwh)
    kw = r.assign(kw=signed * 4).groupby(["transformer_id", "ts"]).kw.sum()
    for _, lb in spring.labelled("transformer_overload").iterrows():
        assert lb.meter_id == "" and lb.asset_id in kva.index
        load = kw[lb.asset_id]
        window = load[(load.index >= lb.start_ts) & (load.index < lb.end_ts)]
        assert len(window) >= 8 and (window > kva[lb.asset_id]).all()
        before = load[load.index < lb.start_ts]
        assert before.max() < kva[lb.asset_id]


def test_transformers_normally_run_below_rating(spring):
    m = spring.meters
    clean = spring.clean_meters()
    r = spring.readings.merge(m[["meter_id", "transformer_id"]], on="meter_id")
    whole = m.groupby("transformer_id").meter_id.apply(lambda s: set(s) <= clean)
    r = r[r.transformer_id.isin(whole[whole].index)]
    signed = np.where(r.channel == "delivered", r.kwh, -r.kwh)
    peak = r.assign(kw=signed * 4).groupby(["transformer_id", "ts"]).kw.sum().groupby(level=0).max()
    loading = (
        peak / spring.transformers.set_index("transformer_id").kva_rating.astype(float)[peak.index]
    )
    assert len(loading) >= 5 and loading.max() <= 0.8 and loading.median() >= 0.4


def test_meters_report_only_while_installed(spring):
    m = spring.meters.set_index("meter_id")
    installed, removed = _ts(m.installed_at), _ts(m.removed_at)
    r = spring.readings
    first = r.groupby("meter_id").ts.min()
    last = r.groupby("meter_id").ts.max()
    assert (first >= installed[first.index]).all()
    in_service = removed[last.index].isna() | (last < removed[last.index])
    assert in_service.all()
    start = pd.Timestamp(spring.manifest["period"]["start_utc"])
    new = installed[installed > start]
    gone = removed[removed.notna()]
    assert len(new) >= 1 and len(gone) >= 1
    assert (first[new.index] == new).all()
    assert (last[gone.index] == gone - STEP).all()


def expected_rows(out: Path) -> int:
    """Rows implied by the registry and labels alone: service time x channels, less gaps,
    plus repeated duplicates."""
    manifest = json.loads((out / "manifest.json").read_text())
    step = pd.Timedelta(minutes=manifest["parameters"]["interval_minutes"])
    start = pd.Timestamp(manifest["period"]["start_utc"])
    end = pd.Timestamp(manifest["period"]["end_utc"])
    m = _csv(out / "registry" / "meters.csv").set_index("meter_id")
    channels = np.where(m.has_solar == "true", 2, 1)
    lo = _ts(m.installed_at).clip(lower=start)
    hi = _ts(m.removed_at).fillna(end).clip(upper=end)
    total = int(((hi - lo) / step * channels).sum())
    lb = _csv(out / "labels.csv")
    lb = lb[lb.type.isin(["gap", "duplicate"])]
    n = (_ts(lb.end) - _ts(lb.start)) / step * np.where(m.has_solar[lb.meter_id] == "true", 2, 1)
    return total + int(n[lb.type == "duplicate"].sum() - n[lb.type == "gap"].sum())


def test_row_count_follows_registry_and_labels(spring):
    assert expected_rows(spring.out) == spring.summary.readings_rows == len(spring.readings)
    assert sum(spring.manifest["files"].values()) == len(spring.readings)


def test_summary_and_manifest(spring):
    summary = spring.summary.to_dict()
    json.dumps(summary)
    assert summary["meters"] == 120 and summary["regions"] == ["north", "south"]
    assert summary["labels"] == len(spring.labels)
    assert spring.manifest["parameters"]["seed"] == 7
    assert spring.manifest["holidays"]["country"] == "DE"
    assert "2026-04-03" in spring.manifest["holidays"]["dates"]  # Good Friday
    assert [r["format"] for r in spring.manifest["regions"]] == ["csv", "parquet"]


def test_rejects_what_it_cannot_build(tmp_path):
    with pytest.raises(ValueError, match="interval_minutes"):
        synthesize(tmp_path / "a", meters=5, days=2, interval_minutes=7)
    with pytest.raises(ValueError, match="time zone"):
        synthesize(tmp_path / "b", meters=5, days=2, tz="Mars/Olympus")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        synthesize(foreign, meters=5, days=2)
    assert (foreign / "keep.txt").read_text() == "mine"


def test_small_runs_and_other_intervals(tmp_path):
    summary = synthesize(tmp_path / "tiny", meters=3, days=1, interval_minutes=60, tz="UTC")
    assert summary.regions == ("north",) and summary.reading_files == 1
    assert summary.readings_rows == expected_rows(tmp_path / "tiny")
    # Rerunning into a synth folder replaces it.
    again = synthesize(tmp_path / "tiny", meters=3, days=2, interval_minutes=30, tz="UTC")
    assert again.reading_files == 2
    assert (
        len(list((tmp_path / "tiny").rglob("*.csv"))) == 2 + 5
    )  # readings + registry, weather, labels


@pytest.mark.slow
def test_thousand_meters_thirty_days(tmp_path):
    began = time.perf_counter()
    summary = synthesize(tmp_path / "big", meters=1000, days=30, tz="Europe/Berlin", seed=1)
    elapsed = time.perf_counter() - began
    print(
        f"synthesize 1000 meters x 30 days x 15 min: {elapsed:.1f} s, {summary.readings_rows} rows"
    )
    rows = 0
    for path in (tmp_path / "big").rglob("*"):
        if path.suffix == ".parquet":
            rows += pq.read_metadata(path).num_rows
        elif path.suffix == ".csv" and "readings" in path.parts:
            rows += len(pacsv.read_csv(path))
    assert rows == summary.readings_rows == expected_rows(tmp_path / "big")
    assert summary.reading_files == 60 and len(summary.regions) == 2
