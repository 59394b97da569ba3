"""Lake: day-partitioned Parquet tables on a local folder and on S3 (moto server over HTTP)."""

from __future__ import annotations

import os
import pickle
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from smartgrid_assets.contract import dictionary_strings
from smartgrid_assets.lake import Lake, LakeError
from smartgrid_assets.lake import store as lake_store
from smartgrid_assets.settings import Settings

D1, D2, D3 = date(2026, 3, 16), date(2026, 3, 17), date(2026, 3, 18)
UTC_TS = pa.timestamp("us", tz="UTC")

# A readings-like schema of the tests' own, so the tests do not follow contract changes.
READINGS = pa.schema(
    [
        pa.field("meter_id", pa.string(), nullable=False),
        pa.field("ts", UTC_TS, nullable=False),
        pa.field("interval_minutes", pa.int32(), nullable=False),
        pa.field("channel", pa.string(), nullable=False),
        pa.field("kwh", pa.float64(), nullable=False),
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("landed_at", UTC_TS, nullable=False),
    ],
    metadata={"smartgrid.name": "readings", "smartgrid.version": "1.0", "doc": "test readings"},
)
NEEDS_VEE = READINGS.append(pa.field("vee_version", pa.string(), nullable=False))


def readings(day: date, meters: int = 3, intervals: int = 4) -> pa.Table:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    rows = [
        {
            "meter_id": f"M{m:03d}",
            "ts": start + timedelta(minutes=15 * i),
            "interval_minutes": 15,
            "channel": "delivered",
            "kwh": round(0.1 * m + 0.01 * i, 3),
            "source_file": f"readings/north/north_{day}.csv",
            "landed_at": start + timedelta(days=1),
        }
        for m in range(meters)
        for i in range(intervals)
    ]
    return pa.Table.from_pylist(rows, schema=READINGS)


@pytest.fixture(params=["local", "s3"])
def settings(request: pytest.FixtureRequest) -> Settings:
    return request.getfixturevalue(f"{request.param}_settings")


@pytest.fixture
def lake(settings: Settings) -> Lake:
    return Lake.from_settings(settings)


def test_round_trip_keeps_schema_and_metadata(lake: Lake) -> None:
    data = readings(D1)
    location = lake.write_partition("raw_readings", D1, data)
    assert location.endswith("raw_readings/day=2026-03-16/part-0.parquet")
    assert location.startswith("s3://" if lake.url.startswith("s3://") else "/")

    back = lake.read_partition("raw_readings", D1)
    assert back is not None
    assert back.equals(data)
    assert back.schema.equals(READINGS, check_metadata=True)
    assert back.schema.metadata[b"smartgrid.version"] == b"1.0"
    assert "day" not in back.column_names  # the day lives in the path only
    assert lake.read_partition("raw_readings", D2) is None


def test_partition_written_in_parts_is_one_file_and_a_failing_part_keeps_the_old(
    local_settings: Settings,
) -> None:
    lake = Lake.from_settings(local_settings)
    first, second = readings(D1, meters=3), readings(D1, meters=5)
    schema = first.schema
    lake.write_partition_parts("raw_readings", D1, schema, iter([first, second]))
    assert lake.read_partition("raw_readings", D1).equals(pa.concat_tables([first, second]))
    only_meter = pa.schema([schema.field("meter_id")])
    assert lake.read_partition("raw_readings", D1, only_meter).column_names == ["meter_id"]
    folder = lake.location("raw_readings/day=2026-03-16")

    def dies_after_one_part():
        yield second
        raise RuntimeError("shard 2 failed")

    with pytest.raises(RuntimeError, match="shard 2 failed"):
        lake.write_partition_parts("raw_readings", D1, schema, dies_after_one_part())
    assert os.listdir(folder) == ["part-0.parquet"]
    assert lake.read_partition("raw_readings", D1).equals(pa.concat_tables([first, second]))


def test_files_are_snappy_and_deterministic(lake: Lake) -> None:
    data = readings(D1)
    fs = lake.filesystem

    def written(write, path: str) -> bytes:
        write()
        return fs.open_input_file(lake._abs(path)).read()

    partition = "raw_readings/day=2026-03-16/part-0.parquet"
    for write, path in (
        (lambda: lake.write_partition("raw_readings", D1, data), partition),
        (lambda: lake.write_table("copy/a.parquet", data), "copy/a.parquet"),
    ):
        first, second = written(write, path), written(write, path)
        assert first == second
        meta = pq.ParquetFile(pa.BufferReader(first)).metadata
        assert meta.row_group(0).column(0).compression == "SNAPPY"
    single = pq.ParquetFile(pa.BufferReader(first)).metadata.row_group(0)
    encodings = {single.column(i).path_in_schema: single.column(i).encodings for i in range(3)}
    assert "RLE_DICTIONARY" in encodings["meter_id"]
    assert "RLE_DICTIONARY" not in encodings["ts"]  # a landed file's own times: no dictionary


def test_string_columns_read_as_dictionaries_only_when_asked(lake: Lake) -> None:
    data = readings(D1)
    lake.write_partition("raw_readings", D1, data)
    plain = lake.read_partition("raw_readings", D1, READINGS)
    assert plain.schema == READINGS
    assert plain.equals(data)
    encoded = lake.read_days("raw_readings", [D1], dictionary_strings(READINGS))
    assert pa.types.is_dictionary(encoded.schema.field("meter_id").type)
    assert pa.types.is_dictionary(encoded.schema.field("channel").type)
    assert encoded.schema.field("ts").type == READINGS.field("ts").type
    assert encoded.cast(READINGS).equals(data)


def test_replacing_a_partition_leaves_only_the_new_rows(lake: Lake) -> None:
    lake.write_partition("raw_readings", D1, readings(D1, meters=5))
    lake.write_partition("raw_readings", D2, readings(D2, meters=5))
    smaller = readings(D1, meters=2)
    lake.write_partition("raw_readings", D1, smaller)
    assert lake.read_partition("raw_readings", D1).equals(smaller)
    assert lake.read_partition("raw_readings", D2).num_rows == 20  # other days untouched

    lake.write_partition("raw_readings", D1, READINGS.empty_table())
    empty = lake.read_partition("raw_readings", D1)
    assert empty is not None
    assert empty.num_rows == 0
    assert empty.schema.equals(READINGS, check_metadata=True)
    assert lake.partitions("raw_readings") == [D1, D2]
    if lake.is_local:
        assert sorted(os.listdir(lake.location("raw_readings/day=2026-03-16"))) == [
            "part-0.parquet"
        ]


def test_a_failed_write_keeps_the_old_partition(lake: Lake) -> None:
    old = readings(D1)
    lake.write_partition("raw_readings", D1, old)
    unwritable = pa.table({"span": pa.array([(1, 2, 3)], pa.month_day_nano_interval())})
    with pytest.raises(pa.ArrowNotImplementedError):
        lake.write_partition("raw_readings", D1, unwritable)
    assert lake.read_partition("raw_readings", D1).equals(old)
    assert lake.partitions("raw_readings") == [D1]
    if lake.is_local:
        assert os.listdir(lake.location("raw_readings/day=2026-03-16")) == ["part-0.parquet"]


def test_local_write_failing_midway_is_atomic(
    local_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = Lake.from_settings(local_settings)
    old = readings(D1)
    lake.write_partition("raw_readings", D1, old)
    folder = lake.location("raw_readings/day=2026-03-16")
    real_encode = lake_store._encode
    seen: list[str] = []

    def write_half_then_fail(where, schema, parts, options):
        real_encode(where, schema, parts, options)  # the full file into the temp file ...
        where.truncate(where.tell() // 2)  # ... cut in half ...
        seen.extend(os.listdir(folder))
        raise OSError("disk full")  # ... and the write dies

    monkeypatch.setattr(lake_store, "_encode", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        lake.write_partition("raw_readings", D1, readings(D1, meters=9))
    monkeypatch.undo()

    assert any(name.startswith("part-0.parquet.tmp-") for name in seen)  # it was written aside
    assert os.listdir(folder) == ["part-0.parquet"]  # and cleaned up
    assert lake.read_partition("raw_readings", D1).equals(old)

    # a write that dies on a fresh day leaves no partition at all
    monkeypatch.setattr(lake_store, "_encode", write_half_then_fail)
    with pytest.raises(OSError):
        lake.write_partition("raw_readings", D2, readings(D2))
    monkeypatch.undo()
    assert lake.read_partition("raw_readings", D2) is None
    assert lake.partitions("raw_readings") == [D1]


def test_read_days_skips_missing_days(lake: Lake) -> None:
    lake.write_partition("raw_readings", D3, readings(D3, meters=1))
    lake.write_partition("raw_readings", D1, readings(D1, meters=2))
    got = lake.read_days("raw_readings", [D3, D2, D1, D1], READINGS)
    assert got.schema.equals(READINGS, check_metadata=True)
    assert got.num_rows == 8 + 4
    assert got.column("ts").to_pylist()[0].date() == D1  # in date order
    assert got.column("ts").to_pylist()[-1].date() == D3

    none = lake.read_days("raw_readings", [D2], READINGS)
    assert none.num_rows == 0 and none.schema.equals(READINGS)
    assert lake.read_days("no_such_table", [D1, D2], READINGS).num_rows == 0


def test_read_with_a_schema_conforms(lake: Lake) -> None:
    lake.write_partition("raw_readings", D1, readings(D1, meters=1))
    wanted = pa.schema(
        [
            pa.field("meter_id", pa.string()),
            pa.field("kwh", pa.float64()),
            pa.field("quality", pa.string()),  # added in a later version: null here
            pa.field("day", pa.date32()),  # from the partition
        ],
        metadata={"smartgrid.version": "2.0"},
    )
    got = lake.read_partition("raw_readings", D1, wanted)
    assert got.schema.equals(wanted, check_metadata=True)
    assert got.column("quality").null_count == 4
    assert set(got.column("day").to_pylist()) == {D1}

    with pytest.raises(LakeError, match="vee_version"):
        lake.read_partition("raw_readings", D1, NEEDS_VEE)


def test_partitions_listing(lake: Lake) -> None:
    assert lake.partitions("raw_readings") == []
    for day in (D3, D1, D2):
        lake.write_partition("raw_readings", day, readings(day, meters=1))
    lake.write_partition("cleaned_like", D2, readings(D2, meters=1))
    lake.write_table("raw_readings_cache/x.parquet", readings(D1, meters=1))
    assert lake.partitions("raw_readings") == [D1, D2, D3]
    assert lake.partitions("cleaned_like") == [D2]
    if lake.is_local:  # stray temp files of an interrupted writer are not partitions
        stray = lake.location("raw_readings/day=2026-03-19")
        os.makedirs(stray)
        open(os.path.join(stray, "part-0.parquet.tmp-dead"), "wb").close()
        assert lake.partitions("raw_readings") == [D1, D2, D3]


def test_dataset_exposes_day_and_filters(lake: Lake) -> None:
    assert lake.dataset("raw_readings") is None
    for day in (D1, D2, D3):
        lake.write_partition("raw_readings", day, readings(day, meters=2))
    if lake.is_local:  # an in-flight temp file must not be picked up
        tmp = os.path.join(lake.location("raw_readings/day=2026-03-17"), "part-0.parquet.tmp-x")
        with open(tmp, "wb") as f:
            f.write(b"PAR1 half a file")

    dataset = lake.dataset("raw_readings")
    assert dataset is not None
    assert dataset.schema.field("day").type == pa.date32()
    assert dataset.count_rows() == 24
    only = dataset.to_table(filter=ds.field("day") == D2)
    assert only.num_rows == 8
    assert set(only.column("day").to_pylist()) == {D2}
    later = dataset.to_table(filter=ds.field("day") >= D2, columns=["meter_id", "day"])
    assert later.num_rows == 16
    assert later.column_names == ["meter_id", "day"]

    unified = lake.dataset("raw_readings", schema=READINGS)
    assert unified.schema.names == [*READINGS.names, "day"]


def test_write_partition_with_a_day_column(lake: Lake) -> None:
    data = readings(D1).append_column("day", pa.array([D1] * 12, pa.date32()))
    lake.write_partition("raw_readings", D1, data)
    assert lake.read_partition("raw_readings", D1).equals(readings(D1))
    with pytest.raises(LakeError, match="'day' column"):
        lake.write_partition("raw_readings", D2, data)


def test_write_table_read_table_exists(lake: Lake) -> None:
    assert not lake.exists("caches/profiles.parquet")
    assert lake.read_table("caches/profiles.parquet") is None
    first = pa.table({"meter_id": ["M1", "M2"], "kwh": [1.0, 2.0]})
    lake.write_table("caches/profiles.parquet", first)
    assert lake.exists("caches/profiles.parquet")
    assert lake.read_table("caches/profiles.parquet").equals(first)
    second = pa.table({"meter_id": ["M3"], "kwh": [3.0]})
    lake.write_table("caches/profiles.parquet", second)
    assert lake.read_table("caches/profiles.parquet").equals(second)
    lake.write_partition("raw_readings", D1, readings(D1))
    assert lake.exists("raw_readings/day=2026-03-16/part-0.parquet")


@pytest.mark.parametrize("path", ["", "/abs.parquet", "../up.parquet", "a//b.parquet"])
def test_invalid_paths_are_refused(lake: Lake, path: str) -> None:
    with pytest.raises(LakeError, match="invalid path"):
        lake.write_table(path, pa.table({"a": [1]}))


def test_invalid_table_names_are_refused(lake: Lake) -> None:
    for table in ("", "a/b", "../x"):
        with pytest.raises(LakeError, match="table name"):
            lake.write_partition(table, D1, readings(D1))


def test_lake_pickles_without_its_filesystem(lake: Lake) -> None:
    lake.write_partition("raw_readings", D1, readings(D1))
    clone = pickle.loads(pickle.dumps(lake))
    assert clone.read_partition("raw_readings", D1).equals(readings(D1))


def test_s3_layout_and_options(s3_settings: Settings) -> None:
    import boto3

    lake = Lake.from_settings(s3_settings)
    assert lake._s3_options["scheme"] == "http"
    assert lake._s3_options["endpoint_override"] == s3_settings.aws_endpoint_url.split("//")[1]
    lake.write_partition("raw_readings", D1, readings(D1))
    lake.write_table("caches/x.parquet", pa.table({"a": [1]}))
    bucket = s3_settings.lake_url.removeprefix("s3://").split("/")[0]
    client = boto3.client("s3", **s3_settings.aws_client_kwargs())
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["lake/caches/x.parquet", "lake/raw_readings/day=2026-03-16/part-0.parquet"]


def test_plain_path_and_file_url_are_the_same_lake(tmp_path) -> None:
    by_path = Lake(str(tmp_path / "lake"))
    by_url = Lake((tmp_path / "lake").as_uri())
    by_path.write_partition("t", D1, readings(D1))
    assert by_url.partitions("t") == [D1]
    with pytest.raises(LakeError, match="expected"):
        Lake("gs://bucket/x")
