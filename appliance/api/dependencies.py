"""Values handlers receive by parameter name: ``context`` (the :class:`ApiContext`) and
``caller`` (who sent the request, :mod:`appliance.api.security`)."""

from __future__ import annotations

from typing import Any, TypeAlias

from litestar import Request
from litestar.di import NamedDependency, Provide

from appliance.api.context import ApiContext
from appliance.api.security import identify
from appliance.services.access import Caller


def dependencies(context: ApiContext) -> dict[str, Provide]:
    """The providers of an API router serving ``context``."""

    def provide_context() -> ApiContext:
        return context

    def provide_caller(request: Request[Any, Any, Any]) -> Caller:
        return identify(request, context)

    return {
        "context": Provide(provide_context, use_cache=True, sync_to_thread=False),
        "caller": Provide(provide_caller, sync_to_thread=False),
    }


#: Handler parameter types: ``context: Context`` and ``caller: Who`` are injected by name.
Context: TypeAlias = NamedDependency[ApiContext]
Who: TypeAlias = NamedDependency[Caller]
