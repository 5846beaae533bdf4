"""Where the database is, for commands that use it (``worker``, ``web``, ``serve``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from appliance.config.loader import KilnConfig

logger = logging.getLogger("kiln.database")

_Result = TypeVar("_Result")


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


def on_database(config: KilnConfig, work: Callable[[str], _Result]) -> _Result:
    """Run ``work(url)`` on the configured database, starting the managed one if need be
    (and stopping it afterwards) when ``kiln serve`` is not running it."""
    from appliance.db.errors import DatabaseUnavailable
    from appliance.supervisor.postgres import ManagedPostgres

    url = config.conda_store.database_url
    if url:
        return work(url)
    server = ManagedPostgres.from_config(config)
    try:
        return work(server.url)  # `kiln serve` is running it
    except DatabaseUnavailable:
        logger.debug("the managed PostgreSQL is not running", exc_info=True)
    logger.info("Starting the managed PostgreSQL in %s", server.directory)
    with server:
        return work(server.url)
