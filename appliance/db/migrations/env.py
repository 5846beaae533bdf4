"""Alembic's environment for Kiln: run the migrations on the connection Kiln hands over.

Kiln never reads an ``alembic.ini``: :func:`appliance.db.migrate.alembic_config` builds the
configuration in code and passes an open connection (inside the transaction that holds the
migration lock) as ``config.attributes["connection"]``. Tools that start Alembic without one
(:mod:`appliance.db.revision`) pass ``config.attributes["url"]`` instead.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, pool

from appliance.db.engine import create_engine
from appliance.db.models import Base
from appliance.db.scripts import configure_context


def run_on(connection: Connection) -> None:
    configure_context(context, connection, Base.metadata)
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    if context.is_offline_mode():
        raise RuntimeError("Kiln's migrations run against a database, not as offline SQL")
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    engine = create_engine(
        context.config.attributes["url"],
        application_name="kiln-alembic",
        poolclass=pool.NullPool,
    )
    try:
        with engine.connect() as connection:
            run_on(connection)
            connection.commit()
    finally:
        engine.dispose()


run()
