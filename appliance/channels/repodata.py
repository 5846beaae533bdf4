"""Read a channel's package index (repodata) for the package search tables.

The worker's channel refresh reads each subdir of each indexed channel here and hands plain
:class:`IndexedPackage` values to the service layer, which stores the ones it does not have yet.
Repodata is fetched by py-rattler (``fetch_repo_data``: HTTP caching, ``.zst`` when the channel
offers it, ``file://`` and plain paths) into a cache directory, and read lazily per package name
(``SparseRepoData``), so a channel of a million files is never held in memory at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rattler import (
    Channel,
    PackageFormatSelection,
    RepoDataRecord,
    SparseRepoData,
    Subdir,
    fetch_repo_data,
)

from appliance.common.errors import ChannelError

#: Both ``.conda`` and ``.tar.bz2`` files are listed: each is a package build of its own.
_FORMATS = PackageFormatSelection.BOTH


@dataclass(frozen=True)
class IndexedPackage:
    """One package file of a channel subdir, as its repodata describes it."""

    subdir: str
    filename: str
    name: str
    version: str
    build: str
    build_number: int
    depends: tuple[str, ...]
    constrains: tuple[str, ...]
    md5: str | None
    sha256: str | None
    size: int | None
    license: str | None
    license_family: str | None
    timestamp: datetime | None


class SubdirIndex:
    """The repodata of one subdir of one channel, fetched and ready to be read by name.

    Reading is CPU work in rattler: call :meth:`packages` from a thread in async code.
    """

    def __init__(self, channel: str, subdir: str, repodata: SparseRepoData) -> None:
        self.channel = channel
        self.subdir = subdir
        self._repodata = repodata

    def package_names(self) -> list[str]:
        """Every package name in the subdir, sorted."""
        return sorted(self._repodata.package_names(_FORMATS))

    def packages(self, names: Sequence[str]) -> list[IndexedPackage]:
        """Every file of the packages ``names``."""
        found: list[IndexedPackage] = []
        for name in names:
            found.extend(_indexed(record) for record in self._repodata.load_records(name, _FORMATS))
        return found


def _indexed(record: RepoDataRecord) -> IndexedPackage:
    return IndexedPackage(
        subdir=str(record.subdir),
        filename=record.file_name,
        name=record.name.normalized,
        version=str(record.version),
        build=str(record.build),
        build_number=int(record.build_number),
        depends=tuple(record.depends),
        constrains=tuple(record.constrains),
        md5=record.md5.hex() if record.md5 else None,
        sha256=record.sha256.hex() if record.sha256 else None,
        size=record.size,
        license=record.license,
        license_family=record.license_family,
        timestamp=record.timestamp,
    )


async def fetch_subdir_index(channel: str, subdir: str, cache_dir: Path) -> SubdirIndex:
    """Fetch (or revalidate the cached copy of) ``channel``'s repodata for ``subdir``.

    ``channel`` is a normalized channel URL. Raises :class:`ChannelError` with rattler's
    innermost cause when the subdir cannot be read (missing, unreachable, not repodata).
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        found = await fetch_repo_data(
            channels=[Channel(channel)],
            platforms=[Subdir(subdir)],
            cache_path=cache_dir,
            callback=None,
        )
    except Exception as error:  # rattler raises FetchRepoDataError and I/O errors alike
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        cause = lines[-1].removeprefix("Caused by:").strip() if lines else type(error).__name__
        raise ChannelError(f"cannot read {channel}/{subdir}: {cause}") from error
    if not found:
        raise ChannelError(f"cannot read {channel}/{subdir}: no repodata returned")
    return SubdirIndex(channel, subdir, found[0])
