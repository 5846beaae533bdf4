"""The issue's "done when", from the console alone, against a real ``kiln serve``: an operator
sees that all services are healthy, finds a failed build and reads why, cancels a running one,
creates a token, changes ``CondaStoreWorker.concurrency`` and applies it with a worker
restart (and watches the supervisor's log say so, live). The console connects as ``kiln tui``
does on the Kiln host (the data dir's configuration, a token minted from its secret)."""

from __future__ import annotations

import argparse
from typing import Any

import httpx
from textual.pilot import Pilot
from textual.widgets import Input, Log, RichLog

from appliance.cli.tui import resolve_connection
from tests.fixtures.tui import ServedKiln, drive, rows_of, said, text_of, wait_for
from tui.app import KilnConsole
from tui.screens.build_log import BuildLogScreen
from tui.screens.option_editor import OptionEditor
from tui.widgets.dialogs import Confirm, Notice

BROKEN = "name: broken\ndependencies:\n  - kiln-no-such-package\n"


def test_an_operator_looks_after_kiln_from_the_console_alone(served_kiln: ServedKiln) -> None:
    args = argparse.Namespace(url=None, token=None, config=None, data_dir=served_kiln.data_dir)
    connection = resolve_connection(args, environ={})
    api = httpx.Client(
        base_url=f"{connection.url}/api/v1",
        headers={"Authorization": f"Bearer {connection.token}"},
        timeout=30,
    )

    def submit(spec: str) -> int:
        answer = api.post("/specification/", json={"namespace": "default", "specification": spec})
        assert answer.status_code == 200, answer.text
        return int(answer.json()["data"]["build_id"])

    def status(build_id: int) -> str:
        return str(api.get(f"/build/{build_id}/").json()["data"]["status"])

    def services() -> dict[str, dict[str, Any]]:
        found = api.get("/admin/services/").json()["data"]["services"]
        return {service["name"]: service for service in found}

    broken = submit(BROKEN)
    running = submit(served_kiln.channel.spec("held"))
    app = KilnConsole(connection.url, connection.token, renew=connection.renew)
    minted: list[str] = []

    def restarts_logged() -> int:
        shown = app.screen.query_one("#logs-view", RichLog).lines
        return sum("worker-1 restarted on request" in strip.text for strip in shown)

    async def script(pilot: Pilot[Any]) -> None:
        # All services are healthy.
        await wait_for(
            pilot, lambda: len(rows_of(app, "#services-table")) == 3, "the services", timeout=30
        )
        table = rows_of(app, "#services-table")
        assert [(row[0], row[1]) for row in table] == [
            ("postgres", "running"),
            ("web", "running"),
            ("worker-1", "running"),
        ]
        assert all(row[2].isdigit() for row in table)  # pids
        assert "All services are running." in text_of(app, "#services-note")

        # A failed build, and why.
        await wait_for(pilot, lambda: rows_of(app, "#failures-table") != [], "the failure", 60)
        assert rows_of(app, "#failures-table")[0][:2] == [str(broken), "default/broken"]
        await pilot.press("tab", "tab", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, BuildLogScreen), "its log")
        log = app.screen.query_one(Log)
        await wait_for(
            pilot, lambda: any("No candidates were found" in x for x in log.lines), "why"
        )
        await pilot.press("escape")

        # A running build, cancelled.
        await wait_for(
            pilot,
            lambda: (
                rows_of(app, "#running-table")[:1] != []
                and rows_of(app, "#running-table")[0][2] == "install"
            ),
            "the held build in its install step",
            timeout=60,
        )
        assert rows_of(app, "#running-table")[0][:2] == [str(running), "default/held"]
        await pilot.press("shift+tab", "c")  # the running builds table
        assert isinstance(app.screen, Confirm)
        await pilot.press("y")
        await wait_for(pilot, lambda: status(running) == "CANCELED", "the build canceled", 30)

        # A token.
        await pilot.press("4", "t", "n")
        await pilot.press(*"ci", "enter", "enter", "enter", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, Notice), "the token")
        minted.append(app.screen.query_one("#notice-value", Input).value)
        await pilot.press("escape")

        # CondaStoreWorker.concurrency, applied with a worker restart.
        await pilot.press("5")
        await wait_for(pilot, lambda: len(rows_of(app, "#config-table")) > 20, "the options")
        await pilot.press("slash", *"concurrency", "escape", "down", "enter")
        assert isinstance(app.screen, OptionEditor)
        await pilot.press("2", "enter")
        await wait_for(pilot, lambda: "OK" in text_of(app, "#option-result"), "the check")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm), "the restart offer")
        assert "Restart workers now?" in app.screen.title_text
        await pilot.press("y")
        await wait_for(
            pilot,
            lambda: (
                services()["worker-1"]["requested_restarts"] == 1
                and services()["worker-1"]["state"] == "running"
            ),
            "worker-1 restarted",
            timeout=60,
        )
        assert "restart of worker-1 requested" in said(app)

        # The supervisor's log, followed: a restart made now shows up while the screen is open.
        await pilot.press("6")
        await wait_for(pilot, lambda: restarts_logged() == 1, "the restart in the log", 30)
        answer = api.post("/admin/services/worker-1/restart/")
        assert answer.status_code == 202, answer.text
        await wait_for(pilot, lambda: restarts_logged() == 2, "the new record, followed", 60)

        await pilot.press("1")
        await wait_for(
            pilot,
            lambda: [row[4] for row in rows_of(app, "#services-table")] == ["0", "0", "2"],
            "the restart on the dashboard",
        )
        await pilot.press("q")

    try:
        drive(app, script)
        viewer = api.get("/permission/", headers={"Authorization": f"Bearer {minted[0]}"})
        assert viewer.json()["data"]["entity_roles"] == {"default/*": ["viewer"]}
    finally:
        api.close()
    config = (served_kiln.data_dir / "kiln_config.py").read_text()
    assert config.rstrip().endswith("c.CondaStoreWorker.concurrency = 2")
    assert "c.Supervisor.drain_timeout = 5" in config  # the rest of the file as it was
