"""Filters the environment and build listings share: what a build installed, which artifacts
it has (conda-store's ``packages`` and ``artifact`` query parameters)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import ColumnElement, SQLColumnExpression, exists, or_, select

from appliance.common.errors import KilnError
from appliance.db.enums import BuildArtifactType
from appliance.db.models import (
    BuildArtifact,
    BuildPipPackage,
    CondaPackage,
    CondaPackageBuild,
)
from appliance.db.models.builds import build_conda_package_build

#: Most ``packages`` one listing may filter on.
MAX_PACKAGE_FILTERS = 32

#: conda-store's artifact types Kiln never produces: accepted as filters, matching nothing.
FOREIGN_ARTIFACT_TYPES = frozenset(
    {"DOCKER_MANIFEST", "DOCKER_BLOB", "CONTAINER_REGISTRY", "CONSTRUCTOR_INSTALLER"}
)

_PIP_SEPARATORS = re.compile(r"[-_.]+")


class InvalidFilter(KilnError):
    """A listing filter has a value that is not allowed; the message says which and why."""

    code = "invalid_filter"


def artifact_type(text: str) -> BuildArtifactType | None:
    """The artifact type ``text`` names (any case); None for conda-store types Kiln never
    produces. Raises :class:`InvalidFilter` for anything else."""
    upper = text.upper()
    if upper in FOREIGN_ARTIFACT_TYPES:
        return None
    try:
        return BuildArtifactType(upper)
    except ValueError:
        allowed = [*BuildArtifactType, *sorted(FOREIGN_ARTIFACT_TYPES)]
        raise InvalidFilter(
            f"artifact {text!r} is not an artifact type; allowed: {', '.join(allowed)}"
        ) from None


def package_names(packages: Iterable[str]) -> list[str]:
    """The distinct, non-empty ``packages`` a listing filters on (at most
    :data:`MAX_PACKAGE_FILTERS`, else :class:`InvalidFilter`)."""
    wanted = [name for name in dict.fromkeys(packages) if name]
    if len(wanted) > MAX_PACKAGE_FILTERS:
        raise InvalidFilter(
            f"packages names {len(wanted)} packages; at most {MAX_PACKAGE_FILTERS} are allowed"
        )
    return wanted


def installed(package: str, build_id: SQLColumnExpression[int | None]) -> ColumnElement[bool]:
    """SQL: the build ``build_id`` installed ``package`` (a conda package name, or a pip
    project name in any spelling)."""
    conda = exists(
        select(build_conda_package_build.c.build_id)
        .join(
            CondaPackageBuild,
            CondaPackageBuild.id == build_conda_package_build.c.conda_package_build_id,
        )
        .join(CondaPackage, CondaPackage.id == CondaPackageBuild.package_id)
        .where(build_conda_package_build.c.build_id == build_id, CondaPackage.name == package)
    )
    pip = exists(
        select(BuildPipPackage.id).where(
            BuildPipPackage.build_id == build_id,
            BuildPipPackage.name == _PIP_SEPARATORS.sub("-", package).lower(),
        )
    )
    return or_(conda, pip)


def has_artifact(
    kind: BuildArtifactType, build_id: SQLColumnExpression[int | None]
) -> ColumnElement[bool]:
    """SQL: the build ``build_id`` has an artifact of type ``kind``."""
    return exists(
        select(BuildArtifact.id).where(
            BuildArtifact.build_id == build_id, BuildArtifact.artifact_type == kind
        )
    )
