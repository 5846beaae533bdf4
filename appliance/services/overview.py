"""What the web UI's pages show, each page one use case made of the API's own.

The pages read the same listings and permission checks as the REST API
(:func:`~appliance.services.environments.list_environments`,
:func:`~appliance.services.build_queries.get_build`, ...) and add what a person needs next to
them in one round of reads: the current build of each listed environment, an environment's
build history and the namespaces it could be cloned into, the names a build belongs to and its
installed packages, and what a deletion would remove (asked before it is confirmed).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.auth.rbac import Permission
from appliance.db.enums import BuildArtifactType
from appliance.db.models import Build
from appliance.schemas import api as wire
from appliance.services.access import Caller
from appliance.services.build_queries import BuildFilters, find_build, get_build, list_builds
from appliance.services.clones import clone_namespaces
from appliance.services.environments import (
    EnvironmentFilters,
    get_environment,
    list_environments,
)
from appliance.services.listing import Listing, PageRequest
from appliance.services.packages import PackageFilters, build_packages
from appliance.storage.base import ArtifactKind

#: Builds an environment page lists, newest first (the page says how many there are in all).
HISTORY_SIZE = 50


@dataclass(frozen=True)
class EnvironmentRow:
    """A listed environment and its current build (None: it has none)."""

    environment: wire.Environment
    current: wire.Build | None


@dataclass(frozen=True)
class EnvironmentPage:
    """An environment, its current build (with specification and artifacts) and the newest
    :data:`HISTORY_SIZE` of its ``build_count`` builds."""

    environment: wire.Environment
    current: wire.Build | None
    builds: list[wire.Build]
    build_count: int
    #: The permissions the caller holds on this environment (the page shows only the actions
    #: they allow; the use cases check them again).
    allowed: frozenset[str] = frozenset()
    #: Namespaces the caller may create environments in (``environment::create``), by name:
    #: the targets a clone may choose from.
    clone_namespaces: tuple[str, ...] = ()


@dataclass(frozen=True)
class BuildPage:
    """A build (with specification and artifacts), the environment it belongs to, and one page
    of the packages it installed."""

    build: wire.Build
    namespace: str
    environment: str
    #: The permissions the caller holds on the build's environment.
    allowed: frozenset[str] = frozenset()
    #: Whether it is its environment's current build.
    current: bool = False
    #: Where its log is stored (it may not exist yet: a QUEUED build has none).
    log_key: str = ""
    packages: Listing[wire.Package] | None = None


@dataclass(frozen=True)
class EnvironmentDeletion:
    """What deleting an environment removes: itself, its ``builds`` (``running`` of them are
    QUEUED or BUILDING and get canceled) and their artifacts."""

    namespace: str
    environment: str
    builds: int
    running: int


@dataclass(frozen=True)
class BuildDeletion:
    """What deleting a build removes: the build, its prefix and its artifacts."""

    build: wire.Build
    namespace: str
    environment: str


def environment_rows(
    session: Session, caller: Caller, filters: EnvironmentFilters, page: PageRequest
) -> Listing[EnvironmentRow]:
    """One page of :func:`list_environments` (same visibility, filters and pagination), each
    environment with its current build's summary."""
    listing = list_environments(session, caller, filters, page)
    ids = [item.current_build_id for item in listing.items if item.current_build_id is not None]
    builds: dict[int, wire.Build] = {}
    if ids:
        for build in session.scalars(select(Build).where(Build.id.in_(ids))):
            builds[build.id] = _summary(build)
    rows = [
        EnvironmentRow(
            environment=item,
            current=builds.get(item.current_build_id) if item.current_build_id else None,
        )
        for item in listing.items
    ]
    return Listing(items=rows, count=listing.count, page=listing.page, size=listing.size)


def environment_page(
    session: Session, caller: Caller, namespace: str, name: str
) -> EnvironmentPage:
    """The environment ``namespace/name`` (needs ``environment::read``, like
    :func:`get_environment`), its current build and its newest builds."""
    environment = get_environment(session, caller, namespace, name)
    current = (
        get_build(session, caller, environment.current_build_id)
        if environment.current_build_id is not None
        else None
    )
    history = list_builds(
        session,
        caller,
        BuildFilters(namespace=namespace, name=name),
        PageRequest(page=1, size=HISTORY_SIZE, sort_by=("id",), descending=True),
    )
    return EnvironmentPage(
        environment=environment,
        current=current,
        builds=history.items,
        build_count=history.count,
        allowed=caller.access(session).permissions(namespace, name),
        clone_namespaces=clone_namespaces(session, caller) if current is not None else (),
    )


def environment_deletion(
    session: Session, caller: Caller, namespace: str, name: str
) -> EnvironmentDeletion:
    """What deleting ``namespace/name`` would remove, for a caller who may delete it
    (``environment::delete``, as :func:`~appliance.services.environments.delete_environment_as`
    checks)."""
    environment = get_environment(session, caller, namespace, name)
    caller.access(session).require(
        Permission.ENVIRONMENT_DELETE, namespace=namespace, environment=name
    )
    statuses = session.scalars(
        select(Build.status).where(Build.environment_id == environment.id)
    ).all()
    return EnvironmentDeletion(
        namespace=namespace,
        environment=name,
        builds=len(statuses),
        running=sum(1 for status in statuses if not status.is_final),
    )


def build_deletion(session: Session, caller: Caller, build_id: int) -> BuildDeletion:
    """The build ``build_id`` a caller with ``build::delete`` on its environment asks to delete
    (whether it can be deleted is :func:`~appliance.services.build_queries.delete_build_as`'s
    to say)."""
    found = find_build(session, caller, build_id, Permission.BUILD_DELETE)
    return BuildDeletion(
        build=_summary(found.build), namespace=found.namespace, environment=found.environment
    )


def build_page(
    session: Session, caller: Caller, build_id: int, packages: PageRequest | None = None
) -> BuildPage:
    """The build ``build_id`` (needs ``environment::read`` on its environment, like
    :func:`get_build`), the names of its environment and, with ``packages``, that page of its
    installed packages (by name, as ``GET /build/{id}/packages/`` lists them)."""
    detail = get_build(session, caller, build_id)
    found = find_build(session, caller, build_id)
    recorded = {a.artifact_type: a.key for a in found.build.artifacts}
    log_key = recorded.get(BuildArtifactType.LOGS) or ArtifactKind.LOGS.storage_key(
        found.build.build_key
    )
    return BuildPage(
        build=detail,
        namespace=found.namespace,
        environment=found.environment,
        allowed=caller.access(session).permissions(found.namespace, found.environment),
        current=found.build.environment.current_build_id == build_id,
        log_key=log_key,
        packages=(
            build_packages(session, caller, build_id, PackageFilters(), packages)
            if packages is not None
            else None
        ),
    )


def _summary(build: Build) -> wire.Build:
    return wire.Build(
        id=build.id,
        environment_id=build.environment_id,
        status=str(build.status),
        status_info=build.status_info,
        size=build.size,
        scheduled_on=build.scheduled_on,
        started_on=build.started_on,
        ended_on=build.ended_on,
        deleted_on=build.deleted_on,
    )
