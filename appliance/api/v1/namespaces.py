"""Namespaces: list, get, create, update metadata and role mappings (v1 and v2), delete."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

import msgspec
from litestar import Router, delete, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody

from appliance.api.context import ApiContext
from appliance.api.dependencies import Context, Who
from appliance.api.envelope import Ack, Ok, Page
from appliance.api.pagination import Order, PageNumber, PageSize, page_request
from appliance.schemas import api as wire
from appliance.services import namespaces

_P = ParamSpec("_P")
_T = TypeVar("_T")


class NamespaceUpdate(msgspec.Struct, kw_only=True):
    """``PUT /namespace/{ns}/``: replace metadata and/or all v1 role mappings."""

    metadata: dict[str, Any] | None = None
    role_mappings: dict[str, list[str]] | None = None


class RoleGrantRequest(msgspec.Struct, kw_only=True):
    other_namespace: str
    role: str


class RoleGrantRemoval(msgspec.Struct, kw_only=True):
    other_namespace: str


async def _change(
    context: ApiContext,
    work: Callable[Concatenate[Any, _P], _T],
    *args: _P.args,
    **kwargs: _P.kwargs,
) -> _T:
    """Run a change to a namespace. Its role mappings may have changed, so callers resolved
    before it are resolved again (appliance.services.access.AccessCache)."""
    result = await context.db.run(work, *args, **kwargs)
    context.access_cache.clear()
    return result


@get("/", operation_id="list_namespaces", summary="Namespaces the caller can see")
async def list_namespaces(
    context: Context,
    caller: Who,
    page: FromQuery[PageNumber] = 1,
    size: FromQuery[PageSize] = None,
    sort_by: FromQuery[list[Literal["name"]] | None] = None,
    order: FromQuery[Order] = None,
) -> Page[wire.NamespaceSummary]:
    request = page_request(
        page=page,
        size=size,
        sort_by=sort_by,
        order=order,
        max_page_size=context.settings.max_page_size,
        sort_keys=namespaces.NAMESPACE_SORT_KEYS,
    )
    listing = await context.db.read(namespaces.list_namespaces, caller, request)
    return Page(data=listing.items, page=listing.page, size=listing.size, count=listing.count)


@get("/{namespace:str}/", operation_id="get_namespace", summary="One namespace")
async def get_namespace(
    context: Context, caller: Who, namespace: FromPath[str]
) -> Ok[wire.NamespaceDetail]:
    return Ok(data=await context.db.read(namespaces.get_namespace, caller, namespace))


@post(
    "/{namespace:str}/", operation_id="create_namespace", summary="Create a namespace",
    status_code=200,
)  # fmt: skip
async def create_namespace(
    context: Context, caller: Who, namespace: FromPath[str]
) -> Ok[wire.NamespaceDetail]:
    return Ok(data=await _change(context, namespaces.create_namespace, caller, namespace))


@put(
    "/{namespace:str}/",
    operation_id="update_namespace",
    summary="Replace a namespace's metadata and v1 role mappings",
)
async def update_namespace(
    context: Context, caller: Who, namespace: FromPath[str], data: JSONBody[NamespaceUpdate]
) -> Ok[wire.NamespaceDetail]:
    detail = await _change(
        context,
        namespaces.update_namespace,
        caller,
        namespace,
        metadata=data.metadata,
        role_mappings=data.role_mappings,
    )
    return Ok(data=detail)


@put(
    "/{namespace:str}/metadata",
    operation_id="update_namespace_metadata",
    summary="Replace a namespace's metadata",
)
async def update_namespace_metadata(
    context: Context, caller: Who, namespace: FromPath[str], data: JSONBody[dict[str, Any]]
) -> Ok[wire.NamespaceDetail]:
    detail = await _change(context, namespaces.update_namespace, caller, namespace, metadata=data)
    return Ok(data=detail)


@delete(
    "/{namespace:str}/", operation_id="delete_namespace",
    summary="Delete a namespace with its environments and builds", status_code=200,
)  # fmt: skip
async def delete_namespace(context: Context, caller: Who, namespace: FromPath[str]) -> Ack:
    await _change(context, namespaces.delete_namespace_as, caller, namespace)
    return Ack(message=f"namespace {namespace} deleted")


@get(
    "/{namespace:str}/roles",
    operation_id="list_namespace_roles",
    summary="v2 role mappings granting other namespaces access to this one",
)
async def list_namespace_roles(
    context: Context, caller: Who, namespace: FromPath[str]
) -> Ok[list[wire.NamespaceRoleGrant]]:
    return Ok(data=await context.db.read(namespaces.list_role_grants, caller, namespace))


@delete(
    "/{namespace:str}/roles", operation_id="delete_namespace_roles",
    summary="Remove every v2 role mapping of this namespace", status_code=200,
)  # fmt: skip
async def delete_namespace_roles(context: Context, caller: Who, namespace: FromPath[str]) -> Ack:
    await _change(context, namespaces.delete_role_grants, caller, namespace)
    return Ack()


@get(
    "/{namespace:str}/role",
    operation_id="get_namespace_role",
    summary="The role another namespace's users have on this one",
)
async def get_namespace_role(
    context: Context,
    caller: Who,
    namespace: FromPath[str],
    other_namespace: FromQuery[str],
) -> Ok[wire.NamespaceRoleGrant]:
    grant = await context.db.read(namespaces.get_role_grant, caller, namespace, other_namespace)
    return Ok(data=grant)


@post(
    "/{namespace:str}/role", operation_id="create_namespace_role",
    summary="Give another namespace's users a role on this one", status_code=200,
)  # fmt: skip
async def create_namespace_role(
    context: Context, caller: Who, namespace: FromPath[str], data: JSONBody[RoleGrantRequest]
) -> Ok[wire.NamespaceRoleGrant]:
    grant = await _change(
        context,
        namespaces.set_role_grant,
        caller,
        namespace,
        data.other_namespace,
        data.role,
        create=True,
    )
    return Ok(data=grant)


@put(
    "/{namespace:str}/role",
    operation_id="update_namespace_role",
    summary="Change the role another namespace's users have on this one",
)
async def update_namespace_role(
    context: Context, caller: Who, namespace: FromPath[str], data: JSONBody[RoleGrantRequest]
) -> Ok[wire.NamespaceRoleGrant]:
    grant = await _change(
        context,
        namespaces.set_role_grant,
        caller,
        namespace,
        data.other_namespace,
        data.role,
        create=False,
    )
    return Ok(data=grant)


@delete(
    "/{namespace:str}/role", operation_id="delete_namespace_role",
    summary="Take away another namespace's role on this one", status_code=200,
)  # fmt: skip
async def delete_namespace_role(
    context: Context, caller: Who, namespace: FromPath[str], data: JSONBody[RoleGrantRemoval]
) -> Ack:
    await _change(context, namespaces.delete_role_grant, caller, namespace, data.other_namespace)
    return Ack()


router = Router(
    path="/namespace",
    tags=["namespaces"],
    route_handlers=[
        list_namespaces,
        get_namespace,
        create_namespace,
        update_namespace,
        update_namespace_metadata,
        delete_namespace,
        list_namespace_roles,
        delete_namespace_roles,
        get_namespace_role,
        create_namespace_role,
        update_namespace_role,
        delete_namespace_role,
    ],
)
