"""User accounts: the first admin of a new installation."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from appliance.auth.secrets import load_or_create_secret
from appliance.db.models import User

#: File (in the secrets dir) of the one-time token that creates the first admin account.
SETUP_TOKEN = "setup-token"


def ensure_setup_token(session: Session, secrets_dir: Path) -> str | None:
    """The one-time setup token while no admin account exists; None (and the file removed)
    once one does. The token is kept in ``secrets/setup-token`` (0600) so it survives restarts
    until it is used."""
    has_admin = session.scalar(select(exists().where(User.is_admin, ~User.disabled)))
    path = secrets_dir / SETUP_TOKEN
    if has_admin:
        path.unlink(missing_ok=True)
        return None
    return load_or_create_secret(secrets_dir, SETUP_TOKEN, nbytes=24)
