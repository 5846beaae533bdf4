"""Names of namespaces (and the rule they share with environment names).

A namespace name becomes a directory of the store, a URL path segment and an image name, so it
follows the environment-name rule (appliance.schemas.specification): letters, digits, ``_``,
``.``, ``+`` and ``-``, starting with a letter, digit or ``_``, no ``..``, at most 255
characters. conda-store also allowed ``@$&?^~=``; such names break URLs and shells, and Kiln
refuses them with a message naming the characters.
"""

from __future__ import annotations

import re

from appliance.common.errors import KilnError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
MAX_NAME_LENGTH = 255
_RULE = (
    "names use letters, digits, '_', '.', '+' and '-', start with a letter, digit or '_', and "
    f"have at most {MAX_NAME_LENGTH} characters"
)


class InvalidName(KilnError):
    """The name is not allowed."""

    code = "invalid_name"


def check_name(name: str, *, what: str = "namespace") -> str:
    """Return ``name`` if it is a valid name; raise :class:`InvalidName` saying why not."""
    if not name:
        raise InvalidName(f"the {what} name cannot be empty; {_RULE}")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"the {what} name is {len(name)} characters long; {_RULE}")
    if ".." in name:
        raise InvalidName(f"the {what} name {name!r} contains '..'; {_RULE}")
    if not NAME_PATTERN.match(name):
        bad = sorted({c for c in name if not re.match(r"[A-Za-z0-9_.+-]", c)})
        detail = (
            f"contains {', '.join(repr(c) for c in bad)}" if bad else f"starts with {name[0]!r}"
        )
        raise InvalidName(f"the {what} name {name[:80]!r} {detail}; {_RULE}")
    return name
