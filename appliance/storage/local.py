"""Artifacts as files under one directory (the appliance default: ``<data dir>/storage``)."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable, Generator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO
from urllib.parse import quote

from appliance.common.errors import ArtifactNotFound, StorageError
from appliance.storage.base import (
    DEFAULT_CHUNK_SIZE,
    Storage,
    StoredObject,
    check_range,
    validate_key,
    validate_prefix,
)

#: Mode of stored files: readable by the group and others, like a file written under umask 022.
FILE_MODE = 0o644

_COPY_CHUNK = 1024 * 1024
_READS = ("read", "look up", "list")


class LocalArtifactStore(Storage):
    """Artifacts stored as files: key ``logs/abc.log`` is ``<storage_path>/logs/abc.log``.

    Writes go to a temporary file in the target directory (named ``.<name>.<random>.tmp``, which
    no valid key can name), are flushed to disk with ``fsync`` and then renamed over the target,
    so readers never see a partial artifact and a crash leaves at worst a stray ``.tmp`` file.
    Directories are created as needed. :meth:`append` appends to the file in place.

    ``storage_url``: when set, :meth:`url` returns ``<storage_url>/<key>`` for a server the
    operator runs in front of the directory (Kiln does not sign or protect such URLs, so that
    server must do its own access control). When unset (the default) :meth:`url` returns ``None``
    and Kiln serves artifacts itself after checking permissions.
    """

    appends_cheaply = True

    def __init__(self, storage_path: Path, storage_url: str | None = None) -> None:
        self.storage_path = Path(storage_path)
        self.storage_url = storage_url.rstrip("/") if storage_url else None

    def __repr__(self) -> str:
        return f"LocalArtifactStore(storage_path={str(self.storage_path)!r})"

    def location(self, key: str) -> str:
        return str(self.path_of(key))

    def path_of(self, key: str) -> Path:
        """The file that holds ``key`` (validated; the file need not exist)."""
        return self.storage_path.joinpath(*validate_key(key).split("/"))

    # -- checks -------------------------------------------------------------------------------

    def check(self) -> None:
        """Create the storage directory if needed and prove a file can be written in it."""
        try:
            self.storage_path.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=self.storage_path, prefix=".check.", suffix=".tmp")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise StorageError(
                f"local artifact storage {self.storage_path} is not usable: {_reason(exc)}. "
                "Create the directory and make it writable by the user Kiln runs as "
                f"(uid {os.getuid()}), or set LocalStorage.storage_path to another directory."
            ) from exc

    # -- writes -------------------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        target = self.path_of(key)
        with self._errors("write", key, target):
            self._replace_atomically(target, lambda out: out.write(data))

    def put_file(self, key: str, path: str | os.PathLike[str]) -> None:
        target = self.path_of(key)
        source_path = Path(path)
        try:
            source = source_path.open("rb")
        except OSError as exc:
            raise StorageError(
                f"cannot store {source_path} as artifact {key!r}: the file cannot be read "
                f"({_reason(exc)})"
            ) from exc
        with source, self._errors("write", key, target):
            self._replace_atomically(target, lambda out: _copy(source, out))

    def append(self, key: str, data: bytes) -> None:
        """Append ``data`` to the file in place (``O_APPEND``), creating it if needed.

        Readers may see the file grow chunk by chunk; that is what a live build log wants. Not
        fsynced per call: a host crash can lose the last appended lines.
        """
        target = self.path_of(key)
        with self._errors("append to", key, target):
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            finally:
                os.close(fd)

    def delete(self, key: str) -> None:
        target = self.path_of(key)
        missing = (FileNotFoundError, IsADirectoryError, NotADirectoryError)
        with self._errors("delete", key, target), contextlib.suppress(*missing):
            target.unlink()

    # -- reads --------------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        target = self.path_of(key)
        with self._errors("read", key, target):
            return target.read_bytes()

    def stream(
        self,
        key: str,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        start: int = 0,
        end: int | None = None,
    ) -> Generator[bytes, None, None]:
        check_range(start, end, chunk_size)
        target = self.path_of(key)
        with self._errors("read", key, target):
            handle = target.open("rb")
        try:
            handle.seek(start)
        except OSError as exc:
            handle.close()
            raise StorageError(f"cannot read artifact {key!r} at {target}: {_reason(exc)}") from exc
        return self._chunks(handle, key, target, chunk_size, None if end is None else end - start)

    def _chunks(
        self, handle: IO[bytes], key: str, target: Path, chunk_size: int, remaining: int | None
    ) -> Generator[bytes, None, None]:
        with handle, self._errors("read", key, target):
            while remaining is None or remaining > 0:
                wanted = chunk_size if remaining is None else min(chunk_size, remaining)
                chunk = handle.read(wanted)
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def exists(self, key: str) -> bool:
        target = self.path_of(key)
        with self._errors("look up", key, target):
            return target.is_file()

    def size(self, key: str) -> int:
        target = self.path_of(key)
        with self._errors("look up", key, target):
            info = target.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ArtifactNotFound(f"artifact {key!r} not found in {self.storage_path}")
        return info.st_size

    def modified(self, key: str) -> datetime:
        target = self.path_of(key)
        with self._errors("look up", key, target):
            info = target.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ArtifactNotFound(f"artifact {key!r} not found in {self.storage_path}")
        return datetime.fromtimestamp(info.st_mtime, UTC)

    def touch(self, key: str) -> None:
        target = self.path_of(key)
        with self._errors("look up", key, target):
            if not target.is_file():
                raise FileNotFoundError(target)
            os.utime(target)

    def objects(self, prefix: str = "") -> Iterator[StoredObject]:
        """Walk the directory that holds ``prefix``; dot names (in-progress writes) are skipped."""
        validate_prefix(prefix)
        directory, _, _ = prefix.rpartition("/")
        root = self.storage_path.joinpath(*directory.split("/")) if directory else self.storage_path
        found: list[StoredObject] = []
        with self._errors("list", prefix or "/", root):
            self._collect(root, directory, prefix, found)
        found.sort(key=lambda stored: stored.key)
        return iter(found)

    def _collect(self, path: Path, key: str, prefix: str, found: list[StoredObject]) -> None:
        try:
            entries = list(os.scandir(path))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            child = f"{key}/{entry.name}" if key else entry.name
            if entry.is_dir(follow_symlinks=False):
                if child.startswith(prefix) or prefix.startswith(child + "/"):
                    self._collect(Path(entry.path), child, prefix, found)
            elif entry.is_file(follow_symlinks=False) and child.startswith(prefix):
                info = entry.stat(follow_symlinks=False)
                found.append(
                    StoredObject(child, info.st_size, datetime.fromtimestamp(info.st_mtime, UTC))
                )

    def url(self, key: str, *, expires: timedelta) -> str | None:
        validate_key(key)
        if self.storage_url is None:
            return None
        return f"{self.storage_url}/{quote(key)}"

    # -- helpers ------------------------------------------------------------------------------

    def _replace_atomically(self, target: Path, write: Callable[[IO[bytes]], object]) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name[:200]}.", suffix=".tmp"
        )
        try:
            with os.fdopen(fd, "wb") as out:
                write(out)
                out.flush()
                os.fchmod(out.fileno(), FILE_MODE)
                os.fsync(out.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise
        _fsync_directory(target.parent)

    @contextlib.contextmanager
    def _errors(self, action: str, key: str, target: Path) -> Iterator[None]:
        """Turn ``OSError`` into ArtifactNotFound/StorageError naming the key and the file."""
        try:
            yield
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            if action in _READS:
                raise ArtifactNotFound(
                    f"artifact {key!r} not found in {self.storage_path}"
                ) from exc
            raise self._failure(action, key, target, exc) from exc
        except OSError as exc:
            raise self._failure(action, key, target, exc) from exc

    def _failure(self, action: str, key: str, target: Path, exc: OSError) -> StorageError:
        message = f"cannot {action} artifact {key!r} at {target}: {_reason(exc)}"
        if action not in _READS:
            message += (
                f". Check that {self.storage_path} is writable by uid {os.getuid()} "
                "and its filesystem has free space"
            )
        return StorageError(message)


def _copy(source: IO[bytes], out: IO[bytes]) -> None:
    while chunk := source.read(_COPY_CHUNK):
        out.write(chunk)


def _fsync_directory(directory: Path) -> None:
    """Persist a rename in ``directory`` (best effort: some filesystems refuse directory fsync)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
