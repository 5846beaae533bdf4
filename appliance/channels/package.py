"""Write conda packages (``.tar.bz2`` and ``.conda``) from small typed descriptions.

Kiln makes its own test and demo packages instead of downloading them, so this writer has to
produce what conda-build produces where installers look: ``info/index.json``, ``info/paths.json``
(path types, hashes, sizes, prefix placeholders and their text/binary mode), ``info/files``,
``info/has_prefix`` and, for noarch packages, ``info/link.json``.

Output is byte-reproducible: archive members are sorted (``info/`` first, as conda-package-handling
does, so readers find the metadata early), every member has the same mtime, uid/gid 0, empty
user/group names and a fixed mode; bz2, zstd and zip carry no timestamps of their own. Writing the
same :class:`Package` twice gives identical bytes, hence identical sha256 in repodata.

Only the standard library and ``zstandard`` are used (no conda-build, no rattler).
"""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import os
import posixpath
import re
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

import zstandard

#: conda-build's historical placeholder, the start of every long build prefix it records.
CONDA_BUILD_PREFIX = "/opt/anaconda1anaconda2anaconda3"

#: A 255-character build prefix in the style conda-build records (``..._placehold_placehold``).
#: Binary placeholders can only be replaced by prefixes that are not longer than themselves, so
#: real packages use long ones; installing a package with a short binary placeholder into a long
#: prefix fails.
LONG_PLACEHOLDER = (CONDA_BUILD_PREFIX + "_placehold" * 23)[:255]

#: The mtime of every archive member (2024-01-01T00:00:00Z). Not 0: some tools treat 0 as unset.
SOURCE_DATE_EPOCH = 1_704_067_200

#: Version of the ``.conda`` container format written to ``metadata.json``.
CONDA_PACKAGE_FORMAT_VERSION = 2

_ZIP_DATE_TIME = (2024, 1, 1, 0, 0, 0)
_ZSTD_LEVEL = 19
_BZ2_LEVEL = 9
_NAME_PATTERN = re.compile(r"^[a-z0-9_][a-z0-9_.\-]*$")
_FILE_MODES = (0o644, 0o755)


class PackageFormat(StrEnum):
    """The two conda package container formats; the value is the file name suffix."""

    CONDA = ".conda"
    TAR_BZ2 = ".tar.bz2"


class PlaceholderMode(StrEnum):
    """How an installer replaces a file's prefix placeholder (paths.json ``file_mode``).

    ``TEXT`` replaces every occurrence and lets the file change length. ``BINARY`` replaces the
    placeholder inside NUL-terminated strings and pads each string with NULs, so the file keeps
    its length (what compiled RPATHs and embedded paths need).
    """

    TEXT = "text"
    BINARY = "binary"


class NoArch(StrEnum):
    """The ``noarch`` kind of a package built once for every platform."""

    GENERIC = "generic"
    PYTHON = "python"


@dataclass(frozen=True)
class PackageFile:
    """One path inside a package: a regular file (``content``, ``mode``) or a symlink.

    ``path`` is relative to the prefix, with ``/`` separators. A symlink's ``symlink_target`` is
    stored verbatim (normally relative, as in ``libfoo.so -> libfoo.so.1``). ``placeholder`` says
    that ``content`` embeds the package's build prefix and how the installer must replace it.
    """

    path: str
    content: bytes = b""
    mode: int = 0o644
    symlink_target: str | None = None
    placeholder: PlaceholderMode | None = None

    def __post_init__(self) -> None:
        pure = PurePosixPath(self.path)
        if not self.path or pure.is_absolute() or ".." in pure.parts or str(pure) != self.path:
            raise ValueError(f"package path must be relative and normalised: {self.path!r}")
        if pure.parts[0] == "info":
            raise ValueError(f"package path must not be under info/: {self.path!r}")
        if self.mode not in _FILE_MODES:
            raise ValueError(f"file mode of {self.path!r} must be 0o644 or 0o755")
        if self.symlink_target is not None:
            if self.content or self.placeholder is not None:
                raise ValueError(f"symlink {self.path!r} cannot have content or a placeholder")
            if not self.symlink_target:
                raise ValueError(f"symlink {self.path!r} needs a target")

    @classmethod
    def text(
        cls,
        path: str,
        text: str,
        *,
        executable: bool = False,
        placeholder: PlaceholderMode | None = None,
    ) -> PackageFile:
        """A UTF-8 text file; ``executable`` gives it mode 0755."""
        return cls(
            path,
            text.encode(),
            mode=0o755 if executable else 0o644,
            placeholder=placeholder,
        )

    @classmethod
    def symlink(cls, path: str, target: str) -> PackageFile:
        """A symbolic link ``path -> target``."""
        return cls(path, symlink_target=target)

    @property
    def is_symlink(self) -> bool:
        return self.symlink_target is not None


@dataclass(frozen=True)
class Package:
    """What a conda package says about itself, plus its files.

    ``depends`` and ``constrains`` are conda match specs as they appear in ``index.json``
    (``"kiln-demo-lib >=1.0,<3"``, ``"__glibc >=2.17"``). ``placeholder`` is the build prefix the
    files marked with a :class:`PlaceholderMode` embed. ``timestamp`` is in milliseconds since
    the epoch, as conda-build writes it.
    """

    name: str
    version: str
    build: str
    build_number: int = 0
    subdir: str = "noarch"
    depends: tuple[str, ...] = ()
    constrains: tuple[str, ...] = ()
    files: tuple[PackageFile, ...] = ()
    noarch: NoArch | None = None
    license: str = "BSD-3-Clause"
    summary: str = ""
    placeholder: str = LONG_PLACEHOLDER
    timestamp: int = SOURCE_DATE_EPOCH * 1000
    extra_index: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not _NAME_PATTERN.match(self.name):
            raise ValueError(f"invalid conda package name {self.name!r}")
        for label, value in (("version", self.version), ("build", self.build)):
            if not value or "-" in value or " " in value:
                raise ValueError(f"{label} of {self.name} must be non-empty, without '-' or ' '")
        if (self.noarch is not None) != (self.subdir == "noarch"):
            raise ValueError(f"{self.name}: noarch packages (and only they) go in subdir noarch")
        paths = [entry.path for entry in self.files]
        if len(set(paths)) != len(paths):
            raise ValueError(f"{self.name}: duplicate paths in files")

    @property
    def dist(self) -> str:
        """``name-version-build``: the file name without its suffix."""
        return f"{self.name}-{self.version}-{self.build}"

    def filename(self, package_format: PackageFormat) -> str:
        return self.dist + package_format.value


def index_json(package: Package) -> dict[str, Any]:
    """The ``info/index.json`` document (what indexers copy into repodata)."""
    document: dict[str, Any] = {
        "build": package.build,
        "build_number": package.build_number,
        "depends": list(package.depends),
        "license": package.license,
        "name": package.name,
        "subdir": package.subdir,
        "timestamp": package.timestamp,
        "version": package.version,
    }
    if package.constrains:
        document["constrains"] = list(package.constrains)
    if package.noarch is not None:
        document["noarch"] = package.noarch.value
    else:
        platform, _, arch = package.subdir.partition("-")
        document["platform"] = platform
        document["arch"] = {"64": "x86_64", "32": "x86"}.get(arch, arch)
    document.update(package.extra_index)
    return document


def paths_json(package: Package) -> dict[str, Any]:
    """The ``info/paths.json`` document (paths_version 1), entries sorted by path.

    Symlinks are hashed like conda-build does: by the content they resolve to inside the package,
    or as an empty file when they point outside it.
    """
    by_path = {entry.path: entry for entry in package.files}
    entries = []
    for entry in sorted(package.files, key=lambda item: item.path):
        if entry.is_symlink:
            resolved = _resolve_in_package(entry, by_path)
            content = resolved.content if resolved is not None else b""
            record: dict[str, Any] = {"_path": entry.path, "path_type": "softlink"}
        else:
            content = entry.content
            record = {"_path": entry.path, "path_type": "hardlink"}
        record["sha256"] = hashlib.sha256(content).hexdigest()
        record["size_in_bytes"] = len(content)
        if entry.placeholder is not None:
            record["file_mode"] = entry.placeholder.value
            record["prefix_placeholder"] = package.placeholder
        entries.append(record)
    return {"paths": entries, "paths_version": 1}


def has_prefix(package: Package) -> str:
    """``info/has_prefix`` in conda-build's format: ``placeholder mode path`` per line."""
    lines = []
    for entry in sorted(package.files, key=lambda item: item.path):
        if entry.placeholder is not None:
            path = f'"{entry.path}"' if " " in entry.path else entry.path
            lines.append(f"{package.placeholder} {entry.placeholder.value} {path}\n")
    return "".join(lines)


def info_files(package: Package) -> dict[str, bytes]:
    """Every ``info/*`` member of the package, by archive path."""
    listing = "".join(f"{path}\n" for path in sorted(entry.path for entry in package.files))
    members = {
        "info/index.json": _json_bytes(index_json(package)),
        "info/paths.json": _json_bytes(paths_json(package)),
        "info/files": listing.encode(),
        "info/about.json": _json_bytes(
            {"license": package.license, "summary": package.summary or package.name}
        ),
    }
    prefix_lines = has_prefix(package)
    if prefix_lines:
        members["info/has_prefix"] = prefix_lines.encode()
    if package.noarch is not None:
        members["info/link.json"] = _json_bytes(
            {"noarch": {"type": package.noarch.value}, "package_metadata_version": 1}
        )
    return members


def package_bytes(package: Package, package_format: PackageFormat) -> bytes:
    """The complete package file as bytes (packages here are small enough to build in memory)."""
    metadata_files = sorted(info_files(package).items())
    info = [_tar_file(path, content, 0o644) for path, content in metadata_files]
    payload = _tar_members(sorted(package.files, key=lambda item: item.path))
    if package_format is PackageFormat.TAR_BZ2:
        return bz2.compress(_tar_bytes(info + payload), _BZ2_LEVEL)
    compressor = zstandard.ZstdCompressor(level=_ZSTD_LEVEL, write_checksum=True)
    container = {"conda_pkg_format_version": CONDA_PACKAGE_FORMAT_VERSION}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in (
            ("metadata.json", json.dumps(container).encode()),
            (f"info-{package.dist}.tar.zst", compressor.compress(_tar_bytes(info))),
            (f"pkg-{package.dist}.tar.zst", compressor.compress(_tar_bytes(payload))),
        ):
            member = zipfile.ZipInfo(name, date_time=_ZIP_DATE_TIME)
            member.compress_type = zipfile.ZIP_STORED
            member.create_system = 3
            member.external_attr = 0o100644 << 16
            archive.writestr(member, data)
    return buffer.getvalue()


def write_package(package: Package, directory: Path, package_format: PackageFormat) -> Path:
    """Write ``package`` into ``directory`` (created if missing); return the file's path.

    The file appears atomically (written to a temporary name, then renamed), so an indexer
    running concurrently never reads half a package.
    """
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / package.filename(package_format)
    data = package_bytes(package, package_format)
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".partial")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def _resolve_in_package(
    link: PackageFile, by_path: Mapping[str, PackageFile]
) -> PackageFile | None:
    current = link
    for _ in range(40):  # the kernel's own symlink-depth limit
        if current.symlink_target is None:
            return current
        target = posixpath.normpath(
            posixpath.join(posixpath.dirname(current.path), current.symlink_target)
        )
        next_entry = by_path.get(target)
        if next_entry is None:
            return None
        current = next_entry
    return None


def _tar_members(files: Iterable[PackageFile]) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    for entry in files:
        if entry.symlink_target is None:
            members.append(_tar_file(entry.path, entry.content, entry.mode))
            continue
        info = _tar_info(entry.path, 0o777)
        info.type = tarfile.SYMTYPE
        info.linkname = entry.symlink_target
        members.append((info, None))
    return members


def _tar_file(path: str, content: bytes, mode: int) -> tuple[tarfile.TarInfo, bytes | None]:
    info = _tar_info(path, mode)
    info.type = tarfile.REGTYPE
    info.size = len(content)
    return info, content


def _tar_info(path: str, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.mtime = SOURCE_DATE_EPOCH
    info.mode = mode
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, content in members:
            archive.addfile(info, io.BytesIO(content) if content is not None else None)
    return buffer.getvalue()


def _json_bytes(document: Mapping[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
