"""Use cases of builds: submit a specification, and record what a worker did with a build.

Every function takes a SQLAlchemy ``Session`` and works inside the caller's transaction; the
caller commits. Submitting creates the rows *and* defers the build job in that one transaction,
so a job never runs for a build that was rolled back, and a committed build always has its job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from appliance.builder.pipeline import BuildRequest, BuildResult, prepare_specification
from appliance.builder.settings import BuildSettings
from appliance.common.errors import KilnError
from appliance.db.enums import BuildArtifactType, BuildStatus
from appliance.db.models import (
    Build,
    BuildArtifact,
    BuildPipPackage,
    CondaChannel,
    CondaPackage,
    CondaPackageBuild,
    Environment,
    Namespace,
    Specification,
)
from appliance.db.models.builds import build_conda_package_build, next_build_id
from appliance.queue.tasks import BUILD, TaskName, build_lock
from appliance.schemas.specification import (
    EnvironmentSpec,
    LockfileSpec,
    specification_from_dict,
)


class BuildNotFound(KilnError):
    """No such build."""

    code = "not_found"


@dataclass(frozen=True)
class Submitted:
    """The outcome of a submission: the build, and whether it is new."""

    build_id: int
    environment_id: int
    created: bool


def defer_job(session: Session, task: TaskName, args: dict[str, Any], *, lock: str | None) -> int:
    """Queue ``task`` in the session's transaction (Procrastinate's own SQL function)."""
    row = session.execute(
        text(
            "SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW("
            ":queue, :task, 0, :lock, NULL, CAST(:args AS jsonb), NULL"
            ")::procrastinate_job_to_defer_v1]))"
        ),
        {"queue": task.queue, "task": task.name, "lock": lock, "args": json.dumps(args)},
    )
    return int(row.scalar_one())


def _namespace(session: Session, name: str) -> Namespace:
    namespace = session.scalar(
        select(Namespace).where(Namespace.name == name, Namespace.active()).with_for_update()
    )
    if namespace is None:
        namespace = Namespace(name=name)
        session.add(namespace)
        session.flush()
    return namespace


def _environment(session: Session, namespace: Namespace, name: str) -> Environment:
    environment = session.scalar(
        select(Environment)
        .where(
            Environment.namespace_id == namespace.id,
            Environment.name == name,
            Environment.active(),
        )
        .with_for_update()
    )
    if environment is None:
        environment = Environment(namespace_id=namespace.id, name=name)
        session.add(environment)
        session.flush()
    return environment


def _specification(session: Session, spec: EnvironmentSpec | LockfileSpec) -> Specification:
    digest = spec.sha256()
    session.execute(
        insert(Specification)
        .values(
            name=spec.name,
            spec=spec.to_dict(),
            sha256=digest,
            is_lockfile=isinstance(spec, LockfileSpec),
        )
        .on_conflict_do_nothing(index_elements=["sha256"])
    )
    return session.scalars(select(Specification).where(Specification.sha256 == digest)).one()


def submit_specification(
    session: Session,
    *,
    namespace: str,
    specification: EnvironmentSpec | LockfileSpec,
    settings: BuildSettings,
    force: bool = False,
    description: str | None = None,
) -> Submitted:
    """Create (or find) the environment and queue a build of ``specification`` in it.

    The server's policy is applied first (:func:`prepare_specification`; raises
    :class:`SpecificationError`). When the same specification already built successfully in
    this environment and ``force`` is false, nothing is queued and that build is returned
    (conda-store's rule). A new build is QUEUED with its job deferred in this transaction.
    """
    prepared = prepare_specification(specification, settings)
    space = _namespace(session, namespace)
    environment = _environment(session, space, prepared.name)
    if description is not None:
        environment.description = description
    elif prepared.description and not environment.description:
        environment.description = prepared.description
    stored = _specification(session, prepared)
    if not force:
        existing = session.scalar(
            select(Build.id)
            .where(
                Build.environment_id == environment.id,
                Build.specification_id == stored.id,
                Build.status == BuildStatus.COMPLETED,
                Build.deleted_on.is_(None),
            )
            .order_by(Build.id.desc())
            .limit(1)
        )
        if existing is not None:
            return Submitted(build_id=existing, environment_id=environment.id, created=False)
    build_id = next_build_id(session)
    scheduled = datetime.now(UTC)
    request = BuildRequest(
        namespace,
        prepared,
        build_id,
        scheduled_on=scheduled,
        key_version=settings.build_key_version,
    )
    build = Build(
        id=build_id,
        environment_id=environment.id,
        specification_id=stored.id,
        status=BuildStatus.QUEUED,
        scheduled_on=scheduled,
        build_key=request.build_key,
        key_version=settings.build_key_version,
    )
    session.add(build)
    session.flush()
    build.job_id = defer_job(session, BUILD, {"build_id": build_id}, lock=build_lock(build_id))
    return Submitted(build_id=build_id, environment_id=environment.id, created=True)


@dataclass(frozen=True)
class BuildAssignment:
    """What a worker needs to run a build it has taken."""

    request: BuildRequest
    environment_id: int


def start_build(
    session: Session, build_id: int, *, worker_name: str, platform: str
) -> BuildAssignment | None:
    """Mark a QUEUED build BUILDING for this worker; None when it is not QUEUED any more
    (canceled or deleted meanwhile, or already taken), in which case the job has nothing to do.
    """
    build = session.scalar(select(Build).where(Build.id == build_id).with_for_update())
    if build is None or build.status != BuildStatus.QUEUED or build.deleted_on is not None:
        return None
    build.status = BuildStatus.BUILDING
    build.started_on = datetime.now(UTC)
    build.worker_name = worker_name
    build.platform = platform
    environment = build.environment
    spec = specification_from_dict(build.specification.spec)
    if isinstance(spec, EnvironmentSpec | LockfileSpec) and spec.name != environment.name:
        spec = specification_from_dict(build.specification.spec, name=environment.name)
    request = BuildRequest(
        environment.namespace.name,
        spec,
        build.id,
        scheduled_on=build.scheduled_on,
        key_version=build.key_version,
    )
    return BuildAssignment(request=request, environment_id=environment.id)


def _finish(session: Session, build_id: int, status: BuildStatus, info: str | None) -> Build:
    build = session.scalar(select(Build).where(Build.id == build_id).with_for_update())
    if build is None:
        raise BuildNotFound(f"build {build_id} does not exist")
    build.status = status
    build.status_info = info
    build.ended_on = datetime.now(UTC)
    build.worker_id = None
    build.worker_name = None
    return build


def _channel_id(session: Session, url: str) -> int:
    session.execute(
        insert(CondaChannel).values(name=url).on_conflict_do_nothing(index_elements=["name"])
    )
    return int(session.scalars(select(CondaChannel.id).where(CondaChannel.name == url)).one())


def _package_build_id(session: Session, channel_id: int, package: Any) -> int:
    session.execute(
        insert(CondaPackage)
        .values(
            channel_id=channel_id,
            name=package.name,
            version=package.version,
            license=package.license,
        )
        .on_conflict_do_nothing(index_elements=["channel_id", "name", "version"])
    )
    package_id = session.scalars(
        select(CondaPackage.id).where(
            CondaPackage.channel_id == channel_id,
            CondaPackage.name == package.name,
            CondaPackage.version == package.version,
        )
    ).one()
    subdir = package.subdir or "noarch"
    filename = package.filename or f"{package.name}-{package.version}-{package.build}"
    session.execute(
        insert(CondaPackageBuild)
        .values(
            package_id=package_id,
            channel_id=channel_id,
            subdir=subdir,
            filename=filename,
            build=package.build,
            build_number=package.build_number,
            depends=list(package.depends),
            constrains=list(package.constrains),
            md5=package.md5,
            sha256=package.sha256,
            size=package.size,
        )
        .on_conflict_do_nothing(index_elements=["channel_id", "subdir", "filename"])
    )
    return int(
        session.scalars(
            select(CondaPackageBuild.id).where(
                CondaPackageBuild.channel_id == channel_id,
                CondaPackageBuild.subdir == subdir,
                CondaPackageBuild.filename == filename,
            )
        ).one()
    )


def complete_build(session: Session, build_id: int, result: BuildResult) -> None:
    """Record a successful build: artifacts, installed packages, size; make it current."""
    build = _finish(session, build_id, BuildStatus.COMPLETED, None)
    build.size = result.size
    for name, key in sorted(result.artifacts.items()):
        session.add(
            BuildArtifact(build_id=build_id, artifact_type=BuildArtifactType(name), key=key)
        )
    channels: dict[str, int] = {}
    package_build_ids = set()
    for package in result.packages:
        if package.manager == "pip":
            session.add(
                BuildPipPackage(
                    build_id=build_id,
                    name=package.name,
                    version=package.version,
                    sha256=package.sha256,
                )
            )
            continue
        channel = package.channel.rstrip("/")
        if channel not in channels:
            channels[channel] = _channel_id(session, channel)
        package_build_ids.add(_package_build_id(session, channels[channel], package))
    if package_build_ids:
        session.execute(
            insert(build_conda_package_build)
            .values(
                [{"build_id": build_id, "conda_package_build_id": i} for i in package_build_ids]
            )
            .on_conflict_do_nothing()
        )
    session.execute(
        update(Environment)
        .where(Environment.id == build.environment_id)
        .values(current_build_id=build_id)
    )


def fail_build(session: Session, build_id: int, reason: str) -> None:
    """Record a failed build with the one-line reason a user reads."""
    _finish(session, build_id, BuildStatus.FAILED, reason)


def cancel_build_record(session: Session, build_id: int, reason: str = "canceled") -> None:
    """Record that a build stopped because it was canceled."""
    _finish(session, build_id, BuildStatus.CANCELED, reason)
