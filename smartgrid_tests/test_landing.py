"""Landing zone, on a local folder and on S3 (moto server over real HTTP)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from smartgrid_assets.landing import (
    QUARANTINE_PREFIX,
    LandedFile,
    LandingError,
    LandingZone,
    LocalLandingZone,
    S3LandingZone,
    landing_zone,
)
from smartgrid_assets.settings import Settings

CSV = b"meter_id,ts,kwh\nM1,2026-03-16T00:00:00Z,0.25\n"


@pytest.fixture(params=["local", "s3"])
def settings(request: pytest.FixtureRequest) -> Settings:
    return request.getfixturevalue(f"{request.param}_settings")


@pytest.fixture
def zone(settings: Settings) -> LandingZone:
    return landing_zone(settings)


def test_factory_picks_the_backend(local_settings: Settings, s3_settings: Settings) -> None:
    local = landing_zone(local_settings)
    s3 = landing_zone(s3_settings)
    assert isinstance(local, LocalLandingZone)
    assert local.url == local_settings.landing_url
    assert isinstance(s3, S3LandingZone)
    assert s3.url == s3_settings.landing_url
    assert s3.bucket.startswith("sg-test-") and s3.prefix == "landing/"


def test_put_list_read(zone: LandingZone) -> None:
    before = datetime.now(UTC) - timedelta(minutes=5)
    landed = zone.put("readings/north/north_2026-03-16.csv", CSV)
    zone.put("registry/meters.csv", b"meter_id\nM1\n")
    zone.put("weather/weather_observed.csv", b"region,ts,temperature_c\n")

    assert landed == LandedFile(
        key="readings/north/north_2026-03-16.csv",
        size=len(CSV),
        etag=hashlib.md5(CSV).hexdigest(),
        last_modified=landed.last_modified,
    )
    assert landed.last_modified.tzinfo is not None
    assert landed.last_modified.utcoffset() == timedelta(0)
    assert before <= landed.last_modified <= datetime.now(UTC) + timedelta(minutes=5)

    listed = zone.list()
    assert [f.key for f in listed] == [
        "readings/north/north_2026-03-16.csv",
        "registry/meters.csv",
        "weather/weather_observed.csv",
    ]
    assert listed[0] == landed
    assert [f.key for f in zone.list("readings/")] == ["readings/north/north_2026-03-16.csv"]
    assert [f.key for f in zone.list("readings/north/north_")] == [landed.key]
    assert [f.key for f in zone.list("re")] == [landed.key, "registry/meters.csv"]
    assert zone.list("nothing/here/") == []
    assert zone.read_bytes(landed.key) == CSV
    assert zone.stat(landed.key) == landed
    assert zone.stat("readings/missing.csv") is None


def test_empty_zone_lists_nothing(zone: LandingZone) -> None:
    assert zone.list() == []
    assert zone.quarantined() == []


def test_identical_put_is_a_no_op(zone: LandingZone) -> None:
    first = zone.put("readings/a.csv", CSV)
    again = zone.put("readings/a.csv", CSV)
    assert again == first
    assert zone.list() == [first]


def test_different_bytes_under_the_same_key_raise(zone: LandingZone) -> None:
    first = zone.put("readings/a.csv", CSV)
    with pytest.raises(LandingError, match=r"readings/a\.csv.*never modified"):
        zone.put("readings/a.csv", CSV + b"M2,2026-03-16T00:00:00Z,9.0\n")
    assert zone.read_bytes("readings/a.csv") == CSV
    assert zone.list() == [first]


def test_a_racing_put_never_overwrites(zone: LandingZone, monkeypatch: pytest.MonkeyPatch) -> None:
    first = zone.put("readings/a.csv", CSV)
    real_stat = zone._stat
    calls: list[str] = []

    def stale_stat(key: str):  # the first look misses the file another writer just landed
        calls.append(key)
        return None if len(calls) == 1 else real_stat(key)

    monkeypatch.setattr(zone, "_stat", stale_stat)
    with pytest.raises(LandingError, match="never modified"):
        zone.put("readings/a.csv", b"other bytes")
    calls.clear()
    assert zone.put("readings/a.csv", CSV) == first
    monkeypatch.undo()
    assert zone.read_bytes("readings/a.csv") == CSV


def test_s3_store_without_conditional_writes(
    s3_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    zone = landing_zone(s3_settings)
    assert isinstance(zone, S3LandingZone)
    real_put = zone.client.put_object

    def put_object(**kwargs):
        if "IfNoneMatch" in kwargs:
            error = {"Error": {"Code": "NotImplemented", "Message": "If-None-Match"}}
            raise ClientError(error, "PutObject")
        return real_put(**kwargs)

    monkeypatch.setattr(zone.client, "put_object", put_object)
    landed = zone.put("readings/a.csv", CSV)
    assert zone.read_bytes(landed.key) == CSV
    with pytest.raises(LandingError, match="never modified"):
        zone.put("readings/a.csv", b"other")


def test_reading_a_missing_key_names_key_and_zone(zone: LandingZone) -> None:
    with pytest.raises(LandingError) as err:
        zone.read_bytes("readings/nope.csv")
    assert "readings/nope.csv" in str(err.value)
    assert zone.url in str(err.value)


INVALID_KEYS = ["", "/abs.csv", "a//b.csv", "a/../b.csv", "a/./b.csv", "a/", "a\\b.csv"]
TOO_LONG = ["a/" + "b" * 256, "a/" + "/".join(["b" * 200] * 6)]


@pytest.mark.parametrize("key", [*INVALID_KEYS, "a/\x1fb.csv", *TOO_LONG])
def test_invalid_keys_are_refused(zone: LandingZone, key: str) -> None:
    with pytest.raises(LandingError, match="invalid landing key"):
        zone.put(key, CSV)


def test_reserved_and_hidden_keys_are_refused(zone: LandingZone) -> None:
    with pytest.raises(LandingError, match="reserved"):
        zone.put("quarantine/x.csv", CSV)
    with pytest.raises(LandingError, match="hidden"):
        zone.put("readings/.x.csv", CSV)


def _seed(zone: LandingZone, keys: list[str]) -> None:
    """Drop files the way a head-end would (no zone.put: one request per file on S3)."""
    if isinstance(zone, S3LandingZone):
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(
                pool.map(
                    lambda k: zone.client.put_object(
                        Bucket=zone.bucket, Key=zone.prefix + k, Body=k.encode()
                    ),
                    keys,
                )
            )
    else:
        assert isinstance(zone, LocalLandingZone)
        for key in keys:
            path = zone.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(key.encode())


def test_listing_more_than_1000_files_is_complete_and_sorted(zone: LandingZone) -> None:
    keys = [f"readings/r{i % 7}/file_{i:05d}.csv" for i in range(1100)]
    _seed(zone, keys[10:])
    with ThreadPoolExecutor(max_workers=4) as pool:
        landed = list(pool.map(lambda k: zone.put(k, k.encode()), keys[:10]))
    if isinstance(zone, S3LandingZone):  # more than one page of list_objects_v2
        assert zone.client.list_objects_v2(Bucket=zone.bucket, Prefix=zone.prefix)["IsTruncated"]
    listed = zone.list()
    assert len(listed) == 1100
    assert [f.key for f in listed] == sorted(keys)
    assert set(landed) <= set(listed)
    assert all(f.etag == hashlib.md5(f.key.encode()).hexdigest() for f in listed)
    assert all(f.size == len(f.key) for f in listed)
    assert [f.key for f in zone.list("readings/r3/")] == sorted(
        k for k in keys if k.startswith("readings/r3/")
    )


def test_etag_is_the_content_md5_on_both_backends(
    local_settings: Settings, s3_settings: Settings
) -> None:
    local, s3 = landing_zone(local_settings), landing_zone(s3_settings)
    a_local, a_s3 = local.put("x/a.csv", CSV), s3.put("x/a.csv", CSV)
    assert a_local.etag == a_s3.etag == hashlib.md5(CSV).hexdigest()
    b_local, b_s3 = local.put("x/b.csv", CSV + b"\n"), s3.put("x/b.csv", CSV + b"\n")
    assert b_local.etag == b_s3.etag != a_local.etag
    assert [f.etag for f in local.list()] == [f.etag for f in s3.list()]


def test_local_etag_cache_follows_content(local_settings: Settings) -> None:
    zone = landing_zone(local_settings)
    assert isinstance(zone, LocalLandingZone)
    path = zone.root / "readings" / "x.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"one")
    assert zone.list()[0].etag == hashlib.md5(b"one").hexdigest()
    path.write_bytes(b"three")  # an external tool rewrote it: size and mtime change
    assert zone.list()[0].etag == hashlib.md5(b"three").hexdigest()
    # this zone's temp files of in-flight writes are skipped; other hidden files are reported
    (path.parent / f".x.csv.tmp-{'0' * 32}").write_bytes(b"partial")
    (path.parent / ".x.csv.tmp-123").write_bytes(b"partial")
    (zone.root / ".DS_Store").write_bytes(b"")
    assert [f.key for f in zone.list()] == ["readings/x.csv"]
    assert [p.key for p in zone.scan().problems] == [".DS_Store", "readings/.x.csv.tmp-123"]


def test_s3_multipart_etag_is_replaced_by_the_content_md5(s3_settings: Settings) -> None:
    zone = landing_zone(s3_settings)
    assert isinstance(zone, S3LandingZone)
    client = zone.client
    part = b"x" * (5 * 1024 * 1024)
    key = zone.prefix + "readings/big.csv"
    upload = client.create_multipart_upload(Bucket=zone.bucket, Key=key)
    etags = [
        client.upload_part(
            Bucket=zone.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=n, Body=body
        )["ETag"]
        for n, body in ((1, part), (2, b"tail"))
    ]
    client.complete_multipart_upload(
        Bucket=zone.bucket,
        Key=key,
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": e, "PartNumber": n} for n, e in enumerate(etags, 1)]},
    )
    assert "-" in client.head_object(Bucket=zone.bucket, Key=key)["ETag"]
    (big,) = zone.list()
    assert big.etag == hashlib.md5(part + b"tail").hexdigest()
    assert zone.put("readings/big.csv", part + b"tail") == big  # identical re-put still a no-op
    zone.quarantine(big, "too big")
    assert zone.quarantined()[0]["etag"] == big.etag


def test_quarantine_copies_and_explains(zone: LandingZone) -> None:
    bad = zone.put("readings/south/bad.csv", b"not,a,valid\nexport")
    good = zone.put("readings/south/good.csv", CSV)

    dest = zone.quarantine(bad, "unparseable", {"line": 2, "error": "too few columns"})
    assert dest == f"{QUARANTINE_PREFIX}readings/south/bad.csv"

    # the copy and its reason are there ...
    assert zone.read_bytes(dest) == b"not,a,valid\nexport"
    reason = json.loads(zone.read_bytes(dest + ".reason.json"))
    assert reason["key"] == bad.key
    assert reason["etag"] == bad.etag
    assert reason["size"] == bad.size
    assert reason["reason"] == "unparseable"
    assert reason["details"] == {"line": 2, "error": "too few columns"}
    assert datetime.fromisoformat(reason["quarantined_at"]).tzinfo is not None
    assert zone.quarantined() == [reason]

    # ... the original is untouched and the quarantine is not listed
    assert zone.read_bytes(bad.key) == b"not,a,valid\nexport"
    assert zone.stat(bad.key) == bad
    assert zone.list() == [bad, good]
    assert zone.list(QUARANTINE_PREFIX) == []

    # idempotent: the reason document is not rewritten
    assert zone.quarantine(bad, "another reason") == dest
    assert zone.quarantined() == [reason]

    zone.quarantine(good, "schema")
    assert [d["key"] for d in zone.quarantined()] == [bad.key, good.key]
    assert zone.quarantined()[1]["details"] == {}
    assert zone.list() == [bad, good]


def test_quarantine_refuses_a_file_that_changed(zone: LandingZone) -> None:
    landed = zone.put("readings/a.csv", CSV)
    stale = dataclasses.replace(landed, etag=hashlib.md5(b"something else").hexdigest())
    with pytest.raises(LandingError, match="changed since it was listed"):
        zone.quarantine(stale, "bad")
    assert zone.quarantined() == []
    assert zone.read_bytes("readings/a.csv") == CSV


def test_quarantine_of_a_missing_file_raises(zone: LandingZone) -> None:
    ghost = LandedFile("readings/ghost.csv", 3, hashlib.md5(b"abc").hexdigest(), datetime.now(UTC))
    with pytest.raises(LandingError, match=r"readings/ghost\.csv"):
        zone.quarantine(ghost, "bad")


def test_s3_deep_prefix(s3_settings: Settings) -> None:
    bucket = s3_settings.landing_url.removeprefix("s3://").split("/")[0]
    kwargs = s3_settings.aws_client_kwargs()
    client = boto3.client("s3", **kwargs)
    client.put_object(Bucket=bucket, Key="deep/prefix-sibling/x.csv", Body=b"other")
    client.put_object(Bucket=bucket, Key="deep/other.csv", Body=b"other")

    for url in (f"s3://{bucket}/deep/prefix", f"s3://{bucket}/deep/prefix/"):
        zone = S3LandingZone(url, client_kwargs=kwargs)
        assert zone.prefix == "deep/prefix/"
        landed = zone.put("readings/a.csv", CSV)
        assert landed.key == "readings/a.csv"
        assert [f.key for f in zone.list()] == ["readings/a.csv"]
        assert zone.read_bytes("readings/a.csv") == CSV
        zone.quarantine(landed, "bad")
        assert [d["key"] for d in zone.quarantined()] == ["readings/a.csv"]

    objects = client.list_objects_v2(Bucket=bucket, Prefix="deep/")["Contents"]
    assert sorted(o["Key"] for o in objects) == [
        "deep/other.csv",
        "deep/prefix-sibling/x.csv",
        "deep/prefix/quarantine/readings/a.csv",
        "deep/prefix/quarantine/readings/a.csv.reason.json",
        "deep/prefix/readings/a.csv",
    ]
    # the whole bucket as a zone sees everything under its own keys
    root = S3LandingZone(f"s3://{bucket}", client_kwargs=kwargs)
    assert "deep/prefix/readings/a.csv" in [f.key for f in root.list("deep/")]


def test_s3_missing_bucket_is_a_clear_error(s3_settings: Settings) -> None:
    zone = S3LandingZone("s3://sg-no-such-bucket/x", client_kwargs=s3_settings.aws_client_kwargs())
    with pytest.raises(LandingError, match="sg-no-such-bucket"):
        zone.list()


def test_unknown_url_scheme(local_settings: Settings) -> None:
    with pytest.raises(LandingError, match="SMARTGRID_LANDING_URL"):
        landing_zone(dataclasses.replace(local_settings, landing_url="ftp://host/x"))
