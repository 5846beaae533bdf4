"""Changing one configuration option: check it with the server, then write it.

The server validates with the same traitlets classes it loads the configuration with, and
writes the configuration file keeping the operator's comments and formatting
(``POST /api/v1/admin/configuration/``). The editor first asks for a dry run (Enter, or
"Check"), shows what would be written and what must restart, and only "Apply" writes.
It dismisses with the applied change (None when nothing was written).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from tui.admin import ConfigOption, ConfigurationChange
from tui.client import KilnApiError, KilnClient, KilnUnreachable


def shown_value(value: Any) -> str:
    """An option's value as the operator edits it: JSON (strings quoted)."""
    return json.dumps(value)


def typed_value(text: str, current: Any) -> Any:
    """The JSON value of what the operator typed. Text that is not JSON is a string, and so
    is any text typed for a string option unless it is quoted (``"..."``), so that ``INFO``
    and ``123`` mean what they look like."""
    text = text.strip()
    if isinstance(current, str) and not text.startswith('"'):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


class OptionEditor(ModalScreen[ConfigurationChange | None]):
    """Edit ``option`` (checked by the server before it is written)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, option: ConfigOption, kiln: KilnClient, config_file: str) -> None:
        super().__init__(classes="dialog-screen")
        self.option = option
        self.kiln = kiln
        self.config_file = config_file
        #: The last successful dry run, for the value now in the field.
        self.checked: ConfigurationChange | None = None

    def compose(self) -> ComposeResult:
        option = self.option
        with Vertical(classes="dialog"):
            yield Label(f"Change {option.key}", classes="dialog-title", markup=False)
            if option.help:
                yield Static(option.help, classes="dialog-text", markup=False)
            now = "(secret)" if option.secret else shown_value(option.value)
            yield Static(f"Now: {now} ({option.source})", classes="dialog-text", markup=False)
            yield Input(
                "" if option.secret else shown_value(option.value),
                id="option-value",
                compact=True,
                password=option.secret,
            )
            yield Static(
                f"Enter checks the value; Apply writes it to {self.config_file}.",
                id="option-result",
                classes="dialog-text",
                markup=False,
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Check", id="check")
                yield Button("Apply", id="apply", variant="primary", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#option-value", Input).focus()

    def value(self) -> Any:
        return typed_value(self.query_one("#option-value", Input).value, self.option.value)

    @on(Input.Changed, "#option-value")
    def edited(self) -> None:
        self.checked = None
        self.query_one("#apply", Button).disabled = True

    @on(Input.Submitted, "#option-value")
    def submitted(self) -> None:
        if self.checked is not None:
            self.apply()
        else:
            self.check()

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            self.dismiss(None)
        elif event.button.id == "check":
            self.check()
        elif event.button.id == "apply":
            self.apply()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def say(self, text: str, *, error: bool = False) -> None:
        result = self.query_one("#option-result", Static)
        result.update(text)
        result.set_class(error, "error-text")

    @work(exclusive=True, group="check")
    async def check(self) -> None:
        """Dry run: does the server accept the value, and what would it write?"""
        option = self.option
        self.say("Checking...")
        try:
            change = await self.kiln.change_option(
                option.section, option.name, self.value(), dry_run=True
            )
        except KilnUnreachable as error:
            self.say(error.message, error=True)
            return
        except KilnApiError as error:
            self.say(f"Refused: {error.message}", error=True)
            return
        self.checked = change
        restart = f" {change.restart.message}." if change.restart.needed else ""
        unchanged = "" if change.changed else " (the same value as now)"
        self.say(f"OK{unchanged}: would write {change.line_text!r}.{restart} Apply?")
        apply = self.query_one("#apply", Button)
        apply.disabled = False
        apply.focus()

    @work(exclusive=True, group="check")
    async def apply(self) -> None:
        """Write the checked value."""
        option = self.option
        self.say("Writing...")
        try:
            change = await self.kiln.change_option(
                option.section, option.name, self.value(), dry_run=False
            )
        except KilnApiError as error:
            self.say(f"Refused: {error.message}", error=True)
            return
        self.dismiss(change)
