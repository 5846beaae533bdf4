"""Logging in and out: conda-store's auth routes, at the url prefix (not under ``/api/v1``).

``GET /login/?next=``
    Local accounts and ``DummyAuthentication``: a small HTML form (``Authentication.login_html``
    replaces Kiln's form when set). OAuth classes: a page with a button "Log in with
    <provider>" linking to the provider's ``authorize_url`` with a random ``state``, kept in a
    short-lived sealed HttpOnly cookie (with ``login_html`` set, that page instead,
    ``{authorization_url}`` filled in). A button rather than a redirect: people see where they
    are sent, and a failed login at the provider does not loop straight back to it.
    The pages wear the web UI's look (its stylesheet, ``<prefix>/ui/static/kiln.css``; with
    ``enable_ui`` off they are plain HTML).
``POST /login/?next=``
    A JSON body ``{username, password}`` (what conda-store's client sends) or a form (the web
    page). Success: a login session (appliance.services.accounts), its token in the session
    cookie (``Authentication.cookie_name``: HttpOnly, SameSite=Strict, Secure over https,
    ``cookie_domain``, path = url prefix, max-age = the session's lifetime), and
    ``{"status": "ok", "data": {"redirect_url": ...}}`` (a 303 to it for forms). Wrong
    credentials: 403 ``Invalid authentication credentials``, nothing changed. After
    :data:`LoginThrottle.limit` failures for one user name from one address within
    :data:`LoginThrottle.window` seconds: 429 until the window has passed (per web process).
``GET /oauth_callback/?code=&state=``
    The provider's redirect back: the state must match the cookie's, the code is exchanged
    for the user name (appliance.auth.oauth), the account found or created, the session cookie
    set. The answer is a small page that moves on to ``next`` by itself: a 303 would keep the
    navigation "cross-site" (it started at the provider), and browsers do not send a
    SameSite=Strict cookie on it, so the first page after logging in would look logged out
    (conda-store answered with such a page for the same reason).
``POST /logout/?next=`` (and ``GET`` for links)
    Revokes the cookie's token, clears the cookie (same domain and path) and answers 303 to
    ``next``. The old cookie gets 401 from then on.

``next`` must be a path on this server (``/...``); anything else (another host, a scheme,
``//host``) is replaced by the url prefix, so the login page cannot be used to send people
elsewhere. Login forms are CSRF-protected like cookie-authenticated writes
(appliance.api.security.check_same_origin): a login POST from another site's page is refused,
so nobody can log a victim's browser into the attacker's account.
"""

from __future__ import annotations

import asyncio
import html
import json
import time
from collections import deque
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from litestar import MediaType, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.exceptions import (
    ClientException,
    HTTPException,
    NotFoundException,
    TooManyRequestsException,
    ValidationException,
)
from litestar.openapi import ResponseSpec
from litestar.params import FromQuery, QueryParameter
from litestar.response import Redirect

from appliance.api.context import ApiContext
from appliance.api.dependencies import Context
from appliance.api.envelope import ERROR_RESPONSES, ErrorBody, Ok
from appliance.api.security import check_same_origin
from appliance.auth.oauth import (
    OAuthClient,
    OAuthProviderError,
    OAuthRefused,
    check_state,
    new_state,
    open_state,
    seal_state,
)
from appliance.auth.tokens import InvalidToken, verify
from appliance.common.errors import KilnError
from appliance.config.auth import (
    DummyAuthentication,
    GenericOAuthAuthentication,
    GithubOAuthAuthentication,
    JupyterHubOAuthAuthentication,
)
from appliance.schemas import api as wire
from appliance.services import accounts
from appliance.services.tokens import Signer

#: Longest user name and password a login form takes.
MAX_USERNAME, MAX_PASSWORD = 255, 1024

NextUrl = Annotated[
    str | None,
    QueryParameter(name="next", description="where to go afterwards: a path on this server"),
]


#: The ``state`` query parameter (``state`` is a name Litestar reserves for handlers).
ReturnedState = Annotated[
    str | None, QueryParameter(name="state", description="the state Kiln sent the provider")
]


# --- where things are --------------------------------------------------------------------


def _prefix(context: ApiContext) -> str:
    """The url prefix without its trailing slash (``""`` at the root)."""
    return context.settings.url_prefix.rstrip("/")


def _home(context: ApiContext) -> str:
    return _prefix(context) + "/"


def _cookie_path(context: ApiContext) -> str:
    return _prefix(context) or "/"


def _local_target(next_url: str | None, context: ApiContext) -> str:
    """``next_url`` when it is a path on this server, else the url prefix."""
    if not next_url or not next_url.startswith("/") or next_url.startswith("//"):
        return _home(context)
    if "\\" in next_url or any(ord(c) < 32 or ord(c) == 127 for c in next_url):
        return _home(context)
    parts = urlsplit(next_url)
    if parts.scheme or parts.netloc:
        return _home(context)
    return next_url


def _callback_url(request: Request[Any, Any, Any], context: ApiContext) -> str:
    auth = context.authentication
    configured = getattr(auth, "oauth_callback_url", "")
    if callable(configured):
        return str(configured(request))
    if configured:
        return str(configured)
    return f"{request.url.scheme}://{request.url.netloc}{_prefix(context)}/oauth_callback/"


def _state_cookie(context: ApiContext) -> str:
    return f"{context.tokens.cookie_name}-oauth-state"


# --- the session cookie ------------------------------------------------------------------


def _signer(context: ApiContext) -> Signer:
    return Signer(context.tokens.secret, context.tokens.algorithm)


def _lifetime(context: ApiContext) -> timedelta:
    return timedelta(seconds=context.tokens.session_lifetime)


def _set_session(
    response: Response[Any],
    request: Request[Any, Any, Any],
    context: ApiContext,
    login: accounts.LoginSession,
) -> None:
    response.set_cookie(
        key=context.tokens.cookie_name,
        value=login.token,
        max_age=int(context.tokens.session_lifetime),
        path=_cookie_path(context),
        domain=context.tokens.cookie_domain,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


# --- failed logins -----------------------------------------------------------------------


class LoginThrottle:
    """Failed password logins per (address, user name), in one web process."""

    #: Failures allowed within :attr:`window` seconds before logins are refused (429).
    limit = 10
    window = 300.0
    #: Keys remembered at most (the oldest are forgotten first).
    capacity = 10_000

    def __init__(self) -> None:
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.get(key, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def retry_after(self, key: str, now: float | None = None) -> int | None:
        """Seconds until ``key`` may try again, or None when it may now."""
        now = time.monotonic() if now is None else now
        failures = self._recent(key, now)
        if len(failures) < self.limit:
            return None
        return max(1, int(failures[0] + self.window - now) + 1)

    def failed(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        failures = self._recent(key, now)
        failures.append(now)
        self._failures.pop(key, None)
        self._failures[key] = failures
        while len(self._failures) > self.capacity:
            self._failures.pop(next(iter(self._failures)))

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)


def _throttle(request: Request[Any, Any, Any]) -> LoginThrottle:
    throttle = request.app.state.get("kiln_login_throttle")
    if not isinstance(throttle, LoginThrottle):
        throttle = LoginThrottle()
        request.app.state["kiln_login_throttle"] = throttle
    return throttle


# --- pages -------------------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{head}<title>{title} · Kiln</title>
<link rel="stylesheet" href="{prefix}/ui/static/kiln.css">
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <nav aria-label="Main"><a class="brand" href="{prefix}/ui/">Kiln</a></nav>
</header>
<main id="main">
<h1>{title}</h1>
{body}
</main>
</body>
</html>
"""


def _page(
    context: ApiContext, title: str, body: str, *, status: int = 200, head: str = ""
) -> Response[str]:
    page = _PAGE.format(
        title=html.escape(title), body=body, head=head, prefix=html.escape(_prefix(context))
    )
    return Response(
        page, media_type=MediaType.HTML, status_code=status, headers={"Cache-Control": "no-store"}
    )


def _problem(error: str | None) -> str:
    return f'<p class="problem" role="alert">{html.escape(error)}</p>\n' if error else ""


def _login_form(context: ApiContext, target: str, *, error: str | None = None) -> str:
    notice = _problem(error)
    custom = context.authentication.login_html
    if custom:
        return notice + custom
    action = html.escape(f"{_prefix(context)}/login/?next={quote(target, safe='/')}")
    return (
        f"{notice}"
        f'<form class="stack" method="post" action="{action}">\n'
        '<label>User name <input name="username" autocomplete="username" required '
        "autofocus></label>\n"
        '<label>Password <input name="password" type="password" '
        'autocomplete="current-password" required></label>\n'
        '<div class="actions"><button type="submit">Log in</button></div>\n</form>'
    )


def provider_name(auth: GenericOAuthAuthentication) -> str:
    """What the login button calls the OAuth provider: GitHub, JupyterHub, or the host of a
    generic provider's ``authorize_url``."""
    if isinstance(auth, GithubOAuthAuthentication):
        return "GitHub"
    if isinstance(auth, JupyterHubOAuthAuthentication):
        return "JupyterHub"
    return urlsplit(auth.authorize_url).netloc or "your organization's login"


def _oauth_buttons(auth: GenericOAuthAuthentication, url: str) -> str:
    """The login page of an OAuth class: a button per configured provider (one: Kiln
    configures one authentication class)."""
    name = html.escape(provider_name(auth))
    return (
        f"<p>Kiln logs you in through {name}: you go there to log in and come back here.</p>\n"
        f'<p class="actions"><a class="button" href="{html.escape(url)}">'
        f"Log in with {name}</a></p>"
    )


# --- routes ------------------------------------------------------------------------------


def _error(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorBody, description=description, generate_examples=False)


_REDIRECT = ResponseSpec(data_container=None, description="Redirect", generate_examples=False)


def _responses(*codes: int, **more: ResponseSpec) -> dict[int, ResponseSpec]:
    """The API's error answers ``codes``, plus ``more`` (``r303=...``: status 303)."""
    found: dict[int, ResponseSpec] = {code: ERROR_RESPONSES[code] for code in codes}
    found.update({int(name.removeprefix("r")): spec for name, spec in more.items()})
    return found


def _is_oauth(context: ApiContext) -> bool:
    return isinstance(context.authentication, GenericOAuthAuthentication)


@get(
    "/login/",
    operation_id="login_page",
    summary="The login page: a form, or a button leading to the OAuth provider",
    tags=["auth"],
    media_type=MediaType.HTML,
    responses=_responses(400),
)
async def login_page(
    request: Request[Any, Any, Any], context: Context, next_url: NextUrl = None
) -> Response[str]:
    target = _local_target(next_url, context)
    auth = context.authentication
    if not isinstance(auth, GenericOAuthAuthentication):
        return _page(context, "Log in to Kiln", _login_form(context, target))
    state = new_state()
    url = OAuthClient.from_config(auth).authorization_url(
        redirect_uri=_callback_url(request, context), state=state
    )
    if auth.login_html:
        body = auth.login_html.replace("{authorization_url}", html.escape(url))
    else:
        body = _oauth_buttons(auth, url)
    response = _page(context, "Log in to Kiln", body)
    response.set_cookie(
        key=_state_cookie(context),
        value=seal_state(context.session_secret, state, target),
        max_age=600,
        path=_cookie_path(context),
        domain=context.tokens.cookie_domain,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",  # it must come back on the provider's (cross-site) redirect
    )
    return response


async def _credentials(request: Request[Any, Any, Any]) -> tuple[str, str, bool]:
    """``(username, password, from_a_form)``; 400/415 saying what to send."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        username, password, is_form = form.get("username"), form.get("password"), True
    elif media in ("", "application/json") or media.endswith("+json"):
        try:
            data = json.loads(await request.body())
        except ValueError as error:
            raise ValidationException(f"the body is not valid JSON: {error}") from None
        if not isinstance(data, dict):
            raise ValidationException('send a JSON object: {"username": ..., "password": ...}')
        username, password, is_form = data.get("username"), data.get("password"), False
    else:
        raise ClientException(
            f"cannot read a login from {media}: send JSON {{username, password}} or a form",
            status_code=415,
        )
    if isinstance(username, UploadFile) or isinstance(password, UploadFile):
        raise ValidationException("username and password must be text, not files")
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        raise ValidationException("username and password are required, as text")
    if len(username) > MAX_USERNAME or len(password) > MAX_PASSWORD:
        raise ValidationException(
            f"username (at most {MAX_USERNAME} characters) or password (at most "
            f"{MAX_PASSWORD}) is too long"
        )
    return username, password, is_form


async def _open_session(context: ApiContext, username: str, password: str) -> accounts.LoginSession:
    auth = context.authentication
    if isinstance(auth, DummyAuthentication):
        accounts.check_dummy_password(password, auth.password)
        return await context.db.run(
            accounts.open_external_session, username, _signer(context), _lifetime(context)
        )
    candidate = await context.db.run(accounts.find_login, username)
    user_id = await asyncio.to_thread(accounts.check_login, candidate, password)
    return await context.db.run(
        accounts.open_session, user_id, _signer(context), _lifetime(context)
    )


@post(
    "/login/",
    operation_id="log_in",
    summary="Log in with a user name and password (JSON or a form); sets the session cookie",
    tags=["auth"],
    status_code=200,
    responses=_responses(
        400,
        403,
        r303=_REDIRECT,
        r415=_error("The body is neither JSON nor a form"),
        r429=_error("Too many failed logins for this user name from this address; wait"),
    ),
)
async def log_in(
    request: Request[Any, Any, Any], context: Context, next_url: NextUrl = None
) -> Response[Any]:
    check_same_origin(request)
    if _is_oauth(context):
        raise KilnError(
            f"this server logs in through OAuth: open {_prefix(context)}/login/ in a browser, "
            "or use a token (Authorization: Bearer TOKEN)"
        )
    username, password, is_form = await _credentials(request)
    target = _local_target(next_url, context)
    key = f"{request.client.host if request.client else '?'}|{username.lower()}"
    throttle = _throttle(request)
    wait = throttle.retry_after(key)
    if wait is not None:
        raise TooManyRequestsException(
            f"too many failed logins for {username}; try again in {wait} seconds",
            headers={"Retry-After": str(wait)},
        )
    try:
        login = await _open_session(context, username, password)
    except KilnError as error:
        if isinstance(error, accounts.InvalidCredentials):
            throttle.failed(key)
        if not is_form:
            raise
        status = 403 if error.code == "forbidden" else 400
        return _page(
            context, "Log in to Kiln", _login_form(context, target, error=error.message),
            status=status,
        )  # fmt: skip
    throttle.succeeded(key)
    response: Response[Any]
    if is_form:
        response = Redirect(target, status_code=303)
    else:
        response = Response(Ok(data=wire.LoginRedirect(redirect_url=target)))
    _set_session(response, request, context, login)
    return response


@get(
    "/oauth_callback/",
    operation_id="oauth_callback",
    summary="Where the OAuth provider sends the browser back after logging in",
    tags=["auth"],
    media_type=MediaType.HTML,
    responses=_responses(400, 403, 404, r502=_error("The OAuth provider cannot be used")),
)
async def oauth_callback(
    request: Request[Any, Any, Any],
    context: Context,
    code: FromQuery[str | None] = None,
    returned_state: ReturnedState = None,
    error: FromQuery[str | None] = None,
    error_description: FromQuery[str | None] = None,
) -> Response[Any]:
    auth = context.authentication
    if not isinstance(auth, GenericOAuthAuthentication):
        raise NotFoundException("this server does not log in through OAuth")
    expected, target = open_state(
        context.session_secret, request.cookies.get(_state_cookie(context))
    )
    check_state(expected, returned_state)
    if error:
        raise OAuthRefused(f"the OAuth provider refused the login: {error_description or error}")
    if not code:
        raise KilnError("the OAuth provider sent no code: start again at /login/")
    try:
        username = await OAuthClient.from_config(auth).username(
            code, redirect_uri=_callback_url(request, context)
        )
    except OAuthProviderError as failure:
        raise HTTPException(detail=failure.message, status_code=502) from None
    login = await context.db.run(
        accounts.open_external_session, username, _signer(context), _lifetime(context)
    )
    link = html.escape(_local_target(target, context))
    response = _page(
        context,
        "Logged in",
        f'<p>Logged in as {html.escape(login.username)}. <a href="{link}">Continue</a></p>',
        head=f'<meta http-equiv="refresh" content="0;url={link}">\n',
    )
    response.delete_cookie(_state_cookie(context), path=_cookie_path(context),
                           domain=context.tokens.cookie_domain)  # fmt: skip
    _set_session(response, request, context, login)
    return response


async def _log_out(
    request: Request[Any, Any, Any], context: ApiContext, next_url: str | None
) -> Response[Any]:
    token = request.cookies.get(context.tokens.cookie_name)
    if token:
        check_same_origin(request)
        try:
            claims = verify(token, secret=context.tokens.secret, algorithm=context.tokens.algorithm)
        except InvalidToken:
            claims = None  # expired or not Kiln's: nothing to revoke
        if claims is not None:
            await context.db.run(accounts.end_session, claims.token_id)
            context.access_cache.forget(claims.token_id)
    response = Redirect(_local_target(next_url, context), status_code=303)
    response.delete_cookie(
        context.tokens.cookie_name, path=_cookie_path(context), domain=context.tokens.cookie_domain
    )
    return response


@post(
    "/logout/",
    operation_id="log_out",
    summary="Log out: revoke the session and clear its cookie",
    tags=["auth"],
    status_code=303,
    responses=_responses(403, r303=_REDIRECT),
)
async def log_out(
    request: Request[Any, Any, Any], context: Context, next_url: NextUrl = None
) -> Response[Any]:
    return await _log_out(request, context, next_url)


@get(
    "/logout/",
    operation_id="log_out_link",
    summary="Log out from a link (same as POST /logout/)",
    tags=["auth"],
    status_code=303,
    responses=_responses(r303=_REDIRECT),
)
async def log_out_link(
    request: Request[Any, Any, Any], context: Context, next_url: NextUrl = None
) -> Response[Any]:
    return await _log_out(request, context, next_url)


HANDLERS: list[Any] = [login_page, log_in, oauth_callback, log_out, log_out_link]
