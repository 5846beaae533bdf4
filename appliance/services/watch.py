"""Environments registered from files (``CondaStoreWorker.watch_paths``).

Each environment file becomes the environment of its ``name`` in
``CondaStore.filesystem_namespace``. A file is built when its specification is new for that
environment: when the environment does not exist, or its newest build (of any status, deleted
builds ignored) was made from another specification. An unchanged file gives nothing, even when
its last build failed (editing the file retries it; it is not rebuilt every minute). A file put
back to an earlier content gives a new build, so the environment always follows the file.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.builder.pipeline import prepare_specification
from appliance.builder.settings import BuildSettings
from appliance.db.models import Build, Environment, Namespace, Specification
from appliance.schemas.specification import EnvironmentSpec, LockfileSpec
from appliance.services.builds import submit_specification


class WatchOutcome(enum.StrEnum):
    """What registering a watched file did."""

    SUBMITTED = "submitted"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class WatchedEnvironment:
    """The outcome for one file: the environment, and the build it has or was given."""

    outcome: WatchOutcome
    environment: str
    build_id: int


def register_watched_specification(
    session: Session,
    specification: EnvironmentSpec | LockfileSpec,
    *,
    namespace: str,
    settings: BuildSettings,
) -> WatchedEnvironment:
    """Queue a build of ``specification`` in ``namespace`` unless it is the specification of
    the environment's newest build (see the module docstring).

    Raises :class:`~appliance.common.errors.SpecificationError` when the server's policy
    refuses the specification.
    """
    prepared = prepare_specification(specification, settings)
    newest = session.execute(
        select(Build.id, Specification.sha256)
        .join(Specification, Specification.id == Build.specification_id)
        .join(Environment, Environment.id == Build.environment_id)
        .join(Namespace, Namespace.id == Environment.namespace_id)
        .where(
            Namespace.name == namespace,
            Namespace.active(),
            Environment.name == prepared.name,
            Environment.active(),
            Build.deleted_on.is_(None),
        )
        .order_by(Build.id.desc())
        .limit(1)
    ).one_or_none()
    if newest is not None and newest.sha256 == prepared.sha256():
        return WatchedEnvironment(WatchOutcome.UNCHANGED, prepared.name, int(newest.id))
    submitted = submit_specification(
        session, namespace=namespace, specification=specification, settings=settings, force=True
    )
    return WatchedEnvironment(WatchOutcome.SUBMITTED, prepared.name, submitted.build_id)
