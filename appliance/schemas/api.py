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
    """A build. Listings leave out ``specification`` and ``build_artifacts`` (None).

    ``status_info`` says why a build failed or was canceled. Times are UTC.
    """

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
    #: When the build was deleted (its prefix and most artifacts are gone); None while it is
    #: not. conda-store listed deleted builds without saying so.
    deleted_on: datetime | None = None


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


class SolvedPackage(msgspec.Struct, kw_only=True):
    """A conda package a solve chose (``GET /api/v1/specification/``). conda-store's client
    reads ``name``, ``version``, ``channel_id`` and ``size``; ``channel_id`` is None for a
    channel Kiln has not recorded yet (``channel`` always names it)."""

    name: str
    version: str
    build: str
    build_number: int
    channel: str
    channel_id: int | None
    subdir: str
    filename: str
    url: str
    size: int | None
    sha256: str | None
    md5: str | None
    license: str | None
    depends: list[str]
    constrains: list[str]


class Settings(msgspec.Struct, kw_only=True):
    """Effective settings of a level (``GET /api/v1/setting/[ns/[env/]]``): conda-store's
    ``CondaStore`` option names, each from the most specific level that sets it
    (appliance.services.settings)."""

    build_artifacts: list[str]
    conda_solve_platforms: list[str]
    conda_default_channels: list[str]
    conda_allowed_channels: list[str]
    conda_default_packages: list[str]
    conda_required_packages: list[str]
    conda_included_packages: list[str]
    pypi_default_packages: list[str]
    pypi_required_packages: list[str]
    pypi_included_packages: list[str]
    conda_channel_alias: str
    conda_max_solve_time: int
    default_uid: int | None
    default_gid: int | None
    default_permissions: str | None
    build_artifacts_kept_on_deletion: list[str]
    conda_platforms: list[str]
    conda_indexed_channels: list[str]
    default_namespace: str
    filesystem_namespace: str
    storage_threshold: int


class TokenInfo(msgspec.Struct, kw_only=True):
    """An issued token as listed (``GET /api/v1/token/``); never the token itself."""

    id: str
    name: str
    username: str | None
    primary_namespace: str | None
    role_bindings: dict[str, list[str]]
    created_on: datetime
    expires_on: datetime | None
    last_used: datetime | None
    revoked_on: datetime | None
    #: Whether this is the token that made the request.
    current: bool = False


class Account(msgspec.Struct, kw_only=True):
    """A user account (never its password hash)."""

    id: int
    username: str
    is_admin: bool
    disabled: bool
    has_password: bool
    created_on: datetime
    last_login: datetime | None


class NewAccount(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An account to create (``POST /api/v1/admin/users/``). ``password`` null: the account
    logs in only through OAuth (its name must be the provider's user name)."""

    username: str
    password: str | None
    is_admin: bool = False


class AccountChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What to change of an account (``PATCH /api/v1/admin/users/{username}/``); absent or
    null fields stay as they are."""

    password: str | None = None
    disabled: bool | None = None
    is_admin: bool | None = None


class ServiceLogRecord(msgspec.Struct, kw_only=True):
    """One record a Kiln process (or the managed PostgreSQL) logged."""

    time: datetime
    #: ``supervisor``, ``postgres``, ``web``, ``worker-1``, ...
    service: str
    #: ``DEBUG``, ``INFO``, ``WARNING``, ``ERROR`` or ``CRITICAL``.
    level: str
    #: The logger's name (``kiln.web``, ``procrastinate.worker``); ``postgres`` for the server.
    logger: str
    message: str
    pid: int | None = None


class ServiceLogs(msgspec.Struct, kw_only=True):
    """The latest records of the logs asked for, oldest first, and the services there are."""

    records: list[ServiceLogRecord]
    #: Every name the ``service`` filter takes.
    services: list[str]


class LoginRedirect(msgspec.Struct, kw_only=True):
    """Where a browser goes after logging in (``POST /login/``)."""

    redirect_url: str
