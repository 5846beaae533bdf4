"""Migrations, the schema check and ``kiln migrate`` without a database: URLs, the migration
scripts on disk, Procrastinate's SQL files, and what the check says in each situation."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.cli import build_parser
from appliance.cli.migrate import describe
from appliance.db.engine import database_url, display_url, libpq_url
from appliance.db.errors import DatabaseUrlError, SchemaOutdated, SchemaTooNew
from appliance.db.migrate import MigrationReport
from appliance.db.queue_schema import QueueSchemaChange, QueueSchemaFiles, procrastinate_files
from appliance.db.schema import SchemaState, SchemaStatus
from appliance.db.scripts import MIGRATIONS_DIRECTORY, code_revision, script_directory

DATABASE = "postgresql+psycopg://kiln:***@db.example.org/kiln"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://kiln:secret@db.example.org/kiln",
        "postgres://kiln:secret@db.example.org/kiln",
        "postgresql+psycopg2://kiln:secret@db.example.org/kiln",
        "postgresql+psycopg://kiln:secret@db.example.org/kiln",
    ],
)
def test_postgresql_urls_use_the_psycopg3_driver(url: str) -> None:
    parsed = database_url(url)
    assert parsed.drivername == "postgresql+psycopg"
    assert (parsed.username, parsed.password, parsed.host, parsed.database) == (
        "kiln",
        "secret",
        "db.example.org",
        "kiln",
    )


@pytest.mark.parametrize("url", ["sqlite:///kiln.db", "mysql://u@h/db", "not a url"])
def test_other_databases_are_refused_with_the_expected_form(url: str) -> None:
    with pytest.raises(DatabaseUrlError, match=r"postgresql://USER:PASSWORD@HOST:PORT/DATABASE"):
        database_url(url)


def test_displayed_urls_hide_the_password_and_show_socket_paths() -> None:
    assert (
        display_url("postgresql://kiln:s3cret@db/kiln") == "postgresql+psycopg://kiln:***@db/kiln"
    )
    socket_url = "postgresql+psycopg://kiln@/kiln?host=%2Fvar%2Flib%2Fkiln%2Fpg%2Fsocket&port=5432"
    assert display_url(socket_url).endswith("?host=/var/lib/kiln/pg/socket&port=5432")


def test_libpq_urls_for_psycopg_and_procrastinate() -> None:
    import psycopg.conninfo

    socket_url = "postgresql+psycopg://kiln@/kiln?host=/var/lib/kiln/pg/socket&port=5432"
    assert psycopg.conninfo.conninfo_to_dict(libpq_url(socket_url)) == {
        "user": "kiln",
        "dbname": "kiln",
        "host": "/var/lib/kiln/pg/socket",
        "port": "5432",
    }
    tcp = psycopg.conninfo.conninfo_to_dict(libpq_url("postgres://k:p%40ss@db:6432/kiln"))
    assert tcp == {"user": "k", "password": "p@ss", "host": "db", "port": "6432", "dbname": "kiln"}


def test_the_migration_scripts_form_one_line_found_by_path() -> None:
    scripts = script_directory()
    assert scripts.get_heads() == [code_revision()]
    base = scripts.get_revision(code_revision())
    while base is not None and base.down_revision is not None:
        base = scripts.get_revision(base.down_revision)  # type: ignore[arg-type]
    assert base is not None and base.revision == "0001"
    # Data files for the frozen binary, not an importable package.
    assert (MIGRATIONS_DIRECTORY / "env.py").is_file()
    assert not (MIGRATIONS_DIRECTORY / "__init__.py").exists()
    assert not (MIGRATIONS_DIRECTORY / "versions" / "__init__.py").exists()


def test_procrastinate_sql_files_are_found_without_importing_it() -> None:
    files = procrastinate_files()
    assert files.schema.name == "schema.sql"
    assert "CREATE TABLE procrastinate_jobs" in files.schema.read_text()
    assert files.version.count(".") >= 2
    names = [path.name for path in files.migrations]
    assert names == sorted(names)
    assert files.latest_migration == names[-1]


def test_only_newer_procrastinate_migrations_are_pending(tmp_path: Path) -> None:
    names = ["02.00.00_01_a.sql", "03.00.00_01_pre_b.sql", "03.00.00_50_post_b.sql"]
    files = QueueSchemaFiles("3.0.0", tmp_path / "schema.sql", tuple(tmp_path / n for n in names))
    assert [p.name for p in files.migrations_after("02.00.00_01_a.sql")] == names[1:]
    assert files.migrations_after(names[-1]) == []
    assert [p.name for p in files.migrations_after(None)] == names


def status(revision: str | None, *, queue: bool = True, head: str = "0001") -> SchemaStatus:
    return SchemaStatus(
        database=DATABASE,
        database_revision=revision,
        code_revision=head,
        queue_schema_present=queue,
    )


def test_the_check_accepts_the_current_schema() -> None:
    current = status(code_revision())
    assert current.state is SchemaState.CURRENT
    assert current.error() is None


def test_the_check_says_to_run_kiln_migrate_on_an_empty_database() -> None:
    missing = status(None, queue=False)
    assert missing.state is SchemaState.MISSING
    error = missing.error()
    assert isinstance(error, SchemaOutdated)
    assert "has no Kiln schema yet" in error.message
    assert "run `kiln migrate`" in error.message
    assert DATABASE in error.message


def test_the_check_says_the_database_is_older(monkeypatch: pytest.MonkeyPatch) -> None:
    import appliance.db.scripts as scripts

    monkeypatch.setattr(scripts, "_revisions", lambda: ("0002", frozenset({"0001", "0002"})))
    older = status("0001", head="0002")
    assert older.state is SchemaState.OUTDATED
    error = older.error()
    assert isinstance(error, SchemaOutdated)
    assert "at schema revision 0001, older than this Kiln's 0002" in error.message
    assert "run `kiln migrate`" in error.message


def test_the_check_says_the_database_is_newer() -> None:
    newer = status("0999")
    assert newer.state is SchemaState.TOO_NEW
    error = newer.error()
    assert isinstance(error, SchemaTooNew)
    assert "newer than this Kiln" in error.message
    assert f"kiln migrate --downgrade {code_revision()}" in error.message
    assert (error.database_revision, error.code_revision) == ("0999", code_revision())


def test_the_check_wants_the_queue_schema_too() -> None:
    no_queue = status(code_revision(), queue=False)
    assert no_queue.state is SchemaState.OUTDATED
    assert "job queue" in no_queue.message()


def report(before: str | None, after: str, queue: QueueSchemaChange) -> MigrationReport:
    return MigrationReport(DATABASE, before, after, queue, "3.10.0", waited_for_lock=False)


def test_kiln_migrate_says_what_changed() -> None:
    first = describe(report(None, "0001", QueueSchemaChange.CREATED))
    assert "migrated from schema revision none to 0001" in first
    assert "job queue schema created (Procrastinate 3.10.0)" in first
    again = describe(report("0001", "0001", QueueSchemaChange.UNCHANGED))
    assert again.startswith(f"The database {DATABASE} is up to date")


def test_kiln_migrate_is_a_subcommand() -> None:
    parser = build_parser()
    args = parser.parse_args(["migrate", "--check", "--data-dir", "/tmp/x"])
    assert args.check and args.func.__module__ == "appliance.cli.migrate"
    with pytest.raises(SystemExit):
        parser.parse_args(["migrate", "--check", "--downgrade", "0001"])
