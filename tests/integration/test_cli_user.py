"""``kiln user``: accounts managed from the server's shell, then used to log in."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from appliance.auth.passwords import verify_password
from appliance.db.models import User
from tests.e2e.kiln import kiln
from tests.fixtures.postgres import TestDatabase


def _options(tmp_path: Path, database: TestDatabase) -> list[str | Path]:
    config = tmp_path / "kiln_config.py"
    config.write_text(f"c.CondaStore.database_url = {database.url!r}\n")
    return ["--config", config, "--data-dir", tmp_path / "data"]


def _user(db_sessions: sessionmaker[Session], name: str) -> User | None:
    with db_sessions() as session:
        return session.scalar(select(User).where(User.username == name))


def test_an_admin_is_created_with_a_password_from_stdin_and_listed(
    tmp_path: Path, database: TestDatabase, db_sessions: sessionmaker[Session]
) -> None:
    options = _options(tmp_path, database)
    setup_token = tmp_path / "data" / "secrets" / "setup-token"
    setup_token.parent.mkdir(parents=True)
    setup_token.write_text("one-time\n")

    created = kiln(
        "user", "create", "root", "--admin", "--password-stdin", *options,
        stdin="correct-horse\n",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "created admin account root" in created.stdout
    user = _user(db_sessions, "root")
    assert user is not None and user.is_admin
    assert verify_password("correct-horse", user.password_hash)
    assert not setup_token.exists()  # an admin exists: the first-admin token is spent

    oauth = kiln("user", "create", "mona", "--no-password", *options)
    assert oauth.returncode == 0, oauth.stderr

    listed = kiln("user", "list", "--json", *options)
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["username"], r["is_admin"], r["has_password"]) for r in rows] == [
        ("mona", False, False),
        ("root", True, True),
    ]
    table = kiln("user", "list", *options)
    assert "root" in table.stdout and "never" in table.stdout


def test_passwd_disable_and_enable(
    tmp_path: Path, database: TestDatabase, db_sessions: sessionmaker[Session]
) -> None:
    options = _options(tmp_path, database)
    kiln("user", "create", "ada", "--password-stdin", *options, stdin="first-password\n")
    changed = kiln("user", "passwd", "ada", "--password-stdin", *options, stdin="second-pass\n")
    assert changed.returncode == 0, changed.stderr
    user = _user(db_sessions, "ada")
    assert user is not None and verify_password("second-pass", user.password_hash)

    assert kiln("user", "disable", "ada", *options).returncode == 0
    user = _user(db_sessions, "ada")
    assert user is not None and user.disabled
    assert kiln("user", "enable", "ada", *options).returncode == 0
    user = _user(db_sessions, "ada")
    assert user is not None and not user.disabled


def test_bad_requests_are_reported_and_change_nothing(
    tmp_path: Path, database: TestDatabase, db_sessions: sessionmaker[Session]
) -> None:
    options = _options(tmp_path, database)
    kiln("user", "create", "ada", "--password-stdin", *options, stdin="first-password\n")
    for args, stdin, says in (
        (["create", "ada", "--password-stdin"], "other-password\n", "exists already"),
        (["create", "ADA", "--password-stdin"], "other-password\n", "exists already"),
        (["create", "bad/name", "--password-stdin"], "other-password\n", "user name"),
        (["create", "bob", "--password-stdin"], "short\n", "too short"),
        (["create", "bob", "--password-stdin"], "", "no password"),
        (["create", "bob"], "", "--password-stdin"),
        (["passwd", "nobody", "--password-stdin"], "long-enough-pw\n", "no account named"),
        (["disable", "nobody"], None, "no account named"),
    ):
        result = kiln("user", *args, *options, stdin=stdin)
        assert result.returncode == 1, (args, result.stdout)
        assert says in result.stderr, (args, result.stderr)
    with db_sessions() as session:
        assert [u.username for u in session.scalars(select(User))] == ["ada"]
