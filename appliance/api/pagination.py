"""Query parameters of v1 listings: ``page``, ``size``, ``sort_by`` and ``order``.

conda-store's rules, with its silent fallbacks turned into clear 400s: ``page`` starts at 1;
``size`` defaults to and is capped at ``CondaStoreServer.max_page_size``; ``sort_by`` may be
repeated (or comma-separated) and must name the listing's sort keys; ``order`` is ``asc`` or
``desc``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal, TypeAlias

from litestar.exceptions import ValidationException
from litestar.params import QueryParameter

from appliance.services.listing import PageRequest

#: Highest page number accepted: any larger one would overflow the database's 64-bit offset
#: (and no listing has that many pages).
MAX_PAGE = 2**31

#: Query parameter types of v1 listings (documented and checked by Litestar too).
PageNumber: TypeAlias = Annotated[int, QueryParameter(ge=1, description="page number, from 1")]
PageSize: TypeAlias = Annotated[
    int | None,
    QueryParameter(ge=1, description="items per page (default and maximum: max_page_size)"),
]
Order: TypeAlias = Annotated[
    Literal["asc", "desc"] | None, QueryParameter(description="sort order (default asc)")
]


def page_request(
    *,
    page: int,
    size: int | None,
    sort_by: Sequence[str] | None,
    order: str | None,
    max_page_size: int,
    sort_keys: Sequence[str],
) -> PageRequest:
    """Checked listing parameters; raises a 400 naming the bad parameter and what is allowed."""
    if page < 1:
        raise ValidationException(f"page must be 1 or more, not {page}")
    if page > MAX_PAGE:
        raise ValidationException(f"page must be at most {MAX_PAGE}, not {page}")
    if size is not None and size < 1:
        raise ValidationException(f"size must be 1 or more, not {size}")
    keys = [key for item in sort_by or () for key in item.split(",") if key]
    unknown = [key for key in keys if key not in sort_keys]
    if unknown:
        raise ValidationException(
            f"sort_by {', '.join(unknown)} is not a sort key here; allowed: {', '.join(sort_keys)}"
        )
    if order is not None and order not in ("asc", "desc"):
        raise ValidationException(f"order must be 'asc' or 'desc', not {order!r}")
    return PageRequest(
        page=page,
        size=min(size or max_page_size, max_page_size),
        sort_by=tuple(keys),
        descending=order == "desc",
    )


def as_sent(value: str | None) -> str | None:
    """A query value as its client meant it. conda-store's client appends ``/`` to the whole
    URL, query included (``?status=COMPLETED&packages=numpy/``), so a value can arrive with a
    ``/`` that no name, status or package spec can end with: it is dropped. (The web app also
    drops the client's ``/`` from the end of the query string: appliance.web.client_quirks.)"""
    return value[:-1] if value is not None and value.endswith("/") else value
