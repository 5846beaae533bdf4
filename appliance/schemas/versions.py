"""Conda's order of version strings, as py-rattler implements it (epoch, components with
``dev`` first and ``post`` last, the local part)."""

from __future__ import annotations

from functools import cmp_to_key

from rattler import Version


def compare_versions(first: str, second: str) -> int:
    """-1, 0 or 1 as ``first`` is older than, the same as or newer than ``second`` by conda's
    rules (``1.1dev1 < 1.1a1 < 1.1rc1 < 1.1 == 1.1.0 < 1.1.post1 < 1.2``); versions that are
    not valid conda versions compare as text, after every valid one."""
    try:
        a, b = Version(first), Version(second)
    except Exception:  # rattler's InvalidVersionError (and whatever else it raises)
        valid = (_valid(first), _valid(second))
        if valid[0] != valid[1]:
            return -1 if valid[0] else 1
        return (first > second) - (first < second)
    return (a > b) - (a < b)


def _valid(text: str) -> bool:
    try:
        Version(text)
    except Exception:
        return False
    return True


#: Sort key of :func:`compare_versions` (``sorted(versions, key=version_key)``).
version_key = cmp_to_key(compare_versions)
