"""Modal dialogs: confirming a destructive action, filling in a few fields, showing a result.

Each is a :class:`~textual.screen.ModalScreen` that dismisses with its answer: push it with a
callback (``app.push_screen(Confirm(...), on_answer)``) or wait for it in a worker
(``await app.push_screen_wait(...)``). Escape always cancels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static


class Confirm(ModalScreen[bool]):
    """Ask before something that cannot be undone; ``consequence`` says what will happen.

    Focus starts on "Cancel", so a stray Enter changes nothing; ``y`` confirms.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,n", "answer(False)", "Cancel"),
        Binding("y", "answer(True)", "Yes"),
    ]

    def __init__(self, title: str, consequence: str, *, verb: str = "Delete") -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.consequence = consequence
        self.verb = verb

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title", markup=False)
            yield Static(self.consequence, classes="dialog-text", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(f"{self.verb} (y)", id="confirm", variant="error")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


@dataclass(frozen=True)
class Field:
    """One field of a :class:`Form`."""

    name: str
    label: str
    value: str = ""
    placeholder: str = ""
    password: bool = False
    #: A choice among these values (a select) instead of free text.
    choices: Sequence[str] = ()
    #: A yes/no box instead of text ("true"/"" in the answer).
    checkbox: bool = False


class Form(ModalScreen[dict[str, str] | None]):
    """A few labelled fields and OK/Cancel; dismisses with ``{name: text}`` or None.

    Enter in the last field submits. ``note`` is shown above the buttons (e.g. what the
    action will do).
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self, title: str, fields: Sequence[Field], *, submit: str = "OK", note: str = ""
    ) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.fields = tuple(fields)
        self.submit = submit
        self.note = note

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title", markup=False)
            for field in self.fields:
                widget_id = f"field-{field.name}"
                if field.checkbox:
                    yield Checkbox(field.label, value=field.value == "true", id=widget_id)
                    continue
                yield Label(field.label, classes="field-label", markup=False)
                if field.choices:
                    yield Select(
                        [(choice, choice) for choice in field.choices],
                        value=field.value if field.value in field.choices else field.choices[0],
                        allow_blank=False,
                        id=widget_id,
                        compact=True,
                    )
                else:
                    yield Input(
                        value=field.value,
                        placeholder=field.placeholder,
                        password=field.password,
                        id=widget_id,
                        compact=True,
                    )
            if self.note:
                yield Static(self.note, classes="dialog-text", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(self.submit, id="submit", variant="primary")

    def answer(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for field in self.fields:
            widget = self.query_one(f"#field-{field.name}")
            if isinstance(widget, Checkbox):
                values[field.name] = "true" if widget.value else ""
            elif isinstance(widget, Select):
                values[field.name] = str(widget.value)
            elif isinstance(widget, Input):
                values[field.name] = widget.value
        return values

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        inputs = list(self.query(Input))
        if inputs and event.input is inputs[-1]:
            self.dismiss(self.answer())
        else:
            self.focus_next()

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(self.answer() if event.button.id == "submit" else None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class Notice(ModalScreen[None]):
    """Something the operator must read and acknowledge (e.g. a token shown only once)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter", "close", "Close")]

    def __init__(self, title: str, text: str, *, selectable: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.text = text
        self.selectable = selectable

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title", markup=False)
            yield Static(self.text, classes="dialog-text", markup=False)
            if self.selectable:
                yield Input(self.selectable, id="notice-value", compact=True)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Close", id="close", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    @on(Button.Pressed)
    def pressed(self) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
