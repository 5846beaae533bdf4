"""Changing one option in a configuration file (appliance.config.edit): what is replaced, what
is appended, what is refused, and that everything else stays as the operator wrote it."""

from __future__ import annotations

import ast
from typing import Any

import pytest

from appliance.config.edit import (
    NEW_FILE_HEADER,
    UneditableConfiguration,
    UnrepresentableValue,
    plan_assignment,
    python_literal,
)

NOTE = "set by alice with the admin API"


def plan(source: str | None, literal: str = "4", option: str = "concurrency") -> Any:
    return plan_assignment(source, "CondaStoreWorker", option, literal, note=NOTE)


def assignments_of(text: str) -> list[str]:
    """``c.X.y = value`` statements of ``text``, as written, in order."""
    tree = ast.parse(text)
    return [ast.get_source_segment(text, node) or "" for node in tree.body]


# --- replace -----------------------------------------------------------------------------------


def test_the_one_simple_assignment_is_replaced_and_its_comment_kept() -> None:
    source = (
        "# Worker settings for the build host\n"
        "\n"
        "c.CondaStoreWorker.concurrency = 2  # two builds: this VM has 8 GB\n"
        "c.CondaStore.default_namespace = 'lab'\n"
    )
    edit = plan(source)
    assert edit.action == "replaced" and edit.line == 3
    assert edit.replaced == "c.CondaStoreWorker.concurrency = 2"
    assert edit.text == (
        "# Worker settings for the build host\n"
        "\n"
        "c.CondaStoreWorker.concurrency = 4  # two builds: this VM has 8 GB\n"
        "c.CondaStore.default_namespace = 'lab'\n"
    )


def test_a_multi_line_assignment_without_comments_inside_is_replaced_whole() -> None:
    source = "c.CondaStoreWorker.watch_paths = [\n    '/srv/a',\n    '/srv/b',\n]\nx = 1\n"
    edit = plan(source, "['/srv/c']", option="watch_paths")
    assert edit.action == "replaced" and edit.line == 1
    assert edit.text == "c.CondaStoreWorker.watch_paths = ['/srv/c']\nx = 1\n"


def test_crlf_line_endings_and_non_ascii_text_survive_a_replacement() -> None:
    source = (
        "c.CondaStore.default_namespace = 'équipe'  # café\r\n"
        "c.CondaStoreWorker.concurrency = 1\r\n"
    )
    edit = plan_assignment(source, "CondaStore", "default_namespace", "'lab'", note=NOTE)
    assert edit.text == (
        "c.CondaStore.default_namespace = 'lab'  # café\r\nc.CondaStoreWorker.concurrency = 1\r\n"
    )


def test_other_options_with_a_similar_name_are_not_touched() -> None:
    source = "c.CondaStoreWorker.concurrency = 2\nc.CondaStoreServer.concurrency_limit = 9\n"
    assert plan(source).text == (
        "c.CondaStoreWorker.concurrency = 4\nc.CondaStoreServer.concurrency_limit = 9\n"
    )


# --- append ------------------------------------------------------------------------------------


def test_an_option_not_set_yet_is_appended_after_a_comment() -> None:
    source = "# my settings\nc.CondaStore.default_namespace = 'lab'\n"
    edit = plan(source)
    assert edit.action == "appended"
    assert edit.text == source + f"\n# {NOTE}\nc.CondaStoreWorker.concurrency = 4\n"
    assert edit.text.splitlines()[edit.line - 1] == "c.CondaStoreWorker.concurrency = 4"
    assert edit.overridden_lines == ()


def test_a_file_without_a_final_newline_gets_one_before_the_appended_line() -> None:
    edit = plan("c.CondaStore.default_namespace = 'lab'")
    assert edit.text == (
        f"c.CondaStore.default_namespace = 'lab'\n\n# {NOTE}\nc.CondaStoreWorker.concurrency = 4\n"
    )


@pytest.mark.parametrize(
    ("source", "overridden"),
    [
        # set twice
        ("c.CondaStoreWorker.concurrency = 1\nc.CondaStoreWorker.concurrency = 2\n", (1, 2)),
        # changed in place
        ("c.CondaStoreWorker.concurrency = 1\nc.CondaStoreWorker.concurrency += 1\n", (1, 2)),
        # the whole section
        ("c.CondaStoreWorker = {'concurrency': 2}\n", (1,)),
        ("c.CondaStoreWorker.concurrency = 2\nc.CondaStoreWorker.update(concurrency=3)\n", (1, 2)),
        # two targets in one statement
        ("c.CondaStoreWorker.concurrency = c.Other.x = 2\n", (1,)),
        # shares its line with another statement
        ("x = 1; c.CondaStoreWorker.concurrency = 2\n", (1,)),
    ],
)
def test_anything_but_one_simple_assignment_gets_an_appended_override(
    source: str, overridden: tuple[int, ...]
) -> None:
    edit = plan(source)
    assert edit.action == "appended"
    assert edit.text.startswith(source)  # nothing the operator wrote changes
    assert edit.overridden_lines == overridden
    lines = edit.text.splitlines()
    where = "line" if len(overridden) == 1 else "lines"
    assert lines[-2] == f"# {NOTE} (overrides {where} {', '.join(map(str, overridden))})"
    assert lines[-1] == "c.CondaStoreWorker.concurrency = 4"


def test_comments_inside_a_multi_line_assignment_are_kept_by_appending() -> None:
    source = "c.CondaStoreWorker.watch_paths = [\n    '/srv/a',  # team A\n]\n"
    edit = plan(source, "[]", option="watch_paths")
    assert edit.action == "appended" and edit.text.startswith(source)


@pytest.mark.parametrize(
    "opaque",
    [
        "load_subconfig('more.py')",
        "configure(c)",
        "setattr(c.CondaStoreWorker, 'concurrency', 1)",
        "c.merge(other)",
    ],
)
def test_a_file_with_statements_kiln_cannot_see_through_is_appended_to(opaque: str) -> None:
    source = f"c.CondaStoreWorker.concurrency = 2\n{opaque}\n"
    edit = plan(source)
    assert edit.action == "appended" and edit.text.startswith(source)


def test_reading_an_option_elsewhere_does_not_count_as_setting_it() -> None:
    source = "c.CondaStoreWorker.concurrency = 2\nprint(c.CondaStoreWorker.concurrency)\n"
    assert plan(source).action == "replaced"


# --- create ------------------------------------------------------------------------------------


def test_no_file_yet_gives_a_new_file_with_a_header() -> None:
    edit = plan(None)
    assert edit.action == "created"
    assert edit.text.startswith(NEW_FILE_HEADER)
    assert edit.text.endswith(f"# {NOTE}\nc.CondaStoreWorker.concurrency = 4\n")
    assert edit.text.splitlines()[edit.line - 1] == "c.CondaStoreWorker.concurrency = 4"
    ast.parse(edit.text)


# --- refuse ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("import os\nif os.cpu_count() > 8:\n    c.CondaStoreWorker.concurrency = 8\n", "if"),
        ("for n in [1]:\n    c.CondaStoreWorker.concurrency = n\n", "for loop"),
        ("def tune():\n    c.CondaStoreWorker.concurrency = 3\ntune()\n", "function"),
        ("try:\n    c.CondaStoreWorker.concurrency = 3\nexcept Exception:\n    pass\n", "try"),
        ("with open('x') as f:\n    c.CondaStoreWorker.concurrency = 3\n", "with"),
    ],
)
def test_an_option_set_inside_a_block_is_refused(source: str, kind: str) -> None:
    with pytest.raises(UneditableConfiguration) as refused:
        plan(source)
    message = refused.value.message
    assert "c.CondaStoreWorker.concurrency is set inside" in message and kind in message
    assert "edit the file by hand" in message


def test_a_block_that_sets_other_options_does_not_stop_an_edit() -> None:
    source = (
        "if True:\n    c.CondaStore.default_namespace = 'lab'\nc.CondaStoreWorker.concurrency = 2\n"
    )
    edit = plan(source)
    assert edit.action == "replaced" and edit.line == 3


def test_a_file_that_rebinds_c_is_refused() -> None:
    with pytest.raises(UneditableConfiguration, match="assigns c itself"):
        plan("c = get_config()\nc.CondaStoreWorker.concurrency = 2\n")


def test_a_file_that_is_not_python_is_refused_with_its_line() -> None:
    with pytest.raises(UneditableConfiguration, match=r"not valid Python \(line 2"):
        plan("c.CondaStore.default_namespace = 'lab'\nc.CondaStoreWorker.concurrency = = 2\n")


# --- values ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [4, 2.5, True, None, 'it\'s "quoted"\n', ["a", 1], {"default/*": ["viewer"]}, -3, 10**30],
)
def test_json_values_become_python_literals_that_read_back_equal(value: Any) -> None:
    literal = python_literal(value)
    assert ast.literal_eval(literal) == value
    assert type(ast.literal_eval(literal)) is type(value)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), {1: "a"}, b"bytes", {"a": {2, 3}}, nested(5000), 10**5000],
    ids=["nan", "inf", "int-key", "bytes", "set", "deep", "huge-int"],
)
def test_values_without_a_literal_are_refused(value: Any) -> None:
    with pytest.raises(UnrepresentableValue):
        python_literal(value)


def test_a_literal_that_is_not_python_is_refused_before_anything_is_planned() -> None:
    with pytest.raises(UnrepresentableValue):
        plan("c.CondaStoreWorker.concurrency = 2\n", literal="__import__('os').system('x')")
