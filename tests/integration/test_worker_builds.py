"""Builds through the queue: a submission creates rows and a job in one transaction, and real
workers (in this process, and as `kiln worker` processes) build them against real Postgres and
count them in the metrics."""

from __future__ import annotations

import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from appliance.builder.settings import BuildSettings
from appliance.common.errors import SpecificationError
from appliance.db.enums import BuildStatus
from appliance.db.models import Build, BuildArtifact, CondaPackageBuild, Environment
from appliance.db.models.builds import build_conda_package_build
from appliance.observability.cluster import ClusterSnapshot
from appliance.observability.exposition import render
from appliance.observability.multiprocess import MULTIPROC_DIR_ENV
from appliance.schemas.specification import parse_specification
from appliance.services.builds import submit_specification
from appliance.storage import LocalArtifactStore
from tests.fixtures.metrics import parse, value
from tests.fixtures.postgres import TestDatabase
from tests.fixtures.serve import free_port
from tests.fixtures.worker import build_of, drain, kiln_worker, submit, wait_for

SPEC = "name: {name}\ndependencies:\n  - kiln-demo-tool\n"
UNSATISFIABLE = "name: legacy\ndependencies:\n  - kiln-demo-legacy\n  - kiln-demo-lib >=2\n"


def test_a_submitted_build_is_queued_with_its_job_in_the_same_transaction(
    db_sessions: sessionmaker[Session], build_settings: BuildSettings
) -> None:
    build_id = submit(db_sessions, build_settings, SPEC.format(name="demo"))
    with db_sessions() as session:
        build = session.get_one(Build, build_id)
        assert build.status == BuildStatus.QUEUED
        job = session.execute(
            text("SELECT task_name, args, status FROM procrastinate_jobs WHERE id = :id"),
            {"id": build.job_id},
        ).one()
    assert job.task_name == "kiln.build" and job.args == {"build_id": build_id}
    assert job.status == "todo"


def test_a_refused_submission_leaves_no_rows_and_no_job(
    db_sessions: sessionmaker[Session], build_settings: BuildSettings
) -> None:
    bad = "name: demo\nchannels: [conda-forge]\ndependencies: [kiln-demo-tool]\n"
    with pytest.raises(SpecificationError, match="not allowed"):
        submit(db_sessions, build_settings, bad)
    with db_sessions() as session:
        assert session.scalar(select(func.count()).select_from(Environment)) == 0
        assert session.scalar(text("SELECT count(*) FROM procrastinate_jobs")) == 0


def test_a_worker_builds_a_queued_environment_and_records_it(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    local_storage: LocalArtifactStore,
) -> None:
    build_id = submit(db_sessions, build_settings, SPEC.format(name="demo"))
    drain(database, build_settings, local_storage)
    with db_sessions() as session:
        build = session.get_one(Build, build_id)
        assert build.status == BuildStatus.COMPLETED, build.status_info
        assert build.started_on and build.ended_on and build.size > 0
        assert build.environment.current_build_id == build_id
        kinds = {
            a.artifact_type
            for a in session.scalars(
                select(BuildArtifact).where(BuildArtifact.build_id == build_id)
            )
        }
        assert {"LOGS", "LOCKFILE", "YAML", "CONDA_PACK", "DIRECTORY"} <= set(kinds)
        names = set(
            session.scalars(
                select(CondaPackageBuild.filename)
                .join(
                    build_conda_package_build,
                    build_conda_package_build.c.conda_package_build_id == CondaPackageBuild.id,
                )
                .where(build_conda_package_build.c.build_id == build_id)
            )
        )
    assert any(n.startswith("kiln-demo-tool-1.0.0") for n in names)
    link = build_settings.store_directory / "default" / "envs" / "demo"
    tool = subprocess.run([link / "bin" / "kiln-demo-tool"], capture_output=True, text=True)
    assert tool.stdout.strip() == str(link.resolve())

    # The same specification again: nothing new is queued.
    with db_sessions.begin() as session:
        again = submit_specification(
            session,
            namespace="default",
            specification=parse_specification(SPEC.format(name="demo")),
            settings=build_settings,
        )
    assert (again.build_id, again.created) == (build_id, False)


def test_a_failing_build_is_failed_with_the_reason(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    local_storage: LocalArtifactStore,
) -> None:
    build_id = submit(db_sessions, build_settings, UNSATISFIABLE)
    drain(database, build_settings, local_storage)
    with db_sessions() as session:
        build = session.get_one(Build, build_id)
        assert build.status == BuildStatus.FAILED
        assert "cannot be satisfied" in (build.status_info or "")
        assert build.environment.current_build_id is None
    assert not (build_settings.store_directory / "default" / build.build_key).exists()


def test_two_worker_processes_build_twenty_environments_each_exactly_once(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    local_storage: LocalArtifactStore,
    tmp_path: Path,
) -> None:
    ids = [submit(db_sessions, build_settings, SPEC.format(name=f"env{n}")) for n in range(20)]
    workers = [
        kiln_worker(
            database, build_settings, local_storage, tmp_path, "--burst", "--concurrency", "2"
        )
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=240)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    with db_sessions() as session:
        builds = session.scalars(select(Build).where(Build.id.in_(ids))).all()
        failed = [(b.id, b.status, b.status_info) for b in builds if b.status != "COMPLETED"]
        assert not failed, (failed, outputs)
        runs = session.execute(
            text("SELECT count(*) FROM procrastinate_events WHERE type = 'started'")
        ).scalar_one()
        workers_used = {b.worker_name for b in builds}
    assert runs == 20  # each build's job started exactly once
    assert workers_used == {None}  # cleared when each build ended
    for output in outputs:
        assert "Traceback" not in output, output
        # Alembic's narration of the schema check stays out of a worker's output.
        assert "alembic" not in output, output


def test_a_worker_process_counts_its_builds_and_their_steps_in_the_metrics(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    local_storage: LocalArtifactStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As under ``kiln serve``: the worker writes its metrics to the host's multiprocess
    directory (created if missing), and ``/metrics`` adds them up after it has exited."""
    submit(db_sessions, build_settings, SPEC.format(name="demo"))
    submit(db_sessions, build_settings, UNSATISFIABLE)
    metrics = tmp_path / "run" / "prometheus"
    worker = kiln_worker(
        database, build_settings, local_storage, tmp_path, "--burst",
        environment={MULTIPROC_DIR_ENV: str(metrics)},
    )  # fmt: skip
    output = worker.communicate(timeout=240)[0]
    assert worker.returncode == 0, output

    monkeypatch.setenv(MULTIPROC_DIR_ENV, str(metrics))
    found = parse(render(ClusterSnapshot(database_up=True))[0])
    assert value(found, "kiln_build_duration_seconds_count", status="COMPLETED") == 1
    assert value(found, "kiln_build_duration_seconds_count", status="FAILED") == 1
    assert value(found, "kiln_build_duration_seconds_count", status="CANCELED") is None
    assert (value(found, "kiln_build_duration_seconds_sum", status="COMPLETED") or 0) > 0
    # Both builds solved; only the good one went on to install, pack and activate.
    assert value(found, "kiln_build_step_duration_seconds_count", step="solve") == 2
    for step in ("lock", "install", "finalize", "export", "conda-pack", "activate"):
        assert value(found, "kiln_build_step_duration_seconds_count", step=step) == 1, step
    assert (value(found, "kiln_build_step_duration_seconds_sum", step="install") or 0) > 0


def test_a_worker_only_host_serves_its_metrics_with_metrics_port(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    local_storage: LocalArtifactStore,
    tmp_path: Path,
) -> None:
    """Scale-out: a host that runs `kiln worker` without a web process still exposes what its
    workers recorded, at ``--metrics-port``."""
    build_id = submit(db_sessions, build_settings, SPEC.format(name="demo"))
    port = free_port()
    worker = kiln_worker(
        database, build_settings, local_storage, tmp_path, "--metrics-port", str(port),
        environment={MULTIPROC_DIR_ENV: str(tmp_path / "prometheus")},
    )  # fmt: skip
    try:
        wait_for(
            lambda: build_of(db_sessions, build_id).status == BuildStatus.COMPLETED,
            timeout=180,
            what="the build",
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            found = parse(answer.read())
        assert value(found, "kiln_build_duration_seconds_count", status="COMPLETED") == 1
    finally:
        worker.send_signal(signal.SIGTERM)
        output = worker.communicate(timeout=60)[0]
    assert worker.returncode == 0, output
