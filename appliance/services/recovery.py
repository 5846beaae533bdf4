"""Builds that nobody is building any more, and jobs that nobody is running any more.

A worker process can disappear without a word: SIGKILL, the out-of-memory killer, a host that
loses power. Procrastinate notices through heartbeats: a worker that has not updated its
heartbeat for ``stalled_after`` seconds is stalled, and the jobs it was running (status
``doing``) are stalled jobs. This module turns that into build states, so that nothing stays
QUEUED or BUILDING forever.

A build is *interrupted* when it is QUEUED or BUILDING and its job (``Build.job_id``) is stalled,
has ended without the build recording an outcome, or is gone. Each interrupted build is handled
in one transaction that holds the build's row lock (concurrent recoveries skip it), so it is
decided once:

- its half-built prefix is removed first (``remove_files``; the ``envs/<name>`` link never
  pointed at it, the build engine moves the link only as its very last step);
- a build whose cancel was requested (or whose job was cancelled) becomes CANCELED;
- otherwise it is **retried once**: QUEUED again with a new job, attempt 2, into a fresh prefix
  (same build key and path, emptied). A build whose second attempt is interrupted too becomes
  FAILED with the reason. Retrying covers the usual causes (a host rebooted, a deployment
  killed the worker); stopping after two attempts keeps a build that itself kills its worker
  (memory) from killing workers forever.

Stalled jobs of other kinds are retried once (deletions are idempotent; periodic jobs simply
run again) and then marked failed, which also frees their Procrastinate locks.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from appliance.db.enums import BuildStatus
from appliance.db.models import Build, Environment
from appliance.queue.tasks import BUILD
from appliance.services.builds import queue_again
from appliance.services.deletion import BuildFiles, build_files

#: Attempts a build gets when its worker stops responding: the first, and one retry.
MAX_ATTEMPTS = 2

_ACTIVE = (BuildStatus.QUEUED, BuildStatus.BUILDING)

#: True when the job's worker is gone or silent for ``:stalled_after`` seconds (Procrastinate's
#: own definition, ``select_stalled_jobs_by_heartbeat``), evaluated under the caller's row lock.
_WORKER_SILENT = """(
    j.worker_id IS NULL OR NOT EXISTS (
        SELECT 1 FROM procrastinate_workers w
        WHERE w.id = j.worker_id
          AND w.last_heartbeat >= now() - make_interval(secs => :stalled_after)
    )
)"""


class RecoveryAction(enum.StrEnum):
    """What recovery did with an interrupted build."""

    RETRIED = "retried"
    FAILED = "failed"
    CANCELED = "canceled"


@dataclass(frozen=True)
class RecoveredBuild:
    """One interrupted build and what became of it."""

    build_id: int
    action: RecoveryAction
    #: The attempt that was interrupted.
    attempt: int
    #: Why it was interrupted, in words (also in the build's ``status_info``).
    reason: str


def find_interrupted_builds(session: Session, *, stalled_job_ids: Collection[int]) -> list[int]:
    """Ids of QUEUED or BUILDING builds whose job is one of ``stalled_job_ids``, has ended, or
    is gone: the candidates for :func:`recover_build`, which checks each again under lock."""
    rows = session.execute(
        text(
            "SELECT b.id FROM build b "
            "LEFT JOIN procrastinate_jobs j ON j.id = b.job_id "
            "WHERE b.status IN ('QUEUED', 'BUILDING') "
            "AND (j.id IS NULL OR j.status NOT IN ('todo', 'doing') "
            "     OR j.id = ANY(CAST(:stalled AS bigint[]))) "
            "ORDER BY b.id"
        ),
        {"stalled": list(stalled_job_ids)},
    )
    return [int(row.id) for row in rows]


def _interruption(job: Any, worker: str) -> tuple[str, bool] | None:
    """Why the build's job no longer runs it, and whether that was a cancel; None when the
    job is alive (waiting, or running on a worker that still answers)."""
    if job is None:
        return "its job disappeared from the queue", False
    if job.status == "doing":
        if not job.silent:
            return None
        return f"the worker {worker} stopped responding", bool(job.abort_requested)
    if job.status == "todo":
        return None
    if job.status == "cancelled":
        return "its job was cancelled", True
    return f"its job ended ({job.status}) without recording a result", False


def recover_build(
    session: Session,
    build_id: int,
    *,
    stalled_after: float,
    remove_files: Callable[[BuildFiles, str | None], None],
) -> RecoveredBuild | None:
    """Retry, fail or cancel ``build_id`` if it is interrupted (see the module docstring).

    ``remove_files(files, current_build_key)`` removes the build's partial prefix (and puts the
    environment's link back on its current build should it point at this prefix); it runs
    while the build's row is locked, before the decision is committed. When it raises
    ``OSError`` the build is FAILED with that reason rather than retried into a dirty prefix.
    Returns None when the build is not interrupted (or another recovery holds it).
    """
    build = session.scalar(
        select(Build)
        .where(Build.id == build_id, Build.status.in_(_ACTIVE))
        .with_for_update(skip_locked=True)
    )
    if build is None:
        return None
    job = None
    if build.job_id is not None:
        job = session.execute(
            text(
                "SELECT j.id, j.status::text AS status, j.args, j.abort_requested, "
                f"{_WORKER_SILENT} AS silent "
                "FROM procrastinate_jobs j WHERE j.id = :id FOR UPDATE OF j"
            ),
            {"id": build.job_id, "stalled_after": stalled_after},
        ).one_or_none()
    worker = build.worker_name or "running it"
    found = _interruption(job, worker)
    if found is None:
        return None
    why, canceled = found
    attempt = int((job.args or {}).get("attempt", 1)) if job is not None else 1
    if job is not None and job.status == "doing":
        # Ends the silent worker's job, which also releases the build's queue lock.
        session.execute(
            text("SELECT procrastinate_finish_job_v1(:id, 'failed', false)"), {"id": job.id}
        )
    environment = session.get_one(Environment, build.environment_id)
    current = environment.current_build
    current_key = current.build_key if current is not None and current.id != build.id else None
    try:
        remove_files(build_files(build), current_key)
    except OSError as error:
        return _end(
            session,
            build,
            RecoveryAction.FAILED,
            attempt,
            f"{why} while building, and its partial prefix could not be removed "
            f"({error.strerror or error}); remove it by hand and rebuild",
        )
    if canceled or build.cancel_requested_on is not None:
        return _end(session, build, RecoveryAction.CANCELED, attempt, f"canceled; {why}")
    if attempt < MAX_ATTEMPTS:
        reason = (
            f"retrying (attempt {attempt + 1} of {MAX_ATTEMPTS}): {why} during attempt {attempt}"
        )
        queue_again(session, build, attempt=attempt + 1, reason=reason)
        return RecoveredBuild(build.id, RecoveryAction.RETRIED, attempt, reason)
    return _end(
        session,
        build,
        RecoveryAction.FAILED,
        attempt,
        f"{why} during attempt {attempt} of {MAX_ATTEMPTS}; not retried again (check the "
        "worker's log and the host's memory: a build that kills its worker fails this way)",
    )


def _end(
    session: Session, build: Build, action: RecoveryAction, attempt: int, reason: str
) -> RecoveredBuild:
    build.status = BuildStatus.CANCELED if action == RecoveryAction.CANCELED else BuildStatus.FAILED
    build.status_info = reason
    build.ended_on = datetime.now(UTC)
    build.worker_id = None
    build.worker_name = None
    return RecoveredBuild(build.id, action, attempt, reason)


@dataclass(frozen=True)
class RecoveredJob:
    """A stalled job that was not a build's current job, and what became of it."""

    job_id: int
    task_name: str
    retried: bool


def recover_stalled_jobs(
    session: Session, job_ids: Collection[int], *, stalled_after: float
) -> list[RecoveredJob]:
    """Retry once, or mark failed, the jobs of ``job_ids`` still stalled (checked again under
    lock). Build jobs are only ever marked failed: builds are retried by :func:`recover_build`
    with a new job, so a stalled build job left here belongs to a build that has moved on."""
    recovered = []
    for job_id in sorted(job_ids):
        job = session.execute(
            text(
                "SELECT j.id, j.task_name, j.attempts FROM procrastinate_jobs j "
                f"WHERE j.id = :id AND j.status = 'doing' AND {_WORKER_SILENT} "
                "FOR UPDATE OF j SKIP LOCKED"
            ),
            {"id": job_id, "stalled_after": stalled_after},
        ).one_or_none()
        if job is None:
            continue
        retry = job.task_name != BUILD.name and job.attempts < MAX_ATTEMPTS - 1
        if retry:
            try:
                with session.begin_nested():
                    session.execute(
                        text("SELECT procrastinate_retry_job_v2(:id, now(), NULL, NULL, NULL)"),
                        {"id": job.id},
                    )
            except IntegrityError:
                # A job with the same queueing lock is already waiting (a periodic job was
                # deferred again meanwhile): that one will do the work.
                retry = False
        if not retry:
            session.execute(
                text("SELECT procrastinate_finish_job_v1(:id, 'failed', false)"), {"id": job.id}
            )
        recovered.append(RecoveredJob(int(job.id), str(job.task_name), retry))
    return recovered
