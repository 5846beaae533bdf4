"""The web UI's pages on the real app and database: what each caller sees, pagination, the
environment and build pages, and errors as pages a person understands."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.orm import Session, sessionmaker

from appliance.api.context import ApiContext
from appliance.db.enums import BuildArtifactType, BuildStatus
from appliance.db.models import Build, BuildArtifact, Environment
from appliance.web.app import create_app
from appliance.web.settings import WebSettings
from tests.fixtures.api import Callers
from tests.fixtures.postgres import TestDatabase
from tests.fixtures.ui import submit_environment as submit
from tests.fixtures.ui import text_of

Client = TestClient[Litestar]

SPEC = "name: {name}\ndependencies:\n  - kiln-demo-tool\n"
OTHER_SPEC = "name: {name}\ndependencies:\n  - kiln-demo-data\n"


def complete(sessions: sessionmaker[Session], build_id: int, size: int) -> None:
    """Record ``build_id`` as built (no worker runs here) and make it its environment's
    current build."""
    with sessions.begin() as session:
        build = session.get_one(Build, build_id)
        now = datetime.now(UTC)
        build.status = BuildStatus.COMPLETED
        build.started_on = now - timedelta(minutes=2, seconds=5)
        build.ended_on = now
        build.size = size
        session.get_one(Environment, build.environment_id).current_build_id = build_id


def listed(html: str) -> list[str]:
    """``namespace/name`` of the environments a list page links to, in order."""
    return [
        f"{ns}/{name}"
        for ns, name in re.findall(r'href="/ui/environment/([^/"]+)/([^/"]+)/"', html)
    ]


def test_the_prefix_leads_to_the_environment_list(api: Client) -> None:
    response = api.get("/", follow_redirects=False)
    assert response.status_code in (301, 302, 303, 307, 308)
    assert response.headers["location"] == "/ui/"


def test_the_list_shows_the_environments_a_viewer_can_see_and_not_others(
    api: Client, callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    build_id = submit(api, callers.admin, "team", "web")
    submit(api, callers.admin, "team", "data")
    submit(api, callers.admin, "secret", "keys")
    complete(db_sessions, build_id, size=3 * 1024 * 1024)
    viewer = callers.headers({"team/*": ["viewer"]})

    page = api.get("/ui/", headers=viewer)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert listed(page.text) == ["team/data", "team/web"]
    text = text_of(page.text)
    assert "2 environments" in text
    assert "secret" not in text
    # The current build's status, age and size; an environment still without one says so.
    assert re.search(r"team/web COMPLETED \d+ s ago 3\.0 MiB", text), text
    assert "team/data no build yet" in text

    only_web = api.get("/ui/?search=we&status=completed", headers=viewer)
    assert listed(only_web.text) == ["team/web"]
    assert listed(api.get("/ui/?namespace=secret", headers=viewer).text) == []
    everything = api.get("/ui/?sort=name&order=desc", headers=callers.admin)
    assert listed(everything.text) == ["team/web", "secret/keys", "team/data"]


def test_the_list_has_labelled_filters_and_shows_who_is_logged_in(
    api: Client, callers: Callers
) -> None:
    page = api.get("/ui/", headers=callers.session_headers("alice"))
    for field in ("search", "namespace", "status", "sort", "order"):
        assert re.search(rf"<label>[^<]*<(input|select)[^>]* name=\"{field}\"", page.text), field
    text = text_of(page.text)
    assert "Logged in as alice" in text
    assert 'method="post" action="/logout/' in page.text
    assert 'name="viewport"' in page.text

    anonymous = api.get("/ui/")
    assert anonymous.status_code == 200
    assert 'href="/login/?next=%2Fui%2F"' in anonymous.text


def test_every_environment_is_reachable_through_page_links(api: Client, callers: Callers) -> None:
    names = [f"env{number:02}" for number in range(60)]
    for name in names:
        submit(api, callers.admin, "many", name)

    first = api.get("/ui/?namespace=many", headers=callers.admin)
    assert "60 environments, page 1 of 3" in text_of(first.text)
    assert 'href="?namespace=many&amp;page=3"' in first.text
    seen: list[str] = []
    for number in (1, 2, 3):
        page = api.get(f"/ui/?namespace=many&page={number}", headers=callers.admin)
        assert page.status_code == 200
        assert re.search(rf'<span aria-current="page">{number}</span>', page.text)
        seen += listed(page.text)
    assert seen == [f"many/{name}" for name in names]  # no hidden cap, nothing twice
    last = api.get("/ui/?namespace=many&page=3", headers=callers.admin).text
    assert 'rel="next"' not in last and 'rel="prev"' in last


def test_the_environment_page_shows_the_current_build_its_spec_and_history(
    api: Client, callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    first = submit(api, callers.admin, "team", "web")
    complete(db_sessions, first, size=2048)
    second = submit(api, callers.admin, "team", "web", OTHER_SPEC)
    viewer = callers.headers({"team/web": ["viewer"]})

    page = api.get("/ui/environment/team/web/", headers=viewer)
    assert page.status_code == 200, page.text
    text = text_of(page.text)
    assert "Current build Build #" in text and "COMPLETED" in text
    assert "kiln-demo-tool" in text  # the spec, as YAML
    assert "2 builds" in text
    assert re.search(rf"#{second} QUEUED .* #{first} current COMPLETED .* 2 min 5 s 2\.0 KiB", text)
    assert f'href="/ui/build/{first}/"' in page.text


def test_the_build_page_shows_status_times_artifacts_and_follows_a_running_log(
    api: Client, callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    queued = submit(api, callers.admin, "team", "web")
    viewer = callers.headers({"team/*": ["viewer"]})

    page = api.get(f"/ui/build/{queued}/", headers=viewer)
    assert page.status_code == 200, page.text
    text = text_of(page.text)
    assert f"Build #{queued}" in text and "QUEUED" in text
    assert f'data-src="/api/v1/build/{queued}/logs/?follow=true"' in page.text
    assert 'src="/ui/static/log.js"' in page.text
    assert f'href="/api/v1/build/{queued}/logs/"' in page.text  # the log without JavaScript
    assert 'href="/ui/environment/team/web/"' in page.text

    complete(db_sessions, queued, size=10)
    done = api.get(f"/ui/build/{queued}/", headers=viewer).text
    assert f'data-src="/api/v1/build/{queued}/logs/"' in done
    assert "Duration 2 min 5 s" in text_of(done)

    script = api.get("/ui/static/log.js")
    assert script.status_code == 200
    assert "follow=true" in script.text


def test_missing_things_are_pages_saying_what_is_missing(api: Client, callers: Callers) -> None:
    submit(api, callers.admin, "team", "web")
    for path, what in (
        ("/ui/environment/team/nope/", "environment team/nope does not exist"),
        ("/ui/build/999999/", "build 999999 does not exist"),
        ("/ui/no-such-page/", "there is no page at /ui/no-such-page"),
    ):
        page = api.get(path, headers=callers.admin)
        assert page.status_code == 404, path
        assert page.headers["content-type"].startswith("text/html"), path
        text = text_of(page.text)
        assert "Not found" in text and what in text, text
        assert "Traceback" not in page.text


def test_a_caller_without_the_permission_gets_a_page_naming_it(
    api: Client, callers: Callers
) -> None:
    build_id = submit(api, callers.admin, "team", "web")
    elsewhere = callers.headers({"other/*": ["admin"]})
    for path in ("/ui/environment/team/web/", f"/ui/build/{build_id}/"):
        page = api.get(path, headers=elsewhere)
        assert page.status_code == 403, path
        text = text_of(page.text)
        assert "You do not have permission" in text
        assert "environment::read on team/web" in text
        assert "Ask an administrator" in text
        assert "Logged in as test" in text


def test_anonymous_callers_are_sent_to_log_in_and_back(api: Client, callers: Callers) -> None:
    build_id = submit(api, callers.admin, "team", "web")
    for path, back in (
        ("/ui/environment/team/web/", "%2Fui%2Fenvironment%2Fteam%2Fweb%2F"),
        (f"/ui/build/{build_id}/", f"%2Fui%2Fbuild%2F{build_id}%2F"),
    ):
        response = api.get(path, follow_redirects=False)
        assert response.status_code in (302, 303, 307), path
        assert response.headers["location"] == f"/login/?next={back}"
    expired = api.get("/ui/", headers={"Authorization": f"Bearer {callers.forged({})}"},
                      follow_redirects=False)  # fmt: skip
    assert expired.status_code in (302, 303, 307)
    assert expired.headers["location"].startswith("/login/?next=")


def test_the_session_cookie_of_the_login_page_opens_the_ui(api: Client, callers: Callers) -> None:
    callers.user("carol", password="correct-horse")
    logged_in = api.post("/login/", json={"username": "carol", "password": "correct-horse"})
    assert logged_in.status_code == 200, logged_in.text
    page = api.get("/ui/")
    assert "Logged in as carol" in text_of(page.text)


def test_bad_list_parameters_are_a_page_saying_what_is_allowed(
    api: Client, callers: Callers
) -> None:
    page = api.get("/ui/?sort=size", headers=callers.admin)
    assert page.status_code == 400
    text = text_of(page.text)
    assert "allowed: namespace, name" in text and "Traceback" not in page.text
    bad_status = api.get("/ui/?status=DONE", headers=callers.admin)
    assert bad_status.status_code == 400
    assert "not a build status" in text_of(bad_status.text)


def test_the_list_page_with_its_css_and_script_weighs_under_200_kb(
    api: Client, callers: Callers
) -> None:
    for number in range(25):
        submit(api, callers.admin, "team", f"env{number:02}")
    page = api.get("/ui/", headers=callers.admin)
    assets = re.findall(r'(?:href|src)="(/ui/static/[^"]+)"', page.text)
    assert "/ui/static/kiln.css" in assets
    total = len(page.content) + sum(len(api.get(asset).content) for asset in assets)
    assert total < 200 * 1024, total


def test_the_ui_is_served_under_the_url_prefix_and_only_when_enabled(
    api_context: ApiContext, database: TestDatabase, callers: Callers
) -> None:
    settings = WebSettings(database_url=database.url, url_prefix="/kiln")
    with TestClient(create_app(settings, api=api_context)) as client:
        home = client.get("/kiln/", follow_redirects=False)
        assert home.headers["location"] == "/kiln/ui/"
        page = client.get("/kiln/ui/", headers=callers.admin)
        assert page.status_code == 200
        assert 'href="/kiln/ui/static/kiln.css"' in page.text
        assert client.get("/kiln/ui/static/kiln.css").status_code == 200
        body = {"specification": SPEC.format(name="web"), "namespace": "team"}
        client.post("/kiln/api/v1/specification/", json=body, headers=callers.admin)
        anonymous = client.get("/kiln/ui/environment/team/web/", follow_redirects=False)
        assert anonymous.headers["location"] == (
            "/kiln/login/?next=%2Fkiln%2Fui%2Fenvironment%2Fteam%2Fweb%2F"
        )


def test_without_enable_ui_there_are_no_pages(
    api_context: ApiContext, database: TestDatabase
) -> None:
    settings = WebSettings(database_url=database.url, enable_ui=False)
    with TestClient(create_app(settings, api=api_context)) as client:
        assert client.get("/ui/").status_code == 404
        assert client.get("/api/v1/").status_code == 200


def test_the_tokens_page_lists_the_callers_own_tokens_and_asks_strangers_to_log_in(
    api: Client, callers: Callers
) -> None:
    session = callers.session_headers("dora")
    page = api.get("/ui/tokens/", headers=session)
    assert page.status_code == 200, page.text
    text = text_of(page.text)
    assert "1 token" in text and "this session" in text and "active" in text
    assert "Logged in as dora" in text
    response = api.get("/ui/tokens/", follow_redirects=False)
    assert response.headers["location"] == "/login/?next=%2Fui%2Ftokens%2F"


def test_the_namespaces_page_lists_the_namespaces_a_viewer_can_see(
    api: Client, callers: Callers
) -> None:
    submit(api, callers.admin, "team", "web")
    submit(api, callers.admin, "secret", "keys")
    page = api.get("/ui/namespaces/", headers=callers.headers({"team/*": ["viewer"]}))
    assert page.status_code == 200, page.text
    assert 'href="/ui/?namespace=team"' in page.text
    assert "secret" not in page.text


class TestImageReferences:
    @pytest.fixture
    def kiln_config_lines(self) -> list[str]:
        return ["c.CondaStoreServer.registry_external_url = 'kiln.example.org:5000'"]

    def test_a_build_with_an_image_shows_what_to_pull(
        self, api: Client, callers: Callers, db_sessions: sessionmaker[Session]
    ) -> None:
        build_id = submit(api, callers.admin, "team", "web")
        complete(db_sessions, build_id, size=10)
        viewer = callers.headers({"team/*": ["viewer"]})
        before = text_of(api.get(f"/ui/build/{build_id}/", headers=viewer).text)
        assert "Image:" not in before  # no image recorded yet
        with db_sessions.begin() as session:
            session.add(
                BuildArtifact(
                    build_id=build_id,
                    artifact_type=BuildArtifactType.OCI_IMAGE,
                    key="oci/blobs/sha256/" + "a" * 64,
                )
            )
        reference = f"kiln.example.org:5000/team/web:{build_id}"
        assert reference in api.get(f"/ui/build/{build_id}/", headers=viewer).text
        assert reference in api.get("/ui/environment/team/web/", headers=viewer).text
