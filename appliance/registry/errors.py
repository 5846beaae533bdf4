"""Errors under ``/v2/`` become the distribution spec's answers, here and nowhere else.

Body: ``{"errors": [{"code": "MANIFEST_UNKNOWN", "message": "...", "detail": {...}}]}`` (no
body for HEAD), with the spec's status and code for each kind of error (:data:`SPEC_ERRORS`),
``Docker-Distribution-Api-Version: registry/2.0``, and on 401 the challenge
``WWW-Authenticate: Basic realm="Kiln"`` that docker, podman and skopeo answer with the
credentials of ``docker login`` (any user name, a Kiln token as the password). ``detail`` names
the repository and reference or digest of the request.

Requests that match no registry route (a name that is not ``<namespace>/<environment>``) or a
method no route takes (pushes: ``POST .../blobs/uploads/``, ``PUT .../manifests/<tag>``, ``PATCH``,
``DELETE``) fail while Litestar routes them, before any route's own handlers apply; the app's
exception handlers are therefore wrapped (:func:`for_registry_paths`) to answer those in this
format too when the path is under ``/v2``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException
from litestar.types import ExceptionHandlersMap

from appliance.common.errors import DatabaseError, KilnError, StorageError
from appliance.schemas.names import InvalidName
from appliance.services.access import Forbidden, Unauthenticated
from appliance.services.images import (
    BlobNotFound,
    InvalidDigest,
    InvalidPage,
    ManifestNotFound,
    RepositoryNotFound,
)

logger = logging.getLogger("kiln.registry")

#: Where the registry answers (clients require it at the root of the host).
REGISTRY_ROOT = "/v2"

#: Sent with every answer under /v2/ (clients check it to recognise a registry).
API_VERSION_HEADERS = {"Docker-Distribution-Api-Version": "registry/2.0"}

#: The challenge of a 401: Basic, which docker, podman and skopeo answer with their login.
CHALLENGE = 'Basic realm="Kiln"'

#: HTTP status and spec error code of each kind of domain error (the nearest listed base
#: class wins).
SPEC_ERRORS: dict[type[KilnError], tuple[int, str]] = {
    RepositoryNotFound: (404, "NAME_UNKNOWN"),
    ManifestNotFound: (404, "MANIFEST_UNKNOWN"),
    BlobNotFound: (404, "BLOB_UNKNOWN"),
    InvalidDigest: (400, "DIGEST_INVALID"),
    InvalidName: (400, "NAME_INVALID"),
    InvalidPage: (400, "PAGINATION_NUMBER_INVALID"),
    Unauthenticated: (401, "UNAUTHORIZED"),
    Forbidden: (403, "DENIED"),
    StorageError: (503, "UNAVAILABLE"),
    DatabaseError: (503, "UNAVAILABLE"),
    KilnError: (400, "UNKNOWN"),
}

#: Spec error code of HTTP errors (Litestar's, and credentials refused by
#: appliance.api.security) by status.
HTTP_CODES: dict[int, str] = {
    401: "UNAUTHORIZED",
    403: "DENIED",
    404: "NAME_UNKNOWN",
    405: "UNSUPPORTED",
    429: "TOOMANYREQUESTS",
}

_CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})

UNKNOWN_PATH = (
    "not a registry path: images are named <namespace>/<environment> "
    "(/v2/<namespace>/<environment>/manifests/<tag or digest>, .../blobs/<digest>, "
    ".../tags/list, /v2/_catalog)"
)


def is_registry_path(path: str) -> bool:
    return path == REGISTRY_ROOT or path.startswith(REGISTRY_ROOT + "/")


def error_response(
    request: Request[Any, Any, Any],
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    """The spec's error answer (headers only for HEAD)."""
    all_headers = {**API_VERSION_HEADERS, **(headers or {})}
    if status == 401:
        all_headers["WWW-Authenticate"] = CHALLENGE
    error: dict[str, Any] = {"code": code, "message": message}
    detail = _detail(request)
    if detail:
        error["detail"] = detail
    content: Any = b"" if request.method == "HEAD" else {"errors": [error]}
    return Response(content, status_code=status, media_type=MediaType.JSON, headers=all_headers)


def _detail(request: Request[Any, Any, Any]) -> dict[str, str]:
    params: dict[str, Any] = request.scope.get("path_params") or {}
    detail: dict[str, str] = {}
    if "namespace" in params and "environment" in params:
        detail["name"] = f"{params['namespace']}/{params['environment']}"
    for name in ("reference", "digest"):
        if name in params:
            detail[name] = str(params[name])
    return detail


def registry_error(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    """Any exception raised while answering under ``/v2``, as the spec's error."""
    if isinstance(error, KilnError):
        status, code = next(SPEC_ERRORS[k] for k in type(error).__mro__ if k in SPEC_ERRORS)
        if status >= 500:
            logger.warning("%s %s: %s", request.method, request.url.path, error.message)
        return error_response(request, status, code, error.message)
    if isinstance(error, HTTPException):
        status = error.status_code
        if status == 404 and request.method in _CHANGES:
            status = 405  # upload sessions and the like: a push, whatever the path
        code = HTTP_CODES.get(status, "UNKNOWN")
        message = error.detail
        headers = {k: v for k, v in (error.headers or {}).items() if k.lower() == "allow"}
        if status == 404:
            message = UNKNOWN_PATH
        elif status == 405 and request.method in _CHANGES:
            message = (
                f"{request.method} is not supported: Kiln's registry serves the images Kiln "
                "builds from environments and takes no pushes or deletions"
            )
        elif status == 405:
            message = f"{request.method} is not supported on {request.url.path}"
        return error_response(request, status, code, message, headers)
    logger.error(
        "%s %s failed with an unexpected error", request.method, request.url.path, exc_info=error
    )
    return error_response(request, 500, "UNKNOWN", "internal server error; see Kiln's log")


def for_registry_paths(handlers: ExceptionHandlersMap) -> ExceptionHandlersMap:
    """``handlers`` (the app's), answering with :func:`registry_error` under ``/v2``."""
    return {kind: _dispatch(handler) for kind, handler in handlers.items()}


def _dispatch(
    handler: Callable[[Request[Any, Any, Any], Any], Response[Any]],
) -> Callable[[Request[Any, Any, Any], Any], Response[Any]]:
    def handle(request: Request[Any, Any, Any], error: Any) -> Response[Any]:
        if is_registry_path(request.url.path):
            return registry_error(request, error)
        return handler(request, error)

    return handle


#: The registry router's own exception handlers (errors raised by its handlers).
EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    KilnError: registry_error,
    HTTPException: registry_error,
    Exception: registry_error,
}
