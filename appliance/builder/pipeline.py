"""One build, start to finish: prepare, solve (or read the lockfile), lock, install, pip,
finish the prefix, export, pack, image, and finally make it the current environment.

The pipeline is the only place that knows the order of the steps; each step lives in its own
module. Artifacts are stored as soon as they exist (the log line by line), so a user watching a
build sees progress and a failed build still has its log and, when the solve succeeded, its
lockfile. Everything that can fail happens before the ``envs/<name>`` symlink moves.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rattler import Gateway, PrefixRecord, RepoDataRecord

from appliance.builder import activate, export, install, lock, pack, pip
from appliance.builder.buildlog import BuildLog, LogSink, StepTiming
from appliance.builder.platforms import target_platforms
from appliance.builder.policy import apply_package_policy
from appliance.builder.settings import (
    CONDA_PACK,
    DIRECTORY,
    LOCKFILE,
    LOGS,
    OCI_IMAGE,
    YAML,
    BuildSettings,
)
from appliance.builder.solve import solve
from appliance.common.errors import BuildError, KilnError
from appliance.config.platforms import current_platform
from appliance.oci.build import assemble_image, store_image
from appliance.oci.image import ImageDescription
from appliance.oci.layers import carry_files
from appliance.oci.store import load_base_image
from appliance.schemas.channels import check_allowed_channels, normalize_channel
from appliance.schemas.specification import EnvironmentSpec, LockfileSpec
from appliance.storage.base import ArtifactKind, Storage

#: Longest build prefix path (conda-store's rule): longer paths break shebangs and placeholders.
MAX_PREFIX_LENGTH = 255


@dataclass(frozen=True)
class BuildRequest:
    """What to build and under which identity."""

    namespace: str
    specification: EnvironmentSpec | LockfileSpec
    build_id: int
    scheduled_on: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: ``CondaStore.build_key_version``: 1, 2 (default) or 3, as in conda-store.
    key_version: int = 2

    @property
    def name(self) -> str:
        return self.specification.name

    @property
    def build_key(self) -> str:
        """The build's directory name and artifact key, in conda-store's formats.

        v1 ``<sha256>-<YYYYMMDD-HHMMSS-ffffff>-<id>-<name>``; v2 ``<sha256[:8]>-<unix time>-<id>-
        <name>``; v3 the first 32 hex digits of sha256(namespace, spec hash, time, id), which
        keeps paths short (v3 builds sit directly in the store and get no ``envs/`` link).
        """
        digest = self.specification.sha256()
        if self.key_version == 1:
            stamp = self.scheduled_on.strftime("%Y%m%d-%H%M%S-%f")
            return f"{digest}-{stamp}-{self.build_id}-{self.name}"
        if self.key_version == 3:
            material = f"{self.namespace}{digest}{self.scheduled_on.isoformat()}{self.build_id}"
            return hashlib.sha256(material.encode()).hexdigest()[:32]
        seconds = int(self.scheduled_on.timestamp())
        return f"{digest[:8]}-{seconds}-{self.build_id}-{self.name}"


@dataclass(frozen=True)
class _Resolved:
    """What the solve (or the lockfile) decided: records per platform and pip pins."""

    channels: tuple[str, ...]
    records: dict[str, list[RepoDataRecord]]
    pip_locked: list[lock.PipLock]


@dataclass(frozen=True)
class InstalledPackage:
    """A package in a finished build, as the API and UI list it."""

    name: str
    version: str
    build: str
    channel: str
    manager: str = "conda"
    sha256: str | None = None
    md5: str | None = None
    subdir: str | None = None
    filename: str | None = None
    build_number: int = 0
    depends: tuple[str, ...] = ()
    constrains: tuple[str, ...] = ()
    size: int | None = None
    license: str | None = None


@dataclass
class BuildResult:
    """The outcome of a successful build."""

    build_key: str
    prefix: Path
    #: The ``envs/<name>`` symlink now pointing at this build (None with v3 build keys).
    environment_link: Path | None
    platform: str
    packages: list[InstalledPackage]
    size: int
    #: Where each artifact produced is, by artifact type name (``LOCKFILE`` -> storage key;
    #: ``DIRECTORY`` -> the prefix path, as conda-store records it).
    artifacts: dict[str, str]
    steps: list[StepTiming]


def _records_to_packages(
    records: list[PrefixRecord], pip_locks: list[lock.PipLock]
) -> list[InstalledPackage]:
    packages = [
        InstalledPackage(
            name=r.name.normalized,
            version=str(r.version),
            build=str(r.build),
            channel=str(r.channel),
            sha256=r.sha256.hex() if r.sha256 else None,
            md5=r.md5.hex() if r.md5 else None,
            subdir=str(r.subdir),
            filename=r.file_name,
            build_number=int(r.build_number),
            depends=tuple(r.depends),
            constrains=tuple(r.constrains),
            size=r.size,
            license=r.license,
        )
        for r in records
    ]
    packages += [
        InstalledPackage(
            name=p.name,
            version=p.version,
            build="pypi",
            channel="pypi",
            manager="pip",
            sha256=p.sha256,
        )
        for p in pip_locks
    ]
    return packages


def solve_channels(spec: EnvironmentSpec, settings: BuildSettings) -> tuple[str, ...]:
    """Channels to solve against, normalized, in priority order.

    The spec's ``channels`` (or ``conda_default_channels`` when it lists none), then any channel
    named only by a ``channel::package`` dependency, which the solver must be able to read too.
    """
    alias = settings.channel_alias
    written = list(spec.channels or settings.default_channels)
    written += [
        ref.channel for ref in spec.channel_references() if ref.field.startswith("dependencies")
    ]
    channels = [normalize_channel(c, channel_alias=alias) for c in written]
    return tuple(dict.fromkeys(channels))


def prepare_specification(
    spec: EnvironmentSpec | LockfileSpec, settings: BuildSettings
) -> EnvironmentSpec | LockfileSpec:
    """Apply the server's policy to ``spec`` before anything is queued or written.

    Applies the package policy (default, included and required packages), then checks the
    channel policy (``conda_allowed_channels``) and that every channel can be normalized.
    Returns the specification to build; raises :class:`SpecificationError` naming the offending
    field. Lockfiles are exact and only checked for readability by the build.
    """
    if isinstance(spec, LockfileSpec):
        return spec
    spec = apply_package_policy(spec, settings.policy)
    check_allowed_channels(
        spec, allowed=settings.allowed_channels, channel_alias=settings.channel_alias
    )
    solve_channels(spec, settings)
    return spec


@dataclass(frozen=True)
class _ImageInputs:
    """What the image step takes from the build before it."""

    records: list[RepoDataRecord]
    prefix: Path
    platform: str
    variables: Mapping[str, str]
    lockfile: str
    with_pip: bool


class StorageLogSink:
    """Log sink that appends to the LOGS artifact while the build runs.

    Backends with a cheap append (local files) get every write at once, so a live view is
    immediate. Others (S3 rewrites the whole object per append) get batches: at most one append
    per ``interval`` seconds, and everything pending on :meth:`flush` (called per step and at the
    end of the build).

    The artifact starts empty, unless ``keep`` is set: then it keeps what it holds (the log of
    an earlier run of the same build) and this run's lines are appended after it.
    """

    def __init__(
        self, storage: Storage, key: str, *, interval: float = 1.0, keep: bool = False
    ) -> None:
        self._storage = storage
        self._key = key
        self._interval = 0.0 if storage.appends_cheaply else interval
        self._pending: list[str] = []
        self._last_flush = time.monotonic()
        if not keep:
            storage.put(key, b"")

    def __call__(self, text: str) -> None:
        self._pending.append(text)
        if time.monotonic() - self._last_flush >= self._interval:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            data = "".join(self._pending).encode()
            self._pending.clear()
            self._storage.append(self._key, data)
        self._last_flush = time.monotonic()


class Builder:
    """Runs builds with one set of settings, one storage and one repodata gateway.

    A worker keeps one Builder for its lifetime so that repodata is read once and shared by all
    builds; ``kiln build`` makes one per invocation.
    """

    def __init__(self, settings: BuildSettings, storage: Storage, gateway: Gateway) -> None:
        self.settings = settings
        self.storage = storage
        self.gateway = gateway

    def prepare(self, spec: EnvironmentSpec | LockfileSpec) -> EnvironmentSpec | LockfileSpec:
        """:func:`prepare_specification` with this builder's settings."""
        return prepare_specification(spec, self.settings)

    def _channels(self, spec: EnvironmentSpec) -> tuple[str, ...]:
        return solve_channels(spec, self.settings)

    async def build(
        self,
        request: BuildRequest,
        *,
        echo: LogSink | None = None,
        command: str = "kiln build",
        steps: list[StepTiming] | None = None,
        continues: str | None = None,
    ) -> BuildResult:
        """Build ``request``; on failure raise a :class:`KilnError` whose message is the reason.

        Whatever happens, the LOGS artifact holds the whole story, and a failed or cancelled
        build leaves no prefix behind and never becomes current.

        ``steps``, when given, receives each step's timing as the step starts, so the caller
        has them whatever the outcome (a :class:`BuildResult` carries them only on success).
        ``continues`` marks another run of a build whose earlier run was interrupted (a retry
        after its worker died): the LOGS artifact keeps the earlier run's lines, and this run's
        follow a ``--- <continues> ---`` separator, e.g. ``--- attempt 2 (previous attempt
        interrupted: ...) ---``. Without it the log starts empty.
        """
        key = request.build_key
        log_key = ArtifactKind.LOGS.storage_key(key)
        sink = StorageLogSink(self.storage, log_key, keep=continues is not None)
        log = BuildLog(sinks=[sink], steps=steps if steps is not None else [])
        if echo is not None:
            log.sinks.append(echo)
        if continues is not None:
            log.write(f"--- {continues} ---")
        prefix = self.settings.build_prefix(
            request.namespace, request.name, key, request.key_version
        )
        log.write(f"build {request.build_id} of {request.namespace}/{request.name} (key {key})")
        if os.path.lexists(prefix):
            # Never touch what another build made: failure cleanup below removes the prefix.
            message = f"the build prefix {prefix} already exists; a build key must be new"
            log.write(f"build failed: {message}")
            log.flush()
            raise BuildError(message)
        try:
            result = await self._run(request, prefix, log, command)
        except KilnError as error:
            shutil.rmtree(prefix, ignore_errors=True)
            log.write(f"build failed: {error.message}")
            raise
        except asyncio.CancelledError:
            shutil.rmtree(prefix, ignore_errors=True)
            log.write("build canceled")
            raise
        except Exception as error:
            shutil.rmtree(prefix, ignore_errors=True)
            log.write(f"build failed with an unexpected error: {type(error).__name__}: {error}")
            raise BuildError(f"unexpected error: {type(error).__name__}: {error}") from error
        finally:
            log.flush()
        result.artifacts[LOGS] = log_key
        log.write(f"build {request.build_id} completed")
        log.flush()
        return result

    async def _resolve(
        self, spec: EnvironmentSpec | LockfileSpec, platform: str, log: BuildLog
    ) -> _Resolved:
        """Records to install, from the solver or from the lockfile."""
        settings = self.settings
        if isinstance(spec, LockfileSpec):
            with log.step("lockfile"):
                locked = lock.read_lockfile(spec.lockfile, platform)
                log.write(f"{len(locked.records)} conda packages locked for {platform}")
                return _Resolved(
                    channels=tuple(locked.channels),
                    records={platform: locked.records},
                    pip_locked=locked.pip,
                )
        check_allowed_channels(
            spec, allowed=settings.allowed_channels, channel_alias=settings.channel_alias
        )
        channels = self._channels(spec)
        with log.step("solve"):
            solution = await solve(
                specs=spec.solver_dependencies(channel_alias=settings.channel_alias),
                channels=channels,
                platforms=target_platforms(settings.solve_platforms),
                virtual_packages_by_platform=settings.virtual_packages,
                variables=spec.variables,
                gateway=self.gateway,
                log=log,
                timeout_seconds=settings.max_solve_seconds,
            )
        return _Resolved(channels=channels, records=dict(solution.records), pip_locked=[])

    async def _run(
        self, request: BuildRequest, prefix: Path, log: BuildLog, command: str
    ) -> BuildResult:
        settings = self.settings
        spec = request.specification
        key = request.build_key
        platform = current_platform()
        link = settings.current_link(request.namespace, request.name, request.key_version)
        artifacts: dict[str, str] = {}
        with log.step("prepare"):
            self._prepare(prefix, log)
        resolved = await self._resolve(spec, platform, log)
        with log.step("lock"):
            lockfile_text = lock.render_lockfile(
                records=resolved.records,
                pip=resolved.pip_locked,
                channels=resolved.channels,
                spec_sha256=spec.sha256(),
            )
            artifacts[LOCKFILE] = self._store_text(ArtifactKind.LOCKFILE, key, lockfile_text)
        with log.step("install"):
            await install.install_prefix(
                resolved.records[platform], prefix, package_cache=settings.package_cache, log=log
            )
        pip_requirements = spec.pip if isinstance(spec, EnvironmentSpec) else ()
        pip_installed: list[lock.PipLock] = []
        if pip_requirements or resolved.pip_locked:
            with log.step("pip"):
                pip_installed = await pip.install_pip_requirements(
                    prefix,
                    pip_requirements,
                    platform=platform,
                    log=log,
                    environment=settings.subprocess_environment,
                    locked=resolved.pip_locked,
                )
            if pip_requirements:
                # The lockfile now records what pip really installed, with URLs and hashes.
                lockfile_text = lock.render_lockfile(
                    records=resolved.records,
                    pip=pip_installed,
                    channels=resolved.channels,
                    spec_sha256=spec.sha256(),
                )
                self._store_text(ArtifactKind.LOCKFILE, key, lockfile_text)
        variables: Mapping[str, str] = spec.variables if isinstance(spec, EnvironmentSpec) else {}
        with log.step("finalize"):
            installed = await asyncio.to_thread(self._finalize, prefix, variables, command)
            size = await asyncio.to_thread(install.prefix_size, prefix)
            log.write(f"{len(installed)} conda packages, {size / 1e6:.1f} MB")
        if YAML in settings.artifacts:
            with log.step("export"):
                text = export.pinned_environment(
                    name=request.name,
                    channels=resolved.channels,
                    records=installed,
                    pip=pip_installed,
                    variables=variables,
                    description=spec.description,
                )
                artifacts[YAML] = self._store_text(ArtifactKind.YAML, key, text)
        if CONDA_PACK in settings.artifacts:
            with log.step("conda-pack"):
                artifacts[CONDA_PACK] = await asyncio.to_thread(self._pack, prefix, key)
        if OCI_IMAGE in settings.artifacts:
            with log.step("image"):
                artifacts[OCI_IMAGE] = await self._image(
                    request,
                    _ImageInputs(
                        records=resolved.records[platform],
                        prefix=prefix,
                        platform=platform,
                        variables=variables,
                        lockfile=lockfile_text,
                        with_pip=bool(pip_installed or resolved.pip_locked),
                    ),
                    log,
                )
        if link is not None:
            with log.step("activate"):
                activate.point_environment_at(link, prefix)
                log.write(f"{link} -> {prefix}")
        artifacts[DIRECTORY] = str(prefix)
        return BuildResult(
            build_key=key,
            prefix=prefix,
            environment_link=link,
            platform=platform,
            packages=_records_to_packages(installed, pip_installed),
            size=size,
            artifacts=artifacts,
            steps=list(log.steps),
        )

    def _prepare(self, prefix: Path, log: BuildLog) -> None:
        if len(str(prefix)) > MAX_PREFIX_LENGTH:
            raise BuildError(
                f"the build prefix {prefix} is {len(str(prefix))} characters long; the limit is "
                f"{MAX_PREFIX_LENGTH}: use a shorter CondaStore.store_directory or environment name"
            )
        try:
            prefix.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=prefix.parent):
                pass
        except OSError as error:
            raise BuildError(
                f"the store directory {prefix.parent} is not writable: {error.strerror or error}"
            ) from error
        free = shutil.disk_usage(prefix.parent).free
        log.write(f"prefix {prefix} ({free / 1e9:.1f} GB free)")

    def _finalize(
        self, prefix: Path, variables: Mapping[str, str], command: str
    ) -> list[PrefixRecord]:
        records = install.installed_records(prefix)
        activate.write_variables(prefix, variables)
        activate.write_history(prefix, records, command)
        activate.make_metadata_readable(prefix)
        activate.apply_permissions(prefix, self.settings.permissions)
        return records

    async def _image(self, request: BuildRequest, inputs: _ImageInputs, log: BuildLog) -> str:
        """Build and store the build's OCI image; returns its manifest's storage key.

        The environment is installed a second time, for the in-image prefix
        (``Images.image_prefix``), into a scratch directory next to the build: hardlinks from
        the package cache, with every prefix in the packages' files rewritten for the image.
        Files pip installed are copied from the build with the prefix rewritten in text files.
        The scratch directory is removed whatever happens.
        """
        image = self.settings.image
        in_image = image.prefix_for(request.namespace, request.name)
        if len(in_image) > MAX_PREFIX_LENGTH:
            raise BuildError(
                f"the in-image prefix {in_image} is longer than {MAX_PREFIX_LENGTH} characters: "
                "shorten Images.image_prefix or the environment name"
            )
        base = await asyncio.to_thread(
            load_base_image, self.storage, image.base_for(request), inputs.platform
        )
        log.write(f"image prefix {in_image}, base image {base.reference}")
        with tempfile.TemporaryDirectory(prefix="kiln-image-", dir=inputs.prefix.parent) as tmp:
            scratch = Path(tmp)
            staged = scratch / "environment"
            await install.install_prefix(
                inputs.records,
                staged,
                package_cache=self.settings.package_cache,
                log=BuildLog(),
                target_prefix=in_image,
            )
            if inputs.with_pip:
                carried = await asyncio.to_thread(carry_files, inputs.prefix, staged, in_image)
                log.write(f"{carried} files installed by pip copied into the image")
            activate.write_variables(staged, inputs.variables)
            description = ImageDescription(
                namespace=request.namespace,
                environment=request.name,
                prefix=in_image,
                platform=inputs.platform,
                lockfile_sha256=hashlib.sha256(inputs.lockfile.encode()).hexdigest(),
                build_id=request.build_id if image.build_label else None,
                variables=inputs.variables,
            )
            assembled = await asyncio.to_thread(
                assemble_image,
                staged=staged,
                description=description,
                base=base,
                max_layers=image.max_layers,
                workdir=scratch / "layers",
                log=log.write,
            )
            published = await asyncio.to_thread(
                store_image, self.storage, assembled, refresh_after=image.grace / 2
            )
        log.write(
            f"stored {published.uploaded} new blobs ({published.uploaded_bytes / 1e6:.1f} MB), "
            f"{published.reused} already stored; image {assembled.manifest_digest} "
            f"({assembled.size / 1e6:.1f} MB compressed)"
        )
        return assembled.manifest_key

    def _store_text(self, kind: ArtifactKind, build_key: str, text: str) -> str:
        storage_key = kind.storage_key(build_key)
        self.storage.put(storage_key, text.encode())
        return storage_key

    def _pack(self, prefix: Path, build_key: str) -> str:
        storage_key = ArtifactKind.CONDA_PACK.storage_key(build_key)
        with tempfile.TemporaryDirectory(prefix="kiln-pack-", dir=prefix.parent) as scratch:
            archive = pack.pack_prefix(prefix, Path(scratch) / "environment.tar.gz")
            self.storage.put_file(storage_key, archive)
        return storage_key
