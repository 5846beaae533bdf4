"""Drafts of specifications in the web UI's editor: checking one without submitting it, what
its solve would install and change, and submitting it through the API's own use case.

A *draft* is the editor's text and its target: a namespace (creating an environment, named by
the text's ``name:``) or an existing environment (editing it; a submission queues a new build of
it). Everything here answers with :class:`Problem` values where the API would raise, so the
editor can show every problem next to the text and keep the text.

- **Checking** (:func:`check_draft`) applies what ``POST /api/v1/specification/`` applies, with
  the same functions and therefore the same messages: the parser with the server's limits
  (:func:`~appliance.schemas.specification.parse_specification`), the permission checks of
  :func:`appliance.services.specifications.submit`, and the server's package and channel policy
  with the settings stored for the target
  (:func:`~appliance.builder.pipeline.prepare_specification`). A problem without a line (the
  policy's, which run on the parsed specification) is placed at the line of the section it
  names (``dependencies[2]`` -> the ``dependencies:`` line).
- **Submitting** (:func:`submit_draft`) checks, then calls
  :func:`appliance.services.specifications.submit` itself: the API's permission checks and
  rules, not a copy of them. Editing also needs ``environment::update`` on the environment
  (what rebuilding needs), and the text's ``name:`` must stay the environment's.
- **Previewing** (:func:`preview_draft`) solves the checked specification with the web
  process's :class:`~appliance.services.specifications.Solver` (the API's solve endpoint's
  limits), against the channels a build of it would use, and compares the result with the
  packages the environment's current build installed (:func:`compare`): added, removed,
  upgraded, downgraded, and the same version from another channel. A lockfile is not solved:
  its pinned packages for this host's platform are the preview. Previewing needs
  ``environment::solve`` on the target.
- **Inserting a dependency** is :func:`appliance.schemas.spec_text.add_dependency` (it edits
  the text line by line, so comments and layout stay as written).

Versions are ordered by conda's rules (:func:`appliance.schemas.versions.compare_versions`).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.auth.rbac import Permission
from appliance.builder.pipeline import prepare_specification, solve_channels
from appliance.builder.settings import BuildSettings
from appliance.common.errors import ChannelError, SolveError, SpecificationError
from appliance.config.platforms import current_platform
from appliance.db.enums import BuildStatus
from appliance.db.models import Build, Namespace
from appliance.schemas import api as wire
from appliance.schemas.document import LocatedMap, line_of, load_document
from appliance.schemas.names import check_name
from appliance.schemas.specification import (
    EnvironmentSpec,
    LockfileSpec,
    parse_specification,
    specification_from_dict,
)
from appliance.schemas.versions import compare_versions, version_key
from appliance.services.access import Caller, Forbidden
from appliance.services.build_filters import InvalidFilter
from appliance.services.build_queries import BuildFilters, get_build, list_builds
from appliance.services.environments import get_environment
from appliance.services.listing import PageRequest
from appliance.services.packages import PackageFilters, build_packages, search_packages
from appliance.services.settings import effective_build_settings
from appliance.services.specifications import Solver, SolverBusy, Submission, submit
from appliance.services.transactions import AsyncTransactions

#: Package names a search shows at most (each with its versions).
SEARCH_NAMES = 20
#: Rows (name and version pairs) a search reads from the index.
SEARCH_ROWS = 100
#: Installed packages read per query when comparing with a build.
INSTALLED_PAGE = 1000

#: What the editor starts from when creating an environment.
NEW_SPECIFICATION = (
    "name: my-environment\ndependencies:\n  # one package per line, such as: - numpy >=1.26\n"
)


# --- values -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """Why a draft cannot be submitted (or previewed): the API's message, the part of the
    specification it names (``field``) and the 1-based line of the text, when known."""

    message: str
    field: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class Draft:
    """The editor's text and its target: ``environment`` None creates an environment in
    ``namespace`` (named by the text); otherwise the draft edits ``namespace/environment``."""

    text: str
    namespace: str
    environment: str | None = None


@dataclass(frozen=True)
class Checked:
    """The outcome of :func:`check_draft`: the specification as it would be built (None when
    there are problems) and the settings a build of it would use."""

    problems: tuple[Problem, ...] = ()
    specification: EnvironmentSpec | LockfileSpec | None = None
    settings: BuildSettings | None = None
    #: Editing: the environment's current build (None: it has none).
    current_build_id: int | None = None


@dataclass(frozen=True)
class Submitted:
    """The outcome of :func:`submit_draft`: the build to show (None when there are problems,
    and then nothing was changed); ``queued`` False when the same specification had already
    built successfully in the environment and that build is the answer (conda-store's rule)."""

    build_id: int | None = None
    queued: bool = False
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True)
class PlannedPackage:
    """A package the solve chose."""

    name: str
    version: str
    build: str
    channel: str


@dataclass(frozen=True)
class InstalledPackage:
    """A conda package a build installed (what the package index records of it)."""

    name: str
    version: str
    channel: str


@dataclass(frozen=True)
class Change:
    """A package in both the build and the plan, with another version or channel."""

    name: str
    old_version: str
    new_version: str
    old_channel: str
    new_channel: str


@dataclass(frozen=True)
class Changes:
    """What a build of the draft would change compared with the build ``build_id``."""

    build_id: int
    added: tuple[PlannedPackage, ...] = ()
    removed: tuple[InstalledPackage, ...] = ()
    upgraded: tuple[Change, ...] = ()
    downgraded: tuple[Change, ...] = ()
    #: Same version (as conda orders them), another channel or spelling of the version.
    changed: tuple[Change, ...] = ()
    unchanged: int = 0

    @property
    def any(self) -> bool:
        return bool(self.added or self.removed or self.upgraded or self.downgraded or self.changed)


@dataclass(frozen=True)
class Preview:
    """What a build of the draft would install on this host's platform, or why it cannot be
    told (``problems``)."""

    problems: tuple[Problem, ...] = ()
    packages: tuple[PlannedPackage, ...] = ()
    platform: str = ""
    #: pip requirements: installed by the build, not solved here.
    pip: tuple[str, ...] = ()
    #: Editing an environment with a current build: the difference from that build.
    changes: Changes | None = None
    #: Whether the packages come from a lockfile (pinned, not solved).
    locked: bool = False


@dataclass(frozen=True)
class FoundPackage:
    """A package name of the index and its versions (in conda's order, newest last)."""

    name: str
    versions: tuple[str, ...]
    summary: str | None = None


@dataclass(frozen=True)
class PackageSearch:
    """Package names matching ``search`` (at most :data:`SEARCH_NAMES`), or ``problem``."""

    search: str
    packages: tuple[FoundPackage, ...] = ()
    more: bool = False
    problem: str | None = None


@dataclass(frozen=True)
class EditTarget:
    """An environment to edit: the text to start from (the specification of its current build,
    else of its newest build), and the caller's permissions on it."""

    environment: wire.Environment
    text: str
    #: The build the text comes from (None: the environment has no build).
    source_build_id: int | None
    allowed: frozenset[str] = field(default_factory=frozenset)

    @property
    def can_edit(self) -> bool:
        """Whether submitting is allowed (``environment::create`` as the API's submit needs,
        and ``environment::update``)."""
        return {Permission.ENVIRONMENT_CREATE, Permission.ENVIRONMENT_UPDATE} <= self.allowed

    @property
    def missing(self) -> tuple[str, ...]:
        """The permissions editing needs that the caller lacks."""
        needed = (Permission.ENVIRONMENT_CREATE, Permission.ENVIRONMENT_UPDATE)
        return tuple(p for p in needed if p not in self.allowed)


# --- reading ----------------------------------------------------------------------------------


def creatable_namespaces(session: Session, caller: Caller) -> list[str]:
    """The namespaces the caller can create environments in, sorted: existing ones where some
    binding grants ``environment::create``, and the caller's primary namespace when they may
    create environments there (and create it, if it does not exist yet)."""
    access = caller.access(session)
    names = set(
        session.scalars(
            select(Namespace.name).where(
                Namespace.active(), access.visible_namespaces(Namespace.name)
            )
        )
    )
    creatable = {n for n in names if access.allows(Permission.ENVIRONMENT_CREATE, n)}
    primary = access.primary_namespace
    if primary not in names and {
        Permission.ENVIRONMENT_CREATE,
        Permission.NAMESPACE_CREATE,
    } <= access.permissions(primary):
        creatable.add(primary)
    return sorted(creatable)


def edit_target(session: Session, caller: Caller, namespace: str, name: str) -> EditTarget:
    """The environment ``namespace/name`` to edit (needs ``environment::read``, like its page)."""
    environment = get_environment(session, caller, namespace, name)
    source = environment.current_build_id
    if source is None:
        newest = list_builds(
            session,
            caller,
            BuildFilters(namespace=namespace, name=name),
            PageRequest(page=1, size=1, sort_by=("id",), descending=True),
        )
        source = newest.items[0].id if newest.items else None
    text = NEW_SPECIFICATION.replace("my-environment", name)
    if source is not None:
        stored = get_build(session, caller, source).specification
        if stored is not None:
            text = specification_text(stored.spec)
    return EditTarget(
        environment=environment,
        text=text,
        source_build_id=source,
        allowed=caller.access(session).permissions(namespace, name),
    )


def specification_text(stored: dict[str, Any]) -> str:
    """A stored specification as the YAML a person edits (conda's key order)."""
    try:
        spec = specification_from_dict(stored)
    except SpecificationError:
        spec = None
    if isinstance(spec, EnvironmentSpec):
        return spec.to_yaml()
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    stream = io.StringIO()
    yaml.dump(stored, stream)
    return stream.getvalue()


def search_index(session: Session, search: str) -> PackageSearch:
    """Package names of the indexed channels containing ``search``, with their versions
    (:func:`~appliance.services.packages.search_packages`, which needs no permission)."""
    search = search.strip()
    if not search:
        return PackageSearch(search, problem="type part of a package name to search for")
    try:
        listing = search_packages(
            session,
            PackageFilters(search=search),
            PageRequest(page=1, size=SEARCH_ROWS, sort_by=("name",)),
            distinct_on=("name", "version"),
        )
    except InvalidFilter as error:
        return PackageSearch(search, problem=error.message)
    found: dict[str, list[wire.Package]] = {}
    for package in listing.items:
        found.setdefault(package.name, []).append(package)
    packages = tuple(
        FoundPackage(
            name=name,
            versions=tuple(sorted({p.version for p in rows}, key=version_key)),
            summary=next((p.summary for p in rows if p.summary), None),
        )
        for name, rows in list(found.items())[:SEARCH_NAMES]
    )
    more = len(found) > SEARCH_NAMES or listing.count > len(listing.items)
    if not packages:
        return PackageSearch(
            search, problem=f"no package of the indexed channels contains {search!r}"
        )
    return PackageSearch(search, packages=packages, more=more)


# --- checking ---------------------------------------------------------------------------------


def check_draft(
    session: Session,
    caller: Caller,
    settings: BuildSettings,
    draft: Draft,
    *,
    solving: bool = False,
) -> Checked:
    """Check ``draft`` as the API's submit would (see the module docstring); an empty
    namespace is the caller's primary namespace, as for the API.

    Raises when the caller may not use the editor at all: ``Unauthenticated`` or ``Forbidden``
    without ``environment::create`` on the namespace (creating), or without
    ``environment::read``, ``environment::update`` and ``environment::create`` on the
    environment (editing); ``EnvironmentNotFound`` for an environment that does not exist;
    ``InvalidName`` for a namespace name that cannot be one. Everything the text decides (its
    name included, and so the permissions that depend on it) is a :class:`Problem`.
    ``solving`` also requires ``environment::solve``.
    """
    access = caller.access(session)
    namespace = check_name(draft.namespace or access.primary_namespace)
    current_build_id = None
    if draft.environment is None:
        access.require(Permission.ENVIRONMENT_CREATE, namespace=namespace)
    else:
        environment = get_environment(session, caller, namespace, draft.environment)
        access.require(
            Permission.ENVIRONMENT_UPDATE,
            Permission.ENVIRONMENT_CREATE,
            namespace=namespace,
            environment=draft.environment,
        )
        current_build_id = environment.current_build_id
    try:
        spec = parse_specification(draft.text, limits=settings.limits)
    except SpecificationError as error:
        return Checked(problems=(problem_of(error, draft.text),))
    if draft.environment is not None and spec.name != draft.environment:
        return Checked(problems=(_renamed(draft.text, spec.name, draft.environment),))
    needed = [Permission.ENVIRONMENT_CREATE]
    if solving:
        needed.append(Permission.ENVIRONMENT_SOLVE)
    exists = session.scalar(
        select(Namespace.id).where(Namespace.name == namespace, Namespace.active())
    )
    try:
        access.require(*needed, namespace=namespace, environment=spec.name)
        if exists is None:
            access.require(Permission.NAMESPACE_CREATE, namespace=namespace)
    except Forbidden as error:
        line = _located(draft.text, "name")
        return Checked(problems=(Problem(error.message, field="name", line=line),))
    effective = effective_build_settings(session, settings, namespace, spec.name)
    try:
        prepared = prepare_specification(spec, effective)
    except SpecificationError as error:
        return Checked(problems=(problem_of(error, draft.text),))
    return Checked(specification=prepared, settings=effective, current_build_id=current_build_id)


def problem_of(error: SpecificationError, text: str) -> Problem:
    """``error`` as a :class:`Problem`; without a line of its own, at the line of the top-level
    key its field names."""
    line = error.line
    if line is None and error.field:
        line = _located(text, error.field)
    return Problem(error.message, field=error.field, line=line)


def _located(text: str, field_path: str) -> int | None:
    """The line of the top-level key ``field_path`` starts with (``dependencies[2]`` ->
    ``dependencies``), when the text parses."""
    key = re.split(r"[.\[]", field_path, maxsplit=1)[0]
    try:
        data = load_document(text)
    except SpecificationError:
        return None
    return line_of(data, key) if isinstance(data, LocatedMap) else None


def _renamed(text: str, written: str, environment: str) -> Problem:
    return Problem(
        f"name: this page edits the environment {environment}, but the specification names "
        f"{written!r}; keep 'name: {environment}' (to make another environment, create a new "
        "one)",
        field="name",
        line=_located(text, "name"),
    )


# --- submitting -------------------------------------------------------------------------------


def submit_draft(
    session: Session,
    caller: Caller,
    settings: BuildSettings,
    draft: Draft,
    *,
    force: bool = False,
) -> Submitted:
    """Check ``draft`` (raising as :func:`check_draft` does), then submit it with
    :func:`appliance.services.specifications.submit`, the API's use case. With problems
    nothing is written."""
    checked = check_draft(session, caller, settings, draft)
    if checked.problems:
        return Submitted(problems=checked.problems)
    submission = Submission(
        specification=draft.text, namespace=draft.namespace or None, force=force
    )
    queued = submit(session, caller, settings, submission)
    status = session.scalar(select(Build.status).where(Build.id == queued.build_id))
    return Submitted(build_id=queued.build_id, queued=status != BuildStatus.COMPLETED)


# --- previewing -------------------------------------------------------------------------------


async def preview_draft(
    db: AsyncTransactions, caller: Caller, solver: Solver, draft: Draft
) -> Preview:
    """What a build of ``draft`` would install, and change (see the module docstring).

    Raises as :func:`check_draft` does; a busy solver, an unsatisfiable specification and an
    unreadable channel are problems of the preview.
    """
    checked = await db.read(check_draft, caller, solver.settings, draft, solving=True)
    spec, settings = checked.specification, checked.settings
    if checked.problems or spec is None or settings is None:
        return Preview(problems=checked.problems)
    platform = current_platform()
    try:
        if isinstance(spec, LockfileSpec):
            planned = _locked_packages(spec, platform)
            pip: tuple[str, ...] = tuple(
                f"{p.name}=={p.version}" for p in spec.pip_packages(platform)
            )
        else:
            solution = await solver.solve(spec, solve_channels(spec, settings))
            planned = [
                PlannedPackage(
                    name=record.name.normalized,
                    version=str(record.version),
                    build=str(record.build),
                    channel=str(record.channel).rstrip("/"),
                )
                for record in solution.for_platform(platform)
            ]
            pip = spec.pip
    except SpecificationError as error:
        return Preview(problems=(problem_of(error, draft.text),), platform=platform)
    except (SolverBusy, SolveError, ChannelError) as error:
        return Preview(problems=(Problem(error.message),), platform=platform)
    planned.sort(key=lambda package: package.name)
    changes = None
    if checked.current_build_id is not None:
        installed = await db.read(installed_packages, caller, checked.current_build_id)
        changes = compare(checked.current_build_id, installed, planned)
    return Preview(
        packages=tuple(planned),
        platform=platform,
        pip=pip,
        changes=changes,
        locked=isinstance(spec, LockfileSpec),
    )


def _locked_packages(spec: LockfileSpec, platform: str) -> list[PlannedPackage]:
    return [
        PlannedPackage(
            name=package.name,
            version=package.version,
            build=package.build or "",
            channel=package.url.rsplit("/", 2)[0],
        )
        for package in spec.packages(platform)
    ]


def installed_packages(session: Session, caller: Caller, build_id: int) -> list[InstalledPackage]:
    """Every conda package the build installed (:func:`~appliance.services.packages.
    build_packages`, which needs ``environment::read``)."""
    packages: list[InstalledPackage] = []
    page = 1
    while True:
        listing = build_packages(
            session,
            caller,
            build_id,
            PackageFilters(),
            PageRequest(page=page, size=INSTALLED_PAGE, sort_by=("name",)),
        )
        packages += [
            InstalledPackage(name=p.name, version=p.version, channel=p.channel.name)
            for p in listing.items
        ]
        if page * INSTALLED_PAGE >= listing.count or not listing.items:
            return packages
        page += 1


def compare(
    build_id: int, installed: Iterable[InstalledPackage], planned: Iterable[PlannedPackage]
) -> Changes:
    """What installing ``planned`` instead of ``installed`` (the build ``build_id``'s) changes,
    by package name, each list sorted by name."""
    before = {package.name: package for package in installed}
    after = {package.name: package for package in planned}
    upgraded, downgraded, changed = [], [], []
    unchanged = 0
    for name in sorted(before.keys() & after.keys()):
        old, new = before[name], after[name]
        change = Change(name, old.version, new.version, old.channel, new.channel)
        order = compare_versions(old.version, new.version)
        if order < 0:
            upgraded.append(change)
        elif order > 0:
            downgraded.append(change)
        elif old.version != new.version or old.channel != new.channel:
            changed.append(change)
        else:
            unchanged += 1
    return Changes(
        build_id=build_id,
        added=tuple(after[name] for name in sorted(after.keys() - before.keys())),
        removed=tuple(before[name] for name in sorted(before.keys() - after.keys())),
        upgraded=tuple(upgraded),
        downgraded=tuple(downgraded),
        changed=tuple(changed),
        unchanged=unchanged,
    )
