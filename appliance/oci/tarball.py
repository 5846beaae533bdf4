"""Deterministic layer archives: the same entries always give the same tar and gzip bytes.

A layer is a tar stream (what ``rootfs.diff_ids`` hash) compressed with gzip (what the manifest
and the registry address). Both must be byte-identical for the same content, so:

- entries are written in the order the caller gives (:mod:`appliance.oci.layers` sorts them,
  parents before children) with only the fields that matter: uid and gid 0, empty user and
  group names, no device numbers; modes normalised (directories 0755, files 0644 or 0755 when
  any execute bit is set, symlinks 0777); the mtime chosen by the caller;
- names are ustar (``prefix`` + ``name`` fields); a longer name or link target gets a PAX
  extended header with only ``path``/``linkpath`` (no times, no ids);
- gzip has a fixed header (no file name, mtime 0, OS byte 255 as Python writes it) and a fixed
  compression level. Compressed bytes are reproducible with the same zlib (the diff_ids are
  reproducible whatever the zlib).

:class:`LayerWriter` hashes both streams while it writes, so a layer's ``diff_id`` and digest
cost no second pass over the data.
"""

from __future__ import annotations

import hashlib
import os
import queue
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

#: gzip level of layers: zlib's default, as docker and most image builders use.
GZIP_LEVEL = 6

#: Modes written for each kind of entry.
DIRECTORY_MODE = 0o755
FILE_MODE = 0o644
EXECUTABLE_MODE = 0o755
SYMLINK_MODE = 0o777

_BLOCK = 512
_CHUNK = 1 << 20
#: Buffered tar bytes handed to the compressing thread at a time.
_PIPELINE_CHUNK = 256 << 10
_REGULAR, _HARDLINK, _SYMLINK, _DIRECTORY, _PAX = b"0", b"1", b"2", b"5", b"x"
#: gzip member header: magic, deflate, no flags, mtime 0, no extra flags, OS "unknown" (255).
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_USTAR_MAGIC = b"ustar\x0000"


def file_mode(mode: int) -> int:
    """The mode a regular file is written with: 0755 if any execute bit is set, else 0644."""
    return EXECUTABLE_MODE if mode & 0o111 else FILE_MODE


def split_ustar_name(name: bytes) -> tuple[bytes, bytes] | None:
    """ustar's ``(prefix, name)`` fields for a path, or None when they cannot hold it."""
    if len(name) <= 100:
        return b"", name
    cut = name.rfind(b"/", 0, 156)
    while cut > 0:
        prefix, rest = name[:cut], name[cut + 1 :]
        if len(rest) <= 100 and len(prefix) <= 155:
            return prefix, rest
        cut = name.rfind(b"/", 0, cut)
    return None


#: uid and gid fields (0), after the mode.
_IDS = b"0000000\x000000000\x00"
#: magic and version, empty uname and gname, devmajor and devminor 0.
_OWNERS = _USTAR_MAGIC + b"\0" * 64 + _IDS
#: The unused end of a header block.
_END = b"\0" * 12


def _header(name: bytes, mode: int, size: int, mtime: int, kind: bytes, link: bytes) -> bytes:
    parts = split_ustar_name(name)
    assert parts is not None and len(link) <= 100
    prefix, short = parts
    head = b"%s%07o\x00%s%011o\x00%011o\x00" % (short.ljust(100, b"\0"), mode, _IDS, size, mtime)
    tail = kind + link.ljust(100, b"\0") + _OWNERS + prefix.ljust(155, b"\0")
    checksum = sum(head) + sum(tail) + 8 * 32
    return head + b"%06o\x00 " % checksum + tail + _END


def _pax_record(keyword: str, value: bytes) -> bytes:
    body = f" {keyword}=".encode() + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return str(length).encode() + body


#: Zero bytes that complete a block, by how many bytes of the last block are used.
_PADDING = tuple(b"\0" * (-used % _BLOCK) for used in range(_BLOCK))


def _padding(size: int) -> bytes:
    return _PADDING[size % _BLOCK]


#: The rest of a regular file's ustar header after the checksum: type, no link, owners, no
#: prefix (names of at most 100 bytes), and the fields' contribution to the checksum.
_REGULAR_TAIL = _REGULAR + b"\0" * 100 + _OWNERS + b"\0" * 155 + _END
_REGULAR_TAIL_SUM = sum(_REGULAR_TAIL) + 8 * 32


def _short_regular_header(name: bytes, mode: int, size: int, mtime: int) -> bytes:
    """:func:`_header` of a regular file whose name fits ustar's name field (the common case,
    kept short because it runs once per file)."""
    head = b"%s%07o\x00%s%011o\x00%011o\x00" % (name.ljust(100, b"\0"), mode, _IDS, size, mtime)
    return head + b"%06o\x00 " % (sum(head) + _REGULAR_TAIL_SUM) + _REGULAR_TAIL


def entry_headers(
    name: str, *, mode: int, size: int, mtime: int, kind: bytes, link: str = ""
) -> bytes:
    """The header block(s) of one entry: a ustar header, preceded by a PAX ``x`` header when
    the name or link target does not fit ustar's fields."""
    encoded = name.encode("utf-8", "surrogateescape")
    target = link.encode("utf-8", "surrogateescape")
    mtime = max(0, min(mtime, 8**11 - 1))
    if split_ustar_name(encoded) is not None and len(target) <= 100 and size < 8**11:
        return _header(encoded, mode, size, mtime, kind, target)
    records = b""
    short = encoded
    if split_ustar_name(encoded) is None:
        records += _pax_record("path", encoded)
        short = b"PaxHeaders/" + encoded.rsplit(b"/", 1)[-1][:80]
    if len(target) > 100:
        records += _pax_record("linkpath", target)
        target = b""
    if size >= 8**11:
        records += _pax_record("size", str(size).encode())
        size = 0
    pax = _header(b"PaxHeaders/" + short.rsplit(b"/", 1)[-1][:80], 0o644, len(records), 0,
                  _PAX, b"")  # fmt: skip
    return pax + records + _padding(len(records)) + _header(short, mode, size, mtime, kind, target)


@dataclass(frozen=True)
class LayerBlob:
    """A finished layer: the gzip file, its digest and size, and the uncompressed digest."""

    path: Path
    #: ``sha256:`` of the gzip bytes (the manifest's layer digest, the storage key).
    digest: str
    size: int
    #: ``sha256:`` of the uncompressed tar (the config's ``rootfs.diff_ids`` entry).
    diff_id: str
    #: Bytes of the uncompressed tar.
    tar_size: int


class LayerWriter:
    """Writes one layer to ``path``: tar entries in the order added, gzip-compressed.

    Use as a context manager, or call :meth:`finish`; an exception inside the ``with`` block
    leaves the partial file for the caller to remove. Not thread-safe; separate writers may run
    in separate threads.

    Once a layer outgrows one buffer, hashing, compressing and writing move to a helper thread
    (``kiln-layer-gzip``) fed buffer by buffer, so building tar entries (Python, under the GIL)
    and compressing them (zlib and hashlib release the GIL) overlap, like ``tar | gzip``. The
    bytes do not depend on how the stream was cut: deflate's output depends on the input only.
    An error in the helper (a full disk) is raised by the next write or by :meth:`finish`.
    """

    def __init__(self, path: Path, *, level: int = GZIP_LEVEL) -> None:
        self.path = path
        self._out: IO[bytes] = path.open("wb")
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, 9)
        self._tar_hash = hashlib.sha256()
        self._gzip_hash = hashlib.sha256()
        self._crc = 0
        self._tar_size = 0
        self._gzip_size = 0
        self._buffer = bytearray()
        self._finished: LayerBlob | None = None
        self._pending: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._helper: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._emit(_GZIP_HEADER)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is None:
            self.finish()
        else:
            self._stop_helper()
            self._out.close()

    # -- entries --------------------------------------------------------------------------------

    def add_directory(self, name: str, *, mtime: int = 0) -> None:
        """A directory entry (``name`` without a trailing slash)."""
        self._write(entry_headers(name + "/", mode=DIRECTORY_MODE, size=0, mtime=mtime,
                                  kind=_DIRECTORY))  # fmt: skip

    def add_symlink(self, name: str, target: str, *, mtime: int = 0) -> None:
        """A symbolic link to ``target``, written as it is (relative or absolute)."""
        self._write(entry_headers(name, mode=SYMLINK_MODE, size=0, mtime=mtime, kind=_SYMLINK,
                                  link=target))  # fmt: skip

    def add_hardlink(self, name: str, target: str, *, mode: int, mtime: int = 0) -> None:
        """A hard link to ``target``, an entry written earlier in this layer."""
        self._write(entry_headers(name, mode=file_mode(mode), size=0, mtime=mtime,
                                  kind=_HARDLINK, link=target))  # fmt: skip

    def add_bytes(self, name: str, data: bytes, *, mode: int = FILE_MODE, mtime: int = 0) -> None:
        """A regular file holding ``data``."""
        size = len(data)
        encoded = name.encode("utf-8", "surrogateescape")
        mode = EXECUTABLE_MODE if mode & 0o111 else FILE_MODE
        if len(encoded) <= 100 and 0 <= mtime < 8**11 and size < 8**11:
            header = _short_regular_header(encoded, mode, size, mtime)
        else:
            header = entry_headers(name, mode=mode, size=size, mtime=mtime, kind=_REGULAR)
        self._buffer += header + data + _PADDING[size % _BLOCK]
        if len(self._buffer) >= _PIPELINE_CHUNK:
            self._write(b"")

    def add_file(
        self, name: str, source: str | os.PathLike[str], *, mode: int, size: int, mtime: int = 0
    ) -> None:
        """A regular file copied from ``source``, which must be ``size`` bytes long."""
        fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if size <= _CHUNK:
                data = os.read(fd, size + 1)
                while len(data) < size and (more := os.read(fd, size + 1 - len(data))):
                    data += more
                if len(data) != size:
                    raise OSError(f"{os.fspath(source)} changed size while it was archived")
                self.add_bytes(name, data, mode=mode, mtime=mtime)
                return
            self._write(entry_headers(name, mode=file_mode(mode), size=size, mtime=mtime,
                                      kind=_REGULAR))  # fmt: skip
            written = 0
            while chunk := os.read(fd, _CHUNK):
                written += len(chunk)
                if written > size:
                    break
                self._write(chunk)
            if written != size:
                raise OSError(f"{os.fspath(source)} changed size while it was archived")
        finally:
            os.close(fd)
        self._write(_padding(size))

    # -- output ---------------------------------------------------------------------------------

    def write_raw(self, data: bytes) -> None:
        """Append bytes that already are tar data (a whole archive being recompressed)."""
        self._write(data)

    def finish(self, *, terminate: bool = True) -> LayerBlob:
        """End the archive (two zero blocks, unless ``terminate`` is false because raw data
        already ended it), the gzip stream and the file; the layer's blob."""
        if self._finished is not None:
            return self._finished
        if terminate:
            self._write(b"\0" * (2 * _BLOCK))
        self._flush()
        self._stop_helper()
        if self._failure is not None:
            self._out.close()
            raise self._failure
        self._emit(self._deflate.flush())
        self._emit(struct.pack("<II", self._crc, self._tar_size & 0xFFFFFFFF))
        self._out.close()
        self._finished = LayerBlob(
            path=self.path,
            digest="sha256:" + self._gzip_hash.hexdigest(),
            size=self._gzip_size,
            diff_id="sha256:" + self._tar_hash.hexdigest(),
            tar_size=self._tar_size,
        )
        return self._finished

    def _write(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= _PIPELINE_CHUNK:
            self._flush()
            if self._helper is None:
                self._helper = threading.Thread(
                    target=self._compress_pending, name="kiln-layer-gzip", daemon=True
                )
                self._helper.start()

    def _flush(self) -> None:
        if self._failure is not None:
            raise self._failure
        if not self._buffer:
            return
        data = bytes(self._buffer)
        self._buffer.clear()
        if self._helper is not None or len(data) >= _PIPELINE_CHUNK:
            self._pending.put(data)
        else:
            self._consume(data)

    def _compress_pending(self) -> None:
        try:
            while (data := self._pending.get()) is not None:
                self._consume(data)
        except BaseException as error:  # handed to the writing thread
            self._failure = error
            while self._pending.get() is not None:
                pass

    def _stop_helper(self) -> None:
        if self._helper is None:
            while not self._pending.empty():  # queued before the helper could start
                data = self._pending.get()
                if data is not None:
                    self._consume(data)
            return
        self._pending.put(None)
        self._helper.join()
        self._helper = None

    def _consume(self, data: bytes) -> None:
        self._tar_hash.update(data)
        self._crc = zlib.crc32(data, self._crc)
        self._tar_size += len(data)
        self._emit(self._deflate.compress(data))

    def _emit(self, data: bytes) -> None:
        if data:
            self._gzip_hash.update(data)
            self._gzip_size += len(data)
            self._out.write(data)


def gzip_file(source: Path, target: Path, *, level: int = GZIP_LEVEL) -> LayerBlob:
    """Compress the tar file ``source`` into ``target`` as a layer (imports of uncompressed
    docker-archive layers), with the same fixed gzip header as built layers."""
    with LayerWriter(target, level=level) as writer, source.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            writer.write_raw(chunk)
        return writer.finish(terminate=False)


def sha256_of_stream(handle: IO[bytes]) -> tuple[str, int]:
    """``(sha256:<hex>, size)`` of everything left in ``handle``."""
    digest = hashlib.sha256()
    size = 0
    while chunk := handle.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return "sha256:" + digest.hexdigest(), size
