"""Offset pagination and sorting of v1 listings, in SQL.

A listing use case builds its filtered ``select`` and hands it to :func:`paginate` with the
columns its sort keys name; :func:`paginate` counts the matches, orders (always ending with the
primary key, so pages are stable), and fetches one page. The busiest listings write their SQL
as text instead and use :func:`paginate_sql` (see "hand-written listings" below).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Row, Select, SQLColumnExpression, func, select
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.orm import Session

from appliance.db.models import Environment, Namespace
from appliance.services.access import Access

T = TypeVar("T")


@dataclass(frozen=True)
class PageRequest:
    """Which page of a listing, sorted how (checked by the caller)."""

    page: int = 1
    size: int = 100
    sort_by: tuple[str, ...] = ()
    descending: bool = False

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size


@dataclass(frozen=True)
class Listing(Generic[T]):
    """One page of items and how many match in all."""

    items: list[T]
    count: int
    page: int
    size: int


def paginate(
    session: Session,
    statement: Select[Any],
    request: PageRequest,
    *,
    sort_columns: Mapping[str, Sequence[SQLColumnExpression[Any]]],
    default_sort: Sequence[str],
    tiebreak: SQLColumnExpression[Any],
) -> tuple[list[Any], int]:
    """The rows of one page of ``statement`` and the number of rows on all pages.

    One query: the total comes with the page (``count(*) OVER ()``, as an extra last column of
    each row, named ``kiln_total``). A second query counts only when the page is empty (past the
    end) or the statement is DISTINCT (the window would count the rows before DISTINCT).
    """
    order: list[SQLColumnExpression[Any]] = []
    for key in request.sort_by or default_sort:
        for column in sort_columns[key]:
            order.append(column.desc() if request.descending else column.asc())
    order.append(tiebreak.desc() if request.descending else tiebreak.asc())
    distinct = bool(statement._distinct or statement._distinct_on)
    page = statement if distinct else statement.add_columns(func.count().over().label(TOTAL))
    rows = session.execute(page.order_by(*order).offset(request.offset).limit(request.size)).all()
    if rows and not distinct:
        return list(rows), int(rows[0][-1])
    count = session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
    return list(rows), int(count or 0)


#: Name of the column :func:`paginate` adds to each row: the number of rows on all pages.
TOTAL = "kiln_total"


# --- hand-written listings ----------------------------------------------------------------------
#
# The busiest listings (``GET /api/v1/environment/`` and ``/api/v1/build/``) do not build a
# SQLAlchemy statement per request: constructing one, computing its cache key and processing
# 100 result rows through the ORM cost more CPU than PostgreSQL spends answering. They write
# their SELECT as text with positional ``%s`` placeholders, execute it on the session's
# connection (``exec_driver_sql``: errors are still SQLAlchemy's, so a dead connection is still
# noticed and retried), and build their wire structs from rows read by position. Conditions
# they do not write themselves (visibility, the rarer filters) are SQLAlchemy expressions
# compiled into a :class:`Fragment`: values never enter the SQL text, whoever wrote the
# condition.


class _PositionalDialect(PGDialect_psycopg):
    """Compiles expressions with ``%s`` placeholders (psycopg's positional paramstyle), so that
    fragments compiled apart can be joined without their parameter names colliding.

    A dialect that never connected assumes ``standard_conforming_strings=off`` and doubles
    backslashes in literals (``LIKE ... ESCAPE '\\\\'``, which PostgreSQL refuses); Kiln's
    servers have it on (PostgreSQL's default since 9.1), which is what a connected dialect
    learns. SQLAlchemy keeps that in a private attribute: it is set here, on our own subclass.
    """

    _backslash_escapes = False


# SQLAlchemy's dialect constructors are untyped.
_POSITIONAL = _PositionalDialect(paramstyle="format")  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class Fragment:
    """SQL text with positional ``%s`` placeholders, and their values in order."""

    sql: str
    values: tuple[Any, ...] = ()

    @staticmethod
    def compiled(condition: ColumnElement[Any]) -> Fragment:
        """``condition`` (a SQLAlchemy expression on the mapped tables, named as in the
        database: ``build.id``) as a fragment; its values become placeholders."""
        compiled = condition.compile(
            dialect=_POSITIONAL, compile_kwargs={"render_postcompile": True}
        )
        names = compiled.positiontup or []
        return Fragment(compiled.string, tuple(compiled.params[name] for name in names))

    @staticmethod
    def all_of(fragments: Sequence[Fragment]) -> Fragment:
        """The conjunction of ``fragments`` (TRUE when there are none)."""
        if not fragments:
            return Fragment("true")
        return Fragment(
            " AND ".join(f"({fragment.sql})" for fragment in fragments),
            tuple(value for fragment in fragments for value in fragment.values),
        )


@dataclass(frozen=True)
class SqlListing:
    """A listing written as SQL text, for :func:`paginate_sql`.

    ``columns``, ``source`` and the ``sort_columns`` are fixed text from the use case's module
    (never from a request); ``where`` and ``total`` carry the request's values as placeholders.
    ``total`` is a ``SELECT count(*)`` of exactly the rows ``SELECT columns FROM source WHERE
    where`` returns; it runs once per page, as a scalar subquery.
    """

    columns: str
    source: str
    where: Fragment
    total: Fragment
    sort_columns: Mapping[str, Sequence[str]]
    default_sort: Sequence[str]
    tiebreak: str


def paginate_sql(
    session: Session, listing: SqlListing, request: PageRequest
) -> tuple[Sequence[Row[Any]], int]:
    """The rows (``listing.columns`` then the total, read by position) of one page of ``listing``
    and the number of rows on all pages, in one round trip (two past the last page)."""
    direction = "DESC" if request.descending else "ASC"
    keys = [*(request.sort_by or listing.default_sort)]
    order = [f"{column} {direction}" for key in keys for column in listing.sort_columns[key]]
    order.append(f"{listing.tiebreak} {direction}")
    statement = (
        f"SELECT {listing.columns}, ({listing.total.sql}) AS {TOTAL} FROM {listing.source} "
        f"WHERE {listing.where.sql} ORDER BY {', '.join(order)} LIMIT %s OFFSET %s"
    )
    values = (*listing.total.values, *listing.where.values, request.size, request.offset)
    connection = session.connection()
    rows = connection.exec_driver_sql(statement, values).all()
    if rows:
        return rows, int(rows[0][-1])
    count = connection.exec_driver_sql(listing.total.sql, listing.total.values).scalar()
    return rows, int(count or 0)


def visible_environments(access: Access) -> Fragment:
    """:meth:`Access.visible_environments` on ``namespace.name`` and ``environment.name``, as
    a fragment: ``TRUE`` for ``*/*``. Compiled once per :class:`Access` (kept in its
    ``derived``, so as long as the access cache keeps the caller)."""
    found = access.derived.get("visible_environments")
    if found is None:
        found = Fragment.compiled(access.visible_environments(Namespace.name, Environment.name))
        access.derived["visible_environments"] = found
    assert isinstance(found, Fragment)
    return found
