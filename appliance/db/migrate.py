"""``kiln migrate``: bring a database to the schema this Kiln knows, safely and idempotently.

One transaction does everything: take a PostgreSQL advisory lock (:data:`MIGRATION_LOCK`), run
Alembic's ``upgrade head``, then bring Procrastinate's schema up to date
(:mod:`appliance.db.queue_schema`), commit. PostgreSQL's DDL is transactional, so a failure
leaves the database exactly as it was, and a second ``kiln migrate`` started meanwhile (another
host, a restarted supervisor) waits for the lock, then finds nothing left to do.

New revisions: ``python -m appliance.db.revision -m "what changes" --url URL`` writes one from
the difference between the models and a database at head (read it: autogenerate misses renames
and CHECK constraint changes). A step that cannot run in a transaction (``CREATE INDEX
CONCURRENTLY``) needs ``op.get_context().autocommit_block()`` and gives up atomicity.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from alembic import command
from alembic.util import CommandError
from sqlalchemy import URL, Connection, pool, select, text
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from appliance.db.engine import connection_failed, create_engine, display_url
from appliance.db.errors import MigrationError, SchemaTooNew
from appliance.db.queue_schema import QueueSchemaChange, apply_queue_schema, procrastinate_files
from appliance.db.schema import database_revision
from appliance.db.scripts import alembic_config, code_revision, is_known_revision

logger = logging.getLogger("kiln.db")

#: Key of the transaction-level advisory lock that serialises migrations ("kilnmigr").
MIGRATION_LOCK = int.from_bytes(b"kilnmigr", "big")


@dataclass(frozen=True)
class MigrationReport:
    """What :func:`migrate` or :func:`downgrade` found and did."""

    #: The database URL, password masked.
    database: str
    revision_before: str | None
    revision_after: str | None
    #: What happened to Procrastinate's schema (None: not touched, as by a downgrade).
    queue_schema: QueueSchemaChange | None
    procrastinate_version: str | None
    #: Another migration held the lock when this one started.
    waited_for_lock: bool

    @property
    def changed(self) -> bool:
        queue_changed = self.queue_schema not in (None, QueueSchemaChange.UNCHANGED)
        return self.revision_before != self.revision_after or queue_changed


_Step = Callable[[Connection, str, bool], MigrationReport]


def _lock(connection: Connection) -> bool:
    """Take the migration lock for this transaction; return whether it had to wait."""
    if connection.execute(select(text(f"pg_try_advisory_xact_lock({MIGRATION_LOCK})"))).scalar():
        return False
    logger.info("another kiln migrate is running on this database; waiting for it to finish")
    connection.execute(select(text(f"pg_advisory_xact_lock({MIGRATION_LOCK})")))
    return True


def _run_locked(url: str | URL, step: _Step) -> MigrationReport:
    """Run ``step`` in one transaction holding the migration lock; commit if it returns."""
    database = display_url(url)
    engine = create_engine(url, application_name="kiln-migrate", poolclass=pool.NullPool)
    try:
        try:
            connection = engine.connect()
        except OperationalError as error:
            raise connection_failed(url, error) from None
        try:
            with connection.begin():
                waited = _lock(connection)
                return step(connection, database, waited)
        except (SQLAlchemyError, CommandError, MigrationError) as error:
            reason = str(error.orig if isinstance(error, DBAPIError) else error).strip()
            raise MigrationError(
                f"migrating the database {database} failed and nothing was changed: {reason}"
            ) from error
        finally:
            connection.close()
    finally:
        engine.dispose()


def _refuse_unknown(database: str, revision: str | None) -> None:
    if revision is not None and not is_known_revision(revision):
        head = code_revision()
        raise SchemaTooNew(
            f"the database {database} is at schema revision {revision}, which this Kiln "
            f"(revision {head}) does not know: a newer Kiln migrated it. Run that newer Kiln, "
            f"or downgrade the database with it first (`kiln migrate --downgrade {head}`)",
            database_revision=revision,
            code_revision=head,
        )


def migrate(url: str | URL) -> MigrationReport:
    """Upgrade the database at ``url`` to this code's head and to Procrastinate's schema.

    Idempotent, and safe to run from several processes at once. Raises
    :class:`~appliance.db.errors.SchemaTooNew` when a newer Kiln migrated the database (nothing
    is changed), :class:`~appliance.db.errors.DatabaseUnavailable` when the server cannot be
    reached, :class:`~appliance.db.errors.MigrationError` when a step fails (rolled back).
    """
    files = procrastinate_files()
    head = code_revision()

    def upgrade(connection: Connection, database: str, waited: bool) -> MigrationReport:
        before = database_revision(connection)
        _refuse_unknown(database, before)
        if before != head:
            logger.info("migrating %s from schema revision %s to %s", database, before, head)
            command.upgrade(alembic_config(connection=connection), "head")
        queue = apply_queue_schema(connection, files)
        return MigrationReport(
            database=database,
            revision_before=before,
            revision_after=database_revision(connection),
            queue_schema=queue,
            procrastinate_version=files.version,
            waited_for_lock=waited,
        )

    return _run_locked(url, upgrade)


def downgrade(url: str | URL, revision: str) -> MigrationReport:
    """Take the database at ``url`` back to ``revision`` of this code's migrations.

    For going back to an older Kiln: run it with the *newer* Kiln, naming the older one's
    revision (the older Kiln's error message and ``kiln migrate --check`` print it). ``base``
    removes Kiln's tables and all their data. Procrastinate's schema is left as it is.
    """

    def back(connection: Connection, database: str, waited: bool) -> MigrationReport:
        before = database_revision(connection)
        _refuse_unknown(database, before)
        if revision != "base" and not is_known_revision(revision):
            raise MigrationError(f"{revision!r} is not a schema revision this Kiln knows")
        logger.info("downgrading %s from schema revision %s to %s", database, before, revision)
        command.downgrade(alembic_config(connection=connection), revision)
        return MigrationReport(
            database=database,
            revision_before=before,
            revision_after=database_revision(connection),
            queue_schema=None,
            procrastinate_version=None,
            waited_for_lock=waited,
        )

    return _run_locked(url, back)
