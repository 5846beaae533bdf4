"""The console's only way to Kiln: a typed async client of its REST API, over httpx.

One method per endpoint the console uses, returning the types of :mod:`tui.models` (and of
:mod:`tui.admin` for the admin endpoints). Every failure is one of two errors:

- :class:`KilnUnreachable`: the server could not be reached or stopped answering (refused,
  reset, timed out, DNS): the console shows a banner and retries with backoff;
- :class:`KilnApiError`: the server answered with an error; ``message`` is the server's own
  (its error envelope's ``message``, with the names of bad fields when it lists them).

A 401 saying the token expired is retried once with a fresh token when the client was given a
``renew`` callable (``kiln tui`` on the Kiln host mints short-lived tokens and renews them).

Paths are relative to the server's URL, which includes its ``url_prefix``
(``http://host:5000/kiln``); the client adds ``/api/v1/...``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx

from tui import admin
from tui.models import (
    Account,
    Build,
    Environment,
    IssuedToken,
    Listing,
    Namespace,
    NamespaceUsage,
    Permissions,
    RoleGrant,
    ServerStatus,
    TokenInfo,
)
from tui.wire import JSON

T = TypeVar("T")

#: Seconds to wait for an answer (connecting, or each read); log streams wait without end.
DEFAULT_TIMEOUT = 10.0

#: Most items a listing fetches over several pages (the console shows the newest).
LISTING_LIMIT = 500

#: Renews the token: returns a fresh one (blocking; run on a thread).
Renew = Callable[[], str]


class KilnApiError(Exception):
    """The server refused a request; ``message`` is its own explanation."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        #: The HTTP status (None when no answer came).
        self.status = status
        #: Kiln's stable error code (``forbidden``, ``conflict``, ...), when it sent one.
        self.code = code

    def __str__(self) -> str:
        return self.message


class KilnUnreachable(KilnApiError):
    """No answer from the server: connection refused, reset or timed out."""


def error_message(response: httpx.Response) -> tuple[str, str | None]:
    """The server's message and error code of an error ``response``."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        message = str(body.get("message") or body.get("detail") or "")
        details = []
        for item in body.get("errors") or body.get("extra") or ():
            if isinstance(item, Mapping) and item.get("message"):
                key = item.get("key") or item.get("field")
                details.append(f"{key}: {item['message']}" if key else str(item["message"]))
        if details:
            message = "; ".join([message, *details]) if message else "; ".join(details)
        code = body.get("code")
        if message:
            return message, str(code) if code else None
    text = response.text.strip()
    reason = response.reason_phrase or "error"
    return (f"{response.status_code} {reason}: {text[:200]}" if text else
            f"{response.status_code} {reason}"), None  # fmt: skip


class KilnClient:
    """Kiln's REST API at ``url`` (with its url_prefix), as ``token``'s holder.

    Use it from one event loop (Textual's); close it with :meth:`aclose`.
    """

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        renew: Renew | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._renew = renew
        self._http = httpx.AsyncClient(
            base_url=self.url,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            headers={"User-Agent": "kiln-tui"},
            follow_redirects=True,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- plumbing ---------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> httpx.Response:
        for attempt in (1, 2):
            try:
                response = await self._http.request(
                    method,
                    path,
                    params=_query(params),
                    json=body,
                    headers=self._headers(),
                )
            except httpx.TransportError as error:
                raise KilnUnreachable(_unreachable(self.url, error)) from error
            if response.status_code == 401 and attempt == 1 and await self._renewed(response):
                continue
            if response.is_error:
                message, code = error_message(response)
                raise KilnApiError(message, status=response.status_code, code=code)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def _renewed(self, response: httpx.Response) -> bool:
        """Whether a fresh token was obtained after ``response`` (a 401) said it expired."""
        if self._renew is None or "expired" not in response.text:
            return False
        try:
            self._token = await asyncio.to_thread(self._renew)
        except Exception:  # the renewal's own problem is not the request's answer
            return False
        return True

    async def _json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Any:
        response = await self._send(method, path, params=params, body=body)
        try:
            return response.json()
        except ValueError:
            raise KilnApiError(
                f"{method} {path}: the server answered {response.status_code} without JSON",
                status=response.status_code,
            ) from None

    async def _data(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Any:
        """The ``data`` of the envelope the server answered with."""
        answer = await self._json(method, path, params=params, body=body)
        if not isinstance(answer, Mapping) or "data" not in answer:
            raise KilnApiError(f"{method} {path}: the answer has no 'data'")
        return answer["data"]

    async def _message(self, method: str, path: str, *, body: Any = None) -> str:
        """The ``message`` of the envelope (what the server says it did)."""
        answer = await self._json(method, path, body=body)
        message = answer.get("message") if isinstance(answer, Mapping) else None
        return str(message or "done")

    async def _page(
        self, path: str, parse: Callable[[JSON], T], params: Mapping[str, Any]
    ) -> Listing[T]:
        answer = await self._json("GET", path, params=params)
        if not isinstance(answer, Mapping) or not isinstance(answer.get("data"), list):
            raise KilnApiError(f"GET {path}: the answer is not a listing")
        items = [_parsed(path, parse, item) for item in answer["data"]]
        return Listing(items=items, count=int(answer.get("count") or len(items)))

    async def _all(
        self,
        path: str,
        parse: Callable[[JSON], T],
        params: Mapping[str, Any] | None = None,
        limit: int = LISTING_LIMIT,
    ) -> Listing[T]:
        """Every item of a listing, page by page, up to ``limit`` items."""
        items: list[T] = []
        page = 1
        while True:
            listing = await self._page(path, parse, {**(params or {}), "page": page})
            items.extend(listing.items)
            if not listing.items or len(items) >= min(listing.count, limit):
                return Listing(items=items[:limit], count=listing.count)
            page += 1

    # --- status -----------------------------------------------------------------------------

    async def status(self) -> ServerStatus:
        """``GET /api/v1/``: the server's version; also the cheapest "are you there?"."""
        return _parsed("/api/v1/", ServerStatus.from_json, await self._data("GET", "/api/v1/"))

    async def permissions(self) -> Permissions:
        data = await self._data("GET", "/api/v1/permission/")
        return _parsed("/api/v1/permission/", Permissions.from_json, data)

    async def usage(self) -> dict[str, NamespaceUsage]:
        data = await self._data("GET", "/api/v1/usage/")
        if not isinstance(data, Mapping):
            raise KilnApiError("GET /api/v1/usage/: expected an object per namespace")
        return {str(name): NamespaceUsage.from_json(value) for name, value in data.items()}

    # --- builds -----------------------------------------------------------------------------

    async def builds(
        self,
        *,
        status: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        environment_id: int | None = None,
        limit: int = 100,
    ) -> Listing[Build]:
        """The newest builds (highest id first) matching the filters, at most ``limit``."""
        params = {
            "status": status,
            "namespace": namespace,
            "name": name,
            "environment_id": environment_id,
            "sort_by": "id",
            "order": "desc",
        }
        return await self._all("/api/v1/build/", Build.from_json, params, limit=limit)

    async def build(self, build_id: int) -> Build:
        path = f"/api/v1/build/{build_id}/"
        return _parsed(path, Build.from_json, await self._data("GET", path))

    async def cancel_build(self, build_id: int) -> str:
        return await self._message("PUT", f"/api/v1/build/{build_id}/cancel/")

    async def rebuild(self, build_id: int) -> int:
        """Queue a new build of the same specification; the new build's id."""
        data = await self._data("PUT", f"/api/v1/build/{build_id}/")
        return int(_mapping_of(data).get("build_id", 0))

    async def delete_build(self, build_id: int) -> str:
        return await self._message("DELETE", f"/api/v1/build/{build_id}/")

    async def build_log(self, build_id: int) -> str:
        """The build's log as it is now."""
        response = await self._send("GET", f"/api/v1/build/{build_id}/logs/")
        return response.text

    async def follow_build_log(self, build_id: int) -> AsyncIterator[str]:
        """The build's log, chunk by chunk as it is written, until the build ends."""
        path = f"/api/v1/build/{build_id}/logs/"
        try:
            async with self._http.stream(
                "GET",
                path,
                params={"follow": "true"},
                headers=self._headers(),
                timeout=httpx.Timeout(DEFAULT_TIMEOUT, read=None),
            ) as response:
                if response.is_error:
                    await response.aread()
                    message, code = error_message(response)
                    raise KilnApiError(message, status=response.status_code, code=code)
                async for chunk in response.aiter_text():
                    yield chunk
        except httpx.TransportError as error:
            raise KilnUnreachable(_unreachable(self.url, error)) from error

    # --- namespaces and environments -------------------------------------------------------

    async def namespaces(self) -> list[Namespace]:
        listing = await self._all("/api/v1/namespace/", Namespace.from_json, {"sort_by": "name"})
        return listing.items

    async def namespace(self, name: str) -> Namespace:
        path = f"/api/v1/namespace/{name}/"
        return _parsed(path, Namespace.from_json, await self._data("GET", path))

    async def create_namespace(self, name: str) -> Namespace:
        path = f"/api/v1/namespace/{name}/"
        return _parsed(path, Namespace.from_json, await self._data("POST", path))

    async def delete_namespace(self, name: str) -> str:
        return await self._message("DELETE", f"/api/v1/namespace/{name}/")

    async def set_role_mappings(
        self, namespace: str, mappings: Mapping[str, Sequence[str]]
    ) -> None:
        """Replace the namespace's v1 role mappings (``{entity glob: [roles]}``)."""
        body = {"role_mappings": {entity: list(roles) for entity, roles in mappings.items()}}
        await self._data("PUT", f"/api/v1/namespace/{namespace}/", body=body)

    async def role_grants(self, namespace: str) -> list[RoleGrant]:
        path = f"/api/v1/namespace/{namespace}/roles"
        data = await self._data("GET", path)
        return [_parsed(path, RoleGrant.from_json, item) for item in _list_of(data)]

    async def grant_role(self, namespace: str, other_namespace: str, role: str) -> RoleGrant:
        """Give ``other_namespace``'s users ``role`` on ``namespace/*`` (create or change)."""
        path = f"/api/v1/namespace/{namespace}/role"
        body = {"other_namespace": other_namespace, "role": role}
        try:
            data = await self._data("POST", path, body=body)
        except KilnApiError as error:
            if error.status != 409:
                raise
            data = await self._data("PUT", path, body=body)
        return _parsed(path, RoleGrant.from_json, data)

    async def revoke_role(self, namespace: str, other_namespace: str) -> None:
        await self._json(
            "DELETE",
            f"/api/v1/namespace/{namespace}/role",
            body={"other_namespace": other_namespace},
        )

    async def environments(
        self, *, namespace: str | None = None, search: str | None = None
    ) -> list[Environment]:
        params = {"namespace": namespace, "search": search, "sort_by": "namespace,name"}
        listing = await self._all("/api/v1/environment/", Environment.from_json, params)
        return listing.items

    async def switch_build(self, namespace: str, environment: str, build_id: int) -> Environment:
        """Make ``build_id`` the environment's current build."""
        path = f"/api/v1/environment/{namespace}/{environment}/"
        data = await self._data("PUT", path, body={"build_id": build_id})
        return _parsed(path, Environment.from_json, data)

    async def delete_environment(self, namespace: str, environment: str) -> str:
        return await self._message("DELETE", f"/api/v1/environment/{namespace}/{environment}/")

    # --- tokens and accounts -----------------------------------------------------------------

    async def tokens(self, *, every_user: bool = True) -> list[TokenInfo]:
        params = {"all": "true" if every_user else None, "sort_by": "created_on", "order": "desc"}
        listing = await self._all("/api/v1/token/", TokenInfo.from_json, params)
        return listing.items

    async def create_token(
        self,
        *,
        name: str,
        role_bindings: Mapping[str, Sequence[str]] | None = None,
        primary_namespace: str | None = None,
        lifetime_seconds: int | None = None,
    ) -> IssuedToken:
        """Mint a token (at most the console's own rights and lifetime)."""
        body: dict[str, Any] = {"name": name}
        if role_bindings is not None:
            body["role_bindings"] = {k: list(v) for k, v in role_bindings.items()}
        if primary_namespace:
            body["primary_namespace"] = primary_namespace
        if lifetime_seconds is not None:
            body["expiration"] = _now_plus(lifetime_seconds)
        data = await self._data("POST", "/api/v1/token/", body=body)
        return _parsed("/api/v1/token/", IssuedToken.from_json, data)

    async def revoke_token(self, token_id: str) -> str:
        return await self._message("DELETE", f"/api/v1/token/{token_id}/")

    # --- the admin API: services, queue, jobs, store ---------------------------------------

    async def services(self) -> admin.Services:
        """What the supervisor reports about the processes it runs."""
        data = await self._data("GET", admin.SERVICES)
        return _parsed(admin.SERVICES, admin.Services.from_json, data)

    async def restart_service(self, service: str) -> admin.RestartRequested:
        """Ask the supervisor to restart ``service`` (a name, ``workers`` or ``all``)."""
        path = admin.restart_path(service)
        return _parsed(path, admin.RestartRequested.from_json, await self._data("POST", path))

    async def queue(self) -> admin.QueueStatistics:
        data = await self._data("GET", admin.QUEUE)
        return _parsed(admin.QUEUE, admin.QueueStatistics.from_json, data)

    async def jobs(self, *, status: str | None = None, limit: int = 100) -> Listing[admin.Job]:
        params = {"status": status, "order": "desc"}
        return await self._all(admin.JOBS, admin.Job.from_json, params, limit=limit)

    async def retry_job(self, job_id: int) -> str:
        await self._data("POST", admin.job_path(job_id, "retry"))
        return f"job {job_id} queued again"

    async def cancel_job(self, job_id: int) -> str:
        await self._data("POST", admin.job_path(job_id, "cancel"))
        return f"job {job_id} canceled"

    async def store_disks(self, *, hours: int = 24) -> list[admin.StoreDisk]:
        """The file systems of the store directories as last sampled, with the trend of the
        last ``hours`` (``GET /api/v1/admin/storage/``); from ``/metrics``, without a trend,
        before any worker sampled them or on a server without that route."""
        try:
            data = await self._data("GET", admin.STORAGE, params={"hours": hours})
        except KilnApiError as error:
            if error.status != 404 or isinstance(error, KilnUnreachable):
                raise
        else:
            stores = data.get("stores") if isinstance(data, Mapping) else None
            sampled = [
                _parsed(admin.STORAGE, admin.StoreDisk.from_json, item) for item in _list_of(stores)
            ]
            if sampled:
                return sampled
        # No worker has sampled a store yet, or an older server: the web's own measurement.
        try:
            response = await self._send("GET", admin.METRICS)
        except KilnApiError as error:
            if error.status != 404 or isinstance(error, KilnUnreachable):
                raise
            raise KilnApiError(
                "the server does not serve /metrics (CondaStoreServer.enable_metrics), where the "
                "store's disk is read from"
            ) from None
        return admin.store_disks(response.text)

    async def configuration(self) -> admin.Configuration:
        """The effective configuration (secrets masked), with each value's source."""
        data = await self._data("GET", admin.CONFIGURATION)
        return _parsed(admin.CONFIGURATION, admin.Configuration.from_json, data)

    async def change_option(
        self, section: str, option: str, value: Any, *, dry_run: bool
    ) -> admin.ConfigurationChange:
        """Validate (``dry_run``) or write ``c.<section>.<option> = value`` to the
        configuration file; the answer says which services must restart."""
        body = {"class": section, "option": option, "value": value, "dry_run": dry_run}
        data = await self._data("PATCH", admin.CONFIGURATION, body=body)
        return _parsed(admin.CONFIGURATION, admin.ConfigurationChange.from_json, data)

    async def service_logs(
        self, *, service: str | None = None, level: str | None = None, lines: int = 500
    ) -> admin.ServiceLogs:
        """The latest ``lines`` records of the supervisor's and services' logs (oldest first),
        and the services there are logs of."""
        params = {"service": service, "level": level, "lines": lines}
        data = await self._data("GET", admin.LOGS, params=params)
        return _parsed(admin.LOGS, admin.ServiceLogs.from_json, data)

    async def follow_service_logs(
        self, *, service: str | None = None, level: str | None = None, lines: int = 500
    ) -> AsyncIterator[admin.LogRecord]:
        """The latest ``lines`` records, then each new one as it is written (the server sends
        one JSON object per line), until the caller stops."""
        params = _query({"service": service, "level": level, "follow": "true", "lines": lines})
        try:
            async with self._http.stream(
                "GET",
                admin.LOGS,
                params=params,
                headers=self._headers(),
                timeout=httpx.Timeout(DEFAULT_TIMEOUT, read=None),
            ) as response:
                if response.is_error:
                    await response.aread()
                    message, code = error_message(response)
                    raise KilnApiError(message, status=response.status_code, code=code)
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(record, Mapping):
                        yield admin.LogRecord.from_json(record)
        except httpx.TransportError as error:
            raise KilnUnreachable(_unreachable(self.url, error)) from error

    async def accounts(self) -> list[Account]:
        data = await self._data("GET", admin.USERS)
        return [_parsed(admin.USERS, Account.from_json, item) for item in _list_of(data)]

    async def create_account(self, username: str, password: str, *, is_admin: bool) -> Account:
        body = {"username": username, "password": password, "is_admin": is_admin}
        return _parsed(
            admin.USERS, Account.from_json, await self._data("POST", admin.USERS, body=body)
        )

    async def update_account(
        self,
        username: str,
        *,
        password: str | None = None,
        disabled: bool | None = None,
        is_admin: bool | None = None,
    ) -> Account:
        """Change an account: a new password, (re-)enable or disable it, grant or take admin."""
        body = {
            key: value
            for key, value in (
                ("password", password),
                ("disabled", disabled),
                ("is_admin", is_admin),
            )
            if value is not None
        }
        path = f"{admin.USERS}{username}/"
        return _parsed(path, Account.from_json, await self._data("PATCH", path, body=body))


def _query(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Query parameters without the unset ones (None)."""
    if not params:
        return None
    return {key: value for key, value in params.items() if value is not None}


def _unreachable(url: str, error: httpx.TransportError) -> str:
    reason = str(error) or type(error).__name__
    if isinstance(error, httpx.TimeoutException):
        reason = f"no answer in time ({type(error).__name__})"
    return f"cannot reach Kiln at {url}: {reason}"


def _parsed(path: str, parse: Callable[[JSON], T], data: Any) -> T:
    if not isinstance(data, Mapping):
        raise KilnApiError(f"{path}: expected an object, got {type(data).__name__}")
    try:
        return parse(data)
    except ValueError as error:
        raise KilnApiError(f"{path}: unexpected answer: {error}") from None


def _mapping_of(data: Any) -> JSON:
    return data if isinstance(data, Mapping) else {}


def _list_of(data: Any) -> list[JSON]:
    return [item for item in data if isinstance(item, Mapping)] if isinstance(data, list) else []


def _now_plus(seconds: int) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()
