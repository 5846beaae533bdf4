"""Target platforms and the virtual packages each one is solved with.

Virtual packages (``__glibc``, ``__cuda``, ...) describe the machine an environment will run on.
Kiln never detects them from the build host: a worker on a GPU-less VM must still be able to build
a CUDA environment, and a worker with a newer glibc must not produce environments that fail on
older hosts. They come from configuration (``Builder.virtual_packages``, per platform) and from
the specification's ``variables``
(``CONDA_OVERRIDE_CUDA``, ``CONDA_OVERRIDE_GLIBC``, ``CONDA_OVERRIDE_OSX``, as conda and
conda-lock understand them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rattler import BuildString, GenericVirtualPackage, PackageName, Version

from appliance.common.errors import SpecificationError
from appliance.config.platforms import current_platform

#: Spec variables that override a virtual package, as in conda.
OVERRIDE_VARIABLES: Mapping[str, str] = {
    "CONDA_OVERRIDE_CUDA": "__cuda",
    "CONDA_OVERRIDE_GLIBC": "__glibc",
    "CONDA_OVERRIDE_OSX": "__osx",
}


def target_platforms(configured: Sequence[str]) -> tuple[str, ...]:
    """Platforms to solve for: the native one first, then the configured others, no duplicates.

    The native platform is always included because the worker installs it.
    """
    native = current_platform()
    ordered = [native, *(p for p in configured if p != native and p != "noarch")]
    return tuple(dict.fromkeys(ordered))


def _parse(entry: str) -> tuple[str, str, str]:
    name, _, rest = entry.partition("=")
    version, _, build = rest.partition("=")
    return name.strip(), (version.strip() or "0"), (build.strip() or "0")


def virtual_packages(
    platform: str,
    configured: Mapping[str, Sequence[str]],
    variables: Mapping[str, str],
) -> list[GenericVirtualPackage]:
    """Virtual packages for solving ``platform``.

    ``configured`` maps platforms to ``name[=version[=build]]`` strings. Override variables
    replace or add entries; an empty ``CONDA_OVERRIDE_CUDA`` removes ``__cuda`` (conda's meaning:
    no GPU).
    """
    entries = list(configured.get(platform, ()))
    chosen: dict[str, tuple[str, str]] = {}
    for entry in entries:
        name, version, build = _parse(entry)
        chosen[name] = (version, build)
    for variable, package in OVERRIDE_VARIABLES.items():
        if variable not in variables:
            continue
        value = str(variables[variable]).strip()
        if package == "__osx" and not platform.startswith("osx"):
            continue
        if package == "__glibc" and not platform.startswith("linux"):
            continue
        if not value:
            chosen.pop(package, None)
            continue
        try:
            Version(value)
        except Exception as error:  # rattler raises its own InvalidVersionError
            raise SpecificationError(
                f"variables.{variable}: {value!r} is not a version (expected e.g. '12.4'): {error}",
                field=f"variables.{variable}",
            ) from error
        chosen[package] = (value, "0")
    return [
        GenericVirtualPackage(PackageName(name), Version(version), BuildString(build))
        for name, (version, build) in sorted(chosen.items())
    ]
