"""Builds: list, get, rebuild, cancel, delete, and the packages a build installed.

The artifacts of a build (log, lockfile, YAML, archive) are in :mod:`appliance.api.v1.artifacts`.

Build ids are routed as text (``{build_id:str}``) and converted by the handler's ``int``
parameter: a path like ``/build/abc/`` then gets a 400 saying an integer is expected, where an
``{build_id:int}`` route would answer a bare 404 (no route). Ids that name no build, including
zero, negative and out-of-range ones, are 404 "build N does not exist".
"""

from __future__ import annotations

from typing import Literal

from litestar import Router, delete, get, put
from litestar.params import FromPath, FromQuery

from appliance.api.dependencies import Context, Who
from appliance.api.envelope import Ack, Ok, Page
from appliance.api.pagination import Order, PageNumber, PageSize, as_sent, page_request
from appliance.schemas import api as wire
from appliance.services import build_queries
from appliance.services import packages as package_index

#: Sort keys, as the schema documents them (the services' ``*_SORT_KEYS``).
BuildSortKey = Literal["id", "started_on", "scheduled_on", "ended_on"]
BuildPackageSortKey = Literal["channel", "name"]


@get("/", operation_id="list_builds", summary="Builds of the environments the caller can see")
async def list_builds(
    context: Context,
    caller: Who,
    status: FromQuery[str | None] = None,
    packages: FromQuery[tuple[str, ...]] = (),
    artifact: FromQuery[str | None] = None,
    environment_id: FromQuery[int | None] = None,
    name: FromQuery[str | None] = None,
    namespace: FromQuery[str | None] = None,
    page: FromQuery[PageNumber] = 1,
    size: FromQuery[PageSize] = None,
    sort_by: FromQuery[list[BuildSortKey] | None] = None,
    order: FromQuery[Order] = None,
) -> Page[wire.Build]:
    """Deleted builds are listed too, with ``deleted_on`` set. ``packages`` may be repeated:
    builds that installed all of them. ``artifact``: builds that have an artifact of that
    type. ``name`` and ``namespace`` are the environment's and namespace's names."""
    request = page_request(
        page=page,
        size=size,
        sort_by=sort_by,
        order=order,
        max_page_size=context.settings.max_page_size,
        sort_keys=build_queries.BUILD_SORT_KEYS,
    )
    filters = build_queries.BuildFilters(
        status=as_sent(status),
        packages=tuple(value for value in map(as_sent, packages) if value is not None),
        artifact=as_sent(artifact),
        environment_id=environment_id,
        name=as_sent(name),
        namespace=as_sent(namespace),
    )
    listing = await context.db.read(build_queries.list_builds, caller, filters, request)
    return Page(data=listing.items, page=listing.page, size=listing.size, count=listing.count)


@get(
    "/{build_id:str}/",
    operation_id="get_build",
    summary="One build, with its specification and artifacts",
)
async def get_build(context: Context, caller: Who, build_id: FromPath[int]) -> Ok[wire.Build]:
    return Ok(data=await context.db.read(build_queries.get_build, caller, build_id))


@put(
    "/{build_id:str}/",
    operation_id="rebuild",
    summary="Queue a new build of the same specification",
)
async def rebuild(context: Context, caller: Who, build_id: FromPath[int]) -> Ok[wire.BuildQueued]:
    new_id = await context.db.run(build_queries.rebuild, caller, build_id, context.build_settings)
    return Ok(data=wire.BuildQueued(build_id=new_id), message="rebuild triggered")


@put(
    "/{build_id:str}/cancel/",
    operation_id="cancel_build",
    summary="Cancel a queued or running build",
)
async def cancel_build(context: Context, caller: Who, build_id: FromPath[int]) -> Ack:
    """A QUEUED build is CANCELED at once; a BUILDING one stops within seconds. Finished
    builds cannot be canceled (409)."""
    return Ack(message=await context.db.run(build_queries.cancel_build, caller, build_id))


@delete(
    "/{build_id:str}/", operation_id="delete_build",
    summary="Delete a finished build that is not its environment's current one",
    status_code=200,
)  # fmt: skip
async def delete_build(context: Context, caller: Who, build_id: FromPath[int]) -> Ack:
    await context.db.run(build_queries.delete_build_as, caller, build_id)
    return Ack(message=f"build {build_id} deleted")


@get(
    "/{build_id:str}/packages/",
    operation_id="list_build_packages",
    summary="Conda packages installed in a build",
)
async def list_build_packages(
    context: Context,
    caller: Who,
    build_id: FromPath[int],
    search: FromQuery[str | None] = None,
    exact: FromQuery[str | None] = None,
    build: FromQuery[str | None] = None,
    page: FromQuery[PageNumber] = 1,
    size: FromQuery[PageSize] = None,
    sort_by: FromQuery[list[BuildPackageSortKey] | None] = None,
    order: FromQuery[Order] = None,
) -> Page[wire.Package]:
    """``search``: a substring of the name (the whole name with ``exact``); ``build``: a
    substring of the build string."""
    request = page_request(
        page=page,
        size=size,
        sort_by=sort_by,
        order=order,
        max_page_size=context.settings.max_page_size,
        sort_keys=package_index.BUILD_PACKAGE_SORT_KEYS,
    )
    filters = package_index.PackageFilters(search=search, exact=exact, build=build)
    listing = await context.db.read(
        package_index.build_packages, caller, build_id, filters, request
    )
    return Page(data=listing.items, page=listing.page, size=listing.size, count=listing.count)


router = Router(
    path="/build",
    tags=["builds"],
    route_handlers=[
        list_builds,
        get_build,
        rebuild,
        cancel_build,
        delete_build,
        list_build_packages,
    ],
)
