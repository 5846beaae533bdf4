"""Engines and sessions from a database URL (``CondaStore.database_url`` or the managed
PostgreSQL's).

Every process makes one engine per database at start and shares it; sessions are cheap::

    engine = create_engine(url, application_name="kiln-worker")
    Session = session_factory(engine)
    with Session.begin() as session:  # commits, or rolls back on an exception
        session.add(...)

    engine = create_async_engine(url, application_name="kiln-web")
    Session = async_session_factory(engine)
    async with Session.begin() as session:
        ...

Procrastinate and plain psycopg take a libpq URI instead: :func:`libpq_url`.

All connections use the psycopg 3 driver (``postgresql://`` and ``postgres://`` URLs are
rewritten to ``postgresql+psycopg://``), the UTC time zone (so timestamps read back are aware
UTC datetimes), and ``pool_pre_ping`` (a pool outlives a restart of PostgreSQL). The
``application_name`` shows which Kiln process holds a connection in ``pg_stat_activity``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import sqlalchemy
from sqlalchemy import URL, Engine, event, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as sa_create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from appliance.db.errors import DatabaseUnavailable, DatabaseUrlError

#: The only SQLAlchemy driver Kiln uses (it also serves Procrastinate).
DRIVER = "postgresql+psycopg"


def database_url(url: str | URL) -> URL:
    """``url`` as a SQLAlchemy URL for the psycopg 3 driver.

    Accepts ``postgresql://``, ``postgres://`` and ``postgresql+<driver>://`` (the driver is
    replaced: Kiln ships psycopg 3 only). Anything else raises :class:`DatabaseUrlError`.
    """
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        raise DatabaseUrlError(
            "the database URL is not a valid URL; expected "
            "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        ) from None
    backend = parsed.drivername.split("+", 1)[0]
    if backend not in ("postgresql", "postgres"):
        raise DatabaseUrlError(
            f"the database URL names {parsed.drivername!r}; Kiln needs PostgreSQL "
            "(postgresql://USER:PASSWORD@HOST:PORT/DATABASE)"
        )
    return parsed.set(drivername=DRIVER)


def display_url(url: str | URL) -> str:
    """``url`` for messages and logs: the password replaced by ``***``."""
    try:
        # Unquoted, so a unix socket reads as ?host=/path/to/socket.
        return unquote(database_url(url).render_as_string(hide_password=True))
    except DatabaseUrlError:
        return "<invalid database URL>"


def libpq_url(url: str | URL) -> str:
    """``url`` as a libpq connection URI (password included), for psycopg and Procrastinate's
    ``PsycopgConnector(conninfo=...)``: ``postgresql://kiln@/kiln?host=/path/to/socket``."""
    return database_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def connection_failed(url: str | URL, error: OperationalError) -> DatabaseUnavailable:
    """The error to raise when connecting to ``url`` failed, with the server's reason."""
    reason = str(error.orig if error.orig is not None else error).strip()
    return DatabaseUnavailable(f"cannot connect to the database {display_url(url)}: {reason}")


def _engine_options(application_name: str, options: dict[str, Any]) -> dict[str, Any]:
    connect_args = {"application_name": application_name, **options.pop("connect_args", {})}
    return {"pool_pre_ping": True, "connect_args": connect_args, **options}


def _use_utc(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _set_time_zone(dbapi_connection: Any, _record: Any) -> None:
        # Works on psycopg's connection and on SQLAlchemy's adapter of its async connection.
        # The SET opens a transaction: commit so the pool gets an idle connection.
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SET TIME ZONE 'UTC'")
        finally:
            cursor.close()
        dbapi_connection.commit()


def create_engine(url: str | URL, *, application_name: str = "kiln", **options: Any) -> Engine:
    """A pooled engine for ``url`` (extra ``options`` go to :func:`sqlalchemy.create_engine`)."""
    engine = sqlalchemy.create_engine(
        database_url(url), **_engine_options(application_name, options)
    )
    _use_utc(engine)
    return engine


def create_async_engine(
    url: str | URL, *, application_name: str = "kiln", **options: Any
) -> AsyncEngine:
    """An asyncio engine for ``url`` (psycopg's async mode), for the web process."""
    engine = sa_create_async_engine(database_url(url), **_engine_options(application_name, options))
    _use_utc(engine.sync_engine)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions on ``engine``; objects stay readable after commit (no implicit reload)."""
    return sessionmaker(engine, expire_on_commit=False)


def async_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Async sessions on ``engine``; objects stay readable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)
