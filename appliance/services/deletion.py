"""The database side of the deletion jobs: what a deleted build, environment or namespace left
on disk and in storage, and removing the rows once the files are gone.

Deleting is two-phase. The use case (:func:`appliance.services.builds.delete_build`,
:func:`appliance.services.environments.delete_environment`,
:func:`appliance.services.namespaces.delete_namespace`) soft-deletes (``deleted_on``) and defers
the job in one transaction, so the thing disappears from listings and its name is free at once.
The job then reads what to remove from here, removes the files (worker side), and calls back
here to drop the rows. Every step is idempotent: a job that runs twice, or after a crash halfway,
finishes the work.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from appliance.db.enums import BuildArtifactType, BuildStatus
from appliance.db.models import Build, BuildArtifact, Environment, Namespace


@dataclass(frozen=True)
class StoredArtifact:
    """One artifact row: its id, type name (``LOGS``, ``DIRECTORY``, ...) and key."""

    id: int
    artifact_type: str
    key: str


@dataclass(frozen=True)
class BuildFiles:
    """Where a build's files are: enough to find its prefix and its artifacts."""

    build_id: int
    namespace: str
    environment: str
    build_key: str
    key_version: int
    artifacts: tuple[StoredArtifact, ...] = ()


def build_files(build: Build) -> BuildFiles:
    """The files of ``build`` (its environment and namespace are loaded as needed)."""
    environment = build.environment
    return BuildFiles(
        build_id=build.id,
        namespace=environment.namespace.name,
        environment=environment.name,
        build_key=build.build_key,
        key_version=build.key_version,
        artifacts=tuple(StoredArtifact(a.id, str(a.artifact_type), a.key) for a in build.artifacts),
    )


def deleted_build_files(session: Session, build_id: int) -> BuildFiles | None:
    """The files of a (soft-)deleted build; None when the build is gone or not deleted."""
    build = session.get(Build, build_id)
    if build is None or build.deleted_on is None:
        return None
    return build_files(build)


def forget_build_files(session: Session, build_id: int, artifact_ids: Collection[int]) -> None:
    """Drop the rows of the artifacts removed from a deleted build and set its size to 0."""
    if artifact_ids:
        session.execute(
            delete(BuildArtifact).where(
                BuildArtifact.build_id == build_id, BuildArtifact.id.in_(list(artifact_ids))
            )
        )
    session.execute(update(Build).where(Build.id == build_id).values(size=0))


def image_manifest_keys(session: Session) -> list[str]:
    """Storage keys of every recorded image manifest (each OCI_IMAGE artifact's key, once):
    the roots of image garbage collection. Deleted builds that keep their image
    (``build_artifacts_kept_on_deletion``) and builds not yet removed count too."""
    return list(
        session.scalars(
            select(BuildArtifact.key)
            .where(BuildArtifact.artifact_type == BuildArtifactType.OCI_IMAGE)
            .distinct()
            .order_by(BuildArtifact.key)
        )
    )


@dataclass(frozen=True)
class EnvironmentRemoval:
    """What a deleted environment left: its builds' files, and builds still stopping."""

    environment_id: int
    namespace: str
    name: str
    builds: tuple[BuildFiles, ...]
    #: Builds still QUEUED or BUILDING (canceled when the environment was deleted, not yet
    #: stopped): the files must wait until they have.
    stopping: tuple[int, ...]


def environment_removal(session: Session, environment_id: int) -> EnvironmentRemoval | None:
    """What to remove for a (soft-)deleted environment; None when it is gone or not deleted."""
    environment = session.get(Environment, environment_id)
    if environment is None or environment.deleted_on is None:
        return None
    return EnvironmentRemoval(
        environment_id=environment.id,
        namespace=environment.namespace.name,
        name=environment.name,
        builds=tuple(build_files(build) for build in environment.builds),
        stopping=tuple(b.id for b in environment.builds if not b.status.is_final),
    )


def remove_environment_rows(session: Session, environment_id: int) -> bool:
    """Delete a deleted environment's row and its builds' rows (artifacts, package links and
    pip packages cascade); False when it is gone, not deleted, or a build is still running."""
    environment = session.scalar(
        select(Environment).where(Environment.id == environment_id).with_for_update()
    )
    if environment is None or environment.deleted_on is None:
        return False
    running = session.scalar(
        select(Build.id).where(
            Build.environment_id == environment_id,
            Build.status.in_((BuildStatus.QUEUED, BuildStatus.BUILDING)),
        )
    )
    if running is not None:
        return False
    environment.current_build_id = None
    session.flush()
    session.execute(delete(Build).where(Build.environment_id == environment_id))
    session.execute(delete(Environment).where(Environment.id == environment_id))
    return True


def namespace_environments(session: Session, namespace_id: int) -> list[int] | None:
    """Ids of every environment of a (soft-)deleted namespace; None when it is gone or not
    deleted."""
    namespace = session.get(Namespace, namespace_id)
    if namespace is None or namespace.deleted_on is None:
        return None
    return list(
        session.scalars(
            select(Environment.id)
            .where(Environment.namespace_id == namespace_id)
            .order_by(Environment.id)
        )
    )


def remove_namespace_row(session: Session, namespace_id: int) -> bool:
    """Delete a deleted namespace's row once it has no environment left (role mappings
    cascade); False when it is gone, not deleted, or still has environments."""
    namespace = session.scalar(
        select(Namespace).where(Namespace.id == namespace_id).with_for_update()
    )
    if namespace is None or namespace.deleted_on is None:
        return False
    remaining = session.scalar(
        select(Environment.id).where(Environment.namespace_id == namespace_id).limit(1)
    )
    if remaining is not None:
        return False
    session.execute(delete(Namespace).where(Namespace.id == namespace_id))
    return True
