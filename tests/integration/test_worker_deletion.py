"""Deleting builds, environments and namespaces: the row is hidden at once with its job queued in
the same transaction; a worker then removes the files and (for environments and namespaces) the
rows. Real builds from the demo channel, real Postgres."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from appliance.builder.settings import BuildSettings
from appliance.db.enums import BuildStatus
from appliance.db.models import Build, BuildArtifact, Environment, Namespace, Setting
from appliance.services.builds import BuildConflict, BuildNotFound, delete_build
from appliance.services.environments import EnvironmentNotFound, delete_environment
from appliance.services.namespaces import NamespaceNotFound, delete_namespace
from appliance.storage import LocalArtifactStore
from appliance.worker.settings import UpkeepSettings
from tests.fixtures import worker
from tests.fixtures.postgres import TestDatabase
from tests.fixtures.worker import build_of, drain

SPEC = "name: {name}\ndependencies:\n  - kiln-demo-tool\n"


def submit(
    sessions: sessionmaker[Session],
    settings: BuildSettings,
    name: str = "demo",
    namespace: str = "default",
) -> int:
    """A new build of environment ``name`` (a rebuild when it exists)."""
    return worker.submit(
        sessions, settings, SPEC.format(name=name), namespace=namespace, force=True
    )


def artifacts(sessions: sessionmaker[Session], build_id: int) -> dict[str, str]:
    with sessions() as session:
        rows = session.execute(
            select(BuildArtifact.artifact_type, BuildArtifact.key).where(
                BuildArtifact.build_id == build_id
            )
        )
        return {str(kind): key for kind, key in rows}


def jobs_failed(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return list(
            session.scalars(
                text("SELECT task_name FROM procrastinate_jobs WHERE status = 'failed'")
            )
        )


def test_deleting_a_build_keeps_the_kept_artifacts_and_removes_the_rest(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    local_storage: LocalArtifactStore,
) -> None:
    old = submit(db_sessions, build_settings)
    drain(database, build_settings, local_storage)
    current = submit(db_sessions, build_settings)
    drain(database, build_settings, local_storage)
    before = artifacts(db_sessions, old)
    assert {"LOGS", "LOCKFILE", "YAML", "CONDA_PACK", "DIRECTORY"} <= set(before)
    prefix = Path(before["DIRECTORY"])
    assert prefix.is_dir()

    with db_sessions.begin() as session:
        delete_build(session, old)
        job = session.execute(
            text("SELECT task_name, args FROM procrastinate_jobs WHERE status = 'todo'")
        ).one()
    assert tuple(job) == ("kiln.delete_build", {"build_id": old})
    assert build_of(db_sessions, old).deleted_on is not None  # hidden at once

    drain(database, build_settings, local_storage)
    deleted = build_of(db_sessions, old)
    assert deleted.size == 0 and deleted.status == BuildStatus.COMPLETED
    assert set(artifacts(db_sessions, old)) == {"LOGS", "LOCKFILE", "YAML"}
    for kind in ("LOGS", "LOCKFILE", "YAML"):
        assert local_storage.exists(before[kind])
    assert not local_storage.exists(before["CONDA_PACK"])
    assert not prefix.exists()
    link = build_settings.store_directory / "default" / "envs" / "demo"
    assert link.resolve() == Path(artifacts(db_sessions, current)["DIRECTORY"])
    assert jobs_failed(db_sessions) == []

    with db_sessions.begin() as session, pytest.raises(BuildNotFound):
        delete_build(session, old)


def test_what_a_deleted_build_keeps_is_configurable(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    local_storage: LocalArtifactStore,
) -> None:
    old = submit(db_sessions, build_settings)
    drain(database, build_settings, local_storage)
    submit(db_sessions, build_settings)
    drain(database, build_settings, local_storage)
    before = artifacts(db_sessions, old)
    with db_sessions.begin() as session:
        delete_build(session, old)
    drain(
        database,
        build_settings,
        local_storage,
        upkeep=UpkeepSettings(kept_on_deletion=frozenset({"LOGS"})),
    )
    assert set(artifacts(db_sessions, old)) == {"LOGS"}
    assert not local_storage.exists(before["LOCKFILE"])


def test_active_builds_and_the_current_build_cannot_be_deleted(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    local_storage: LocalArtifactStore,
) -> None:
    queued = submit(db_sessions, build_settings)
    with db_sessions.begin() as session, pytest.raises(BuildConflict, match="cancel it first"):
        delete_build(session, queued)
    drain(database, build_settings, local_storage)
    with (
        db_sessions.begin() as session,
        pytest.raises(BuildConflict, match="current build of default/demo"),
    ):
        delete_build(session, queued)
    with db_sessions() as session:
        assert session.execute(text("SELECT count(*) FROM procrastinate_jobs")).scalar() == 1


def test_deleting_an_environment_removes_its_files_and_rows_and_frees_its_name_at_once(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    local_storage: LocalArtifactStore,
) -> None:
    first = submit(db_sessions, build_settings)
    drain(database, build_settings, local_storage)
    second = submit(db_sessions, build_settings)
    drain(database, build_settings, local_storage)
    files = [artifacts(db_sessions, first), artifacts(db_sessions, second)]
    link = build_settings.store_directory / "default" / "envs" / "demo"
    with db_sessions.begin() as session:
        session.add(Setting(scope="default/demo", key="conda_default_packages", value=["x"]))
    with db_sessions.begin() as session:
        old_environment = delete_environment(session, "default", "demo")

    # The name is free at once: a new environment of that name, built before the old one's
    # files are gone, keeps its link.
    replacement = submit(db_sessions, build_settings)
    drain(database, build_settings, local_storage)

    with db_sessions() as session:
        assert session.get(Environment, old_environment) is None
        assert session.scalar(select(func.count()).select_from(Setting)) == 0
        assert session.get(Build, first) is None and session.get(Build, second) is None
    for built in files:
        assert not Path(built["DIRECTORY"]).exists()
        for kind in ("LOGS", "LOCKFILE", "YAML", "CONDA_PACK"):
            assert not local_storage.exists(built[kind])  # nothing is kept
    new = build_of(db_sessions, replacement)
    assert new.status == BuildStatus.COMPLETED
    assert link.resolve() == Path(artifacts(db_sessions, replacement)["DIRECTORY"])
    assert jobs_failed(db_sessions) == []

    with db_sessions.begin() as session, pytest.raises(EnvironmentNotFound):
        delete_environment(session, "default", "nothing")


def test_deleting_an_environment_cancels_its_queued_build(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    local_storage: LocalArtifactStore,
) -> None:
    queued = submit(db_sessions, build_settings)
    with db_sessions.begin() as session:
        delete_environment(session, "default", "demo")
    canceled = build_of(db_sessions, queued)
    assert canceled.status == BuildStatus.CANCELED and canceled.deleted_on is not None
    drain(database, build_settings, local_storage)
    with db_sessions() as session:
        assert session.get(Build, queued) is None
        started = session.execute(
            text("SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'kiln.build'")
        ).scalar()
        assert started == 1
        assert (
            session.execute(
                text("SELECT status::text FROM procrastinate_jobs WHERE task_name = 'kiln.build'")
            ).scalar()
            == "cancelled"
        )


def test_deleting_a_namespace_removes_every_environment_then_the_namespace(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    local_storage: LocalArtifactStore,
) -> None:
    builds = [submit(db_sessions, build_settings, name, "science") for name in ("one", "two")]
    other = submit(db_sessions, build_settings, "one", "science_x")
    drain(database, build_settings, local_storage)
    directories = [Path(artifacts(db_sessions, b)["DIRECTORY"]) for b in builds]
    with db_sessions.begin() as session:
        session.add(Setting(scope="science", key="k", value=1))
        session.add(Setting(scope="science/one", key="k", value=1))
        session.add(Setting(scope="science_x/one", key="k", value=1))  # '_' is no wildcard
    with db_sessions.begin() as session:
        namespace_id = delete_namespace(session, "science")
    drain(database, build_settings, local_storage)
    with db_sessions() as session:
        assert session.get(Namespace, namespace_id) is None
        assert session.scalars(select(Setting.scope)).all() == ["science_x/one"]
        assert build_of(db_sessions, other).status == BuildStatus.COMPLETED
    assert not any(directory.exists() for directory in directories)
    envs = build_settings.store_directory / "science" / "envs"
    assert not any(os.path.lexists(envs / name) for name in ("one", "two"))
    assert jobs_failed(db_sessions) == []

    with db_sessions.begin() as session, pytest.raises(NamespaceNotFound):
        delete_namespace(session, "science")
