"""Offset pagination and sorting of v1 listings, in SQL.

A listing use case builds its filtered ``select`` and hands it to :func:`paginate` with the
columns its sort keys name; :func:`paginate` counts the matches, orders (always ending with the
primary key, so pages are stable), and fetches one page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, SQLColumnExpression, func, select
from sqlalchemy.orm import Session

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
