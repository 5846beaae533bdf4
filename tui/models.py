"""What the console reads from Kiln's REST API, as typed values.

Each type mirrors one JSON object of the API (field names as the API spells them, minus
conda-store's odd ones) and is built by its ``from_json``, which reads only the fields the
console shows and tolerates fields it does not know, so a newer server still works. A missing
or mistyped field the console needs raises :class:`ValueError` (the client turns that into a
:class:`~tui.client.KilnApiError` naming the endpoint).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from tui import wire
from tui.wire import JSON

T = TypeVar("T")


# --- the REST API's objects ------------------------------------------------------------------


@dataclass(frozen=True)
class ServerStatus:
    """``GET /api/v1/``."""

    version: str

    @classmethod
    def from_json(cls, data: JSON) -> ServerStatus:
        return cls(version=wire.text(data, "version"))


@dataclass(frozen=True)
class Permissions:
    """``GET /api/v1/permission/``: who the console is and what it may do."""

    authenticated: bool
    primary_namespace: str
    username: str | None
    expiration: datetime | None
    entity_roles: dict[str, tuple[str, ...]]

    @property
    def is_admin(self) -> bool:
        """Whether the caller is admin on every namespace (``*/*``)."""
        return "admin" in self.entity_roles.get("*/*", ())

    @classmethod
    def from_json(cls, data: JSON) -> Permissions:
        return cls(
            authenticated=bool(data.get("authenticated")),
            primary_namespace=str(data.get("primary_namespace") or "default"),
            username=wire.optional_text(data, "username"),
            expiration=wire.moment(data, "expiration"),
            entity_roles=wire.bindings(data.get("entity_roles")),
        )


@dataclass(frozen=True)
class Build:
    """A build as listed (``GET /api/v1/build/``); ``status_info`` says why it failed."""

    id: int
    environment_id: int
    status: str
    status_info: str | None
    size: int
    scheduled_on: datetime | None
    started_on: datetime | None
    ended_on: datetime | None
    deleted_on: datetime | None

    @property
    def finished(self) -> bool:
        return self.status in ("COMPLETED", "FAILED", "CANCELED")

    @classmethod
    def from_json(cls, data: JSON) -> Build:
        return cls(
            id=wire.number(data, "id"),
            environment_id=wire.number(data, "environment_id"),
            status=wire.text(data, "status"),
            status_info=wire.optional_text(data, "status_info"),
            size=wire.optional_number(data, "size") or 0,
            scheduled_on=wire.moment(data, "scheduled_on"),
            started_on=wire.moment(data, "started_on"),
            ended_on=wire.moment(data, "ended_on"),
            deleted_on=wire.moment(data, "deleted_on"),
        )


@dataclass(frozen=True)
class Namespace:
    """A namespace, with its v1 role mappings when read on its own."""

    id: int
    name: str
    role_mappings: tuple[RoleMapping, ...] = ()

    @classmethod
    def from_json(cls, data: JSON) -> Namespace:
        return cls(
            id=wire.number(data, "id"),
            name=wire.text(data, "name"),
            role_mappings=tuple(
                RoleMapping.from_json(item) for item in wire.objects(data.get("role_mappings"))
            ),
        )


@dataclass(frozen=True)
class RoleMapping:
    """A v1 role mapping: users of the namespace get ``role`` on environments ``entity``
    matches (``ns/env`` glob)."""

    id: int
    entity: str
    role: str

    @classmethod
    def from_json(cls, data: JSON) -> RoleMapping:
        return cls(
            id=wire.number(data, "id"),
            entity=wire.text(data, "entity"),
            role=wire.text(data, "role"),
        )


@dataclass(frozen=True)
class RoleGrant:
    """A v2 role mapping: users whose primary namespace is ``other_namespace`` get ``role`` on
    ``namespace/*``."""

    id: int
    namespace: str
    other_namespace: str
    role: str

    @classmethod
    def from_json(cls, data: JSON) -> RoleGrant:
        return cls(
            id=wire.number(data, "id"),
            namespace=wire.text(data, "namespace"),
            other_namespace=wire.text(data, "other_namespace"),
            role=wire.text(data, "role"),
        )


@dataclass(frozen=True)
class Environment:
    """An environment and its current build."""

    id: int
    namespace: str
    name: str
    current_build_id: int | None
    description: str | None

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def from_json(cls, data: JSON) -> Environment:
        return cls(
            id=wire.number(data, "id"),
            namespace=wire.text(wire.mapping(data.get("namespace")), "name"),
            name=wire.text(data, "name"),
            current_build_id=wire.optional_number(data, "current_build_id"),
            description=wire.optional_text(data, "description"),
        )


@dataclass(frozen=True)
class NamespaceUsage:
    """``GET /api/v1/usage/``: what one namespace holds."""

    environments: int
    builds: int
    storage: int

    @classmethod
    def from_json(cls, data: JSON) -> NamespaceUsage:
        return cls(
            environments=wire.optional_number(data, "num_environments") or 0,
            builds=wire.optional_number(data, "num_builds") or 0,
            storage=wire.optional_number(data, "storage") or 0,
        )


@dataclass(frozen=True)
class TokenInfo:
    """An issued token as listed (never the token itself)."""

    id: str
    name: str
    username: str | None
    primary_namespace: str | None
    role_bindings: dict[str, tuple[str, ...]]
    created_on: datetime | None
    expires_on: datetime | None
    last_used: datetime | None
    revoked_on: datetime | None
    current: bool = False

    @property
    def revoked(self) -> bool:
        return self.revoked_on is not None

    @classmethod
    def from_json(cls, data: JSON) -> TokenInfo:
        return cls(
            id=wire.text(data, "id"),
            name=str(data.get("name") or ""),
            username=wire.optional_text(data, "username"),
            primary_namespace=wire.optional_text(data, "primary_namespace"),
            role_bindings=wire.bindings(data.get("role_bindings")),
            created_on=wire.moment(data, "created_on"),
            expires_on=wire.moment(data, "expires_on"),
            last_used=wire.moment(data, "last_used"),
            revoked_on=wire.moment(data, "revoked_on"),
            current=bool(data.get("current")),
        )


@dataclass(frozen=True)
class IssuedToken:
    """A token just minted: shown once."""

    token: str
    id: str
    expiration: datetime | None

    @classmethod
    def from_json(cls, data: JSON) -> IssuedToken:
        return cls(
            token=wire.text(data, "token"),
            id=wire.text(data, "id"),
            expiration=wire.moment(data, "expiration"),
        )


@dataclass(frozen=True)
class Account:
    """A user account."""

    id: int
    username: str
    is_admin: bool
    disabled: bool
    has_password: bool
    created_on: datetime | None
    last_login: datetime | None

    @classmethod
    def from_json(cls, data: JSON) -> Account:
        return cls(
            id=wire.number(data, "id"),
            username=wire.text(data, "username"),
            is_admin=bool(data.get("is_admin")),
            disabled=bool(data.get("disabled")),
            has_password=bool(data.get("has_password")),
            created_on=wire.moment(data, "created_on"),
            last_login=wire.moment(data, "last_login"),
        )


@dataclass(frozen=True)
class Listing(Generic[T]):
    """One page of a v1 listing, and how many items all pages hold."""

    items: list[T]
    count: int
