"""Reading submitted text (YAML or JSON) into plain Python data that remembers its lines.

Specifications arrive as text from people, so every later error should point at a line. The text
is composed into YAML nodes with ruamel.yaml's safe parser (libyaml-backed when
``ruamel.yaml.clib`` is present: a 1 MB lockfile takes about half a second, where round-trip
loading takes seven times longer) and converted by this module, not by a YAML constructor, so
that Kiln decides what every scalar means:

- YAML 1.2 rules, as conda reads ``environment.yml``: ``yes``/``no``/``on`` stay text, ``1.10``
  is a number. The text of each plain scalar that became a number or a boolean is kept, so a
  caller that wants text (variables, versions) gets ``"1.10"``, not ``"1.1"``.
- mappings become :class:`LocatedMap` and sequences :class:`LocatedList`; both are ordinary
  ``dict``/``list`` objects that also carry the 1-based line of each key or item;
- duplicate keys, merge keys (``<<``), custom tags, self-referencing aliases, nesting deeper than
  :data:`MAX_DEPTH` and alias expansion beyond the size of the text itself are refused.

Text whose first character is ``{`` is tried as JSON first (fast, no line numbers); if the JSON
reader refuses it, the YAML reader takes over and reports the problem with a line number.
"""

from __future__ import annotations

import json
import math
from typing import Any, NoReturn

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from appliance.common.errors import SpecificationError

#: Deepest nesting accepted. Specifications nest 3 levels, conda-lock files 5.
MAX_DEPTH = 32

_TAG = "tag:yaml.org,2002:"
_TEXT_TAGS = {_TAG + "str", _TAG + "timestamp", _TAG + "binary"}


class LocatedMap(dict[Any, Any]):
    """A mapping read from YAML.

    ``lines[key]`` is the 1-based line of ``key``; ``raw[key]`` is the source text of a value that
    YAML read as a number or boolean; ``line`` is where the mapping starts.
    """

    def __init__(self, line: int | None = None) -> None:
        super().__init__()
        self.line = line
        self.lines: dict[Any, int] = {}
        self.raw: dict[Any, str] = {}


class LocatedList(list[Any]):
    """A sequence read from YAML: ``lines[i]`` is the 1-based line of item ``i``."""

    def __init__(self, line: int | None = None) -> None:
        super().__init__()
        self.line = line
        self.lines: list[int] = []
        self.raw: dict[int, str] = {}


def line_of(container: object, key: object) -> int | None:
    """The line of ``container[key]`` when the container was read from YAML, else ``None``."""
    if isinstance(container, LocatedMap):
        return container.lines.get(key)
    if isinstance(container, LocatedList) and isinstance(key, int):
        return container.lines[key] if 0 <= key < len(container.lines) else None
    return None


def start_line(container: object) -> int | None:
    """The line where ``container`` starts when it was read from YAML, else ``None``."""
    if isinstance(container, LocatedMap | LocatedList):
        return container.line
    return None


def raw_text(container: object, key: object) -> str | None:
    """The source text of ``container[key]`` when YAML read a plain scalar as a number or bool."""
    if isinstance(container, LocatedMap):
        return container.raw.get(key)
    if isinstance(container, LocatedList) and isinstance(key, int):
        return container.raw.get(key)
    return None


def fail(message: str, *, field: str | None = None, line: int | None = None) -> NoReturn:
    """Raise :class:`SpecificationError` with the location written in front of ``message``."""
    where = field or ""
    if line is not None:
        where = f"{where} (line {line})" if where else f"line {line}"
    raise SpecificationError(f"{where}: {message}" if where else message, field=field, line=line)


def describe(value: object) -> str:
    """What a parsed value is, in words a YAML author recognises."""
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def load_document(text: str) -> Any:
    """Parse ``text`` (YAML or JSON) into plain data; syntax problems raise SpecificationError."""
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text, object_pairs_hook=_unique_keys)
        except (ValueError, RecursionError):
            pass  # not strict JSON: the YAML reader explains what is wrong, with a line number
    return _load_yaml(text)


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


_SYNTAX_HINT = (
    "Indent with spaces (not tabs) and quote values that contain ': ', ' #' or start with one of "
    "[ ] { } * & ! | > % @"
)


def _load_yaml(text: str) -> Any:
    try:
        root = YAML(typ="safe").compose(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        column = f" at column {mark.column + 1}" if mark is not None else ""
        context = f" ({error.context})" if error.context else ""
        start = error.context_mark
        if context and start is not None and mark is not None and start.line != mark.line:
            context = f" ({error.context}, which starts at line {start.line + 1})"
        fail(
            f"the text is not valid YAML: {error.problem}{context}{column}. {_SYNTAX_HINT}",
            line=line,
        )
    except ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        fail(
            f"the text contains a character YAML does not allow "
            f"(#x{error.character:04x}: {error.reason}); remove it",
            line=line,
        )
    except YAMLError as error:
        fail(f"the text is not valid YAML: {error}. {_SYNTAX_HINT}")
    except RecursionError:
        fail(f"the document is nested too deeply (at most {MAX_DEPTH} levels)")
    if root is None:
        fail("the document is empty; write a mapping with at least a name and dependencies")
    # Each node needs at least one character of text unless an alias repeats it.
    return _Converter(budget=max(10_000, len(text))).convert(root, depth=0)


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


class _Converter:
    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.active: set[int] = set()

    def convert(self, node: Node, depth: int) -> Any:
        self.budget -= 1
        if self.budget < 0:
            fail(
                "YAML aliases expand this document to more data than its text holds; "
                "write the entries out instead of repeating anchors",
                line=_line(node),
            )
        if depth > MAX_DEPTH:
            fail(f"the document is nested more than {MAX_DEPTH} levels deep", line=_line(node))
        if isinstance(node, ScalarNode):
            return _scalar(node)
        if id(node) in self.active:
            fail("a YAML alias refers to the mapping or list that contains it", line=_line(node))
        self.active.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, depth)
            if isinstance(node, SequenceNode):
                return self._sequence(node, depth)
            fail(f"unsupported YAML node {type(node).__name__}", line=_line(node))
        finally:
            self.active.discard(id(node))

    def _mapping(self, node: MappingNode, depth: int) -> LocatedMap:
        if node.tag != _TAG + "map":
            fail(f"unsupported YAML tag {node.tag} on a mapping; remove the tag", line=_line(node))
        result = LocatedMap(_line(node))
        for key_node, value_node in node.value:
            line = _line(key_node)
            if not isinstance(key_node, ScalarNode):
                fail("mapping keys must be plain text, not lists or mappings", line=line)
            if key_node.tag == _TAG + "merge":
                fail("YAML merge keys (<<) are not supported; write the entries out", line=line)
            key = _scalar(key_node)
            if key in result:
                fail(
                    f"duplicate key {key!r} (first written at line {result.lines[key]}); "
                    "keep one of them",
                    line=line,
                )
            result[key] = self.convert(value_node, depth + 1)
            result.lines[key] = line
            raw = _raw(value_node, result[key])
            if raw is not None:
                result.raw[key] = raw
        return result

    def _sequence(self, node: SequenceNode, depth: int) -> LocatedList:
        if node.tag != _TAG + "seq":
            fail(f"unsupported YAML tag {node.tag} on a list; remove the tag", line=_line(node))
        result = LocatedList(_line(node))
        for index, item in enumerate(node.value):
            value = self.convert(item, depth + 1)
            result.append(value)
            result.lines.append(_line(item))
            raw = _raw(item, value)
            if raw is not None:
                result.raw[index] = raw
        return result


def _raw(node: Node, value: object) -> str | None:
    if isinstance(node, ScalarNode) and value is not None and not isinstance(value, str):
        return str(node.value)
    return None


def _scalar(node: ScalarNode) -> Any:
    tag = node.tag
    text = str(node.value)
    if tag in _TEXT_TAGS or tag == "!":
        return text
    if tag == _TAG + "null":
        return None
    if tag == _TAG + "bool":
        return text.lower() in ("true", "yes", "on", "y")
    if tag == _TAG + "int":
        return _int(text)
    if tag == _TAG + "float":
        return _float(text)
    fail(
        f"unsupported YAML tag {tag}; remove the tag (quote the value to make it text)",
        line=_line(node),
    )


def _int(text: str) -> int | str:
    digits = text.replace("_", "")
    try:
        return int(digits, 0)
    except ValueError:
        pass
    try:
        return int(digits, 10)  # "010": YAML 1.2 reads decimal, Python's base 0 refuses it
    except ValueError:
        return text


def _float(text: str) -> float | str:
    lowered = text.replace("_", "").lower()
    if lowered.lstrip("+-") == ".inf":
        return -math.inf if lowered.startswith("-") else math.inf
    if lowered == ".nan":
        return math.nan
    try:
        return float(lowered)
    except ValueError:
        return text
