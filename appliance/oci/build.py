"""Assembling a build's image from a staged environment, and storing it.

:func:`assemble_image` is deterministic and touches no storage: the staged prefix (installed
for the in-image prefix), the base image and the description give layer files, a config and a
manifest whose bytes depend on nothing else. :func:`store_image` then publishes them
(:func:`appliance.oci.store.publish`), manifest last.

Layers are independent, so they are written by a small thread pool: compression and hashing
release the GIL, and the order of the result does not depend on which thread finished first.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from appliance.oci.errors import ImageError
from appliance.oci.image import (
    BaseImage,
    BuiltLayer,
    ImageDescription,
    image_config,
    image_manifest,
    serialise,
)
from appliance.oci.layers import (
    LayerContent,
    environment_layer,
    package_layer,
    plan_layers,
    read_packages,
)
from appliance.oci.layout import SCRATCH, blob_key, digest_of_bytes
from appliance.oci.store import Publication, publish
from appliance.storage.base import Storage

#: Threads writing layers at once.
LAYER_THREADS = min(4, os.cpu_count() or 1)


@dataclass(frozen=True)
class ImageSettings:
    """How images are built (the ``Images`` section and ``default_docker_base_image``)."""

    #: In-image prefix template with ``{name}`` and ``{namespace}``.
    prefix: str = "/opt/conda/envs/{name}"
    #: Base image reference, or ``scratch``.
    base_image: str = SCRATCH
    #: When set, called with the build request to choose the base image instead (conda-store
    #: accepted a callable ``default_docker_base_image``).
    base_image_for: Callable[[Any], str] | None = None
    #: Most layers of an image, the base's included.
    max_layers: int = 100
    #: Whether the build id becomes the ``kiln.build`` label.
    build_label: bool = False
    #: Seconds an unreferenced blob survives garbage collection.
    blob_grace_seconds: float = 3600.0

    def prefix_for(self, namespace: str, name: str) -> str:
        """The in-image prefix of ``namespace/name``."""
        return self.prefix.format(namespace=namespace, name=name)

    def base_for(self, request: Any) -> str:
        """The base image reference of the build ``request``."""
        if self.base_image_for is not None:
            return str(self.base_image_for(request))
        return self.base_image

    @property
    def grace(self) -> timedelta:
        return timedelta(seconds=self.blob_grace_seconds)


@dataclass(frozen=True)
class AssembledImage:
    """An image ready to store: its layers (files), config and manifest bytes."""

    layers: tuple[BuiltLayer, ...]
    config: bytes
    manifest: bytes
    base: BaseImage

    @property
    def manifest_digest(self) -> str:
        return digest_of_bytes(self.manifest)

    @property
    def config_digest(self) -> str:
        return digest_of_bytes(self.config)

    @property
    def manifest_key(self) -> str:
        return blob_key(self.manifest_digest)

    @property
    def size(self) -> int:
        """Compressed bytes of the image, base layers included."""
        base = sum(int(layer.get("size", 0)) for layer in self.base.layers)
        return base + sum(layer.blob.size for layer in self.layers)


def _programs(staged: Path) -> frozenset[str]:
    return frozenset(
        program
        for program in ("python", "bash", "sh")
        if os.access(staged / "bin" / program, os.X_OK)
    )


def assemble_image(
    *,
    staged: Path,
    description: ImageDescription,
    base: BaseImage,
    max_layers: int,
    workdir: Path,
    log: Callable[[str], None] | None = None,
    threads: int = LAYER_THREADS,
) -> AssembledImage:
    """Write the layers of the environment staged in ``staged`` into ``workdir`` and build
    the config and manifest. ``description.prefix`` must be the prefix ``staged`` was installed
    for. Raises :class:`ImageError` when the base leaves no room for the environment."""
    room = max_layers - len(base.layers) - 1  # the environment's own layer
    if room < 1:
        raise ImageError(
            f"the base image {base.reference!r} has {len(base.layers)} layers, which leaves no "
            f"room under Images.max_layers = {max_layers}: raise it or use a smaller base"
        )
    packages = read_packages(staged)
    plans = plan_layers(packages, max_layers=room)
    contents: list[tuple[str, LayerContent]] = [
        (plan.description, package_layer(staged, description.prefix, plan)) for plan in plans
    ]
    contents.append(
        (
            f"environment {description.namespace}/{description.environment}",
            environment_layer(staged, description.prefix, packages),
        )
    )
    workdir.mkdir(parents=True, exist_ok=True)

    def write(index: int) -> BuiltLayer:
        text, content = contents[index]
        blob = content.write(workdir / f"layer-{index:03d}.tar.gz")
        return BuiltLayer(blob=blob, description=text)

    with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="kiln-layer") as pool:
        layers = tuple(pool.map(write, range(len(contents))))
    if log is not None:
        grouped = sum(1 for plan in plans if len(plan.packages) > 1)
        log(
            f"{len(layers)} layers for {len(packages)} packages"
            + (" (small packages share a layer)" if grouped else "")
            + f", {sum(layer.blob.size for layer in layers) / 1e6:.1f} MB compressed"
        )
    described = ImageDescription(
        namespace=description.namespace,
        environment=description.environment,
        prefix=description.prefix,
        platform=description.platform,
        lockfile_sha256=description.lockfile_sha256,
        build_id=description.build_id,
        variables=description.variables,
        programs=_programs(staged),
    )
    config = serialise(image_config(base, described, layers))
    manifest = serialise(image_manifest(base, config, layers))
    return AssembledImage(layers=layers, config=config, manifest=manifest, base=base)


def store_image(
    storage: Storage, image: AssembledImage, *, refresh_after: timedelta
) -> Publication:
    """Publish ``image``: layers, then config, then the manifest (see
    :func:`appliance.oci.store.publish`). The base's layers are already stored."""
    blobs: Sequence[tuple[str, Path | bytes]] = [
        *((layer.blob.digest, layer.blob.path) for layer in image.layers),
        (image.config_digest, image.config),
        (image.manifest_digest, image.manifest),
    ]
    return publish(storage, blobs, refresh_after=refresh_after)
