"""Everything a build needs to know, as one immutable value.

The engine never reads configuration files or the environment: the delivery layer (CLI, worker)
turns the traitlets configuration into :class:`BuildSettings` (see :func:`from_config`) and passes
it in. That keeps the engine testable and free of process-global state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from appliance.builder.policy import PackagePolicy
from appliance.config.loader import KilnConfig
from appliance.config.platforms import current_platform
from appliance.oci.build import ImageSettings
from appliance.oci.layout import SCRATCH
from appliance.schemas.specification import SpecLimits

#: Build artifact type names (conda-store's ``BuildArtifactType``), as listed in
#: ``CondaStore.build_artifacts``. Stored kinds map to :class:`appliance.storage.ArtifactKind`.
LOGS = "LOGS"
LOCKFILE = "LOCKFILE"
YAML = "YAML"
CONDA_PACK = "CONDA_PACK"
OCI_IMAGE = "OCI_IMAGE"
DIRECTORY = "DIRECTORY"


@dataclass(frozen=True)
class Permissions:
    """Ownership and mode applied to a finished prefix (``CondaStore.default_uid/gid/permissions``).

    ``None`` leaves that aspect as the worker created it. ``mode`` is an octal string such as
    ``"775"``: directories and files with an execute bit get it as is, other files get it without
    the execute bits.
    """

    uid: int | None = None
    gid: int | None = None
    mode: str | None = None


@dataclass(frozen=True)
class BuildSettings:
    """Inputs of the engine that come from configuration, not from the specification."""

    store_directory: Path
    package_cache: Path
    repodata_cache: Path
    #: Template for the build prefix's parent, ``{store_directory}/{namespace}``.
    build_directory: str = "{store_directory}/{namespace}"
    #: Template for the current-build symlink, ``{store_directory}/{namespace}/envs/{name}``.
    environment_directory: str = "{store_directory}/{namespace}/envs/{name}"
    channel_alias: str = "https://conda.anaconda.org"
    allowed_channels: tuple[str, ...] = ()
    default_channels: tuple[str, ...] = ("conda-forge",)
    #: Platforms the lockfile covers; the native platform is always installed.
    solve_platforms: tuple[str, ...] = ()
    #: Virtual packages per platform (``name=version=build`` strings), never detected on the host.
    virtual_packages: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {
            "linux-64": ("__unix", "__linux=5.10", "__glibc=2.28", "__archspec=1=x86_64")
        }
    )
    #: Artifact type names to produce (LOGS, LOCKFILE and DIRECTORY are always produced); the
    #: default is ``CondaStore.build_artifacts``'s.
    artifacts: frozenset[str] = frozenset({LOGS, LOCKFILE, YAML, CONDA_PACK, OCI_IMAGE})
    permissions: Permissions = field(default_factory=Permissions)
    policy: PackagePolicy = field(default_factory=PackagePolicy)
    limits: SpecLimits = field(default_factory=SpecLimits)
    #: Seconds the solver may run before the build fails (``CondaStore.conda_max_solve_time``).
    max_solve_seconds: float = 300.0
    #: ``CondaStore.build_key_version`` (1, 2 or 3).
    build_key_version: int = 2
    #: Extra environment for subprocesses the build runs (pip); never the worker's own.
    subprocess_environment: Mapping[str, str] = field(default_factory=dict)
    #: How the OCI_IMAGE artifact is built (``Images`` and ``default_docker_base_image``).
    image: ImageSettings = field(default_factory=ImageSettings)

    def build_parent(self, namespace: str, name: str) -> Path:
        """Directory that holds the build prefixes of ``namespace``."""
        return Path(
            self.build_directory.format(
                store_directory=self.store_directory, namespace=namespace, name=name
            )
        )

    def build_prefix(self, namespace: str, name: str, build_key: str, key_version: int) -> Path:
        """Where a build's prefix lives: v3 build keys sit directly in the store (as in
        conda-store), the others under the namespace's build directory."""
        if key_version == 3:
            return self.store_directory / build_key
        return self.build_parent(namespace, name) / build_key

    def current_link(self, namespace: str, name: str, key_version: int) -> Path | None:
        """The ``envs/<name>`` link a build of this key version moves (None for v3: no link)."""
        return None if key_version == 3 else self.environment_link(namespace, name)

    def environment_link(self, namespace: str, name: str) -> Path:
        """Path of the symlink that points at the current build of ``namespace/name``."""
        return Path(
            self.environment_directory.format(
                store_directory=self.store_directory, namespace=namespace, name=name
            )
        )


def settings_from_config(config: KilnConfig) -> BuildSettings:
    """The engine's view of a loaded configuration (``CondaStore`` and ``Builder`` sections)."""
    store = config.conda_store
    builder = config.builder
    images = config.images
    base = store.default_docker_base_image
    platforms = tuple(store.conda_solve_platforms)
    return BuildSettings(
        store_directory=Path(store.store_directory),
        package_cache=Path(builder.package_cache_directory),
        repodata_cache=Path(builder.repodata_cache_directory),
        build_directory=store.build_directory,
        environment_directory=store.environment_directory,
        channel_alias=store.conda_channel_alias,
        allowed_channels=tuple(store.conda_allowed_channels),
        default_channels=tuple(store.conda_default_channels),
        solve_platforms=platforms,
        virtual_packages={
            platform: tuple(builder.virtual_packages_for(platform))
            for platform in dict.fromkeys((current_platform(), *platforms))
        },
        artifacts=frozenset(str(name) for name in store.build_artifacts),
        permissions=Permissions(
            uid=store.default_uid, gid=store.default_gid, mode=store.default_permissions
        ),
        limits=SpecLimits(
            max_bytes=builder.max_specification_bytes,
            max_name_length=builder.max_environment_name_length,
        ),
        policy=PackagePolicy(
            conda_default=tuple(store.conda_default_packages),
            conda_included=tuple(store.conda_included_packages),
            conda_required=tuple(store.conda_required_packages),
            pypi_default=tuple(store.pypi_default_packages),
            pypi_included=tuple(store.pypi_included_packages),
            pypi_required=tuple(store.pypi_required_packages),
        ),
        max_solve_seconds=float(store.conda_max_solve_time),
        build_key_version=int(store.build_key_version),
        image=ImageSettings(
            prefix=images.image_prefix,
            base_image=base if isinstance(base, str) else SCRATCH,
            base_image_for=None if isinstance(base, str) else base,
            max_layers=int(images.max_layers),
            build_label=bool(images.build_label),
            blob_grace_seconds=float(images.blob_grace_period),
        ),
    )
