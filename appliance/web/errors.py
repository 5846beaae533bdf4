"""Errors become HTTP responses here, and nowhere else.

Bodies use conda-store's error envelope, ``{"status": "error", "message": ...}``, plus Kiln's
stable ``code`` (the error's :attr:`~appliance.common.errors.KilnError.code`). Domain errors map
to a status code by :func:`appliance.api.statuses.status_of` (by class, the nearest listed base
class winning; codes ending in ``not_found`` are 404s; a few codes have their own status), the
mapping the UI's error pages use too. Unexpected
exceptions are logged with their traceback and answered with a 500 that reveals nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import (
    HTTP_500_INTERNAL_SERVER_ERROR,
)
from litestar.types import ExceptionHandlersMap

from appliance.api.statuses import status_of
from appliance.common.errors import (
    KilnError,
    SpecificationError,
)

logger = logging.getLogger("kiln.web")


def error_body(message: str, code: str, **extra: Any) -> dict[str, Any]:
    """conda-store's error envelope with Kiln's error ``code``."""
    return {"status": "error", "message": message, "code": code, **extra}


def kiln_error(request: Request[Any, Any, Any], error: KilnError) -> Response[dict[str, Any]]:
    status = status_of(error)
    if status >= HTTP_500_INTERNAL_SERVER_ERROR:
        logger.warning("%s %s: %s", request.method, request.url.path, error.message)
    extra: dict[str, Any] = {}
    if isinstance(error, SpecificationError):
        # Where in the submitted specification the problem is, when known.
        where = {"field": error.field, "line": error.line}
        extra = {key: value for key, value in where.items() if value is not None}
    return Response(error_body(error.message, error.code, **extra), status_code=status)


def http_error(request: Request[Any, Any, Any], error: HTTPException) -> Response[dict[str, Any]]:
    extra: dict[str, Any] = {}
    if isinstance(error, ValidationException) and error.extra:
        extra["errors"] = error.extra
    return Response(
        error_body(error.detail, f"http_{error.status_code}", **extra),
        status_code=error.status_code,
        headers=error.headers,
    )


def internal_error(request: Request[Any, Any, Any], error: Exception) -> Response[dict[str, Any]]:
    logger.error(
        "%s %s failed with an unexpected error", request.method, request.url.path, exc_info=error
    )
    return Response(
        error_body("internal server error; the details are in Kiln's log", "internal"),
        status_code=HTTP_500_INTERNAL_SERVER_ERROR,
    )


#: The app's exception handlers (``Litestar(exception_handlers=...)``).
EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    KilnError: kiln_error,
    HTTPException: http_error,
    Exception: internal_error,
}
