"""Operating this host's Kiln from the admin API: who may, and the services the supervisor runs.

Who may: an *operator* is an admin account, or a caller holding every permission on every
namespace (a token with the ``admin`` role on ``*/*``, such as ``kiln token create``'s): the
same callers that manage every token (appliance.services.tokens.manages_every_token). Every
admin use case starts with :func:`require_operator` (anonymous: 401; others: 403).

Services: ``kiln serve`` publishes the state of the processes it runs and takes restart
requests through files in the data dir's ``run/`` directory (the protocol, with the status
file's path, the control directory and the staleness rules: appliance.services.supervision).
The web process reads and writes those files here:

- :func:`service_overview`: no status file, or one whose supervisor is gone, means there is no
  supervisor (``kiln web`` runs on its own): ``supervised`` is false and the message says so,
  rather than an error. A report older than ``STALE_AFTER`` seconds from a supervisor that still
  runs has its services' states replaced by ``unknown`` and carries its age.
- :func:`request_restart`: refused with 409 when there is no supervisor, with 400 naming the
  allowed names for a service it does not run; otherwise the request is queued for the
  supervisor (it acts within a fraction of a second, or when it is done with earlier requests)
  and the answer says what will restart. Progress shows in the overview's ``requests``.

Configuration (appliance.services.configuration) and the job queue (appliance.services.jobs)
have their own modules.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from sqlalchemy.orm import Session

from appliance.common.errors import KilnError
from appliance.common.paths import DataDir
from appliance.config.auth import PERMISSIONS
from appliance.services.access import Access, Caller, Forbidden, Unauthenticated
from appliance.services.supervision import (
    ALL_SERVICES,
    ALL_WORKERS,
    STALE_AFTER,
    RequestRecord,
    ServiceStatus,
    SupervisorInfo,
    new_request,
    read_status,
    submit,
)

#: What an operator holds on ``*/*`` (unless their account is an admin account).
OPERATOR_PERMISSIONS = frozenset(PERMISSIONS)


class NoSupervisor(KilnError):
    """No supervisor runs this Kiln, so there is nothing to restart it."""

    code = "conflict"


class UnknownService(KilnError):
    """No such service."""

    code = "unknown_service"


@dataclass(frozen=True)
class Installation:
    """This host's Kiln as the web process sees it: its data dir, the configuration file the
    operator chose (None: the data dir's ``kiln_config.py``, or the one the supervisor
    publishes), and the environment its ``KILN_*`` variables come from."""

    data_dir: DataDir
    config_file: Path | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    @property
    def run_dir(self) -> Path:
        return self.data_dir.run


# --- who may ----------------------------------------------------------------------------------


def is_operator(access: Access) -> bool:
    """See the module docstring."""
    return access.is_admin or access.held_everywhere() >= OPERATOR_PERMISSIONS


def require_operator(session: Session, caller: Caller) -> Access:
    """The caller's access when they are an operator; raises otherwise."""
    access = caller.access(session)
    if is_operator(access):
        return access
    if not access.authenticated:
        raise Unauthenticated(
            "request not authenticated: the admin API needs an admin account, or a token with "
            "the admin role on every namespace (*/*)"
        )
    raise Forbidden(
        "request not authorized: the admin API needs an admin account, or a token with the "
        "admin role on every namespace (a '*/*' binding); ask an admin"
    )


def operator_name(access: Access) -> str:
    """How requests and configuration changes name who made them."""
    if access.username:
        return access.username
    return f"token {access.token_id}" if access.token_id else "an operator"


# --- the services -----------------------------------------------------------------------------


class ServiceOverview(msgspec.Struct, kw_only=True):
    """The processes ``kiln serve`` runs on this host, as the supervisor last reported them."""

    #: False when no supervisor runs this Kiln (``kiln web`` on its own); the rest is empty.
    supervised: bool
    #: In words: who supervises, or why nobody does, or that the report is stale.
    message: str
    supervisor: SupervisorInfo | None = None
    #: When the supervisor last wrote its status.
    reported_at: datetime | None = None
    #: Seconds since then.
    status_age: float | None = None
    #: The report is older than ``STALE_AFTER`` seconds: services' states are ``unknown``.
    stale: bool = False
    services: list[ServiceStatus] = msgspec.field(default_factory=list)
    #: What ``POST /api/v1/admin/services/{service}/restart/`` accepts.
    restart_targets: list[str] = msgspec.field(default_factory=list)
    #: The latest restart requests and how they went, oldest first.
    requests: list[RequestRecord] = msgspec.field(default_factory=list)


class RestartRequested(msgspec.Struct, kw_only=True):
    """A restart request handed to the supervisor."""

    id: str
    #: The name that was asked for.
    service: str
    #: The services that will restart, in order.
    restarts: list[str]
    message: str


def service_overview(installation: Installation) -> ServiceOverview:
    """What the supervisor reports (see the module docstring)."""
    reading = read_status(installation.run_dir)
    status = reading.status
    if status is None:
        return ServiceOverview(
            supervised=False,
            message=(
                f"no supervisor: {reading.problem}. This Kiln was not started by `kiln serve` "
                "(or it stopped): its processes are run by whatever started them"
            ),
        )
    age = reading.age or 0.0
    services = status.services
    supervisor = status.supervisor
    if reading.stale:
        services = [msgspec.structs.replace(service, state="unknown") for service in services]
        message = (
            f"the supervisor (pid {supervisor.pid}) has not reported for {age:.0f} s (it "
            f"reports every few seconds; after {STALE_AFTER:.0f} s the states are unknown)"
        )
    else:
        services = [_aged(service, age) for service in services]
        message = f"supervised by kiln serve (pid {supervisor.pid})"
    return ServiceOverview(
        supervised=True,
        message=message,
        supervisor=msgspec.structs.replace(supervisor, uptime=supervisor.uptime + age),
        reported_at=status.written_at,
        status_age=round(age, 3),
        stale=reading.stale,
        services=services,
        restart_targets=status.restart_targets,
        requests=status.requests,
    )


def _aged(service: ServiceStatus, age: float) -> ServiceStatus:
    if service.uptime is None:
        return service
    return msgspec.structs.replace(service, uptime=service.uptime + age)


def request_restart(
    installation: Installation, service: str, *, requested_by: str
) -> RestartRequested:
    """Hand a restart of ``service`` to the supervisor (see the module docstring)."""
    reading = read_status(installation.run_dir)
    status = reading.status
    if status is None:
        raise NoSupervisor(
            f"cannot restart {service}: no supervisor runs this Kiln ({reading.problem}); "
            "restart its processes the way they were started (e.g. systemctl restart kiln)"
        )
    targets = status.restart_targets
    if service not in targets:
        raise UnknownService(f"no service {service!r} to restart; allowed: {', '.join(targets)}")
    request = new_request(service, requested_by, datetime.now(UTC))
    try:
        submit(installation.run_dir, request)
    except FileNotFoundError:
        raise NoSupervisor(
            f"cannot restart {service}: the supervisor's control directory is missing "
            f"({installation.run_dir / 'control'}); is `kiln serve` stopping?"
        ) from None
    except OSError as error:
        raise KilnError(
            f"cannot hand the restart to the supervisor: {error.strerror} "
            f"({installation.run_dir / 'control'})"
        ) from None
    names = [entry.name for entry in status.services]
    restarts = _expand(service, names)
    message = f"restart of {', '.join(restarts)} requested"
    if reading.stale:
        message += (
            f"; the supervisor has not reported for {reading.age or 0:.0f} s, so it may act late"
        )
    return RestartRequested(id=request.id, service=service, restarts=restarts, message=message)


def _expand(target: str, names: list[str]) -> list[str]:
    """The services a restart target restarts, in order (appliance.supervisor.serve)."""
    if target == ALL_WORKERS:
        return [name for name in names if name.startswith("worker-")]
    if target in (ALL_SERVICES, "postgres"):
        return names
    return [target]
