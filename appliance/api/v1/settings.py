"""Settings at three levels: ``/setting/`` (global), ``/setting/{ns}/`` and
``/setting/{ns}/{env}/``. GET answers the effective settings of that level, PUT sets keys there
(appliance.services.settings has the rules)."""

from __future__ import annotations

from typing import Any

from litestar import Router, get, put
from litestar.params import FromPath, JSONBody

from appliance.api.dependencies import Context, Who
from appliance.api.envelope import Ok
from appliance.schemas import api as wire
from appliance.services import settings


@get("/", operation_id="get_global_settings", summary="Effective global settings")
async def get_global_settings(context: Context, caller: Who) -> Ok[wire.Settings]:
    return Ok(data=await context.db.read(settings.get_settings, caller, context.setting_defaults))


@get(
    "/{namespace:str}/",
    operation_id="get_namespace_settings",
    summary="Effective settings of a namespace",
)
async def get_namespace_settings(
    context: Context, caller: Who, namespace: FromPath[str]
) -> Ok[wire.Settings]:
    found = await context.db.read(
        settings.get_settings, caller, context.setting_defaults, namespace
    )
    return Ok(data=found)


@get(
    "/{namespace:str}/{environment:str}/",
    operation_id="get_environment_settings",
    summary="Effective settings of an environment",
)
async def get_environment_settings(
    context: Context, caller: Who, namespace: FromPath[str], environment: FromPath[str]
) -> Ok[wire.Settings]:
    found = await context.db.read(
        settings.get_settings, caller, context.setting_defaults, namespace, environment
    )
    return Ok(data=found)


@put(
    "/",
    operation_id="update_global_settings",
    summary="Set global setting keys (null removes a key's global value)",
)
async def update_global_settings(
    context: Context, caller: Who, data: JSONBody[dict[str, Any]]
) -> Ok[wire.Settings]:
    update = await context.db.run(settings.update_settings, caller, context.setting_defaults, data)
    return Ok(data=update.settings, message=update.message)


@put(
    "/{namespace:str}/",
    operation_id="update_namespace_settings",
    summary="Set a namespace's setting keys (null removes a key's namespace value)",
)
async def update_namespace_settings(
    context: Context, caller: Who, namespace: FromPath[str], data: JSONBody[dict[str, Any]]
) -> Ok[wire.Settings]:
    update = await context.db.run(
        settings.update_settings, caller, context.setting_defaults, data, namespace
    )
    return Ok(data=update.settings, message=update.message)


@put(
    "/{namespace:str}/{environment:str}/",
    operation_id="update_environment_settings",
    summary="Set an environment's setting keys (null removes a key's environment value)",
)
async def update_environment_settings(
    context: Context,
    caller: Who,
    namespace: FromPath[str],
    environment: FromPath[str],
    data: JSONBody[dict[str, Any]],
) -> Ok[wire.Settings]:
    update = await context.db.run(
        settings.update_settings, caller, context.setting_defaults, data, namespace, environment
    )
    return Ok(data=update.settings, message=update.message)


router = Router(
    path="/setting",
    tags=["settings"],
    route_handlers=[
        get_global_settings,
        get_namespace_settings,
        get_environment_settings,
        update_global_settings,
        update_namespace_settings,
        update_environment_settings,
    ],
)
