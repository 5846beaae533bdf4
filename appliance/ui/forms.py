"""The UI's forms: the token that ties a form to its caller, reading a submitted form, and the
redirect after a change (post/redirect/get) with a notice the next page shows.

Every form that changes something carries ``csrf``, an HMAC of the caller's token id under the
server's session secret (:func:`form_token`). :func:`read_form` refuses a submission whose token
does not match the caller that sends it, so another site cannot make a logged-in browser change
anything, even where a browser sends no ``Origin`` and the cookie's ``SameSite=Strict`` is not
honoured (the API's same-origin check, :func:`appliance.api.security.check_same_origin`, runs
before this too). Permission checks stay with the use cases: a form only posts what the caller
could send to the API.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from litestar import Request
from litestar.exceptions import PermissionDeniedException
from litestar.response import Redirect

from appliance.services.access import Caller

#: The notices a page shows after a redirect (``?done=<key>``): fixed texts, so a link cannot
#: put words of its own on a Kiln page.
NOTICES: Mapping[str, str] = {
    "submitted": "The specification was submitted; its build is queued.",
    "unchanged": "Nothing to build: this specification already built successfully; here is that "
    "build.",
    "rebuilt": "A new build of this environment is queued.",
    "switched": "The current build was switched.",
    "described": "The description was saved.",
    "deleted": "It was deleted.",
    "canceled": "The build is being canceled.",
    "cloned": "The environment was cloned; its first build is queued.",
    "created": "Created.",
    "revoked": "The token was revoked; it no longer works.",
    "saved": "Saved.",
    "granted": "The role mapping was saved.",
    "ungranted": "The role mapping was removed.",
}


def form_token(secret: str, caller: Caller | None) -> str:
    """The ``csrf`` value of ``caller``'s forms (stable for the life of its token)."""
    subject = caller.claims.token_id if caller is not None and caller.claims else "anonymous"
    return hmac.new(secret.encode(), f"form:{subject}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Form:
    """A submitted form's fields (the ``csrf`` field checked and left out)."""

    fields: Mapping[str, list[str]]

    def text(self, name: str, default: str = "") -> str:
        """The field ``name``'s last value, stripped of surrounding white space."""
        values = self.fields.get(name)
        return values[-1].strip() if values else default

    def raw(self, name: str, default: str = "") -> str:
        """The field ``name``'s last value as sent (a YAML document keeps its indentation)."""
        values = self.fields.get(name)
        return values[-1] if values else default

    def values(self, name: str) -> list[str]:
        """Every value of the field ``name`` (repeated fields, checkboxes), stripped."""
        return [value.strip() for value in self.fields.get(name, [])]

    def has(self, name: str) -> bool:
        """Whether the form sent the field ``name`` (a pressed button names itself)."""
        return name in self.fields


async def read_form(request: Request[Any, Any, Any], caller: Caller, secret: str) -> Form:
    """The form ``request`` carries, after checking its ``csrf`` token against ``caller``'s.

    A missing or foreign token is a 403 saying to reload the page (an old tab, a session that
    ended, or another site).
    """
    data = await request.form()
    fields: dict[str, list[str]] = {}
    for key, value in data.multi_items():
        if isinstance(value, str):
            fields.setdefault(key, []).append(value)
    sent = (fields.pop("csrf", None) or [""])[-1]
    if not hmac.compare_digest(sent, form_token(secret, caller)):
        raise PermissionDeniedException(
            "this form does not belong to your current session (it is from an old page, your "
            "session ended, or another site sent it): reload the page and submit it again"
        )
    return Form(fields)


def see_other(url: str, done: str | None = None, **query: str) -> Redirect:
    """A 303 to ``url`` (post/redirect/get), showing the notice ``done`` there."""
    if done is not None:
        assert done in NOTICES, done
        query = {**query, "done": done}
    return Redirect(url + (f"?{urlencode(query)}" if query else ""), status_code=303)
