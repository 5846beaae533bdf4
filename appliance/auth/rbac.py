"""Role-based access control: role bindings, the permissions they grant, and narrowing.

A *binding* maps an ARN pattern ``<namespace pattern>/<environment pattern>`` to role names
(``{"default/*": {"viewer"}}``); ``*`` matches any run of the characters names may use. A
pattern applies to an environment ``ns/env`` when both halves match, and to a namespace ``ns``
on its own when its namespace half matches (conda-store's rule: ``team/*`` grants on the
namespace ``team`` too).

A caller holds the union of the permissions of every binding that applies to the target
(conda-store merged binding dicts so that later sources replaced earlier ones; Kiln unions
them, DESIGN.md). Roles map to permissions through :class:`RolePolicy`, built from
``AuthorizationBackend.role_mappings``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from appliance.config.auth import (
    NAME_CHARACTERS,
    ROLE_ALIASES,
    AuthorizationBackend,
)

#: ``{"<ns pattern>/<env pattern>": roles}``.
Bindings = Mapping[str, frozenset[str]]


class Permission:
    """conda-store's permission names (the values role_mappings use)."""

    ENVIRONMENT_CREATE = "environment::create"
    ENVIRONMENT_READ = "environment::read"
    ENVIRONMENT_UPDATE = "environment::update"
    ENVIRONMENT_DELETE = "environment::delete"
    ENVIRONMENT_SOLVE = "environment::solve"
    BUILD_CANCEL = "build::cancel"
    BUILD_DELETE = "build::delete"
    NAMESPACE_CREATE = "namespace::create"
    NAMESPACE_READ = "namespace::read"
    NAMESPACE_UPDATE = "namespace::update"
    NAMESPACE_DELETE = "namespace::delete"
    ROLE_MAPPING_CREATE = "namespace-role-mapping::create"
    ROLE_MAPPING_READ = "namespace-role-mapping::read"
    ROLE_MAPPING_UPDATE = "namespace-role-mapping::update"
    ROLE_MAPPING_DELETE = "namespace-role-mapping::delete"
    SETTING_READ = "setting::read"
    SETTING_UPDATE = "setting::update"


@lru_cache(maxsize=4096)
def _half(pattern: str) -> re.Pattern[str]:
    parts = (re.escape(part) for part in pattern.split("*"))
    return re.compile(f"[{NAME_CHARACTERS}]*".join(parts))


@lru_cache(maxsize=4096)
def _half_of_patterns(pattern: str) -> re.Pattern[str]:
    """Like :func:`_half`, but ``*`` also matches ``*`` (for comparing two patterns)."""
    parts = (re.escape(part) for part in pattern.split("*"))
    return re.compile(f"[{NAME_CHARACTERS}*]*".join(parts))


def split_arn(pattern: str) -> tuple[str, str]:
    """``("ns pattern", "env pattern")`` of ``pattern``; a bare namespace means ``ns/*``."""
    namespace, _, environment = pattern.partition("/")
    return namespace, environment or "*"


def arn_applies(pattern: str, namespace: str, environment: str | None = None) -> bool:
    """Whether the binding ``pattern`` applies to ``namespace`` (``environment`` None) or to
    ``namespace/environment``."""
    ns_pattern, env_pattern = split_arn(pattern)
    if not _half(ns_pattern).fullmatch(namespace):
        return False
    return environment is None or _half(env_pattern).fullmatch(environment) is not None


def arn_within(inner: str, outer: str) -> bool:
    """Whether every name the pattern ``inner`` matches is matched by ``outer`` too."""
    inner_ns, inner_env = split_arn(inner)
    outer_ns, outer_env = split_arn(outer)
    return bool(
        _half_of_patterns(outer_ns).fullmatch(inner_ns)
        and _half_of_patterns(outer_env).fullmatch(inner_env)
    )


@dataclass(frozen=True)
class RolePolicy:
    """Roles and default bindings: the plain values of ``AuthorizationBackend``'s options."""

    #: role -> permissions; aliases (``developer``) resolved to the role they name.
    role_permissions: Mapping[str, frozenset[str]]
    #: Bindings of callers who are not logged in.
    unauthenticated: Bindings
    #: Bindings every logged-in caller gets in addition to their own.
    authenticated: Bindings

    @classmethod
    def from_config(cls, backend: AuthorizationBackend) -> RolePolicy:
        return cls(
            role_permissions={
                role: frozenset(permissions) for role, permissions in backend.role_mappings.items()
            },
            unauthenticated=freeze(backend.unauthenticated_role_bindings),
            authenticated=freeze(backend.authenticated_role_bindings),
        )

    @property
    def roles(self) -> frozenset[str]:
        """Role names a binding may use (aliases included)."""
        names = set(self.role_permissions)
        names.update(alias for alias, role in ROLE_ALIASES.items() if role in names)
        return frozenset(names)

    def permissions_of(self, roles: Iterable[str]) -> frozenset[str]:
        """The permissions granted by ``roles`` (unknown roles grant nothing)."""
        granted: set[str] = set()
        for role in roles:
            granted |= self.role_permissions.get(ROLE_ALIASES.get(role, role), frozenset())
        return frozenset(granted)

    def permissions(
        self, bindings: Bindings, namespace: str, environment: str | None = None
    ) -> frozenset[str]:
        """Every permission ``bindings`` grant on ``namespace`` or ``namespace/environment``."""
        roles: set[str] = set()
        for pattern, names in bindings.items():
            if arn_applies(pattern, namespace, environment):
                roles |= names
        return self.permissions_of(roles)

    def uncovered(self, held: Bindings, requested: Bindings) -> list[str]:
        """The requested bindings ``held`` does not cover, as messages (empty: all covered).

        A requested binding is covered when the permissions of its roles are all granted by
        held bindings whose pattern includes the requested pattern.
        """
        problems = []
        for pattern, names in requested.items():
            wanted = self.permissions_of(names)
            have: set[str] = set()
            for held_pattern, held_roles in held.items():
                if arn_within(pattern, held_pattern):
                    have |= self.permissions_of(held_roles)
            missing = sorted(wanted - have)
            if missing:
                problems.append(f"{pattern}: {', '.join(sorted(names))} needs {', '.join(missing)}")
        return problems


def freeze(bindings: Mapping[str, Iterable[str]]) -> dict[str, frozenset[str]]:
    """``bindings`` with frozen role sets."""
    return {pattern: frozenset(roles) for pattern, roles in bindings.items()}


def union(*sources: Bindings) -> dict[str, frozenset[str]]:
    """All the bindings of ``sources``: roles of the same pattern are unioned."""
    merged: dict[str, frozenset[str]] = {}
    for source in sources:
        for pattern, roles in source.items():
            merged[pattern] = merged.get(pattern, frozenset()) | roles
    return merged


def like_pattern(glob: str) -> str:
    """A pattern half as an SQL ``LIKE`` pattern (``\\`` escapes ``%`` and ``_``)."""
    escaped = glob.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")
