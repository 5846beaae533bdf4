"""Use cases of environments: read, list (v1 pages and v2 cursors), switch the current build,
change the description, delete.

Reads and changes check the caller's permissions (appliance.services.access) on
``namespace/environment``: ``environment::read`` to read, ``environment::update`` to switch the
current build or change the description, ``environment::delete`` to delete. Listings show the
environments any of the caller's bindings applies to, and never deleted ones.

Listing filters (conda-store's, ``GET /api/v1/environment/`` and ``/api/v2/environment/``):

- ``search``: a substring of the namespace or the environment name, case-insensitive and
  literal (``%`` and ``_`` match themselves);
- ``namespace``, ``name``: exact names;
- ``status``: the status of the current build (``COMPLETED``, ...; any case);
- ``packages``: every one must be installed in the current build (a conda package by name, or a
  pip package by its normalized name);
- ``artifact``: an artifact type the current build has (``CONDA_PACK``, ...). conda-store's types
  Kiln never produces (``DOCKER_MANIFEST``, ...) are accepted and match nothing;
- a second caller (the ``jwt`` parameter): only environments that caller can see too, so a
  service can list what one of its users may use.

Switching the current build (``PUT /environment/{ns}/{env}/`` with ``build_id``): the build must
be a COMPLETED, undeleted build of this very environment. The row changes at once; the
``envs/<name>`` link follows when the worker runs the ``kiln.update_environment`` job deferred in
the same transaction (it reads the current build when it runs, so jobs that run late or twice
leave the link on what the database says).

Deleting an environment (conda-store's ``DELETE /environment/{ns}/{env}/``) soft-deletes it at
once, so its name can be used again immediately, cancels its QUEUED and BUILDING builds, marks
every build deleted, drops its settings, and defers the job that removes the files (every
build's prefix and artifacts, kept kinds included, and the ``envs/<name>`` link if it still
points at one of its builds) and then the rows. Caller commits.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Row,
    Select,
    SQLColumnExpression,
    delete,
    exists,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
)
from sqlalchemy.orm import Session

from appliance.auth.rbac import Permission
from appliance.common.errors import KilnError
from appliance.db.enums import BuildStatus
from appliance.db.models import (
    Build,
    Environment,
    Namespace,
    Setting,
)
from appliance.queue.tasks import DELETE_ENVIRONMENT, UPDATE_ENVIRONMENT, environment_lock
from appliance.schemas import api as wire
from appliance.schemas.names import check_name
from appliance.services.access import Caller, Unauthenticated
from appliance.services.build_filters import (
    artifact_type,
    has_artifact,
    installed,
    package_names,
)
from appliance.services.builds import defer_job, request_cancel
from appliance.services.listing import (
    Fragment,
    Listing,
    PageRequest,
    SqlListing,
    paginate_sql,
    visible_environments,
)


class EnvironmentNotFound(KilnError):
    """No such environment."""

    code = "not_found"


class InvalidBuildChoice(KilnError):
    """The build cannot become the environment's current build."""

    code = "invalid_build"


class InvalidListing(KilnError):
    """A listing parameter is not valid; the message names it and what is allowed."""

    code = "invalid_parameter"


_Acted = TypeVar("_Acted")

#: Sort keys of environment listings (both, in this order, by default).
ENVIRONMENT_SORT_KEYS = ("namespace", "name")

#: Longest environment description accepted, in characters.
MAX_DESCRIPTION_LENGTH = 16 * 1024


# --- reading ----------------------------------------------------------------------------------


def _check_target(namespace: str, name: str) -> None:
    """Refuse names no namespace or environment can have (400 with the rule), before anything
    else: a permission message about ``team/web\\x00`` would only confuse."""
    check_name(namespace)
    check_name(name, what="environment")


def _active_environment(
    session: Session, namespace: str, name: str, *, lock: bool = False
) -> Environment:
    statement = (
        select(Environment)
        .join(Namespace, Namespace.id == Environment.namespace_id)
        .where(
            Namespace.name == namespace,
            Namespace.active(),
            Environment.name == name,
            Environment.active(),
        )
    )
    if lock:
        statement = statement.with_for_update(of=Environment)
    environment = session.scalar(statement)
    if environment is None:
        raise EnvironmentNotFound(f"environment {namespace}/{name} does not exist")
    return environment


def _wire(environment: Environment, namespace: Namespace) -> wire.Environment:
    return wire.Environment(
        id=environment.id,
        namespace=wire.NamespaceRef(id=namespace.id, name=namespace.name),
        name=environment.name,
        current_build_id=environment.current_build_id,
        description=environment.description,
    )


def get_environment(
    session: Session, caller: Caller, namespace: str, name: str
) -> wire.Environment:
    """The environment ``namespace/name``, for a caller with ``environment::read`` on it."""
    _check_target(namespace, name)
    caller.access(session).require(
        Permission.ENVIRONMENT_READ, namespace=namespace, environment=name
    )
    environment = _active_environment(session, namespace, name)
    return _wire(environment, environment.namespace)


# --- listing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvironmentFilters:
    """What an environment listing is narrowed to (see the module docstring)."""

    search: str | None = None
    namespace: str | None = None
    name: str | None = None
    status: str | None = None
    packages: tuple[str, ...] = ()
    artifact: str | None = None
    #: A second caller whose visibility also applies (the ``jwt`` parameter).
    scope: Caller | None = field(default=None, compare=False)


def _status(text: str) -> BuildStatus:
    try:
        return BuildStatus(text.upper())
    except ValueError:
        allowed = ", ".join(status.value for status in BuildStatus)
        raise InvalidListing(f"status {text!r} is not a build status; allowed: {allowed}") from None


#: The current build's id as text, for the subqueries of filters: compiled on their own (as
#: :class:`~appliance.services.listing.Fragment`), a reference to the mapped column would add
#: ``environment`` to the subquery's FROM instead of referring to the listing's row.
_CURRENT_BUILD_ID = literal_column("environment.current_build_id", BigInteger)


def _conditions(session: Session, filters: EnvironmentFilters) -> list[ColumnElement[bool]]:
    """SQL conditions of ``filters`` (the second caller's visibility included) on
    ``environment`` and ``namespace``; raises :class:`InvalidListing` for a bad value."""
    conditions: list[ColumnElement[bool]] = []
    if filters.scope is not None:
        try:
            scope = filters.scope.access(session)
        except Unauthenticated as error:
            raise InvalidListing(f"jwt: {error.message}") from None
        conditions.append(scope.visible_environments(Namespace.name, Environment.name))
    if filters.search:
        conditions.append(
            or_(
                Namespace.name.icontains(filters.search, autoescape=True),
                Environment.name.icontains(filters.search, autoescape=True),
            )
        )
    if filters.namespace is not None:
        conditions.append(Namespace.name == filters.namespace)
    if filters.name is not None:
        conditions.append(Environment.name == filters.name)
    if filters.status is not None:
        status = _status(filters.status)
        conditions.append(
            exists(select(Build.id).where(Build.id == _CURRENT_BUILD_ID, Build.status == status))
        )
    for package in package_names(filters.packages):
        conditions.append(installed(package, _CURRENT_BUILD_ID))
    if filters.artifact is not None:
        kind = artifact_type(filters.artifact)
        conditions.append(false() if kind is None else has_artifact(kind, _CURRENT_BUILD_ID))
    return conditions


def _filtered(session: Session, caller: Caller, filters: EnvironmentFilters) -> Select[Any]:
    """The environments the caller may see that match ``filters``, as rows with the columns
    of :func:`_row_to_wire`."""
    access = caller.access(session)
    return (
        select(
            Environment.id,
            Environment.name,
            Environment.current_build_id,
            Environment.description,
            Namespace.id.label("namespace_id"),
            Namespace.name.label("namespace_name"),
        )
        .join(Namespace, Namespace.id == Environment.namespace_id)
        .where(
            Environment.active(),
            Namespace.active(),
            access.visible_environments(Namespace.name, Environment.name),
            *_conditions(session, filters),
        )
    )


def _row_to_wire(row: Row[Any]) -> wire.Environment:
    return wire.Environment(
        id=row.id,
        namespace=wire.NamespaceRef(id=row.namespace_id, name=row.namespace_name),
        name=row.name,
        current_build_id=row.current_build_id,
        description=row.description,
    )


#: Listing columns of each sort key.
_SORT_COLUMNS: dict[str, SQLColumnExpression[str]] = {
    "namespace": Namespace.name,
    "name": Environment.name,
}


#: What a v1 listing reads of each environment (the fields of :func:`_listed_to_wire`).
_LISTED_COLUMNS = (
    "environment.id, environment.name, environment.current_build_id, environment.description, "
    "namespace.id, namespace.name"
)
_ENVIRONMENTS = "environment JOIN namespace ON namespace.id = environment.namespace_id"
_ACTIVE = Fragment("environment.deleted_on IS NULL AND namespace.deleted_on IS NULL")


def _listed_to_wire(row: Row[Any]) -> wire.Environment:
    return wire.Environment(
        id=row[0],
        namespace=wire.NamespaceRef(id=row[4], name=row[5]),
        name=row[1],
        current_build_id=row[2],
        description=row[3],
    )


def list_environments(
    session: Session, caller: Caller, filters: EnvironmentFilters, page: PageRequest
) -> Listing[wire.Environment]:
    """One page of the environments the caller may see that match ``filters`` (v1).

    Hand-written SQL (see :mod:`appliance.services.listing`); the same rows as
    :func:`_filtered`'s. The total is counted once, apart, so that the page can follow the
    namespace/name index and stop after ``size`` rows.
    """
    access = caller.access(session)
    where = Fragment.all_of(
        [
            _ACTIVE,
            visible_environments(access),
            *[Fragment.compiled(condition) for condition in _conditions(session, filters)],
        ]
    )
    listing = SqlListing(
        columns=_LISTED_COLUMNS,
        source=_ENVIRONMENTS,
        where=where,
        # ``environment`` and ``namespace`` here are the count's own (the innermost FROM of
        # those names), also for the filters' subqueries.
        total=Fragment(f"SELECT count(*) FROM {_ENVIRONMENTS} WHERE {where.sql}", where.values),
        sort_columns={"namespace": ["namespace.name"], "name": ["environment.name"]},
        default_sort=ENVIRONMENT_SORT_KEYS,
        tiebreak="environment.id",
    )
    rows, count = paginate_sql(session, listing, page)
    return Listing(
        items=[_listed_to_wire(row) for row in rows], count=count, page=page.page, size=page.size
    )


@dataclass(frozen=True)
class CursorRequest:
    """Which slice of a v2 listing: at most ``limit`` items after ``cursor`` (None: the start),
    sorted by ``sort_by`` (checked sort keys; empty: the default) then id."""

    limit: int
    sort_by: tuple[str, ...] = ()
    descending: bool = False
    cursor: str | None = None


@dataclass(frozen=True)
class CursorListing:
    """One slice of a v2 listing: pass ``cursor`` back for the next (None: this is the last);
    ``count`` is the number of matching items on all slices."""

    items: list[wire.Environment]
    cursor: str | None
    count: int


def encode_cursor(last_id: int, last_value: dict[str, str]) -> str:
    """conda-store's cursor ``{last_id, last_value: {sort key: value}}`` as URL-safe base64
    JSON (without padding)."""
    document = json.dumps({"last_id": last_id, "last_value": last_value}, separators=(",", ":"))
    return base64.urlsafe_b64encode(document.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort_by: Sequence[str]) -> tuple[int, dict[str, str]]:
    """``(last_id, last_value)`` of a cursor made by :func:`encode_cursor` for the same
    ``sort_by``. Standard base64 (conda-store's) is read too. Raises :class:`InvalidListing`."""
    malformed = InvalidListing(
        "cursor is malformed: pass back the 'cursor' of the previous response unchanged, or "
        "leave it out to start from the beginning"
    )
    try:
        text = cursor.strip().replace("+", "-").replace("/", "_")
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        document = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise malformed from None
    if not isinstance(document, dict):
        raise malformed
    last_id, last_value = document.get("last_id"), document.get("last_value")
    if (
        isinstance(last_id, bool)
        or not isinstance(last_id, int)
        or not isinstance(last_value, dict)
    ):
        raise malformed
    if set(last_value) != set(sort_by):
        raise InvalidListing(
            f"cursor was made for sort_by {','.join(sorted(last_value)) or '(none)'}, not "
            f"{','.join(sort_by)}; pass the same sort_by and order as for the first page"
        )
    if not all(isinstance(value, str) and len(value) <= 255 for value in last_value.values()):
        raise malformed
    return last_id, last_value


def list_environments_after(
    session: Session, caller: Caller, filters: EnvironmentFilters, request: CursorRequest
) -> CursorListing:
    """One slice of the environments the caller may see that match ``filters`` (v2: keyset
    pagination on the sort columns and the id, so slices stay consistent while rows are added
    or removed)."""
    matching = _filtered(session, caller, filters)
    # The total rides along with the slice (one round trip; PostgreSQL computes it once).
    total = select(func.count()).select_from(matching.subquery()).scalar_subquery()
    statement = matching.add_columns(total.label("total"))
    keys = request.sort_by or ENVIRONMENT_SORT_KEYS
    columns = [_SORT_COLUMNS[key] for key in keys]
    if request.cursor is not None:
        last_id, last_value = decode_cursor(request.cursor, keys)
        position = tuple_(*columns, Environment.id)
        reached = tuple_(*(literal(last_value[key]) for key in keys), literal(last_id))
        statement = statement.where(
            position < reached if request.descending else position > reached
        )
    order = [*columns, Environment.id]
    statement = statement.order_by(
        *(column.desc() if request.descending else column.asc() for column in order)
    )
    rows = session.execute(statement.limit(request.limit + 1)).all()
    if rows:
        count = rows[0].total
    else:  # past the end: nothing carried the total
        count = session.scalar(select(func.count()).select_from(matching.subquery()))
    more = len(rows) > request.limit
    rows = rows[: request.limit]
    cursor = None
    if more and rows:
        last = rows[-1]
        values = {"namespace": last.namespace_name, "name": last.name}
        cursor = encode_cursor(last.id, {key: values[key] for key in keys})
    return CursorListing(
        items=[_row_to_wire(row) for row in rows], cursor=cursor, count=int(count or 0)
    )


# --- changing ---------------------------------------------------------------------------------


def _check_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise KilnError(
            f"description is {len(description)} characters long; at most "
            f"{MAX_DESCRIPTION_LENGTH} are allowed"
        )
    return description


def update_environment(
    session: Session,
    caller: Caller,
    namespace: str,
    name: str,
    *,
    build_id: int | None = None,
    description: str | None = None,
) -> wire.Environment:
    """Make ``build_id`` the current build and/or replace the description (those given), for
    a caller with ``environment::update``. See the module docstring for which builds may
    become current; :class:`InvalidBuildChoice` says why another cannot."""
    _check_target(namespace, name)
    caller.access(session).require(
        Permission.ENVIRONMENT_UPDATE, namespace=namespace, environment=name
    )
    environment = _active_environment(session, namespace, name, lock=True)
    if description is not None:
        environment.description = _check_description(description)
    if build_id is not None:
        build = session.scalar(
            select(Build)
            .where(Build.id == build_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        where = f"{namespace}/{name}"
        if build is None or build.environment_id != environment.id:
            raise InvalidBuildChoice(
                f"build {build_id} is not a build of {where}; choose one of its own builds"
            )
        if build.deleted_on is not None:
            raise InvalidBuildChoice(f"build {build_id} was deleted; choose another build")
        if build.status != BuildStatus.COMPLETED:
            raise InvalidBuildChoice(
                f"build {build_id} is {build.status}; only a COMPLETED build can become the "
                f"current build of {where}"
            )
        environment.current_build_id = build.id
        defer_job(
            session,
            UPDATE_ENVIRONMENT,
            {"environment_id": environment.id},
            lock=environment_lock(environment.id),
        )
    session.flush()
    return _wire(environment, environment.namespace)


@dataclass(frozen=True)
class CurrentBuild:
    """Where the current build of an environment is: enough to find its prefix and link."""

    environment_id: int
    namespace: str
    environment: str
    build_id: int
    build_key: str
    key_version: int


def current_build(session: Session, environment_id: int) -> CurrentBuild | None:
    """The current build of an environment, for pointing its ``envs/<name>`` link; None when
    the environment is deleted or gone, or has no usable (COMPLETED, undeleted) current build."""
    row = session.execute(
        select(
            Namespace.name.label("namespace"),
            Environment.name.label("environment"),
            Build.id,
            Build.build_key,
            Build.key_version,
        )
        .select_from(Environment)
        .join(Namespace, Namespace.id == Environment.namespace_id)
        .join(Build, Build.id == Environment.current_build_id)
        .where(
            Environment.id == environment_id,
            Environment.active(),
            Namespace.active(),
            Build.deleted_on.is_(None),
            Build.status == BuildStatus.COMPLETED,
        )
    ).one_or_none()
    if row is None:
        return None
    return CurrentBuild(
        environment_id=environment_id,
        namespace=row.namespace,
        environment=row.environment,
        build_id=row.id,
        build_key=row.build_key,
        key_version=row.key_version,
    )


#: The first key of the PostgreSQL advisory lock that guards an environment's ``envs/<name>``
#: link (the second is the environment's id).
LINK_LOCK = 0x4B4C


def with_current_build(
    session: Session, environment_id: int, act: Callable[[CurrentBuild | None], _Acted]
) -> _Acted:
    """``act`` on :func:`current_build` of ``environment_id`` while this transaction holds the
    environment's link lock (:data:`LINK_LOCK`).

    Everything that moves an ``envs/<name>`` link reads the current build and moves the link
    inside this lock, one at a time, and each change of the current build is followed by such
    a move (the switch job; the build job once its completion is committed). So the last move
    reads what the database says last, and the link cannot stay on an older build than the
    database names, whatever order jobs run in."""
    session.execute(select(func.pg_advisory_xact_lock(LINK_LOCK, environment_id)))
    return act(current_build(session, environment_id))


# --- deleting ---------------------------------------------------------------------------------


def delete_environment_as(session: Session, caller: Caller, namespace: str, name: str) -> int:
    """:func:`delete_environment` for a caller with ``environment::delete`` on it."""
    _check_target(namespace, name)
    caller.access(session).require(
        Permission.ENVIRONMENT_DELETE, namespace=namespace, environment=name
    )
    return delete_environment(session, namespace, name)


def delete_environment(session: Session, namespace: str, name: str) -> int:
    """Delete the environment ``namespace/name``; returns its id.

    Raises :class:`EnvironmentNotFound` when there is no such (undeleted) environment.
    """
    environment = _active_environment(session, namespace, name, lock=True)
    soft_delete_environment(session, environment, namespace=namespace)
    return environment.id


def soft_delete_environment(
    session: Session, environment: Environment, *, namespace: str, defer: bool = True
) -> None:
    """Mark ``environment`` (locked by the caller) and its builds deleted, cancel its running
    builds, drop its settings and (``defer``) queue its removal job; a namespace being deleted
    removes its environments in its own job instead."""
    now = datetime.now(UTC)
    environment.deleted_on = now
    for build in environment.builds:
        if not build.status.is_final and build.deleted_on is None:
            request_cancel(session, build.id)
        if build.deleted_on is None:
            build.deleted_on = now
    session.execute(delete(Setting).where(Setting.scope == f"{namespace}/{environment.name}"))
    if not defer:
        return
    defer_job(
        session,
        DELETE_ENVIRONMENT,
        {"environment_id": environment.id},
        lock=environment_lock(environment.id),
    )
