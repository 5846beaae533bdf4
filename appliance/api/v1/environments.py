"""Environments: list (deprecated in conda-store, still what its client calls), get, switch the
current build or change the description, delete.

The filters and the ``jwt`` parameter are described in :mod:`appliance.services.environments`.
``jwt`` is a second token whose holder must be able to see an environment too; a token that
does not verify is a 400 naming the parameter (the caller's own credentials are fine).
"""

from __future__ import annotations

import msgspec
from litestar import Router, delete, get, put
from litestar.datastructures import ResponseHeader
from litestar.exceptions import ValidationException
from litestar.params import FromPath, FromQuery, JSONBody

from appliance.api.context import ApiContext
from appliance.api.dependencies import Context, Who
from appliance.api.envelope import Ack, Ok, Page
from appliance.api.pagination import as_sent, page_request
from appliance.api.security import predefined_claims
from appliance.auth.tokens import InvalidToken, verify
from appliance.schemas import api as wire
from appliance.services import environments
from appliance.services.access import Caller
from appliance.services.environments import EnvironmentFilters


class EnvironmentUpdate(msgspec.Struct, kw_only=True):
    """``PUT /environment/{ns}/{env}/``: the build to make current and/or a new description."""

    build_id: int | None = None
    description: str | None = None


def scope_of(jwt: str | None, context: ApiContext) -> Caller | None:
    """The caller the ``jwt`` parameter names (None without one); 400 when it does not verify."""
    if jwt is None:
        return None
    claims = predefined_claims(jwt, context)
    if claims is not None:
        return Caller(context.policy, claims, predefined=True)
    try:
        claims = verify(jwt, secret=context.tokens.secret, algorithm=context.tokens.algorithm)
    except InvalidToken as error:
        raise ValidationException(f"jwt: {error.message}") from None
    return Caller(context.policy, claims)


def environment_filters(
    context: ApiContext,
    *,
    search: str | None,
    namespace: str | None,
    name: str | None,
    status: str | None,
    packages: list[str] | None,
    artifact: str | None,
    jwt: str | None,
) -> EnvironmentFilters:
    """The filters of an environment listing from its query parameters."""
    return EnvironmentFilters(
        search=as_sent(search),
        namespace=as_sent(namespace),
        name=as_sent(name),
        status=as_sent(status),
        packages=tuple(value for value in map(as_sent, packages or ()) if value is not None),
        artifact=as_sent(artifact),
        scope=scope_of(as_sent(jwt), context),
    )


@get(
    "/",
    operation_id="list_environments",
    summary="Environments the caller can see (deprecated: use /api/v2/environment/)",
    response_headers=[ResponseHeader(name="Deprecation", value="true")],
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
    page: FromQuery[int] = 1,
    size: FromQuery[int | None] = None,
    sort_by: FromQuery[list[str] | None] = None,
    order: FromQuery[str | None] = None,
) -> Page[wire.Environment]:
    request = page_request(
        page=page,
        size=size,
        sort_by=sort_by,
        order=order,
        max_page_size=context.settings.max_page_size,
        sort_keys=environments.ENVIRONMENT_SORT_KEYS,
    )
    filters = environment_filters(
        context, search=search, namespace=namespace, name=name, status=status,
        packages=packages, artifact=artifact, jwt=jwt,
    )  # fmt: skip
    listing = await context.db.read(environments.list_environments, caller, filters, request)
    return Page(data=listing.items, page=listing.page, size=listing.size, count=listing.count)


@get(
    "/{namespace:str}/{environment:str}/",
    operation_id="get_environment",
    summary="One environment and its current build",
)
async def get_environment(
    context: Context, caller: Who, namespace: FromPath[str], environment: FromPath[str]
) -> Ok[wire.Environment]:
    found = await context.db.read(environments.get_environment, caller, namespace, environment)
    return Ok(data=found)


@put(
    "/{namespace:str}/{environment:str}/",
    operation_id="update_environment",
    summary="Switch an environment's current build and/or change its description",
)
async def update_environment(
    context: Context,
    caller: Who,
    namespace: FromPath[str],
    environment: FromPath[str],
    data: JSONBody[EnvironmentUpdate],
) -> Ok[wire.Environment]:
    updated = await context.db.run(
        environments.update_environment,
        caller,
        namespace,
        environment,
        build_id=data.build_id,
        description=data.description,
    )
    return Ok(data=updated, message=f"environment {namespace}/{environment} updated")


@delete(
    "/{namespace:str}/{environment:str}/", operation_id="delete_environment",
    summary="Delete an environment with all its builds", status_code=200,
)  # fmt: skip
async def delete_environment(
    context: Context, caller: Who, namespace: FromPath[str], environment: FromPath[str]
) -> Ack:
    await context.db.run(environments.delete_environment_as, caller, namespace, environment)
    return Ack(message=f"environment {namespace}/{environment} deleted")


router = Router(
    path="/environment",
    tags=["environments"],
    route_handlers=[list_environments, get_environment, update_environment, delete_environment],
)
