"""The landing zone interface, shared by the local-folder and S3/MinIO backends.

Keys are '/'-separated paths relative to the zone root (``readings/north/north_2026-03-16.csv``).
Landed files are never modified or deleted: ``put`` refuses to change the bytes under an existing
key, and ``quarantine`` copies a bad file (with a JSON reason beside it) under
``QUARANTINE_PREFIX`` instead of moving it.

``LandedFile.etag`` is the MD5 hex of the content on both backends, so the same bytes have the
same etag wherever they landed.

A file found under a key the zone cannot use (see ``key_problem``: a backslash, an empty, '.' or
'..' segment, a name starting with '.', a control character, too long) is neither listed nor
skipped in silence: ``scan`` reports it as a ``LandingProblem``, and ``quarantine_problem``
copies it under a safe key, ``UNUSABLE_PREFIX<sha256 of the key>/<sanitised name>``, with the
reason beside it. Only a backend's own temp files of writes in flight are skipped unreported.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

QUARANTINE_PREFIX = "quarantine/"
REASON_SUFFIX = ".reason.json"
#: where copies of files found under unusable keys go, one folder per key
UNUSABLE_PREFIX = QUARANTINE_PREFIX + "_unusable_keys/"
MAX_KEY_BYTES = 1024  # S3's own limit for a whole key, in UTF-8
MAX_SEGMENT_BYTES = 255  # a file name on common filesystems (NAME_MAX), in UTF-8
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class LandingError(Exception):
    """A landing-zone operation failed; the message names the key and the zone URL."""


@dataclass(frozen=True, order=True)
class LandedFile:
    key: str
    size: int
    etag: str  # MD5 hex of the content
    last_modified: datetime  # UTC-aware


@dataclass(frozen=True)
class LandingProblem:
    """A file found under a key the zone cannot use: reported, never ingested or skipped."""

    key: str  # as found
    size: int
    etag: str | None  # None when the file could not even be read
    last_modified: datetime | None
    reason: str  # the rule broken and what is expected
    quarantine_key: str | None = None  # where its copy is, once copied

    @property
    def text_key(self) -> str:
        """The key as text any table holds: bytes that are not UTF-8 (a folder can hand back
        raw bytes) as ``\\xNN``, NUL as ``\\x00``; everything else as found."""
        raw = self.key.encode("utf-8", "surrogateescape")
        return raw.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


@dataclass(frozen=True)
class Listing:
    """What a listing found: usable files, and the files under keys the zone cannot use."""

    files: list[LandedFile]
    problems: list[LandingProblem]


class _AlreadyExists(Exception):
    """Internal: a no-clobber create found the key taken."""


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot name a landed file (the rule broken, then what is expected), or None.

    A usable key means the same file on a folder and on S3 and is safe in paths, logs and
    tables: '/'-separated names relative to the zone root, none empty, '.', '..' or hidden
    (starting with '.'), no backslash or control character, at most MAX_KEY_BYTES in all and
    MAX_SEGMENT_BYTES per name.
    """
    if not isinstance(key, str) or not key:
        return "empty key: expected a non-empty '/'-separated path relative to the zone root"
    try:
        size = len(key.encode())
    except UnicodeEncodeError:
        return "name is not UTF-8: expected names in UTF-8"
    if "\\" in key:
        return "backslash in key: expected '/' as the only separator and no '\\' in names"
    if control := _CONTROL.search(key):
        return (
            f"control character U+{ord(control.group()):04X} at position {control.start()}: "
            "expected printable characters only"
        )
    if key.startswith("/") or key.endswith("/"):
        return "leading or trailing '/': expected a file path relative to the zone root"
    if size > MAX_KEY_BYTES:
        return f"key of {size} bytes: expected at most {MAX_KEY_BYTES} bytes (UTF-8)"
    for part in key.split("/"):
        if part == "":
            return "empty path segment ('//'): expected exactly one '/' between names"
        if part in (".", ".."):
            return f"'{part}' path segment: expected plain names, no relative steps"
        if part.startswith("."):
            return f"hidden name {part!r} (starts with '.'): expected names not starting with '.'"
        if len(part.encode()) > MAX_SEGMENT_BYTES:
            return (
                f"name of {len(part.encode())} bytes: expected at most {MAX_SEGMENT_BYTES} "
                "bytes (UTF-8) per name"
            )
    return None


def check_key(key: str) -> str:
    """``key`` if the zone can use it (see ``key_problem``); else LandingError saying why."""
    problem = key_problem(key)
    if problem is not None:
        raise LandingError(f"invalid landing key {key!r}: {problem}")
    return key


def unusable_quarantine_key(key: str) -> str:
    """The safe key of the quarantine copy of a file under the unusable ``key``: one folder
    per raw key (its SHA-256), the name with unsafe characters as '_' so it stays readable."""
    raw = key.encode("utf-8", "surrogateescape")
    name = _UNSAFE.sub("_", key.rsplit("/", 1)[-1])[-100:].lstrip(".") or "file"
    return f"{UNUSABLE_PREFIX}{hashlib.sha256(raw).hexdigest()}/{name}"


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
    def _iter_files(
        self, prefix: str, start_after: str = ""
    ) -> Iterator[LandedFile | LandingProblem]:
        """Every file whose key starts with ``prefix`` (quarantine included), any order, under
        the key as found; a file the backend cannot even read as a LandingProblem."""

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

    def scan(self, prefix: str = "", start_after: str = "") -> Listing:
        """Files whose key starts with ``prefix`` (a plain string prefix, as on S3),
        recursively, sorted by key; with ``start_after`` only keys after it (S3's StartAfter),
        so a cursor lists only what arrived since. Usable files and, apart, the problems:
        files under keys the zone cannot use (``key_problem``) or cannot read. Quarantine is
        never listed."""
        prefix = check_prefix(prefix)
        files: list[LandedFile] = []
        problems: list[LandingProblem] = []
        for found in self._iter_files(prefix, start_after):
            key = found.key
            if (
                not key.startswith(prefix)
                or key <= start_after
                or key.startswith(QUARANTINE_PREFIX)
            ):
                continue
            if isinstance(found, LandingProblem):
                problems.append(found)
            elif (reason := key_problem(key)) is not None:
                problems.append(
                    LandingProblem(key, found.size, found.etag, found.last_modified, reason)
                )
            else:
                files.append(found)
        return Listing(sorted(files), sorted(problems, key=lambda p: p.key))

    def list(self, prefix: str = "", start_after: str = "") -> list[LandedFile]:
        """The usable files of ``scan``: what a step may read."""
        return self.scan(prefix, start_after).files

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
        return self._copy_with_reason(file, QUARANTINE_PREFIX + key, reason, details or {})

    def quarantine_problem(self, problem: LandingProblem) -> LandingProblem:
        """Copy the file under an unusable key to ``unusable_quarantine_key(key)``, with the
        reason document (the original key in ``key``) beside it; idempotent for the same
        (key, etag). Returns the problem with its ``quarantine_key``, or, when the file cannot
        be copied, with why in its reason: never raises, a bad key must not stop ingestion."""
        if problem.etag is None or problem.last_modified is None:
            return problem  # unreadable: its reason says so
        file = LandedFile(problem.key, problem.size, problem.etag, problem.last_modified)
        dest = unusable_quarantine_key(problem.key)
        try:
            self._copy_with_reason(file, dest, problem.reason, {"key_as_text": problem.text_key})
        except (LandingError, OSError) as exc:
            return dataclasses.replace(
                problem, reason=f"{problem.reason}; not copied to quarantine: {exc}"
            )
        return dataclasses.replace(problem, quarantine_key=dest)

    def _copy_with_reason(self, file: LandedFile, dest: str, reason: str, details: dict) -> str:
        """Copy ``file`` to ``dest`` and write its reason document, unless done for its etag."""
        reason_key = dest + REASON_SUFFIX
        previous = self._read_reason(reason_key)
        if (
            previous is not None
            and previous.get("etag") == file.etag
            and self._stat(dest) is not None
        ):
            return dest
        doc = {
            "key": file.key,
            "etag": file.etag,
            "size": file.size,
            "reason": reason,
            "details": details,
            "quarantined_at": datetime.now(UTC).isoformat(),
        }
        try:
            body = json.dumps(doc, indent=2, default=str).encode()
        except (TypeError, ValueError) as exc:
            raise LandingError(f"quarantine details of {self._where(file.key)}: {exc}") from exc
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
        """The reason documents of every quarantined file, sorted by the original key.

        Copies of files under unusable keys are not here (their keys cannot be read back
        through the zone): ``scan`` reports those."""
        docs = []
        for f in self._iter_files(QUARANTINE_PREFIX):
            if (
                isinstance(f, LandedFile)
                and f.key.endswith(REASON_SUFFIX)
                and f.key.startswith(QUARANTINE_PREFIX)
            ):
                doc = self._read_reason(f.key)
                key = doc.get("key") if doc is not None else None
                if isinstance(key, str) and key_problem(key) is None:
                    docs.append(doc)
        return sorted(docs, key=lambda d: d["key"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
