"""``kiln token create``: tokens minted from the data dir's secret and recorded in the database."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from appliance.auth.secrets import JWT_SECRET
from appliance.auth.tokens import verify
from appliance.db.models import ApiToken
from tests.e2e.kiln import kiln
from tests.fixtures.postgres import TestDatabase


def config_for(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "kiln_config.py"
    path.write_text(f"c.CondaStore.database_url = {url!r}\n")
    return path


def test_without_options_the_token_is_admin_on_everything_and_recorded(
    tmp_path: Path, database: TestDatabase, db_sessions: sessionmaker[Session]
) -> None:
    data = tmp_path / "data"
    result = kiln("token", "create", "--config", config_for(tmp_path, database.url),
                  "--data-dir", data)  # fmt: skip
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    claims = verify(token, secret=(data / "secrets" / JWT_SECRET).read_text().strip())
    assert claims.role_bindings == {"*/*": ("admin",)}
    with db_sessions() as session:
        stored = session.get_one(ApiToken, uuid.UUID(claims.token_id))
        assert stored.role_bindings == {"*/*": ["admin"]}
        assert stored.expires_on == claims.expires_at


def test_options_narrow_the_token(
    tmp_path: Path, database: TestDatabase, db_sessions: sessionmaker[Session]
) -> None:
    data = tmp_path / "data"
    result = kiln(
        "token", "create", "--config", config_for(tmp_path, database.url), "--data-dir", data,
        "--namespace", "team", "--role-binding", "team/*=developer",
        "--role-binding", "shared/*=viewer", "--lifetime", "2h",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    secret = (data / "secrets" / JWT_SECRET).read_text().strip()
    claims = verify(result.stdout.split()[-1], secret=secret)
    assert claims.primary_namespace == "team"
    assert claims.role_bindings == {"team/*": ("developer",), "shared/*": ("viewer",)}
    lifetime = claims.expires_at - claims.issued_at
    assert 7100 < lifetime.total_seconds() <= 7200


def test_bad_options_are_refused_and_nothing_is_recorded(
    tmp_path: Path, database: TestDatabase, db_sessions: sessionmaker[Session]
) -> None:
    config = config_for(tmp_path, database.url)
    for options, message in (
        (["--role-binding", "team/*=owner"], "unknown role owner"),
        (["--role-binding", "team"], "expected PATTERN=ROLE"),
        (["--lifetime", "forever"], "lifetime 'forever'"),
    ):
        result = kiln("token", "create", "--config", config, "--data-dir", tmp_path, *options)
        assert result.returncode == 1
        assert message in result.stderr, result.stderr
    with db_sessions() as session:
        assert session.query(ApiToken).count() == 0


def test_an_unmigrated_database_is_refused_saying_what_to_do(
    tmp_path: Path, unmigrated_database: TestDatabase
) -> None:
    result = kiln("token", "create", "--config", config_for(tmp_path, unmigrated_database.url),
                  "--data-dir", tmp_path / "data")  # fmt: skip
    assert result.returncode == 1
    assert "kiln migrate" in result.stderr
