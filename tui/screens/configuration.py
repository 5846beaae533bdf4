"""Configuration: every option in effect, where its value comes from, and changing one.

The table lists ``Class.option``, the value (secrets masked by the server) and its source
(``default``, ``file``, ``env KILN_X``); the filter narrows it to options whose name, class or
value contains the words typed. Enter edits the highlighted option (:class:`OptionEditor`: the
server validates, then writes the configuration file). After a change, the console says what
must restart for it to take effect and offers to restart those services now.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input, Static

from tui.admin import ConfigOption, Configuration, ConfigurationChange
from tui.formatting import clip
from tui.screens.base import KilnScreen
from tui.screens.dashboard import restart_consequence
from tui.screens.option_editor import OptionEditor, shown_value
from tui.widgets.cells import dim
from tui.widgets.dialogs import Confirm, Notice
from tui.widgets.table import Cell, KilnTable

#: Widest value shown in the table (the detail line and the editor show all of it).
VALUE_WIDTH = 30


def short_source(source: str) -> str:
    """``file /etc/kiln.py`` -> ``file``; ``environment KILN_PORT`` -> ``env KILN_PORT``."""
    if source.startswith("file "):
        return "file"
    if source.startswith("environment "):
        return "env " + source.split()[-1]
    if source.startswith("default (follows "):
        followed = source.removeprefix("default (follows ").split(":")[0]
        return f"default ({followed})"
    return source


def short_value(option: ConfigOption) -> str:
    return clip(shown_value(option.value), VALUE_WIDTH)


class ConfigurationScreen(KilnScreen):
    """The effective configuration, filterable; Enter edits an option."""

    MODE = "configuration"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("e", "edit", "Edit"),
        Binding("slash", "focus_filter", "Filter"),
        Binding("escape", "focus_table", "Table", show=False),
        Binding("r", "reload", "Refresh"),
    ]

    class Loaded(Message):
        def __init__(self, configuration: Configuration) -> None:
            super().__init__()
            self.configuration = configuration

    def __init__(self) -> None:
        super().__init__()
        self.configuration: Configuration | None = None
        self.options: list[ConfigOption] = []

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="filters"):
            yield Input(
                placeholder="/ filter: class, option or value (e.g. CondaStoreWorker)",
                id="config-filter",
                compact=True,
            )
        yield KilnTable(("option", "value", "source"), id="config-table")
        yield Static("", id="config-detail", markup=False)

    @property
    def table(self) -> KilnTable:
        return self.query_one("#config-table", KilnTable)

    @work(exclusive=True, group="load")
    async def load(self) -> None:
        configuration = await self.call(self.kiln.configuration())
        if configuration is not None:
            self.post_message(self.Loaded(configuration))

    def on_configuration_screen_loaded(self, message: Loaded) -> None:
        self.configuration = message.configuration
        self.options = [
            option for section in message.configuration.sections for option in section.options
        ]
        self.show_options()

    def show_options(self) -> None:
        """The options that match the filter, under a row naming their class."""
        words = self.query_one("#config-filter", Input).value.lower().split()
        rows: list[tuple[str, tuple[Cell, ...]]] = []
        sections = self.configuration.sections if self.configuration else ()
        for section in sections:
            shown = [
                option
                for option in section.options
                if all(
                    word in f"{option.key} {shown_value(option.value)}".lower() for word in words
                )
            ]
            if not shown:
                continue
            note = f" ({section.note})" if section.note else ""
            rows.append(
                (f"class:{section.name}", (Text(section.name + note, style="bold"), "", ""))
            )
            rows.extend(
                (
                    option.key,
                    (
                        "  " + option.name,
                        dim("********") if option.secret and option.value else short_value(option),
                        short_source(option.source),
                    ),
                )
                for option in shown
            )
        self.table.replace_rows(rows)
        self.show_detail()

    def selected(self) -> ConfigOption | None:
        key = self.table.selected_key
        return next((option for option in self.options if option.key == key), None)

    def show_detail(self) -> None:
        detail = self.query_one("#config-detail", Static)
        configuration = self.configuration
        option = self.selected()
        if configuration is None:
            return
        problems = [p for p in configuration.problems if p.severity == "error"]
        if problems:
            detail.update("The configuration has errors: " + "; ".join(p.message for p in problems))
            return
        if option is None:
            key = self.table.selected_key or ""
            section_name = key.removeprefix("class:")
            found = next((s for s in configuration.sections if s.name == section_name), None)
            if found is None:
                detail.update(f"No option matches. Changes go to {self.where()}.")
                return
            restart = " and ".join(found.restart) or "nothing"
            note = f" ({found.note})" if found.note else ""
            detail.update(
                f"{found.name}{note}: {len(found.options)} options; a change takes effect when "
                f"{restart} restart. Changes go to {self.where()}."
            )
            return
        section = next(s for s in configuration.sections if s.name == option.section)
        restart = (
            f" A change takes effect when {' and '.join(section.restart)} restart."
            if section.restart
            else ""
        )
        source = option.source
        if source.startswith("file "):
            source = f"file {self.formats.path(source.removeprefix('file '))}"
        ignored = f" Ignored: {option.ignored}." if option.ignored else ""
        value = "********" if option.secret and option.value else shown_value(option.value)
        detail.update(f"{option.key} = {value} ({source}). {option.help}{ignored}{restart}")

    def where(self) -> str:
        configuration = self.configuration
        if configuration is None:
            return "the configuration file"
        path = self.formats.path(configuration.config_file)
        if not configuration.config_file_writable:
            return f"{path} (not writable by Kiln: changes are refused)"
        return path if configuration.config_file_exists else f"{path} (created on first change)"

    @on(Input.Changed, "#config-filter")
    def filter_changed(self) -> None:
        self.show_options()

    @on(Input.Submitted, "#config-filter")
    def filter_submitted(self) -> None:
        self.table.focus()

    @on(KilnTable.RowHighlighted, "#config-table")
    def highlighted(self) -> None:
        self.show_detail()

    @on(KilnTable.RowSelected, "#config-table")
    def selected_row(self) -> None:
        self.action_edit()

    def action_focus_filter(self) -> None:
        self.query_one("#config-filter", Input).focus()

    def action_focus_table(self) -> None:
        self.table.focus()

    def action_edit(self) -> None:
        option = self.selected()
        if option is None or self.configuration is None:
            return
        if option.ignored:
            self.notify(f"{option.key} is ignored by Kiln: {option.ignored}", severity="warning")
            return
        self.app.push_screen(
            OptionEditor(option, self.kiln, self.formats.path(self.configuration.config_file)),
            self.applied,
        )

    def applied(self, change: ConfigurationChange | None) -> None:
        """After a change: say so, and offer the restart it needs."""
        if change is None:
            return
        self.notify(change.message, title="Configuration changed", timeout=6)
        self.reload()
        advice = change.restart
        if not advice.needed:
            return
        if not advice.targets:
            message = advice.message[:1].upper() + advice.message[1:]
            self.app.push_screen(Notice("Restart needed", f"{message}."))
            return
        targets = list(advice.targets)
        consequence = " ".join(restart_consequence(target) for target in targets)

        def answered(yes: bool | None) -> None:
            if yes:
                self.restart(targets)
            else:
                self.notify(
                    f"Not restarted: the change takes effect when {' and '.join(targets)} "
                    "restart (Dashboard: R).",
                    severity="warning",
                )

        self.app.push_screen(
            Confirm(
                f"Restart {' and '.join(targets)} now?",
                f"{change.section}.{change.option} {advice.message}. {consequence}",
                verb="Restart",
            ),
            answered,
        )

    @work(group="act")
    async def restart(self, targets: list[str]) -> None:
        for target in targets:
            requested = await self.call(self.kiln.restart_service(target))
            if requested is None:
                return
            self.notify(requested.message, title="Restart requested", timeout=6)
