"""The artifact store contract shared by every storage backend.

A build leaves artifacts behind (its log, lockfile, pinned YAML, conda-pack archive, image blobs).
They live in an object store addressed by *keys*: relative, ``/``-separated names such as
``logs/<build key>.log``. :class:`Storage` is what the rest of Kiln codes against; the backends
are :class:`~appliance.storage.local.LocalArtifactStore` (files under a directory) and
:class:`~appliance.storage.s3.S3ArtifactStore` (an S3 bucket). The traitlets classes
``LocalStorage`` and ``S3Storage`` in :mod:`appliance.config` hold the settings and build these.

Every method raises :class:`~appliance.common.errors.StorageError` when the store cannot do what
was asked, and :class:`~appliance.common.errors.ArtifactNotFound` when a key that must exist does
not. Messages name the store (directory or endpoint and bucket) and say what to check.
"""

from __future__ import annotations

import enum
import os
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from appliance.common.errors import ArtifactNotFound, StorageError

#: Bytes per chunk yielded by :meth:`Storage.stream` unless the caller asks otherwise.
DEFAULT_CHUNK_SIZE = 1024 * 1024

#: Longest key accepted, in UTF-8 bytes (the S3 limit).
MAX_KEY_BYTES = 1024

#: Longest single key segment, in UTF-8 bytes (the usual file name limit).
MAX_SEGMENT_BYTES = 255

_MEDIA_TYPES = (
    (".log", "text/plain; charset=utf-8"),
    (".txt", "text/plain; charset=utf-8"),
    (".yml", "application/yaml"),
    (".yaml", "application/yaml"),
    (".json", "application/json"),
    (".tar.gz", "application/gzip"),
    (".tgz", "application/gzip"),
    (".tar.zst", "application/zstd"),
    (".tar", "application/x-tar"),
)


class InvalidArtifactKey(StorageError):
    """The artifact key is not a safe relative storage key."""

    code = "invalid_artifact_key"


def validate_key(key: str) -> str:
    """Return ``key`` if it is a valid storage key, else raise :class:`InvalidArtifactKey`.

    A key is a relative path of ``/``-separated segments. It must not be empty or absolute, must
    not contain empty segments (``a//b``, a trailing ``/``), ``.`` or ``..``, backslashes or
    control characters, and no segment may start with ``.``: dot names are reserved for the
    in-progress files of atomic writes. Keys are at most 1024 UTF-8 bytes, segments at most 255.
    The same rules hold for every backend, so a key that works locally works on S3 and back.
    """
    if not isinstance(key, str):
        raise InvalidArtifactKey(f"artifact key must be a string, got {type(key).__name__}")
    if not key:
        raise InvalidArtifactKey("artifact key is empty")
    if key.startswith("/"):
        raise InvalidArtifactKey(
            f"artifact key {key!r} is absolute; keys are relative paths like 'logs/<build>.log'"
        )
    if "\\" in key:
        raise InvalidArtifactKey(
            f"artifact key {key!r} contains a backslash; separate parts with '/'"
        )
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key):
        raise InvalidArtifactKey(f"artifact key {key!r} contains a control character")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidArtifactKey(
            f"artifact key {key[:60]!r}... is longer than {MAX_KEY_BYTES} bytes"
        )
    for segment in key.split("/"):
        if not segment:
            raise InvalidArtifactKey(
                f"artifact key {key!r} has an empty part (leading, trailing or doubled '/')"
            )
        if segment in (".", ".."):
            raise InvalidArtifactKey(
                f"artifact key {key!r} contains a {segment!r} part, which could point outside "
                "the store"
            )
        if segment.startswith("."):
            raise InvalidArtifactKey(
                f"artifact key {key!r}: part {segment!r} starts with '.', which is reserved for "
                "in-progress writes"
            )
        if len(segment.encode()) > MAX_SEGMENT_BYTES:
            raise InvalidArtifactKey(
                f"artifact key {key!r}: part {segment[:60]!r}... is longer than "
                f"{MAX_SEGMENT_BYTES} bytes"
            )
    return key


def media_type_for(key: str) -> str:
    """The HTTP media type to serve ``key`` with, judged by its suffix."""
    lowered = key.lower()
    for suffix, media_type in _MEDIA_TYPES:
        if lowered.endswith(suffix):
            return media_type
    return "application/octet-stream"


class ArtifactKind(enum.StrEnum):
    """The artifacts a build can produce, with conda-store's names and key layout.

    The values are conda-store's ``BuildArtifactType`` names, so ``CondaStore.build_artifacts``
    lists and stored rows use the same words.
    """

    LOGS = "LOGS"
    LOCKFILE = "LOCKFILE"
    YAML = "YAML"
    CONDA_PACK = "CONDA_PACK"

    def storage_key(self, build_key: str) -> str:
        """The storage key of this artifact for the build ``build_key``.

        ``logs/<key>.log``, ``lockfile/<key>.yml``, ``yaml/<key>.yml``,
        ``archive/<key>.tar.gz``. ``build_key`` must be a single key segment.
        """
        if "/" in build_key:
            raise InvalidArtifactKey(f"build key {build_key!r} must not contain '/'")
        prefix, suffix = _KIND_LAYOUT[self]
        return validate_key(f"{prefix}/{build_key}{suffix}")

    @property
    def media_type(self) -> str:
        """The media type downloads of this artifact are served with."""
        return media_type_for(_KIND_LAYOUT[self][1])


_KIND_LAYOUT: dict[ArtifactKind, tuple[str, str]] = {
    ArtifactKind.LOGS: ("logs", ".log"),
    ArtifactKind.LOCKFILE: ("lockfile", ".yml"),
    ArtifactKind.YAML: ("yaml", ".yml"),
    ArtifactKind.CONDA_PACK: ("archive", ".tar.gz"),
}


@dataclass(frozen=True)
class StoredObject:
    """One stored artifact as a listing shows it (:meth:`Storage.objects`)."""

    key: str
    size: int
    #: When its content was last written (or :meth:`Storage.touch` ed), timezone-aware UTC.
    modified: datetime


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` if it can start a valid key (``""``, ``"oci/"``,
    ``"oci/blobs/sha256/ab"``), else raise :class:`InvalidArtifactKey`."""
    if prefix:
        validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


class Storage(ABC):
    """An artifact store: bytes under validated keys.

    Contracts every backend keeps:

    * Writes (:meth:`put`, :meth:`put_file`) are all-or-nothing: a reader sees the old content or
      the new content, never a partial object.
    * Reads of a missing key raise :class:`~appliance.common.errors.ArtifactNotFound`;
      :meth:`delete` of a missing key is not an error.
    * Every other failure raises :class:`~appliance.common.errors.StorageError` with a message
      an operator can act on. Invalid keys raise :class:`InvalidArtifactKey` before any I/O.
    * Instances are safe to share between threads; construction does no I/O (call
      :meth:`check` at start-up to find configuration problems early).
    """

    #: True when :meth:`append` costs only the appended bytes (callers may append per line).
    appends_cheaply: bool = False

    @abstractmethod
    def check(self) -> None:
        """Verify that the store is usable (reachable, credentials accepted, writable).

        Raises :class:`~appliance.common.errors.StorageError` saying what is wrong and what to
        change. Meant for start-up and ``kiln config verify``.
        """

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing any previous content atomically."""

    @abstractmethod
    def put_file(self, key: str, path: str | os.PathLike[str]) -> None:
        """Store the file at ``path`` under ``key`` without reading it into memory.

        For large artifacts (conda-pack archives, image layers). Atomic like :meth:`put`.
        """

    @abstractmethod
    def get(self, key: str) -> bytes:
        """Return the whole content of ``key``. Use :meth:`stream` for large artifacts."""

    @abstractmethod
    def stream(
        self,
        key: str,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        start: int = 0,
        end: int | None = None,
    ) -> Generator[bytes, None, None]:
        """Yield the content of ``key`` in chunks of at most ``chunk_size`` bytes.

        ``start`` and ``end`` select the half-open byte range ``[start, end)`` like a slice
        (an HTTP ``Range: bytes=a-b`` is ``start=a, end=b + 1``); ``end=None`` means to the end.
        As with slicing, a range past the end is cut short and may be empty: compare with
        :meth:`size` to answer ``416``.

        The artifact is opened before this returns, so a missing key raises
        :class:`~appliance.common.errors.ArtifactNotFound` here, not on the first chunk (an HTTP
        handler can still choose its status). Iterate the generator to the end or ``close()``
        it to release the file or connection.
        """

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``. Removing a key that does not exist succeeds."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether ``key`` holds an artifact."""

    @abstractmethod
    def size(self, key: str) -> int:
        """The size of ``key`` in bytes."""

    @abstractmethod
    def url(self, key: str, *, expires: timedelta) -> str | None:
        """A URL a client can download ``key`` from directly, valid for ``expires``, or ``None``.

        ``None`` means the store has no such URL and Kiln must serve the bytes itself. Either
        way the caller checks permissions first: anyone holding the URL can download until it
        expires. No existence check is made: a missing key gives the client the store's 404.
        """

    @abstractmethod
    def objects(self, prefix: str = "") -> Iterator[StoredObject]:
        """Every stored artifact whose key starts with ``prefix`` (a plain string prefix, as in
        S3: ``"oci/blobs/"`` lists a "directory", ``"oci/blobs/sha256/ab"`` the keys beginning
        so), in key order, with its size and modification time.

        For maintenance (garbage collection of image blobs), not for request paths: the cost is
        proportional to the number of keys listed. Artifacts written while the listing runs may
        or may not appear; in-progress writes never do.
        """

    def keys(self, prefix: str = "") -> Iterator[str]:
        """The keys :meth:`objects` lists, without their sizes and times."""
        return (stored.key for stored in self.objects(prefix))

    @abstractmethod
    def modified(self, key: str) -> datetime:
        """When ``key`` was last written or touched (timezone-aware UTC)."""

    @abstractmethod
    def touch(self, key: str) -> None:
        """Make :meth:`modified` of ``key`` now without changing its bytes.

        Image builds touch the old blobs they reuse, so that garbage collection, which spares
        recently modified blobs, cannot remove a blob that a build in progress relies on.
        Raises :class:`~appliance.common.errors.ArtifactNotFound` when ``key`` does not exist.
        """

    def location(self, key: str) -> str:
        """Where ``key`` lives, for people (a file path, an ``s3://bucket/key`` URL)."""
        return validate_key(key)

    def append(self, key: str, data: bytes) -> None:
        """Add ``data`` to the end of ``key``, creating it if needed (build logs).

        The default reads the whole artifact and writes it back (:meth:`get` then :meth:`put`):
        correct and atomic for one writer per key, but each call costs the artifact's full size,
        so callers should append per build step or per batch of lines, not per line. Two writers
        appending to the same key concurrently can lose data. Backends with a native append
        override this.
        """
        validate_key(key)
        try:
            existing = self.get(key)
        except ArtifactNotFound:
            existing = b""
        self.put(key, existing + data)


def check_range(start: int, end: int | None, chunk_size: int) -> None:
    """Reject negative or inverted byte ranges and non-positive chunk sizes (caller bugs)."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    if end is not None and end < start:
        raise ValueError(f"end ({end}) must not be before start ({start})")
