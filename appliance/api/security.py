"""Who is calling: credentials from the request, verified, as a :class:`Caller`.

Credentials are read in conda-store's order: the session cookie, then ``Authorization: Bearer
<token>``, then ``Authorization: Basic base64(<any user>:<token>)`` (what ``docker login`` and
conda-store's client send). No credentials: an anonymous caller. Credentials that do not verify
(expired, forged, ``alg=none``, malformed): 401 saying why; conda-store silently treated them
as anonymous, which turned a typo into a confusing 403.

Cookie-authenticated requests that change something (POST, PUT, PATCH, DELETE) must come from
Kiln's own pages: a request whose ``Origin`` (or, without one, ``Referer``) names another site,
or that the browser marks ``Sec-Fetch-Site: cross-site``, is refused with 403. The cookie is
also ``SameSite=Strict``. Bearer and Basic credentials are never sent by a browser on its own,
so they need no such check.

Resolved callers are cached for two seconds per token and process (see
appliance.services.access.AccessCache): a token revoked by another process may work here for up
to that long; revocations through this process take effect at once.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from litestar import Request
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException

from appliance.api.context import ApiContext
from appliance.auth.tokens import InvalidToken, TokenClaims, check_role_bindings, verify
from appliance.common.errors import KilnError
from appliance.services.access import Caller

_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def credentials(request: Request[Any, Any, Any], cookie_name: str) -> tuple[str, str] | None:
    """``(token, source)`` from the request, source being ``cookie``, ``bearer`` or ``basic``."""
    cookie = request.cookies.get(cookie_name)
    if cookie:
        return cookie, "cookie"
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value, "bearer"
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise NotAuthorizedException(
                "malformed Basic credentials: expected base64 of '<user>:<token>'"
            ) from None
        _, _, password = decoded.partition(":")
        if not password:
            raise NotAuthorizedException("Basic credentials need a Kiln token as the password")
        return password, "basic"
    raise NotAuthorizedException(
        f"unsupported Authorization scheme {scheme!r}: use 'Bearer <token>' or Basic with a "
        "token as the password"
    )


def check_same_origin(request: Request[Any, Any, Any]) -> None:
    """Refuse a cookie-authenticated change that a browser sent from another site."""
    if request.method not in _UNSAFE:
        return
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        raise PermissionDeniedException("cross-site request refused")
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        if origin == "null":
            raise PermissionDeniedException("cross-site request refused (Origin: null)")
        return
    source = urlsplit(origin)
    host = request.headers.get("host", "")
    if source.netloc.lower() != host.lower():
        raise PermissionDeniedException(
            f"cross-site request refused: Origin {source.scheme}://{source.netloc} is not this "
            "server"
        )


def predefined_claims(token: str, context: ApiContext) -> TokenClaims | None:
    entry = context.tokens.predefined_tokens.get(token)
    if entry is None:
        return None
    return TokenClaims(
        role_bindings=check_role_bindings(entry.get("role_bindings", {})),
        expires_at=datetime.max.replace(tzinfo=UTC),
        primary_namespace=str(entry.get("primary_namespace") or "default"),
        subject=entry.get("username"),
        token_id="predefined",
    )


def identify(request: Request[Any, Any, Any], context: ApiContext) -> Caller:
    """The caller of ``request`` (anonymous when it carries no credentials)."""
    found = credentials(request, context.tokens.cookie_name)
    if found is None:
        return Caller(context.policy)
    token, source = found
    if source == "cookie":
        check_same_origin(request)
    claims = predefined_claims(token, context)
    if claims is not None:
        return Caller(context.policy, claims, predefined=True)
    try:
        claims = verify(token, secret=context.tokens.secret, algorithm=context.tokens.algorithm)
    except InvalidToken as error:
        raise NotAuthorizedException(error.message) from None
    except KilnError as error:  # pragma: no cover - verify raises InvalidToken only
        raise NotAuthorizedException(error.message) from None
    return Caller(context.policy, claims, cache=context.access_cache)
