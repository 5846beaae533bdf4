"""Reading the package index: channels, package search, and the packages a build installed.

Channels and package search (``GET /channel/``, ``GET /package/``) need no permission, as in
conda-store: they describe the channels the server builds from, not anyone's environments. The
packages of a build need ``environment::read`` on the build's environment.

Name filters, the same for package search and a build's packages (conda-store's):

- ``search``: a substring of the package name;
- ``exact``: with ``search``, any non-empty value makes ``search`` match the whole name (what
  conda-store's UI sends: ``?search=numpy&exact=true``); without ``search``, the value itself is
  the exact name;
- ``build``: a substring of a build string (``py311h...``); for package search, packages with
  at least one such build. conda-store's ``build`` filter referred to a column that does not
  exist; here it works.

Every filter is a literal: ``%``, ``_`` and ``\\`` match themselves, never as SQL wildcards.
Text sorts (``version`` included) compare bytes, as conda-store's did: ``1.10`` sorts before
``1.9``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, select
from sqlalchemy.orm import Session

from appliance.auth.rbac import Permission
from appliance.db.models import (
    CondaChannel,
    CondaPackage,
    CondaPackageBuild,
    build_conda_package_build,
)
from appliance.schemas import api as wire
from appliance.services.access import Caller
from appliance.services.build_filters import InvalidFilter
from appliance.services.build_queries import check_text, find_build
from appliance.services.listing import Listing, PageRequest, paginate

#: Sort keys of ``GET /channel/``.
CHANNEL_SORT_KEYS = ("name",)
#: Sort keys of ``GET /package/`` (all three by default) and its ``distinct_on`` keys.
PACKAGE_SORT_KEYS = ("channel", "name", "version")
DISTINCT_KEYS = ("channel", "name", "version")
#: Sort keys of ``GET /build/{id}/packages/`` (both by default).
BUILD_PACKAGE_SORT_KEYS = ("channel", "name")


@dataclass(frozen=True)
class PackageFilters:
    """``search``, ``exact`` and ``build`` (see the module docstring)."""

    search: str | None = None
    exact: str | None = None
    build: str | None = None


def _name_conditions(filters: PackageFilters) -> list[ColumnElement[bool]]:
    search = check_text("search", filters.search)
    exact = check_text("exact", filters.exact)
    if search:
        if exact:
            return [CondaPackage.name == search]
        return [CondaPackage.name.contains(search, autoescape=True)]
    if exact:
        return [CondaPackage.name == exact]
    return []


def list_channels(session: Session, page: PageRequest) -> Listing[wire.Channel]:
    """One page of the channels Kiln knows: indexed ones, and those builds installed from."""
    rows, count = paginate(
        session,
        select(CondaChannel.id, CondaChannel.name, CondaChannel.last_update),
        page,
        sort_columns={"name": [CondaChannel.name]},
        default_sort=["name"],
        tiebreak=CondaChannel.id,
    )
    items = [wire.Channel(id=r.id, name=r.name, last_update=r.last_update) for r in rows]
    return Listing(items=items, count=count, page=page.page, size=page.size)


_PACKAGE_COLUMNS = (
    CondaPackage.id,
    CondaPackage.name,
    CondaPackage.version,
    CondaPackage.license,
    CondaPackage.summary,
    CondaChannel.id.label("channel_id"),
    CondaChannel.name.label("channel_name"),
)


def _package(row: Any) -> wire.Package:
    return wire.Package(
        id=row.id,
        channel=wire.ChannelRef(id=row.channel_id, name=row.channel_name),
        name=row.name,
        version=row.version,
        license=row.license,
        summary=row.summary,
    )


def _check_distinct(distinct_on: Sequence[str]) -> list[str]:
    keys = list(dict.fromkeys(key for item in distinct_on for key in item.split(",") if key))
    unknown = [key for key in keys if key not in DISTINCT_KEYS]
    if unknown:
        raise InvalidFilter(
            f"distinct_on {', '.join(unknown)} is not allowed; allowed: {', '.join(DISTINCT_KEYS)}"
        )
    return keys


def search_packages(
    session: Session,
    filters: PackageFilters,
    page: PageRequest,
    distinct_on: Sequence[str] = (),
) -> Listing[wire.Package]:
    """``GET /package/``: one page of the package versions matching ``filters``.

    ``distinct_on`` (``channel``, ``name``, ``version``) keeps one package per distinct value
    of those fields (PostgreSQL's ``DISTINCT ON``, the one with the lowest id), then sorts and
    pages the result as asked.
    """
    keys = _check_distinct(distinct_on)
    conditions = _name_conditions(filters)
    build = check_text("build", filters.build)
    if build:
        conditions.append(
            exists(
                select(CondaPackageBuild.id).where(
                    CondaPackageBuild.package_id == CondaPackage.id,
                    CondaPackageBuild.build.contains(build, autoescape=True),
                )
            )
        )
    statement: Select[Any] = (
        select(*_PACKAGE_COLUMNS)
        .join(CondaChannel, CondaChannel.id == CondaPackage.channel_id)
        .where(*conditions)
    )
    fields: dict[str, Any] = {
        "channel": CondaChannel.name,
        "name": CondaPackage.name,
        "version": CondaPackage.version,
    }
    tiebreak: Any = CondaPackage.id
    if keys:
        distinct = [fields[key] for key in keys]
        unique = statement.distinct(*distinct).order_by(*distinct, CondaPackage.id).subquery()
        statement = select(unique)
        fields = {
            "channel": unique.c.channel_name,
            "name": unique.c.name,
            "version": unique.c.version,
        }
        tiebreak = unique.c.id
    rows, count = paginate(
        session,
        statement,
        page,
        sort_columns={key: [column] for key, column in fields.items()},
        default_sort=list(PACKAGE_SORT_KEYS),
        tiebreak=tiebreak,
    )
    return Listing(items=[_package(r) for r in rows], count=count, page=page.page, size=page.size)


def build_packages(
    session: Session, caller: Caller, build_id: int, filters: PackageFilters, page: PageRequest
) -> Listing[wire.Package]:
    """``GET /build/{id}/packages/``: one page of the conda packages installed in the build."""
    find_build(session, caller, build_id, Permission.ENVIRONMENT_READ)
    conditions = _name_conditions(filters)
    build = check_text("build", filters.build)
    if build:
        conditions.append(CondaPackageBuild.build.contains(build, autoescape=True))
    statement = (
        select(*_PACKAGE_COLUMNS)
        .select_from(build_conda_package_build)
        .join(
            CondaPackageBuild,
            CondaPackageBuild.id == build_conda_package_build.c.conda_package_build_id,
        )
        .join(CondaPackage, CondaPackage.id == CondaPackageBuild.package_id)
        .join(CondaChannel, CondaChannel.id == CondaPackage.channel_id)
        .where(build_conda_package_build.c.build_id == build_id, *conditions)
    )
    rows, count = paginate(
        session,
        statement,
        page,
        sort_columns={"channel": [CondaChannel.name], "name": [CondaPackage.name]},
        default_sort=list(BUILD_PACKAGE_SORT_KEYS),
        tiebreak=CondaPackageBuild.id,
    )
    return Listing(items=[_package(r) for r in rows], count=count, page=page.page, size=page.size)
