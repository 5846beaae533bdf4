"""The OAuth 2 authorization-code flow, client side: what ``GenericOAuthAuthentication`` (and
its GitHub and JupyterHub flavours, which only derive other URLs) needs to log a user in.

1. :meth:`OAuthClient.authorization_url` sends the browser to the provider with Kiln's
   ``client_id``, ``redirect_uri``, ``response_type=code``, the scope and a random ``state``.
   The state travels back in a short-lived cookie sealed with the server's session secret
   (:func:`seal_state`), together with where to go after logging in.
2. The provider redirects back to ``/oauth_callback/?code=...&state=...``; :func:`open_state`
   checks the cookie (signature, age) and the state must equal the one the provider returned.
3. :meth:`OAuthClient.username` exchanges the code for an access token at ``access_token_url``
   and reads the user name at ``user_data_url`` (``user_data_key`` of its JSON).

Provider failures raise :class:`OAuthProviderError` (the provider cannot be reached, or answered
something unusable: a gateway error) or :class:`OAuthRefused` (the provider said no, e.g. the
code is not valid or the user denied access).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

from appliance.common.errors import KilnError
from appliance.config.auth import GenericOAuthAuthentication

#: How long a login may take at the provider before its state expires, in seconds.
STATE_LIFETIME = 600
#: Seconds Kiln waits for the provider on each call.
PROVIDER_TIMEOUT = 15.0


class OAuthProviderError(KilnError):
    """The OAuth provider could not be used."""

    code = "oauth_provider"


class OAuthRefused(KilnError):
    """The OAuth provider refused the login."""

    code = "forbidden"


class InvalidState(KilnError):
    """The login's state is missing, expired or does not match: start again at /login/."""

    code = "invalid_oauth_state"


def new_state() -> str:
    """A fresh random state value."""
    return secrets.token_urlsafe(24)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, payload: str) -> str:
    key = hashlib.sha256(b"kiln-oauth-state:" + secret.encode()).digest()
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def seal_state(
    secret: str, state: str, next_url: str, *, now: float | None = None, lifetime: int = 0
) -> str:
    """``state`` and ``next_url`` as a cookie value only this server can have written."""
    expires = int((now if now is not None else time.time()) + (lifetime or STATE_LIFETIME))
    payload = _b64(json.dumps({"s": state, "n": next_url, "e": expires}).encode())
    return f"{payload}.{_signature(secret, payload)}"


def open_state(secret: str, sealed: str | None, *, now: float | None = None) -> tuple[str, str]:
    """``(state, next_url)`` of a :func:`seal_state` value; raises :class:`InvalidState`."""
    if not sealed:
        raise InvalidState(
            "the login state is missing (the login started elsewhere, or cookies are "
            "blocked): start again at /login/"
        )
    payload, _, signature = sealed.partition(".")
    if not hmac.compare_digest(signature.encode(), _signature(secret, payload).encode()):
        raise InvalidState("the login state was not issued by this server: start again")
    try:
        data = json.loads(_unb64(payload))
        state, next_url, expires = str(data["s"]), str(data["n"]), int(data["e"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidState("the login state is malformed: start again at /login/") from None
    if expires < (now if now is not None else time.time()):
        raise InvalidState("the login took too long and its state expired: start again")
    return state, next_url


def check_state(expected: str, returned: str | None) -> None:
    """The state the provider returned must be the one this browser was sent with."""
    if not returned or not hmac.compare_digest(expected.encode(), returned.encode()):
        raise InvalidState(
            "the OAuth state does not match this browser's login (a forged or stale "
            "callback): start again at /login/"
        )


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = "&".join(part for part in (parts.query, urlencode(params)) if part)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


@dataclass(frozen=True)
class OAuthClient:
    """The provider's endpoints and Kiln's registration there."""

    authorize_url: str
    access_token_url: str
    user_data_url: str
    user_data_key: str
    client_id: str
    client_secret: str
    scope: str = ""
    tls_verify: bool = True
    timeout: float = PROVIDER_TIMEOUT

    @classmethod
    def from_config(cls, auth: GenericOAuthAuthentication) -> OAuthClient:
        return cls(
            authorize_url=auth.authorize_url,
            access_token_url=auth.access_token_url,
            user_data_url=auth.user_data_url,
            user_data_key=auth.user_data_key,
            client_id=auth.client_id,
            client_secret=auth.client_secret,
            scope=auth.access_scope,
            tls_verify=auth.tls_verify,
        )

    def authorization_url(self, *, redirect_uri: str, state: str) -> str:
        """Where the browser logs in at the provider."""
        params = {
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "state": state,
        }
        if self.scope:
            params["scope"] = self.scope
        return _with_query(self.authorize_url, params)

    async def username(self, code: str, *, redirect_uri: str) -> str:
        """The user name the provider vouches for, given the code it issued."""
        async with httpx.AsyncClient(verify=self.tls_verify, timeout=self.timeout) as client:
            access_token = await self._access_token(client, code, redirect_uri)
            return await self._username(client, access_token)

    async def _access_token(self, client: httpx.AsyncClient, code: str, redirect_uri: str) -> str:
        data = {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "code": code,
            "grant_type": "authorization_code",
            "redirect_uri": redirect_uri,
        }
        body = await self._call(
            client, "POST", self.access_token_url, data=data,
            headers={"Accept": "application/json"}, what="the access token",
        )  # fmt: skip
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            reason = body.get("error_description") or body.get("error")
            if reason:
                raise OAuthRefused(f"the OAuth provider refused the login: {reason}")
            raise OAuthProviderError(
                f"the OAuth provider's answer at {self.access_token_url} has no access_token"
            )
        return token

    async def _username(self, client: httpx.AsyncClient, access_token: str) -> str:
        body = await self._call(
            client, "GET", self.user_data_url, what="the user's data",
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
        )  # fmt: skip
        name = body.get(self.user_data_key)
        if not isinstance(name, str) or not name:
            raise OAuthProviderError(
                f"the user data from {self.user_data_url} has no {self.user_data_key!r} "
                "(GenericOAuthAuthentication.user_data_key)"
            )
        return name

    async def _call(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        *,
        what: str,
        headers: dict[str, str],
        data: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        try:
            response = await client.request(method, url, data=data, headers=headers)
        except httpx.HTTPError as error:
            raise OAuthProviderError(
                f"cannot reach the OAuth provider at {url} for {what}: {error}"
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code in (400, 401, 403) and isinstance(body, dict):
            reason = body.get("error_description") or body.get("error") or body.get("message")
            raise OAuthRefused(f"the OAuth provider refused the login: {reason or 'no reason'}")
        if response.status_code >= 400:
            raise OAuthProviderError(
                f"the OAuth provider answered {response.status_code} at {url} for {what}"
            )
        if not isinstance(body, dict):
            raise OAuthProviderError(f"the OAuth provider's answer for {what} at {url} is not JSON")
        return body
