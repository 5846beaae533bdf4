"""The web UI's settings pages on the real app and database: the effective settings of the
global level, a namespace and an environment; editable by callers with ``setting::update``
there and read-only for others; a save writes only the fields that changed; invalid values show
the settings service's message next to their field and change nothing."""

from __future__ import annotations

import re
from collections.abc import Mapping
from html import unescape
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from appliance.db.models import Setting
from tests.fixtures.api import Callers
from tests.fixtures.ui import csrf_of, text_of

Client = TestClient[Litestar]


def _stored(sessions: sessionmaker[Session]) -> dict[tuple[str, str], Any]:
    """Every stored setting: ``(scope, key) -> value``."""
    with sessions() as session:
        rows = session.execute(select(Setting.scope, Setting.key, Setting.value))
        return {(scope, key): value for scope, key, value in rows}


def _fields(html: str) -> dict[str, str | list[str]]:
    """The settings form's fields as a browser would send them unchanged."""
    fields: dict[str, str | list[str]] = {}
    for name, value in re.findall(r'<textarea[^>]* name="([^"]+)"[^>]*>([^<]*)</textarea>', html):
        fields[name] = value
    for tag in re.findall(r"<input [^>]+>", html):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name is None or "disabled" in tag:
            continue
        if 'type="checkbox"' in tag:
            if " checked" in tag:
                found = fields.setdefault(name.group(1), [])
                assert isinstance(found, list)
                found.append(value.group(1) if value else "on")
            continue
        fields[name.group(1)] = value.group(1) if value else ""
    return fields


def _save(api: Client, page: str, headers: Mapping[str, str], **changes: str | list[str]) -> Any:
    """Open ``page``, change the fields ``changes`` names and submit the form."""
    shown = api.get(page, headers=dict(headers))
    assert shown.status_code == 200, text_of(shown.text)
    fields = {**_fields(shown.text), **changes}
    return api.post(page, data=fields, headers=dict(headers), follow_redirects=False)


def test_an_admin_changes_two_global_keys_and_only_those_are_stored(
    api: Client, callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    admin = callers.admin
    page = api.get("/ui/settings/", headers=admin)
    assert page.status_code == 200
    text = text_of(page.text)
    assert "Global settings" in text
    assert "Seconds a solve may take before the build fails with a timeout." in text
    assert "set in kiln_config.py only" in text and "set globally only" in text
    assert '<label for="setting-conda_max_solve_time">' in page.text
    assert 'name="conda_max_solve_time" value="300" type="number"' in page.text
    assert 'name="storage_threshold"' not in page.text  # read from kiln_config.py only

    answer = _save(
        api, "/ui/settings/", admin,
        conda_max_solve_time="600", conda_default_packages="python\nkiln-demo-tool\n",
        build_artifacts=["YAML"],
    )  # fmt: skip
    assert answer.status_code == 303, text_of(answer.text)
    assert answer.headers["location"] == "/ui/settings/?done=saved"
    assert _stored(db_sessions) == {
        ("", "conda_max_solve_time"): 600,
        ("", "conda_default_packages"): ["python", "kiln-demo-tool"],
        ("", "build_artifacts"): ["LOGS", "LOCKFILE", "YAML"],
    }
    effective = api.get("/api/v1/setting/", headers=admin).json()["data"]
    assert effective["conda_max_solve_time"] == 600
    shown = api.get("/ui/settings/?done=saved", headers=admin).text
    assert "Saved." in text_of(shown)
    assert 'value="600"' in shown

    # Saving the page unchanged writes nothing more.
    assert _save(api, "/ui/settings/", admin).status_code == 303
    assert len(_stored(db_sessions)) == 3


def test_invalid_values_are_named_next_to_their_fields_and_nothing_changes(
    api: Client, callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    admin = callers.admin
    answer = _save(
        api, "/ui/settings/", admin,
        conda_max_solve_time="0", conda_default_packages="numpy >>> 1",
        conda_channel_alias="ftp://mirror", default_uid="-5",
        conda_solve_platforms="linux-64\n",  # valid, but not written: the form had problems
    )  # fmt: skip
    assert answer.status_code == 400
    for key, says in (
        ("conda_max_solve_time", "setting conda_max_solve_time:"),
        ("conda_default_packages", "'numpy >>> 1' is not a valid conda package spec"),
        ("conda_channel_alias", "'ftp://mirror' is not an http(s):// or file:// URL"),
        ("default_uid", "should not be less than 0"),
    ):
        problem = re.search(rf'<p class="problem" id="setting-{key}-problem"[^>]*>([^<]+)</p>',
                            answer.text)  # fmt: skip
        assert problem is not None, key
        assert says in unescape(problem.group(1)), problem.group(1)
        assert f'aria-describedby="setting-{key}-problem"' in answer.text
    assert "numpy &gt;&gt;&gt; 1" in answer.text  # what was entered is kept
    assert _stored(db_sessions) == {}


def test_a_namespace_admin_sets_and_resets_a_namespace_key(
    api: Client, callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    admin = callers.admin
    assert api.post("/api/v1/namespace/team/", headers=admin).status_code == 200
    team_admin = callers.headers({"team/*": ["admin"]})
    page = api.get("/ui/namespace/team/settings/", headers=team_admin)
    assert page.status_code == 200
    assert "Settings of the namespace team" in text_of(page.text)
    assert 'name="conda_default_packages"' in page.text
    assert 'name="conda_channel_alias"' not in page.text  # a global key

    answer = _save(
        api, "/ui/namespace/team/settings/", team_admin,
        conda_solve_platforms="linux-64\nosx-arm64\n",
    )  # fmt: skip
    assert answer.status_code == 303, text_of(answer.text)
    assert _stored(db_sessions) == {("team", "conda_solve_platforms"): ["linux-64", "osx-arm64"]}
    shown = api.get("/ui/namespace/team/settings/", headers=team_admin).text
    sections = {
        key: text_of(section)
        for key, section in re.findall(r'<h3 id="setting-(\w+)-name">(.*?)</section>', shown, re.S)
    }
    assert "set here" in sections["conda_solve_platforms"]
    assert "Use the value of" in sections["conda_solve_platforms"]
    assert "from kiln_config.py" in sections["conda_default_packages"]
    assert "Use the value of" not in sections["conda_default_packages"]  # nothing to go back to

    reset = _save(api, "/ui/namespace/team/settings/", team_admin, reset=["conda_solve_platforms"])
    assert reset.status_code == 303
    assert _stored(db_sessions) == {}

    # The global page is not theirs.
    assert api.get("/ui/settings/", headers=team_admin).status_code == 403


def test_a_namespace_cannot_widen_the_allowed_channels(
    api: Client, callers: Callers, db_sessions: sessionmaker[Session], demo_channel: Path
) -> None:
    admin = callers.admin
    answer = _save(
        api, "/ui/namespace/team/settings/", admin,
        conda_allowed_channels=f"{demo_channel}\nconda-forge\n",
    )  # fmt: skip
    assert answer.status_code == 400
    problem = re.search(
        r'id="setting-conda_allowed_channels-problem"[^>]*>([^<]+)</p>', answer.text
    )
    assert problem is not None
    assert "can only narrow the channels allowed above" in problem.group(1)
    assert _stored(db_sessions) == {}


def test_readers_without_setting_update_see_values_but_no_form_and_get_403(
    api: Client, callers: Callers, db_sessions: sessionmaker[Session], demo_channel: Path
) -> None:
    admin = callers.admin
    assert api.post("/api/v1/namespace/team/", headers=admin).status_code == 200
    editor = callers.headers({"team/*": ["editor"]})  # setting::read, not setting::update
    page = api.get("/ui/namespace/team/settings/", headers=editor)
    assert page.status_code == 200
    text = text_of(page.text)
    assert "You can read these settings; changing them needs setting::update" in text
    assert 'action="/ui/namespace/team/settings/"' not in page.text
    assert "Save settings" not in text and 'name="csrf"' not in page.text
    assert str(demo_channel) in text  # the effective allowed channel, read-only

    csrf = csrf_of(api.get("/ui/tokens/new/", headers=editor).text)
    for path in ("/ui/namespace/team/settings/", "/ui/environment/team/web/settings/"):
        answer = api.post(
            path, data={"csrf": csrf, "conda_solve_platforms": "linux-64"}, headers=editor
        )
        assert answer.status_code == 403, path
        assert "setting::update" in text_of(answer.text)
    # Invalid values from a caller who may not change anything: refused, not judged.
    answer = api.post(
        "/ui/namespace/team/settings/",
        data={"csrf": csrf, "conda_default_packages": "numpy >>> 1"},
        headers=editor,
    )
    assert answer.status_code == 403
    assert _stored(db_sessions) == {}

    viewer = callers.headers({"team/*": ["viewer"]})  # no setting::read
    assert api.get("/ui/namespace/team/settings/", headers=viewer).status_code == 403


def test_an_environment_admin_changes_that_environments_settings_only(
    api: Client, callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    env_admin = callers.headers({"team/web": ["admin"]})
    page = api.get("/ui/environment/team/web/settings/", headers=env_admin)
    assert page.status_code == 200
    assert "Settings of team/web" in text_of(page.text)
    answer = _save(
        api, "/ui/environment/team/web/settings/", env_admin, build_artifacts=["CONDA_PACK"]
    )
    assert answer.status_code == 303, text_of(answer.text)
    assert answer.headers["location"] == "/ui/environment/team/web/settings/?done=saved"
    assert _stored(db_sessions) == {
        ("team/web", "build_artifacts"): ["LOGS", "LOCKFILE", "CONDA_PACK"]
    }
    assert api.get("/ui/namespace/team/settings/", headers=env_admin).status_code == 403


def test_a_settings_form_without_the_callers_token_is_refused(
    api: Client, callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    admin = callers.admin
    for data in ({"conda_max_solve_time": "600"}, {"conda_max_solve_time": "600", "csrf": "1"}):
        answer = api.post("/ui/settings/", data=data, headers=admin)
        assert answer.status_code == 403
    assert _stored(db_sessions) == {}


def test_users_who_may_not_read_global_settings_are_sent_to_their_namespaces_settings(
    api: Client, callers: Callers
) -> None:
    own = callers.headers({"alice/*": ["admin"]}, primary_namespace="alice")
    sent = api.get("/ui/settings/", headers=own, follow_redirects=False)
    assert sent.status_code == 303
    assert sent.headers["location"] == "/ui/namespace/alice/settings/"

    stranger = callers.headers({"other/*": ["viewer"]}, primary_namespace="alice")
    refused = api.get("/ui/settings/", headers=stranger)
    assert refused.status_code == 403
    assert "setting::read" in text_of(refused.text)
