"""Reading the API's JSON: small typed readers that name the field that is not what it should be.

Each raises :class:`ValueError` for a missing or mistyped field the console needs; the
``optional_*`` readers answer None (or empty) instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

#: A JSON object as decoded.
JSON = Mapping[str, Any]


def text(data: JSON, key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key!r} should be text, got {value!r}")
    return value


def optional_text(data: JSON, key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def number(data: JSON, key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key!r} should be a number, got {value!r}")
    return int(value)


def optional_number(data: JSON, key: str) -> int | None:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def optional_float(data: JSON, key: str) -> float | None:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def moment(data: JSON, key: str) -> datetime | None:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        return ()
    return tuple(str(item) for item in value)


def bindings(value: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, Mapping):
        return {}
    return {str(pattern): strings(roles) for pattern, roles in value.items()}


def mapping(value: Any) -> JSON:
    return value if isinstance(value, Mapping) else {}


def objects(value: Any) -> list[JSON]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]
