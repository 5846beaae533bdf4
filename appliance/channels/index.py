"""Index a local conda channel directory (air-gapped sites, the demo channel).

A channel is a directory with one subdirectory per platform (``linux-64/``, ``noarch/``, ...)
holding ``*.conda`` and ``*.tar.bz2`` files; indexing writes ``repodata.json`` into each subdir.
The indexing itself is rattler's ``index_fs``. This module adds what an operator needs around it:
the layout is checked first, and every package rattler is about to read is opened here before,
because rattler reports a corrupt package without its file name (``No index.json found``) or
panics with a Rust backtrace (a truncated ``.conda``).

Indexing is incremental like rattler's: packages already listed in a subdir's ``repodata.json``
are not read again unless ``force`` is set. Only ``repodata.json`` is written, unless the channel
already publishes ``repodata.json.zst`` or sharded repodata: those are rewritten too, so that an
HTTP client preferring them never sees a stale index.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tarfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import zstandard
from rattler.index import index_fs
from rattler.platform import Subdir

from appliance.common.errors import ChannelError

logger = logging.getLogger(__name__)

#: File name suffixes of conda packages.
PACKAGE_SUFFIXES = (".conda", ".tar.bz2")

#: Every subdir name conda knows (``noarch``, ``linux-64``, ``osx-arm64``, ``win-64``, ...).
KNOWN_SUBDIRS = frozenset(str(subdir) for subdir in Subdir.all())

_REPODATA = "repodata.json"
_MAX_LISTED = 5


@dataclass(frozen=True)
class ChannelSummary:
    """What an indexed channel holds: package counts per subdir, from its ``repodata.json``."""

    directory: Path
    packages: Mapping[str, int]

    @property
    def subdirs(self) -> tuple[str, ...]:
        return tuple(sorted(self.packages))

    @property
    def package_count(self) -> int:
        return sum(self.packages.values())

    @property
    def url(self) -> str:
        """The channel as a ``file://`` URL, usable wherever a channel name is."""
        return self.directory.resolve().as_uri()


def index_channel(directory: Path, *, force: bool = False) -> ChannelSummary:
    """Check and index the channel in ``directory``; return what it now holds.

    Runs its own event loop: call :func:`index_channel_async` from async code instead.
    Raises :class:`~appliance.common.errors.ChannelError` naming what is wrong (missing
    directory, no packages, packages outside a platform subdir, unreadable package files).
    """
    return asyncio.run(index_channel_async(directory, force=force))


async def index_channel_async(directory: Path, *, force: bool = False) -> ChannelSummary:
    """Async :func:`index_channel`. ``force`` re-reads every package, not only new ones.

    The checks and the summary read files; they run in a worker thread, so a large channel does
    not block the event loop.
    """
    await asyncio.to_thread(_prepare, directory, force)
    had_tmp = (directory / ".tmp").exists()
    write_zst = any(directory.glob(f"*/{_REPODATA}.zst"))
    write_shards = any(directory.glob("*/repodata_shards.msgpack.zst"))
    try:
        await index_fs(directory, write_zst=write_zst, write_shards=write_shards, force=force)
    except Exception as error:  # rattler raises its own exception types, all with a message
        raise ChannelError(f"indexing the channel in {directory} failed: {error}") from error
    if not had_tmp:
        # rattler's scratch directory; leave the channel as tidy as it was.
        _remove_if_empty(directory / ".tmp")
    summary = await asyncio.to_thread(read_channel_summary, directory)
    logger.debug("indexed %s: %d package(s)", directory, summary.package_count)
    return summary


def read_channel_summary(directory: Path) -> ChannelSummary:
    """Count the packages listed in each subdir's ``repodata.json`` (no package is opened)."""
    counts: dict[str, int] = {}
    for repodata_path in sorted(directory.glob(f"*/{_REPODATA}")):
        repodata = _read_repodata(repodata_path)
        if repodata is None:
            raise ChannelError(f"{repodata_path} is not valid repodata: run kiln channel index")
        counts[repodata_path.parent.name] = len(_listed_files(repodata))
    if not counts:
        raise ChannelError(f"{directory} has no repodata.json: run kiln channel index {directory}")
    return ChannelSummary(directory=directory, packages=counts)


def _prepare(directory: Path, force: bool) -> None:
    """Check the layout and every package rattler will read; create ``noarch/`` if missing."""
    subdirs = _package_subdirs(directory)
    to_check = [path for subdir in subdirs for path in _unindexed(directory / subdir, force)]
    logger.debug("checking %d package file(s) in %s", len(to_check), directory)
    _check_packages(directory, to_check)
    (directory / "noarch").mkdir(exist_ok=True)


def _package_subdirs(directory: Path) -> list[str]:
    """Validate the layout; return the names of the subdirs that hold packages."""
    if not directory.exists():
        raise ChannelError(
            f"channel directory {directory} does not exist: create it and put the packages in "
            "per-platform subdirs such as linux-64/ and noarch/"
        )
    if not directory.is_dir():
        raise ChannelError(
            f"{directory} is not a directory: a channel is a directory with per-platform subdirs "
            "(linux-64/, noarch/, ...) holding *.conda and *.tar.bz2 files"
        )
    try:
        children = sorted(directory.iterdir())
    except OSError as error:
        raise ChannelError(
            f"cannot read channel directory {directory}: {error.strerror}"
        ) from error
    stray = [child.name for child in children if _is_package(child)]
    if stray:
        raise ChannelError(
            f"{directory} has package files at its top level ({_listing(stray)}): move each into "
            "the subdir of its platform (linux-64/, noarch/, ...), then index again"
        )
    subdirs = []
    for child in children:
        if child.is_dir() and any(_is_package(entry) for entry in _entries(child)):
            if child.name not in KNOWN_SUBDIRS:
                raise ChannelError(
                    f"{child} holds conda packages but {child.name!r} is not a conda platform "
                    "subdir: use linux-64, linux-aarch64, osx-arm64, win-64, noarch, ..."
                )
            subdirs.append(child.name)
    if not subdirs:
        raise ChannelError(
            f"{directory} contains no conda packages: expected *.conda or *.tar.bz2 files in "
            "subdirs such as linux-64/ and noarch/"
        )
    return subdirs


def _entries(directory: Path) -> Iterator[Path]:
    try:
        yield from directory.iterdir()
    except OSError as error:
        raise ChannelError(f"cannot read {directory}: {error.strerror}") from error


def _is_package(path: Path) -> bool:
    return path.name.endswith(PACKAGE_SUFFIXES) and not path.is_dir()


def _unindexed(subdir: Path, force: bool) -> list[Path]:
    """Package files rattler will read: all with ``force``, else those not in repodata yet."""
    packages = sorted(entry for entry in _entries(subdir) if _is_package(entry))
    repodata = None if force else _read_repodata(subdir / _REPODATA)
    if repodata is None:
        return packages
    listed = _listed_files(repodata)
    return [path for path in packages if path.name not in listed]


def _read_repodata(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def _listed_files(repodata: Mapping[str, Any]) -> set[str]:
    names: set[str] = set()
    for key in ("packages", "packages.conda"):
        section = repodata.get(key)
        if isinstance(section, dict):
            names.update(section)
    return names


def _check_packages(directory: Path, packages: list[Path]) -> None:
    """Open every package and read its index.json; raise one error listing the bad ones."""
    if not packages:
        return
    workers = min(8, os.cpu_count() or 1, len(packages))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kiln-index-check") as pool:
        problems = [
            f"{path.relative_to(directory)} ({problem})"
            for path, problem in zip(packages, pool.map(_package_problem, packages), strict=True)
            if problem is not None
        ]
    if problems:
        raise ChannelError(
            f"{len(problems)} package file(s) in {directory} cannot be read: "
            f"{_listing(problems)}. Remove or replace them, then index again"
        )


def _package_problem(path: Path) -> str | None:
    """Why ``path`` is not a usable conda package, or None if its index.json reads fine."""
    try:
        index = _read_index_json(path)
    except PermissionError:
        return "permission denied"
    except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile, zstandard.ZstdError) as error:
        return f"corrupt or truncated archive: {error}"
    except ValueError as error:
        return f"info/index.json is not valid JSON: {error}"
    if index is None:
        return "no info/index.json inside"
    missing = [key for key in ("name", "version", "build") if not isinstance(index.get(key), str)]
    if missing:
        return f"info/index.json lacks {', '.join(missing)}"
    declared = index.get("subdir")
    if isinstance(declared, str) and declared != path.parent.name:
        return f"built for subdir {declared}, move it to {declared}/"
    return None


def _read_index_json(path: Path) -> dict[str, Any] | None:
    if path.name.endswith(".tar.bz2"):
        with tarfile.open(path, mode="r:bz2") as archive:
            return _index_from_tar(archive)
    with zipfile.ZipFile(path) as container:
        info_members = [name for name in container.namelist() if name.startswith("info-")]
        if not info_members:
            return None
        with container.open(info_members[0]) as compressed:
            return _index_from_zst_tar(compressed)


def _index_from_zst_tar(compressed: IO[bytes]) -> dict[str, Any] | None:
    with (
        zstandard.ZstdDecompressor().stream_reader(compressed) as stream,
        tarfile.open(fileobj=stream, mode="r|") as archive,
    ):
        return _index_from_tar(archive)


def _index_from_tar(archive: tarfile.TarFile) -> dict[str, Any] | None:
    for member in archive:
        if member.name == "info/index.json":
            extracted = archive.extractfile(member)
            if extracted is None:
                return None
            document = json.loads(extracted.read())
            return document if isinstance(document, dict) else {}
    return None


def _remove_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()


def _listing(items: Iterable[str]) -> str:
    names = list(items)
    shown = ", ".join(names[:_MAX_LISTED])
    more = len(names) - _MAX_LISTED
    return f"{shown} and {more} more" if more > 0 else shown
