"""Editing a specification's YAML text as a person wrote it: line by line, so that comments
and layout stay (the editor's "add" of a package found by its search)."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Insertion:
    """The text after :func:`add_dependency`, the line it concerns, and what happened."""

    text: str
    line: int | None
    message: str
    added: bool


#: A conda package name (what search results offer).
PACKAGE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
_DEPENDENCIES = re.compile(r"^dependencies\s*:(?P<rest>.*)$")
_ITEM = re.compile(r"^(?P<indent>[ \t]*)-(?:[ \t]|$)")
_PIP_ITEM = re.compile(r"^[ \t]*-[ \t]*['\"]?pip['\"]?[ \t]*:")
_ENTRY_NAME = re.compile(
    r"^[ \t]*-[ \t]*['\"]?(?:[^\s:'\"]+::)?(?P<name>[A-Za-z0-9_][A-Za-z0-9_.+-]*)"
)


def add_dependency(text: str, package: str) -> Insertion:
    """``text`` with ``- package`` added at the end of its top-level ``dependencies:`` list
    (before a ``- pip:`` block, in the list's indentation), or a new ``dependencies:`` list at
    the end. Nothing changes when the package is already listed, when ``package`` is not a
    package name, or when the list is written on one line (``dependencies: [a, b]``)."""
    if not PACKAGE_NAME.match(package):
        return Insertion(text, None, f"{package!r} is not a package name", added=False)
    lines = text.split("\n")
    header = next((i for i, line in enumerate(lines) if _DEPENDENCIES.match(line)), None)
    if header is None:
        body = text if not text or text.endswith("\n") else text + "\n"
        added_at = body.count("\n") + 2
        return Insertion(
            f"{body}dependencies:\n  - {package}\n",
            added_at,
            f"Added {package} at line {added_at}.",
            added=True,
        )
    found = _DEPENDENCIES.match(lines[header])
    rest = found.group("rest").strip() if found else ""
    if rest == "[]" or (rest.startswith("[]") and rest[2:].lstrip().startswith("#")):
        lines[header] = "dependencies:"
    elif rest and not rest.startswith("#"):
        return Insertion(
            text,
            header + 1,
            f"The dependencies on line {header + 1} are written on one line; add {package} to "
            "that list yourself, or write one '- name' line per package.",
            added=False,
        )
    indent: str | None = None
    insert_at = header + 1
    for index in range(header + 1, len(lines)):
        line = lines[index]
        if not line.strip():
            continue
        if line.startswith("#"):
            continue
        if line[0] not in " \t-":
            break  # the next top-level key
        item = _ITEM.match(line)
        if item is not None and indent is None:
            indent = item.group("indent")
        if item is not None and item.group("indent") == indent:
            if _PIP_ITEM.match(line):
                break
            entry = _ENTRY_NAME.match(line)
            if entry is not None and entry.group("name").lower() == package.lower():
                return Insertion(
                    text,
                    index + 1,
                    f"{package} is already a dependency (line {index + 1}).",
                    added=False,
                )
        insert_at = index + 1
    lines.insert(insert_at, f"{indent if indent is not None else '  '}- {package}")
    return Insertion(
        "\n".join(lines), insert_at + 1, f"Added {package} at line {insert_at + 1}.", True
    )
