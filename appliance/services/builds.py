"""Use cases of builds: submit a specification, record what a worker did with a build, cancel
a build, delete a build.

Every function takes a SQLAlchemy ``Session`` and works inside the caller's transaction; the
caller commits. Submitting creates the rows *and* defers the build job in that one transaction,
so a job never runs for a build that was rolled back, and a committed build always has its job.
Cancelling and deleting work the same way: the row changes and the queue operation (aborting
the build's job, deferring the deletion job) commit together.

A build is run by one job at a time, the one named by ``Build.job_id``. The functions a worker
calls to record an outcome take that job's id and do nothing when the build has moved on (it
was requeued with a new job after its worker was presumed dead, or canceled meanwhile), so a
worker that comes back late can never overwrite what recovery decided.

Rules (decided here, documented for the API and the UI):

- Cancel: a QUEUED build becomes CANCELED at once and its job is cancelled; a BUILDING build
  gets ``cancel_requested_on`` and its job is aborted (the worker stops the build within about
  a second, removes the partial prefix and records CANCELED). Finished builds cannot be
  canceled.
- Delete: only finished builds (COMPLETED, FAILED, CANCELED: canceled builds *can* be deleted,
  unlike in conda-store). QUEUED or BUILDING builds must be canceled first. The current build
  of an environment cannot be deleted (its ``envs/<name>`` link would dangle under users'
  feet): make another build current or delete the environment. Deleting sets ``deleted_on`` at
  once; the job removes the prefix and every artifact except the kinds in
  ``CondaStore.build_artifacts_kept_on_deletion`` and sets the size to 0.
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
from appliance.queue.tasks import BUILD, DELETE_BUILD, TaskName, build_lock
from appliance.schemas.specification import (
    EnvironmentSpec,
    LockfileSpec,
    specification_from_dict,
)
from appliance.services.settings import effective_build_settings


class BuildNotFound(KilnError):
    """No such build."""

    code = "not_found"


class BuildConflict(KilnError):
    """The build is not in a state that allows this; the message says what to do first."""

    code = "conflict"


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
    """The active namespace ``name``, created if missing, locked for this transaction. Safe
    against a concurrent submission creating it too (the insert yields to the other's)."""
    session.execute(
        insert(Namespace)
        .values(name=name)
        .on_conflict_do_nothing(index_elements=["name"], index_where=Namespace.active())
    )
    return session.scalars(
        select(Namespace).where(Namespace.name == name, Namespace.active()).with_for_update()
    ).one()


def _environment(session: Session, namespace: Namespace, name: str) -> Environment:
    """The active environment ``name`` of ``namespace``, created if missing, locked for this
    transaction (race-free like :func:`_namespace`)."""
    session.execute(
        insert(Environment)
        .values(namespace_id=namespace.id, name=name)
        .on_conflict_do_nothing(
            index_elements=["namespace_id", "name"], index_where=Environment.active()
        )
    )
    return session.scalars(
        select(Environment)
        .where(
            Environment.namespace_id == namespace.id,
            Environment.name == name,
            Environment.active(),
        )
        .with_for_update()
    ).one()


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

    The server's policy is applied first (:func:`prepare_specification` with ``settings`` as
    the global, namespace and environment settings stored in the database amend them; raises
    :class:`SpecificationError`). When the same specification already built successfully in
    this environment and ``force`` is false, nothing is queued and that build is returned
    (conda-store's rule). A new build is QUEUED with its job deferred in this transaction.
    """
    settings = effective_build_settings(session, settings, namespace, specification.name)
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
    build_id = queue_build(
        session,
        namespace=namespace,
        environment_id=environment.id,
        specification=prepared,
        specification_id=stored.id,
        key_version=settings.build_key_version,
    )
    return Submitted(build_id=build_id, environment_id=environment.id, created=True)


def queue_build(
    session: Session,
    *,
    namespace: str,
    environment_id: int,
    specification: EnvironmentSpec | LockfileSpec,
    specification_id: int,
    key_version: int,
) -> int:
    """A new QUEUED build of the stored specification in the environment, with its job
    deferred in this transaction; its id."""
    build_id = next_build_id(session)
    scheduled = datetime.now(UTC)
    request = BuildRequest(
        namespace, specification, build_id, scheduled_on=scheduled, key_version=key_version
    )
    build = Build(
        id=build_id,
        environment_id=environment_id,
        specification_id=specification_id,
        status=BuildStatus.QUEUED,
        scheduled_on=scheduled,
        build_key=request.build_key,
        key_version=key_version,
    )
    session.add(build)
    session.flush()
    build.job_id = defer_job(session, BUILD, {"build_id": build_id}, lock=build_lock(build_id))
    return build_id


@dataclass(frozen=True)
class BuildAssignment:
    """What a worker needs to run a build it has taken."""

    request: BuildRequest
    environment_id: int


def start_build(
    session: Session,
    build_id: int,
    *,
    worker_name: str,
    platform: str,
    job_id: int | None = None,
    worker_id: int | None = None,
) -> BuildAssignment | None:
    """Mark a QUEUED build BUILDING for this worker; None when it is not QUEUED any more
    (canceled or deleted meanwhile, or already taken), or when ``job_id`` is given and is not
    the build's current job (it was requeued with another), in which case the job has nothing
    to do.
    """
    build = session.scalar(select(Build).where(Build.id == build_id).with_for_update())
    if build is None or build.status != BuildStatus.QUEUED or build.deleted_on is not None:
        return None
    if job_id is not None and build.job_id is not None and build.job_id != job_id:
        return None
    build.status = BuildStatus.BUILDING
    build.started_on = datetime.now(UTC)
    build.ended_on = None
    build.worker_name = worker_name
    build.worker_id = worker_id
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


def _finish(
    session: Session,
    build_id: int,
    status: BuildStatus,
    info: str | None,
    *,
    job_id: int | None = None,
) -> Build | None:
    """Record the end of a build; None (nothing changed) when ``job_id`` is given and the build
    is no longer BUILDING under that job."""
    build = session.scalar(select(Build).where(Build.id == build_id).with_for_update())
    if build is None:
        raise BuildNotFound(f"build {build_id} does not exist")
    if job_id is not None and (build.job_id != job_id or build.status != BuildStatus.BUILDING):
        return None
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


def complete_build(
    session: Session,
    build_id: int,
    result: BuildResult,
    *,
    job_id: int | None = None,
    note: str | None = None,
) -> bool:
    """Record a successful build: artifacts, installed packages, size; make it current.

    ``note`` becomes ``status_info`` (a completed build normally has none; a retried one says
    so). False when the build had moved on (see :func:`_finish`) and nothing was recorded.
    """
    _lock_environment_of(session, build_id)
    build = _finish(session, build_id, BuildStatus.COMPLETED, note, job_id=job_id)
    if build is None:
        return False
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
    return True


def fail_build(session: Session, build_id: int, reason: str, *, job_id: int | None = None) -> bool:
    """Record a failed build with the one-line reason a user reads (False: it had moved on)."""
    return _finish(session, build_id, BuildStatus.FAILED, reason, job_id=job_id) is not None


def cancel_build_record(
    session: Session, build_id: int, reason: str = "canceled", *, job_id: int | None = None
) -> bool:
    """Record that a build stopped because it was canceled (False: it had moved on)."""
    return _finish(session, build_id, BuildStatus.CANCELED, reason, job_id=job_id) is not None


def _lock_environment_of(session: Session, build_id: int) -> Environment | None:
    """Lock the environment of ``build_id`` before the build itself.

    Lock order: namespace, then environment, then build (submitting locks the namespace and the
    environment; deleting an environment locks it, then its builds). Taking the build first and
    its environment second would deadlock against an environment being deleted.
    """
    environment_id = session.scalar(select(Build.environment_id).where(Build.id == build_id))
    if environment_id is None:
        return None
    return session.scalar(
        select(Environment).where(Environment.id == environment_id).with_for_update()
    )


def _locked_build(session: Session, build_id: int) -> Build:
    build = session.scalar(
        select(Build)
        .where(Build.id == build_id)
        .with_for_update()
        .execution_options(populate_existing=True)  # what is true once the lock is held
    )
    if build is None or build.deleted_on is not None:
        raise BuildNotFound(f"build {build_id} does not exist")
    return build


def abort_job(session: Session, job_id: int) -> bool:
    """Cancel a job that has not started, or ask the worker running it to abort it, in the
    session's transaction (Procrastinate's own SQL function; the worker is notified at commit).
    False when the job had already ended (or does not exist)."""
    row = session.execute(
        text("SELECT procrastinate_cancel_job_v1(:id, true, false)"), {"id": job_id}
    )
    return row.scalar_one() is not None


@dataclass(frozen=True)
class CancelRequested:
    """The outcome of a cancel request: CANCELED (it had not started) or BUILDING (stopping)."""

    build_id: int
    status: BuildStatus


def request_cancel(session: Session, build_id: int) -> CancelRequested:
    """Cancel ``build_id`` (see the module docstring for the rules).

    Raises :class:`BuildNotFound` and, for finished builds, :class:`BuildConflict`. Asking
    again while a BUILDING build is stopping is harmless.
    """
    build = _locked_build(session, build_id)
    if build.status.is_final:
        raise BuildConflict(
            f"build {build_id} is {build.status}; only QUEUED or BUILDING builds can be canceled"
        )
    now = datetime.now(UTC)
    if build.cancel_requested_on is None:
        build.cancel_requested_on = now
    if build.job_id is not None:
        abort_job(session, build.job_id)
    if build.status == BuildStatus.QUEUED:
        build.status = BuildStatus.CANCELED
        build.status_info = "canceled before it started"
        build.ended_on = now
        build.worker_id = None
        build.worker_name = None
    return CancelRequested(build_id=build.id, status=build.status)


def requeue_build(
    session: Session, build_id: int, *, job_id: int, attempt: int, reason: str
) -> bool:
    """Put a build its worker had to abandon (the worker is stopping) back in the queue with a
    new job, keeping its attempt number: being stopped is not the build's fault.

    Does nothing and returns False when the build is no longer BUILDING under ``job_id``. A
    build whose cancel was requested meanwhile becomes CANCELED instead. The new job waits for
    the old one to end (they share the build's lock).
    """
    build = session.scalar(select(Build).where(Build.id == build_id).with_for_update())
    if build is None or build.job_id != job_id or build.status.is_final:
        return False
    if build.cancel_requested_on is not None:
        _finish(session, build_id, BuildStatus.CANCELED, "canceled while building")
        return True
    queue_again(session, build, attempt=attempt, reason=reason)
    return True


def queue_again(session: Session, build: Build, *, attempt: int, reason: str) -> None:
    """Make ``build`` (locked by the caller) QUEUED again with a new job for ``attempt``."""
    build.status = BuildStatus.QUEUED
    build.status_info = reason
    build.started_on = None
    build.ended_on = None
    build.worker_id = None
    build.worker_name = None
    build.job_id = defer_job(
        session, BUILD, {"build_id": build.id, "attempt": attempt}, lock=build_lock(build.id)
    )


def delete_build(session: Session, build_id: int) -> None:
    """Delete a finished build: hide it at once (``deleted_on``) and queue the job that removes
    its prefix and artifacts. See the module docstring for which builds can be deleted.

    Raises :class:`BuildNotFound` (also for a build already deleted) and
    :class:`BuildConflict` with what to do first.
    """
    environment = _lock_environment_of(session, build_id)
    build = _locked_build(session, build_id)
    if not build.status.is_final:
        raise BuildConflict(f"build {build_id} is {build.status}; cancel it first, then delete it")
    if environment is not None and environment.current_build_id == build_id:
        raise BuildConflict(
            f"build {build_id} is the current build of {environment.namespace.name}/"
            f"{environment.name}; make another build current or delete the environment"
        )
    build.deleted_on = datetime.now(UTC)
    defer_job(session, DELETE_BUILD, {"build_id": build_id}, lock=build_lock(build_id))


@dataclass(frozen=True)
class BuildState:
    """Where a build is, for callers that wait on it."""

    status: BuildStatus
    reason: str | None
    #: The ``envs/<name>`` link of its environment (None with v3 build keys or unknown).
    environment: str | None


def build_state(
    session: Session, build_id: int, settings: BuildSettings | None = None
) -> BuildState:
    """The status of ``build_id`` and, when ``settings`` are given, its environment link."""
    build = session.get(Build, build_id)
    if build is None:
        raise BuildNotFound(f"build {build_id} does not exist")
    link = None
    if settings is not None:
        environment = build.environment
        path = settings.current_link(
            environment.namespace.name, environment.name, build.key_version
        )
        link = str(path) if path is not None else None
    return BuildState(status=build.status, reason=build.status_info, environment=link)
