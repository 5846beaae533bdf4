"""The configuration screen against a live Kiln: the effective configuration with sources; an
option changed after the server checked it, written to the configuration file with the rest of
the file kept; a bad value refused with the option's own message, changing nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot

from appliance.config.loader import KilnConfig
from tests.fixtures.tui import SeededKiln, drive, rows_of, text_of, wait_for
from tui.app import KilnConsole
from tui.screens.option_editor import OptionEditor
from tui.widgets.dialogs import Notice


def test_an_operator_changes_an_option_after_the_server_checked_it(
    seeded_kiln: SeededKiln, console: Callable[..., KilnConsole], kiln_config: KilnConfig
) -> None:
    config_file = kiln_config.data_dir.config_file
    before = config_file.read_text()
    app = console(start="configuration")

    def shown() -> list[list[str]]:
        return rows_of(app, "#config-table")

    async def script(pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: len(shown()) > 20, "the options")
        sources = {row[0].strip(): row[2] for row in shown()}
        assert sources["port"] == "file" and sources["concurrency"] == "default"
        await pilot.press("slash", *"concurrency", "escape")
        await wait_for(pilot, lambda: len(shown()) == 2, "the one option")
        assert shown() == [["CondaStoreWorker", "", ""], ["  concurrency", "null", "default"]]

        await pilot.press("down", "enter")
        assert isinstance(app.screen, OptionEditor)
        await pilot.press(*"many", "enter")
        await wait_for(pilot, lambda: "Refused" in text_of(app, "#option-result"), "a refusal")
        assert "CondaStoreWorker.concurrency" in text_of(app, "#option-result")
        assert config_file.read_text() == before

        await pilot.press("ctrl+u", "3", "enter")  # check
        await wait_for(pilot, lambda: "OK" in text_of(app, "#option-result"), "the check")
        assert "c.CondaStoreWorker.concurrency = 3" in text_of(app, "#option-result")
        assert config_file.read_text() == before  # a dry run writes nothing
        await pilot.press("enter")  # apply
        await wait_for(pilot, lambda: isinstance(app.screen, Notice), "the restart advice")
        assert "no supervisor runs this Kiln" in str(app.screen.text)
        await pilot.press("escape")
        await wait_for(pilot, lambda: shown()[1:] == [["  concurrency", "3", "file"]], "the value")

    drive(app, script)
    after = config_file.read_text()
    assert after.startswith(before)  # every line the operator wrote is still there
    assert after.rstrip().endswith("c.CondaStoreWorker.concurrency = 3")
