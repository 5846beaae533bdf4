"""Wire types of the REST API: what use cases return and the API serialises.

Field names follow conda-store's JSON (clients read them: conda-store-api.md §1.2, §5), so a
few are not Kiln's own spelling (``metadata_``, ``build_artifacts``). Times are aware UTC
datetimes, serialised as ISO 8601. Services build these from rows; handlers wrap them in the
envelope (appliance.api.envelope).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class NamespaceRef(msgspec.Struct, kw_only=True):
    """A namespace inside another object."""

    id: int
    name: str


class RoleMapping(msgspec.Struct, kw_only=True):
    """A v1 role mapping: users whose primary namespace is this namespace get ``role`` on the
    environments ``entity`` matches."""

    id: int
    entity: str
    role: str


class NamespaceRoleGrant(msgspec.Struct, kw_only=True):
    """A v2 role mapping: users whose primary namespace is ``other_namespace`` get ``role`` on
    ``namespace/*``."""

    id: int
    namespace: str
    other_namespace: str
    role: str


class NamespaceSummary(msgspec.Struct, kw_only=True):
    """A namespace in a listing."""

    id: int
    name: str


class NamespaceDetail(msgspec.Struct, kw_only=True):
    """One namespace, with its metadata and v1 role mappings."""

    id: int
    name: str
    metadata_: dict[str, Any]
    role_mappings: list[RoleMapping]


class Environment(msgspec.Struct, kw_only=True):
    """An environment: its namespace, current build and description."""

    id: int
    namespace: NamespaceRef
    name: str
    current_build_id: int | None
    description: str | None


class Specification(msgspec.Struct, kw_only=True):
    """A stored specification (content-addressed by ``sha256``)."""

    id: int
    name: str
    spec: dict[str, Any]
    sha256: str
    created_on: datetime
    is_lockfile: bool = False


class BuildArtifact(msgspec.Struct, kw_only=True):
    """An artifact of a build (download it from the build's artifact routes)."""

    id: int
    artifact_type: str
    key: str


class Build(msgspec.Struct, kw_only=True):
    """A build. Listings leave out ``specification`` and ``build_artifacts`` (None)."""

    id: int
    environment_id: int
    status: str
    status_info: str | None
    size: int
    scheduled_on: datetime
    started_on: datetime | None
    ended_on: datetime | None
    specification: Specification | None = None
    build_artifacts: list[BuildArtifact] | None = None


class ChannelRef(msgspec.Struct, kw_only=True):
    id: int
    name: str


class Channel(msgspec.Struct, kw_only=True):
    """An indexed conda channel."""

    id: int
    name: str
    last_update: datetime | None


class Package(msgspec.Struct, kw_only=True):
    """A conda package (name and version) in a channel."""

    id: int
    channel: ChannelRef
    name: str
    version: str
    license: str | None
    summary: str | None


class Permissions(msgspec.Struct, kw_only=True):
    """The caller's identity and what their bindings grant (``GET /api/v1/permission/``)."""

    authenticated: bool
    primary_namespace: str
    entity_permissions: dict[str, list[str]]
    entity_roles: dict[str, list[str]]
    expiration: datetime | None
    username: str | None = None


class NamespaceUsage(msgspec.Struct, kw_only=True):
    """What one namespace holds."""

    num_environments: int
    num_builds: int
    storage: int


class IssuedToken(msgspec.Struct, kw_only=True):
    """A token just minted (shown once)."""

    token: str
    id: str
    expiration: datetime | None


class BuildQueued(msgspec.Struct, kw_only=True):
    """The build a submission or rebuild queued (or found already built)."""

    build_id: int
