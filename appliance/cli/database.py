"""Where the database is, for commands that use it (``worker``, ``web``, ``serve``)."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.config.loader import KilnConfig


@dataclass(frozen=True)
class DatabaseLocation:
    """The same database as a SQLAlchemy URL and as a libpq conninfo (for Procrastinate)."""

    url: str
    conninfo: str
    managed: bool


def database_location(config: KilnConfig) -> DatabaseLocation:
    """``CondaStore.database_url``, or Kiln's managed PostgreSQL in the data dir (not started
    here: ``kiln serve`` runs it, and its address follows from the data dir)."""
    url = config.conda_store.database_url
    if url:
        from appliance.db.engine import libpq_url

        return DatabaseLocation(url=url, conninfo=libpq_url(url), managed=False)
    from appliance.supervisor.postgres import ManagedPostgres

    server = ManagedPostgres.from_config(config)
    return DatabaseLocation(url=server.url, conninfo=server.conninfo, managed=True)
