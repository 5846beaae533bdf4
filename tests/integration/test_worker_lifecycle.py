"""A running build meets the outside world: it is canceled, its worker is killed with SIGKILL, its
worker is asked to stop with SIGTERM. Real workers (in this process and as `kiln worker`
processes) against real Postgres.

The builds here really run: they install from a channel served over HTTP by the test, which holds
back the download of one package (``kiln-demo-data``) until the test opens the gate. While it is
held, the build is BUILDING in its install step with a half-built prefix on disk (the other
packages are already linked into it), for as long as the test needs, with no sleep in the product.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from appliance.builder.settings import BuildSettings
from appliance.db.enums import BuildStatus
from appliance.db.models import Build
from appliance.queue.app import WorkerSettings
from appliance.services.builds import BuildConflict, delete_build, request_cancel
from appliance.services.environments import delete_environment
from appliance.storage import LocalArtifactStore
from tests.fixtures.postgres import TestDatabase
from tests.fixtures.worker import (
    InProcessWorker,
    build_of,
    drain,
    kiln_worker,
    log_runs,
    submit,
    wait_for,
)

SPEC = "name: slow\ndependencies:\n  - kiln-demo-tool\n  - kiln-demo-data\n"
GATED = "kiln-demo-data"
#: Fast heartbeats for the workers the tests run in this process (the defaults are 2 s / 10 s).
QUICK = WorkerSettings(concurrency=2, update_heartbeat_interval=0.3, stalled_worker_timeout=1.0)


@dataclass
class GatedChannel:
    """The demo channel over HTTP; downloads of :data:`GATED` wait until :meth:`open`."""

    url: str = ""
    gate: threading.Event = field(default_factory=threading.Event)
    reached: threading.Event = field(default_factory=threading.Event)

    def open(self) -> None:
        self.gate.set()

    def wait_until_reached(self, timeout: float = 30) -> None:
        assert self.reached.wait(timeout), "no build reached the held download"


@pytest.fixture
def gated_channel(demo_channel: Path) -> Iterator[GatedChannel]:
    channel = GatedChannel()

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if GATED in self.path:
                channel.reached.set()
                channel.gate.wait(60)
            # The build may have been stopped while it waited.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                super().do_GET()

    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(demo_channel))
    )
    channel.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="gated-channel", daemon=True)
    thread.start()
    try:
        yield channel
    finally:
        channel.open()
        server.shutdown()
        server.server_close()


@pytest.fixture
def settings(build_settings: BuildSettings, gated_channel: GatedChannel) -> BuildSettings:
    return replace(
        build_settings,
        default_channels=(gated_channel.url,),
        allowed_channels=(gated_channel.url,),
    )


def prefix_of(settings: BuildSettings, build: Build) -> Path:
    return settings.store_directory / "default" / build.build_key


def link_of(settings: BuildSettings) -> Path:
    return settings.store_directory / "default" / "envs" / "slow"


def test_a_queued_build_is_canceled_at_once_and_never_runs(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    settings: BuildSettings,
    local_storage: LocalArtifactStore,
) -> None:
    build_id = submit(db_sessions, settings, SPEC)
    with db_sessions.begin() as session:
        assert request_cancel(session, build_id).status == BuildStatus.CANCELED
    build = build_of(db_sessions, build_id)
    assert build.status == BuildStatus.CANCELED
    assert build.status_info == "canceled before it started"
    with db_sessions() as session:
        job = session.execute(
            text("SELECT status FROM procrastinate_jobs WHERE id = :id"), {"id": build.job_id}
        ).scalar_one()
        assert job == "cancelled"
    with db_sessions.begin() as session, pytest.raises(BuildConflict, match="CANCELED"):
        request_cancel(session, build_id)


def test_a_running_build_stops_within_seconds_when_canceled_and_can_then_be_deleted(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    settings: BuildSettings,
    local_storage: LocalArtifactStore,
    gated_channel: GatedChannel,
) -> None:
    build_id = submit(db_sessions, settings, SPEC)
    canceled_before = counted_builds("CANCELED")
    with InProcessWorker(database, settings, local_storage, jobs=QUICK):
        gated_channel.wait_until_reached()
        build = build_of(db_sessions, build_id)
        assert build.status == BuildStatus.BUILDING
        half_built = prefix_of(settings, build) / "bin" / "kiln-demo-tool"
        wait_for(half_built.exists, 10, "the other packages to be linked")
        with db_sessions.begin() as session:
            assert request_cancel(session, build_id).status == BuildStatus.BUILDING
        took = wait_for(
            lambda: build_of(db_sessions, build_id).status == BuildStatus.CANCELED, 10, "CANCELED"
        )
        assert took < 3
        build = build_of(db_sessions, build_id)
        assert build.status_info == "canceled by request"
        assert build.cancel_requested_on is not None and build.ended_on is not None
        assert not prefix_of(settings, build).exists()
        assert not os.path.lexists(link_of(settings))
        wait_for(
            lambda: counted_builds("CANCELED") == canceled_before + 1, 5, "the metrics to count it"
        )

        with db_sessions.begin() as session:
            delete_build(session, build_id)
        wait_for(lambda: jobs_settled(db_sessions, "kiln.delete_build"), 10, "the deletion job")
    deleted = build_of(db_sessions, build_id)
    assert deleted.deleted_on is not None and deleted.size == 0
    assert local_storage.exists(f"logs/{build.build_key}.log")  # LOGS are kept on deletion


def counted_builds(status: str) -> float:
    """Builds this process's workers counted in its metrics with ``status``."""
    labels = {"status": status}
    return REGISTRY.get_sample_value("kiln_build_duration_seconds_count", labels) or 0.0


def jobs_settled(sessions: sessionmaker[Session], task: str) -> bool:
    """No job of ``task`` waits or runs, and none failed."""
    with sessions() as session:
        statuses = set(
            session.scalars(
                text("SELECT status::text FROM procrastinate_jobs WHERE task_name = :task"),
                {"task": task},
            )
        )
    assert "failed" not in statuses
    return not statuses & {"todo", "doing"}


def test_an_environment_deleted_while_building_is_removed_once_its_build_has_stopped(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    settings: BuildSettings,
    local_storage: LocalArtifactStore,
    gated_channel: GatedChannel,
) -> None:
    build_id = submit(db_sessions, settings, SPEC)
    with InProcessWorker(database, settings, local_storage, jobs=QUICK):
        gated_channel.wait_until_reached()
        with db_sessions.begin() as session:
            environment_id = delete_environment(session, "default", "slow")
        wait_for(
            lambda: _environment_gone(db_sessions, environment_id), 15, "the environment's removal"
        )
    assert not list((settings.store_directory / "default").glob("*-slow"))
    assert not os.path.lexists(link_of(settings))
    with db_sessions() as session:
        assert session.get(Build, build_id) is None


def _environment_gone(sessions: sessionmaker[Session], environment_id: int) -> bool:
    with sessions() as session:
        return not session.execute(
            text("SELECT 1 FROM environment WHERE id = :id"), {"id": environment_id}
        ).first()


def test_a_build_whose_worker_is_killed_is_retried_by_another_worker_into_a_fresh_prefix(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    settings: BuildSettings,
    local_storage: LocalArtifactStore,
    gated_channel: GatedChannel,
    tmp_path: Path,
) -> None:
    build_id = submit(db_sessions, settings, SPEC)
    first = kiln_worker(database, settings, local_storage, tmp_path, "--concurrency", "1")
    try:
        gated_channel.wait_until_reached()
        build = build_of(db_sessions, build_id)
        assert build.status == BuildStatus.BUILDING and build.worker_name
        killed = build.worker_name
        prefix = prefix_of(settings, build)
        half_built = prefix / "bin" / "kiln-demo-tool"
        wait_for(half_built.exists, 10, "the other packages to be linked")
        assert not os.path.lexists(link_of(settings))
        (prefix / "left-by-attempt-1").write_text("")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()
    assert build_of(db_sessions, build_id).status == BuildStatus.BUILDING
    assert not os.path.lexists(link_of(settings))
    gated_channel.open()

    killed_at = time.monotonic()
    with InProcessWorker(database, settings, local_storage, jobs=QUICK):
        wait_for(lambda: build_of(db_sessions, build_id).status.is_final, 30, "the retried build")
    # Bounded: the dead worker's heartbeat goes stale (1 s here), the next check (every 5 s)
    # requeues, the retry builds.
    assert time.monotonic() - killed_at < 15
    build = build_of(db_sessions, build_id)
    assert build.status == BuildStatus.COMPLETED, build.status_info
    assert build.status_info == "completed on attempt 2"
    assert not (prefix / "left-by-attempt-1").exists()
    assert link_of(settings).resolve() == prefix.resolve()
    tool = subprocess.run([link_of(settings) / "bin" / "kiln-demo-tool"], capture_output=True)
    assert tool.returncode == 0
    with db_sessions() as session:
        jobs = session.execute(
            text(
                "SELECT status::text, args FROM procrastinate_jobs "
                "WHERE task_name = 'kiln.build' ORDER BY id"
            )
        ).all()
    assert [(status, args.get("attempt", 1)) for status, args in jobs] == [
        ("failed", 1),
        ("succeeded", 2),
    ]
    # The log tells both attempts: the first up to where it was killed, then the retry.
    [(_, first_run), (separator, second_run)] = log_runs(local_storage, build.build_key)
    assert "--- install ---" in first_run and "completed" not in first_run
    assert separator == (
        "--- attempt 2 (previous attempt interrupted: retrying (attempt 2 of 2): the worker "
        f"{killed} stopped responding during attempt 1) ---"
    )
    assert f"build {build_id} completed" in second_run


def test_sigterm_lets_a_running_build_finish_and_the_worker_exits_0(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    settings: BuildSettings,
    local_storage: LocalArtifactStore,
    gated_channel: GatedChannel,
    tmp_path: Path,
) -> None:
    build_id = submit(db_sessions, settings, SPEC)
    worker = kiln_worker(
        database, settings, local_storage, tmp_path, "--concurrency", "1", "--drain-timeout", "60"
    )
    try:
        gated_channel.wait_until_reached()
        worker.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert worker.poll() is None, "the worker left before its build finished"
        gated_channel.open()
        output, _ = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert worker.returncode == 0, output
    assert "Traceback" not in output, output
    build = build_of(db_sessions, build_id)
    assert build.status == BuildStatus.COMPLETED, build.status_info
    assert link_of(settings).resolve() == prefix_of(settings, build).resolve()


def test_a_build_still_running_when_the_drain_time_is_up_is_queued_again(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    settings: BuildSettings,
    local_storage: LocalArtifactStore,
    gated_channel: GatedChannel,
    tmp_path: Path,
) -> None:
    build_id = submit(db_sessions, settings, SPEC)
    worker = kiln_worker(
        database, settings, local_storage, tmp_path, "--concurrency", "1", "--drain-timeout", "0.5"
    )
    try:
        gated_channel.wait_until_reached()
        first_job = build_of(db_sessions, build_id).job_id
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert worker.returncode == 0, output
    build = build_of(db_sessions, build_id)
    assert build.status == BuildStatus.QUEUED
    assert build.job_id != first_job
    assert "was stopped while building" in (build.status_info or "")
    assert not prefix_of(settings, build).exists()
    stopped_because = build.status_info

    gated_channel.open()
    drain(database, settings, local_storage, concurrency=1)
    build = build_of(db_sessions, build_id)
    assert build.status == BuildStatus.COMPLETED, build.status_info
    assert build.status_info is None  # being stopped with the worker is not an attempt
    [(_, stopped_run), (separator, finished_run)] = log_runs(local_storage, build.build_key)
    assert "build canceled" in stopped_run
    assert separator == f"--- attempt 1 (previous attempt interrupted: {stopped_because}) ---"
    assert f"build {build_id} completed" in finished_run
