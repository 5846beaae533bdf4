"""The conda-pack archive of a build (the CONDA_PACK artifact).

conda-pack decides what goes into the archive and how it is made relocatable: which files,
which prefixes ``bin/conda-unpack`` rewrites, the rewritten ``conda-meta``, the ``activate``
scripts. Kiln only supplies the archive writer. conda-pack's own writer goes through Python's
``tarfile``, which builds a PAX header and looks up user and group names for every file: about
ten times slower than ``tar czf`` on an environment of many small files. :class:`TarGzWriter`
writes plain ustar headers (GNU long-name records only where ustar cannot hold a path) straight
into a gzip stream, which keeps packing close to the cost of compression.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from fnmatch import fnmatch
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from appliance.common.errors import BuildError
from appliance.oci.tarball import split_ustar_name

#: gzip level of the archive, conda-pack's default (a good size/speed balance for environments).
COMPRESS_LEVEL = 4
_BLOCK = 512
_CHUNK = 1 << 20


def _octal(value: int, width: int) -> bytes:
    return f"{value:0{width - 1}o}".encode() + b"\0"


_MAGIC_AND_OWNERS = b"ustar\x0000" + b"root".ljust(32, b"\0") * 2 + b"\0" * 16


def ustar_header(
    name: bytes, *, mode: int, size: int, mtime: int, kind: bytes, linkname: bytes = b""
) -> bytes | None:
    """A ustar header owned by root (uid/gid 0: conda-pack archives are unpacked by anyone),
    or None when the name or link target does not fit ustar's fields."""
    parts = split_ustar_name(name)
    if parts is None or len(linkname) > 100 or size >= 8**11:
        return None
    prefix, short = parts
    head = (
        short.ljust(100, b"\0")
        + _octal(mode & 0o7777, 8)
        + b"0000000\x000000000\x00"
        + _octal(size, 12)
        + _octal(max(mtime, 0), 12)
    )
    tail = kind + linkname.ljust(100, b"\0") + _MAGIC_AND_OWNERS + prefix.ljust(155, b"\0")
    checksum = sum(head) + sum(tail) + 8 * 32
    return head + f"{checksum:06o}".encode() + b"\0 " + tail + b"\0" * 12


class _ArchiveWriter:
    """What conda-pack's ``Packer`` writes through: ``add``/``add_bytes`` in a ``with`` block.

    Leaving the block normally finishes the archive; an exception leaves it unfinished (the
    caller removes the partial file).
    """

    arcroot = ""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if kind is None:
                self._finish()
        finally:
            self._close()

    def _finish(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        """Release resources, whether or not the archive was finished."""


class TarGzWriter(_ArchiveWriter):
    """The archive interface conda-pack's ``Packer`` writes through (``add``/``add_bytes``).

    Small writes are gathered into one buffer and handed to gzip in large pieces: per-call
    overhead in ``GzipFile.write`` would otherwise dominate on environments of small files.
    """

    def __init__(self, fileobj: IO[bytes], *, compress_level: int = COMPRESS_LEVEL) -> None:
        self._gzip = gzip.GzipFile(fileobj=fileobj, mode="wb", compresslevel=compress_level)
        self._buffer = bytearray()

    def _finish(self) -> None:
        self._write(b"\0" * (2 * _BLOCK))
        self._flush()

    def _close(self) -> None:
        self._gzip.close()

    def _write(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= _CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self._gzip.write(self._buffer)
            self._buffer.clear()

    def _header(
        self, info: os.stat_result, target: str, size: int, kind: bytes, linkname: str = ""
    ) -> None:
        encoded = target.encode("utf-8", "surrogateescape")
        header = ustar_header(
            encoded,
            mode=info.st_mode,
            size=size,
            mtime=int(info.st_mtime),
            kind=kind,
            linkname=linkname.encode("utf-8", "surrogateescape"),
        )
        if header is None:
            # Rare long paths: let tarfile write GNU long-name records for this one entry.
            entry = tarfile.TarInfo(target)
            entry.mode, entry.size, entry.mtime = info.st_mode & 0o7777, size, int(info.st_mtime)
            entry.type, entry.linkname = kind, linkname
            entry.uname = entry.gname = "root"
            header = entry.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")
        self._write(header)

    def _pad(self, size: int) -> None:
        if size % _BLOCK:
            self._write(b"\0" * (_BLOCK - size % _BLOCK))

    def add(self, source: str, target: str) -> None:
        """Add the file, directory or symlink at ``source`` as ``target``."""
        info = os.lstat(source)
        if stat.S_ISLNK(info.st_mode):
            self._header(info, target, 0, tarfile.SYMTYPE, os.readlink(source))
        elif stat.S_ISDIR(info.st_mode):
            self._header(info, target.rstrip("/") + "/", 0, tarfile.DIRTYPE)
        elif stat.S_ISREG(info.st_mode):
            with open(source, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                self._header(info, target, size, tarfile.REGTYPE)
                written = 0
                while chunk := handle.read(_CHUNK):
                    self._write(chunk)
                    written += len(chunk)
            if written != size:
                raise BuildError(f"{source} changed size while it was being packed")
            self._pad(size)
        else:
            raise BuildError(f"cannot pack {source}: not a file, directory or symlink")

    def add_bytes(self, source: str, data: bytes, target: str) -> None:
        """Add ``data`` as ``target``, with the mode and mtime of ``source``."""
        info = os.lstat(source)
        self._header(info, target, len(data), tarfile.REGTYPE)
        self._write(data)
        self._pad(len(data))


class TarCommandWriter(_ArchiveWriter):
    """The same archive interface, written by GNU ``tar`` and compressed by this process.

    Files that go in unchanged (nearly all of them) are listed for ``tar``, which reads them
    itself; what conda-pack changes (``conda-meta``, rewritten shebangs, its scripts) is staged
    in a scratch directory and listed too. ``tar`` and the compressor run in parallel. This is
    as fast as ``tar czf`` of the prefix, where :class:`TarGzWriter` pays Python's cost per file.
    """

    def __init__(
        self,
        output: Path,
        scratch: Path,
        *,
        tar: str,
        compress_level: int = COMPRESS_LEVEL,
    ) -> None:
        self._output = output
        self._staging = scratch / "staged"
        self._staging.mkdir()
        self._scratch = scratch
        self._tar = tar
        self._compress_level = compress_level
        #: Files taken as they are, by the directory they are read from (the prefix, or the
        #: package cache directory conda-pack reads a package's files from).
        self._plain: dict[str, list[str]] = {}
        self._staged: list[str] = []

    def _finish(self) -> None:
        self._run_tar()

    def _stage(self, target: str) -> Path:
        path = self._staging / target
        path.parent.mkdir(parents=True, exist_ok=True)
        self._staged.append(target)
        return path

    def add(self, source: str, target: str) -> None:
        """Add the file, directory or symlink at ``source`` as ``target``."""
        if source.endswith(os.sep + target):
            # The file as it is, from the prefix or (for conda's own files) the package cache.
            self._plain.setdefault(source[: -len(target) - 1], []).append(target)
            return
        staged = self._stage(target)
        if os.path.isdir(source) and not os.path.islink(source):
            staged.mkdir(exist_ok=True)
            shutil.copystat(source, staged)
        else:
            shutil.copy2(source, staged, follow_symlinks=False)

    def add_bytes(self, source: str, data: bytes, target: str) -> None:
        """Add ``data`` as ``target``, with the mode and mtime of ``source``."""
        staged = self._stage(target)
        staged.write_bytes(data)
        shutil.copystat(source, staged)

    def _file_list(self, name: str, root: str, targets: list[str]) -> list[str]:
        listing = self._scratch / f"{name}.list"
        listing.write_bytes(b"".join(os.fsencode(t) + b"\0" for t in targets))
        return ["-C", os.path.abspath(root), "--files-from", str(listing)]

    def _run_tar(self) -> None:
        command = [
            self._tar, "--create", "--file=-", "--no-recursion", "--null", "--numeric-owner",
            "--owner=0", "--group=0", "--format=gnu",
        ]  # fmt: skip
        for number, (root, targets) in enumerate(self._plain.items()):
            command += self._file_list(f"plain-{number}", root, targets)
        command += self._file_list("staged", str(self._staging), self._staged)
        with (
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process,
            self._output.open("wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=self._compress_level) as compressed,
        ):
            assert process.stdout is not None and process.stderr is not None
            while chunk := process.stdout.read(_CHUNK):
                compressed.write(chunk)
            problems = process.stderr.read().decode(errors="replace").strip()
        if process.returncode != 0:
            raise BuildError(f"tar could not write the conda-pack archive: {problems}")


def gnu_tar() -> str | None:
    """Path of GNU tar when this host has it (it reads NUL-separated file lists with -C)."""
    tar = shutil.which("tar")
    if tar is None:
        return None
    try:
        version = subprocess.run(
            [tar, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except OSError:
        return None
    return tar if "GNU tar" in version else None


def _relocatable_metadata(source: str) -> tuple[bytes, dict[str, Any]]:
    """conda-pack's ``rewrite_conda_meta`` (drop the build host's cache paths), with compact
    JSON: its indented output goes through Python's slow pure-Python encoder."""
    with open(source, "rb") as handle:
        data = json.load(handle)
    for field in ("extracted_package_dir", "package_tarball_full_path"):
        if field in data:
            data[field] = ""
    if data.get("link") and "source" in data["link"]:
        data["link"]["source"] = ""
    return json.dumps(data, sort_keys=True).encode(), data


def _packer(prefix: str, archive: _ArchiveWriter) -> Any:
    from conda_pack.core import Packer

    class _Packer(Packer):  # type: ignore[misc]
        def add(self, file: Any) -> None:
            if file.file_mode is None and fnmatch(file.target, "conda-meta/*.json"):
                out, data = _relocatable_metadata(file.source)
                self.packages.append(data)
                self.archive.add_bytes(file.source, out, file.target)
            else:
                super().add(file)

    return _Packer(prefix, archive)


def _make_bundled_scripts_readable() -> None:
    """In a PyInstaller onefile, bundled files are unpacked 0600 and conda-pack copies that mode
    into the archive (``bin/activate`` unreadable for other users). Fix the bundle, not the env."""
    if not getattr(sys, "frozen", False):
        return
    import conda_pack

    root = Path(conda_pack.__file__).parent
    for path in root.rglob("*"):
        if path.is_file():
            path.chmod(path.stat().st_mode | 0o044)


def _pack_into(environment: Any, writer: _ArchiveWriter) -> None:
    with writer as archive:
        packer = _packer(environment.prefix, archive)
        for file in environment.files:
            packer.add(file)
        packer.finish()


def pack_prefix(prefix: Path, output: Path, *, tar: str | None = "auto") -> Path:
    """Pack ``prefix`` into ``output`` (``.tar.gz``) with conda-pack; returns ``output``.

    The archive is relocatable: unpack it anywhere and run ``bin/conda-unpack`` to rewrite the
    prefix. The file appears at ``output`` only when complete. ``tar`` is the GNU tar to use:
    ``"auto"`` finds it on ``PATH``; ``None`` (or no GNU tar on the host) writes the archive
    in-process with :class:`TarGzWriter`.
    """
    import conda_pack

    _make_bundled_scripts_readable()
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    if tar == "auto":
        tar = gnu_tar()
    try:
        environment = conda_pack.CondaEnv.from_prefix(str(prefix), ignore_missing_files=False)
        with tempfile.TemporaryDirectory(prefix="kiln-pack-", dir=output.parent) as scratch:
            if tar is not None:
                writer: _ArchiveWriter = TarCommandWriter(partial, Path(scratch), tar=tar)
                _pack_into(environment, writer)
            else:
                with partial.open("wb") as raw:
                    _pack_into(environment, TarGzWriter(raw))
    except conda_pack.CondaPackException as error:
        partial.unlink(missing_ok=True)
        raise BuildError(f"conda-pack could not pack the environment: {error}") from error
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise BuildError(f"writing the conda-pack archive failed: {error}") from error
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, output)
    return output
