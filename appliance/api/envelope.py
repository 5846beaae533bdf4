"""conda-store's response envelopes: ``{status, data, message}``, plus ``page, size, count``
on v1 listings and ``cursor, count`` on the v2 environment list. Errors are written by
appliance.web.errors."""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

import msgspec

T = TypeVar("T")


class Ok(msgspec.Struct, Generic[T], kw_only=True):
    """A successful response carrying ``data``."""

    data: T
    status: Literal["ok"] = "ok"
    message: str | None = None


class Ack(msgspec.Struct, kw_only=True):
    """A successful response with nothing to return."""

    status: Literal["ok"] = "ok"
    message: str | None = None


class Page(msgspec.Struct, Generic[T], kw_only=True):
    """One page of a v1 listing; ``count`` is the number of items on all pages."""

    data: list[T]
    page: int
    size: int
    count: int
    status: Literal["ok"] = "ok"
    message: str | None = None


class CursorPage(msgspec.Struct, Generic[T], kw_only=True):
    """One page of a v2 listing; pass ``cursor`` back to get the next (None: last page)."""

    data: list[T]
    cursor: str | None
    count: int
    status: Literal["ok"] = "ok"
    message: str | None = None
