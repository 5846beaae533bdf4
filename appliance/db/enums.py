"""Enumerations stored in the database, free of SQLAlchemy so any layer may name them.

Values are conda-store's words (``BuildStatus``, ``BuildArtifactType``), so API payloads and
stored rows use the same strings. They are stored as text guarded by a CHECK constraint rather
than as PostgreSQL enum types: adding a member is then an ordinary transactional migration
(replace the constraint), which ``ALTER TYPE ... ADD VALUE`` is not.
"""

from __future__ import annotations

import enum


class BuildStatus(enum.StrEnum):
    """Where a build is in its life. QUEUED and BUILDING are active; the others are final."""

    QUEUED = "QUEUED"
    BUILDING = "BUILDING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"

    @property
    def is_final(self) -> bool:
        """True once the build can no longer change state (it may still be deleted)."""
        return self not in (BuildStatus.QUEUED, BuildStatus.BUILDING)


class BuildArtifactType(enum.StrEnum):
    """What a build artifact row points at.

    ``DIRECTORY``'s key is the absolute path of the built prefix (conda-store's convention);
    ``OCI_IMAGE``'s key is the image manifest's storage key; the others are storage keys of the
    files named by :class:`~appliance.storage.base.ArtifactKind`.
    """

    DIRECTORY = "DIRECTORY"
    LOGS = "LOGS"
    LOCKFILE = "LOCKFILE"
    YAML = "YAML"
    CONDA_PACK = "CONDA_PACK"
    OCI_IMAGE = "OCI_IMAGE"
