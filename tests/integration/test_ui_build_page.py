"""The build page on the real app and database: the step timeline of a real build with its
durations, the installed packages, a running build's timeline, and the build's actions (cancel,
delete after a confirmation page) for those allowed, refused for the others."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.orm import Session, sessionmaker

from appliance.api.context import ApiContext
from appliance.db.enums import BuildStatus
from appliance.db.models import Build, Environment
from appliance.storage.base import ArtifactKind
from appliance.ui.rendering import seconds_text
from tests.fixtures.api import Callers
from tests.fixtures.postgres import TestDatabase
from tests.fixtures.ui import csrf_for, refused, submit_form, text_of
from tests.fixtures.ui import submit_environment as submit
from tests.fixtures.worker import drain

Client = TestClient[Litestar]

SPEC = "name: {name}\ndependencies:\n  - kiln-demo-tool\n"
OTHER_SPEC = "name: {name}\ndependencies:\n  - kiln-demo-data\n"


def mark(
    sessions: sessionmaker[Session], build_id: int, status: BuildStatus, *, current: bool = False
) -> None:
    """Record ``build_id`` as ``status`` (no worker runs here), current when ``current``."""
    with sessions.begin() as session:
        build = session.get_one(Build, build_id)
        now = datetime.now(UTC)
        build.status = status
        build.started_on = now - timedelta(seconds=40)
        build.ended_on = now if status.is_final else None
        if current:
            session.get_one(Environment, build.environment_id).current_build_id = build_id


def state_of(sessions: sessionmaker[Session], build_id: int) -> tuple[BuildStatus, bool]:
    """The build's status and whether it was deleted."""
    with sessions() as session:
        build = session.get_one(Build, build_id)
        return build.status, build.deleted_on is not None


def test_a_real_build_shows_its_steps_with_durations_and_its_packages(
    api: Client,
    api_context: ApiContext,
    callers: Callers,
    database: TestDatabase,
    roles: dict[str, dict[str, str]],
) -> None:
    build_id = submit(api, callers.admin, "team", "web")
    drain(database, api_context.build_settings, api_context.storage)

    page = api.get(f"/ui/build/{build_id}/", headers=roles["viewer"])
    assert page.status_code == 200, page.text
    text = text_of(page.text)
    assert "COMPLETED" in text
    # every step the log reports, in its order, with the duration the log gives it
    log = api.get(f"/api/v1/build/{build_id}/logs/", headers=roles["viewer"]).text
    reported = re.findall(r"\[(\S+)\] \1 done in (\d+\.\d+)s", log)
    names = [name for name, _ in reported]
    for step in ("prepare", "solve", "lock", "install", "finalize"):
        assert step in names, (step, log)
    shown = re.findall(r"(\S+) done (under 0\.1 s|\d+\.\d s|\d+ s|\d+ min \d+ s)", text)
    assert [name for name, _ in shown] == names
    for name, seconds in reported:
        duration = "under 0.1 s" if float(seconds) < 0.05 else seconds_text(float(seconds))
        assert f"{name} done {duration}" in text, (name, seconds, text)
    assert "Steps Step Status Duration Started prepare done" in text
    assert re.search(r"\d\d:\d\d:\d\d UTC", text)  # when each step started
    assert 'href="/ui/static/build.css"' in page.text

    # the installed packages, as GET /build/{id}/packages/ lists them
    listed = api.get(f"/api/v1/build/{build_id}/packages/", headers=roles["viewer"]).json()
    assert listed["count"] >= 1
    assert f"{listed['count']} conda package" in text
    for package in listed["data"]:
        assert f"{package['name']} {package['version']}" in text
    assert "kiln-demo-tool" in text

    # the downloads and the complete log
    assert f'href="/api/v1/build/{build_id}/lockfile/"' in page.text
    assert f'data-src="/api/v1/build/{build_id}/logs/"' in page.text


def test_a_running_build_shows_the_step_in_progress_and_follows_its_log(
    api: Client,
    api_context: ApiContext,
    callers: Callers,
    db_sessions: sessionmaker[Session],
    roles: dict[str, dict[str, str]],
) -> None:
    build_id = submit(api, callers.admin, "team", "web")
    queued = text_of(api.get(f"/ui/build/{build_id}/", headers=roles["viewer"]).text)
    assert "The build is queued; its steps appear when a worker starts it." in queued
    assert "The packages are listed once the build completes." in queued

    mark(db_sessions, build_id, BuildStatus.BUILDING)
    with db_sessions() as session:
        key = session.get_one(Build, build_id).build_key
    started = datetime.now(UTC) - timedelta(seconds=75)
    stamp = started.strftime("%Y-%m-%dT%H:%M:%SZ")
    api_context.storage.put(
        ArtifactKind.LOGS.storage_key(key),
        (
            f"{stamp} [build] build {build_id} of team/web (key {key})\n"
            f"{stamp} [prepare] --- prepare ---\n"
            f"{stamp} [prepare] prepare done in 0.02s\n"
            f"{stamp} [solve] --- solve ---\n"
            f"{stamp} [solve] solve done in 12.50s\n"
            f"{stamp} [install] --- install ---\n"
            f"{stamp} [install] linked 3 packages\n"
        ).encode(),
    )
    page = api.get(f"/ui/build/{build_id}/", headers=roles["viewer"])
    text = text_of(page.text)
    assert "BUILDING" in text
    assert "prepare done under 0.1 s" in text
    assert "solve done 12 s" in text
    assert re.search(r"install running 1 min 1[5-9] s so far", text), text
    assert f'data-src="/api/v1/build/{build_id}/logs/?follow=true"' in page.text
    assert 'id="timeline"' in page.text and 'id="build-facts"' in page.text  # log.js refreshes
    script = api.get("/ui/static/log.js").text
    assert "timeline" in script and "reload" in script

    # the build failed meanwhile: the step that never ended is shown as interrupted
    mark(db_sessions, build_id, BuildStatus.FAILED)
    ended = text_of(api.get(f"/ui/build/{build_id}/", headers=roles["viewer"]).text)
    assert "install interrupted" in ended


def test_an_editor_cancels_a_running_build_and_a_viewer_cannot(
    api: Client,
    api_context: ApiContext,
    callers: Callers,
    db_sessions: sessionmaker[Session],
    roles: dict[str, dict[str, str]],
) -> None:
    build_id = submit(api, callers.admin, "team", "web")
    page = f"/ui/build/{build_id}/"
    action = f"{page}cancel/"
    assert action not in api.get(page, headers=roles["viewer"]).text
    assert f'action="{action}"' in api.get(page, headers=roles["editor"]).text

    viewer = roles["viewer"]
    response = api.post(
        action,
        data={"csrf": csrf_for(api_context, viewer)},
        headers=viewer,
        follow_redirects=False,
    )
    refused(response, 403, "build::cancel on team/web")
    wrong = api.post(
        action, data={"csrf": "f" * 64}, headers=roles["editor"], follow_redirects=False
    )
    refused(wrong, 403, "reload the page")
    assert state_of(db_sessions, build_id) == (BuildStatus.QUEUED, False)

    response = submit_form(api, page, action, {}, headers=roles["editor"])
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"{page}?done=canceled"
    assert state_of(db_sessions, build_id)[0] == BuildStatus.CANCELED
    after = api.get(response.headers["location"], headers=roles["editor"]).text
    assert "The build is being canceled." in text_of(after)
    assert action not in after  # nothing left to cancel

    again = api.post(
        action,
        data={"csrf": csrf_for(api_context, roles["editor"])},
        headers=roles["editor"],
        follow_redirects=False,
    )
    refused(again, 409, f"build {build_id}")


def test_an_admin_deletes_a_finished_build_after_confirming(
    api: Client,
    api_context: ApiContext,
    callers: Callers,
    db_sessions: sessionmaker[Session],
    roles: dict[str, dict[str, str]],
) -> None:
    old = submit(api, callers.admin, "team", "web")
    mark(db_sessions, old, BuildStatus.COMPLETED, current=True)
    new = submit(api, callers.admin, "team", "web", OTHER_SPEC)
    mark(db_sessions, new, BuildStatus.COMPLETED, current=True)
    page, confirm = f"/ui/build/{old}/", f"/ui/build/{old}/delete/"

    assert f'href="{confirm}"' in api.get(page, headers=roles["admin"]).text
    assert confirm not in api.get(page, headers=roles["editor"]).text  # needs build::delete
    assert "/delete/" not in api.get(f"/ui/build/{new}/", headers=roles["admin"]).text  # current

    refused(api.get(confirm, headers=roles["editor"]), 403, "build::delete on team/web")
    editor = roles["editor"]
    response = api.post(
        confirm,
        data={"csrf": csrf_for(api_context, editor)},
        headers=editor,
        follow_redirects=False,
    )
    refused(response, 403, "build::delete on team/web")
    assert state_of(db_sessions, old) == (BuildStatus.COMPLETED, False)

    asked = api.get(confirm, headers=roles["admin"])
    assert asked.status_code == 200, asked.text
    text = text_of(asked.text)
    assert f"Delete build #{old} (COMPLETED) of team/web? This removes:" in text
    assert "This cannot be undone." in text
    assert state_of(db_sessions, old) == (BuildStatus.COMPLETED, False)  # asking changed nothing

    response = submit_form(api, confirm, confirm, {}, headers=roles["admin"])
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/ui/environment/team/web/?done=deleted"
    assert state_of(db_sessions, old) == (BuildStatus.COMPLETED, True)
    shown = text_of(api.get(page, headers=roles["admin"]).text)
    assert "deleted" in shown


def test_a_build_that_cannot_be_deleted_gets_a_page_saying_why(
    api: Client,
    api_context: ApiContext,
    callers: Callers,
    db_sessions: sessionmaker[Session],
    roles: dict[str, dict[str, str]],
) -> None:
    current = submit(api, callers.admin, "team", "web")
    mark(db_sessions, current, BuildStatus.COMPLETED, current=True)
    running = submit(api, callers.admin, "team", "web", OTHER_SPEC)
    admin = roles["admin"]
    token = csrf_for(api_context, admin)
    assert "/delete/" not in api.get(f"/ui/build/{running}/", headers=admin).text
    for build_id, message in (
        (current, f"build {current} is the current build of team/web; make another build"),
        (running, f"build {running} is QUEUED; cancel it first, then delete it"),
    ):
        response = api.post(
            f"/ui/build/{build_id}/delete/",
            data={"csrf": token},
            headers=admin,
            follow_redirects=False,
        )
        refused(response, 409, message)
    assert state_of(db_sessions, current) == (BuildStatus.COMPLETED, False)
    assert state_of(db_sessions, running) == (BuildStatus.QUEUED, False)
    refused(api.get("/ui/build/999999/delete/", headers=admin), 404, "build 999999 does not exist")


def test_the_packages_page_number_is_checked(
    api: Client, callers: Callers, roles: dict[str, dict[str, str]]
) -> None:
    build_id = submit(api, callers.admin, "team", "web")
    response = api.get(f"/ui/build/{build_id}/?page=0", headers=roles["viewer"])
    refused(response, 400, "page must be 1 or more, not 0")
