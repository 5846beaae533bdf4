"""``kiln tui``'s connection: the URL and an admin token found from the data dir on the Kiln
host, or given with --url/--token; a clear message and exit status 2 when neither works."""

from __future__ import annotations

import argparse
from pathlib import Path

import httpx

from appliance.cli.tui import CANNOT_CONNECT, resolve_connection
from appliance.config.loader import KilnConfig
from tests.e2e.kiln import kiln
from tests.fixtures.browser import LiveKiln
from tests.fixtures.serve import free_port
from tests.fixtures.tui import SeededKiln


def arguments(**values: object) -> argparse.Namespace:
    defaults: dict[str, object] = {"url": None, "token": None, "config": None, "data_dir": None}
    return argparse.Namespace(**{**defaults, **values})


def test_on_the_kiln_host_the_console_finds_the_server_and_mints_an_admin_token(
    seeded_kiln: SeededKiln, kiln_config: KilnConfig
) -> None:
    connection = resolve_connection(arguments(data_dir=kiln_config.data_dir.root), environ={})
    assert connection.url == seeded_kiln.url
    assert connection.renew is not None and connection.data_dir == kiln_config.data_dir.root
    headers = {"Authorization": f"Bearer {connection.token}"}
    with httpx.Client(base_url=f"{seeded_kiln.url}/api/v1", headers=headers) as api:
        identity = api.get("/permission/").json()["data"]
        assert identity["entity_roles"] == {"*/*": ["admin"]}
        assert api.get("/admin/services/").status_code == 200  # an operator
    with seeded_kiln.api() as api:
        names = [
            token["name"] for token in api.get("/token/", params={"all": "true"}).json()["data"]
        ]
    assert any(name.startswith("kiln tui (") for name in names)
    assert connection.renew() != connection.token  # a fresh one when the first expires


def test_url_and_token_from_the_environment_are_used_as_given(live_kiln: LiveKiln) -> None:
    environ = {"KILN_TUI_URL": live_kiln.url + "/", "KILN_TUI_TOKEN": "a-token"}
    connection = resolve_connection(arguments(), environ=environ)
    assert (connection.url, connection.token, connection.renew) == (live_kiln.url, "a-token", None)


def test_without_a_server_to_reach_the_command_says_so_and_exits_2(tmp_path: Path) -> None:
    port = free_port()
    given = kiln("tui", "--url", f"http://127.0.0.1:{port}", "--token", "t", timeout=60)
    assert given.returncode == CANNOT_CONNECT
    assert given.stderr.startswith(f"kiln tui: no Kiln answers at http://127.0.0.1:{port}")
    assert "Traceback" not in given.stderr

    data = tmp_path / "data"
    data.mkdir()
    (data / "kiln_config.py").write_text(f"c.CondaStoreServer.port = {port}\n")
    local = kiln("tui", "--data-dir", data, timeout=60)
    assert local.returncode == CANNOT_CONNECT
    assert f"no Kiln answers at http://127.0.0.1:{port} (from the configuration in {data})" in (
        local.stderr
    )
    assert "--url URL --token TOKEN" in local.stderr

    wrong = kiln("tui", "--url", "kiln.example:5000", "--token", "t", timeout=60)
    assert wrong.returncode == CANNOT_CONNECT
    assert "is not an http:// or https:// URL" in wrong.stderr


def test_a_url_that_is_not_kiln_is_refused(live_kiln: LiveKiln) -> None:
    result = kiln("tui", "--url", f"{live_kiln.url}/elsewhere", "--token", "t", timeout=60)
    assert result.returncode == CANNOT_CONNECT
    assert "answered 404" in result.stderr and "url_prefix" in result.stderr
