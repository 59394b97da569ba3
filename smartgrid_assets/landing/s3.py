"""Landing zone on S3 or MinIO (boto3; MinIO through ``endpoint_url``)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from .base import LandedFile, LandingError, LandingZone, _AlreadyExists

_CHUNK = 1 << 20
_MISSING = ("NoSuchKey", "404", "NotFound")


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ("bucket", "some/prefix/"); prefix is '' or ends in '/'."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise LandingError(f"not an S3 URL: {url!r} (expected s3://bucket/prefix)")
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class S3LandingZone(LandingZone):
    """Objects under ``s3://bucket/prefix``; keys are relative to the prefix.

    ``etag`` is S3's ETag without quotes, which is the content MD5 for single-part uploads
    (everything ``put`` writes). Objects uploaded elsewhere in several parts have an ETag
    ``<md5-of-md5s>-<parts>``; for those the MD5 is computed by reading the object once and
    cached per (key, ETag) in the instance.
    """

    def __init__(
        self, url: str, *, client: Any = None, client_kwargs: dict[str, Any] | None = None
    ):
        self.bucket, self.prefix = parse_s3_url(url)
        self.url = url
        if client is None:
            import boto3

            client = boto3.client("s3", **(client_kwargs or {}))
        self.client = client
        self._md5_cache: dict[tuple[str, str], str] = {}

    # ---- helpers ------------------------------------------------------------------------
    def _wrap(self, action: str, key: str, exc: Exception) -> LandingError:
        """A LandingError naming the key and the zone for a boto3 error."""
        code = _error_code(exc)
        if code in _MISSING:
            return LandingError(f"no file {self._where(key)}")
        if code == "NoSuchBucket":
            return LandingError(
                f"cannot {action} {self._where(key)}: bucket {self.bucket!r} does not exist"
            )
        return LandingError(f"cannot {action} {self._where(key)}: {exc}")

    @contextlib.contextmanager
    def _errors(self, action: str, key: str):
        try:
            yield
        except (ClientError, BotoCoreError) as exc:
            raise self._wrap(action, key, exc) from exc

    def _etag(self, full_key: str, raw_etag: str) -> str:
        etag = raw_etag.strip('"')
        if "-" not in etag:
            return etag
        cached = self._md5_cache.get((full_key, etag))
        if cached is None:
            digest = hashlib.md5(usedforsecurity=False)
            with self._errors("read", full_key[len(self.prefix) :]):
                body = self.client.get_object(Bucket=self.bucket, Key=full_key, IfMatch=raw_etag)
                for chunk in body["Body"].iter_chunks(_CHUNK):
                    digest.update(chunk)
            cached = self._md5_cache[(full_key, etag)] = digest.hexdigest()
        return cached

    def _file(self, key: str, size: int, raw_etag: str, last_modified: datetime) -> LandedFile:
        return LandedFile(
            key=key,
            size=int(size),
            etag=self._etag(self.prefix + key, raw_etag),
            last_modified=last_modified.astimezone(UTC),
        )

    # ---- primitives ---------------------------------------------------------------------
    def _iter_files(self, prefix: str, start_after: str = "") -> Iterator[LandedFile]:
        paginator = self.client.get_paginator("list_objects_v2")
        options = {"StartAfter": self.prefix + start_after} if start_after else {}
        with self._errors("list", prefix):
            for page in paginator.paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix, **options
            ):
                for obj in page.get("Contents", []):
                    key = obj["Key"][len(self.prefix) :]
                    if (not key or key.endswith("/")) and obj["Size"] == 0:
                        continue  # folder markers; one holding bytes is reported by scan()
                    yield self._file(key, obj["Size"], obj["ETag"], obj["LastModified"])

    def _stat(self, key: str) -> LandedFile | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.prefix + key)
        except (ClientError, BotoCoreError) as exc:
            if _error_code(exc) in _MISSING:
                return None
            raise self._wrap("stat", key, exc) from exc
        return self._file(key, head["ContentLength"], head["ETag"], head["LastModified"])

    def _read(self, key: str) -> bytes:
        with self._errors("read", key):
            return self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()

    def _create(self, key: str, data: bytes) -> LandedFile:
        md5 = hashlib.md5(data, usedforsecurity=False).digest()
        put = {
            "Bucket": self.bucket,
            "Key": self.prefix + key,
            "Body": data,
            "ContentMD5": base64.b64encode(md5).decode(),  # the store verifies what it got
        }
        try:
            self.client.put_object(**put, IfNoneMatch="*")  # conditional write: never overwrite
        except (ClientError, BotoCoreError) as exc:
            code = _error_code(exc)
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise _AlreadyExists(key) from None
            if code != "NotImplemented":
                raise self._wrap("land", key, exc) from exc
            # A store without conditional writes: put() checked the key is free just before.
            with self._errors("land", key):
                self.client.put_object(**put)
        landed = self._stat(key)
        if landed is None:
            raise LandingError(f"{self._where(key)} vanished right after it was written")
        return landed

    def _replace(self, key: str, data: bytes) -> None:
        with self._errors("write", key):
            self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)

    def _copy(self, file: LandedFile, dest_key: str) -> None:
        with self._errors("quarantine", file.key):
            result = self.client.copy_object(
                Bucket=self.bucket,
                Key=self.prefix + dest_key,
                CopySource={"Bucket": self.bucket, "Key": self.prefix + file.key},
            )
        # A copy is a single-part object, so its ETag is the MD5 of what was copied.
        copied = result["CopyObjectResult"]["ETag"].strip('"')
        if copied != file.etag:
            raise LandingError(
                f"{self._where(file.key)} changed since it was listed (etag {copied}, "
                f"expected {file.etag}); not quarantined"
            )
