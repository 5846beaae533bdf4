"""The web UI's environment editor on the real app and database: creating an environment from
YAML, the server's check with the API's messages at their lines, the package search that
inserts a dependency, the solve preview and what it would change, and who may do any of it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from playwright.sync_api import Page, expect
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from appliance.api.context import ApiContext
from appliance.builder.pipeline import BuildResult, InstalledPackage
from appliance.channels.repodata import IndexedPackage
from appliance.db.enums import BuildStatus
from appliance.db.models import Build, Environment, Namespace
from appliance.schemas.channels import normalize_channel
from appliance.services.builds import complete_build
from appliance.services.channels import add_package_builds, ensure_channel
from tests.fixtures.api import Callers
from tests.fixtures.browser import LiveKiln
from tests.fixtures.ui import csrf_for, csrf_of, submit_form, text_of

Client = TestClient[Litestar]

TOOL = "name: {name}\ndependencies:\n  - kiln-demo-tool\n"
CREATE = "/ui/create/"
PASSWORD = "correct-horse-battery"


def counts(sessions: sessionmaker[Session]) -> tuple[int, int, int, int]:
    """Namespaces, environments, builds and queued jobs in the database."""
    with sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(Namespace)) or 0,
            session.scalar(select(func.count()).select_from(Environment)) or 0,
            session.scalar(select(func.count()).select_from(Build)) or 0,
            session.scalar(text("SELECT count(*) FROM procrastinate_jobs")) or 0,
        )


def editor_text(html: str) -> str:
    """What the page's editor holds (the browser drops the newline after <textarea>)."""
    found = re.search(r'<textarea[^>]* name="specification"[^>]*>\n?(.*?)</textarea>', html, re.S)
    assert found is not None, "the page has no editor"
    return unescape(found.group(1))


def api_problem(api: Client, headers: Mapping[str, str], spec: str) -> dict[str, Any]:
    """The API's answer to submitting ``spec`` to the namespace team (a 400)."""
    body = {"specification": spec, "namespace": "team"}
    response = api.post("/api/v1/specification/", json=body, headers=headers)
    assert response.status_code == 400, response.text
    return dict(response.json())


def test_an_editor_creates_an_environment_from_yaml_and_its_build_is_queued(
    api: Client, callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    api.post("/api/v1/namespace/team/", headers=callers.admin)
    api.post("/api/v1/namespace/other/", headers=callers.admin)
    editor = callers.headers({"team/*": ["editor"], "other/*": ["viewer"]})

    page = api.get(f"{CREATE}?namespace=team", headers=editor)
    assert page.status_code == 200, page.text
    assert re.search(r'<label for="spec"[^>]*>Specification</label>', page.text)
    assert '<option value="team" selected>' in page.text
    assert '<option value="other"' not in page.text  # a viewer there: not offered
    assert "name: my-environment" in editor_text(page.text)
    assert 'src="/ui/static/editor.js"' in page.text
    before = counts(db_sessions)

    response = submit_form(
        api, f"{CREATE}?namespace=team", CREATE,
        {"namespace": "team", "specification": TOOL.format(name="web"), "action": "submit"},
        headers=editor,
    )  # fmt: skip
    assert response.status_code == 303, text_of(response.text)
    location = response.headers["location"]
    found = re.fullmatch(r"/ui/build/(\d+)/\?done=submitted", location)
    assert found, location
    with db_sessions() as session:
        build = session.get_one(Build, int(found.group(1)))
        assert build.status == BuildStatus.QUEUED
        assert build.environment.name == "web" and build.environment.namespace.name == "team"
    assert counts(db_sessions)[1:] == (before[1] + 1, before[2] + 1, before[3] + 1)
    shown = api.get(location, headers=editor)
    assert "The specification was submitted; its build is queued." in text_of(shown.text)


def test_a_bad_specification_shows_the_api_s_message_at_its_line_and_changes_nothing(
    api: Client, callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    api.post("/api/v1/namespace/team/", headers=callers.admin)
    editor = callers.headers({"team/*": ["editor"]})
    cases = [
        # (specification, the line the problem is at)
        ("name: web\ndependencies:\n  - numpy\n   - scipy: [\n", 4),  # YAML syntax
        ("name: web\ndependencies:\n  - kiln-demo-tool\nbogus: 1\n", 4),  # unknown key
        ("name: web\ndependencies:\n  - kiln-demo-tool\n  - 'numpy >=>1'\n", 4),  # dependency
        # The channel policy names no line; the editor places it at the section.
        ("name: web\nchannels:\n  - https://elsewhere.example/chan\ndependencies: []\n", 2),
    ]
    before = counts(db_sessions)
    csrf = csrf_of(api.get(CREATE, headers=editor).text)
    for spec, line in cases:
        expected = api_problem(api, editor, spec)
        for action in ("submit", "check"):
            fields = {"csrf": csrf, "namespace": "team", "specification": spec, "action": action}
            page = api.post(CREATE, data=fields, headers=editor, follow_redirects=False)
            assert page.status_code == (400 if action == "submit" else 200), (spec, action)
            assert expected["message"] in text_of(page.text), (expected, text_of(page.text))
            assert f'<a href="#spec" class="line-link" data-line="{line}">Line {line}</a>' in (
                page.text
            ), (spec, action, expected)
            assert expected.get("line") in (None, line)
            assert 'aria-invalid="true"' in page.text
            excerpt = re.search(r'<pre class="excerpt"[^>]*>(.*?)</pre>', page.text, re.S)
            assert excerpt is not None, "the lines around the problem are shown"
            shown = unescape(re.sub(r"<(/?)mark>", r"[\1]", excerpt.group(1))).splitlines()
            assert f"[]{line:4d} │ {spec.splitlines()[line - 1]}[/]" in shown, shown
            assert f"{line - 1:4d} │ {spec.splitlines()[line - 2]}" in shown, shown
            assert editor_text(page.text) == spec  # the text is kept as written

        checked = api.post(
            "/ui/check/",
            data={"csrf": csrf, "namespace": "team", "specification": spec},
            headers=editor,
        )
        assert checked.status_code == 200, checked.text
        [problem] = checked.json()["problems"]
        assert problem["message"] == expected["message"] and problem["line"] == line
        assert problem["field"] == expected.get("field")
    assert counts(db_sessions) == before

    fine = api.post(
        "/ui/check/",
        data={"csrf": csrf, "namespace": "team", "specification": TOOL.format(name="web")},
        headers=editor,
    )
    assert fine.json() == {"problems": []}
    good = api.post(
        CREATE,
        data={"csrf": csrf, "namespace": "team", "specification": TOOL.format(name="web")},
        headers=editor,
    )
    assert "No problems: the server accepts this specification." in text_of(good.text)
    assert counts(db_sessions) == before


def test_the_package_search_inserts_a_dependency_without_javascript(
    api: Client, callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    with db_sessions.begin() as session:
        channel = ensure_channel(session, "https://conda.example.org/demo")
        versions = [("kiln-demo-data", "1.0.0"), ("kiln-demo-data", "1.10"),
                    ("kiln-demo-data", "1.9"), ("scipy", "1.0")]  # fmt: skip
        add_package_builds(session, channel, [indexed(name, v) for name, v in versions])
    editor = callers.session_headers("alice")
    spec = "name: web\ndependencies:\n  - kiln-demo-tool\n  - pip:\n    - requests\n"
    fields = {"namespace": "alice", "specification": spec, "search": "demo-da"}
    found = submit_form(api, CREATE, CREATE, {**fields, "action": "search"}, headers=editor)
    assert found.status_code == 200, text_of(found.text)
    assert "kiln-demo-data 1.0.0, 1.9, 1.10" in text_of(found.text)  # conda's version order
    assert "scipy" not in text_of(found.text)
    assert 'name="action" value="add:kiln-demo-data"' in found.text
    assert editor_text(found.text) == spec

    added = submit_form(
        api, CREATE, CREATE, {**fields, "action": "add:kiln-demo-data"}, headers=editor
    )
    assert added.status_code == 200
    assert editor_text(added.text) == (
        "name: web\ndependencies:\n  - kiln-demo-tool\n  - kiln-demo-data\n  - pip:\n"
        "    - requests\n"
    )
    page = text_of(added.text)
    assert "Added kiln-demo-data at line 4." in page
    assert "No problems: the server accepts this specification." in page
    assert 'value="add:kiln-demo-data"' in added.text  # the results stay for the next one

    again = submit_form(
        api, CREATE, CREATE,
        {**fields, "specification": editor_text(added.text), "action": "add:kiln-demo-data"},
        headers=editor,
    )  # fmt: skip
    assert "kiln-demo-data is already a dependency (line 4)." in text_of(again.text)
    nothing = submit_form(api, CREATE, CREATE, {**fields, "search": "zzz", "action": "search"},
                          headers=editor)  # fmt: skip
    assert "no package of the indexed channels contains 'zzz'" in text_of(nothing.text)
    assert counts(db_sessions)[1:3] == (0, 0)


def indexed(name: str, version: str) -> IndexedPackage:
    return IndexedPackage(
        subdir="noarch", filename=f"{name}-{version}-0.conda", name=name, version=version,
        build="0", build_number=0, depends=(), constrains=(), md5=None, sha256=None, size=1,
        license="BSD-3-Clause", license_family="BSD", timestamp=None,
    )  # fmt: skip


def test_the_preview_lists_the_packages_a_build_would_install(
    api: Client, callers: Callers, demo_channel: Path, db_sessions: sessionmaker[Session]
) -> None:
    editor = callers.session_headers("alice")
    fields = {"namespace": "alice", "specification": TOOL.format(name="web"), "action": "preview"}
    page = submit_form(api, CREATE, CREATE, fields, headers=editor)
    assert page.status_code == 200, text_of(page.text)
    shown = text_of(page.text)
    channel = normalize_channel(str(demo_channel), channel_alias="https://conda.anaconda.org")
    assert "3 packages for linux-64" in shown, shown
    for name, version in (
        ("kiln-demo-data", "1.0.0"), ("kiln-demo-lib", "2.0.0"), ("kiln-demo-tool", "1.0.0")
    ):  # fmt: skip
        row = rf"{re.escape(name)} {re.escape(version)} \S+ {re.escape(channel)}"
        assert re.search(row, shown), (name, shown)
    assert "Compared with build" not in shown  # a new environment has nothing to compare

    unsatisfiable = "name: web\ndependencies:\n  - kiln-demo-legacy\n  - kiln-demo-lib >=2\n"
    refused = submit_form(
        api, CREATE, CREATE, {**fields, "specification": unsatisfiable}, headers=editor
    )
    assert refused.status_code == 200
    assert "the specification cannot be satisfied" in text_of(refused.text)
    assert editor_text(refused.text) == unsatisfiable
    assert counts(db_sessions)[1:3] == (0, 0)


def test_editing_previews_what_changes_compared_with_the_current_build(
    api: Client, callers: Callers, demo_channel: Path, db_sessions: sessionmaker[Session]
) -> None:
    editor = callers.headers({"team/*": ["editor"]})
    queued = api.post(
        "/api/v1/specification/",
        json={"specification": TOOL.format(name="web"), "namespace": "team"},
        headers=callers.admin,
    )
    build_id = int(queued.json()["data"]["build_id"])
    channel = normalize_channel(str(demo_channel), channel_alias="https://conda.anaconda.org")
    installed = [("kiln-demo-tool", "0.9.0"), ("kiln-demo-lib", "2.0.0"),
                 ("kiln-demo-data", "2.0.0"), ("kiln-demo-legacy", "1.0.0")]  # fmt: skip
    with db_sessions.begin() as session:
        result = BuildResult(
            build_key="key", prefix=Path("/nowhere"), environment_link=None, platform="linux-64",
            packages=[InstalledPackage(name=n, version=v, build="0", channel=channel)
                      for n, v in installed],
            size=1, artifacts={}, steps=[],
        )  # fmt: skip
        assert complete_build(session, build_id, result)
    edit = "/ui/environment/team/web/edit/"

    page = api.get(edit, headers=editor)
    assert page.status_code == 200, page.text
    assert editor_text(page.text) == "name: web\nchannels: []\ndependencies:\n- kiln-demo-tool\n"
    assert f"specification of build #{build_id} (the current build). Preview" in text_of(page.text)

    spec = "name: web\ndependencies:\n  - kiln-demo-tool\n  - kiln-demo-plugin\n"
    preview = submit_form(
        api, edit, edit, {"specification": spec, "action": "preview"}, headers=editor
    )
    assert preview.status_code == 200, text_of(preview.text)
    shown = text_of(preview.text)
    assert f"Compared with build #{build_id} (the current build)" in shown, shown
    assert "1 upgraded 1 downgraded 1 added 1 removed 1 unchanged" in shown, shown
    assert f"Upgraded Package Now Would be Channel kiln-demo-tool 0.9.0 1.0.0 {channel}" in shown
    assert f"Downgraded Package Now Would be Channel kiln-demo-data 2.0.0 1.0.0 {channel}" in shown
    assert re.search(r"Added Package Version Build Channel kiln-demo-plugin 1\.0\.0 ", shown)
    assert f"Removed Package Version Channel kiln-demo-legacy 1.0.0 {channel}" in shown
    assert "4 packages for linux-64" in shown

    renamed = submit_form(
        api, edit, edit, {"specification": TOOL.format(name="api"), "action": "submit"},
        headers=editor,
    )  # fmt: skip
    assert renamed.status_code == 400
    assert "this page edits the environment web, but the specification names 'api'" in (
        text_of(renamed.text)
    )
    submitted = submit_form(
        api, edit, edit, {"specification": spec, "action": "submit"}, headers=editor
    )
    assert submitted.status_code == 303, text_of(submitted.text)
    assert submitted.headers["location"] == f"/ui/build/{build_id + 1}/?done=submitted"
    with db_sessions() as session:
        environment = session.scalars(select(Environment).where(Environment.name == "web")).one()
        assert [b.id for b in environment.builds] == [build_id, build_id + 1]


def test_a_viewer_gets_no_editor_and_their_posts_are_refused(
    api: Client, callers: Callers, api_context: ApiContext, db_sessions: sessionmaker[Session]
) -> None:
    api.post(
        "/api/v1/specification/",
        json={"specification": TOOL.format(name="web"), "namespace": "team"},
        headers=callers.admin,
    )
    viewer = callers.headers({"team/*": ["viewer"]})
    before = counts(db_sessions)

    create = api.get(CREATE, headers=viewer)
    assert create.status_code == 403
    assert "none of your roles grants environment::create" in text_of(create.text)
    assert "<textarea" not in create.text and "editor.js" not in create.text
    edit = api.get("/ui/environment/team/web/edit/", headers=viewer)
    assert edit.status_code == 403
    assert "environment::create and environment::update" in text_of(edit.text)
    assert "<textarea" not in edit.text and 'name="action"' not in edit.text

    csrf = csrf_for(api_context, viewer)
    spec = TOOL.format(name="web")
    for path, fields in (
        (CREATE, {"namespace": "team", "action": "submit"}),
        (CREATE, {"namespace": "team", "action": "check"}),
        ("/ui/environment/team/web/edit/", {"action": "submit"}),
        ("/ui/environment/team/web/edit/", {"action": "preview"}),
        ("/ui/check/", {"namespace": "team"}),
    ):
        data = {"csrf": csrf, "specification": spec, **fields}
        refused = api.post(path, data=data, headers=viewer, follow_redirects=False)
        assert refused.status_code == 403, (path, fields, refused.text)
        assert "environment::" in text_of(refused.text)
    assert counts(db_sessions) == before

    anonymous = api.get(CREATE, follow_redirects=False)
    assert anonymous.status_code in (302, 303, 307)
    assert anonymous.headers["location"].startswith("/login/?next=")
    assert api.get("/ui/environment/team/nowhere/edit/", headers=viewer).status_code == 404


def test_a_post_without_or_with_a_foreign_form_token_is_refused(
    api: Client, callers: Callers, api_context: ApiContext, db_sessions: sessionmaker[Session]
) -> None:
    editor = callers.headers({"team/*": ["editor"]})
    other = callers.headers({"team/*": ["editor"]})
    before = counts(db_sessions)
    fields = {"namespace": "team", "specification": TOOL.format(name="web"), "action": "submit"}
    for path in (CREATE, "/ui/check/"):
        for token in (None, "0" * 64, csrf_for(api_context, other)):
            data = fields if token is None else {**fields, "csrf": token}
            refused = api.post(path, data=data, headers=editor, follow_redirects=False)
            assert refused.status_code == 403, (path, token)
            assert "reload the page" in text_of(refused.text)
    assert counts(db_sessions) == before


@pytest.mark.browser
def test_in_a_browser_the_check_marks_the_line_and_add_inserts_without_reloading(
    page: Page, live_kiln: LiveKiln, callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    with db_sessions.begin() as session:
        channel = ensure_channel(session, "https://conda.example.org/demo")
        add_package_builds(session, channel, [indexed("kiln-demo-data", "1.0.0")])
    callers.user("alice", password=PASSWORD)
    page.goto(f"{live_kiln.url}/login/?next=/ui/create/")
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    spec = page.get_by_role("textbox", name="Specification")
    spec.fill("name: web\ndependencies:\n  - kiln-demo-tool\n  - 'numpy >=>1'\n")
    page.evaluate("window.sameDocument = true")

    page.get_by_role("button", name="Check").click()
    expect(page.locator("#problems .problem")).to_contain_text("Line 4: dependencies[1] (line 4)")
    expect(page.locator(".gutter .bad")).to_have_text("4")
    selected = page.evaluate(
        "() => { const s = document.getElementById('spec');"
        " return [document.activeElement.id, s.value.slice(s.selectionStart, s.selectionEnd)]; }"
    )
    assert selected == ["spec", "  - 'numpy >=>1'"]

    spec.fill("name: web\ndependencies:\n  - kiln-demo-tool\n")
    page.get_by_label("Package name contains").fill("demo-da")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("button", name="Add kiln-demo-data to the dependencies").click()
    expect(
        page.get_by_role("status").filter(has_text="Added kiln-demo-data at line 4.")
    ).to_be_visible()
    assert (
        spec.input_value() == "name: web\ndependencies:\n  - kiln-demo-tool\n  - kiln-demo-data\n"
    )
    expect(page.locator("#problems")).to_contain_text("No problems")
    assert page.evaluate("window.sameDocument") is True  # nothing reloaded the page
    assert counts(db_sessions)[1:3] == (0, 0)
