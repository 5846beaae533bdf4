"""``/healthz`` (the process is up) and ``/readyz`` (this Kiln can do its work), GET and HEAD.

``/healthz`` never touches the database: a liveness probe that failed whenever PostgreSQL is
down would have the process restarted for nothing. ``/readyz`` answers 200 only when all of
these hold, checked in this order (a failed check makes the later ones "not checked"):

``database``
    PostgreSQL answers within the timeout.
``schema``
    the database has exactly the schema this Kiln knows (otherwise run ``kiln migrate``).
``workers``
    a worker sent a heartbeat within the stalled-worker timeout: builds would otherwise queue
    up with nobody to run them.

Otherwise 503, with a body naming each check, whether it passed, and what to do about it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, cast

from litestar import MediaType, Response, get, head
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.serialization import encode_json
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from appliance.common.errors import DatabaseError
from appliance.db.status import ReadinessFacts
from appliance.web.settings import WebSettings
from appliance.web.status import StatusSource


@dataclass(frozen=True)
class Health:
    """Body of ``/healthz``."""

    status: str = "ok"


@dataclass(frozen=True)
class Check:
    """One readiness check: passed or not, and in words what was found or what to do."""

    ok: bool
    message: str


@dataclass(frozen=True)
class Readiness:
    """Body of ``/readyz``: ``status`` is ``"ready"`` or ``"unavailable"``; ``message`` sums
    up; ``checks`` has ``database``, ``schema`` and ``workers``, in that order."""

    status: str
    message: str
    checks: dict[str, Check]

    @property
    def ready(self) -> bool:
        return self.status == "ready"


NOT_CHECKED = "not checked: the {} check failed"


def evaluate(
    facts: ReadinessFacts | None, error: str | None, heartbeat_timeout: float
) -> Readiness:
    """The readiness that ``facts`` show (``facts`` None: the database could not be read,
    ``error`` says why)."""
    checks: dict[str, Check] = {}
    if facts is None:
        checks["database"] = Check(
            False,
            f"{error or 'the database cannot be reached'}. Check that PostgreSQL is running "
            "and that CondaStore.database_url points at it",
        )
        checks["schema"] = Check(False, NOT_CHECKED.format("database"))
        checks["workers"] = Check(False, NOT_CHECKED.format("database"))
        return _readiness(checks)
    checks["database"] = Check(True, "the database answers")
    schema = facts.schema
    checks["schema"] = Check(schema.current, schema.message())
    if not schema.current or facts.workers is None:
        checks["workers"] = Check(False, NOT_CHECKED.format("schema"))
        return _readiness(checks)
    checks["workers"] = _workers_check(facts, heartbeat_timeout)
    return _readiness(checks)


def _workers_check(facts: ReadinessFacts, timeout: float) -> Check:
    workers = facts.workers or []
    live = [worker for worker in workers if worker.age_seconds <= timeout]
    if live:
        newest = min(worker.age_seconds for worker in live)
        return Check(
            True,
            f"{len(live)} queue worker(s) sent a heartbeat within {timeout:g} s "
            f"(the newest {newest:.1f} s ago)",
        )
    start = "start `kiln worker` (or `kiln serve`) against this database"
    if not workers:
        return Check(False, f"no worker is running: builds would wait forever; {start}")
    newest = min(worker.age_seconds for worker in workers)
    return Check(
        False,
        f"no worker sent a heartbeat within {timeout:g} s (the newest {newest:.0f} s ago): "
        f"the workers are stopped or stuck; check their logs, or {start}",
    )


def _readiness(checks: dict[str, Check]) -> Readiness:
    failed = [name for name, check in checks.items() if not check.ok]
    if not failed:
        return Readiness("ready", "Kiln is ready", checks)
    first = checks[failed[0]].message
    return Readiness("unavailable", f"Kiln is not ready: {failed[0]}: {first}", checks)


async def check_readiness(source: StatusSource, settings: WebSettings) -> Readiness:
    """Run the checks against ``source`` (bounded by ``settings.database_timeout``)."""
    try:
        facts = await asyncio.wait_for(source.readiness_facts(), settings.database_timeout)
    except DatabaseError as failure:
        return evaluate(None, failure.message, settings.heartbeat_timeout)
    except TimeoutError:
        message = f"the database did not answer within {settings.database_timeout:g} s"
        return evaluate(None, message, settings.heartbeat_timeout)
    return evaluate(facts, None, settings.heartbeat_timeout)


def probe_handlers(
    source: StatusSource, settings: WebSettings, *, prefix: str, documented: bool
) -> list[HTTPRouteHandler]:
    """Route handlers for ``<prefix>/healthz`` and ``<prefix>/readyz``, GET and HEAD (Litestar's
    ``@get`` does not answer HEAD). ``documented`` False keeps them out of the OpenAPI schema
    (the copies at the root when Kiln has a url_prefix) with distinct operation ids."""
    suffix = "" if documented else "AtRoot"
    options: dict[str, Any] = {"include_in_schema": documented, "tags": ["operations"]}

    async def healthz() -> Health:
        return Health()

    async def healthz_head() -> Response[None]:
        return headers_only(Health(), HTTP_200_OK)

    async def readyz() -> Response[Readiness]:
        readiness = await check_readiness(source, settings)
        return Response(readiness, status_code=_status_code(readiness))

    async def readyz_head() -> Response[None]:
        readiness = await check_readiness(source, settings)
        return headers_only(readiness, _status_code(readiness))

    return [
        get(
            f"{prefix}/healthz", operation_id=f"getHealth{suffix}",
            summary="Liveness: the web process is up (no database access)", **options,
        )(healthz),
        head(f"{prefix}/healthz", operation_id=f"headHealth{suffix}", **options)(healthz_head),
        get(
            f"{prefix}/readyz", operation_id=f"getReadiness{suffix}",
            summary="Readiness: database reachable, schema current, a worker alive",
            responses=_NOT_READY, **options,
        )(readyz),
        head(
            f"{prefix}/readyz", operation_id=f"headReadiness{suffix}", responses=_NOT_READY,
            **options,
        )(readyz_head),
    ]  # fmt: skip


#: ``/readyz`` answers 503 (with the same body) while Kiln is not ready.
_NOT_READY = {
    HTTP_503_SERVICE_UNAVAILABLE: ResponseSpec(
        data_container=Readiness, description="Kiln is not ready; the checks say why"
    )
}


def headers_only(content: Any, status_code: int) -> Response[None]:
    """The answer to HEAD: the headers GET would send for ``content`` (JSON), no body.

    Litestar's own HEAD handlers send ``null`` as the body and its length; build the
    response by hand instead.
    """
    length = len(encode_json(content))
    response: Response[bytes] = Response(
        b"",
        status_code=status_code,
        media_type=MediaType.JSON,
        headers={"content-length": str(length)},
    )
    return cast(Response[None], response)


def _status_code(readiness: Readiness) -> int:
    return HTTP_200_OK if readiness.ready else HTTP_503_SERVICE_UNAVAILABLE
