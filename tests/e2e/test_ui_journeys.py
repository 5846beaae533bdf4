"""What a data scientist does in the web UI, in a real browser (headless Chromium) against a
live ``kiln web`` with a real worker and Postgres: create an environment from YAML and watch
its build, download its lockfile, rebuild and switch the current build, and what a viewer can
and cannot do. (Logging in and out: ``test_ui_browser.py``; the editor's check at the right line
and package search in the browser: ``tests/integration/test_ui_editor.py``.)

The watched build installs from a channel served over HTTP on 127.0.0.1 that holds every
package archive back for :data:`PACKAGE_DELAY` seconds, so the build stays BUILDING long enough
to see its log grow.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from appliance.api.context import ApiContext
from tests.fixtures.api import Callers
from tests.fixtures.browser import LiveKiln
from tests.fixtures.postgres import TestDatabase
from tests.fixtures.worker import InProcessWorker

pytestmark = pytest.mark.browser

PASSWORD = "correct-horse-battery"
#: Seconds the slow channel holds back each package archive (downloads run in parallel).
PACKAGE_DELAY = 6.0
#: Bound on waiting for a build to finish in the browser, in ms.
BUILD_TIMEOUT_MS = 120_000


class SlowChannel:
    """The demo channel over HTTP; package archives are sent after :data:`PACKAGE_DELAY` s."""

    def __init__(self, directory: Path) -> None:
        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.endswith((".conda", ".tar.bz2")):
                    time.sleep(PACKAGE_DELAY)
                super().do_GET()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(directory))
        )
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def slow_channel(demo_channel: Path) -> Iterator[SlowChannel]:
    channel = SlowChannel(demo_channel)
    channel.thread.start()
    try:
        yield channel
    finally:
        channel.server.shutdown()
        channel.server.server_close()


@pytest.fixture
def kiln_config_lines(demo_channel: Path, slow_channel: SlowChannel) -> list[str]:
    return [f"c.CondaStore.conda_allowed_channels = [{str(demo_channel)!r}, {slow_channel.url!r}]"]


def log_in(page: Page, url: str, username: str, next_path: str = "/ui/") -> None:
    page.goto(f"{url}/login/?next={next_path}")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()


def api_post(live: LiveKiln, token: str, path: str, body: object) -> dict[str, Any]:
    """POST ``body`` as JSON to the live API with ``token``; the answer's ``data``."""
    request = urllib.request.Request(
        f"{live.url}{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        data: dict[str, Any] = json.load(response)["data"]
    return data


def build_status(page: Page) -> str:
    """The status the build page shows (``QUEUED``, ``BUILDING``, ...)."""
    return page.locator("#build-facts .status").first.inner_text().strip()


def wait_for_status(page: Page, wanted: str) -> None:
    expect(page.locator("#build-facts .status").first).to_have_text(
        wanted, timeout=BUILD_TIMEOUT_MS
    )


def test_an_environment_created_from_yaml_is_watched_while_it_builds_and_its_lockfile_downloaded(
    page: Page,
    live_kiln: LiveKiln,
    api_context: ApiContext,
    database: TestDatabase,
    callers: Callers,
    slow_channel: SlowChannel,
    tmp_path: Path,
) -> None:
    callers.user("alice", password=PASSWORD)
    log_in(page, live_kiln.url, "alice")
    page.get_by_role("link", name="New environment").click()
    page.get_by_role("textbox", name="Specification").fill(
        f"name: watched\nchannels:\n  - {slow_channel.url}\ndependencies:\n  - kiln-demo-tool\n"
    )
    with page.expect_navigation():
        page.get_by_role("button", name="Create environment").click()

    # No worker runs yet: the build waits in the queue, and the page says so.
    assert re.search(r"/ui/build/\d+/", page.url), page.url
    expect(page.get_by_role("status")).to_contain_text("its build is queued")
    assert build_status(page) == "QUEUED"

    log = page.locator("#log")
    seen_running_log = False
    with InProcessWorker(database, api_context.build_settings, api_context.storage):
        wait_for_status(page, "BUILDING")
        deadline = time.monotonic() + PACKAGE_DELAY
        while time.monotonic() < deadline and not seen_running_log:
            text = log.inner_text()
            seen_running_log = "--- solve ---" in text and build_status(page) == "BUILDING"
            page.wait_for_timeout(200)
        wait_for_status(page, "COMPLETED")
    assert seen_running_log, "no log lines appeared while the build was BUILDING"

    expect(log).to_contain_text("--- install ---")
    expect(page.locator(".timeline")).to_contain_text("install")
    expect(page.get_by_role("cell", name="kiln-demo-tool", exact=True)).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Lockfile (conda-lock)").click()
    saved = tmp_path / "lockfile.yml"
    download.value.save_as(saved)
    lockfile = saved.read_text()
    assert "kiln-demo-tool" in lockfile and "package:" in lockfile


def test_rebuilding_and_switching_the_current_build(
    page: Page, live_kiln: LiveKiln, live_kiln_worker: InProcessWorker, callers: Callers
) -> None:
    callers.user("alice", password=PASSWORD)
    log_in(page, live_kiln.url, "alice", "/ui/create/")
    page.get_by_role("textbox", name="Specification").fill(
        "name: tool\ndependencies:\n  - kiln-demo-tool\n"
    )
    with page.expect_navigation():
        page.get_by_role("button", name="Create environment").click()
    wait_for_status(page, "COMPLETED")
    first = int(re.findall(r"/ui/build/(\d+)/", page.url)[0])

    page.get_by_role("link", name="alice/tool").click()
    with page.expect_navigation():
        page.get_by_role("button", name="Rebuild").click()
    expect(page.get_by_role("status")).to_contain_text("A new build of this environment")
    second = int(re.findall(r"/ui/build/(\d+)/", page.url)[0])
    assert second != first
    wait_for_status(page, "COMPLETED")

    page.get_by_role("link", name="alice/tool").click()
    history = page.locator("#history + p + .table")
    expect(history.get_by_role("row", name=re.compile(f"^#{second} current"))).to_be_visible()
    with page.expect_navigation():
        history.get_by_role("button", name=f"Make build #{first} current").click()
    expect(page.get_by_role("status")).to_contain_text("The current build was switched.")
    expect(history.get_by_role("row", name=re.compile(f"^#{first} current"))).to_be_visible()
    expect(page.locator("#current + dl")).to_contain_text(f"#{first}")


def test_a_viewer_sees_no_edit_controls_and_a_direct_post_is_refused(
    page: Page, live_kiln: LiveKiln, callers: Callers
) -> None:
    admin = callers.token({"*/*": ["admin"]})
    spec = "name: shared\ndependencies:\n  - kiln-demo-data\n"
    queued = api_post(
        live_kiln, admin, "/api/v1/specification/", {"namespace": "default", "specification": spec}
    )
    callers.user("bob", password=PASSWORD)  # authenticated callers are viewers of default/*
    log_in(page, live_kiln.url, "bob", "/ui/environment/default/shared/")

    expect(page.get_by_role("heading", name="shared")).to_be_visible()
    for control in ("Edit the specification", "Delete…"):
        expect(page.get_by_role("link", name=control)).to_have_count(0)
    expect(page.get_by_role("button", name="Rebuild")).to_have_count(0)
    expect(page.get_by_text("Edit the description")).to_have_count(0)

    # bob's own form token (from a page where he may act), posted where he may not.
    page.goto(f"{live_kiln.url}/ui/create/")
    csrf = page.locator('input[name="csrf"]').first.get_attribute("value")
    answer = page.evaluate(
        """async ([path, csrf]) => {
            const response = await fetch(path, {method: "POST", body: new URLSearchParams({csrf})});
            return {status: response.status, text: await response.text()};
        }""",
        [f"/ui/build/{queued['build_id']}/rebuild/", csrf],
    )
    assert answer["status"] == 403, answer
    assert "environment::update" in answer["text"]
    page.goto(f"{live_kiln.url}/ui/environment/default/shared/")
    expect(page.locator("#history").locator("xpath=following-sibling::p[1]")).to_have_text(
        "1 build"
    )


def _api_status(live: LiveKiln, token: str, path: str) -> int:
    request = urllib.request.Request(
        f"{live.url}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_a_token_is_created_shown_once_used_and_revoked(
    page: Page, live_kiln: LiveKiln, callers: Callers
) -> None:
    callers.user("alice", password=PASSWORD)
    log_in(page, live_kiln.url, "alice", "/ui/tokens/")
    page.get_by_role("link", name="Create a token").click()
    page.locator("#name").fill("ci")
    page.get_by_label("Role bindings").fill("alice/*: viewer")
    with page.expect_navigation():
        page.get_by_role("button", name="Create token").click()

    expect(page.get_by_role("status")).to_contain_text("it will not be shown again")
    token = page.get_by_label("Token").input_value().strip()
    assert _api_status(live_kiln, token, "/api/v1/environment/alice/anything/") == 404
    page.get_by_role("button", name="Copy the token").click()  # shown only with JavaScript

    page.goto(f"{live_kiln.url}/ui/tokens/")
    assert token not in page.content()
    with page.expect_navigation():
        page.get_by_role("button", name="Revoke the token ci").click()
    expect(page.get_by_role("status")).to_contain_text("The token was revoked")
    expect(page.get_by_role("row", name=re.compile("^ci revoked"))).to_be_visible()
    assert _api_status(live_kiln, token, "/api/v1/permission/") == 401


def test_the_pages_work_from_the_keyboard_and_fit_a_phone(
    page: Page, live_kiln: LiveKiln, live_kiln_worker: InProcessWorker, callers: Callers
) -> None:
    callers.user("alice", password=PASSWORD)
    log_in(page, live_kiln.url, "alice", "/ui/create/")
    page.get_by_role("textbox", name="Specification").fill(
        "name: tool\ndependencies:\n  - kiln-demo-tool\n"
    )
    with page.expect_navigation():
        page.get_by_role("button", name="Create environment").click()
    wait_for_status(page, "COMPLETED")
    build_page = page.url

    # From the top of a page, the first Tab reaches "Skip to content", Enter lands in main.
    page.goto(f"{live_kiln.url}/ui/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.url.endswith("#main")
    # Every control can be reached with Tab, and shows where the focus is.
    reached: list[str] = []
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement === document.body"):
            break  # past the last control
        reached.append(page.evaluate("document.activeElement.textContent.trim()"))
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none", f"no visible focus on {reached[-1]!r}"
    assert "New environment" in reached and "alice/tool" in reached

    # At phone width nothing makes the page wider than the screen (tables scroll inside).
    page.set_viewport_size({"width": 375, "height": 740})
    for url in (f"{live_kiln.url}/ui/", f"{live_kiln.url}/ui/environment/alice/tool/",
                build_page, f"{live_kiln.url}/ui/environment/alice/tool/edit/"):  # fmt: skip
        page.goto(url)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{url} is {width}px wide at 375px"
