"""Specifications: submit one to create or update an environment (``POST``), or solve one
without building it (``GET``). The rules are in :mod:`appliance.services.specifications`.

``GET /specification/`` answers conda-store's non-envelope body ``{"solve": [packages]}``. The
channels to solve against are read from ``channel`` (what conda-store's server reads) and from
``channels`` (what its client sends, a bug of its own): both, in that order. The ``/`` that
client appends to the last query value is dropped (:func:`~appliance.api.pagination.as_sent`).

Solves run on the web process's :class:`~appliance.services.specifications.Solver`
(:attr:`ApiContext.solver <appliance.api.context.ApiContext.solver>`, shared with the UI's
preview), so the limit of concurrent solves is per web process.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import msgspec
from litestar import Router, get, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ValidationException
from litestar.params import FromQuery, JSONBody

from appliance.api.context import ApiContext
from appliance.api.dependencies import Context, Who
from appliance.api.envelope import Ok
from appliance.api.pagination import as_sent
from appliance.schemas import api as wire
from appliance.services import specifications
from appliance.services.specifications import Solver, SolveRequest, Submission

#: Handler parameter type: ``solver: WebSolver`` is injected by name.
WebSolver: TypeAlias = NamedDependency[Solver]

#: Values of ``format`` conda-store accepted (it ignored them; so does Kiln).
SOLVE_FORMATS = ("yaml", "lockfile")


class SpecificationSubmission(msgspec.Struct, kw_only=True):
    """``POST /specification/``. ``specification`` is environment.yaml or conda-lock text (YAML
    or JSON), or the same as a JSON object; ``force`` builds again even when the same
    specification already built successfully in the environment."""

    specification: str | dict[str, Any]
    namespace: str | None = None
    is_lockfile: bool = False
    environment_name: str | None = None
    environment_description: str | None = None
    force: bool = False


class SolveResult(msgspec.Struct, kw_only=True):
    """conda-store's solve body (no envelope)."""

    solve: list[wire.SolvedPackage]


@post(
    "/", operation_id="submit_specification",
    summary="Create or update an environment from a specification (queues a build)",
    status_code=200,
)  # fmt: skip
async def submit_specification(
    context: Context, caller: Who, data: JSONBody[SpecificationSubmission]
) -> Ok[wire.BuildQueued]:
    submission = Submission(
        specification=data.specification,
        namespace=data.namespace,
        is_lockfile=data.is_lockfile,
        environment_name=data.environment_name,
        environment_description=data.environment_description,
        force=data.force,
    )
    queued = await context.db.run(specifications.submit, caller, context.build_settings, submission)
    return Ok(data=queued)


@get(
    "/",
    operation_id="solve_specification",
    summary="Solve a specification without building it",
)
async def solve_specification(
    context: Context,
    caller: Who,
    solver: WebSolver,
    channel: FromQuery[list[str] | None] = None,
    channels: FromQuery[list[str] | None] = None,
    conda: FromQuery[list[str] | None] = None,
    pip: FromQuery[list[str] | None] = None,
    format: FromQuery[str | None] = None,
) -> SolveResult:
    format = as_sent(format)
    if format is not None and format not in SOLVE_FORMATS:
        raise ValidationException(
            f"format must be one of {', '.join(SOLVE_FORMATS)}, not {format!r}"
        )
    request = SolveRequest(
        channels=tuple(dict.fromkeys(_sent([*(channel or ()), *(channels or ())]))),
        conda=tuple(_sent(conda)),
        pip=tuple(_sent(pip)),
    )
    packages = await specifications.solve_specification(context.db, caller, solver, request)
    return SolveResult(solve=packages)


def _sent(values: list[str] | None) -> list[str]:
    return [value for value in map(as_sent, values or ()) if value is not None]


def router(context: ApiContext) -> Router:
    """The ``/specification`` routes, solving on ``context``'s solver."""

    def provide_solver() -> Solver:
        return context.solver

    return Router(
        path="/specification",
        tags=["specifications"],
        route_handlers=[submit_specification, solve_specification],
        dependencies={"solver": Provide(provide_solver, use_cache=True, sync_to_thread=False)},
    )
