"""Downloading a build's artifacts, after checking that the caller may read its environment.

The artifacts (conda-store's names and storage keys, :class:`~appliance.storage.ArtifactKind`):
the build log (``logs/<build key>.log``), the conda-lock lockfile (``lockfile/<key>.yml``), the
pinned YAML (``yaml/<key>.yml``) and the conda-pack archive (``archive/<key>.tar.gz``). A build
records an artifact when it completes; the log is written from the moment a worker takes the
build, so it is found by its key before then (and for failed and canceled builds, whose
artifacts are never recorded).

How the bytes travel, once ``environment::read`` on the build's environment is checked:

- the storage has a URL for the key (:meth:`~appliance.storage.Storage.url`: S3 presigns one on
  ``S3Storage.external_endpoint``, valid :data:`DOWNLOAD_URL_LIFETIME`; ``LocalStorage`` only
  when ``storage_url`` is set): the client is redirected there (307);
- otherwise Kiln streams the file itself, with its length, type and a file name.

conda-store redirected every download to an unauthenticated ``/storage`` mount; here nobody
reads an artifact without the permission, and presigned URLs expire quickly.

A live log (:func:`follow_log`) is always streamed by Kiln: it is sent as it grows, until the
build has ended and everything is sent, or :data:`FOLLOW_LIMIT_SECONDS` have passed.

Anything missing is :class:`~appliance.common.errors.ArtifactNotFound` (404) with the reason:
the build has not completed, it failed, it was deleted, the server does not make that kind, or
the file disappeared from storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Collection, Generator
from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.auth.rbac import Permission
from appliance.common.errors import ArtifactNotFound
from appliance.db.enums import BuildArtifactType, BuildStatus
from appliance.db.models import Build, Environment, Namespace
from appliance.schemas.names import check_name
from appliance.services.access import Caller
from appliance.services.build_queries import FoundBuild, find_build
from appliance.services.environments import EnvironmentNotFound
from appliance.services.transactions import AsyncTransactions
from appliance.storage.base import ArtifactKind, Storage

#: How long a presigned download URL stays valid: long enough to start the download, short
#: enough that a URL passed around stops working soon.
DOWNLOAD_URL_LIFETIME = timedelta(minutes=5)

#: How often a followed log is checked for new lines, in seconds.
FOLLOW_POLL_SECONDS = 0.5

#: How long one request follows a log at most, in seconds (ask again to go on).
FOLLOW_LIMIT_SECONDS = 3600.0

#: Bytes per chunk sent.
CHUNK_SIZE = 256 * 1024

#: What users call each artifact, in messages.
ARTIFACT_NAMES: dict[ArtifactKind, str] = {
    ArtifactKind.LOGS: "log",
    ArtifactKind.LOCKFILE: "lockfile",
    ArtifactKind.YAML: "pinned YAML",
    ArtifactKind.CONDA_PACK: "conda-pack archive",
}

#: Where each artifact is downloaded from (for messages that point at another one).
ARTIFACT_ROUTES: dict[ArtifactKind, str] = {
    ArtifactKind.LOGS: "logs",
    ArtifactKind.LOCKFILE: "lockfile",
    ArtifactKind.YAML: "yaml",
    ArtifactKind.CONDA_PACK: "archive",
}

_FILE_SUFFIXES: dict[ArtifactKind, str] = {
    ArtifactKind.LOGS: ".log",
    ArtifactKind.LOCKFILE: ".lock.yml",
    ArtifactKind.YAML: ".yaml",
    ArtifactKind.CONDA_PACK: ".tar.gz",
}


def default_filename(kind: ArtifactKind, build_id: int) -> str:
    """``build-<id>.log``, ``build-<id>.lock.yml``, ``build-<id>.yaml``, ``build-<id>.tar.gz``."""
    return f"build-{build_id}{_FILE_SUFFIXES[kind]}"


@dataclass(frozen=True)
class ArtifactLocation:
    """Where one artifact of a build the caller may read is stored."""

    build_id: int
    kind: ArtifactKind
    key: str
    status: BuildStatus
    deleted: bool


@dataclass(frozen=True)
class Download:
    """How to answer a download: redirect to ``url``, or send ``content`` (``size`` bytes,
    unknown while a log is followed) as ``filename``, inline or as an ``attachment``."""

    filename: str
    media_type: str
    attachment: bool
    size: int | None = None
    url: str | None = None
    content: AsyncIterator[bytes] | None = None


def _why_missing(build: Build, kind: ArtifactKind, produced: Collection[str]) -> str:
    name = ARTIFACT_NAMES[kind]
    what = f"build {build.id} has no {name}"
    if build.deleted_on is not None:
        return (
            f"{what}: it was removed when the build was deleted "
            "(CondaStore.build_artifacts_kept_on_deletion lists the kinds that are kept)"
        )
    if build.status in (BuildStatus.QUEUED, BuildStatus.BUILDING):
        return f"{what} yet: the build is {build.status}, and the {name} is made when it completes"
    if build.status == BuildStatus.FAILED:
        return f"{what}: the build failed ({build.status_info}); its log says why"
    if build.status == BuildStatus.CANCELED:
        return f"{what}: the build was canceled before it completed"
    if kind.value not in produced:
        return (
            f"{what}: this server does not make {name}s ({kind.value} is not in "
            "CondaStore.build_artifacts)"
        )
    return f"{what}: none was recorded when it completed (rebuild it to make one)"


def _location(found: FoundBuild, kind: ArtifactKind, produced: Collection[str]) -> ArtifactLocation:
    build = found.build
    recorded = {a.artifact_type: a.key for a in build.artifacts}
    key = recorded.get(BuildArtifactType(kind.value))
    if key is None and kind == ArtifactKind.LOGS:
        key = kind.storage_key(build.build_key)
    if key is None:
        raise ArtifactNotFound(_why_missing(build, kind, produced))
    return ArtifactLocation(
        build_id=build.id,
        kind=kind,
        key=key,
        status=build.status,
        deleted=build.deleted_on is not None,
    )


def locate_artifact(
    session: Session,
    caller: Caller,
    build_id: int,
    kind: ArtifactKind,
    produced: Collection[str],
) -> ArtifactLocation:
    """The artifact ``kind`` of ``build_id`` for a caller with ``environment::read`` on its
    environment. ``produced`` is ``CondaStore.build_artifacts`` (for the messages)."""
    found = find_build(session, caller, build_id, Permission.ENVIRONMENT_READ)
    return _location(found, kind, produced)


def locate_current_lockfile(
    session: Session, caller: Caller, namespace: str, environment: str, produced: Collection[str]
) -> ArtifactLocation:
    """The lockfile of the current build of ``namespace/environment``."""
    check_name(namespace)
    check_name(environment, what="environment")
    caller.access(session).require(
        Permission.ENVIRONMENT_READ, namespace=namespace, environment=environment
    )
    current = session.execute(
        select(Environment.id, Environment.current_build_id)
        .join(Namespace, Namespace.id == Environment.namespace_id)
        .where(
            Namespace.name == namespace,
            Namespace.active(),
            Environment.name == environment,
            Environment.active(),
        )
    ).one_or_none()
    if current is None:
        raise EnvironmentNotFound(f"environment {namespace}/{environment} does not exist")
    if current.current_build_id is None:
        raise ArtifactNotFound(
            f"environment {namespace}/{environment} has no lockfile yet: none of its builds "
            "has completed"
        )
    found = find_build(session, caller, current.current_build_id, Permission.ENVIRONMENT_READ)
    return _location(found, ArtifactKind.LOCKFILE, produced)


def image_reference(session: Session, caller: Caller, build_id: int, host: str) -> str:
    """``<host>/<namespace>/<environment>:<build id>``, what ``docker pull`` takes to pull the
    image of ``build_id`` from Kiln's registry at ``host`` (``CondaStoreServer.
    registry_external_url``, or the host the request was sent to). :class:`ArtifactNotFound`
    when the build has no image."""
    found = find_build(session, caller, build_id, Permission.ENVIRONMENT_READ)
    if not any(a.artifact_type == BuildArtifactType.OCI_IMAGE for a in found.build.artifacts):
        raise ArtifactNotFound(
            f"no image for this build: build {build_id} has no OCI image (images are made when "
            "OCI_IMAGE is in CondaStore.build_artifacts and the build completes)"
        )
    return f"{host.rstrip('/')}/{found.namespace}/{found.environment}:{build_id}"


def refuse_installer(session: Session, caller: Caller, build_id: int) -> NoReturn:
    """``GET /build/{id}/installer/``: Kiln builds no constructor installers (after the same
    checks as any artifact, so the answer reveals nothing to others)."""
    find_build(session, caller, build_id, Permission.ENVIRONMENT_READ)
    raise ArtifactNotFound(
        f"build {build_id} has no installer: Kiln does not build constructor installers; "
        f"download the conda-pack archive (/build/{build_id}/archive/) or the lockfile instead"
    )


def _stored_size(storage: Storage, location: ArtifactLocation) -> int:
    """The artifact's size in storage; :class:`ArtifactNotFound` saying why it is missing."""
    try:
        return storage.size(location.key)
    except ArtifactNotFound:
        pass
    name = ARTIFACT_NAMES[location.kind]
    build = f"build {location.build_id}"
    if location.deleted:
        reason = "it was removed when the build was deleted"
    elif location.kind == ArtifactKind.LOGS and location.status == BuildStatus.QUEUED:
        reason = (
            "the build is QUEUED and its log starts when a worker takes it; "
            "add ?follow=true to wait for it and read it as it is written"
        )
    else:
        reason = (
            f"the file {location.key} is missing from artifact storage "
            "(removed outside Kiln?); rebuild to make it again"
        )
    raise ArtifactNotFound(f"{build} has no {name}: {reason}")


def _open(storage: Storage, location: ArtifactLocation, lifetime: timedelta) -> Download:
    """Blocking part of :func:`download`: the size, then a URL or the opened file."""
    size = _stored_size(storage, location)
    kind = location.kind
    filename = default_filename(kind, location.build_id)
    attachment = kind == ArtifactKind.CONDA_PACK
    url = storage.url(location.key, expires=lifetime)
    if url is not None:
        return Download(filename, kind.media_type, attachment, size=size, url=url)
    chunks = storage.stream(location.key, chunk_size=CHUNK_SIZE, end=size)
    return Download(filename, kind.media_type, attachment, size=size, content=_send(chunks))


def _next_chunk(chunks: Generator[bytes, None, None]) -> bytes | None:
    return next(chunks, None)


async def _send(chunks: Generator[bytes, None, None]) -> AsyncIterator[bytes]:
    """The chunks of an opened storage stream, each read on a worker thread."""
    try:
        while (chunk := await asyncio.to_thread(_next_chunk, chunks)) is not None:
            yield chunk
    finally:
        # ValueError: still being read on its thread (the client left); closed when collected.
        with contextlib.suppress(ValueError):
            chunks.close()


async def download(
    db: AsyncTransactions,
    storage: Storage,
    caller: Caller,
    build_id: int,
    kind: ArtifactKind,
    produced: Collection[str],
    *,
    lifetime: timedelta = DOWNLOAD_URL_LIFETIME,
) -> Download:
    """Check the caller may read ``build_id``, then :class:`Download` its artifact ``kind``."""
    location = await db.run(locate_artifact, caller, build_id, kind, produced)
    return await asyncio.to_thread(_open, storage, location, lifetime)


async def download_current_lockfile(
    db: AsyncTransactions,
    storage: Storage,
    caller: Caller,
    namespace: str,
    environment: str,
    produced: Collection[str],
    *,
    lifetime: timedelta = DOWNLOAD_URL_LIFETIME,
) -> Download:
    """The lockfile of the current build of ``namespace/environment``, like :func:`download`."""
    location = await db.run(locate_current_lockfile, caller, namespace, environment, produced)
    return await asyncio.to_thread(_open, storage, location, lifetime)


def build_is_active(session: Session, build_id: int) -> bool:
    """Whether ``build_id`` is still QUEUED or BUILDING (False once it ended or is gone)."""
    status = session.scalar(select(Build.status).where(Build.id == build_id))
    return status in (BuildStatus.QUEUED, BuildStatus.BUILDING)


def _size_so_far(storage: Storage, key: str) -> int:
    try:
        return storage.size(key)
    except ArtifactNotFound:
        return 0


async def follow_log(
    db: AsyncTransactions,
    storage: Storage,
    caller: Caller,
    build_id: int,
    *,
    poll: float = FOLLOW_POLL_SECONDS,
    limit: float = FOLLOW_LIMIT_SECONDS,
) -> Download:
    """Check the caller may read ``build_id``, then :class:`Download` its log as it grows
    (see the module docstring). A QUEUED build's log is waited for; the log of a build that
    has ended is downloaded like any artifact."""
    location = await db.run(locate_artifact, caller, build_id, ArtifactKind.LOGS, ())
    if location.status.is_final:
        return await asyncio.to_thread(_open, storage, location, DOWNLOAD_URL_LIFETIME)
    return Download(
        filename=default_filename(ArtifactKind.LOGS, build_id),
        media_type=ArtifactKind.LOGS.media_type,
        attachment=False,
        content=_growing(db, storage, location, poll=poll, limit=limit),
    )


async def _growing(
    db: AsyncTransactions,
    storage: Storage,
    location: ArtifactLocation,
    *,
    poll: float,
    limit: float,
) -> AsyncIterator[bytes]:
    """The log's bytes as they are written: whatever is new every ``poll`` seconds, until the
    build has ended and the rest is sent, or ``limit`` seconds have passed."""
    deadline = time.monotonic() + limit
    sent = 0
    ended = False
    while True:
        size = await asyncio.to_thread(_size_so_far, storage, location.key)
        if size > sent:
            chunks = await asyncio.to_thread(
                storage.stream, location.key, chunk_size=CHUNK_SIZE, start=sent, end=size
            )
            async for chunk in _send(chunks):
                yield chunk
            sent = size
        elif ended:
            return
        else:
            # The status is read after the size: a build seen ended gets one more look, so
            # lines written just before it ended are sent too.
            ended = not await db.run(build_is_active, location.build_id)
            if not ended:
                await asyncio.sleep(poll)
        if time.monotonic() >= deadline:
            return
