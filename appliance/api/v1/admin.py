"""The admin API (``/api/v1/admin/``): what the admin console (``kiln tui``) needs to watch and
run a Kiln, over HTTP only.

- ``GET services/``, ``POST services/{service}/restart/``: the processes ``kiln serve`` runs
  and restarting one (appliance.services.operations; the supervisor's status file and control
  directory: appliance.services.supervision);
- ``GET storage/``: each store's disk as last sampled and its trend (appliance.services.usage);
- ``GET queue/``, ``GET jobs/``, ``GET jobs/{id}/``, ``POST jobs/{id}/retry/``,
  ``POST jobs/{id}/cancel/``: the job queue (appliance.services.jobs);
- ``GET config/``, ``PATCH config/``: the effective configuration with each value's source,
  and validating and writing a change (appliance.services.configuration);
- ``GET users/``, ``POST users/``, ``PATCH users/{username}/``: local accounts: list, create,
  change a password, disable or enable, grant or take admin (appliance.services.accounts, the
  same use cases as ``kiln user``). A change that may change who may do what (admin, disabled,
  a password, which ends login sessions) clears this process's access cache
  (appliance.services.access.AccessCache), so it applies from the next request on;
- ``GET logs/``: the latest records of the supervisor's, the services' and the managed
  PostgreSQL's logs, and with ``follow=true`` new records as they are written, as JSON lines
  (appliance.services.logs).

Every route needs an operator: an admin account, or a token with the admin role on ``*/*``
(anonymous: 401, anyone else: 403). The permission check runs first, on the database; file and
configuration work then runs on a thread, off the event loop. Job ids are routed as text and
converted by the handler's ``int`` parameter, as build ids are (appliance.api.v1.builds).
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Annotated, Any, TypeAlias

from litestar import Response, Router, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import Stream

from appliance.api.dependencies import Context, Who
from appliance.api.envelope import ErrorBody, Ok, Page
from appliance.api.pagination import Order, PageNumber, PageSize, page_request
from appliance.schemas import api as wire
from appliance.services import accounts, configuration, jobs, logs, operations, usage
from appliance.services.operations import Installation

#: Handler parameter type: ``installation: Site`` is this host's Kiln (data dir, config file).
Site: TypeAlias = NamedDependency[Installation]

JobStatusFilter: TypeAlias = Annotated[
    str | None,
    QueryParameter(description=f"only jobs in this status: {', '.join(jobs.JOB_STATUSES)}"),
]

LogService: TypeAlias = Annotated[
    str | None,
    QueryParameter(
        description="only this service's log: supervisor, postgres, web, worker-1, ... "
        "(the answer's services lists them; default: every service)"
    ),
]
LogLevel: TypeAlias = Annotated[
    str | None,
    QueryParameter(
        description=f"only records at this level or above: {', '.join(logs.LEVELS)} "
        "(default: every level)"
    ),
]
LogLines: TypeAlias = Annotated[
    int,
    QueryParameter(
        ge=0,
        le=logs.MAX_LINES,
        description=f"how many of the latest records (default {logs.DEFAULT_LINES}, at most "
        f"{logs.MAX_LINES}; 0 with follow: only new ones)",
    ),
]
TrendHours: TypeAlias = Annotated[
    int,
    QueryParameter(
        ge=1,
        le=int(usage.MAX_TREND.total_seconds() // 3600),
        description="the trend's length in hours (default 24; samples are kept 90 days)",
    ),
]
#: ``follow`` is described in the operation's text, not as a parameter of the schema: a client
#: that generates requests from the schema and reads each answer to its end (schemathesis)
#: would wait forever for a stream that ends only when the client leaves.
LogFollowFlag: TypeAlias = Annotated[bool, QueryParameter(include_in_schema=False)]


def _conflict(description: str) -> dict[int, ResponseSpec]:
    return {
        409: ResponseSpec(
            data_container=ErrorBody, description=description, generate_examples=False
        )
    }


# --- services ---------------------------------------------------------------------------------


@get(
    "/services/",
    operation_id="get_service_status",
    summary="The processes kiln serve runs: state, pid, uptime, restarts, memory",
)
async def get_service_status(
    context: Context, caller: Who, installation: Site
) -> Ok[operations.ServiceOverview]:
    """As the supervisor last reported them (it rewrites its report every few seconds and on
    every change). ``supervised`` is false when no supervisor runs this Kiln (``kiln web`` on
    its own); a report older than 10 s marks ``stale`` and every state ``unknown``."""
    await context.db.read(operations.require_operator, caller)
    overview = await asyncio.to_thread(operations.service_overview, installation)
    return Ok(data=overview, message=overview.message)


@post(
    "/services/{service:str}/restart/",
    operation_id="restart_service",
    summary="Ask the supervisor to restart a service gracefully",
    status_code=202,
    responses=_conflict("No supervisor runs this Kiln (kiln web on its own)"),
)
async def restart_service(
    context: Context, caller: Who, installation: Site, service: FromPath[str]
) -> Ok[operations.RestartRequested]:
    """``service``: a name from ``restart_targets`` of ``GET /api/v1/admin/services/``: one
    service (``web``, ``worker-1``), ``workers`` (each in turn), ``postgres`` or ``all``
    (everything, in stop-then-start order). Accepted (202) once the supervisor has the request;
    it stops the service (SIGTERM; a worker lets running builds finish) and starts it again,
    counting a requested restart. The request's progress is in the service status's
    ``requests``. 400 names the allowed services; 409 when there is no supervisor."""
    access = await context.db.read(operations.require_operator, caller)
    requested = await asyncio.to_thread(
        operations.request_restart,
        installation,
        service,
        requested_by=operations.operator_name(access),
    )
    return Ok(data=requested, message=requested.message)


# --- the queue --------------------------------------------------------------------------------


@get(
    "/queue/",
    operation_id="get_queue_statistics",
    summary="Jobs by status, task and queue; builds by status; the longest wait",
)
async def get_queue_statistics(context: Context, caller: Who) -> Ok[jobs.QueueStatistics]:
    """Every job status, task and queue with its counts (zeros included), builds by status,
    the QUEUED build that has waited longest, how long the oldest waiting job has waited,
    and how many workers reported alive in the last 10 s."""
    return Ok(data=await context.db.read(jobs.queue_statistics, caller))


@get(
    "/storage/",
    operation_id="get_storage",
    summary="Each store's disk as last sampled, and its trend",
)
async def get_storage(
    context: Context, caller: Who, hours: FromQuery[TrendHours] = 24
) -> Ok[usage.StorageOverview]:
    """Workers sample their host's store directory every minute (kept 90 days): the latest
    sample of each store (total, used and free bytes of its file system, bytes of its builds)
    and the trend over the last ``hours``, averaged into at most 120 points, oldest first."""
    return Ok(data=await context.db.read(usage.storage_overview, caller, hours))


@get("/jobs/", operation_id="list_jobs", summary="Jobs of the queue, newest first")
async def list_jobs(
    context: Context,
    caller: Who,
    status: FromQuery[JobStatusFilter] = None,
    task: FromQuery[str | None] = None,
    queue: FromQuery[str | None] = None,
    page: FromQuery[PageNumber] = 1,
    size: FromQuery[PageSize] = None,
    order: FromQuery[Order] = None,
) -> Page[jobs.Job]:
    """``task`` (``kiln.build``, ``kiln.delete_build``, ...) and ``queue`` are exact names.
    ``order=asc``: oldest first."""
    request = page_request(
        page=page,
        size=size,
        sort_by=None,
        order=order or "desc",
        max_page_size=context.settings.max_page_size,
        sort_keys=jobs.JOB_SORT_KEYS,
    )
    listing = await context.db.read(
        jobs.list_jobs, caller, request, status=status, task=task, queue=queue
    )
    return Page(data=listing.items, page=listing.page, size=listing.size, count=listing.count)


@get("/jobs/{job_id:str}/", operation_id="get_job", summary="One job of the queue")
async def get_job(context: Context, caller: Who, job_id: FromPath[int]) -> Ok[jobs.Job]:
    """Its task, queue, status, arguments, attempts, and when it was deferred, last started
    and ended (from Procrastinate's events). 404 for an id that names no job."""
    return Ok(data=await context.db.read(jobs.get_job, caller, job_id))


@post(
    "/jobs/{job_id:str}/retry/",
    operation_id="retry_job",
    summary="Queue a failed job again",
    status_code=200,
    responses=_conflict("The job is not failed, or it is a build's job (rebuild instead)"),
)
async def retry_job(context: Context, caller: Who, job_id: FromPath[int]) -> Ok[jobs.Job]:
    """Only ``failed`` jobs; a build's job (``kiln.build``) is refused with 409 naming the
    rebuild route instead."""
    job = await context.db.run(jobs.retry_job, caller, job_id)
    return Ok(data=job, message=f"job {job_id} queued again")


@post(
    "/jobs/{job_id:str}/cancel/",
    operation_id="cancel_job",
    summary="Cancel a job that waits for a worker",
    status_code=200,
    responses=_conflict("The job is not waiting (todo), or it is a build's job"),
)
async def cancel_job(context: Context, caller: Who, job_id: FromPath[int]) -> Ok[jobs.Job]:
    """Only ``todo`` jobs; a build's job is refused with 409 naming the build cancel route."""
    job = await context.db.run(jobs.cancel_job, caller, job_id)
    return Ok(data=job, message=f"job {job_id} canceled")


# --- configuration ----------------------------------------------------------------------------


@get(
    "/config/",
    operation_id="get_configuration",
    summary="The effective configuration, each value with its source; secrets masked",
)
async def get_configuration(
    context: Context, caller: Who, installation: Site
) -> Ok[configuration.EffectiveConfiguration]:
    """What a Kiln process started now loads: the configuration file and ``KILN_*``
    variables over the defaults. Each option says where its value comes from (``default``,
    ``file <path>``, ``environment KILN_X``) and each class which services must restart after
    a change. A file that does not load gives no sections and its errors in ``problems``."""
    await context.db.read(operations.require_operator, caller)
    effective = await asyncio.to_thread(configuration.effective_configuration, installation)
    return Ok(data=effective)


@patch(
    "/config/",
    operation_id="change_configuration",
    summary="Validate one option's new value and write it to the configuration file",
    responses=_conflict(
        "The file cannot be edited safely: not writable, does not load, the option is set by "
        "an environment variable or inside logic"
    ),
)
async def change_configuration(
    context: Context,
    caller: Who,
    installation: Site,
    data: JSONBody[configuration.OptionChange],
) -> Ok[configuration.ConfigurationChange]:
    """``{"class": "CondaStoreWorker", "option": "concurrency", "value": 4}`` writes
    ``c.CondaStoreWorker.concurrency = 4``: the option's one simple assignment is replaced
    (its comment kept), otherwise a line is appended with a comment; the rest of the file
    stays as it was. The value is checked by the option's own class, as when Kiln loads the
    file (400 saying what is allowed). ``"dry_run": true`` checks everything and writes
    nothing. The answer says which services must restart (``restart.targets`` can be posted
    to the restart route)."""
    access = await context.db.read(operations.require_operator, caller)
    change = await asyncio.to_thread(
        configuration.change_option,
        installation,
        data,
        changed_by=operations.operator_name(access),
    )
    return Ok(data=change, message=change.message)


# --- user accounts ----------------------------------------------------------------------------


def _forget_callers(context: Context) -> None:
    """Who may do what may have changed: resolve every caller afresh (AccessCache)."""
    context.access_cache.clear()


def _admin_exists(context: Context) -> None:
    """An admin account exists now: the first-admin setup token is of no use any more."""
    if context.secrets_dir is not None:
        accounts.remove_setup_token(context.secrets_dir)


@get("/users/", operation_id="list_users", summary="Every local account, by name")
async def list_users(context: Context, caller: Who) -> Ok[list[wire.Account]]:
    """Each account's name, whether it is an admin, disabled or has a password (accounts
    without one log in through OAuth only), when it was created and last logged in."""
    return Ok(data=await context.db.read(accounts.accounts_for_operator, caller))


@post(
    "/users/",
    operation_id="create_user",
    summary="Create a local account",
    status_code=201,
    responses=_conflict("An account with this name (in any case) exists already"),
)
async def create_user(
    context: Context, caller: Who, data: JSONBody[wire.NewAccount]
) -> Ok[wire.Account]:
    """``{"username": "ada", "password": "...", "is_admin": false}``. The name is also the
    user's own namespace: letters, digits, ``_ . + -``, unique without regard to case. The
    password needs at least 8 characters (``null``: no password, the account logs in through
    OAuth only). 400 says which rule the name or password breaks; 409 when the name is
    taken."""
    account = await context.db.run(accounts.create_account_for_operator, caller, data)
    if account.is_admin:
        _admin_exists(context)
    kind = "admin account" if account.is_admin else "account"
    return Ok(data=account, message=f"{kind} {account.username} created")


@patch(
    "/users/{username:str}/",
    operation_id="change_user",
    summary="Change an account: password, disabled, admin",
    responses={
        **_conflict("The change would leave no enabled admin account"),
        404: ResponseSpec(
            data_container=ErrorBody,
            description="No account has this name (in any case)",
            generate_examples=False,
        ),
    },
)
async def change_user(
    context: Context,
    caller: Who,
    username: FromPath[str],
    data: JSONBody[wire.AccountChange],
) -> Ok[wire.Account]:
    """Any of ``{"password": "...", "disabled": true, "is_admin": false}``; absent fields stay
    as they are, and the change is made whole or not at all. A new password ends the user's
    login sessions; so does disabling the account (its tokens are refused while it is
    disabled; enabling it does not bring the sessions back). Taking admin from an account or
    disabling it applies from the next request on. The last enabled admin account cannot be
    disabled or lose admin (409 says why). 404 for a name no account has (in any case)."""
    changed = await context.db.run(accounts.change_account, caller, username, data)
    _forget_callers(context)
    if changed.account.is_admin and not changed.account.disabled:
        _admin_exists(context)
    return Ok(data=changed.account, message=changed.message)


# --- logs --------------------------------------------------------------------------------------


@get(
    "/logs/",
    operation_id="get_service_logs",
    summary="The latest records of the supervisor's and services' logs; follow=true streams",
    responses={
        200: ResponseSpec(
            data_container=Ok[wire.ServiceLogs],
            description="The latest records, oldest first, and the services that have logs "
            "(with follow=true: JSON lines, application/x-ndjson)",
        )
    },
)
async def get_service_logs(
    context: Context,
    caller: Who,
    installation: Site,
    service: FromQuery[LogService] = None,
    level: FromQuery[LogLevel] = None,
    lines: FromQuery[LogLines] = logs.DEFAULT_LINES,
    follow: FromQuery[LogFollowFlag] = False,
) -> Response[Any]:
    """Records of the supervisor (``supervisor``), the managed PostgreSQL (``postgres``), the
    web process (``web``) and the workers (``worker-1``, ...; ``worker`` for one started on its
    own), each ``{time, service, level, logger, message, pid}``, oldest first, merged by time.
    A service without a log file yet has no records (never an error). 400 names the known
    services for an unknown ``service`` and the levels for a bad ``level``.

    ``follow=true`` answers ``application/x-ndjson`` instead: the latest ``lines`` records,
    then each new record as it is written (looked for twice a second), one JSON object per
    line, until the client closes the connection; an empty line is sent every 15 s while
    nothing is written. Rotated files are followed into their successors."""
    await context.db.read(operations.require_operator, caller)
    if follow:
        following = await asyncio.to_thread(
            logs.start_following, installation, service=service, level=level, lines=lines
        )
        return Stream(
            following.stream(),
            media_type="application/x-ndjson",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
    found = await asyncio.to_thread(
        logs.latest_records, installation, service=service, level=level, lines=lines
    )
    return Response(Ok(data=found))


def router(installation: Installation) -> Router:
    """The admin routes (``/admin/...``, under ``/api/v1``) for this host's ``installation``."""

    def provide_installation() -> Installation:
        return installation

    handlers: list[HTTPRouteHandler] = [
        get_service_status,
        restart_service,
        get_queue_statistics,
        get_storage,
        list_jobs,
        get_job,
        retry_job,
        cancel_job,
        get_configuration,
        change_configuration,
        list_users,
        create_user,
        change_user,
        get_service_logs,
    ]
    for handler in handlers:
        # The OpenAPI description is the handler's docstring (the app does not use them).
        if handler.description is None:
            handler.description = inspect.getdoc(handler.fn)
    return Router(
        path="/admin",
        tags=["admin"],
        route_handlers=handlers,
        dependencies={
            "installation": Provide(provide_installation, use_cache=True, sync_to_thread=False)
        },
    )
