"""conda-store's response envelopes: ``{status, data, message}``, plus ``page, size, count``
on v1 listings and ``cursor, count`` on the v2 environment list. Errors are written by
appliance.web.errors."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

import msgspec
from litestar.openapi import ResponseSpec

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


class ErrorBody(msgspec.Struct, kw_only=True):
    """conda-store's error envelope, plus Kiln's stable error ``code`` (and, for invalid
    requests, ``errors`` naming each bad field; for invalid specifications, ``field`` and
    ``line``)."""

    message: str
    code: str
    status: Literal["error"] = "error"
    errors: list[dict[str, Any]] | None = None
    field: str | None = None
    line: int | None = None


def _error(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorBody, description=description, generate_examples=False)


#: Error answers every API operation may give, documented in the OpenAPI schema.
ERROR_RESPONSES: dict[int, ResponseSpec] = {
    400: _error("The request is invalid; the message says what is wrong and what is allowed"),
    401: _error("Not authenticated, or the credentials are invalid, expired or revoked"),
    403: _error("The caller's role bindings do not grant this"),
    404: _error("No such namespace, environment, build or artifact"),
    409: _error("Conflicts with the current state (exists already, still running, ...)"),
    413: _error("The request body is too large"),
}
