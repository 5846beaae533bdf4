"""Errors become HTTP responses here, and nowhere else.

Bodies use conda-store's error envelope, ``{"status": "error", "message": ...}``, plus Kiln's
stable ``code`` (the error's :attr:`~appliance.common.errors.KilnError.code`). Domain errors map
to a status code by class (the nearest listed base class wins) in :data:`STATUS_BY_ERROR`;
errors whose code ends in ``not_found`` are 404s wherever they are defined, and a few codes
(:data:`STATUS_BY_CODE`: unauthenticated, forbidden, conflict) have their own status. Unexpected
exceptions are logged with their traceback and answered with a 500 that reveals nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_401_UNAUTHORIZED,
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from litestar.types import ExceptionHandlersMap

from appliance.common.errors import (
    ArtifactNotFound,
    ChannelError,
    ConfigurationError,
    DatabaseError,
    KilnError,
    SpecificationError,
    StorageError,
)

logger = logging.getLogger("kiln.web")

#: HTTP status of each kind of domain error; a subclass inherits its nearest listed base's.
STATUS_BY_ERROR: dict[type[KilnError], int] = {
    KilnError: HTTP_400_BAD_REQUEST,  # conda-store answers its own errors with 400
    SpecificationError: HTTP_400_BAD_REQUEST,
    ChannelError: HTTP_400_BAD_REQUEST,
    ArtifactNotFound: HTTP_404_NOT_FOUND,
    StorageError: HTTP_503_SERVICE_UNAVAILABLE,
    DatabaseError: HTTP_503_SERVICE_UNAVAILABLE,
    ConfigurationError: HTTP_500_INTERNAL_SERVER_ERROR,
}


#: HTTP status of errors by their code, wherever they are defined.
STATUS_BY_CODE: dict[str, int] = {
    "unauthenticated": HTTP_401_UNAUTHORIZED,
    "invalid_token": HTTP_401_UNAUTHORIZED,
    "forbidden": HTTP_403_FORBIDDEN,
    "conflict": HTTP_409_CONFLICT,
    "busy": HTTP_503_SERVICE_UNAVAILABLE,
}


def status_of(error: KilnError) -> int:
    """The HTTP status code for ``error``."""
    if error.code.endswith("not_found"):
        return HTTP_404_NOT_FOUND
    if error.code in STATUS_BY_CODE:
        return STATUS_BY_CODE[error.code]
    for kind in type(error).__mro__:
        if kind in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[kind]
    return HTTP_400_BAD_REQUEST


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
