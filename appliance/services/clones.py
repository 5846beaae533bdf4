"""Cloning an environment: the UI's "clone" is the API's ``POST /api/v1/specification/``
(:func:`~appliance.services.specifications.submit`, with its permission checks) of the current
build's specification under another namespace and/or name, refused when that environment exists
already (a clone never adds a build to another environment).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.auth.rbac import Permission
from appliance.builder.settings import BuildSettings
from appliance.common.errors import KilnError
from appliance.db.models import Build, Environment, Namespace
from appliance.schemas import api as wire
from appliance.schemas.names import check_name
from appliance.services import specifications
from appliance.services.access import Caller
from appliance.services.environments import get_environment

#: Most namespaces an environment page offers to clone into (by name; others can be typed in
#: the API or the CLI).
CLONE_TARGETS_SIZE = 500


class CloneRefused(KilnError):
    """The environment cannot be cloned as asked; the message says why and what to do."""

    code = "conflict"


def clone_namespaces(session: Session, caller: Caller) -> tuple[str, ...]:
    """The namespaces (at most :data:`CLONE_TARGETS_SIZE`, by name) the caller holds
    ``environment::create`` in: existing ones they can see, and their primary namespace
    (created by the first submission to it, for those who may)."""
    access = caller.access(session)
    names = session.scalars(
        select(Namespace.name)
        .where(Namespace.active(), access.visible_namespaces(Namespace.name))
        .order_by(Namespace.name)
        .limit(CLONE_TARGETS_SIZE)
    )
    targets = {access.primary_namespace, *names}
    return tuple(
        sorted(name for name in targets if access.allows(Permission.ENVIRONMENT_CREATE, name))
    )


def clone_environment(
    session: Session,
    caller: Caller,
    settings: BuildSettings,
    namespace: str,
    name: str,
    *,
    target_namespace: str,
    target_name: str,
) -> wire.BuildQueued:
    """Submit the current build's specification of ``namespace/name`` (read with
    ``environment::read``) as the new environment ``target_namespace/target_name``, with the
    same description, as ``POST /api/v1/specification/`` does (``environment::create`` there,
    and ``namespace::create`` for a namespace that does not exist yet).

    Raises :class:`CloneRefused` when the environment has no current build or the target
    exists already; the names' and the specification's own errors as a submission would.
    """
    check_name(target_namespace)
    check_name(target_name, what="environment")
    source = get_environment(session, caller, namespace, name)
    if source.current_build_id is None:
        raise CloneRefused(
            f"environment {namespace}/{name} has no current build to clone; wait until a build "
            "completes, then clone it"
        )
    taken = session.scalar(
        select(Environment.id)
        .join(Namespace, Namespace.id == Environment.namespace_id)
        .where(
            Namespace.name == target_namespace,
            Namespace.active(),
            Environment.name == target_name,
            Environment.active(),
        )
    )
    if taken is not None:
        raise CloneRefused(
            f"environment {target_namespace}/{target_name} already exists; choose another name "
            "or namespace for the clone"
        )
    stored = session.get_one(Build, source.current_build_id).specification
    submission = specifications.Submission(
        specification=stored.spec,
        namespace=target_namespace,
        is_lockfile=stored.is_lockfile,
        environment_name=target_name,
        environment_description=source.description,
    )
    return specifications.submit(session, caller, settings, submission)
