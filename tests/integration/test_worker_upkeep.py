"""Periodic upkeep against real Postgres: the package index of the indexed channels, environments
from watched files, storage samples, and a long-running worker that runs them at start."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from appliance.builder.settings import BuildSettings
from appliance.db.enums import BuildStatus
from appliance.db.models import (
    Build,
    CondaChannel,
    CondaPackage,
    CondaPackageBuild,
    Environment,
    Namespace,
    StorageSample,
)
from appliance.queue.app import WorkerSettings, make_app
from appliance.storage import LocalArtifactStore
from appliance.worker import upkeep
from appliance.worker.context import WorkerContext
from appliance.worker.settings import UpkeepSettings
from tests.fixtures.postgres import TestDatabase
from tests.fixtures.worker import InProcessWorker, wait_for

Upkeep = Callable[[UpkeepSettings, Callable[[WorkerContext], Awaitable[Any]]], Any]


@pytest.fixture
def run_with_worker(worker_context: WorkerContext) -> Upkeep:
    """Run one upkeep function with a worker's context on the test database."""

    def run(settings: UpkeepSettings, work: Callable[[WorkerContext], Awaitable[Any]]) -> Any:
        context = replace(worker_context, upkeep=settings)

        async def main() -> Any:
            return await work(context)

        return asyncio.run(main())

    return run


def counts(sessions: sessionmaker[Session]) -> tuple[int, int]:
    with sessions() as session:
        packages = session.scalar(select(func.count()).select_from(CondaPackage)) or 0
        files = session.scalar(select(func.count()).select_from(CondaPackageBuild)) or 0
    return packages, files


def test_the_indexed_channels_repodata_fills_the_package_tables_once(
    db_sessions: sessionmaker[Session],
    demo_channel: Path,
    run_with_worker: Upkeep,
) -> None:
    settings = UpkeepSettings(
        indexed_channels=(str(demo_channel),), index_platforms=("linux-64", "noarch")
    )
    [refresh] = run_with_worker(settings, upkeep.refresh_channels)
    assert refresh.channel == demo_channel.as_uri() and refresh.problems == ()
    listed = sum(
        len(json.loads((demo_channel / subdir / "repodata.json").read_text())[key])
        for subdir in ("linux-64", "noarch")
        for key in ("packages", "packages.conda")
    )
    assert refresh.added == listed
    assert counts(db_sessions)[1] == listed
    with db_sessions() as session:
        channel = session.scalars(select(CondaChannel)).one()
        assert channel.name == demo_channel.as_uri() and channel.last_update is not None
        versions = set(
            session.scalars(
                select(CondaPackage.version).where(CondaPackage.name == "kiln-demo-lib")
            )
        )
        assert versions == {"1.0.0", "2.0.0"}
        lib = session.scalars(
            select(CondaPackageBuild).where(CondaPackageBuild.filename.like("kiln-demo-lib-2%"))
        ).one()
        assert lib.subdir == "linux-64" and lib.sha256 and lib.size and lib.timestamp

    [again] = run_with_worker(settings, upkeep.refresh_channels)
    assert again.added == 0 and counts(db_sessions)[1] == listed


def test_a_subdir_that_cannot_be_read_is_reported_and_the_rest_is_indexed(
    db_sessions: sessionmaker[Session],
    demo_channel: Path,
    run_with_worker: Upkeep,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = UpkeepSettings(
        indexed_channels=(str(demo_channel),), index_platforms=("osx-arm64", "noarch")
    )
    with caplog.at_level(logging.WARNING, "kiln.worker"):
        [refresh] = run_with_worker(settings, upkeep.refresh_channels)
    assert len(refresh.problems) == 1 and "osx-arm64" in refresh.problems[0]
    assert "osx-arm64" in caplog.text
    assert refresh.added > 0
    with db_sessions() as session:
        assert session.scalars(select(CondaChannel.last_update)).one() is None


def write(path: Path, name: str, *packages: str) -> Path:
    path.write_text(f"name: {name}\ndependencies:\n" + "".join(f"  - {p}\n" for p in packages))
    return path


def builds_of(sessions: sessionmaker[Session], name: str) -> list[Build]:
    with sessions() as session:
        found = list(
            session.scalars(
                select(Build)
                .join(Environment, Environment.id == Build.environment_id)
                .join(Namespace, Namespace.id == Environment.namespace_id)
                .where(Namespace.name == "filesystem", Environment.name == name)
                .order_by(Build.id)
            )
        )
        session.expunge_all()
        return found


def test_watched_files_are_built_when_their_specification_is_new(
    db_sessions: sessionmaker[Session],
    run_with_worker: Upkeep,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = tmp_path / "environments"
    folder.mkdir()
    tool = write(folder / "tool.yml", "tool", "kiln-demo-tool")
    write(folder / "data.yaml", "data", "kiln-demo-data")
    (folder / "broken.yml").write_text("name: broken\ndependencies: [\n")
    write(folder / "notes.txt", "ignored", "kiln-demo-data")
    single = write(tmp_path / "single.yml", "single", "kiln-demo-lib")
    write(tmp_path / "again.yml", "tool", "kiln-demo-lib")  # same name as tool.yml
    settings = UpkeepSettings(
        watch_paths=(folder, single, tmp_path / "again.yml", tmp_path / "missing")
    )

    with caplog.at_level(logging.WARNING, "kiln.worker"):
        first = run_with_worker(settings, upkeep.watch_paths)
    submitted = {w.environment for w in first if w.submitted}
    assert submitted == {"tool", "data", "single"}
    assert "broken.yml" in caplog.text and "skipped" in caplog.text
    assert "already defined by" in caplog.text and "missing does not exist" in caplog.text
    assert [b.status for b in builds_of(db_sessions, "tool")] == [BuildStatus.QUEUED]

    second = run_with_worker(settings, upkeep.watch_paths)
    assert not any(w.submitted for w in second)

    write(tool, "tool", "kiln-demo-tool", "kiln-demo-data")
    third = run_with_worker(settings, upkeep.watch_paths)
    assert {w.environment for w in third if w.submitted} == {"tool"}
    write(tool, "tool", "kiln-demo-tool")  # back to the first content: built again
    run_with_worker(settings, upkeep.watch_paths)
    assert len(builds_of(db_sessions, "tool")) == 3


def test_a_storage_sample_records_the_store_and_its_builds(
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    run_with_worker: Upkeep,
) -> None:
    run_with_worker(UpkeepSettings(), upkeep.sample_storage)
    with db_sessions() as session:
        sample = session.scalars(select(StorageSample)).one()
    assert (sample.host, sample.path) == ("test-host", str(build_settings.store_directory))
    assert sample.disk_total > 0 and sample.disk_free > 0 and sample.store_size == 0


def test_a_long_running_worker_runs_its_upkeep_at_start(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    local_storage: LocalArtifactStore,
    demo_channel: Path,
    tmp_path: Path,
) -> None:
    write(tmp_path / "tool.yml", "tool", "kiln-demo-tool")
    watching = UpkeepSettings(
        watch_paths=(tmp_path,), indexed_channels=(str(demo_channel),), index_platforms=("noarch",)
    )
    with InProcessWorker(
        database, build_settings, local_storage, upkeep=watching, jobs=WorkerSettings(concurrency=1)
    ):
        wait_for(
            lambda: [b.status for b in builds_of(db_sessions, "tool")] == [BuildStatus.COMPLETED],
            20,
            "the watched environment to be built",
        )
        wait_for(lambda: counts(db_sessions)[1] > 0, 10, "the channel refresh")
        with db_sessions() as session:
            assert session.scalar(select(func.count()).select_from(StorageSample)) == 1


def test_finished_jobs_older_than_the_retention_are_pruned_and_others_kept(
    database: TestDatabase, db_sessions: sessionmaker[Session]
) -> None:
    """The hourly prune deletes succeeded, failed and cancelled jobs whose last event is older
    than the retention; recent finished jobs and waiting jobs stay, whatever their age."""
    jobs: dict[str, int] = {}
    with db_sessions.begin() as session:
        for name, status, old in (
            ("old-succeeded", "succeeded", True),
            ("old-failed", "failed", True),
            ("old-cancelled", "cancelled", True),
            ("recent-succeeded", "succeeded", False),
            ("old-waiting", "todo", True),
        ):
            job_id = session.scalar(
                text(
                    "INSERT INTO procrastinate_jobs (queue_name, task_name, args) "
                    "VALUES ('upkeep', :name, '{}') RETURNING id"
                ),
                {"name": f"test.{name}"},
            )
            assert job_id is not None
            if status != "todo":
                session.execute(
                    text("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = :id"),
                    {"id": job_id},
                )
                session.execute(
                    text("UPDATE procrastinate_jobs SET status = :status WHERE id = :id"),
                    {"id": job_id, "status": status},
                )
            if old:
                session.execute(
                    text(
                        "UPDATE procrastinate_events SET at = now() - interval '200 hours' "
                        "WHERE job_id = :id"
                    ),
                    {"id": job_id},
                )
            jobs[name] = job_id

    async def prune() -> None:
        app = make_app(database.conninfo)
        async with app.open_async():
            await upkeep.prune_jobs(app.job_manager, retention_hours=7 * 24)

    asyncio.run(prune())
    with db_sessions() as session:
        left = set(session.scalars(text("SELECT task_name FROM procrastinate_jobs")))
    assert left == {"test.recent-succeeded", "test.old-waiting"}
