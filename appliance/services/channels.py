"""The package index of the indexed channels (``CondaChannel``, ``CondaPackage``,
``CondaPackageBuild``), filled by the worker's periodic channel refresh.

A refresh adds what is new and never removes: package builds that disappear from a channel stay
(builds that installed them still point at them), as in conda-store. New rows are inserted in
batches, each in its own short transaction, so a refresh of a large channel neither holds locks
for long nor starts over after an interruption.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from appliance.channels.repodata import IndexedPackage
from appliance.db.models import CondaChannel, CondaPackage, CondaPackageBuild

#: Package builds per insert (each has 13 parameters; PostgreSQL allows 65,535 per statement).
BATCH_SIZE = 1000


def ensure_channel(session: Session, url: str) -> int:
    """The id of the channel ``url`` (normalized), created when new."""
    session.execute(
        insert(CondaChannel).values(name=url).on_conflict_do_nothing(index_elements=["name"])
    )
    return int(session.scalars(select(CondaChannel.id).where(CondaChannel.name == url)).one())


def known_filenames(session: Session, channel_id: int, subdir: str) -> set[str]:
    """File names of the package builds already indexed for ``channel_id``'s ``subdir``."""
    return set(
        session.scalars(
            select(CondaPackageBuild.filename).where(
                CondaPackageBuild.channel_id == channel_id, CondaPackageBuild.subdir == subdir
            )
        )
    )


def add_package_builds(
    session: Session, channel_id: int, packages: Sequence[IndexedPackage]
) -> int:
    """Insert ``packages`` (at most :data:`BATCH_SIZE`) and the package versions they belong
    to; rows that exist already are left as they are. Returns how many builds were new."""
    if not packages:
        return 0
    versions = {(p.name, p.version): p for p in packages}
    session.execute(
        insert(CondaPackage)
        .values(
            [
                {
                    "channel_id": channel_id,
                    "name": p.name,
                    "version": p.version,
                    "license": p.license,
                    "license_family": p.license_family,
                }
                for p in versions.values()
            ]
        )
        .on_conflict_do_nothing(index_elements=["channel_id", "name", "version"])
    )
    package_ids = {
        (row.name, row.version): int(row.id)
        for row in session.execute(
            select(CondaPackage.id, CondaPackage.name, CondaPackage.version).where(
                CondaPackage.channel_id == channel_id,
                tuple_(CondaPackage.name, CondaPackage.version).in_(list(versions)),
            )
        )
    }
    inserted = session.execute(
        insert(CondaPackageBuild)
        .values(
            [
                {
                    "package_id": package_ids[(p.name, p.version)],
                    "channel_id": channel_id,
                    "subdir": p.subdir,
                    "filename": p.filename,
                    "build": p.build,
                    "build_number": p.build_number,
                    "depends": list(p.depends),
                    "constrains": list(p.constrains),
                    "md5": p.md5,
                    "sha256": p.sha256,
                    "size": p.size,
                    "timestamp": p.timestamp,
                }
                for p in packages
            ]
        )
        .on_conflict_do_nothing(index_elements=["channel_id", "subdir", "filename"])
        .returning(CondaPackageBuild.id)
    )
    return len(inserted.all())


def mark_channel_refreshed(session: Session, channel_id: int) -> None:
    """Record that ``channel_id``'s repodata was just read into the index."""
    session.execute(
        update(CondaChannel)
        .where(CondaChannel.id == channel_id)
        .values(last_update=datetime.now(UTC))
    )
