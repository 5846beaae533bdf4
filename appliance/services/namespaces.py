"""Use cases of namespaces: list, read, create, change metadata and role mappings, delete.

Reads and changes check the caller's permissions (appliance.services.access) on the namespace;
listings show the namespaces any of the caller's bindings applies to.

Deleting a namespace (``DELETE /namespace/{ns}/``) soft-deletes it and every environment in it
(see :mod:`appliance.services.environments`: their builds are canceled and marked deleted),
drops the settings of the namespace and of its environments, and defers the job that removes
each environment's files and rows and then the namespace's row. The name is free at once: a
submission to it creates a new namespace. Caller commits.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, delete, or_, select
from sqlalchemy.orm import Session, aliased

from appliance.auth.rbac import Permission
from appliance.common.errors import KilnError
from appliance.config.auth import ARN_PATTERN
from appliance.db.models import (
    Environment,
    Namespace,
    NamespaceRoleMapping,
    NamespaceRoleMappingV2,
    Setting,
)
from appliance.queue.tasks import DELETE_NAMESPACE, namespace_lock
from appliance.schemas import api as wire
from appliance.schemas.names import check_name
from appliance.services.access import Caller
from appliance.services.builds import defer_job
from appliance.services.environments import soft_delete_environment
from appliance.services.listing import Listing, PageRequest, paginate


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


class NamespaceExists(KilnError):
    """The namespace already exists."""

    code = "conflict"


class RoleGrantNotFound(KilnError):
    """failed to find role"""

    code = "not_found"


NAMESPACE_SORT_KEYS = ("name",)


def _active(session: Session, name: str, *, lock: bool = False) -> Namespace:
    statement = select(Namespace).where(Namespace.name == name, Namespace.active())
    namespace = session.scalar(statement.with_for_update() if lock else statement)
    if namespace is None:
        raise NamespaceNotFound(f"namespace {name} does not exist")
    return namespace


def _detail(namespace: Namespace) -> wire.NamespaceDetail:
    return wire.NamespaceDetail(
        id=namespace.id,
        name=namespace.name,
        metadata_=dict(namespace.metadata_ or {}),
        role_mappings=[
            wire.RoleMapping(id=m.id, entity=m.entity, role=m.role) for m in namespace.role_mappings
        ],
    )


def list_namespaces(
    session: Session, caller: Caller, page: PageRequest
) -> Listing[wire.NamespaceSummary]:
    """The namespaces the caller has any binding on, one page of them."""
    access = caller.access(session)
    statement = select(Namespace.id, Namespace.name).where(
        Namespace.active(), access.visible_namespaces(Namespace.name)
    )
    rows, count = paginate(
        session,
        statement,
        page,
        sort_columns={"name": [Namespace.name]},
        default_sort=["name"],
        tiebreak=Namespace.id,
    )
    items = [wire.NamespaceSummary(id=row.id, name=row.name) for row in rows]
    return Listing(items=items, count=count, page=page.page, size=page.size)


def get_namespace(session: Session, caller: Caller, name: str) -> wire.NamespaceDetail:
    caller.access(session).require(Permission.NAMESPACE_READ, namespace=name)
    return _detail(_active(session, name))


def create_namespace(session: Session, caller: Caller, name: str) -> wire.NamespaceDetail:
    """Create the namespace ``name``; :class:`NamespaceExists` if it does."""
    check_name(name)
    caller.access(session).require(Permission.NAMESPACE_CREATE, namespace=name)
    exists = session.scalar(select(Namespace.id).where(Namespace.name == name, Namespace.active()))
    if exists is not None:
        raise NamespaceExists(f"namespace {name} already exists")
    namespace = Namespace(name=name)
    session.add(namespace)
    session.flush()
    session.refresh(namespace)
    return _detail(namespace)


def _check_roles(policy_roles: frozenset[str], roles: Iterable[str], where: str) -> list[str]:
    names = list(dict.fromkeys(roles))
    unknown = [role for role in names if role not in policy_roles]
    if unknown or not names:
        raise KilnError(
            f"{where}: unknown role {', '.join(map(repr, unknown)) or '(none)'}; "
            f"allowed: {', '.join(sorted(policy_roles))}"
        )
    return names


def _check_metadata(metadata: object) -> dict[str, Any]:
    if not isinstance(metadata, dict):
        raise KilnError("metadata must be a JSON object")
    if len(json.dumps(metadata)) > MAX_METADATA_BYTES:
        raise KilnError(f"metadata is too large: at most {MAX_METADATA_BYTES} bytes of JSON")
    return metadata


#: Largest namespace metadata object, as JSON.
MAX_METADATA_BYTES = 64 * 1024


def update_namespace(
    session: Session,
    caller: Caller,
    name: str,
    *,
    metadata: dict[str, Any] | None = None,
    role_mappings: Mapping[str, Iterable[str]] | None = None,
) -> wire.NamespaceDetail:
    """Replace the metadata and/or all v1 role mappings of ``name`` (those given)."""
    access = caller.access(session)
    needed = [Permission.NAMESPACE_UPDATE]
    if role_mappings is not None:
        needed += [Permission.ROLE_MAPPING_CREATE, Permission.ROLE_MAPPING_DELETE]
    access.require(*needed, namespace=name)
    namespace = _active(session, name, lock=True)
    if metadata is not None:
        namespace.metadata_ = _check_metadata(metadata)
    if role_mappings is not None:
        rows = []
        for entity, roles in role_mappings.items():
            if not ARN_PATTERN.match(entity):
                raise KilnError(
                    f"role mapping {entity!r}: expected '<namespace>/<environment>' "
                    "('*' matches any characters, e.g. 'team/*')"
                )
            for role in _check_roles(access.policy.roles, roles, f"role mapping {entity!r}"):
                rows.append(NamespaceRoleMapping(entity=entity, role=role))
        namespace.role_mappings.clear()
        session.flush()
        namespace.role_mappings.extend(rows)
    session.flush()
    session.refresh(namespace)
    return _detail(namespace)


def _grants(session: Session, namespace: Namespace) -> Select[Any]:
    other = aliased(Namespace)
    return (
        select(NamespaceRoleMappingV2, other.name)
        .join(other, other.id == NamespaceRoleMappingV2.other_namespace_id)
        .where(NamespaceRoleMappingV2.namespace_id == namespace.id, other.active())
        .order_by(NamespaceRoleMappingV2.id)
    )


def _grant(row: NamespaceRoleMappingV2, namespace: str, other: str) -> wire.NamespaceRoleGrant:
    return wire.NamespaceRoleGrant(
        id=row.id, namespace=namespace, other_namespace=other, role=row.role
    )


def list_role_grants(session: Session, caller: Caller, name: str) -> list[wire.NamespaceRoleGrant]:
    """The v2 role mappings that give other namespaces' users access to ``name``."""
    caller.access(session).require(
        Permission.NAMESPACE_READ, Permission.ROLE_MAPPING_READ, namespace=name
    )
    namespace = _active(session, name)
    return [_grant(row, name, other) for row, other in session.execute(_grants(session, namespace))]


def get_role_grant(
    session: Session, caller: Caller, name: str, other_namespace: str
) -> wire.NamespaceRoleGrant:
    caller.access(session).require(
        Permission.NAMESPACE_READ, Permission.ROLE_MAPPING_READ, namespace=name
    )
    namespace = _active(session, name)
    row = session.execute(
        _grants(session, namespace).where(
            NamespaceRoleMappingV2.other_namespace_id
            == select(Namespace.id)
            .where(Namespace.name == other_namespace, Namespace.active())
            .scalar_subquery()
        )
    ).first()
    if row is None:
        raise RoleGrantNotFound(f"failed to find role: {other_namespace} has no role on {name}")
    return _grant(row[0], name, row[1])


def set_role_grant(
    session: Session,
    caller: Caller,
    name: str,
    other_namespace: str,
    role: str,
    *,
    create: bool,
) -> wire.NamespaceRoleGrant:
    """Give (``create``) or change the role of ``other_namespace``'s users on ``name/*``."""
    access = caller.access(session)
    permission = Permission.ROLE_MAPPING_CREATE if create else Permission.ROLE_MAPPING_UPDATE
    access.require(Permission.NAMESPACE_READ, permission, namespace=name)
    (role,) = _check_roles(access.policy.roles, [role], "role")
    namespace = _active(session, name, lock=True)
    other = _active(session, other_namespace)
    row = session.scalar(
        select(NamespaceRoleMappingV2).where(
            NamespaceRoleMappingV2.namespace_id == namespace.id,
            NamespaceRoleMappingV2.other_namespace_id == other.id,
        )
    )
    if create and row is not None:
        raise NamespaceExists(
            f"{other_namespace} already has the role {row.role} on {name}; change it with PUT"
        )
    if not create and row is None:
        raise RoleGrantNotFound(f"failed to find role: {other_namespace} has no role on {name}")
    if row is None:
        row = NamespaceRoleMappingV2(namespace_id=namespace.id, other_namespace_id=other.id)
        session.add(row)
    row.role = role
    session.flush()
    return _grant(row, name, other_namespace)


def delete_role_grant(session: Session, caller: Caller, name: str, other_namespace: str) -> None:
    caller.access(session).require(
        Permission.NAMESPACE_READ, Permission.ROLE_MAPPING_DELETE, namespace=name
    )
    namespace = _active(session, name, lock=True)
    other = _active(session, other_namespace)
    deleted = session.execute(
        delete(NamespaceRoleMappingV2).where(
            NamespaceRoleMappingV2.namespace_id == namespace.id,
            NamespaceRoleMappingV2.other_namespace_id == other.id,
        )
    )
    if not getattr(deleted, "rowcount", 0):
        raise RoleGrantNotFound(f"failed to find role: {other_namespace} has no role on {name}")


def delete_role_grants(session: Session, caller: Caller, name: str) -> None:
    """Remove every v2 role mapping that grants access to ``name``."""
    caller.access(session).require(
        Permission.NAMESPACE_READ, Permission.ROLE_MAPPING_DELETE, namespace=name
    )
    namespace = _active(session, name, lock=True)
    session.execute(
        delete(NamespaceRoleMappingV2).where(NamespaceRoleMappingV2.namespace_id == namespace.id)
    )


def delete_namespace_as(session: Session, caller: Caller, name: str) -> int:
    """:func:`delete_namespace` for a caller with ``namespace::delete`` on ``name``."""
    caller.access(session).require(Permission.NAMESPACE_DELETE, namespace=name)
    return delete_namespace(session, name)
