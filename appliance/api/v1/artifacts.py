"""Downloads of a build's artifacts, and the lockfile of an environment's current build.

Paths are conda-store's: ``/build/{id}/logs/``, ``yaml/``, ``lockfile/`` (also
``conda-lock.yml`` and ``conda-lock.yaml``), ``archive/``, ``installer/``, ``docker/``, and
``/environment/{namespace}/{environment}/lockfile/`` (and its two ``conda-lock`` names). The
environment routes live here, not in the environments router, because they are downloads;
their paths are longer than any of that router's, so they never clash.

Each answers, after the caller's ``environment::read`` is checked, either a 307 redirect to a
short-lived presigned URL (S3 storage) or the file itself (local storage), with
``Content-Length``, its media type and a file name: ``build-<id>.log``,
``build-<id>.lock.yml`` (``conda-lock.yml``/``.yaml`` on those paths), ``build-<id>.yaml`` and
``build-<id>.tar.gz`` (an attachment; the text files are shown inline). conda-store answered
every artifact with a redirect to an unauthenticated URL; clients follow redirects, and a direct
answer is what they would have got at the end of one.
"""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Stream

from appliance.api.context import ApiContext
from appliance.api.dependencies import Context, Who
from appliance.services import artifacts
from appliance.services.access import Caller
from appliance.services.artifacts import Download
from appliance.storage.base import ArtifactKind

_REDIRECT = {
    307: ResponseSpec(
        data_container=None,
        description="Redirect to a short-lived presigned URL of the artifact (S3 storage)",
    )
}


def _respond(download: Download, filename: str | None = None) -> Response[Any]:
    """The HTTP answer of a :class:`Download`: a redirect, or the bytes."""
    if download.url is not None:
        return Redirect(download.url, status_code=307, media_type=MediaType.TEXT)
    disposition = "attachment" if download.attachment else "inline"
    headers = {"Content-Disposition": f'{disposition}; filename="{filename or download.filename}"'}
    if download.size is not None:
        headers["Content-Length"] = str(download.size)
    else:  # a growing log: nothing may hold it back
        headers["Cache-Control"] = "no-store"
        headers["X-Accel-Buffering"] = "no"
    assert download.content is not None
    return Stream(download.content, media_type=download.media_type, headers=headers)


async def _artifact(
    context: ApiContext,
    caller: Caller,
    build_id: int,
    kind: ArtifactKind,
    filename: str | None = None,
) -> Response[Any]:
    download = await artifacts.download(
        context.db, context.storage, caller, build_id, kind, context.build_settings.artifacts
    )
    return _respond(download, filename)


@get(
    "/build/{build_id:str}/logs/",
    operation_id="get_build_logs",
    summary="A build's log; with follow=true, streamed live while the build runs",
    tags=["artifacts"],
    responses=_REDIRECT,
    media_type=ArtifactKind.LOGS.media_type,
)
async def get_build_logs(
    context: Context, caller: Who, build_id: FromPath[int], follow: FromQuery[bool] = False
) -> Response[Any]:
    """Without ``follow``, the log as it is now. With ``follow=true`` and a QUEUED or BUILDING
    build, the log is sent as it is written (always by Kiln, never redirected) until the build
    ends, or for an hour at most; a QUEUED build's log is waited for."""
    if not follow:
        return await _artifact(context, caller, build_id, ArtifactKind.LOGS)
    download = await artifacts.follow_log(context.db, context.storage, caller, build_id)
    return _respond(download)


@get(
    "/build/{build_id:str}/yaml/",
    operation_id="get_build_yaml",
    summary="A build's pinned environment YAML",
    tags=["artifacts"],
    responses=_REDIRECT,
    media_type=ArtifactKind.YAML.media_type,
)
async def get_build_yaml(context: Context, caller: Who, build_id: FromPath[int]) -> Response[Any]:
    return await _artifact(context, caller, build_id, ArtifactKind.YAML)


@get(
    "/build/{build_id:str}/lockfile/",
    operation_id="get_build_lockfile",
    summary="A build's conda-lock lockfile",
    tags=["artifacts"],
    responses=_REDIRECT,
    media_type=ArtifactKind.LOCKFILE.media_type,
)
async def get_build_lockfile(
    context: Context, caller: Who, build_id: FromPath[int]
) -> Response[Any]:
    return await _artifact(context, caller, build_id, ArtifactKind.LOCKFILE)


@get(
    "/build/{build_id:str}/conda-lock.yml",
    operation_id="get_build_conda_lock_yml",
    summary="A build's conda-lock lockfile, as conda-lock.yml",
    tags=["artifacts"],
    responses=_REDIRECT,
    media_type=ArtifactKind.LOCKFILE.media_type,
)
async def get_build_conda_lock_yml(
    context: Context, caller: Who, build_id: FromPath[int]
) -> Response[Any]:
    return await _artifact(context, caller, build_id, ArtifactKind.LOCKFILE, "conda-lock.yml")


@get(
    "/build/{build_id:str}/conda-lock.yaml",
    operation_id="get_build_conda_lock_yaml",
    summary="A build's conda-lock lockfile, as conda-lock.yaml",
    tags=["artifacts"],
    responses=_REDIRECT,
    media_type=ArtifactKind.LOCKFILE.media_type,
)
async def get_build_conda_lock_yaml(
    context: Context, caller: Who, build_id: FromPath[int]
) -> Response[Any]:
    return await _artifact(context, caller, build_id, ArtifactKind.LOCKFILE, "conda-lock.yaml")


@get(
    "/build/{build_id:str}/archive/",
    operation_id="get_build_archive",
    summary="A build's conda-pack archive (tar.gz)",
    tags=["artifacts"],
    responses=_REDIRECT,
    media_type=ArtifactKind.CONDA_PACK.media_type,
)
async def get_build_archive(
    context: Context, caller: Who, build_id: FromPath[int]
) -> Response[Any]:
    return await _artifact(context, caller, build_id, ArtifactKind.CONDA_PACK)


@get(
    "/build/{build_id:str}/installer/",
    operation_id="get_build_installer",
    summary="A build's constructor installer (Kiln makes none: always 404)",
    tags=["artifacts"],
)
async def get_build_installer(context: Context, caller: Who, build_id: FromPath[int]) -> None:
    await context.db.read(artifacts.refuse_installer, caller, build_id)


@get(
    "/build/{build_id:str}/docker/",
    operation_id="get_build_docker_image",
    summary="The image reference of a build in Kiln's registry (deprecated)",
    tags=["artifacts"],
    media_type="text/plain",
)
async def get_build_docker_image(
    context: Context, caller: Who, request: Request[Any, Any, Any], build_id: FromPath[int]
) -> Response[str]:
    """``<host>/<namespace>/<environment>:<build id>``, for ``docker pull``; 404 when the
    build has no image."""
    host = context.settings.registry_external_url or request.url.netloc
    reference = await context.db.read(artifacts.image_reference, caller, build_id, host)
    return Response(
        reference,
        media_type="text/plain",
        headers={"Deprecation": "true"},
    )


async def _current_lockfile(
    context: ApiContext,
    caller: Caller,
    namespace: str,
    environment: str,
    filename: str | None = None,
) -> Response[Any]:
    download = await artifacts.download_current_lockfile(
        context.db,
        context.storage,
        caller,
        namespace,
        environment,
        context.build_settings.artifacts,
    )
    if filename is None:
        filename = f"{namespace}-{environment}.lock.yml"
    return _respond(download, filename)


@get(
    "/environment/{namespace:str}/{environment:str}/lockfile/",
    operation_id="get_environment_lockfile",
    summary="The lockfile of an environment's current build",
    tags=["artifacts"],
    responses=_REDIRECT,
    media_type=ArtifactKind.LOCKFILE.media_type,
)
async def get_environment_lockfile(
    context: Context, caller: Who, namespace: FromPath[str], environment: FromPath[str]
) -> Response[Any]:
    return await _current_lockfile(context, caller, namespace, environment)


@get(
    "/environment/{namespace:str}/{environment:str}/conda-lock.yml",
    operation_id="get_environment_conda_lock_yml",
    summary="The lockfile of an environment's current build, as conda-lock.yml",
    tags=["artifacts"],
    responses=_REDIRECT,
    media_type=ArtifactKind.LOCKFILE.media_type,
)
async def get_environment_conda_lock_yml(
    context: Context, caller: Who, namespace: FromPath[str], environment: FromPath[str]
) -> Response[Any]:
    return await _current_lockfile(context, caller, namespace, environment, "conda-lock.yml")


@get(
    "/environment/{namespace:str}/{environment:str}/conda-lock.yaml",
    operation_id="get_environment_conda_lock_yaml",
    summary="The lockfile of an environment's current build, as conda-lock.yaml",
    tags=["artifacts"],
    responses=_REDIRECT,
    media_type=ArtifactKind.LOCKFILE.media_type,
)
async def get_environment_conda_lock_yaml(
    context: Context, caller: Who, namespace: FromPath[str], environment: FromPath[str]
) -> Response[Any]:
    return await _current_lockfile(context, caller, namespace, environment, "conda-lock.yaml")


HANDLERS: list[Any] = [
    get_build_logs,
    get_build_yaml,
    get_build_lockfile,
    get_build_conda_lock_yml,
    get_build_conda_lock_yaml,
    get_build_archive,
    get_build_installer,
    get_build_docker_image,
    get_environment_lockfile,
    get_environment_conda_lock_yml,
    get_environment_conda_lock_yaml,
]
