"""``kiln migrate`` and the schema check against real PostgreSQL (Kiln's managed server).

The migrations must produce exactly the models' schema, be idempotent (Kiln's part and
Procrastinate's), roll back as a whole when a step fails, serialise concurrent runs, and the
check that web and worker run must refuse a database that is not at this code's revision,
saying what to do.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Engine, Integer, MetaData, text

from appliance.db.engine import create_async_engine, create_engine
from appliance.db.errors import MigrationError, SchemaOutdated, SchemaTooNew
from appliance.db.migrate import MIGRATION_LOCK, downgrade, migrate
from appliance.db.models import Base
from appliance.db.queue_schema import QueueSchemaChange, QueueSchemaFiles, procrastinate_files
from appliance.db.schema import SchemaState, check_schema, check_schema_async, schema_status
from appliance.db.scripts import code_revision, include_name
from tests.fixtures.postgres import TestDatabase

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture
def empty_engine(unmigrated_database: TestDatabase) -> Any:
    engine = create_engine(unmigrated_database.url)
    yield engine
    engine.dispose()


def schema_differences(engine: Engine, metadata: MetaData) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "include_name": include_name,
                "compare_type": True,
                "compare_server_default": True,
                "target_metadata": metadata,
            },
        )
        return list(compare_metadata(context, metadata))


def catalog(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every table, column, index and constraint of the public schema, for before/after."""
    queries = {
        "columns": "SELECT table_name, column_name, data_type, is_nullable, column_default "
        "FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2",
        "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes "
        "WHERE schemaname = 'public' ORDER BY 1, 2",
        "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
        "FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2",
        "functions": "SELECT proname, pg_get_function_identity_arguments(oid) FROM pg_proc "
        "WHERE pronamespace = 'public'::regnamespace ORDER BY 1, 2",
    }
    with engine.connect() as connection:
        return {
            name: [tuple(row) for row in connection.execute(text(query))]
            for name, query in queries.items()
        }


def tables(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        )
        return set(rows.scalars())


# --- the migrations and the models ------------------------------------------------------------


def test_the_migrated_schema_is_exactly_the_models(db_engine: Engine) -> None:
    assert schema_differences(db_engine, Base.metadata) == []


def test_the_comparison_would_see_a_difference(db_engine: Engine) -> None:
    """Guard against a comparison that passes because it compares nothing."""
    changed = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["build"].append_column(Column("retries", Integer, nullable=True))
    differences = schema_differences(db_engine, changed)
    assert [d[0] for d in differences] == ["add_column"]


def test_a_new_database_gets_kiln_and_procrastinate_schemas(
    unmigrated_database: TestDatabase, empty_engine: Engine
) -> None:
    report = migrate(unmigrated_database.url)
    assert (report.revision_before, report.revision_after) == (None, code_revision())
    assert report.queue_schema is QueueSchemaChange.CREATED
    assert report.changed
    found = tables(empty_engine)
    assert set(Base.metadata.tables) <= found
    assert {"procrastinate_jobs", "procrastinate_workers", "alembic_version"} <= found
    files = procrastinate_files()
    with empty_engine.connect() as connection:
        row = connection.execute(
            text("SELECT procrastinate_version, last_migration FROM queue_schema")
        ).one()
    assert tuple(row) == (files.version, files.latest_migration)


def test_migrating_again_changes_nothing(db_engine: Engine, database: TestDatabase) -> None:
    before = catalog(db_engine)
    first = migrate(database.url)
    second = migrate(database.url)
    for report in (first, second):
        assert not report.changed
        assert report.revision_before == report.revision_after == code_revision()
        assert report.queue_schema is QueueSchemaChange.UNCHANGED
    assert catalog(db_engine) == before


def test_downgrade_to_base_and_upgrade_again(database: TestDatabase, db_engine: Engine) -> None:
    report = downgrade(database.url, "base")
    assert (report.revision_before, report.revision_after) == (code_revision(), None)
    assert not set(Base.metadata.tables) & tables(db_engine)
    assert "procrastinate_jobs" in tables(db_engine)  # the queue's schema is left alone
    again = migrate(database.url)
    assert again.revision_after == code_revision()
    assert again.queue_schema is QueueSchemaChange.ADOPTED
    assert schema_differences(db_engine, Base.metadata) == []


def test_procrastinate_tables_applied_by_hand_are_adopted(
    unmigrated_database: TestDatabase, empty_engine: Engine
) -> None:
    with psycopg.connect(unmigrated_database.conninfo) as connection:
        connection.execute(procrastinate_files().schema.read_text())  # type: ignore[arg-type]
    report = migrate(unmigrated_database.url)
    assert report.queue_schema is QueueSchemaChange.ADOPTED
    assert migrate(unmigrated_database.url).queue_schema is QueueSchemaChange.UNCHANGED


def test_a_newer_procrastinate_gets_only_its_new_migrations(
    database: TestDatabase, db_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = procrastinate_files()
    newer = tmp_path / "99.00.00_01_add_test_table.sql"
    newer.write_text("CREATE TABLE procrastinate_test_upgrade (id integer); -- 100%\n")
    upgraded = QueueSchemaFiles("99.0.0", installed.schema, (*installed.migrations, newer))
    monkeypatch.setattr("appliance.db.migrate.procrastinate_files", lambda: upgraded)

    report = migrate(database.url)

    assert report.queue_schema is QueueSchemaChange.UPGRADED
    assert "procrastinate_test_upgrade" in tables(db_engine)
    with db_engine.connect() as connection:
        recorded = connection.execute(
            text("SELECT procrastinate_version, last_migration FROM queue_schema")
        ).one()
    assert tuple(recorded) == ("99.0.0", newer.name)
    assert migrate(database.url).queue_schema is QueueSchemaChange.UNCHANGED


def test_a_failing_step_leaves_the_database_as_it_was(
    unmigrated_database: TestDatabase,
    empty_engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = tmp_path / "schema.sql"
    broken.write_text("CREATE TABLE procrastinate_jobs (id integer); SELEC 1;\n")
    monkeypatch.setattr(
        "appliance.db.migrate.procrastinate_files",
        lambda: QueueSchemaFiles("0.0.0", broken, ()),
    )
    with pytest.raises(MigrationError, match=r"failed and nothing was changed.*SELEC"):
        migrate(unmigrated_database.url)
    assert tables(empty_engine) == set()


# --- the schema check -----------------------------------------------------------------------


def test_the_check_passes_on_a_migrated_database(db_engine: Engine) -> None:
    status = check_schema(db_engine)
    assert status.state is SchemaState.CURRENT
    assert status.database_revision == code_revision()


def test_the_check_refuses_an_unmigrated_database(empty_engine: Engine) -> None:
    with pytest.raises(SchemaOutdated, match=r"no Kiln schema yet.*run `kiln migrate`"):
        check_schema(empty_engine)


def test_the_check_refuses_a_database_migrated_by_a_newer_kiln(db_engine: Engine) -> None:
    with db_engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'f00dcafe'"))
    with pytest.raises(SchemaTooNew, match=r"revision f00dcafe, newer than this Kiln") as raised:
        check_schema(db_engine)
    assert raised.value.database_revision == "f00dcafe"
    assert raised.value.code_revision == code_revision()


def test_migrate_refuses_a_newer_database_and_changes_nothing(
    db_engine: Engine, database: TestDatabase
) -> None:
    with db_engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'f00dcafe'"))
    before = catalog(db_engine)
    with pytest.raises(SchemaTooNew, match="a newer Kiln migrated it"):
        migrate(database.url)
    assert catalog(db_engine) == before


def test_the_check_refuses_a_database_without_the_queue_schema(db_engine: Engine) -> None:
    with db_engine.begin() as connection:
        connection.execute(text("DROP TABLE procrastinate_jobs CASCADE"))
    with pytest.raises(SchemaOutdated, match="job queue"):
        check_schema(db_engine)


def test_the_async_check_for_the_web_process(database: TestDatabase, empty_engine: Engine) -> None:
    async def check(url: str) -> SchemaState:
        engine = create_async_engine(url)
        try:
            return (await check_schema_async(engine)).state
        finally:
            await engine.dispose()

    assert asyncio.run(check(database.url)) is SchemaState.CURRENT
    with empty_engine.connect() as connection:
        assert schema_status(connection).state is SchemaState.MISSING


# --- the command ----------------------------------------------------------------------------


def kiln(*args: str, database: TestDatabase, data_dir: Path) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "KILN_DATABASE_URL": database.url,
        "PYTHONPATH": str(REPOSITORY),
    }
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args, "--data-dir", str(data_dir)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_kiln_migrate_is_idempotent(unmigrated_database: TestDatabase, tmp_path: Path) -> None:
    check = kiln("migrate", "--check", database=unmigrated_database, data_dir=tmp_path)
    assert check.returncode == 1
    assert "no Kiln schema yet" in check.stdout

    first = kiln("migrate", database=unmigrated_database, data_dir=tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"migrated from schema revision none to {code_revision()}" in first.stdout
    assert "job queue schema created" in first.stdout

    second = kiln("migrate", database=unmigrated_database, data_dir=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "is up to date" in second.stdout

    check = kiln("migrate", "--check", database=unmigrated_database, data_dir=tmp_path)
    assert check.returncode == 0
    assert check.stdout.startswith("Current:")


def test_two_concurrent_kiln_migrate_both_succeed(
    unmigrated_database: TestDatabase, empty_engine: Engine, tmp_path: Path
) -> None:
    """Both processes are made to wait on the migration lock, then released together."""
    with empty_engine.connect() as holder:
        holder.execute(text(f"SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "appliance", "migrate", "--data-dir", str(tmp_path)],
                env={
                    **os.environ,
                    "KILN_DATABASE_URL": unmigrated_database.url,
                    "PYTHONPATH": str(REPOSITORY),
                },
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        try:
            wait_for_lock_waiters(empty_engine, 2)
        finally:
            holder.execute(text(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
            holder.commit()
        outputs = [process.communicate(timeout=120) for process in processes]

    assert [process.returncode for process in processes] == [0, 0], outputs
    stdouts = [stdout for stdout, _ in outputs]
    assert sum("migrated from schema revision none" in stdout for stdout in stdouts) == 1
    assert sum("is up to date" in stdout for stdout in stdouts) == 1
    assert all("another kiln migrate is running" in stderr for _, stderr in outputs)
    assert schema_differences(empty_engine, Base.metadata) == []


def wait_for_lock_waiters(engine: Engine, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    query = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            if connection.execute(query).scalar() == count:
                return
        time.sleep(0.05)
    raise AssertionError(f"{count} kiln migrate processes never waited for the lock")


def test_concurrent_migrations_in_threads_serialise(unmigrated_database: TestDatabase) -> None:
    reports: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            reports.append(migrate(unmigrated_database.url))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, name=f"migrate-{n}") for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert sum(report.revision_before is None for report in reports) == 1
    assert all(report.revision_after == code_revision() for report in reports)
