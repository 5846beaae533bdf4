"""Who is calling, and what they may do: the permission checks every use case makes.

A request starts as a :class:`Caller` (a verified token, or nobody). The first use case that
needs to know what the caller may do resolves it into an :class:`Access` in its own
transaction (:meth:`Caller.access`): the token must still be on record and not revoked, its
user not disabled, and the caller's bindings are worked out:

- nobody: ``AuthorizationBackend.unauthenticated_role_bindings`` (Kiln's default: none);
- a session (someone who logged in): ``authenticated_role_bindings``, ``admin`` on their own
  namespace (``<username>/*``), ``admin`` on everything for admin accounts, and the role
  mappings of their primary namespace in the database (v1 rows stored under it; v2 rows
  granting it a role on another namespace): all unioned;
- a scoped token (``kiln token create``, ``POST /api/v1/token/``, predefined tokens): exactly
  the bindings it carries, which were checked against its minter's when it was minted.

Use cases then call :meth:`Access.require` (raises :class:`Forbidden`, or
:class:`Unauthenticated` for anonymous callers so that clients know to log in) and filter
listings with :meth:`Access.visible_namespaces` / :meth:`Access.visible_environments`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, SQLColumnExpression, and_, false, or_, select, true, update
from sqlalchemy.orm import Session, aliased

from appliance.auth.rbac import (
    Bindings,
    RolePolicy,
    arn_within,
    freeze,
    like_pattern,
    split_arn,
    union,
)
from appliance.auth.tokens import SESSION, TokenClaims
from appliance.common.errors import KilnError
from appliance.db.models import (
    ApiToken,
    Namespace,
    NamespaceRoleMapping,
    NamespaceRoleMappingV2,
    User,
)
from appliance.schemas import api as wire

#: ``last_used`` of a token is written at most this often (not on every request).
LAST_USED_RESOLUTION = timedelta(minutes=1)


class Unauthenticated(KilnError):
    """request not authenticated: log in, or send a token (Authorization: Bearer TOKEN)."""

    code = "unauthenticated"


class Forbidden(KilnError):
    """request not authorized: your role bindings do not grant this."""

    code = "forbidden"


@dataclass(frozen=True)
class Access:
    """What one caller may do: their identity and effective role bindings."""

    policy: RolePolicy
    bindings: Mapping[str, frozenset[str]]
    authenticated: bool = False
    username: str | None = None
    user_id: int | None = None
    is_admin: bool = False
    primary_namespace: str = "default"
    expires_at: datetime | None = None
    token_id: str | None = None
    kind: str | None = None
    #: What use cases derive from these bindings and keep while this Access is (per request,
    #: or for as long as :class:`AccessCache` keeps it), e.g. compiled visibility filters.
    derived: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def permissions(self, namespace: str, environment: str | None = None) -> frozenset[str]:
        """The permissions this caller holds on ``namespace`` or ``namespace/environment``."""
        return self.policy.permissions(self.bindings, namespace, environment)

    def allows(self, permission: str, namespace: str, environment: str | None = None) -> bool:
        return permission in self.permissions(namespace, environment)

    def require(self, *permissions: str, namespace: str, environment: str | None = None) -> None:
        """Raise unless every one of ``permissions`` is held on the target."""
        held = self.permissions(namespace, environment)
        missing = [p for p in permissions if p not in held]
        if not missing:
            return
        target = f"{namespace}/{environment}" if environment is not None else namespace
        if not self.authenticated:
            raise Unauthenticated(
                f"request not authenticated: log in or send a token to {missing[0]} on {target}"
            )
        raise Forbidden(
            f"request not authorized: {', '.join(missing)} on {target} is not granted by your "
            "role bindings; ask an admin of the namespace for a role"
        )

    def require_authenticated(self) -> None:
        if not self.authenticated:
            raise Unauthenticated()

    def held_over(self, pattern: str) -> frozenset[str]:
        """The permissions granted by bindings that cover everything ``pattern`` matches
        (``*/*``: every namespace, ``team/*``: every environment of ``team``). What settings
        that apply to a whole namespace, or to all of them, need."""
        held: set[str] = set()
        for binding, roles in self.bindings.items():
            if arn_within(pattern, binding):
                held |= self.policy.permissions_of(roles)
        return frozenset(held)

    def held_everywhere(self) -> frozenset[str]:
        """:meth:`held_over` every namespace and environment (``*/*``)."""
        return self.held_over("*/*")

    def require_over(self, pattern: str, *permissions: str) -> None:
        """Raise unless every one of ``permissions`` is :meth:`held_over` ``pattern``."""
        held = self.held_over(pattern)
        missing = [p for p in permissions if p not in held]
        if not missing:
            return
        namespace, _, _ = pattern.partition("/")
        target = "every namespace" if namespace == "*" else f"every environment of {namespace}"
        if not self.authenticated:
            raise Unauthenticated(
                f"request not authenticated: log in or send a token to {missing[0]} on {target}"
            )
        raise Forbidden(
            f"request not authorized: {', '.join(missing)} on {target} (a '{pattern}' binding) "
            "is not granted by your role bindings; ask an admin"
        )

    def visible_namespaces(self, name: SQLColumnExpression[str]) -> ColumnElement[bool]:
        """SQL filter: namespaces any binding applies to (whatever its role)."""
        return _visible(self.bindings, name, None)

    def visible_environments(
        self, namespace: SQLColumnExpression[str], environment: SQLColumnExpression[str]
    ) -> ColumnElement[bool]:
        """SQL filter: environments any binding applies to (whatever its role)."""
        return _visible(self.bindings, namespace, environment)


def _visible(
    bindings: Bindings,
    namespace: SQLColumnExpression[str],
    environment: SQLColumnExpression[str] | None,
) -> ColumnElement[bool]:
    clauses: list[ColumnElement[bool]] = []
    for pattern in bindings:
        ns_glob, env_glob = split_arn(pattern)
        parts = []
        if ns_glob != "*":
            parts.append(namespace.like(like_pattern(ns_glob), escape="\\"))
        if environment is not None and env_glob != "*":
            parts.append(environment.like(like_pattern(env_glob), escape="\\"))
        if not parts:
            return true()
        clauses.append(and_(*parts))
    return or_(*clauses) if clauses else false()


class AccessCache:
    """Resolved :class:`Access` by token id, kept for ``ttl`` seconds in one web process.

    Resolving a caller costs one or two queries; a client making many requests with one token
    (a UI page, a script, a load test) pays them once per ``ttl``. The price: a token revoked or
    an account disabled by *another* process (a second web process, ``kiln user disable``)
    keeps working here for at most ``ttl`` seconds, and so do role mappings changed elsewhere.
    Changes through this process take effect at once: revoking (logout, ``DELETE
    /api/v1/token/{id}/``) calls :meth:`forget`, changing role mappings :meth:`clear`.
    """

    def __init__(self, ttl: float = 2.0, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self._max_entries = max_entries
        self._entries: dict[str, tuple[float, Access]] = {}

    def get(self, token_id: str) -> Access | None:
        entry = self._entries.get(token_id)
        if entry is None:
            return None
        if time.monotonic() - entry[0] > self.ttl:
            del self._entries[token_id]
            return None
        return entry[1]

    def put(self, token_id: str, access: Access) -> None:
        if self.ttl <= 0:
            return
        if len(self._entries) >= self._max_entries:
            self._entries.clear()  # rare: many distinct tokens within ttl; start afresh
        self._entries[token_id] = (time.monotonic(), access)

    def forget(self, token_id: str) -> None:
        self._entries.pop(token_id, None)

    def clear(self) -> None:
        """Forget every caller (after a change to role mappings made through this process)."""
        self._entries.clear()


@dataclass
class Caller:
    """A request's verified credentials, resolved into an :class:`Access` on first use.

    ``claims`` is None for anonymous callers. ``predefined`` marks a token from
    ``AuthenticationBackend.predefined_tokens`` (not on record in the database). ``cache``,
    when given, serves and keeps resolved accesses (:class:`AccessCache`).
    """

    policy: RolePolicy
    claims: TokenClaims | None = None
    predefined: bool = False
    cache: AccessCache | None = field(default=None, repr=False)
    _access: Access | None = field(default=None, repr=False)

    def access(self, session: Session) -> Access:
        """The caller's :class:`Access` (resolved once per request). Raises
        :class:`Unauthenticated` for a revoked or unknown token or a disabled account."""
        if self._access is None:
            self._access = self._cached() or self._resolve(session)
        return self._access

    def _cached(self) -> Access | None:
        if self.cache is None or self.claims is None or self.predefined:
            return None
        access = self.cache.get(self.claims.token_id)
        if access is not None and self.claims.expires_at <= datetime.now(UTC):
            return None
        return access

    def _resolve(self, session: Session) -> Access:
        access = resolve_access(session, self.policy, self.claims, self.predefined)
        if self.cache is not None and self.claims is not None and not self.predefined:
            self.cache.put(self.claims.token_id, access)
        return access


def resolve_access(
    session: Session, policy: RolePolicy, claims: TokenClaims | None, predefined: bool = False
) -> Access:
    """See the module docstring."""
    if claims is None:
        return Access(policy=policy, bindings=policy.unauthenticated)
    if predefined:
        return _identified(policy, claims, freeze(claims.role_bindings), None)
    user = _check_on_record(session, claims)
    if claims.kind != SESSION or user is None:
        return _identified(policy, claims, freeze(claims.role_bindings), user)
    own: dict[str, frozenset[str]] = {f"{claims.primary_namespace}/*": frozenset({"admin"})}
    if user.is_admin:
        own["*/*"] = frozenset({"admin"})
    bindings = union(
        policy.authenticated,
        freeze(claims.role_bindings),
        own,
        namespace_role_bindings(session, claims.primary_namespace),
    )
    return _identified(policy, claims, bindings, user)


def _identified(
    policy: RolePolicy, claims: TokenClaims, bindings: Bindings, user: User | None
) -> Access:
    return Access(
        policy=policy,
        bindings=bindings,
        authenticated=True,
        username=user.username if user is not None else claims.subject,
        user_id=user.id if user is not None else None,
        is_admin=bool(user is not None and user.is_admin),
        primary_namespace=claims.primary_namespace,
        expires_at=claims.expires_at,
        token_id=claims.token_id,
        kind=claims.kind,
    )


def _check_on_record(session: Session, claims: TokenClaims) -> User | None:
    """The token's user (None for tokens without one); raises :class:`Unauthenticated` when
    the token is unknown, revoked, or its user disabled."""
    try:
        token_id = uuid.UUID(claims.token_id)
    except ValueError:
        raise Unauthenticated("the token is not valid: its id is malformed") from None
    row = session.execute(
        select(ApiToken.revoked_on, ApiToken.last_used, User)
        .outerjoin(User, User.id == ApiToken.user_id)
        .where(ApiToken.id == token_id)
    ).one_or_none()
    if row is None:
        raise Unauthenticated("the token is not known to this Kiln; log in again or create one")
    revoked_on, last_used = row[0], row[1]
    user: User | None = row[2]
    if revoked_on is not None:
        raise Unauthenticated("the token was revoked; log in again or create a new one")
    if user is not None and user.disabled:
        raise Unauthenticated(f"the account {user.username} is disabled; ask an admin")
    now = datetime.now(UTC)
    if last_used is None or now - last_used > LAST_USED_RESOLUTION:
        session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used=now))
    return user


def namespace_role_bindings(session: Session, primary_namespace: str) -> dict[str, frozenset[str]]:
    """Bindings the database's role mappings give users whose primary namespace is
    ``primary_namespace``: v1 rows stored under it (``entity: role``) and v2 rows granting it
    a role on another namespace (``<namespace>/*: role``)."""
    bindings: dict[str, set[str]] = {}
    v1 = session.execute(
        select(NamespaceRoleMapping.entity, NamespaceRoleMapping.role)
        .join(Namespace, Namespace.id == NamespaceRoleMapping.namespace_id)
        .where(Namespace.name == primary_namespace, Namespace.active())
    )
    for entity, role in v1:
        bindings.setdefault(entity, set()).add(role)
    granted = aliased(Namespace)
    grantee = aliased(Namespace)
    v2 = session.execute(
        select(granted.name, NamespaceRoleMappingV2.role)
        .join(granted, granted.id == NamespaceRoleMappingV2.namespace_id)
        .join(grantee, grantee.id == NamespaceRoleMappingV2.other_namespace_id)
        .where(grantee.name == primary_namespace, grantee.active(), granted.active())
    )
    for namespace, role in v2:
        bindings.setdefault(f"{namespace}/*", set()).add(role)
    return {pattern: frozenset(roles) for pattern, roles in bindings.items()}


def describe_access(session: Session, caller: Caller) -> wire.Permissions:
    """``GET /api/v1/permission/``: who the caller is and what each binding grants."""
    access = caller.access(session)
    permissions: dict[str, list[str]] = {}
    roles: dict[str, list[str]] = {}
    for pattern, names in sorted(access.bindings.items()):
        permissions[pattern] = sorted(access.policy.permissions_of(names))
        roles[pattern] = sorted(names)
    return wire.Permissions(
        authenticated=access.authenticated,
        primary_namespace=access.primary_namespace,
        entity_permissions=permissions,
        entity_roles=roles,
        expiration=access.expires_at if access.kind is not None else None,
        username=access.username,
    )
