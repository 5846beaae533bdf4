"""The environment page's actions on the real app and database: description, switching the
current build, rebuilding, deleting (after a confirmation page) and cloning; each for a caller
with the role, refused for one without it (and without a valid form token), and bad input
answered with a page naming the problem while nothing changes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from appliance.api.context import ApiContext
from appliance.db.enums import BuildStatus
from appliance.db.models import Build, Environment, Namespace
from tests.fixtures.api import Callers
from tests.fixtures.ui import (
    csrf_for,
    csrf_of,
    refused,
    submit_environment,
    submit_form,
    text_of,
)

Client = TestClient[Litestar]

SPEC = "name: {name}\ndescription: tools\ndependencies:\n  - kiln-demo-tool\n"
OTHER_SPEC = "name: {name}\ndependencies:\n  - kiln-demo-data\n"


def submit(
    api: Client, headers: Mapping[str, str], namespace: str, name: str, spec: str = SPEC
) -> int:
    """:func:`submit_environment` with this module's described ``SPEC`` by default."""
    return submit_environment(api, headers, namespace, name, spec)


PAGE = "/ui/environment/team/web/"


def complete(sessions: sessionmaker[Session], build_id: int, *, current: bool = True) -> None:
    """Record ``build_id`` as built (no worker runs here), and as current when ``current``."""
    with sessions.begin() as session:
        build = session.get_one(Build, build_id)
        now = datetime.now(UTC)
        build.status = BuildStatus.COMPLETED
        build.started_on, build.ended_on, build.size = now - timedelta(seconds=30), now, 1024
        if current:
            session.get_one(Environment, build.environment_id).current_build_id = build_id


def current_of(sessions: sessionmaker[Session], namespace: str, name: str) -> int | None:
    """The current build of ``namespace/name`` (an undeleted environment), or None."""
    with sessions() as session:
        environment = session.scalars(
            select(Environment)
            .join(Namespace, Namespace.id == Environment.namespace_id)
            .where(Namespace.name == namespace, Environment.name == name)
            .where(Environment.deleted_on.is_(None))
        ).one()
        return environment.current_build_id


def environment_names(sessions: sessionmaker[Session]) -> list[str]:
    """``namespace/name`` of every undeleted environment."""
    with sessions() as session:
        rows = session.execute(
            select(Namespace.name, Environment.name)
            .join(Namespace, Namespace.id == Environment.namespace_id)
            .where(Environment.deleted_on.is_(None))
            .order_by(Namespace.name, Environment.name)
        )
        return [f"{namespace}/{name}" for namespace, name in rows]


def build_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Build)) or 0)


@pytest.fixture
def two_builds(api: Client, callers: Callers, db_sessions: sessionmaker[Session]) -> list[int]:
    """``team/web`` with two COMPLETED builds, the second one current."""
    first = submit(api, callers.admin, "team", "web")
    complete(db_sessions, first)
    second = submit(api, callers.admin, "team", "web", OTHER_SPEC)
    complete(db_sessions, second)
    return [first, second]


# --- what each caller is offered ----------------------------------------------------------------


def test_a_viewer_sees_no_controls_and_an_editor_sees_those_of_an_editor(
    api: Client, roles: dict[str, dict[str, str]], two_builds: list[int]
) -> None:
    first, second = two_builds
    viewer = api.get(PAGE, headers=roles["viewer"]).text
    for control in ("description/", "switch/", "rebuild/", "delete/", "clone/", "edit/"):
        assert control not in viewer, control
    assert 'name="csrf"' not in viewer

    editor = api.get(PAGE, headers=roles["editor"]).text
    assert f'action="{PAGE}description/"' in editor
    assert re.search(r'<label for="description">', editor)
    assert f'action="/ui/build/{second}/rebuild/"' in editor
    assert f'href="{PAGE}edit/"' in editor
    # "Make current" for the completed build that is not current, not for the current one
    assert f'name="build_id" value="{first}"' in editor
    assert f'name="build_id" value="{second}"' not in editor
    assert f'href="{PAGE}delete/"' not in editor  # deleting needs environment::delete
    assert f'action="{PAGE}clone/"' in editor

    admin = api.get(PAGE, headers=roles["admin"]).text
    assert f'href="{PAGE}delete/"' in admin


# --- description -------------------------------------------------------------------------------


def test_an_editor_changes_the_description(
    api: Client, roles: dict[str, dict[str, str]], two_builds: list[int]
) -> None:
    response = submit_form(
        api,
        PAGE,
        f"{PAGE}description/",
        {"description": "  The web team's tools  "},
        headers=roles["editor"],
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"{PAGE}?done=described"
    page = text_of(api.get(response.headers["location"], headers=roles["viewer"]).text)
    assert "The description was saved." in page
    assert "The web team's tools" in page
    data = api.get("/api/v1/environment/team/web/", headers=roles["viewer"]).json()["data"]
    assert data["description"] == "The web team's tools"


def test_a_viewer_cannot_change_the_description_even_with_a_valid_form_token(
    api: Client, api_context: ApiContext, roles: dict[str, dict[str, str]], two_builds: list[int]
) -> None:
    viewer = roles["viewer"]
    response = api.post(
        f"{PAGE}description/",
        data={"csrf": csrf_for(api_context, viewer), "description": "defaced"},
        headers=viewer,
        follow_redirects=False,
    )
    refused(response, 403, "environment::update on team/web")
    assert "defaced" not in api.get(PAGE, headers=viewer).text


def test_a_form_without_the_callers_token_changes_nothing(
    api: Client,
    api_context: ApiContext,
    roles: dict[str, dict[str, str]],
    two_builds: list[int],
    db_sessions: sessionmaker[Session],
) -> None:
    editor = roles["editor"]
    first, second = two_builds
    foreign = csrf_for(api_context, roles["admin"])  # another session's token
    for fields in ({}, {"csrf": ""}, {"csrf": "0" * 64}, {"csrf": foreign}):
        for action, values in (
            ("description/", {"description": "forged"}),
            ("switch/", {"build_id": str(first)}),
        ):
            response = api.post(
                f"{PAGE}{action}",
                data={**fields, **values},
                headers=editor,
                follow_redirects=False,
            )
            refused(response, 403, "reload the page")
    assert current_of(db_sessions, "team", "web") == second
    assert "forged" not in api.get(PAGE, headers=editor).text


def test_a_description_too_long_is_refused(
    api: Client, roles: dict[str, dict[str, str]], two_builds: list[int]
) -> None:
    response = submit_form(
        api, PAGE, f"{PAGE}description/", {"description": "x" * 20000}, headers=roles["editor"]
    )
    refused(response, 400, "description is 20000 characters long; at most 16384 are allowed")
    assert "x" * 100 not in api.get(PAGE, headers=roles["viewer"]).text


# --- switching the current build ---------------------------------------------------------------


def test_an_editor_switches_the_current_build(
    api: Client,
    roles: dict[str, dict[str, str]],
    two_builds: list[int],
    db_sessions: sessionmaker[Session],
) -> None:
    first, second = two_builds
    response = submit_form(
        api, PAGE, f"{PAGE}switch/", {"build_id": str(first)}, headers=roles["editor"]
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"{PAGE}?done=switched"
    assert current_of(db_sessions, "team", "web") == first
    page = api.get(response.headers["location"], headers=roles["editor"]).text
    assert "The current build was switched." in text_of(page)
    assert f'name="build_id" value="{second}"' in page  # now the other one can be switched to


def test_a_viewer_cannot_switch_the_current_build(
    api: Client,
    api_context: ApiContext,
    roles: dict[str, dict[str, str]],
    two_builds: list[int],
    db_sessions: sessionmaker[Session],
) -> None:
    first, second = two_builds
    viewer = roles["viewer"]
    response = api.post(
        f"{PAGE}switch/",
        data={"csrf": csrf_for(api_context, viewer), "build_id": str(first)},
        headers=viewer,
        follow_redirects=False,
    )
    refused(response, 403, "environment::update on team/web", "Ask an administrator")
    assert current_of(db_sessions, "team", "web") == second


def test_switching_to_a_build_that_cannot_be_current_names_the_problem(
    api: Client,
    callers: Callers,
    roles: dict[str, dict[str, str]],
    two_builds: list[int],
    db_sessions: sessionmaker[Session],
) -> None:
    second = two_builds[1]
    elsewhere = submit(api, callers.admin, "team", "api")
    complete(db_sessions, elsewhere)
    queued = submit(api, callers.admin, "team", "web", SPEC.replace("tools", "more tools"))
    for value, status, message in (
        ("", 400, "build_id must be a build number (1, 2, ...), not nothing"),
        ("abc", 400, "build_id must be a build number (1, 2, ...), not 'abc'"),
        ("-3", 400, "build_id must be a build number"),
        ("999999", 400, "build 999999 is not a build of team/web; choose one of its own builds"),
        (str(elsewhere), 400, f"build {elsewhere} is not a build of team/web"),
        (str(queued), 400, f"build {queued} is QUEUED; only a COMPLETED build can become"),
    ):
        response = submit_form(
            api, PAGE, f"{PAGE}switch/", {"build_id": value}, headers=roles["editor"]
        )
        refused(response, status, message)
    assert current_of(db_sessions, "team", "web") == second
    assert current_of(db_sessions, "team", "api") == elsewhere


# --- rebuilding --------------------------------------------------------------------------------


def test_an_editor_rebuilds_the_current_build(
    api: Client,
    api_context: ApiContext,
    roles: dict[str, dict[str, str]],
    two_builds: list[int],
    db_sessions: sessionmaker[Session],
) -> None:
    second = two_builds[1]
    before = build_count(db_sessions)
    viewer = roles["viewer"]
    response = api.post(
        f"/ui/build/{second}/rebuild/",
        data={"csrf": csrf_for(api_context, viewer)},
        headers=viewer,
        follow_redirects=False,
    )
    refused(response, 403, "environment::update on team/web")
    assert build_count(db_sessions) == before

    response = submit_form(api, PAGE, f"/ui/build/{second}/rebuild/", {}, headers=roles["editor"])
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    found = re.fullmatch(r"/ui/build/(\d+)/\?done=rebuilt", location)
    assert found, location
    new_id = int(found.group(1))
    with db_sessions() as session:
        new, old = session.get_one(Build, new_id), session.get_one(Build, second)
        assert new.status == BuildStatus.QUEUED
        assert new.environment_id == old.environment_id
        assert new.specification_id == old.specification_id
    page = api.get(location, headers=roles["editor"])
    assert "A new build of this environment is queued." in text_of(page.text)
    assert current_of(db_sessions, "team", "web") == second  # current until it completes


# --- deleting ----------------------------------------------------------------------------------


def test_an_admin_deletes_the_environment_after_confirming(
    api: Client,
    roles: dict[str, dict[str, str]],
    two_builds: list[int],
    db_sessions: sessionmaker[Session],
    callers: Callers,
) -> None:
    submit(api, callers.admin, "team", "web", SPEC.replace("tools", "queued tools"))
    admin = roles["admin"]
    confirm = api.get(f"{PAGE}delete/", headers=admin)
    assert confirm.status_code == 200, confirm.text
    text = text_of(confirm.text)
    assert "Delete the environment team/web? This removes:" in text
    assert "the environment team/web and its settings" in text
    assert "its 3 builds and their artifacts" in text
    assert "1 of them is still queued or building and will be canceled" in text
    assert "This cannot be undone." in text
    assert f'action="{PAGE}delete/"' in confirm.text
    assert f'href="{PAGE}"' in confirm.text  # the way back
    assert "team/web" in environment_names(db_sessions)  # asking changed nothing

    response = submit_form(api, f"{PAGE}delete/", f"{PAGE}delete/", {}, headers=admin)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/ui/?namespace=team&done=deleted"
    assert "team/web" not in environment_names(db_sessions)
    assert api.get(PAGE, headers=admin).status_code == 404
    listing = api.get(response.headers["location"], headers=admin)
    assert "It was deleted." in text_of(listing.text)


def test_an_editor_can_neither_ask_to_delete_nor_delete(
    api: Client,
    api_context: ApiContext,
    roles: dict[str, dict[str, str]],
    two_builds: list[int],
    db_sessions: sessionmaker[Session],
) -> None:
    editor = roles["editor"]
    refused(api.get(f"{PAGE}delete/", headers=editor), 403, "environment::delete on team/web")
    response = api.post(
        f"{PAGE}delete/",
        data={"csrf": csrf_for(api_context, editor)},
        headers=editor,
        follow_redirects=False,
    )
    refused(response, 403, "environment::delete on team/web")
    assert "team/web" in environment_names(db_sessions)


def test_deleting_needs_the_callers_form_token(
    api: Client,
    roles: dict[str, dict[str, str]],
    two_builds: list[int],
    db_sessions: sessionmaker[Session],
) -> None:
    response = api.post(f"{PAGE}delete/", headers=roles["admin"], follow_redirects=False)
    refused(response, 403, "this form does not belong to your current session")
    assert "team/web" in environment_names(db_sessions)


def test_deleting_an_environment_that_does_not_exist_says_so(
    api: Client, roles: dict[str, dict[str, str]]
) -> None:
    response = api.get("/ui/environment/team/nope/delete/", headers=roles["admin"])
    refused(response, 404, "environment team/nope does not exist")


# --- cloning -----------------------------------------------------------------------------------


@pytest.fixture
def cloner(api: Client, callers: Callers, two_builds: list[int]) -> dict[str, str]:
    """An editor of ``team`` and ``other`` (both exist) who can only read ``secret``."""
    submit(api, callers.admin, "other", "base")
    submit(api, callers.admin, "secret", "keys")
    return callers.headers({"team/*": ["editor"], "other/*": ["editor"], "secret/*": ["viewer"]})


def test_the_clone_form_offers_the_namespaces_the_caller_can_create_in(
    api: Client, cloner: dict[str, str]
) -> None:
    page = api.get(PAGE, headers=cloner).text
    form = page[page.index(f'action="{PAGE}clone/"') :]
    options = re.findall(r'<option value="([^"]+)"', form)
    assert options == ["other", "team"]
    assert '<option value="team" selected>' in form
    assert re.search(r'<label for="clone-name">', form) and 'id="clone-name"' in form


def test_cloning_creates_an_environment_with_the_same_specification(
    api: Client,
    cloner: dict[str, str],
    two_builds: list[int],
    db_sessions: sessionmaker[Session],
) -> None:
    second = two_builds[1]
    api.put("/api/v1/environment/team/web/", json={"description": "tools"}, headers=cloner)
    response = submit_form(
        api, PAGE, f"{PAGE}clone/", {"namespace": "other", "name": "web-copy"}, headers=cloner
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/ui/environment/other/web-copy/?done=cloned"
    page = api.get(response.headers["location"], headers=cloner)
    assert page.status_code == 200
    assert "The environment was cloned; its first build is queued." in text_of(page.text)

    source = api.get(f"/api/v1/build/{second}/", headers=cloner).json()["data"]
    builds = api.get(
        "/api/v1/build/", params={"namespace": "other", "name": "web-copy"}, headers=cloner
    ).json()["data"]
    assert len(builds) == 1 and builds[0]["status"] == "QUEUED"
    clone = api.get(f"/api/v1/build/{builds[0]['id']}/", headers=cloner).json()["data"]
    assert clone["specification"]["spec"]["dependencies"] == ["kiln-demo-data"]
    assert (
        clone["specification"]["spec"]["dependencies"]
        == (source["specification"]["spec"]["dependencies"])
    )
    assert clone["specification"]["name"] == "web-copy"
    environment = api.get("/api/v1/environment/other/web-copy/", headers=cloner).json()["data"]
    assert environment["description"] == "tools"
    assert current_of(db_sessions, "team", "web") == second  # the source is unchanged

    # the same namespace under another name works too
    again = submit_form(
        api, PAGE, f"{PAGE}clone/", {"namespace": "team", "name": "web2"}, headers=cloner
    )
    assert again.headers["location"] == "/ui/environment/team/web2/?done=cloned"


def test_bad_clone_requests_name_the_problem_and_create_nothing(
    api: Client, cloner: dict[str, str], db_sessions: sessionmaker[Session]
) -> None:
    before = environment_names(db_sessions)
    builds = build_count(db_sessions)
    for fields, status, message in (
        ({"namespace": "team", "name": ""}, 400, "the environment name cannot be empty"),
        ({"namespace": "team", "name": "my env!"}, 400, "contains ' ', '!'"),
        ({"namespace": "", "name": "web3"}, 400, "the namespace name cannot be empty"),
        ({"namespace": "team", "name": "web"}, 409, "environment team/web already exists"),
        ({"namespace": "other", "name": "base"}, 409, "environment other/base already exists"),
        ({"namespace": "secret", "name": "web"}, 403, "environment::create on secret/web"),
        ({"namespace": "brand-new", "name": "web"}, 403, "environment::create on brand-new/web"),
    ):
        response = submit_form(api, PAGE, f"{PAGE}clone/", fields, headers=cloner)
        refused(response, status, message)
    assert environment_names(db_sessions) == before
    assert build_count(db_sessions) == builds


def test_a_viewer_cannot_clone(
    api: Client,
    api_context: ApiContext,
    roles: dict[str, dict[str, str]],
    two_builds: list[int],
    db_sessions: sessionmaker[Session],
) -> None:
    viewer = roles["viewer"]
    assert "clone/" not in api.get(PAGE, headers=viewer).text
    response = api.post(
        f"{PAGE}clone/",
        data={"csrf": csrf_for(api_context, viewer), "namespace": "team", "name": "mine"},
        headers=viewer,
        follow_redirects=False,
    )
    refused(response, 403, "environment::create on team/mine")
    assert "team/mine" not in environment_names(db_sessions)


def test_an_environment_without_a_current_build_offers_no_clone(
    api: Client, callers: Callers, roles: dict[str, dict[str, str]]
) -> None:
    submit(api, callers.admin, "team", "fresh")
    editor = roles["editor"]
    page = api.get("/ui/environment/team/fresh/", headers=editor)
    assert "clone/" not in page.text
    response = api.post(
        "/ui/environment/team/fresh/clone/",
        data={
            "csrf": csrf_of(api.get(PAGE.replace("web", "fresh"), headers=editor).text),
            "namespace": "team",
            "name": "fresh2",
        },
        headers=editor,
        follow_redirects=False,
    )
    refused(response, 409, "environment team/fresh has no current build to clone")
