"""Recovery of builds whose worker stopped responding, decided case by case against real
Postgres: the dead worker is a row in ``procrastinate_workers`` whose heartbeat is old, exactly
what a SIGKILLed worker leaves (``test_worker_lifecycle.py`` kills a real one)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from appliance.builder.activate import point_environment_at
from appliance.builder.settings import BuildSettings
from appliance.db.enums import BuildStatus
from appliance.db.models import Build
from appliance.queue.app import make_app
from appliance.services.builds import delete_build, request_cancel
from appliance.services.recovery import RecoveredBuild, RecoveryAction
from appliance.storage import LocalArtifactStore, S3ArtifactStore
from appliance.storage.base import ArtifactKind, Storage
from appliance.worker.context import WorkerContext
from appliance.worker.recovery import recover_interrupted
from tests.fixtures.postgres import TestDatabase
from tests.fixtures.s3 import S3Server
from tests.fixtures.worker import build_of, drain, log_runs, submit

SPEC = "name: demo\ndependencies:\n  - kiln-demo-tool\n"


def job(sessions: sessionmaker[Session], job_id: int | None) -> tuple[str, dict[str, int], int]:
    with sessions() as session:
        row = session.execute(
            text("SELECT status::text, args, attempts FROM procrastinate_jobs WHERE id = :id"),
            {"id": job_id},
        ).one()
    return row[0], row[1], row[2]


def on_a_dead_worker(
    sessions: sessionmaker[Session],
    job_id: int | None,
    *,
    silent_for: float = 3600,
) -> None:
    """Mark ``job_id`` as running on a worker last heard of ``silent_for`` seconds ago."""
    with sessions.begin() as session:
        worker_id = session.execute(
            text(
                "INSERT INTO procrastinate_workers (last_heartbeat) "
                "VALUES (now() - make_interval(secs => :age)) RETURNING id"
            ),
            {"age": silent_for},
        ).scalar_one()
        session.execute(
            text("UPDATE procrastinate_jobs SET status = 'doing', worker_id = :w WHERE id = :id"),
            {"w": worker_id, "id": job_id},
        )


def building(
    sessions: sessionmaker[Session], build_id: int, *, attempt: int = 1, silent_for: float = 3600
) -> Build:
    """Make ``build_id`` look like a build a worker (now dead, or alive) was running."""
    with sessions.begin() as session:
        build = session.get_one(Build, build_id)
        build.status = BuildStatus.BUILDING
        build.worker_name = "gone:1"
        session.execute(
            text(
                "UPDATE procrastinate_jobs SET args = args || jsonb_build_object('attempt', :a) "
                "WHERE id = :id"
            ),
            {"a": attempt, "id": build.job_id},
        )
        job_id = build.job_id
    on_a_dead_worker(sessions, job_id, silent_for=silent_for)
    return build_of(sessions, build_id)


def half_built(settings: BuildSettings, build: Build) -> Path:
    prefix = settings.store_directory / "default" / build.build_key
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "kiln-demo-tool").write_text("half")
    return prefix


def recover(database: TestDatabase, worker: WorkerContext, rounds: int = 1) -> list[RecoveredBuild]:
    """Run ``rounds`` recoveries at once, as workers do at start and periodically."""

    async def main() -> list[RecoveredBuild]:
        app = make_app(database.conninfo)
        async with app.open_async():
            results = await asyncio.gather(
                *(recover_interrupted(worker, app.job_manager) for _ in range(rounds))
            )
        return [outcome for result in results for outcome in result]

    return asyncio.run(main())


def test_a_build_on_a_silent_worker_is_retried_once_into_an_empty_prefix(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    local_storage: LocalArtifactStore,
    worker_context: WorkerContext,
) -> None:
    build = building(db_sessions, submit(db_sessions, build_settings, SPEC))
    prefix = half_built(build_settings, build)
    [outcome] = recover(database, worker_context)
    assert (outcome.action, outcome.attempt) == (RecoveryAction.RETRIED, 1)
    retried = build_of(db_sessions, build.id)
    assert retried.status == BuildStatus.QUEUED
    assert retried.status_info == (
        "retrying (attempt 2 of 2): the worker gone:1 stopped responding during attempt 1"
    )
    assert not prefix.exists()
    assert job(db_sessions, build.job_id)[0] == "failed"
    assert retried.job_id != build.job_id
    assert job(db_sessions, retried.job_id)[:2] == ("todo", {"build_id": build.id, "attempt": 2})

    drain(database, build_settings, local_storage)
    done = build_of(db_sessions, build.id)
    assert done.status == BuildStatus.COMPLETED, done.status_info
    assert done.status_info == "completed on attempt 2"


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def artifact_storage(request: pytest.FixtureRequest, local_storage: LocalArtifactStore) -> Storage:
    """Each kind of artifact storage: local files append in place, S3 rewrites the object."""
    if request.param == "local":
        return local_storage
    server: S3Server = request.getfixturevalue("s3_bucket")
    return S3ArtifactStore(
        internal_endpoint=server.endpoint, access_key=server.access_key,
        secret_key=server.secret_key, region=server.region, bucket_name=server.bucket,
        secure=False,
    )  # fmt: skip


def test_a_retried_build_continues_the_log_of_its_interrupted_attempt(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    worker_context: WorkerContext,
    artifact_storage: Storage,
) -> None:
    build = building(db_sessions, submit(db_sessions, build_settings, SPEC))
    # What attempt 1 had written when its worker died.
    interrupted = "2026-11-25T18:00:00Z [install] linking kiln-demo-lib 1.0.0\n"
    artifact_storage.put(ArtifactKind.LOGS.storage_key(build.build_key), interrupted.encode())
    [outcome] = recover(database, worker_context)
    assert outcome.action == RecoveryAction.RETRIED

    drain(database, build_settings, artifact_storage)
    assert build_of(db_sessions, build.id).status == BuildStatus.COMPLETED
    [(_, first_attempt), (separator, second_attempt)] = log_runs(artifact_storage, build.build_key)
    assert first_attempt == interrupted
    assert separator == (
        "--- attempt 2 (previous attempt interrupted: retrying (attempt 2 of 2): the worker "
        "gone:1 stopped responding during attempt 1) ---"
    )
    assert second_attempt.count("--- install ---") == 1
    assert second_attempt.rstrip().endswith(f"build {build.id} completed")


def test_a_second_interruption_fails_the_build_with_the_reason(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    worker_context: WorkerContext,
) -> None:
    build = building(db_sessions, submit(db_sessions, build_settings, SPEC), attempt=2)
    prefix = half_built(build_settings, build)
    [outcome] = recover(database, worker_context)
    assert outcome.action == RecoveryAction.FAILED
    failed = build_of(db_sessions, build.id)
    assert failed.status == BuildStatus.FAILED
    assert "the worker gone:1 stopped responding during attempt 2 of 2" in (
        failed.status_info or ""
    )
    assert "not retried again" in (failed.status_info or "")
    assert failed.ended_on is not None and failed.worker_name is None
    assert failed.job_id == build.job_id and job(db_sessions, build.job_id)[0] == "failed"
    assert not prefix.exists()


def test_a_build_whose_cancel_was_requested_is_canceled_not_retried(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    worker_context: WorkerContext,
) -> None:
    build = building(db_sessions, submit(db_sessions, build_settings, SPEC))
    with db_sessions.begin() as session:
        request_cancel(session, build.id)  # nobody is left to stop it
    [outcome] = recover(database, worker_context)
    assert outcome.action == RecoveryAction.CANCELED
    assert build_of(db_sessions, build.id).status == BuildStatus.CANCELED


def test_a_build_on_a_worker_that_still_answers_is_left_alone(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    worker_context: WorkerContext,
) -> None:
    build = building(db_sessions, submit(db_sessions, build_settings, SPEC), silent_for=1)
    prefix = half_built(build_settings, build)
    assert recover(database, worker_context) == []
    assert build_of(db_sessions, build.id).status == BuildStatus.BUILDING
    assert prefix.exists()


def test_a_build_whose_job_ended_without_recording_it_is_retried(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    worker_context: WorkerContext,
) -> None:
    build = building(db_sessions, submit(db_sessions, build_settings, SPEC), silent_for=0)
    with db_sessions.begin() as session:  # e.g. the database failed as the worker recorded it
        session.execute(
            text("SELECT procrastinate_finish_job_v1(:id, 'failed', false)"), {"id": build.job_id}
        )
    [outcome] = recover(database, worker_context)
    assert outcome.action == RecoveryAction.RETRIED
    assert "its job ended (failed) without recording a result" in outcome.reason


def test_a_queued_build_whose_job_was_cancelled_is_canceled(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    worker_context: WorkerContext,
) -> None:
    build_id = submit(db_sessions, build_settings, SPEC)
    with db_sessions.begin() as session:  # cancelled from Procrastinate's own tools
        job_id = session.get_one(Build, build_id).job_id
        session.execute(
            text("SELECT procrastinate_cancel_job_v1(:id, false, false)"), {"id": job_id}
        )
    [outcome] = recover(database, worker_context)
    assert outcome.action == RecoveryAction.CANCELED
    assert build_of(db_sessions, build_id).status_info == "canceled; its job was cancelled"


def test_the_environment_link_goes_back_to_the_current_build_if_it_moved_to_the_dead_one(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    local_storage: LocalArtifactStore,
    worker_context: WorkerContext,
) -> None:
    current_id = submit(db_sessions, build_settings, SPEC)
    drain(database, build_settings, local_storage)
    current = build_of(db_sessions, current_id)
    link = build_settings.store_directory / "default" / "envs" / "demo"
    assert link.resolve() == (build_settings.store_directory / "default" / current.build_key)

    # The worker of a rebuild died after moving the link, before recording the build.
    build = building(db_sessions, submit(db_sessions, build_settings, SPEC, force=True))
    prefix = half_built(build_settings, build)
    point_environment_at(link, prefix)
    [outcome] = recover(database, worker_context)
    assert outcome.action == RecoveryAction.RETRIED
    assert link.resolve() == (build_settings.store_directory / "default" / current.build_key)
    assert not prefix.exists()


def test_concurrent_recoveries_handle_each_build_once(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    worker_context: WorkerContext,
) -> None:
    builds = [
        building(db_sessions, submit(db_sessions, build_settings, SPEC, force=True))
        for _ in range(4)
    ]
    outcomes = recover(database, worker_context, rounds=3)
    assert sorted(o.build_id for o in outcomes) == sorted(b.id for b in builds)
    with db_sessions() as session:
        waiting = session.execute(
            text("SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'")
        ).scalar_one()
    assert waiting == 4


def test_a_stalled_upkeep_job_is_retried_once_then_failed(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    worker_context: WorkerContext,
) -> None:
    build_id = submit(db_sessions, build_settings, SPEC)
    with db_sessions.begin() as session:
        request_cancel(session, build_id)
        delete_build(session, build_id)
        deletion = session.execute(
            text("SELECT id FROM procrastinate_jobs WHERE task_name = 'kiln.delete_build'")
        ).scalar_one()
    on_a_dead_worker(db_sessions, deletion)
    assert recover(database, worker_context) == []
    assert job(db_sessions, deletion)[0::2] == ("todo", 1)
    on_a_dead_worker(db_sessions, deletion)
    recover(database, worker_context)
    assert job(db_sessions, deletion)[0] == "failed"


def test_recovery_never_touches_finished_builds(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    local_storage: LocalArtifactStore,
    worker_context: WorkerContext,
) -> None:
    build_id = submit(db_sessions, build_settings, SPEC)
    drain(database, build_settings, local_storage)
    assert recover(database, worker_context) == []
    assert build_of(db_sessions, build_id).status == BuildStatus.COMPLETED
