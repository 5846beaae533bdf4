"""Changing one option in a configuration file while keeping everything else as written.

``kiln_config.py`` is Python written by a person: comments, blank lines, their own order,
sometimes logic. :func:`plan_assignment` computes the new text of such a file for
``c.<Class>.<option> = <value>`` and changes as little as it can:

Replace
    The option is set by exactly one *simple* assignment: a statement of its own, at the top
    level of the file, of the form ``c.Class.option = ...``, in a *plain* file (see below).
    That statement is replaced; the comment at the end of its (last) line is kept.
Append
    Anything else that still lets the file be edited: the option is not set; it is set several
    times; it is changed in place (``+=``, ``.append(...)``, ``[key] = ...``); the whole
    section is assigned or updated (``c.Class = ...``, ``c.Class.update(...)``); the file is
    not plain; the statement spans several lines with comments inside (replacing it would drop
    them). A line is appended at the end of the file, after a comment saying who set it and
    which earlier lines it overrides. The last statement wins when the file runs, so the
    appended line decides the value.
Refuse (:class:`UneditableConfiguration`)
    The option is written inside a block (``if``, ``for``, ``while``, ``with``, ``try``,
    ``match``, a function or class body): the operator wrote logic Kiln cannot follow, and an
    unconditional line would silently defeat it. The file rebinds ``c``. The file is not valid
    Python, or the value has no Python literal.
Create
    No file yet: a short header comment and the line.

A file is *plain* when no top-level statement can change options in ways that cannot be seen
in the source: a call that is given ``c`` (or a section of it), ``load_subconfig(...)``,
``exec``/``eval``. Replacing a line before such a statement could be undone by it; appending
after it cannot.

Pure: text in, text out. Reading and writing the file, and checking with the real loader that
the new text sets what was asked, are the caller's (appliance.services.configuration).
"""

from __future__ import annotations

import ast
import io
import math
import tokenize
from dataclasses import dataclass
from typing import Any, Literal

from appliance.common.errors import KilnError

#: Header of a configuration file created by :func:`plan_assignment`.
NEW_FILE_HEADER = (
    "# Kiln configuration (traitlets): one option per line, c.<Class>.<option> = <value>.\n"
    "# `kiln config generate` writes every option with its help; `kiln config verify FILE`\n"
    "# checks a file.\n"
)

EditAction = Literal["replaced", "appended", "created"]

#: Statements with a body of their own: options written in there are conditional.
_BLOCKS = (
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.With,
    ast.AsyncWith,
    ast.Try,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Match,
    ast.TryStar,
)

#: How a block is named in messages.
_BLOCK_NAMES = {
    "If": "an if block",
    "For": "a for loop",
    "AsyncFor": "a for loop",
    "While": "a while loop",
    "With": "a with block",
    "AsyncWith": "a with block",
    "Try": "a try block",
    "TryStar": "a try block",
    "FunctionDef": "a function",
    "AsyncFunctionDef": "a function",
    "ClassDef": "a class",
    "Match": "a match block",
}

#: Calls that can set any option without naming it in the source.
_OPAQUE_CALLS = frozenset({"load_subconfig", "exec", "eval", "setattr", "globals", "vars"})


class UneditableConfiguration(KilnError):
    """The configuration file cannot be changed safely; edit it by hand."""

    code = "conflict"


class UnrepresentableValue(KilnError):
    """The value cannot be written as a Python literal."""

    code = "invalid_value"


@dataclass(frozen=True)
class PlannedEdit:
    """The new text of a configuration file and what changed in it."""

    text: str
    action: EditAction
    #: 1-based line of the new assignment in :attr:`text`.
    line: int
    #: The statement that was replaced, as it was written (``replaced`` only).
    replaced: str | None = None
    #: Lines of earlier statements that set the option and are now overridden (``appended``).
    overridden_lines: tuple[int, ...] = ()


def python_literal(value: Any) -> str:
    """``value`` (a JSON value: None, bool, int, float, str, list, dict with str keys, at most
    :data:`MAX_DEPTH` levels deep) as Python source that evaluates to an equal value;
    :class:`UnrepresentableValue` otherwise."""
    _check_representable(value, 0)
    try:
        literal = repr(value)
        same = ast.literal_eval(literal) == value
    except (ValueError, SyntaxError, RecursionError, MemoryError) as error:
        raise UnrepresentableValue(f"the value cannot be written as Python: {error}") from None
    if not same:  # pragma: no cover - repr of JSON values round-trips
        raise UnrepresentableValue(f"{literal} does not read back as the same value")
    return literal


#: Deepest nesting of lists and objects a value may have.
MAX_DEPTH = 16


def _check_representable(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise UnrepresentableValue(f"the value is nested more than {MAX_DEPTH} levels deep")
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnrepresentableValue(f"{value} is not a finite number")
        return
    if isinstance(value, list):
        for item in value:
            _check_representable(item, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise UnrepresentableValue(f"dictionary keys must be strings, not {key!r}")
            _check_representable(item, depth + 1)
        return
    raise UnrepresentableValue(
        f"a {type(value).__name__} cannot be written to the configuration file; use a "
        "string, number, boolean, null, list or object"
    )


def plan_assignment(
    source: str | None, section: str, option: str, literal: str, *, note: str
) -> PlannedEdit:
    """The file ``source`` (None: there is no file) with ``c.section.option = literal``; see
    the module docstring for the rules. ``note`` goes into the comment above an appended line
    (``set by alice with the admin API on 2026-11-26``)."""
    _check_literal(literal)
    assignment = f"c.{section}.{option} = {literal}"
    if source is None:
        text = f"{NEW_FILE_HEADER}\n# {note}\n{assignment}\n"
        return PlannedEdit(text=text, action="created", line=text.count("\n"))
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        raise UneditableConfiguration(
            f"the configuration file is not valid Python (line {error.lineno}: {error.msg}); "
            "fix it first (`kiln config verify FILE` shows every problem)"
        ) from None
    found = _Writes(section, option)
    found.scan(tree)
    if found.simple is not None and found.replaceable(source):
        return _replace(source, found.simple, assignment)
    return _append(source, assignment, note, found.lines)


def _check_literal(literal: str) -> None:
    try:
        ast.literal_eval(literal)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise UnrepresentableValue(f"{literal!r} is not a Python literal") from None


def _chain(node: ast.AST) -> tuple[str, ...] | None:
    """``("Class", "option")`` for ``c.Class.option`` (subscripts stripped: ``c.A.b["k"]``),
    ``("Class",)`` for ``c.Class``, ``()`` for ``c`` itself; None for anything else."""
    while isinstance(node, ast.Subscript):
        node = node.value
    names: list[str] = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id == "c":
        return tuple(reversed(names))
    return None


def _written(statement: ast.AST) -> list[tuple[tuple[str, ...], ast.AST]]:
    """What ``statement`` (and everything inside it) writes or may write: (chain, node)."""
    found: list[tuple[tuple[str, ...], ast.AST]] = []
    for node in ast.walk(statement):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = list(node.targets)
        elif isinstance(node, ast.NamedExpr):
            targets = [node.target]
        for target in targets:
            for part in ast.walk(target):
                if isinstance(part, ast.Attribute | ast.Subscript | ast.Name) and isinstance(
                    part.ctx, ast.Store | ast.Del
                ):
                    chain = _chain(part)
                    if chain is not None:
                        found.append((chain, node))
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute):
                chain = _chain(node.func.value)
                if chain is not None:
                    found.append((chain, node))  # c.A.b.append(...), c.A.update(...)
            arguments = [*node.args, *(keyword.value for keyword in node.keywords)]
            for argument in arguments:
                chain = _chain(argument)
                if chain is not None and len(chain) < 2:
                    found.append((chain, node))  # configure(c), setattr(c.A, "b", 1)
            if isinstance(node.func, ast.Name) and node.func.id in _OPAQUE_CALLS:
                found.append(((), node))
    return found


class _Writes:
    """The statements of a file that write ``c.section.option`` (or may)."""

    def __init__(self, section: str, option: str) -> None:
        self.section = section
        self.option = option
        #: The one simple assignment of the option, if there is exactly one such statement.
        self.simple: ast.Assign | None = None
        #: First lines of every statement that writes the option or its section.
        self.lines: list[int] = []
        self._simple_count = 0
        self._other = False
        self._opaque = False
        self._statements: list[ast.stmt] = []

    def scan(self, tree: ast.Module) -> None:
        self._statements = list(tree.body)
        for statement in tree.body:
            nested = isinstance(statement, _BLOCKS)
            for chain, node in _written(statement):
                self._note(statement, chain, node, nested=nested)
        if self._simple_count != 1 or self._other:
            self.simple = None

    def _note(
        self, statement: ast.stmt, chain: tuple[str, ...], node: ast.AST, *, nested: bool
    ) -> None:
        line = getattr(node, "lineno", statement.lineno)
        if chain == () and isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            raise UneditableConfiguration(
                f"the configuration file assigns c itself (line {line}); Kiln cannot tell what "
                "it configures: edit the file by hand"
            )
        option = (self.section, self.option)
        if chain[:2] == option:
            if nested:
                kind = _BLOCK_NAMES.get(type(statement).__name__, "a block")
                raise UneditableConfiguration(
                    f"c.{self.section}.{self.option} is set inside {kind} (line {line}, in the "
                    f"statement starting at line {statement.lineno}); Kiln will not override "
                    "logic it cannot follow: edit the file by hand"
                )
            self._remember(line)
            if isinstance(statement, ast.Assign) and self._is_simple(statement, node):
                self._simple_count += 1
                self.simple = statement
            else:
                self._other = True
        elif chain == (self.section,):
            self._remember(line)
            self._other = True
        elif chain == ():
            self._opaque = True

    def _remember(self, line: int) -> None:
        if line not in self.lines:
            self.lines.append(line)

    def _is_simple(self, statement: ast.Assign, node: ast.AST) -> bool:
        if node is not statement or len(statement.targets) != 1:
            return False
        target = statement.targets[0]
        return isinstance(target, ast.Attribute) and _chain(target) == (self.section, self.option)

    def replaceable(self, source: str) -> bool:
        """Whether the simple assignment can be replaced in place (module docstring)."""
        statement = self.simple
        if statement is None or self._opaque or statement.end_lineno is None:
            return False
        start, end = statement.lineno, statement.end_lineno
        for other in self._statements:
            if other is statement or other.end_lineno is None:
                continue
            if other.lineno <= end and other.end_lineno >= start:
                return False  # shares a line: `a = 1; c.A.b = 2`
        lines = source.splitlines(keepends=True)
        if lines[start - 1].encode()[: statement.col_offset].strip():
            return False
        return not _comments_inside(source, statement)


def _comments_inside(source: str, statement: ast.stmt) -> bool:
    """Whether a comment sits inside ``statement`` (not the one after its end)."""
    end = (statement.end_lineno or statement.lineno, statement.end_col_offset or 0)
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):  # pragma: no cover - the source parsed
        return True
    return any(
        token.type == tokenize.COMMENT and statement.lineno <= token.start[0] and token.start < end
        for token in tokens
    )


def _newline_of(source: str) -> str:
    return "\r\n" if "\r\n" in source else "\n"


def _replace(source: str, statement: ast.Assign, assignment: str) -> PlannedEdit:
    lines = source.splitlines(keepends=True)
    start = statement.lineno
    end = statement.end_lineno or start
    last = lines[end - 1]
    body = last.rstrip("\r\n")
    ending = last[len(body) :]
    # ast's column offsets count UTF-8 bytes.
    encoded = body.encode()
    end_col = statement.end_col_offset if statement.end_col_offset is not None else len(encoded)
    tail = encoded[end_col:].decode()
    indent = lines[start - 1].encode()[: statement.col_offset].decode()
    replaced = ast.get_source_segment(source, statement) or "".join(lines[start - 1 : end])
    new_line = f"{indent}{assignment}{tail}{ending}"
    text = "".join([*lines[: start - 1], new_line, *lines[end:]])
    return PlannedEdit(text=text, action="replaced", line=start, replaced=replaced)


def _append(source: str, assignment: str, note: str, overridden: list[int]) -> PlannedEdit:
    newline = _newline_of(source)
    text = source
    if text and not text.endswith(("\n", "\r")):
        text += newline
    comment = f"# {note}"
    if overridden:
        ordered = sorted(overridden)
        where = "line" if len(ordered) == 1 else "lines"
        comment += f" (overrides {where} {', '.join(map(str, ordered))})"
    separator = newline if text.strip() else ""
    text = f"{text}{separator}{comment}{newline}{assignment}{newline}"
    line = text.count("\n")
    return PlannedEdit(
        text=text, action="appended", line=line, overridden_lines=tuple(sorted(overridden))
    )
