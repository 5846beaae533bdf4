"""Running a use case in its own transaction: :class:`Transactions` for workers and CLIs,
:class:`AsyncTransactions` for the web process.

A worker must not hold a transaction (or a connection) across a build that takes minutes, so
each step is a short transaction run on a thread: ``await transactions.run(start_build, id)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from appliance.db.engine import (
    async_session_factory,
    create_async_engine,
    display_url,
    session_factory,
)
from appliance.db.errors import DatabaseUnavailable

_Params = ParamSpec("_Params")
_Result = TypeVar("_Result")


class Transactions:
    """Runs functions ``(session, *args)`` each in one committed transaction on ``engine``."""

    def __init__(self, engine: Engine) -> None:
        self._sessions = session_factory(engine)

    def run_now(
        self,
        work: Callable[Concatenate[Session, _Params], _Result],
        *args: _Params.args,
        **kwargs: _Params.kwargs,
    ) -> _Result:
        """Run ``work`` in a transaction on this thread; commit, or roll back on error."""
        with self._sessions.begin() as session:
            return work(session, *args, **kwargs)

    async def run(
        self,
        work: Callable[Concatenate[Session, _Params], _Result],
        *args: _Params.args,
        **kwargs: _Params.kwargs,
    ) -> _Result:
        """:meth:`run_now` on a worker thread, so the event loop keeps running."""
        call: Callable[[], _Result] = lambda: self.run_now(work, *args, **kwargs)  # noqa: E731
        return await asyncio.to_thread(call)


class AsyncTransactions:
    """Runs functions ``(session, *args)`` for the web process: the async engine's connection
    does the I/O while the (synchronous) use case runs in SQLAlchemy's greenlet bridge, so no
    thread is tied up per request.

    Requests are short and many, so round trips count: :meth:`read` runs a use case that only
    reads (and may touch a token's ``last_used``) on an autocommit connection, with no
    ``BEGIN``/``COMMIT``; :meth:`run` wraps one that changes things in a transaction. Pooled
    connections are not pinged before use; a connection that turns out dead (PostgreSQL
    restarted) is dropped with the pool, and a read is then retried once on a fresh one, while
    a change fails with :class:`~appliance.db.errors.DatabaseUnavailable` (it may not have
    happened; nothing is half-done).

    At most ``pool_size`` connections per web process (``kiln serve`` with N web workers
    holds up to 16 N of PostgreSQL's connections).

    Owns its engine: :meth:`close` at shutdown.
    """

    def __init__(self, url: str, *, application_name: str = "kiln-web", pool_size: int = 16):
        self._url = url
        self._engine = create_async_engine(
            url,
            application_name=application_name,
            pool_size=pool_size,
            # No overflow: connections opened beyond the pool would be closed again at once,
            # and under load PostgreSQL would start (and the pool would set up) one backend
            # per request. Requests beyond pool_size wait for a connection instead.
            max_overflow=0,
            pool_pre_ping=False,
        )
        self._sessions = async_session_factory(self._engine)
        self._reads = async_session_factory(
            self._engine.execution_options(isolation_level="AUTOCOMMIT")
        )

    async def run(
        self,
        work: Callable[Concatenate[Session, _Params], _Result],
        *args: _Params.args,
        **kwargs: _Params.kwargs,
    ) -> _Result:
        """Run ``work`` in a transaction; commit, or roll back on error."""
        try:
            async with self._sessions.begin() as session:
                return await session.run_sync(lambda sync: work(sync, *args, **kwargs))
        except DBAPIError as error:
            if error.connection_invalidated:
                raise DatabaseUnavailable(
                    f"lost the connection to the database {display_url(self._url)}; try again"
                ) from error
            raise

    async def read(
        self,
        work: Callable[Concatenate[Session, _Params], _Result],
        *args: _Params.args,
        **kwargs: _Params.kwargs,
    ) -> _Result:
        """Run ``work``, which only reads, without a transaction (retried once on a fresh
        connection if the pooled one was dead)."""
        for attempt in (1, 2):
            try:
                async with self._reads() as session:
                    return await session.run_sync(lambda sync: work(sync, *args, **kwargs))
            except DBAPIError as error:
                if not error.connection_invalidated or attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        await self._engine.dispose()
