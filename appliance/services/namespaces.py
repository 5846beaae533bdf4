"""Use cases of namespaces: delete one.

Deleting a namespace (``DELETE /namespace/{ns}/``) soft-deletes it and every environment in it
(see :mod:`appliance.services.environments`: their builds are canceled and marked deleted),
drops the settings of the namespace and of its environments, and defers the job that removes
each environment's files and rows and then the namespace's row. The name is free at once: a
submission to it creates a new namespace. Caller commits.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from appliance.common.errors import KilnError
from appliance.db.models import Environment, Namespace, Setting
from appliance.queue.tasks import DELETE_NAMESPACE, namespace_lock
from appliance.services.builds import defer_job
from appliance.services.environments import soft_delete_environment


class NamespaceNotFound(KilnError):
    """No such namespace."""

    code = "not_found"


def delete_namespace(session: Session, name: str) -> int:
    """Delete the namespace ``name`` with all its environments; returns its id.

    Raises :class:`NamespaceNotFound` when there is no such (undeleted) namespace.
    """
    namespace = session.scalar(
        select(Namespace).where(Namespace.name == name, Namespace.active()).with_for_update()
    )
    if namespace is None:
        raise NamespaceNotFound(f"namespace {name} does not exist")
    namespace.deleted_on = datetime.now(UTC)
    environments = session.scalars(
        select(Environment)
        .where(Environment.namespace_id == namespace.id, Environment.active())
        .order_by(Environment.id)
        .with_for_update()
    )
    for environment in environments:
        soft_delete_environment(session, environment, namespace=name, defer=False)
    session.execute(
        delete(Setting).where(
            or_(Setting.scope == name, Setting.scope.startswith(f"{name}/", autoescape=True))
        )
    )
    defer_job(
        session, DELETE_NAMESPACE, {"namespace_id": namespace.id}, lock=namespace_lock(namespace.id)
    )
    return namespace.id
