"""Install solved or locked records into a prefix through the shared package cache.

Every build installs into its own fresh prefix (``store/<namespace>/<build key>``); packages are
extracted once into the shared package cache and hardlinked from there, so a second environment
with the same packages costs almost no disk and little time. Text and binary prefix placeholders
are rewritten by py-rattler. Link scripts are never executed (they are arbitrary code).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

import rattler
from rattler import InstallerReporter, PrefixRecord, RepoDataRecord

from appliance.builder.buildlog import BuildLog
from appliance.common.errors import BuildError


class _LogReporter(InstallerReporter):
    """Forwards rattler's install progress to the build log (structural InstallerReporter)."""

    def __init__(self, log: BuildLog) -> None:
        self._log = log
        self._names: dict[int, str] = {}
        self._next = 0

    def _token(self, name: str) -> int:
        self._next += 1
        self._names[self._next] = name
        return self._next

    def on_transaction_start(self, total_operations: int) -> None:
        self._log.write(f"{total_operations} packages to link")

    def on_populate_cache_start(self, operation: int, package_name: str) -> int:
        return self._token(package_name)

    def on_download_start(self, cache_entry: int) -> int:
        name = self._names.get(cache_entry, "?")
        self._log.write(f"fetching {name} into the package cache")
        return self._token(name)

    def on_link_complete(self, index: int) -> None:
        return None

    def on_link_start(self, operation: int, package_name: str) -> int:
        self._log.write(f"linking {package_name}")
        return self._token(package_name)


def _file_path(url: str) -> Path | None:
    parts = urlsplit(url)
    return Path(unquote(parts.path)) if parts.scheme == "file" else None


def verify_local_archives(records: Sequence[RepoDataRecord]) -> None:
    """Check the checksum of every package that comes from a ``file://`` channel.

    py-rattler verifies packages it downloads over HTTP against the record's sha256, but links
    packages from local channels without checking them; a lockfile build must install exactly the
    locked bytes wherever they come from. Raises :class:`BuildError` naming the package.
    """
    for record in records:
        path = _file_path(record.url)
        if path is None:
            continue
        if record.sha256:
            expected, digest = record.sha256.hex(), hashlib.sha256()
        elif record.md5:
            expected, digest = record.md5.hex(), hashlib.md5(usedforsecurity=False)
        else:
            continue
        try:
            with path.open("rb") as archive:
                for chunk in iter(lambda: archive.read(1 << 20), b""):
                    digest.update(chunk)
        except OSError as error:
            raise BuildError(
                f"package {record.file_name} cannot be read from {path}: {error.strerror}"
            ) from error
        if digest.hexdigest() != expected:
            raise BuildError(
                f"package {record.file_name} does not match its recorded checksum "
                f"({digest.name} {expected}, file has {digest.hexdigest()}); "
                "the channel changed after the lock or the file is corrupt"
            )


def _explain(error: Exception) -> str:
    text = str(error).strip()
    lowered = text.lower()
    if "no space left" in lowered:
        return f"the store ran out of disk space while installing: {text}"
    if "permission denied" in lowered or "read-only file system" in lowered:
        return f"the store directory is not writable: {text}"
    if "sha256" in lowered or "md5" in lowered or "hash" in lowered:
        return f"a package does not match its recorded checksum: {text}"
    return f"installing the packages failed: {text}"


async def install_prefix(
    records: Sequence[RepoDataRecord],
    prefix: Path,
    *,
    package_cache: Path,
    log: BuildLog,
    target_prefix: str | None = None,
) -> None:
    """Create ``prefix`` with exactly ``records`` linked into it.

    ``target_prefix`` is the path the environment will be used at when that is not ``prefix``
    (an image's in-image prefix); placeholders are then rewritten to it. On failure the partial
    prefix is removed and :class:`BuildError` says why (disk full, unwritable store, checksum).
    """
    if prefix.exists():
        raise BuildError(f"build prefix {prefix} already exists; refusing to install over it")
    try:
        prefix.parent.mkdir(parents=True, exist_ok=True)
        package_cache.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BuildError(_explain(error)) from error
    await asyncio.to_thread(verify_local_archives, records)
    try:
        await rattler.install(
            list(records),
            target_prefix=prefix,
            cache_dir=package_cache,
            installed_packages=[],
            show_progress=False,
            execute_link_scripts=False,
            # rattler's InstallerReporter protocol has no-op bodies mypy sees as abstract.
            reporter=_LogReporter(log),  # type: ignore[abstract]
            alternative_target_prefix=target_prefix,
        )
    except Exception as error:
        shutil.rmtree(prefix, ignore_errors=True)
        log.write(f"{type(error).__name__}: {error}")
        raise BuildError(_explain(error)) from error
    # rattler drops a CACHEDIR.TAG into the prefix (NOTES.md); it marks the prefix as a cache
    # and makes backup tools skip the environment, which is wrong for a built environment.
    (prefix / "CACHEDIR.TAG").unlink(missing_ok=True)


def installed_records(prefix: Path) -> list[PrefixRecord]:
    """The conda packages in ``prefix`` (from ``conda-meta/*.json``), sorted by name."""
    meta = prefix / "conda-meta"
    records = [
        PrefixRecord.from_path(path)
        for path in sorted(meta.glob("*.json"))
        if path.name != "history"
    ]
    return sorted(records, key=lambda r: str(r.name.normalized))


def prefix_size(prefix: Path) -> int:
    """Bytes used by ``prefix``, counting each hardlinked inode once (like ``du -sb``)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, dirs, files in os.walk(prefix):
        for name in (*dirs, *files):
            try:
                stat = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            key = (stat.st_dev, stat.st_ino)
            if key in seen:
                continue
            seen.add(key)
            total += stat.st_size
    return total
