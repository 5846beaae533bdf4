"""Procrastinate's schema (the job queue's tables and functions), applied by ``kiln migrate``.

Procrastinate ships its schema as SQL files: ``sql/schema.sql`` (the whole schema of the
installed version) and ``sql/migrations/*.sql`` (the changes between versions, named so that
they sort in order). Applying ``schema.sql`` twice fails (``DuplicateObject``, NOTES.md), and
Procrastinate records nothing about what it applied, so Kiln keeps that record in its own
``queue_schema`` table (:class:`~appliance.db.models.QueueSchema`) and decides:

- no ``procrastinate_jobs`` table: apply ``schema.sql`` and record the newest migration file
  the installed Procrastinate ships (the schema already contains it);
- recorded migration older than the newest shipped: apply the newer migration files in order
  (what a Kiln upgrade that brings a newer Procrastinate needs);
- Procrastinate's tables present but no record (applied by hand with ``procrastinate schema
  --apply``): adopt them, assuming they match the installed version;
- otherwise: nothing to do.

The SQL files are read as data (the database layer applies all DDL, inside the migration
transaction and its lock); this module does not import Procrastinate's Python API. A frozen
binary must bundle them (``collect_data_files("procrastinate")``) and Procrastinate's metadata
(``copy_metadata("procrastinate")``).
"""

from __future__ import annotations

import enum
import importlib.metadata
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import psycopg
from sqlalchemy import Connection, select, text
from sqlalchemy.dialects.postgresql import insert

from appliance.db.errors import MigrationError
from appliance.db.models import QueueSchema

logger = logging.getLogger("kiln.db")

#: The table whose presence means Procrastinate's schema is there.
SENTINEL_TABLE = "procrastinate_jobs"


class QueueSchemaChange(enum.StrEnum):
    """What :func:`apply_queue_schema` did."""

    CREATED = "created"
    UPGRADED = "upgraded"
    ADOPTED = "adopted"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class QueueSchemaFiles:
    """The installed Procrastinate's version and SQL files."""

    version: str
    schema: Path
    #: Migration scripts, in the order they apply.
    migrations: tuple[Path, ...]

    @property
    def latest_migration(self) -> str | None:
        return self.migrations[-1].name if self.migrations else None

    def migrations_after(self, applied: str | None) -> list[Path]:
        """Migration scripts newer than the file named ``applied`` (all when None)."""
        return [path for path in self.migrations if applied is None or path.name > applied]


def procrastinate_files() -> QueueSchemaFiles:
    """Locate the installed Procrastinate's SQL without importing it."""
    spec = importlib.util.find_spec("procrastinate")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise MigrationError("Procrastinate (the job queue library) is not installed")
    sql = Path(locations[0]) / "sql"
    schema = sql / "schema.sql"
    if not schema.is_file():
        raise MigrationError(
            f"Procrastinate's schema file is missing ({schema}); a frozen kiln binary must "
            "bundle procrastinate's data files"
        )
    migrations = tuple(sorted((sql / "migrations").glob("*.sql"), key=lambda path: path.name))
    try:
        version = importlib.metadata.version("procrastinate")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return QueueSchemaFiles(version=version, schema=schema, migrations=migrations)


def queue_schema_present(connection: Connection) -> bool:
    """Whether Procrastinate's tables exist in the database."""
    found = connection.execute(select(text(f"to_regclass('{SENTINEL_TABLE}')"))).scalar()
    return found is not None


def _execute_script(connection: Connection, path: Path) -> None:
    # Several statements, dollar-quoted bodies and literal '%': run them as one simple query
    # on the driver connection (same transaction), with no parameter processing.
    driver_connection = connection.connection.driver_connection
    assert driver_connection is not None
    try:
        driver_connection.execute(path.read_text(encoding="utf-8"))
    except psycopg.Error as error:
        raise MigrationError(f"Procrastinate's {path.name}: {error}") from error


def _record(connection: Connection, files: QueueSchemaFiles) -> None:
    values = {
        "id": 1,
        "procrastinate_version": files.version,
        "last_migration": files.latest_migration,
    }
    statement = insert(QueueSchema).values(values)
    statement = statement.on_conflict_do_update(
        index_elements=[QueueSchema.id],
        set_={
            "procrastinate_version": statement.excluded.procrastinate_version,
            "last_migration": statement.excluded.last_migration,
            "applied_on": text("now()"),
        },
    )
    connection.execute(statement)


def apply_queue_schema(
    connection: Connection, files: QueueSchemaFiles | None = None
) -> QueueSchemaChange:
    """Bring Procrastinate's schema to the installed version, inside the caller's transaction.

    The caller holds the migration lock (:func:`appliance.db.migrate.migrate`); the
    ``queue_schema`` table must exist (Alembic's first revision creates it).
    """
    files = files or procrastinate_files()
    recorded = connection.execute(
        select(QueueSchema.last_migration).where(QueueSchema.id == 1)
    ).first()
    if not queue_schema_present(connection):
        logger.info("applying Procrastinate %s's schema", files.version)
        _execute_script(connection, files.schema)
        _record(connection, files)
        return QueueSchemaChange.CREATED
    if recorded is None:
        logger.warning(
            "Procrastinate's tables exist but Kiln has no record of applying them; "
            "assuming they match Procrastinate %s",
            files.version,
        )
        _record(connection, files)
        return QueueSchemaChange.ADOPTED
    applied: str | None = recorded.last_migration
    pending = files.migrations_after(applied)
    if not pending:
        latest = files.latest_migration
        if applied is not None and latest is not None and applied > latest:
            logger.warning(
                "Procrastinate's schema in the database (%s) is newer than this Kiln's "
                "Procrastinate %s (%s); a newer Kiln migrated it",
                applied,
                files.version,
                latest,
            )
        return QueueSchemaChange.UNCHANGED
    for path in pending:
        logger.info("applying Procrastinate migration %s", path.name)
        _execute_script(connection, path)
    _record(connection, files)
    return QueueSchemaChange.UPGRADED
