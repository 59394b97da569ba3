"""Landing zone on a local folder."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat as stat_mod
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .base import LandedFile, LandingError, LandingProblem, LandingZone, _AlreadyExists, md5_hex

_CHUNK = 1 << 20
#: the name ``_tmp_write`` gives a write in flight: the only name a listing skips unreported
#: (it holds no landed file yet; one left by a crashed write never became one)
_IN_FLIGHT = re.compile(r"\..+\.tmp-[0-9a-f]{32}", re.DOTALL)


def path_from_file_url(url: str) -> Path:
    """``file:///abs/path`` (or a plain path) -> Path."""
    if "://" not in url:
        return Path(url).expanduser().resolve()
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        raise LandingError(f"not a local folder URL: {url!r} (expected file:///absolute/path)")
    return Path(unquote(parts.path))


class LocalLandingZone(LandingZone):
    """Files under a folder. Writes are atomic (temp file in the same folder, then a
    no-clobber link or rename); etags are MD5s cached by (path, size, mtime_ns)."""

    def __init__(self, root: str | Path):
        if isinstance(root, str) and "://" in root:
            self.root = path_from_file_url(root)
        else:
            self.root = Path(root).expanduser().resolve()
        self.url = self.root.as_uri()
        self._md5_cache: dict[str, tuple[int, int, str]] = {}

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def _etag(self, path: str, st: os.stat_result) -> str:
        cached = self._md5_cache.get(path)
        if cached is not None and cached[0] == st.st_size and cached[1] == st.st_mtime_ns:
            return cached[2]
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, lambda: hashlib.md5(usedforsecurity=False))
        etag = digest.hexdigest()
        self._md5_cache[path] = (st.st_size, st.st_mtime_ns, etag)
        return etag

    def _file(self, key: str, path: str, st: os.stat_result) -> LandedFile:
        return LandedFile(
            key=key,
            size=st.st_size,
            etag=self._etag(path, st),
            last_modified=datetime.fromtimestamp(st.st_mtime_ns / 1e9, UTC),
        )

    def _iter_files(
        self, prefix: str, start_after: str = ""
    ) -> Iterator[LandedFile | LandingProblem]:
        # Walk only the deepest folder the prefix names.
        folder = prefix.rpartition("/")[0]
        start = self._path(folder) if folder else self.root
        yield from self._walk(start, f"{folder}/" if folder else "", start_after)

    def _walk(
        self, folder: Path, key_prefix: str, start_after: str = ""
    ) -> Iterator[LandedFile | LandingProblem]:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            if not key_prefix:
                raise LandingError(f"cannot list landing zone {self.url}: {exc}") from exc
            yield LandingProblem(
                key_prefix,
                0,
                None,
                None,
                f"folder cannot be listed ({exc.strerror}): expected a folder the product can read",
            )
            return
        for entry in entries:
            if _IN_FLIGHT.fullmatch(entry.name):
                continue
            key = key_prefix + entry.name
            try:
                if entry.is_dir():
                    # every key below sorts before start_after: skip the folder unread
                    if key + "/\U0010ffff" <= start_after:
                        continue
                    yield from self._walk(Path(entry.path), key + "/", start_after)
                elif entry.is_file() and key > start_after:
                    yield self._listed(key, entry.path, entry.stat())
            except FileNotFoundError:
                continue  # vanished while listing

    def _listed(self, key: str, path: str, st: os.stat_result) -> LandedFile | LandingProblem:
        """The file, or a problem when its content cannot be read (no etag without it)."""
        try:
            return self._file(key, path, st)
        except FileNotFoundError:
            raise
        except OSError as exc:
            return LandingProblem(
                key,
                st.st_size,
                None,
                datetime.fromtimestamp(st.st_mtime_ns / 1e9, UTC),
                f"file cannot be read ({exc.strerror}): expected a file the product can read",
            )

    def _stat(self, key: str) -> LandedFile | None:
        path = self._path(key)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat_mod.S_ISREG(st.st_mode):
            return None
        return self._file(key, str(path), st)

    def _read(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise LandingError(f"no file {self._where(key)}") from None
        except OSError as exc:
            raise LandingError(f"cannot read {self._where(key)}: {exc}") from exc

    def _tmp_write(self, path: Path, chunks) -> Path:
        """Write ``chunks`` to a hidden temp file beside ``path`` (fsynced); return it."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise LandingError(f"cannot create the folder of {path}: a file is in the way") from exc
        tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
        try:
            with open(tmp, "xb") as f:
                for chunk in chunks:
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def _create(self, key: str, data: bytes) -> LandedFile:
        path = self._path(key)
        tmp = self._tmp_write(path, [data])
        try:
            try:
                os.link(tmp, path)  # atomic and never overwrites
            except FileExistsError:
                raise _AlreadyExists(key) from None
            except OSError:  # no hard links on this filesystem: check, then rename
                if path.exists():
                    raise _AlreadyExists(key) from None
                os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        st = os.stat(path)
        self._md5_cache[str(path)] = (st.st_size, st.st_mtime_ns, md5_hex(data))
        return self._file(key, str(path), st)

    def _replace(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = self._tmp_write(path, [data])
        try:
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def _copy(self, file: LandedFile, dest_key: str) -> None:
        src = self._path(file.key)
        digest = hashlib.md5(usedforsecurity=False)

        def chunks():
            with open(src, "rb") as f:
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
                    yield chunk

        try:
            tmp = self._tmp_write(self._path(dest_key), chunks())
        except FileNotFoundError:
            raise LandingError(f"no file {self._where(file.key)} to quarantine") from None
        try:
            if digest.hexdigest() != file.etag:
                raise LandingError(
                    f"{self._where(file.key)} changed since it was listed (etag "
                    f"{digest.hexdigest()}, expected {file.etag}); not quarantined"
                )
            os.replace(tmp, self._path(dest_key))
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
