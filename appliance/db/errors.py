"""Errors of the database layer, in the words an operator needs to fix them.

All derive from :class:`appliance.common.errors.DatabaseError` (re-exported here).
"""

from __future__ import annotations

from appliance.common.errors import DatabaseError

__all__ = [
    "DatabaseError",
    "DatabaseUnavailable",
    "DatabaseUrlError",
    "MigrationError",
    "SchemaMismatch",
    "SchemaOutdated",
    "SchemaTooNew",
]


class DatabaseUrlError(DatabaseError):
    """The database URL is not a PostgreSQL URL Kiln can use."""

    code = "database_url"


class DatabaseUnavailable(DatabaseError):
    """The database server cannot be reached or refused the connection."""

    code = "database_unavailable"


class MigrationError(DatabaseError):
    """Applying the schema migrations failed; the database was left as it was."""

    code = "migration"


class SchemaMismatch(DatabaseError):
    """The database schema is not the one this Kiln knows; run `kiln migrate`."""

    code = "schema_mismatch"

    def __init__(
        self,
        message: str,
        *,
        database_revision: str | None,
        code_revision: str,
    ) -> None:
        super().__init__(message)
        #: The Alembic revision the database is at (None: not migrated at all).
        self.database_revision = database_revision
        #: The head revision this code's migrations end at.
        self.code_revision = code_revision


class SchemaOutdated(SchemaMismatch):
    """The database schema is older than this Kiln: run `kiln migrate`."""

    code = "schema_outdated"


class SchemaTooNew(SchemaMismatch):
    """The database was migrated by a newer Kiln than this one."""

    code = "schema_too_new"
