"""Use cases of environments: delete one.

Deleting an environment (conda-store's ``DELETE /environment/{ns}/{env}/``) soft-deletes it at
once, so its name can be used again immediately, cancels its QUEUED and BUILDING builds, marks
every build deleted, drops its settings, and defers the job that removes the files (every
build's prefix and artifacts, kept kinds included, and the ``envs/<name>`` link if it still
points at one of its builds) and then the rows. Caller commits.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from appliance.common.errors import KilnError
from appliance.db.models import Environment, Namespace, Setting
from appliance.queue.tasks import DELETE_ENVIRONMENT, environment_lock
from appliance.services.builds import defer_job, request_cancel


class EnvironmentNotFound(KilnError):
    """No such environment."""

    code = "not_found"


def delete_environment(session: Session, namespace: str, name: str) -> int:
    """Delete the environment ``namespace/name``; returns its id.

    Raises :class:`EnvironmentNotFound` when there is no such (undeleted) environment.
    """
    environment = session.scalar(
        select(Environment)
        .join(Namespace, Namespace.id == Environment.namespace_id)
        .where(
            Namespace.name == namespace,
            Namespace.active(),
            Environment.name == name,
            Environment.active(),
        )
        .with_for_update(of=Environment)
    )
    if environment is None:
        raise EnvironmentNotFound(f"environment {namespace}/{name} does not exist")
    soft_delete_environment(session, environment, namespace=namespace)
    return environment.id


def soft_delete_environment(
    session: Session, environment: Environment, *, namespace: str, defer: bool = True
) -> None:
    """Mark ``environment`` (locked by the caller) and its builds deleted, cancel its running
    builds, drop its settings and (``defer``) queue its removal job; a namespace being deleted
    removes its environments in its own job instead."""
    now = datetime.now(UTC)
    environment.deleted_on = now
    for build in environment.builds:
        if not build.status.is_final and build.deleted_on is None:
            request_cancel(session, build.id)
        if build.deleted_on is None:
            build.deleted_on = now
    session.execute(delete(Setting).where(Setting.scope == f"{namespace}/{environment.name}"))
    if not defer:
        return
    defer_job(
        session,
        DELETE_ENVIRONMENT,
        {"environment_id": environment.id},
        lock=environment_lock(environment.id),
    )
