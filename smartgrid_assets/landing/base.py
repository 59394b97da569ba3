"""The landing zone interface, shared by the local-folder and S3/MinIO backends.

Keys are '/'-separated paths relative to the zone root (``readings/north/north_2026-03-16.csv``).
Landed files are never modified or deleted: ``put`` refuses to change the bytes under an existing
key, and ``quarantine`` copies a bad file (with a JSON reason beside it) under
``QUARANTINE_PREFIX`` instead of moving it.

``LandedFile.etag`` is the MD5 hex of the content on both backends, so the same bytes have the
same etag wherever they landed.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

QUARANTINE_PREFIX = "quarantine/"
REASON_SUFFIX = ".reason.json"


class LandingError(Exception):
    """A landing-zone operation failed; the message names the key and the zone URL."""


@dataclass(frozen=True, order=True)
class LandedFile:
    key: str
    size: int
    etag: str  # MD5 hex of the content
    last_modified: datetime  # UTC-aware


class _AlreadyExists(Exception):
    """Internal: a no-clobber create found the key taken."""


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _is_hidden(key: str) -> bool:
    """Keys with a segment starting with '.' (temp files, .DS_Store, ...) are not landed files."""
    return any(part.startswith(".") for part in key.split("/"))


def check_key(key: str) -> str:
    """Validate a file key: relative, '/'-separated, no empty, '.' or '..' segments."""
    if not isinstance(key, str) or not key:
        raise LandingError(f"invalid landing key {key!r}: expected a non-empty relative path")
    if "\\" in key or key.startswith("/") or key.endswith("/"):
        raise LandingError(
            f"invalid landing key {key!r}: use '/'-separated paths relative to the zone root"
        )
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise LandingError(f"invalid landing key {key!r}: empty, '.' or '..' path segment")
    return key


def check_prefix(prefix: str) -> str:
    if prefix == "":
        return prefix
    if not isinstance(prefix, str) or "\\" in prefix or prefix.startswith("/"):
        raise LandingError(f"invalid landing prefix {prefix!r}: expected a relative '/' path")
    if any(part in (".", "..") for part in prefix.split("/")[:-1]) or "//" in prefix:
        raise LandingError(f"invalid landing prefix {prefix!r}: '.', '..' or empty segment")
    return prefix


class LandingZone(ABC):
    """Where head-end exports land: a local folder or an S3/MinIO prefix.

    Backends implement the small primitives (``_iter_files``, ``_stat``, ``_read``,
    ``_create``, ``_replace``, ``_copy``); the public behaviour lives here so both backends
    behave the same.
    """

    url: str

    # ---- backend primitives -------------------------------------------------------------
    @abstractmethod
    def _iter_files(self, prefix: str, start_after: str = "") -> Iterator[LandedFile]:
        """Every file whose key starts with ``prefix`` (quarantine included), any order."""

    @abstractmethod
    def _stat(self, key: str) -> LandedFile | None:
        """The file at ``key``, or None when there is none."""

    @abstractmethod
    def _read(self, key: str) -> bytes:
        """The bytes at ``key``; raises LandingError naming key and URL when absent."""

    @abstractmethod
    def _create(self, key: str, data: bytes) -> LandedFile:
        """Atomically create ``key``; raise ``_AlreadyExists`` if it exists (never overwrite)."""

    @abstractmethod
    def _replace(self, key: str, data: bytes) -> None:
        """Atomically write ``key``, replacing it if present (only used under quarantine/)."""

    @abstractmethod
    def _copy(self, file: LandedFile, dest_key: str) -> None:
        """Copy ``file`` to ``dest_key`` (replacing it), verifying the copy's MD5 is
        ``file.etag``; raise LandingError if the source no longer has that content."""

    # ---- public interface ---------------------------------------------------------------
    def _where(self, key: str) -> str:
        return f"{key!r} in landing zone {self.url}"

    def list(self, prefix: str = "", start_after: str = "") -> list[LandedFile]:
        """Landed files whose key starts with ``prefix`` (a plain string prefix, as on S3),
        recursively, sorted by key; with ``start_after`` only keys after it (S3's StartAfter),
        so a cursor lists only what arrived since. Never lists quarantine or hidden
        ('.'-prefixed) files."""
        prefix = check_prefix(prefix)
        files = [
            f
            for f in self._iter_files(prefix, start_after)
            if f.key.startswith(prefix)
            and f.key > start_after
            and not f.key.startswith(QUARANTINE_PREFIX)
            and not _is_hidden(f.key)
        ]
        return sorted(files)

    def read_bytes(self, key: str) -> bytes:
        return self._read(check_key(key))

    def stat(self, key: str) -> LandedFile | None:
        """The landed file at ``key``, or None."""
        return self._stat(check_key(key))

    def put(self, key: str, data: bytes) -> LandedFile:
        """Land ``data`` under ``key``.

        The same bytes again are a no-op returning the existing file; different bytes under an
        existing key raise LandingError (landed files are never modified: use a new key).
        """
        key = check_key(key)
        if key.startswith(QUARANTINE_PREFIX):
            raise LandingError(f"cannot land {self._where(key)}: {QUARANTINE_PREFIX} is reserved")
        if _is_hidden(key):
            raise LandingError(
                f"cannot land {self._where(key)}: keys with '.'-prefixed segments are hidden"
            )
        data = bytes(data)
        existing = self._stat(key)
        if existing is None:
            try:
                return self._create(key, data)
            except _AlreadyExists:  # somebody landed it between our check and our write
                existing = self._stat(key)
                if existing is None:
                    raise LandingError(
                        f"cannot land {self._where(key)}: the path is taken by a folder"
                    ) from None
        etag = md5_hex(data)
        if existing.etag == etag and existing.size == len(data):
            return existing
        raise LandingError(
            f"{self._where(key)} already holds different content (etag {existing.etag}, "
            f"new {etag}): landed files are never modified; land the new version under a new key"
        )

    def quarantine(self, file: LandedFile, reason: str, details: dict | None = None) -> str:
        """Copy ``file`` to ``quarantine/<key>`` with ``quarantine/<key>.reason.json`` beside it.

        The original is never modified or deleted. Idempotent for the same (key, etag): an
        existing reason document for them is left as it is. Returns the quarantine copy's key.
        """
        key = check_key(file.key)
        if key.startswith(QUARANTINE_PREFIX):
            raise LandingError(f"{self._where(key)} is already in quarantine")
        dest = QUARANTINE_PREFIX + key
        reason_key = dest + REASON_SUFFIX
        previous = self._read_reason(reason_key)
        if (
            previous is not None
            and previous.get("etag") == file.etag
            and self._stat(dest) is not None
        ):
            return dest
        doc = {
            "key": key,
            "etag": file.etag,
            "size": file.size,
            "reason": reason,
            "details": details or {},
            "quarantined_at": datetime.now(UTC).isoformat(),
        }
        try:
            body = json.dumps(doc, indent=2, default=str).encode()
        except (TypeError, ValueError) as exc:
            raise LandingError(f"quarantine details of {self._where(key)}: {exc}") from exc
        # The copy first, the reason last: a reason document means the copy is complete.
        self._copy(file, dest)
        self._replace(reason_key, body)
        return dest

    def _read_reason(self, reason_key: str) -> dict[str, Any] | None:
        if self._stat(reason_key) is None:
            return None
        try:
            doc = json.loads(self._read(reason_key))
        except (LandingError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def quarantined(self) -> list[dict]:
        """The reason documents of every quarantined file, sorted by the original key."""
        docs = []
        for f in self._iter_files(QUARANTINE_PREFIX):
            if f.key.endswith(REASON_SUFFIX) and f.key.startswith(QUARANTINE_PREFIX):
                doc = self._read_reason(f.key)
                if doc is not None and isinstance(doc.get("key"), str):
                    docs.append(doc)
        return sorted(docs, key=lambda d: d["key"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
