"""``GET /api/v2/environment/``: the environment list with cursor (keyset) pagination.

Query parameters, conda-store's: the v1 filters (and ``jwt``), ``limit`` (default
``CondaStoreServer.max_page_size``, and capped at it: conda-store did not cap it), ``order``
(``asc`` or ``desc``, otherwise 400), ``sort_by`` (``namespace`` and/or ``name``, repeated or
comma-separated; anything else is a 400) and ``cursor`` (the previous response's ``cursor``,
URL-safe base64 JSON ``{last_id, last_value}``; a malformed one is a 400). The response's
``cursor`` is None on the last slice and ``count`` is the number of matches on all slices.
"""

from __future__ import annotations

from collections.abc import Sequence

from litestar import Router, get
from litestar.exceptions import ValidationException
from litestar.params import FromQuery

from appliance.api.dependencies import Context, Who
from appliance.api.envelope import CursorPage
from appliance.api.v1.environments import environment_filters
from appliance.schemas import api as wire
from appliance.services import environments
from appliance.services.environments import CursorRequest


def cursor_request(
    *,
    limit: int | None,
    sort_by: Sequence[str] | None,
    order: str | None,
    cursor: str | None,
    max_page_size: int,
) -> CursorRequest:
    """Checked v2 listing parameters; raises a 400 naming the bad parameter and what is
    allowed."""
    if limit is not None and limit < 1:
        raise ValidationException(f"limit must be 1 or more, not {limit}")
    keys = [key.strip() for item in sort_by or () for key in item.split(",") if key.strip()]
    allowed = environments.ENVIRONMENT_SORT_KEYS
    unknown = [key for key in keys if key not in allowed]
    if unknown:
        raise ValidationException(
            f"sort_by {', '.join(unknown)} is not a sort key here; allowed: {', '.join(allowed)}"
        )
    if order is not None and order not in ("asc", "desc"):
        raise ValidationException(f"order must be 'asc' or 'desc', not {order!r}")
    return CursorRequest(
        limit=min(limit or max_page_size, max_page_size),
        sort_by=tuple(dict.fromkeys(keys)),
        descending=order == "desc",
        cursor=cursor or None,
    )


@get(
    "/",
    operation_id="list_environments_v2",
    summary="Environments the caller can see, a slice at a time (cursor pagination)",
)
async def list_environments(
    context: Context,
    caller: Who,
    search: FromQuery[str | None] = None,
    namespace: FromQuery[str | None] = None,
    name: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    packages: FromQuery[list[str] | None] = None,
    artifact: FromQuery[str | None] = None,
    jwt: FromQuery[str | None] = None,
    limit: FromQuery[int | None] = None,
    sort_by: FromQuery[list[str] | None] = None,
    order: FromQuery[str | None] = None,
    cursor: FromQuery[str | None] = None,
) -> CursorPage[wire.Environment]:
    request = cursor_request(
        limit=limit,
        sort_by=sort_by,
        order=order,
        cursor=cursor,
        max_page_size=context.settings.max_page_size,
    )
    filters = environment_filters(
        context, search=search, namespace=namespace, name=name, status=status,
        packages=packages, artifact=artifact, jwt=jwt,
    )  # fmt: skip
    listing = await context.db.read(environments.list_environments_after, caller, filters, request)
    return CursorPage(data=listing.items, cursor=listing.cursor, count=listing.count)


router = Router(path="/environment", tags=["environments"], route_handlers=[list_environments])
