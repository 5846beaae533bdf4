"""The registry's routes: the OCI distribution spec's pull API at ``/v2/``.

========================================================  ======================================
``GET``/``HEAD /v2/``                                     200 ``{}`` to a caller who may use it
``GET``/``HEAD /v2/<ns>/<env>/manifests/<reference>``     the manifest (tag or digest)
``GET``/``HEAD /v2/<ns>/<env>/blobs/<digest>``            a blob (``Range``; 307 to S3)
``GET /v2/<ns>/<env>/tags/list?n=&last=``                 ``latest`` and build ids, paginated
``GET /v2/_catalog?n=&last=``                             environments with images the caller
                                                          may read, paginated
========================================================  ======================================

Every answer carries ``Docker-Distribution-Api-Version: registry/2.0``; errors use the spec's
format (appliance.registry.errors), pushes are 405 UNSUPPORTED.

Credentials are the API's (appliance.api.security): ``Authorization: Basic`` with any user name
and a Kiln token as the password (``docker login``, ``skopeo --creds``), ``Bearer <token>``, or
the session cookie. containers/image clients (skopeo, podman) that have no credentials answer
the Basic challenge with an empty user name and password; that is taken as anonymous.

``GET /v2/`` is how clients learn how to authenticate: without any credentials it is always 401
with the challenge, even where anonymous pulls are allowed (docker learns the challenge only
from a 401 there, and without one would never send its login to private repositories). A
client without credentials then goes on anonymously, and reads whatever
``AuthorizationBackend.unauthenticated_role_bindings`` grant; ``/v2/`` itself answers 200 to an
anonymous caller (containers/image's empty Basic) when those bindings grant anything.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, TypeAlias
from urllib.parse import quote, urlencode

from litestar import MediaType, Request, Response, Router, get, head
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Stream

from appliance.api.context import ApiContext
from appliance.api.dependencies import Who
from appliance.api.security import identify
from appliance.registry.errors import (
    API_VERSION_HEADERS,
    EXCEPTION_HANDLERS,
    REGISTRY_ROOT,
    error_response,
)
from appliance.registry.negotiation import RangeNotSatisfiable, accepts, byte_range
from appliance.services.access import Caller, Unauthenticated
from appliance.services.images import (
    MAX_CATALOG_PAGE,
    BlobLocation,
    Images,
    Manifest,
    ManifestNotFound,
    Page,
    check_page_size,
)

#: Handler parameter type: ``images: Registry`` is injected by name.
Registry: TypeAlias = NamedDependency[Images]

_ROUTE: dict[str, Any] = {"include_in_schema": False, "tags": ["registry"]}
OCTET_STREAM = "application/octet-stream"
_REPOSITORY = "/v2/{namespace:str}/{environment:str}"


def anonymous_by_choice(authorization: str | None) -> bool:
    """Whether ``authorization`` is Basic with an empty user name and password: what
    containers/image sends to a Basic challenge when it has no credentials."""
    if not authorization:
        return False
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        return base64.b64decode(value.strip(), validate=True) == b":"
    except (binascii.Error, ValueError):
        return False


def dependencies(context: ApiContext, images: Images) -> dict[str, Provide]:
    """``images`` and ``caller`` for the registry's handlers."""

    def provide_images() -> Images:
        return images

    def provide_caller(request: Request[Any, Any, Any]) -> Caller:
        if anonymous_by_choice(request.headers.get("authorization")):
            return Caller(context.policy)
        return identify(request, context)

    return {
        "images": Provide(provide_images, use_cache=True, sync_to_thread=False),
        "caller": Provide(provide_caller, sync_to_thread=False),
    }


def registry_router(context: ApiContext) -> Router:
    """The registry's routes at ``/v2``, serving the images in ``context``'s database and
    storage."""
    images = Images(context.db, context.storage)
    return Router(
        path="/",
        route_handlers=HANDLERS,
        dependencies=dependencies(context, images),
        exception_handlers=EXCEPTION_HANDLERS,
        response_headers=API_VERSION_HEADERS,
    )


# --- /v2/ ---------------------------------------------------------------------------------------


async def _check(images: Images, caller: Caller, request: Request[Any, Any, Any]) -> None:
    if caller.claims is None and "authorization" not in request.headers:
        raise Unauthenticated(
            "authentication required: log in with any user name and a Kiln token as the "
            "password (docker login HOST, skopeo --creds USER:TOKEN); clients without "
            "credentials go on anonymously and may pull what this Kiln lets anyone read"
        )
    await images.check_access(caller)


@get(f"{REGISTRY_ROOT}/", operation_id="registry_check", **_ROUTE)
async def check_registry(
    images: Registry, caller: Who, request: Request[Any, Any, Any]
) -> Response[dict[str, Any]]:
    await _check(images, caller, request)
    return Response({}, media_type=MediaType.JSON)


@head(f"{REGISTRY_ROOT}/", operation_id="registry_check_head", **_ROUTE)
async def check_registry_head(
    images: Registry, caller: Who, request: Request[Any, Any, Any]
) -> Response[None]:
    await _check(images, caller, request)
    return _headers_only({"Content-Length": "2"}, MediaType.JSON)


# --- manifests ----------------------------------------------------------------------------------


async def _manifest(
    images: Images,
    caller: Caller,
    request: Request[Any, Any, Any],
    namespace: str,
    environment: str,
    reference: str,
) -> Manifest:
    manifest = await images.manifest(caller, namespace, environment, reference)
    if not accepts(request.headers.getall("accept", []), manifest.media_type):
        raise ManifestNotFound(
            f"{namespace}/{environment}:{reference} is a manifest of type {manifest.media_type}, "
            "which the request's Accept header does not list; use a client that reads OCI "
            "images (docker 1.10 and later, podman, skopeo)"
        )
    return manifest


def _manifest_headers(manifest: Manifest) -> dict[str, str]:
    return {
        "Docker-Content-Digest": manifest.digest,
        "ETag": f'"{manifest.digest}"',
        "Content-Length": str(len(manifest.content)),
    }


@get(f"{_REPOSITORY}/manifests/{{reference:str}}", operation_id="registry_manifest", **_ROUTE)
async def get_manifest(
    images: Registry,
    caller: Who,
    request: Request[Any, Any, Any],
    namespace: FromPath[str],
    environment: FromPath[str],
    reference: FromPath[str],
) -> Response[bytes]:
    manifest = await _manifest(images, caller, request, namespace, environment, reference)
    return Response(
        manifest.content, media_type=manifest.media_type, headers=_manifest_headers(manifest)
    )


@head(f"{_REPOSITORY}/manifests/{{reference:str}}", operation_id="registry_manifest_head", **_ROUTE)
async def head_manifest(
    images: Registry,
    caller: Who,
    request: Request[Any, Any, Any],
    namespace: FromPath[str],
    environment: FromPath[str],
    reference: FromPath[str],
) -> Response[None]:
    manifest = await _manifest(images, caller, request, namespace, environment, reference)
    return _headers_only(_manifest_headers(manifest), manifest.media_type)


# --- blobs --------------------------------------------------------------------------------------


def _blob_headers(location: BlobLocation) -> dict[str, str]:
    return {
        "Docker-Content-Digest": location.digest,
        "ETag": f'"{location.digest}"',
        "Accept-Ranges": "bytes",
        "Content-Length": str(location.size),
    }


@get(f"{_REPOSITORY}/blobs/{{digest:str}}", operation_id="registry_blob", **_ROUTE)
async def get_blob(
    images: Registry,
    caller: Who,
    request: Request[Any, Any, Any],
    namespace: FromPath[str],
    environment: FromPath[str],
    digest: FromPath[str],
) -> Response[Any]:
    """The blob's bytes (206 with ``Content-Range`` for a ``Range``), or a 307 redirect to a
    short-lived presigned URL when the storage has one (S3)."""
    location = await images.blob(caller, namespace, environment, digest)
    headers = _blob_headers(location)
    if location.url is not None:
        return Redirect(location.url, status_code=307, headers={"Docker-Content-Digest": digest})
    try:
        selected = byte_range(request.headers.get("range"), location.size)
    except RangeNotSatisfiable:
        return error_response(
            request,
            416,
            "RANGE_INVALID",
            f"the requested range is outside the blob ({location.size} bytes)",
            {"Content-Range": f"bytes */{location.size}"},
        )
    start, end = selected or (0, location.size)
    content = await images.open(location, start, end)
    headers["Content-Length"] = str(end - start)
    if selected is None:
        return Stream(content, media_type=OCTET_STREAM, headers=headers)
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{location.size}"
    return Stream(content, status_code=206, media_type=OCTET_STREAM, headers=headers)


@head(f"{_REPOSITORY}/blobs/{{digest:str}}", operation_id="registry_blob_head", **_ROUTE)
async def head_blob(
    images: Registry,
    caller: Who,
    namespace: FromPath[str],
    environment: FromPath[str],
    digest: FromPath[str],
) -> Response[None]:
    location = await images.blob(caller, namespace, environment, digest)
    return _headers_only(_blob_headers(location), OCTET_STREAM)


# --- listings -----------------------------------------------------------------------------------


def _next_link(path: str, n: int | None, page: Page) -> dict[str, str]:
    """The ``Link`` header to the next page, when there is one."""
    if page.more_after is None or n is None:
        return {}
    query = urlencode({"n": n, "last": page.more_after}, quote_via=quote)
    return {"Link": f'<{path}?{query}>; rel="next"'}


@get(f"{_REPOSITORY}/tags/list", operation_id="registry_tags", **_ROUTE)
async def list_tags(
    images: Registry,
    caller: Who,
    namespace: FromPath[str],
    environment: FromPath[str],
    n: FromQuery[str | None] = None,
    last: FromQuery[str | None] = None,
) -> Response[dict[str, Any]]:
    """``latest`` and the ids of builds with an image, in lexical order; with ``n``, at most
    that many after ``last``, and a ``Link`` to the next page."""
    size = check_page_size(n)
    name, page = await images.tags(caller, namespace, environment, size, last)
    headers = _next_link(f"{REGISTRY_ROOT}/{name}/tags/list", size, page)
    return Response({"name": name, "tags": page.items}, headers=headers)


@get(f"{REGISTRY_ROOT}/_catalog", operation_id="registry_catalog", **_ROUTE)
async def list_repositories(
    images: Registry,
    caller: Who,
    n: FromQuery[str | None] = None,
    last: FromQuery[str | None] = None,
) -> Response[dict[str, Any]]:
    """Names (``<namespace>/<environment>``) of the environments with an image that the caller
    may read, in lexical order; at most ``n`` (at most 1000) after ``last``."""
    size = check_page_size(n, limit=MAX_CATALOG_PAGE)
    page = await images.catalog(caller, size, last)
    headers = _next_link(f"{REGISTRY_ROOT}/_catalog", size or MAX_CATALOG_PAGE, page)
    return Response({"repositories": page.items}, headers=headers)


def _headers_only(headers: dict[str, str], media_type: str) -> Response[None]:
    """An answer to HEAD: the headers of the GET answer (``Content-Length`` included), no body."""
    response: Response[Any] = Response(b"", media_type=media_type, headers=headers)
    return response


HANDLERS: list[Any] = [
    check_registry,
    check_registry_head,
    get_manifest,
    head_manifest,
    get_blob,
    head_blob,
    list_tags,
    list_repositories,
]
