"""A data table whose rows are replaced on every refresh without losing the operator's place."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

Cell = str | Text


class KilnTable(DataTable[Cell]):
    """Rows keyed by an id (a build id, a token id...); the cursor stays on the same key
    across :meth:`replace_rows`, and :attr:`selected_key` says which row it is on. Text cells
    are shown as they are (never read as markup)."""

    def __init__(self, columns: Sequence[str], *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self._columns = tuple(columns)

    def on_mount(self) -> None:
        if not self.columns:
            self.add_columns(*self._columns)

    @property
    def selected_key(self) -> str | None:
        """The key of the row under the cursor (None when the table is empty)."""
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:  # the cursor is outside the rows while they are replaced
            return None
        return key.value

    def replace_rows(self, rows: Iterable[tuple[str, Sequence[Cell]]]) -> None:
        """Show ``rows`` (key, cells) instead of the current ones, keeping the cursor's row."""
        keep = self.selected_key
        keep_index = self.cursor_row
        self.clear(columns=True)  # and let the columns fit the new rows
        self.add_columns(*self._columns)
        for key, cells in rows:  # text as it is: names and reasons are not markup
            self.add_row(
                *(Text(cell) if isinstance(cell, str) else cell for cell in cells), key=key
            )
        if not self.row_count:
            return
        try:
            index = self.get_row_index(keep) if keep is not None else 0
        except RowDoesNotExist:
            index = min(keep_index, self.row_count - 1)
        self.move_cursor(row=index, animate=False)

    def select_key(self, key: str) -> bool:
        """Put the cursor on the row ``key``; whether it exists."""
        try:
            self.move_cursor(row=self.get_row_index(key), animate=False)
        except RowDoesNotExist:
            return False
        return True
