"""The server's package policy, applied to a specification before it is built.

conda-store's rules, with its names (``CondaStore.conda_default_packages`` and friends), in its
order: an empty dependency list gets the defaults, missing *included* packages are added, and a
specification without every *required* package is refused naming the missing ones (conda-store's
message printed a boolean instead). The same three rules apply to the ``pip:`` section. Lockfiles
are exact by definition and are not changed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import rattler
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from appliance.common.errors import SpecificationError
from appliance.schemas.specification import EnvironmentSpec


@dataclass(frozen=True)
class PackagePolicy:
    """Package lists from ``CondaStore`` (``conda_*`` for conda, ``pypi_*`` for pip)."""

    conda_default: tuple[str, ...] = ()
    conda_included: tuple[str, ...] = ()
    conda_required: tuple[str, ...] = ()
    pypi_default: tuple[str, ...] = ()
    pypi_included: tuple[str, ...] = ()
    pypi_required: tuple[str, ...] = ()


def conda_name(spec: str) -> str:
    """The package name a conda match spec selects (``conda-forge::numpy >=1`` -> ``numpy``)."""
    name = rattler.MatchSpec(spec).name
    return name.normalized if name is not None else spec


def pip_name(entry: str) -> str | None:
    """The distribution a pip entry installs, normalized; None for options such as --index-url."""
    if entry.startswith("-"):
        return None
    try:
        return canonicalize_name(Requirement(entry).name)
    except InvalidRequirement:
        return None


def _apply(
    entries: Sequence[str],
    *,
    default: Sequence[str],
    included: Sequence[str],
    required: Sequence[str],
    name: Callable[[str], str | None],
    kind: str,
    option_prefix: str,
) -> tuple[str, ...]:
    result = list(entries) if entries else list(default)
    present = {name(entry) for entry in result}
    for package in included:
        if name(package) not in present:
            result.append(package)
            present.add(name(package))
    missing = [package for package in required if name(package) not in present]
    if missing:
        field = "dependencies" if kind == "conda" else "dependencies.pip"
        raise SpecificationError(
            f"{field}: this server requires {', '.join(missing)} in every environment "
            f"(CondaStore.{option_prefix}_required_packages); add "
            f"{'it' if len(missing) == 1 else 'them'} to the {kind} dependencies",
            field=field,
        )
    return tuple(result)


def apply_package_policy(spec: EnvironmentSpec, policy: PackagePolicy) -> EnvironmentSpec:
    """Return ``spec`` with the policy applied, or raise :class:`SpecificationError`."""
    dependencies = _apply(
        spec.dependencies,
        default=policy.conda_default,
        included=policy.conda_included,
        required=policy.conda_required,
        name=conda_name,
        kind="conda",
        option_prefix="conda",
    )
    pip = _apply(
        spec.pip,
        default=policy.pypi_default,
        included=policy.pypi_included,
        required=policy.pypi_required,
        name=pip_name,
        kind="pip",
        option_prefix="pypi",
    )
    if dependencies == spec.dependencies and pip == spec.pip:
        return spec
    return dataclasses.replace(spec, dependencies=dependencies, pip=pip)
