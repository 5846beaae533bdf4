"""What /readyz and /metrics read from real PostgreSQL (appliance.db.status), and the app on
top of it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from appliance.db.errors import DatabaseError, DatabaseUnavailable
from appliance.db.models import (
    Build,
    BuildStatus,
    Environment,
    Namespace,
    Specification,
    StorageSample,
    next_build_id,
)
from appliance.db.schema import SchemaState
from appliance.db.status import (
    StatusReader,
    builds_by_status,
    jobs_by_status,
    latest_storage_samples,
    worker_heartbeats,
)
from appliance.schemas.specification import EnvironmentSpec
from appliance.web import WebSettings, create_app
from tests.fixtures.postgres import TestDatabase


def add_builds(
    sessions: sessionmaker[Session], *statuses: BuildStatus, deleted: bool = False
) -> None:
    """Builds of a new environment, one per status."""
    spec = EnvironmentSpec(name="science", channels=("conda-forge",), dependencies=("numpy",))
    sha256 = spec.sha256()
    with sessions.begin() as session:
        specification = session.scalars(
            select(Specification).where(Specification.sha256 == sha256)
        ).one_or_none() or Specification(name=spec.name, spec=spec.to_dict(), sha256=sha256)
        namespace = session.scalars(
            select(Namespace).where(Namespace.name == "default")
        ).one_or_none() or Namespace(name="default")
        environment = Environment(namespace=namespace, name=f"env-{next_build_id(session)}")
        for status in statuses:
            build_id = next_build_id(session)
            session.add(
                Build(
                    id=build_id,
                    environment=environment,
                    specification=specification,
                    status=status,
                    build_key=f"{sha256[:8]}-1700000000-{build_id}-{environment.name}",
                    deleted_on=datetime.now(UTC) if deleted else None,
                )
            )


def add_jobs(engine: Engine, *rows: tuple[str, str]) -> None:
    with engine.begin() as connection:
        for queue, status in rows:
            connection.execute(
                text(
                    "INSERT INTO procrastinate_jobs (queue_name, task_name, status) "
                    "VALUES (:queue, 'kiln.build', CAST(:status AS procrastinate_job_status))"
                ),
                {"queue": queue, "status": status},
            )


def add_worker(engine: Engine, seconds_ago: float) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO procrastinate_workers (last_heartbeat) "
                "VALUES (now() - make_interval(secs => :ago))"
            ),
            {"ago": seconds_ago},
        )


def test_builds_are_counted_by_status_without_deleted_ones(
    db_sessions: sessionmaker[Session], db_engine: Engine
) -> None:
    add_builds(db_sessions, BuildStatus.COMPLETED, BuildStatus.COMPLETED, BuildStatus.FAILED)
    add_builds(db_sessions, BuildStatus.QUEUED)
    add_builds(db_sessions, BuildStatus.COMPLETED, deleted=True)
    with db_engine.connect() as connection:
        assert builds_by_status(connection) == {"COMPLETED": 2, "FAILED": 1, "QUEUED": 1}


def test_jobs_are_counted_by_queue_and_status(db_engine: Engine) -> None:
    add_jobs(db_engine, ("builds", "todo"), ("builds", "todo"), ("builds", "succeeded"))
    add_jobs(db_engine, ("upkeep", "failed"))
    with db_engine.connect() as connection:
        assert jobs_by_status(connection) == {
            ("builds", "todo"): 2,
            ("builds", "succeeded"): 1,
            ("upkeep", "failed"): 1,
        }


def test_heartbeat_ages_come_from_the_database_clock(db_engine: Engine) -> None:
    add_worker(db_engine, 120)
    add_worker(db_engine, 1)
    with db_engine.connect() as connection:
        workers = worker_heartbeats(connection)
    assert [round(worker.age_seconds) for worker in workers] == [1, 120]
    assert workers[0].last_heartbeat.tzinfo is not None


def test_the_newest_recent_storage_sample_of_each_store(
    db_sessions: sessionmaker[Session], db_engine: Engine
) -> None:
    now = datetime.now(UTC)

    def sample(host: str, age: timedelta, free: int) -> StorageSample:
        return StorageSample(
            host=host, path="/store", sampled_on=now - age,
            disk_total=100, disk_used=100 - free, disk_free=free, store_size=None,
        )  # fmt: skip

    with db_sessions.begin() as session:
        session.add_all(
            [
                sample("a", timedelta(minutes=10), 50),
                sample("a", timedelta(minutes=1), 40),
                sample("b", timedelta(hours=2), 70),
                sample("gone", timedelta(days=3), 90),
            ]
        )
    with db_engine.connect() as connection:
        samples = latest_storage_samples(connection)
    assert [(s.host, s.disk_free) for s in samples] == [("a", 40), ("b", 70)]
    assert 50 < samples[0].age_seconds < 70


def test_the_reader_on_an_unmigrated_database(unmigrated_database: TestDatabase) -> None:
    async def read() -> None:
        reader = StatusReader(unmigrated_database.url)
        try:
            facts = await reader.readiness_facts()
            assert facts.schema.state is SchemaState.MISSING
            assert facts.workers is None
            with pytest.raises(DatabaseError, match="refused a status query"):
                await reader.installation_status()
        finally:
            await reader.close()

    asyncio.run(read())


def test_the_reader_fails_fast_without_a_database(database: TestDatabase) -> None:
    url = database.url.replace(f"/{database.name}?", "/no_such_database?")

    async def read() -> None:
        reader = StatusReader(url, timeout=2)
        try:
            with pytest.raises(DatabaseUnavailable, match="cannot connect to the database"):
                await reader.readiness_facts()
        finally:
            await reader.close()

    asyncio.run(read())


@pytest.fixture
def client(database: TestDatabase) -> Iterator[TestClient[Litestar]]:
    settings = WebSettings(database_url=database.url, heartbeat_timeout=10, enable_api=False)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_readiness_follows_the_workers(client: TestClient[Litestar], db_engine: Engine) -> None:
    assert client.get("/readyz").status_code == 503
    add_worker(db_engine, 30)
    assert client.get("/readyz").status_code == 503
    add_worker(db_engine, 0)
    response = client.get("/readyz")
    assert response.status_code == 200, response.text


def test_metrics_read_the_database_at_scrape_time(
    client: TestClient[Litestar], db_sessions: sessionmaker[Session], db_engine: Engine
) -> None:
    add_builds(db_sessions, BuildStatus.QUEUED, BuildStatus.QUEUED, BuildStatus.BUILDING)
    add_jobs(db_engine, ("builds", "todo"), ("builds", "todo"), ("builds", "doing"))
    add_worker(db_engine, 0)
    response = client.get("/metrics")
    assert response.status_code == 200
    found = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    assert found[("kiln_database_up", ())] == 1
    assert found[("kiln_builds", (("status", "QUEUED"),))] == 2
    assert found[("kiln_builds", (("status", "BUILDING"),))] == 1
    assert found[("kiln_queue_jobs", (("queue", "builds"), ("status", "todo")))] == 2
    assert found[("kiln_workers", (("state", "live"),))] == 1
