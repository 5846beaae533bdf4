"""What callers of the API do with builds: list, read, rebuild, cancel and delete them.

Each use case looks the build up with its environment and namespace and checks the caller's
permission on ``<namespace>/<environment>`` (appliance.services.access) before anything else
happens:

- read a build (``GET /build/{id}/``, its packages and artifacts): ``environment::read``;
- rebuild it (``PUT /build/{id}/``): ``environment::update``;
- cancel it: ``build::cancel``; delete it: ``build::delete``.

A build id that is unknown, or whose environment or namespace was deleted, is
:class:`~appliance.services.builds.BuildNotFound` (404) for everyone. A build that was deleted
on its own (``DELETE /build/{id}/``) stays readable, with its ``deleted_on`` set, until its
environment is deleted: conda-store listed such builds too, but without saying they were
deleted.

The rules of cancel and delete are :mod:`appliance.services.builds`'s; this module adds the
permission checks. A rebuild is a new QUEUED build of the *same stored specification* in the
same environment (conda-store's rule), with its job deferred in the same transaction; the
server's channel and package policy are not applied again (the worker still refuses channels
that are no longer allowed, with the reason in the build's status).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Row, literal_column, select
from sqlalchemy.orm import Session

from appliance.auth.rbac import Permission
from appliance.builder.settings import BuildSettings
from appliance.db.enums import BuildStatus
from appliance.db.models import (
    Build,
    Environment,
    Namespace,
)
from appliance.schemas import api as wire
from appliance.schemas.lockfile import LockfileSpec
from appliance.schemas.specification import EnvironmentSpec, specification_from_dict
from appliance.services.access import Caller
from appliance.services.build_filters import (
    InvalidFilter,
    artifact_type,
    has_artifact,
    installed,
    package_names,
)
from appliance.services.builds import (
    BuildConflict,
    BuildNotFound,
    delete_build,
    queue_build,
    request_cancel,
)
from appliance.services.listing import (
    Fragment,
    Listing,
    PageRequest,
    SqlListing,
    paginate_sql,
    visible_environments,
)

#: Sort keys of ``GET /build/`` (conda-store's), ``id`` by default.
BUILD_SORT_KEYS = ("id", "started_on", "scheduled_on", "ended_on")

#: Largest id a database row can have (ids are BIGINT); larger ones name no build.
MAX_ID = 2**63 - 1

#: Longest text a filter accepts (names are at most 255 characters).
MAX_FILTER_LENGTH = 255

#: Most ``packages`` one listing may filter on.


def check_text(parameter: str, value: str | None) -> str | None:
    """``value`` if it can be a filter on names; raises :class:`InvalidFilter` otherwise
    (longer than any name, or holding a NUL character, which PostgreSQL text cannot)."""
    if value is None:
        return None
    if "\x00" in value:
        raise InvalidFilter(f"{parameter} must not contain a NUL character")
    if len(value) > MAX_FILTER_LENGTH:
        raise InvalidFilter(
            f"{parameter} is {len(value)} characters long; at most {MAX_FILTER_LENGTH} are allowed"
        )
    return value


def check_id(build_id: int) -> int:
    """``build_id`` if it can name a build; :class:`BuildNotFound` otherwise."""
    if not 0 < build_id <= MAX_ID:
        raise BuildNotFound(f"build {build_id} does not exist")
    return build_id


@dataclass(frozen=True)
class BuildFilters:
    """The filters of ``GET /build/``; every one given must hold.

    ``packages``: names of packages that must *all* be installed in the build (a conda package
    name, or a pip project name in any spelling PEP 503 considers equal; at most
    :data:`MAX_PACKAGE_FILTERS`). ``artifact``: an artifact type the build must have
    (conda-store's types Kiln never produces are accepted and match nothing, see
    :data:`FOREIGN_ARTIFACT_TYPES`). ``name`` and ``namespace`` are the environment's and
    namespace's exact names.
    """

    status: str | None = None
    packages: Sequence[str] = ()
    artifact: str | None = None
    environment_id: int | None = None
    name: str | None = None
    namespace: str | None = None


def _status(value: str) -> BuildStatus:
    try:
        return BuildStatus(value.upper())
    except ValueError:
        raise InvalidFilter(
            f"status {value!r} is not a build status; allowed: {', '.join(BuildStatus)}"
        ) from None


#: ``build.id`` as text, for the subqueries of filters: compiled on their own (as
#: :class:`~appliance.services.listing.Fragment`), a reference to the mapped column would add
#: ``build`` to the subquery's FROM instead of referring to the listing's row.
_BUILD_ID = literal_column("build.id", BigInteger)


@dataclass(frozen=True)
class _Conditions:
    """SQL conditions of a build listing's filters: on the build itself, and on its environment
    and namespace (kept apart so that the total can be counted on ``build`` alone)."""

    build: list[ColumnElement[bool]]
    environment: list[ColumnElement[bool]]


def _conditions(filters: BuildFilters) -> _Conditions:
    """SQL conditions of ``filters``; raises :class:`InvalidFilter` for a bad value. Empty
    texts filter nothing (conda-store's UI sends ``namespace=&name=`` before a choice)."""
    conditions = _Conditions(build=[], environment=[])
    if filters.status:
        conditions.build.append(Build.status == _status(filters.status))
    if filters.environment_id is not None:
        if not 0 < filters.environment_id <= MAX_ID:
            raise InvalidFilter(
                f"environment_id must be a positive integer, not {filters.environment_id}"
            )
        conditions.build.append(Build.environment_id == filters.environment_id)
    if check_text("name", filters.name):
        conditions.environment.append(Environment.name == filters.name)
    if check_text("namespace", filters.namespace):
        conditions.environment.append(Namespace.name == filters.namespace)
    if check_text("artifact", filters.artifact):
        kind = artifact_type(filters.artifact or "")
        if kind is None:
            conditions.build.append(Build.id.is_(None))  # a type Kiln never produces
        else:
            conditions.build.append(has_artifact(kind, _BUILD_ID))
    wanted = package_names(name for name in filters.packages if check_text("packages", name))
    conditions.build.extend(installed(name, _BUILD_ID) for name in wanted)
    return conditions


_SUMMARY_COLUMNS = (
    Build.id,
    Build.environment_id,
    Build.status,
    Build.status_info,
    Build.size,
    Build.scheduled_on,
    Build.started_on,
    Build.ended_on,
    Build.deleted_on,
)


def _summary(row: Any) -> wire.Build:
    return wire.Build(
        id=row.id,
        environment_id=row.environment_id,
        status=str(row.status),
        status_info=row.status_info,
        size=row.size,
        scheduled_on=row.scheduled_on,
        started_on=row.started_on,
        ended_on=row.ended_on,
        deleted_on=row.deleted_on,
    )


def _summary_of_row(row: Row[Any]) -> wire.Build:
    """A build of a listing from its row (:data:`_LISTED_COLUMNS`, in order)."""
    return wire.Build(
        id=row[0],
        environment_id=row[1],
        status=row[2],
        status_info=row[3],
        size=row[4],
        scheduled_on=row[5],
        started_on=row[6],
        ended_on=row[7],
        deleted_on=row[8],
    )


#: What a listing reads of each build (the fields of :func:`_summary_of_row`, in order).
_LISTED_COLUMNS = (
    "build.id, build.environment_id, build.status, build.status_info, build.size, "
    "build.scheduled_on, build.started_on, build.ended_on, build.deleted_on"
)
_ACTIVE_ENVIRONMENT = Fragment("environment.deleted_on IS NULL AND namespace.deleted_on IS NULL")
_ENVIRONMENTS = "environment JOIN namespace ON namespace.id = environment.namespace_id"


def list_builds(
    session: Session, caller: Caller, filters: BuildFilters, page: PageRequest
) -> Listing[wire.Build]:
    """One page of the builds of environments the caller has any binding on, deleted builds
    included (with ``deleted_on``), builds of deleted environments not.

    Hand-written SQL (see :mod:`appliance.services.listing`): the page follows the index of
    the sort column and stops after ``size`` rows; the total is counted on ``build`` alone,
    as a semi-join with the (few) visible environments.
    """
    access = caller.access(session)
    conditions = _conditions(filters)
    on_environment = Fragment.all_of(
        [
            _ACTIVE_ENVIRONMENT,
            visible_environments(access),
            *[Fragment.compiled(condition) for condition in conditions.environment],
        ]
    )
    on_build = Fragment.all_of([Fragment.compiled(c) for c in conditions.build])
    total = Fragment(
        # ``build`` here is the count's own (the innermost FROM of that name), also for the
        # filters' subqueries: the count does not depend on the page's row.
        "SELECT count(*) FROM build WHERE build.environment_id IN "
        f"(SELECT environment.id FROM {_ENVIRONMENTS} WHERE {on_environment.sql}) "
        f"AND {on_build.sql}",
        (*on_environment.values, *on_build.values),
    )
    listing = SqlListing(
        columns=_LISTED_COLUMNS,
        source=f"build JOIN {_ENVIRONMENTS} ON environment.id = build.environment_id",
        where=Fragment.all_of([on_environment, on_build]),
        total=total,
        sort_columns={key: [f"build.{key}"] for key in BUILD_SORT_KEYS},
        default_sort=["id"],
        tiebreak="build.id",
    )
    rows, count = paginate_sql(session, listing, page)
    return Listing(
        items=[_summary_of_row(row) for row in rows], count=count, page=page.page, size=page.size
    )


@dataclass(frozen=True)
class FoundBuild:
    """A build the caller may act on, with the names its permissions were checked on."""

    build: Build
    namespace: str
    environment: str


def find_build(session: Session, caller: Caller, build_id: int, *permissions: str) -> FoundBuild:
    """The build ``build_id`` once the caller is known to hold ``permissions`` on its
    environment. Raises :class:`BuildNotFound` (unknown id, or its environment or namespace
    deleted), then the caller's :class:`~appliance.services.access.Unauthenticated` or
    :class:`~appliance.services.access.Forbidden`."""
    row = session.execute(
        select(Build, Namespace.name, Environment.name)
        .join(Environment, Environment.id == Build.environment_id)
        .join(Namespace, Namespace.id == Environment.namespace_id)
        .where(Build.id == check_id(build_id), Environment.active(), Namespace.active())
    ).one_or_none()
    if row is None:
        raise BuildNotFound(f"build {build_id} does not exist")
    build, namespace, environment = row
    caller.access(session).require(*permissions, namespace=namespace, environment=environment)
    return FoundBuild(build=build, namespace=namespace, environment=environment)


def get_build(session: Session, caller: Caller, build_id: int) -> wire.Build:
    """``GET /build/{id}/``: the build with its specification and artifacts."""
    build = find_build(session, caller, build_id, Permission.ENVIRONMENT_READ).build
    detail = _summary(build)
    specification = build.specification
    detail.specification = wire.Specification(
        id=specification.id,
        name=specification.name,
        spec=specification.spec,
        sha256=specification.sha256,
        created_on=specification.created_on,
        is_lockfile=specification.is_lockfile,
    )
    detail.build_artifacts = [
        wire.BuildArtifact(id=a.id, artifact_type=str(a.artifact_type), key=a.key)
        for a in build.artifacts
    ]
    return detail


def rebuild(session: Session, caller: Caller, build_id: int, settings: BuildSettings) -> int:
    """``PUT /build/{id}/``: queue a new build of the build's specification in its
    environment; returns the new build's id (see the module docstring)."""
    found = find_build(session, caller, build_id, Permission.ENVIRONMENT_UPDATE)
    environment = session.scalar(
        select(Environment)
        .where(Environment.id == found.build.environment_id, Environment.active())
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if environment is None:  # deleted since it was read
        raise BuildNotFound(f"build {build_id} does not exist")
    stored = found.build.specification
    spec: EnvironmentSpec | LockfileSpec = specification_from_dict(stored.spec)
    if spec.name != environment.name:
        spec = specification_from_dict(stored.spec, name=environment.name)
    return queue_build(
        session,
        namespace=found.namespace,
        environment_id=environment.id,
        specification=spec,
        specification_id=stored.id,
        key_version=settings.build_key_version,
    )


def cancel_build(session: Session, caller: Caller, build_id: int) -> str:
    """``PUT /build/{id}/cancel/``: cancel a QUEUED or BUILDING build; returns what happened,
    in words. Finished builds: :class:`~appliance.services.builds.BuildConflict` (409)."""
    found = find_build(session, caller, build_id, Permission.BUILD_CANCEL)
    if found.build.deleted_on is not None:
        raise BuildConflict(
            f"build {build_id} was deleted; only QUEUED or BUILDING builds can be canceled"
        )
    outcome = request_cancel(session, build_id)
    if outcome.status == BuildStatus.CANCELED:
        return f"build {build_id} canceled"
    return f"build {build_id} is stopping; it becomes CANCELED once its worker has stopped it"


def delete_build_as(session: Session, caller: Caller, build_id: int) -> None:
    """``DELETE /build/{id}/``: :func:`~appliance.services.builds.delete_build` for a caller
    with ``build::delete`` (finished builds that are not current; 409 otherwise)."""
    found = find_build(session, caller, build_id, Permission.BUILD_DELETE)
    if found.build.deleted_on is not None:
        raise BuildNotFound(f"build {build_id} was already deleted")
    delete_build(session, build_id)
