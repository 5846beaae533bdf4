"""Records <-> conda-lock v1 lockfiles.

Kiln writes the lockfile with conda-lock's own models and writer (so ``conda-lock install`` and
conda-store clients read it) and reads lockfiles with py-rattler (so a lockfile build installs
exactly the locked records, checksums included, without solving).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rattler
from rattler import RepoDataRecord

from appliance.common.errors import SpecificationError

LOCKFILE_NAME = "conda-lock.yml"


@dataclass(frozen=True)
class PipLock:
    """A pip package installed into the environment, as pip reported it (``--report``)."""

    name: str
    version: str
    url: str
    sha256: str | None
    platform: str


def _dependencies(record: RepoDataRecord) -> dict[str, str]:
    deps: dict[str, str] = {}
    for entry in record.depends:
        name, _, constraint = entry.strip().partition(" ")
        deps[name] = constraint.strip() or "*"
    return deps


def content_hash(spec_sha256: str, platform: str) -> str:
    """Per-platform content hash recorded in the lockfile metadata (spec hash + platform)."""
    return hashlib.sha256(f"{spec_sha256}:{platform}".encode()).hexdigest()


def render_lockfile(
    *,
    records: Mapping[str, Sequence[RepoDataRecord]],
    pip: Sequence[PipLock],
    channels: Sequence[str],
    spec_sha256: str,
    source: str = "environment.yaml",
) -> str:
    """Return the text of a conda-lock v1 ``conda-lock.yml`` covering every platform in ``records``.

    Output is deterministic for the same inputs (packages sorted, no timestamps), so the same
    solve gives the same lockfile and the same artifact digest.
    """
    from conda_lock.lockfile import write_conda_lock_file
    from conda_lock.lockfile.v1.models import HashModel, LockMeta
    from conda_lock.lockfile.v2prelim.models import LockedDependency, Lockfile
    from conda_lock.models.channel import Channel

    packages: list[LockedDependency] = []
    for platform, platform_records in records.items():
        for record in platform_records:
            packages.append(
                LockedDependency(
                    name=record.name.normalized,
                    version=str(record.version),
                    manager="conda",
                    platform=platform,
                    dependencies=_dependencies(record),
                    url=record.url,
                    hash=HashModel(
                        md5=record.md5.hex() if record.md5 else None,
                        sha256=record.sha256.hex() if record.sha256 else None,
                    ),
                    build=str(record.build),
                    categories={"main"},
                )
            )
    for package in pip:
        packages.append(
            LockedDependency(
                name=package.name,
                version=package.version,
                manager="pip",
                platform=package.platform,
                dependencies={},
                url=package.url,
                hash=HashModel(sha256=package.sha256),
                categories={"main"},
            )
        )
    platforms = list(records)
    lockfile = Lockfile(
        package=packages,
        metadata=LockMeta(
            content_hash={p: content_hash(spec_sha256, p) for p in platforms},
            channels=[Channel.from_string(c) for c in channels],
            platforms=platforms,
            sources=[source],
        ),
    )
    with tempfile.TemporaryDirectory(prefix="kiln-lock-") as scratch:
        path = Path(scratch) / LOCKFILE_NAME
        write_conda_lock_file(lockfile, path, metadata_choices=None, include_help_text=True)
        return path.read_text()


@dataclass(frozen=True)
class LockedEnvironment:
    """What a lockfile pins for one platform."""

    platform: str
    records: list[RepoDataRecord]
    pip: list[PipLock]
    channels: list[str]


def read_lockfile(content: Mapping[str, Any] | str, platform: str) -> LockedEnvironment:
    """Read a conda-lock v1 lockfile (parsed mapping or text) for ``platform``.

    Raises :class:`SpecificationError` when the lockfile does not cover ``platform`` or cannot be
    read; the message lists the platforms it does cover.
    """
    text = content if isinstance(content, str) else json.dumps(content)
    with tempfile.TemporaryDirectory(prefix="kiln-lock-") as scratch:
        path = Path(scratch) / LOCKFILE_NAME
        path.write_text(text)
        try:
            lock = rattler.LockFile.from_path(path)
        except Exception as error:
            raise SpecificationError(
                f"lockfile: cannot be read: {error}", field="lockfile"
            ) from error
    environment = lock.default_environment()
    if environment is None:
        raise SpecificationError("lockfile: it contains no environment", field="lockfile")
    by_name = {str(p): p for p in environment.platforms()}
    if platform not in by_name:
        covered = ", ".join(sorted(by_name)) or "none"
        raise SpecificationError(
            f"lockfile: it does not cover this worker's platform {platform} "
            f"(it covers: {covered}); "
            "lock it for that platform too",
            field="lockfile.metadata.platforms",
        )
    records = environment.conda_repodata_records_for_platform(by_name[platform]) or []
    for record in records:
        if not record.sha256 and not record.md5:
            raise SpecificationError(
                f"lockfile: package {record.name.normalized} has no md5 or sha256 hash; "
                "a lockfile build verifies every package",
                field="lockfile.package",
            )
    pip_locks = []
    raw = content if not isinstance(content, str) else None
    if raw is not None:
        for entry in raw.get("package", []):
            if entry.get("manager") == "pip" and entry.get("platform") == platform:
                pip_locks.append(
                    PipLock(
                        name=str(entry["name"]),
                        version=str(entry["version"]),
                        url=str(entry["url"]),
                        sha256=(entry.get("hash") or {}).get("sha256"),
                        platform=platform,
                    )
                )
    channels = [str(c.url) if hasattr(c, "url") else str(c) for c in environment.channels()]
    return LockedEnvironment(platform=platform, records=records, pip=pip_locks, channels=channels)
