"""``kiln migrate``: apply Kiln's schema migrations and the job queue's schema.

Idempotent and safe to run from several hosts at once (the database serialises them). ``kiln
serve`` runs it before starting web and workers; with external PostgreSQL and several hosts, run
it once per upgrade before starting the new ``kiln web``/``kiln worker`` processes, which refuse
to start on a schema they do not know.

The database is ``CondaStore.database_url`` (``KILN_DATABASE_URL``). When that is unset, it is
Kiln's managed PostgreSQL in the data dir: used as it is when ``kiln serve`` is running it,
otherwise started for the migration and stopped afterwards.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from appliance.db.migrate import MigrationReport

from appliance.cli.options import quiet_alembic

logger = logging.getLogger("kiln.migrate")

_Result = TypeVar("_Result")


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``kiln migrate`` to the top-level ``subparsers``."""
    parser = subparsers.add_parser(
        "migrate",
        parents=[common],
        help="create or upgrade the database schema (idempotent)",
        description=(
            "Bring the database (CondaStore.database_url, or the managed PostgreSQL in the data "
            "dir) to the schema this Kiln needs: Kiln's tables (Alembic migrations) and the job "
            "queue's (Procrastinate). Safe to repeat and to run from several hosts at once."
        ),
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--check",
        action="store_true",
        help="change nothing; exit 0 when the schema is current, 1 (saying why) when not",
    )
    action.add_argument(
        "--downgrade",
        metavar="REVISION",
        help="take Kiln's schema back to REVISION (for returning to an older Kiln; run it with "
        "the newer Kiln). 'base' removes Kiln's tables and their data",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    quiet_alembic(args.log_level)
    # Heavy imports stay here so that `kiln --version` does not pay for them.
    from appliance.cli.database import on_database
    from appliance.config import load_config_from_args
    from appliance.db.migrate import downgrade, migrate

    config = load_config_from_args(args)
    if args.check:
        return on_database(config, check)
    if args.downgrade:
        revision: str = args.downgrade
        print(describe(on_database(config, lambda url: downgrade(url, revision))))
    else:
        print(describe(on_database(config, migrate)))
    return 0


def check(url: str) -> int:
    """Print whether the schema at ``url`` is current; 0 when it is, 1 when not."""
    from appliance.db.engine import create_engine
    from appliance.db.errors import SchemaMismatch
    from appliance.db.schema import check_schema

    engine = create_engine(url, application_name="kiln-migrate")
    try:
        status = check_schema(engine)
    except SchemaMismatch as mismatch:
        print(f"Not current: {mismatch.message}")
        return 1
    finally:
        engine.dispose()
    print(f"Current: {status.message()}")
    return 0


def describe(report: MigrationReport) -> str:
    """One paragraph saying what changed (or that nothing had to)."""
    from appliance.db.queue_schema import QueueSchemaChange

    before = report.revision_before or "none"
    after = report.revision_after or "none"
    if report.queue_schema is None:
        return (
            f"Downgraded the database {report.database} from schema revision {before} to {after}."
        )
    queue = {
        QueueSchemaChange.CREATED: "created",
        QueueSchemaChange.UPGRADED: "upgraded",
        QueueSchemaChange.ADOPTED: "found and recorded",
        QueueSchemaChange.UNCHANGED: "up to date",
    }[report.queue_schema]
    procrastinate = f"Procrastinate {report.procrastinate_version}"
    if not report.changed:
        return (
            f"The database {report.database} is up to date "
            f"(schema revision {after}, job queue schema of {procrastinate})."
        )
    schema = (
        f"migrated from schema revision {before} to {after}"
        if before != after
        else f"already at schema revision {after}"
    )
    return f"The database {report.database}: {schema}; job queue schema {queue} ({procrastinate})."
