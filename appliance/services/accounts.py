"""User accounts: the first admin of a new installation, logging in and out, and the accounts
an operator manages from the command line.

Logging in ends in :func:`open_session`: a ``session`` token (kind ``session``, subject and
primary namespace the user name, no role bindings of its own: appliance.services.access works
out the rights at each request) recorded like any token, so logging out (:func:`end_session`)
or disabling the account ends it at once. How the user is recognised depends on the
configured ``CondaStoreServer.authentication_class``:

- local accounts (the default): :func:`find_login` reads the account, :func:`check_login`
  compares the password with its scrypt hash. Both run for unknown user names too (against a
  stand-in hash), so a wrong name and a wrong password take the same time and get the same
  answer, ``Invalid authentication credentials``. ``check_login`` is pure CPU work, to be run
  off the event loop;
- ``DummyAuthentication`` (tests and demos) and OAuth: :func:`open_external_session` finds the
  account by name or creates it without a password.

Disabled accounts cannot log in. User names become primary namespaces, so they follow the
namespace name rule (appliance.schemas.names) and are unique without regard to case.

Managing accounts: ``kiln user`` (appliance.cli.user) and operators over the admin API
(``/api/v1/admin/users/``: :func:`accounts_for_operator`, :func:`create_account_for_operator`,
:func:`change_account`) use the same functions: :func:`create_account`, :func:`set_password`
(their login sessions end), :func:`set_disabled` (disabling ends their login sessions too),
:func:`set_admin`. There is always an enabled admin account once there was one: disabling the
last one, or taking admin from it, is refused (:class:`LastAdmin`), so someone can always manage
accounts from the web (``kiln user`` on the server remains the way out).

The first admin: while no admin account exists, ``kiln serve`` prints a one-time setup token
(:func:`ensure_setup_token`, kept in ``<data dir>/secrets/setup-token``); whoever holds it can
create the first admin account (:func:`create_first_admin`, ``POST /api/v1/setup/``). The file
is removed as soon as an admin exists (:func:`remove_setup_token`).
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

from sqlalchemy import exists, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from appliance.auth.passwords import check_password_rules, hash_password, verify_password
from appliance.auth.secrets import load_or_create_secret
from appliance.auth.tokens import SESSION, TokenClaims, mint
from appliance.common.errors import KilnError
from appliance.db.models import ApiToken, User
from appliance.schemas import api as wire
from appliance.schemas.names import check_name
from appliance.services.access import Caller
from appliance.services.operations import require_operator
from appliance.services.tokens import Signer, record_token

#: File (in the secrets dir) of the one-time token that creates the first admin account.
SETUP_TOKEN = "setup-token"

#: Name of the token rows of login sessions (shown when tokens are listed).
SESSION_TOKEN_NAME = "login session"

#: Serialises first-admin creation (pg_advisory_xact_lock key).
_FIRST_ADMIN_LOCK = 0x6B696C6E_0001


class InvalidCredentials(KilnError):
    """Invalid authentication credentials"""

    code = "forbidden"


class AccountDisabled(KilnError):
    """The account is disabled; ask an admin."""

    code = "forbidden"


class SetupRefused(KilnError):
    """The setup token is not valid."""

    code = "forbidden"


class AdminExists(KilnError):
    """An admin account exists already."""

    code = "conflict"


class UserExists(KilnError):
    """An account with this name exists already."""

    code = "conflict"


class UserNotFound(KilnError):
    """No such account."""

    code = "not_found"


class LastAdmin(KilnError):
    """The last enabled admin account cannot be disabled or lose admin."""

    code = "conflict"


def ensure_setup_token(session: Session, secrets_dir: Path) -> str | None:
    """The one-time setup token while no admin account exists; None (and the file removed)
    once one does. The token is kept in ``secrets/setup-token`` (0600) so it survives restarts
    until it is used."""
    if _has_admin(session):
        remove_setup_token(secrets_dir)
        return None
    return load_or_create_secret(secrets_dir, SETUP_TOKEN, nbytes=24)


def remove_setup_token(secrets_dir: Path) -> None:
    """Forget the setup token (an admin exists now)."""
    (secrets_dir / SETUP_TOKEN).unlink(missing_ok=True)


def _has_admin(session: Session) -> bool:
    return bool(session.scalar(select(exists().where(User.is_admin, ~User.disabled))))


def _account(user: User) -> wire.Account:
    return wire.Account(
        id=user.id,
        username=user.username,
        is_admin=user.is_admin,
        disabled=user.disabled,
        has_password=user.password_hash is not None,
        created_on=user.created_on,
        last_login=user.last_login,
    )


def _find(session: Session, username: str, *, lock: bool = False) -> User | None:
    statement = select(User).where(func.lower(User.username) == username.lower())
    return session.scalar(statement.with_for_update() if lock else statement)


def _checked_password(password: str) -> str:
    problem = check_password_rules(password)
    if problem:
        raise KilnError(problem)
    return hash_password(password)


def create_first_admin(
    session: Session, secrets_dir: Path, setup_token: str, username: str, password: str
) -> wire.Account:
    """Create the first admin account with the one-time setup token.

    Raises :class:`AdminExists` when an admin exists already, :class:`SetupRefused` when the
    token does not match the one in the secrets dir (compared in constant time), and a
    :class:`KilnError` for a bad user name or password. The caller removes the token file once
    this transaction is committed (:func:`remove_setup_token`).
    """
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _FIRST_ADMIN_LOCK})
    if _has_admin(session):
        raise AdminExists(
            "an admin account exists already: log in, or ask an admin to create your account"
        )
    try:
        expected = (secrets_dir / SETUP_TOKEN).read_text().strip()
    except OSError:
        expected = ""
    if not expected or not hmac.compare_digest(setup_token.encode(), expected.encode()):
        raise SetupRefused(
            "the setup token is not valid: use the one `kiln serve` printed when it started "
            f"(also in {secrets_dir / SETUP_TOKEN} on the server)"
        )
    return create_account(session, username, password=password, admin=True)


def create_account(
    session: Session, username: str, *, password: str | None, admin: bool = False
) -> wire.Account:
    """A new account; without ``password`` it can log in only through OAuth (or Dummy)."""
    check_name(username, what="user")
    password_hash = None if password is None else _checked_password(password)
    if _find(session, username) is not None:
        raise UserExists(f"an account named {username} exists already")
    user = User(username=username, password_hash=password_hash, is_admin=admin)
    session.add(user)
    session.flush()
    session.refresh(user)
    return _account(user)


def set_password(session: Session, username: str, password: str) -> wire.Account:
    """Replace the password of ``username``; their login sessions end (tokens they minted
    keep working until they expire or are revoked)."""
    password_hash = _checked_password(password)
    user = _found(session, username)
    user.password_hash = password_hash
    _end_sessions_of(session, user.id)
    session.flush()
    return _account(user)


def set_disabled(session: Session, username: str, disabled: bool) -> wire.Account:
    """Disable or enable ``username``. A disabled account's login sessions end (enabling it
    again does not bring them back: the user logs in again) and every token it minted is
    refused from the next request on, until it is enabled. The last enabled admin account
    cannot be disabled (:class:`LastAdmin`)."""
    user = _found(session, username)
    if disabled and not user.disabled:
        _keep_an_admin(session, user, "disable")
        _end_sessions_of(session, user.id)
    user.disabled = disabled
    session.flush()
    return _account(user)


def set_admin(session: Session, username: str, admin: bool) -> wire.Account:
    """Make ``username`` an admin on everything, or take that away (from the next request on:
    rights are worked out at each request). The last enabled admin account cannot lose it
    (:class:`LastAdmin`)."""
    user = _found(session, username)
    if not admin and user.is_admin:
        _keep_an_admin(session, user, "take admin from")
    user.is_admin = admin
    session.flush()
    return _account(user)


def list_accounts(session: Session) -> list[wire.Account]:
    """Every account, by name."""
    return [_account(user) for user in session.scalars(select(User).order_by(User.username))]


def _found(session: Session, username: str) -> User:
    """The account ``username`` (any case), locked for the change; :class:`UserNotFound`."""
    user = _find(session, username, lock=True)
    if user is None:
        raise UserNotFound(f"no account named {username}")
    return user


def _keep_an_admin(session: Session, user: User, action: str) -> None:
    """Refuse a change that would leave no enabled admin account. The enabled admins' rows are
    locked first, so two changes at once cannot each leave the other the last one."""
    if not user.is_admin or user.disabled:
        return
    admins = session.scalars(
        select(User.id).where(User.is_admin, ~User.disabled).with_for_update()
    ).all()
    if set(admins) - {user.id}:
        return
    raise LastAdmin(
        f"cannot {action} {user.username}: it is the last enabled admin account, and without "
        "one nobody could manage accounts from the web; make another account an admin first"
    )


# --- accounts an operator manages (the admin API) ------------------------------------------


@dataclass(frozen=True)
class ChangedAccount:
    """An account after :func:`change_account`, and what changed, in words."""

    account: wire.Account
    message: str


def accounts_for_operator(session: Session, caller: Caller) -> list[wire.Account]:
    """Every account, by name, for an operator (appliance.services.operations)."""
    require_operator(session, caller)
    return list_accounts(session)


def create_account_for_operator(
    session: Session, caller: Caller, new: wire.NewAccount
) -> wire.Account:
    """:func:`create_account`, by an operator. Creating an admin account makes the first-admin
    setup token useless: the caller removes it (:func:`remove_setup_token`)."""
    require_operator(session, caller)
    return create_account(session, new.username, password=new.password, admin=new.is_admin)


def change_account(
    session: Session, caller: Caller, username: str, change: wire.AccountChange
) -> ChangedAccount:
    """An operator changes ``username``: a new password (:func:`set_password`), admin or not
    (:func:`set_admin`), disabled or enabled (:func:`set_disabled`), all or nothing (one
    transaction). Raises :class:`UserNotFound`, :class:`LastAdmin`, or a :class:`KilnError` for
    a password the rules refuse or a change that names nothing."""
    require_operator(session, caller)
    if change.password is None and change.disabled is None and change.is_admin is None:
        raise KilnError("nothing to change: give password, disabled or is_admin")
    user = _found(session, username)
    done: list[str] = []
    account = _account(user)
    if change.password is not None:
        account = set_password(session, user.username, change.password)
        done.append("password changed, login sessions ended")
    if change.is_admin is not None and change.is_admin != user.is_admin:
        account = set_admin(session, user.username, change.is_admin)
        done.append("made an admin" if change.is_admin else "no longer an admin")
    if change.disabled is not None and change.disabled != user.disabled:
        account = set_disabled(session, user.username, change.disabled)
        done.append("disabled, login sessions ended" if change.disabled else "enabled")
    what = "; ".join(done) if done else "nothing changed (it was so already)"
    return ChangedAccount(account=account, message=f"{account.username}: {what}")


def _end_sessions_of(session: Session, user_id: int) -> None:
    session.execute(
        update(ApiToken)
        .where(
            ApiToken.user_id == user_id,
            ApiToken.name == SESSION_TOKEN_NAME,
            ApiToken.revoked_on.is_(None),
        )
        .values(revoked_on=datetime.now(UTC))
    )


# --- logging in ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginCandidate:
    """What a password login is checked against."""

    user_id: int
    username: str
    password_hash: str | None
    disabled: bool


@dataclass(frozen=True)
class LoginSession:
    """A login session just opened: the token goes into the session cookie."""

    token: str
    token_id: str
    username: str
    expires_at: datetime


def find_login(session: Session, username: str) -> LoginCandidate | None:
    """The local account ``username`` (any case), or None."""
    if not username or len(username) > 255:
        return None
    user = _find(session, username)
    if user is None:
        return None
    return LoginCandidate(user.id, user.username, user.password_hash, user.disabled)


@lru_cache(maxsize=1)
def _stand_in_hash() -> str:
    """A hash no password matches, checked for unknown users so that they take as long."""
    return hash_password("stand-in for an unknown user")


def check_login(candidate: LoginCandidate | None, password: str) -> int:
    """The account id when ``password`` is the candidate's; CPU-bound (scrypt), run it off the
    event loop. Raises :class:`InvalidCredentials` (unknown user, no password, wrong password)
    or :class:`AccountDisabled` (right password, disabled account)."""
    stored = candidate.password_hash if candidate is not None else None
    matches = verify_password(password, stored or _stand_in_hash())
    if candidate is None or stored is None or not matches:
        raise InvalidCredentials()
    if candidate.disabled:
        raise AccountDisabled(f"the account {candidate.username} is disabled; ask an admin")
    return candidate.user_id


def check_dummy_password(password: str, expected: str) -> None:
    """``DummyAuthentication``: any user name, with the one configured password (empty: any)."""
    if expected and not hmac.compare_digest(password.encode(), expected.encode()):
        raise InvalidCredentials()


def open_session(
    session: Session, user_id: int, signer: Signer, lifetime: timedelta
) -> LoginSession:
    """Record and sign a login session of the account ``user_id``; updates its last login."""
    user = session.get(User, user_id, with_for_update=True)
    if user is None:
        raise InvalidCredentials()
    if user.disabled:
        raise AccountDisabled(f"the account {user.username} is disabled; ask an admin")
    now = datetime.now(UTC).replace(microsecond=0)
    user.last_login = now
    claims = TokenClaims(
        role_bindings={},
        expires_at=now + lifetime,
        primary_namespace=user.username,
        subject=user.username,
        issued_at=now,
        kind=SESSION,
    )
    record_token(session, claims, name=SESSION_TOKEN_NAME, user_id=user.id)
    return LoginSession(
        token=mint(claims, secret=signer.secret, algorithm=signer.algorithm),
        token_id=claims.token_id,
        username=user.username,
        expires_at=claims.expires_at,
    )


def open_external_session(
    session: Session, username: str, signer: Signer, lifetime: timedelta
) -> LoginSession:
    """A login session for a user someone else vouched for (an OAuth provider, or
    ``DummyAuthentication``'s shared password): the account is found by name, or created
    without a password."""
    check_name(username, what="user")
    # Two first logins at once: one insert wins, the other finds its row.
    session.execute(insert(User).values(username=username).on_conflict_do_nothing())
    user = _find(session, username)
    if user is None:  # pragma: no cover - the row was just inserted or found
        raise InvalidCredentials()
    return open_session(session, user.id, signer, lifetime)


def end_session(session: Session, token_id: str) -> bool:
    """Revoke the token ``token_id`` (logging out); False when there was nothing to revoke."""
    try:
        wanted = uuid.UUID(token_id)
    except ValueError:
        return False
    result = session.execute(
        update(ApiToken)
        .where(ApiToken.id == wanted, ApiToken.revoked_on.is_(None))
        .values(revoked_on=datetime.now(UTC))
    )
    return bool(getattr(result, "rowcount", 0))
