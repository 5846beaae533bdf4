"""The images Kiln's registry serves: which manifest a reference names, which blobs an image
may hand out, an environment's tags and the catalog of environments with images.

A repository is an environment, named ``<namespace>/<environment>``. Its images are the
OCI_IMAGE artifacts of its builds that are not deleted; an artifact's key is the storage key of
the image manifest (``oci/blobs/sha256/<hex>``), so the manifest digest is read from the key.
References:

- ``latest``: the image of the environment's current build;
- ``<build id>``: the image of that build of this environment;
- ``sha256:<hex>``: a manifest digest that is the image of one of this environment's builds.

Every blob (config, layers, and the manifest itself) is stored once, content-addressed, at
``oci/blobs/sha256/<hex>``. A blob is served from a repository only when a manifest of that
repository lists it: a caller who may read one environment cannot fetch another's layers by
guessing digests. Which blobs a repository's manifests list is kept for
:data:`REPOSITORY_TTL` seconds per process; a digest missing from that set is looked up afresh
before it is refused, so a new build's blobs are served at once, while a deleted build's blobs
may still be served for those few seconds. Manifests are immutable (their key is their digest)
and are kept parsed in a bounded cache.

Every request checks ``environment::read`` on ``<namespace>/<environment>`` (catalog: lists only
the environments the caller may read) before it says whether anything exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Generator, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import exists, literal, select
from sqlalchemy.orm import Session

from appliance.auth.rbac import Permission
from appliance.common.errors import ArtifactNotFound, KilnError, StorageError
from appliance.db.enums import BuildArtifactType
from appliance.db.models import Build, BuildArtifact, Environment, Namespace
from appliance.oci import layout
from appliance.schemas.names import check_name
from appliance.services.access import Caller, Unauthenticated
from appliance.services.transactions import AsyncTransactions
from appliance.storage.base import Storage

#: The tag of an environment's current build.
LATEST = "latest"

OCI_MANIFEST = layout.MANIFEST
OCI_INDEX = layout.INDEX

#: Seconds a repository's set of blobs is reused before it is read again.
REPOSITORY_TTL = 5.0

#: How long a presigned blob URL stays valid (S3 storage): long enough to start a large layer.
BLOB_URL_LIFETIME = timedelta(minutes=10)

#: Bytes per chunk when Kiln streams a blob itself.
BLOB_CHUNK_SIZE = 1024 * 1024

#: Most catalog entries in one answer (the catalog without ``n`` answers this many).
MAX_CATALOG_PAGE = 1000

#: A digest of any algorithm (OCI image-spec's grammar).
_DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_HEX64 = re.compile(r"^[a-f0-9]{64}$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")


def blob_key(digest: str) -> str:
    """The storage key of the blob ``sha256:<hex>`` (:class:`InvalidDigest` for others)."""
    try:
        return layout.blob_key(digest)
    except layout.InvalidDigest as error:
        raise InvalidDigest(str(error)) from None


def digest_of_key(key: str) -> str:
    """The digest ``sha256:<hex>`` of the blob stored at ``key`` (``oci/blobs/sha256/<hex>``)."""
    try:
        return layout.digest_of_key(key)
    except layout.InvalidDigest as error:
        raise StorageError(f"an OCI_IMAGE artifact has a bad key: {error}") from None


def check_digest(digest: str) -> str:
    """``digest`` if it is a well-formed digest (``sha256:`` needs 64 lowercase hex digits);
    :class:`InvalidDigest` otherwise. Other algorithms are well-formed, and name no blob."""
    algorithm, _, encoded = digest.partition(":")
    if not _DIGEST.match(digest) or (algorithm == "sha256" and not _HEX64.match(encoded)):
        raise InvalidDigest(
            f"{digest[:140]!r} is not a digest; digests look like sha256:<64 hex digits>"
        )
    return digest


class RepositoryNotFound(KilnError):
    """No such repository: images are named <namespace>/<environment>."""

    code = "repository_not_found"


class ManifestNotFound(KilnError):
    """No such image manifest in this repository."""

    code = "manifest_not_found"


class BlobNotFound(KilnError):
    """No such blob in this repository."""

    code = "blob_not_found"


class InvalidDigest(KilnError):
    """The digest is malformed: digests look like sha256:<64 hex digits>."""

    code = "invalid_digest"


class InvalidPage(KilnError):
    """The page size n must be a whole number, 0 or more."""

    code = "invalid_page"


@dataclass(frozen=True)
class Manifest:
    """An image manifest as stored: its bytes, digest, media type and the blobs it lists."""

    digest: str
    media_type: str
    content: bytes
    #: Digests of the config, the layers (and of an index's manifests), and its own.
    blobs: frozenset[str]


@dataclass(frozen=True)
class Repository:
    """An environment's images: manifest digest by build id, and its current build."""

    namespace: str
    environment: str
    current_build_id: int | None
    images: dict[int, str]

    @property
    def name(self) -> str:
        return f"{self.namespace}/{self.environment}"

    def tags(self) -> list[str]:
        """``latest`` (when the current build has an image) and every build id with an image,
        in lexical order (the distribution spec's)."""
        tags = [str(build_id) for build_id in self.images]
        if self.current_build_id in self.images:
            tags.append(LATEST)
        return sorted(tags)

    def manifest_digest(self, reference: str) -> str:
        """The manifest digest ``reference`` (a tag or a digest) names; raises
        :class:`ManifestNotFound` saying why there is none."""
        if _DIGEST.match(reference):
            if reference in self.images.values():
                return reference
            raise ManifestNotFound(
                f"manifest {reference} is not an image of {self.name} (not one of its "
                "builds' images, or that build was deleted)"
            )
        if reference == LATEST:
            current = self.current_build_id
            if current is None:
                raise ManifestNotFound(f"{self.name} has no image: it has no current build")
            if current not in self.images:
                raise ManifestNotFound(
                    f"{self.name}:latest has no image: its current build {current} has none "
                    "(images are made when OCI_IMAGE is in CondaStore.build_artifacts)"
                )
            return self.images[current]
        if reference.isdigit() and int(reference) in self.images:
            return self.images[int(reference)]
        if not _TAG.match(reference):
            raise ManifestNotFound(
                f"{reference[:140]!r} is neither a tag nor a digest; tags are 'latest' and "
                "build ids"
            )
        raise ManifestNotFound(
            f"{self.name} has no tag {reference!r}: tags are 'latest' and the ids of builds "
            "with an image" + (f" ({', '.join(self.tags()[:10])})" if self.images else "")
        )


@dataclass(frozen=True)
class BlobLocation:
    """Where a blob the caller may read is: its key and size, and a URL to redirect to (S3
    storage, or local storage with a ``storage_url``) or None when Kiln streams it."""

    digest: str
    key: str
    size: int
    url: str | None


@dataclass(frozen=True)
class Page:
    """One page of a listing, and the last item when more follow (for the next page)."""

    items: list[str]
    more_after: str | None = None


def check_page_size(n: str | None, *, limit: int | None = None) -> int | None:
    """``n`` (a query parameter) as a page size, capped at ``limit``; None when absent."""
    if n is None or n == "":
        return None
    if not n.isdigit():
        raise InvalidPage(f"the page size n must be a whole number, 0 or more (got {n[:40]!r})")
    size = int(n)
    return min(size, limit) if limit is not None else size


def paginate(names: Sequence[str], n: int | None, last: str | None) -> Page:
    """The page of sorted ``names`` after ``last`` with at most ``n`` items."""
    after = [name for name in names if last is None or name > last]
    if n is None or len(after) <= n:
        return Page(after)
    items = after[:n]
    return Page(items, items[-1] if items else None)


# --- use cases in one transaction ---------------------------------------------------------------


def _check_repository(session: Session, caller: Caller, namespace: str, environment: str) -> None:
    check_name(namespace)
    check_name(environment, what="environment")
    caller.access(session).require(
        Permission.ENVIRONMENT_READ, namespace=namespace, environment=environment
    )


def check_registry_access(session: Session, caller: Caller) -> None:
    """``GET /v2/``: the caller is authenticated, or anonymous callers may read something."""
    access = caller.access(session)
    if not access.authenticated and not access.bindings:
        raise Unauthenticated(
            "authentication required: log in with any user name and a Kiln token as the "
            "password (docker login, skopeo --creds user:TOKEN)"
        )


def check_repository_access(
    session: Session, caller: Caller, namespace: str, environment: str
) -> None:
    """Raise unless the caller may read ``namespace/environment`` (no other check)."""
    _check_repository(session, caller, namespace, environment)


def find_repository(
    session: Session, caller: Caller, namespace: str, environment: str
) -> Repository:
    """The images of ``namespace/environment`` for a caller with ``environment::read`` on it;
    :class:`RepositoryNotFound` when there is no such environment."""
    _check_repository(session, caller, namespace, environment)
    found = session.execute(
        select(Environment.id, Environment.current_build_id)
        .join(Namespace, Namespace.id == Environment.namespace_id)
        .where(
            Namespace.name == namespace,
            Namespace.active(),
            Environment.name == environment,
            Environment.active(),
        )
    ).one_or_none()
    if found is None:
        raise RepositoryNotFound(
            f"repository {namespace}/{environment} not found: there is no environment "
            f"{environment} in namespace {namespace}"
        )
    rows = session.execute(
        select(Build.id, BuildArtifact.key)
        .join(BuildArtifact, BuildArtifact.build_id == Build.id)
        .where(
            Build.environment_id == found.id,
            Build.deleted_on.is_(None),
            BuildArtifact.artifact_type == BuildArtifactType.OCI_IMAGE,
        )
    )
    images = {build_id: digest_of_key(key) for build_id, key in rows}
    return Repository(namespace, environment, found.current_build_id, images)


def list_repositories(session: Session, caller: Caller, n: int, last: str | None) -> Page:
    """``GET /v2/_catalog``: names of environments with an image that the caller may read, in
    lexical order, after ``last``, at most ``n``."""
    check_registry_access(session, caller)
    access = caller.access(session)
    if n == 0:
        return Page([])
    name = (Namespace.name + literal("/") + Environment.name).collate("C")
    has_image = exists().where(
        Build.environment_id == Environment.id,
        Build.deleted_on.is_(None),
        BuildArtifact.build_id == Build.id,
        BuildArtifact.artifact_type == BuildArtifactType.OCI_IMAGE,
    )
    query = (
        select(Namespace.name, Environment.name, name)
        .join(Namespace, Namespace.id == Environment.namespace_id)
        .where(
            Namespace.active(),
            Environment.active(),
            access.visible_environments(Namespace.name, Environment.name),
            has_image,
        )
        .order_by(name)
    )
    batch = max(n + 1, 100)
    found: list[str] = []
    after = last
    while len(found) <= n:
        page = query if after is None else query.where(name > after)
        rows = session.execute(page.limit(batch)).all()
        for namespace, environment, full in rows:
            if access.allows(Permission.ENVIRONMENT_READ, namespace, environment):
                found.append(full)
        if len(rows) < batch:
            break
        after = rows[-1][2]
    if len(found) > n:
        return Page(found[:n], found[n - 1] if n else None)
    return Page(found)


# --- the registry's reading side --------------------------------------------------------------


@dataclass
class _Cached:
    repository: Repository
    loaded_at: float
    blobs: frozenset[str] | None = None


class Images:
    """What the registry's handlers call: images read through ``db`` and ``storage``, with
    this process's caches of repositories and manifests (see the module docstring).

    A plain class, not a dataclass: Litestar checks an injected dataclass against the types
    of its fields, on every request.
    """

    def __init__(
        self,
        db: AsyncTransactions,
        storage: Storage,
        *,
        repository_ttl: float = REPOSITORY_TTL,
        url_lifetime: timedelta = BLOB_URL_LIFETIME,
        max_manifests: int = 512,
        max_repositories: int = 4096,
    ) -> None:
        self.db = db
        self.storage = storage
        self.repository_ttl = repository_ttl
        self.url_lifetime = url_lifetime
        self.max_manifests = max_manifests
        self.max_repositories = max_repositories
        self._manifests: OrderedDict[str, Manifest] = OrderedDict()
        self._repositories: dict[tuple[str, str], _Cached] = {}

    async def check_access(self, caller: Caller) -> None:
        """``GET /v2/``: raise unless the caller may use the registry at all."""
        await self.db.read(check_registry_access, caller)

    async def manifest(
        self, caller: Caller, namespace: str, environment: str, reference: str
    ) -> Manifest:
        """The manifest ``reference`` names in ``namespace/environment`` (always read afresh:
        ``latest`` moves when the current build changes)."""
        cached, _ = await self._repository(caller, namespace, environment, fresh=True)
        return await self._manifest(cached.repository.manifest_digest(reference))

    async def tags(
        self, caller: Caller, namespace: str, environment: str, n: int | None, last: str | None
    ) -> tuple[str, Page]:
        """The repository's name and one page of its tags."""
        cached, _ = await self._repository(caller, namespace, environment, fresh=True)
        repository = cached.repository
        return repository.name, paginate(repository.tags(), n, last)

    async def catalog(self, caller: Caller, n: int | None, last: str | None) -> Page:
        """One page of the names of the repositories the caller may read."""
        size = MAX_CATALOG_PAGE if n is None else min(n, MAX_CATALOG_PAGE)
        return await self.db.read(list_repositories, caller, size, last)

    async def blob(
        self, caller: Caller, namespace: str, environment: str, digest: str
    ) -> BlobLocation:
        """Where the blob ``digest`` of ``namespace/environment`` is (see the module
        docstring); :class:`BlobNotFound` when no image of the repository lists it or it is
        missing from storage."""
        check_digest(digest)
        cached, reused = await self._repository(caller, namespace, environment, fresh=False)
        if digest not in await self._blobs_of(cached):
            if reused:
                cached, _ = await self._repository(caller, namespace, environment, fresh=True)
            if digest not in await self._blobs_of(cached):
                raise BlobNotFound(
                    f"blob {digest} is not part of any image of {cached.repository.name}"
                )
        return await asyncio.to_thread(self._locate, digest)

    async def open(
        self, location: BlobLocation, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """The bytes ``[start, end)`` of a blob, read from storage chunk by chunk (opened
        before this returns, so a blob gone from storage raises here)."""
        try:
            chunks = await asyncio.to_thread(
                self.storage.stream,
                location.key,
                chunk_size=BLOB_CHUNK_SIZE,
                start=start,
                end=location.size if end is None else end,
            )
        except ArtifactNotFound:
            raise BlobNotFound(f"blob {location.digest} is missing from storage") from None
        return _send(chunks)

    # -- helpers --------------------------------------------------------------------------------

    async def _repository(
        self, caller: Caller, namespace: str, environment: str, *, fresh: bool
    ) -> tuple[_Cached, bool]:
        """The repository, and whether it came from the cache rather than the database."""
        key = (namespace, environment)
        cached = self._repositories.get(key)
        if (
            not fresh
            and cached is not None
            and time.monotonic() - cached.loaded_at < self.repository_ttl
        ):
            await self.db.read(check_repository_access, caller, namespace, environment)
            return cached, True
        repository = await self.db.read(find_repository, caller, namespace, environment)
        cached = _Cached(repository, time.monotonic())
        if len(self._repositories) >= self.max_repositories:
            self._repositories.clear()
        self._repositories[key] = cached
        return cached, False

    async def _blobs_of(self, cached: _Cached) -> frozenset[str]:
        if cached.blobs is None:
            blobs: set[str] = set()
            for digest in sorted(set(cached.repository.images.values())):
                with contextlib.suppress(ManifestNotFound):  # its own requests say so
                    blobs |= (await self._manifest(digest)).blobs
            cached.blobs = frozenset(blobs)
        return cached.blobs

    async def _manifest(self, digest: str) -> Manifest:
        manifest = self._manifests.get(digest)
        if manifest is not None:
            self._manifests.move_to_end(digest)
            return manifest
        manifest = await asyncio.to_thread(self._load_manifest, digest)
        self._manifests[digest] = manifest
        while len(self._manifests) > self.max_manifests:
            self._manifests.popitem(last=False)
        return manifest

    def _load_manifest(self, digest: str) -> Manifest:
        try:
            content = self.storage.get(blob_key(digest))
        except ArtifactNotFound:
            raise ManifestNotFound(
                f"manifest {digest} is missing from storage (removed outside Kiln?); rebuild "
                "the environment to make its image again"
            ) from None
        if layout.digest_of_bytes(content) != digest:
            raise StorageError(f"the stored manifest {digest} does not match its digest")
        try:
            document = json.loads(content)
        except ValueError as error:
            raise StorageError(f"the stored manifest {digest} is not JSON: {error}") from None
        return Manifest(
            digest=digest,
            media_type=str(document.get("mediaType") or OCI_MANIFEST),
            content=content,
            blobs=frozenset([digest, *_listed(document)]),
        )

    def _locate(self, digest: str) -> BlobLocation:
        key = blob_key(digest)
        try:
            size = self.storage.size(key)
        except ArtifactNotFound:
            raise BlobNotFound(f"blob {digest} is missing from storage") from None
        return BlobLocation(digest, key, size, self.storage.url(key, expires=self.url_lifetime))


def _listed(document: dict[str, Any]) -> Iterable[str]:
    """Digests of the descriptors a manifest (or index) lists."""
    descriptors: list[Any] = [document.get("config"), *document.get("layers", ())]
    descriptors += document.get("manifests", ())
    for descriptor in descriptors:
        if isinstance(descriptor, dict) and isinstance(descriptor.get("digest"), str):
            yield descriptor["digest"]


def _next_chunk(chunks: Generator[bytes, None, None]) -> bytes | None:
    return next(chunks, None)


async def _send(chunks: Generator[bytes, None, None]) -> AsyncIterator[bytes]:
    """The chunks of an opened storage stream, each read on a worker thread."""
    try:
        while (chunk := await asyncio.to_thread(_next_chunk, chunks)) is not None:
            yield chunk
    finally:
        with contextlib.suppress(ValueError):  # still being read on its thread: closed later
            chunks.close()
