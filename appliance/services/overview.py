"""What the web UI's pages show, each page one use case made of the API's own.

The pages read the same listings and permission checks as the REST API
(:func:`~appliance.services.environments.list_environments`,
:func:`~appliance.services.build_queries.get_build`, ...) and add what a person needs next to
them in one round of reads: the current build of each listed environment, an environment's
build history, the names a build belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.db.models import Build
from appliance.schemas import api as wire
from appliance.services.access import Caller
from appliance.services.build_queries import BuildFilters, find_build, get_build, list_builds
from appliance.services.environments import (
    EnvironmentFilters,
    get_environment,
    list_environments,
)
from appliance.services.listing import Listing, PageRequest

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


@dataclass(frozen=True)
class BuildPage:
    """A build (with specification and artifacts) and the environment it belongs to."""

    build: wire.Build
    namespace: str
    environment: str
    #: The permissions the caller holds on the build's environment.
    allowed: frozenset[str] = frozenset()


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
    )


def build_page(session: Session, caller: Caller, build_id: int) -> BuildPage:
    """The build ``build_id`` (needs ``environment::read`` on its environment, like
    :func:`get_build`) and the names of its environment."""
    detail = get_build(session, caller, build_id)
    found = find_build(session, caller, build_id)
    return BuildPage(
        build=detail,
        namespace=found.namespace,
        environment=found.environment,
        allowed=caller.access(session).permissions(found.namespace, found.environment),
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
