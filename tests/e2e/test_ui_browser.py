"""The web UI in a real browser (headless Chromium) against a live ``kiln web``.

Logging in through the login page sets the session cookie, the API sees the browser as that
user, and logging out ends the session for good; a logged-in browser's build runs on the
live server's worker.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.fixtures.api import Callers
from tests.fixtures.browser import LiveKiln
from tests.fixtures.worker import InProcessWorker

pytestmark = pytest.mark.browser

#: Kiln's default ``Authentication.cookie_name`` (conda-store's).
SESSION_COOKIE = "conda-store-auth"
PASSWORD = "correct-horse-battery"


def _session_cookie(page: Page) -> dict[str, Any] | None:
    return next((dict(c) for c in page.context.cookies() if c["name"] == SESSION_COOKIE), None)


def _permissions(page: Page) -> dict[str, Any]:
    """``GET /api/v1/permission/`` sent by the page itself (its cookies, same origin)."""
    answer = _fetch_json(page, "/api/v1/permission/")
    assert answer["status"] == 200, answer
    data: dict[str, Any] = answer["body"]["data"]
    return data


def _log_in(page: Page, url: str, username: str, password: str) -> None:
    page.goto(f"{url}/login/")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()


def _fetch_json(page: Page, path: str, body: object | None = None) -> dict[str, Any]:
    """``path`` fetched by the page (GET, or POST of ``body`` as JSON): status and body."""
    answer: dict[str, Any] = page.evaluate(
        """async ([path, body]) => {
            const init = body === null ? {} : {
                method: "POST", headers: {"Content-Type": "application/json"},
                body: JSON.stringify(body),
            };
            const response = await fetch(path, init);
            return {status: response.status, body: await response.json()};
        }""",
        [path, body],
    )
    return answer


def _status_with_cookie(url: str, cookie: str) -> int:
    request = urllib.request.Request(url, headers={"Cookie": f"{SESSION_COOKIE}={cookie}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_logging_in_and_out_in_a_browser(page: Page, live_kiln: LiveKiln, callers: Callers) -> None:
    callers.user("alice", password=PASSWORD)

    page.goto(f"{live_kiln.url}/login/")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    assert _session_cookie(page) is None
    assert _permissions(page)["authenticated"] is False

    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()

    cookie = _session_cookie(page)
    assert cookie is not None, "no session cookie after logging in"
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    me = _permissions(page)
    assert me["authenticated"] is True
    assert me["username"] == "alice"
    assert me["primary_namespace"] == "alice"

    page.goto(f"{live_kiln.url}/ui/")
    expect(page.get_by_text("Logged in as alice")).to_be_visible()
    with page.expect_navigation():
        page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("navigation").get_by_role("link", name="Log in")).to_be_visible()
    assert _session_cookie(page) is None
    assert _permissions(page)["authenticated"] is False
    # The old cookie is revoked, not merely forgotten by the browser.
    assert _status_with_cookie(f"{live_kiln.url}/api/v1/permission/", cookie["value"]) == 401


def test_wrong_password_keeps_the_browser_logged_out(
    page: Page, live_kiln: LiveKiln, callers: Callers
) -> None:
    callers.user("alice", password=PASSWORD)

    _log_in(page, live_kiln.url, "alice", "wrong-horse")

    expect(page.get_by_text("Invalid authentication credentials")).to_be_visible()
    assert _session_cookie(page) is None
    assert _permissions(page)["authenticated"] is False


def test_a_logged_in_browser_builds_an_environment_on_the_live_worker(
    page: Page, live_kiln: LiveKiln, live_kiln_worker: InProcessWorker, callers: Callers
) -> None:
    callers.user("alice", password=PASSWORD)
    _log_in(page, live_kiln.url, "alice", PASSWORD)

    spec = "name: tool\ndependencies:\n  - kiln-demo-tool\n"
    submitted = _fetch_json(
        page, "/api/v1/specification/", {"namespace": "alice", "specification": spec}
    )
    assert submitted["status"] == 200, submitted
    build_id = submitted["body"]["data"]["build_id"]

    status = ""
    for _ in range(240):  # 120 s
        status = _fetch_json(page, f"/api/v1/build/{build_id}/")["body"]["data"]["status"]
        if status in ("COMPLETED", "FAILED", "CANCELED"):
            break
        page.wait_for_timeout(500)
    assert status == "COMPLETED"
    lockfile = page.request.get(f"{live_kiln.url}/api/v1/build/{build_id}/lockfile/")
    assert lockfile.ok and "kiln-demo-tool" in lockfile.text()
