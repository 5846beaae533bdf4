"""``Builder``: options of Kiln's build engine that conda-store did not have."""

from __future__ import annotations

import re
from typing import Any

from traitlets import Dict, Integer, TraitError, default, validate

from appliance.config.base import DEFAULT_TEXT, DataDirPath, KilnConfigurable
from appliance.config.platforms import KNOWN_PLATFORMS

_LINUX = ["__unix=0=0", "__linux=5.10=0", "__glibc=2.28=0"]

#: Virtual packages assumed for each platform unless configured otherwise.
DEFAULT_VIRTUAL_PACKAGES: dict[str, list[str]] = {
    "linux-64": [*_LINUX, "__archspec=1=x86_64"],
    "linux-aarch64": [*_LINUX, "__archspec=1=aarch64"],
    "linux-ppc64le": [*_LINUX, "__archspec=1=ppc64le"],
    "osx-64": ["__unix=0=0", "__osx=10.13=0", "__archspec=1=x86_64"],
    "osx-arm64": ["__unix=0=0", "__osx=11.0=0", "__archspec=1=arm64"],
    "win-64": ["__win=0=0", "__archspec=1=x86_64"],
}

_VIRTUAL_PACKAGE = re.compile(r"^__[a-z0-9_.-]+(=[^=\s]+){0,2}$")


class Builder(KilnConfigurable):
    """How Kiln's workers solve and install: caches, the assumed target system, size limits."""

    package_cache_directory = DataDirPath(
        help="""
        Shared conda package cache. Every build hardlinks its files from here, so it must be
        on the same file system as CondaStore.store_directory. A relative path is taken
        relative to the data dir.

        Example: c.Builder.package_cache_directory = "/opt/environments/.pkgs"
        """,
    ).tag(config=True, **{DEFAULT_TEXT: "<data dir>/pkgs"})

    @default("package_cache_directory")
    def _default_package_cache(self) -> str:
        return str(self.data_dir.package_cache)

    repodata_cache_directory = DataDirPath(
        help="""
        Cache of downloaded channel indexes (repodata), shared by all builds on a host; with
        it a worker can still solve when a channel is briefly unreachable.

        Example: c.Builder.repodata_cache_directory = "/var/cache/kiln/repodata"
        """,
    ).tag(config=True, **{DEFAULT_TEXT: "<data dir>/cache/repodata"})

    @default("repodata_cache_directory")
    def _default_repodata_cache(self) -> str:
        return str(self.data_dir.repodata_cache)

    virtual_packages = Dict(
        help="""
        Virtual packages ("__glibc", "__linux", "__archspec", "__osx", "__cuda", ...) the
        solver assumes the target system has, per platform, as "name=version=build" strings.
        They are explicit, not detected, so that a solve does not depend on the worker that
        happened to run it (its glibc, kernel and CPU would otherwise leak into the lockfile
        and into images that then fail on older hosts), and so that lockfiles for other
        platforms (CondaStore.conda_solve_platforms) can be solved at all. The defaults are
        conservative baselines: glibc 2.28, Linux 5.10, macOS 10.13/11.0, generic CPUs, no
        CUDA. A platform missing here is solved with no virtual packages.

        Example: c.Builder.virtual_packages.update(
            {"linux-64": ["__unix=0=0", "__linux=5.10=0", "__glibc=2.17=0",
                          "__archspec=1=x86_64", "__cuda=12.4=0"]})
        """,
    ).tag(config=True)

    @default("virtual_packages")
    def _default_virtual_packages(self) -> dict[str, list[str]]:
        return {platform: list(specs) for platform, specs in DEFAULT_VIRTUAL_PACKAGES.items()}

    @validate("virtual_packages")
    def _validate_virtual_packages(self, proposal: Any) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {}
        for platform, specs in proposal.value.items():
            if platform not in KNOWN_PLATFORMS:
                raise TraitError(
                    f"Builder.virtual_packages: unknown platform {platform!r}; "
                    f"allowed: {', '.join(KNOWN_PLATFORMS)}"
                )
            if isinstance(specs, str) or not isinstance(specs, list | tuple):
                raise TraitError(
                    f"Builder.virtual_packages[{platform!r}]: expected a list of "
                    "'name=version=build' strings"
                )
            for spec in specs:
                if not isinstance(spec, str) or not _VIRTUAL_PACKAGE.match(spec):
                    raise TraitError(
                        f"Builder.virtual_packages[{platform!r}]: {spec!r} is not a virtual "
                        "package such as '__glibc=2.28=0'"
                    )
            result[platform] = list(specs)
        return result

    def virtual_packages_for(self, platform: str) -> list[str]:
        """The virtual packages to solve ``platform`` with (``[]`` when none are configured)."""
        return list(self.virtual_packages.get(platform, []))

    max_specification_bytes = Integer(
        64 * 1024,
        min=1024,
        help="""
        Largest environment specification (or lockfile) accepted, in bytes; larger
        submissions are refused before they are parsed.

        Example: c.Builder.max_specification_bytes = 1024 * 1024
        """,
    ).tag(config=True)

    max_environment_name_length = Integer(
        64,
        min=1,
        max=200,
        help="""
        Longest environment name accepted, in characters. The name is part of directory
        names (whose limit is 255 bytes, with the build key prefix) and of image names.

        Example: c.Builder.max_environment_name_length = 64
        """,
    ).tag(config=True)
