"""``kiln image``: base images for image builds, and images out of Kiln without the registry.

``kiln image import FILE [--reference NAME:TAG]`` stores an image made elsewhere (an OCI image
layout directory or tarball, or a ``docker save`` archive) so that
``CondaStore.default_docker_base_image = "NAME:TAG"`` can name it; Kiln never pulls from a
registry. ``kiln image list`` shows what was imported. ``kiln image export MANIFEST DIR``
writes a stored image (a build's OCI_IMAGE, by manifest digest or imported name) as an OCI
image layout, for ``skopeo copy oci:DIR:TAG ...`` or ``umoci unpack``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``kiln image`` and its subcommands to the top-level ``subparsers``."""
    image = subparsers.add_parser(
        "image",
        help="import base images for image builds; export stored images",
        description="OCI images in Kiln's storage: base images for builds, exports.",
    )
    actions = image.add_subparsers(dest="image_command", metavar="ACTION", required=True)

    imports = actions.add_parser(
        "import",
        parents=[common],
        help="import a base image from an OCI layout or docker-archive",
        description=(
            "Store the image in FILE (an OCI image layout directory, an OCI archive tarball, or "
            "a docker-archive tarball from `docker save`) in Kiln's storage, for "
            "CondaStore.default_docker_base_image to name. Made elsewhere with e.g. `skopeo "
            "copy docker://debian:bookworm-slim oci-archive:debian.tar` or `docker save`. "
            "Only this host's platform is imported from a multi-platform image."
        ),
    )
    imports.add_argument("file", type=Path, metavar="FILE", help="the image to import")
    imports.add_argument(
        "--reference",
        metavar="NAME:TAG",
        help="name to import it as (default: the name recorded in FILE)",
    )
    imports.set_defaults(func=run_import)

    listing = actions.add_parser(
        "list",
        parents=[common],
        help="list imported base images",
        description="List the images imported with `kiln image import` and their digests.",
    )
    listing.set_defaults(func=run_list)

    export = actions.add_parser(
        "export",
        parents=[common],
        help="write a stored image as an OCI image layout directory",
        description=(
            "Write a stored image into DIR as an OCI image layout (for `skopeo copy "
            "oci:DIR:TAG ...` or `umoci unpack --image DIR:TAG`). IMAGE is a manifest digest "
            "(sha256:..., as a build's image artifact records it) or an imported name."
        ),
    )
    export.add_argument("image", metavar="IMAGE", help="manifest digest or imported name")
    export.add_argument("directory", type=Path, metavar="DIR", help="the layout to write")
    export.add_argument("--tag", default="latest", help="tag inside the layout (default latest)")
    export.set_defaults(func=run_export)


def _storage(args: argparse.Namespace) -> Any:
    from appliance.config import load_config_from_args
    from appliance.storage.factory import open_storage

    config = load_config_from_args(args)
    storage = open_storage(config.storage)
    storage.check()
    return storage


def run_import(args: argparse.Namespace) -> int:
    from appliance.oci.importer import import_image

    imported = import_image(_storage(args), args.file, reference=args.reference)
    print(f"Imported {imported.reference} ({imported.manifest_digest})")
    print(
        f"  {imported.layers} layers, {imported.size / 1e6:.1f} MB compressed, "
        f"{imported.uploaded} new blobs stored"
    )
    print(f'  use it with: c.CondaStore.default_docker_base_image = "{imported.reference}"')
    return 0


def run_list(args: argparse.Namespace) -> int:
    from appliance.oci.store import references

    found = references(_storage(args))
    if not found:
        print("No images imported (kiln image import FILE --reference NAME:TAG).")
        return 0
    width = max(len(name) for name in found)
    for name, digest in sorted(found.items()):
        print(f"{name:<{width}}  {digest}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from appliance.common.errors import ArtifactNotFound
    from appliance.oci.export import export_layout
    from appliance.oci.layout import InvalidDigest, check_digest
    from appliance.oci.store import resolve_reference

    storage = _storage(args)
    try:
        digest = check_digest(args.image)
    except InvalidDigest:
        try:
            resolved = resolve_reference(storage, args.image)
        except ValueError as error:
            raise ArtifactNotFound(f"{args.image!r} is not a digest or image name") from error
        if resolved is None:
            raise ArtifactNotFound(f"no imported image is named {args.image!r}") from None
        digest = resolved
    export_layout(storage, digest, args.directory, tag=args.tag)
    print(f"Wrote {digest} to {args.directory} (tag {args.tag})")
    return 0
