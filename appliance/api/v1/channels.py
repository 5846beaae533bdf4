"""The package index: channels (``/channel/``) and package search (``/package/``).

Neither needs a permission, as in conda-store: they describe the channels the server builds
from, not anyone's environments.
"""

from __future__ import annotations

from typing import Any, Literal

from litestar import get
from litestar.params import FromQuery

from appliance.api.dependencies import Context
from appliance.api.envelope import Page
from appliance.api.pagination import Order, PageNumber, PageSize, page_request
from appliance.schemas import api as wire
from appliance.services import packages as package_index

#: Sort and ``distinct_on`` keys of package search, as the schema documents them.
PackageField = Literal["channel", "name", "version"]


@get(
    "/channel/",
    operation_id="list_channels",
    summary="Conda channels Kiln knows (indexed, or installed from)",
    tags=["packages"],
)
async def list_channels(
    context: Context,
    page: FromQuery[PageNumber] = 1,
    size: FromQuery[PageSize] = None,
    sort_by: FromQuery[list[Literal["name"]] | None] = None,
    order: FromQuery[Order] = None,
) -> Page[wire.Channel]:
    request = page_request(
        page=page,
        size=size,
        sort_by=sort_by,
        order=order,
        max_page_size=context.settings.max_page_size,
        sort_keys=package_index.CHANNEL_SORT_KEYS,
    )
    listing = await context.db.read(package_index.list_channels, request)
    return Page(data=listing.items, page=listing.page, size=listing.size, count=listing.count)


@get(
    "/package/",
    operation_id="search_packages",
    summary="Search the package index",
    tags=["packages"],
)
async def search_packages(
    context: Context,
    search: FromQuery[str | None] = None,
    exact: FromQuery[str | None] = None,
    build: FromQuery[str | None] = None,
    distinct_on: FromQuery[list[PackageField] | None] = None,
    page: FromQuery[PageNumber] = 1,
    size: FromQuery[PageSize] = None,
    sort_by: FromQuery[list[PackageField] | None] = None,
    order: FromQuery[Order] = None,
) -> Page[wire.Package]:
    """``search``: a substring of the name (the whole name with ``exact``); ``build``: packages
    with a build string containing it; ``distinct_on`` (``channel``, ``name``, ``version``,
    repeatable): one package per distinct value of those fields."""
    request = page_request(
        page=page,
        size=size,
        sort_by=sort_by,
        order=order,
        max_page_size=context.settings.max_page_size,
        sort_keys=package_index.PACKAGE_SORT_KEYS,
    )
    filters = package_index.PackageFilters(search=search, exact=exact, build=build)
    listing = await context.db.read(
        package_index.search_packages, filters, request, tuple(distinct_on or ())
    )
    return Page(data=listing.items, page=listing.page, size=listing.size, count=listing.count)


HANDLERS: list[Any] = [list_channels, search_packages]
