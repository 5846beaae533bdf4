"""What operators type into the console's forms, read and checked before anything is sent.

Each reader raises :class:`ValueError` with a message naming what is wrong and what is
allowed; the form shows it and nothing is sent. The server checks everything again.
"""

from __future__ import annotations

#: Roles a binding may name (the server's list; ``editor`` is conda-store's ``developer``).
ROLES = ("viewer", "developer", "editor", "admin")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def lifetime(text: str) -> int:
    """``30m``, ``12h``, ``7d``, ``2w`` (or plain seconds) in seconds; at least a minute."""
    text = text.strip().lower()
    value, unit = (text[:-1], text[-1]) if text and text[-1] in _UNITS else (text, "s")
    try:
        seconds = float(value) * _UNITS[unit]
    except ValueError:
        raise ValueError(
            f"lifetime {text!r}: expected a number with a unit, e.g. 30m, 12h, 7d or 2w"
        ) from None
    if seconds < 60:
        raise ValueError(f"lifetime {text!r}: a token must live at least one minute")
    return int(seconds)


def role_bindings(text: str) -> dict[str, list[str]]:
    """``default/*=viewer team/*=developer,admin``: space-separated ``PATTERN=ROLE[,ROLE]``."""
    bindings: dict[str, list[str]] = {}
    for entry in text.split():
        pattern, equals, roles = entry.partition("=")
        names = [role.strip() for role in roles.split(",") if role.strip()]
        namespace, slash, environment = pattern.partition("/")
        if not equals or not slash or not namespace or not environment or not names:
            raise ValueError(
                f"role binding {entry!r}: expected NAMESPACE/ENVIRONMENT=ROLE[,ROLE], e.g. "
                "'default/*=viewer'"
            )
        unknown = [name for name in names if name not in ROLES]
        if unknown:
            raise ValueError(
                f"role binding {entry!r}: unknown role {', '.join(unknown)}; allowed: "
                f"{', '.join(ROLES)}"
            )
        bindings.setdefault(pattern, []).extend(names)
    if not bindings:
        raise ValueError("give at least one role binding, e.g. 'default/*=viewer'")
    return bindings


def username(text: str) -> str:
    name = text.strip()
    if not name:
        raise ValueError("the user name is empty")
    return name


def password(text: str, repeated: str | None = None) -> str:
    if not text:
        raise ValueError("the password is empty")
    if repeated is not None and text != repeated:
        raise ValueError("the two passwords differ")
    return text
