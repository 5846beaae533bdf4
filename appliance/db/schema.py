"""Is the database's schema the one this Kiln knows? (``kiln web`` and ``kiln worker`` check at
start, ``/readyz`` on every probe, ``kiln migrate --check`` on demand.)

Kiln never migrates implicitly from a web or worker process: with several hosts, the operator
(or ``kiln serve``'s supervisor) runs ``kiln migrate`` once, and every other process refuses to
start on a schema it does not know, saying whether the database is older (run ``kiln migrate``)
or newer (a newer Kiln migrated it) than the code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from appliance.db.engine import connection_failed, display_url
from appliance.db.errors import SchemaMismatch, SchemaOutdated, SchemaTooNew
from appliance.db.queue_schema import queue_schema_present
from appliance.db.scripts import code_revision, is_known_revision

#: Alembic's table recording the database's revision.
VERSION_TABLE = "alembic_version"


class SchemaState(enum.StrEnum):
    """How the database's schema relates to this code's."""

    CURRENT = "current"
    #: Nothing of Kiln's schema is there (a new, empty database).
    MISSING = "missing"
    #: At an older revision of this code's migrations, or the queue schema is missing.
    OUTDATED = "outdated"
    #: At a revision this code does not know: a newer Kiln migrated it.
    TOO_NEW = "too_new"


def database_revision(connection: Connection) -> str | None:
    """The Alembic revision the database is at (None: Kiln's schema was never applied)."""
    table = connection.execute(select(text(f"to_regclass('{VERSION_TABLE}')"))).scalar()
    if table is None:
        return None
    revisions = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars()
    found = sorted(revisions)
    return ",".join(found) if found else None


@dataclass(frozen=True)
class SchemaStatus:
    """What :func:`schema_status` found."""

    database: str
    database_revision: str | None
    code_revision: str
    queue_schema_present: bool

    @property
    def state(self) -> SchemaState:
        if self.database_revision is None:
            return SchemaState.MISSING
        if self.database_revision == self.code_revision:
            return SchemaState.CURRENT if self.queue_schema_present else SchemaState.OUTDATED
        if is_known_revision(self.database_revision):
            return SchemaState.OUTDATED
        return SchemaState.TOO_NEW

    @property
    def current(self) -> bool:
        return self.state is SchemaState.CURRENT

    def message(self) -> str:
        """What is wrong and what to do, for logs, the CLI and ``/readyz``."""
        database, code = self.database, self.code_revision
        state = self.state
        if state is SchemaState.CURRENT:
            return f"the database {database} is at schema revision {code}, as this Kiln needs"
        if state is SchemaState.MISSING:
            return (
                f"the database {database} has no Kiln schema yet (this Kiln needs schema "
                f"revision {code}): run `kiln migrate` with the same configuration first"
            )
        if state is SchemaState.TOO_NEW:
            return (
                f"the database {database} is at schema revision {self.database_revision}, "
                f"newer than this Kiln (which knows revisions up to {code}): a newer Kiln "
                "migrated it. Run that newer Kiln, or downgrade the database with it "
                f"(`kiln migrate --downgrade {code}`)"
            )
        if self.database_revision == code:
            return (
                f"the database {database} lacks the job queue's (Procrastinate's) schema: "
                "run `kiln migrate` with the same configuration first"
            )
        return (
            f"the database {database} is at schema revision {self.database_revision}, older "
            f"than this Kiln's {code}: run `kiln migrate` with the same configuration first"
        )

    def error(self) -> SchemaMismatch | None:
        """The error to raise for this status (None when the schema is current)."""
        state = self.state
        if state is SchemaState.CURRENT:
            return None
        kind = SchemaTooNew if state is SchemaState.TOO_NEW else SchemaOutdated
        return kind(
            self.message(),
            database_revision=self.database_revision,
            code_revision=self.code_revision,
        )


def schema_status(connection: Connection) -> SchemaStatus:
    """Read the database's schema revision and whether the queue schema is there."""
    return SchemaStatus(
        database=display_url(connection.engine.url),
        database_revision=database_revision(connection),
        code_revision=code_revision(),
        queue_schema_present=queue_schema_present(connection),
    )


def _check(connection: Connection) -> SchemaStatus:
    status = schema_status(connection)
    error = status.error()
    if error is not None:
        raise error
    return status


def check_schema(engine: Engine) -> SchemaStatus:
    """Raise :class:`~appliance.db.errors.SchemaOutdated` or
    :class:`~appliance.db.errors.SchemaTooNew` unless the database at ``engine`` has exactly
    this code's schema (Kiln's head revision and Procrastinate's tables).

    Raises :class:`~appliance.db.errors.DatabaseUnavailable` when it cannot connect.
    """
    try:
        with engine.connect() as connection:
            return _check(connection)
    except OperationalError as error:
        raise connection_failed(engine.url, error) from None


async def check_schema_async(engine: AsyncEngine) -> SchemaStatus:
    """:func:`check_schema` for an asyncio engine (the web process)."""
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_check)
    except OperationalError as error:
        raise connection_failed(engine.url, error) from None
