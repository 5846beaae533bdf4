"""``kiln user``: local accounts from the server's shell (create, change a password, list,
disable, enable).

Passwords are never command-line arguments (other users could read them in the process list):
``--password-stdin`` reads the first line of standard input (``echo "$PW" | kiln user create
ada --password-stdin``); without it, a terminal is asked twice. ``--no-password`` creates an
account that logs in only through OAuth (its name must be the provider's user name), e.g. to
make someone an admin before their first login.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from appliance.config.loader import KilnConfig

_Result = TypeVar("_Result")


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``kiln user ...`` to the top-level ``subparsers``."""
    user = subparsers.add_parser(
        "user",
        help="manage local user accounts",
        description="Local user accounts, stored in Kiln's database (scrypt password hashes).",
    )
    actions = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)

    create = actions.add_parser(
        "create", parents=[common], help="create an account",
        description="Create a user account. The user name is also the user's own namespace.",
    )  # fmt: skip
    create.add_argument("name", metavar="NAME", help="user name (letters, digits, _ . + -)")
    create.add_argument("--admin", action="store_true", help="an admin on everything")
    secret = create.add_mutually_exclusive_group()
    secret.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    secret.add_argument(
        "--no-password", action="store_true",
        help="no password: the account logs in through OAuth only",
    )  # fmt: skip
    create.set_defaults(func=run_create)

    passwd = actions.add_parser(
        "passwd", parents=[common], help="set an account's password",
        description="Set the password of an account; its login sessions end.",
    )  # fmt: skip
    passwd.add_argument("name", metavar="NAME")
    passwd.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    passwd.set_defaults(func=run_passwd)

    listing = actions.add_parser("list", parents=[common], help="list the accounts")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=run_list)

    for name, disabled, text in (
        ("disable", True, "refuse the account's logins and tokens from now on"),
        ("enable", False, "let a disabled account log in again"),
    ):
        action = actions.add_parser(name, parents=[common], help=text, description=text)
        action.add_argument("name", metavar="NAME")
        action.set_defaults(func=run_set_disabled, disabled=disabled)


def _password(args: argparse.Namespace) -> str:
    from appliance.common.errors import KilnError

    if args.password_stdin:
        line = sys.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
        if not password:
            raise KilnError("no password on standard input")
        return password
    if not sys.stdin.isatty():
        raise KilnError(
            "give the password with --password-stdin (or run in a terminal to be asked for it)"
        )
    import getpass

    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise KilnError("the two passwords differ; nothing changed")
    return first


def _on_database(
    config: KilnConfig, work: Callable[..., _Result], *params: Any, **options: Any
) -> _Result:
    """Run the use case ``work(session, *params, **options)`` in one transaction on the
    configured database."""
    from appliance.cli.database import on_database
    from appliance.db.engine import create_engine
    from appliance.db.schema import check_schema
    from appliance.services.transactions import Transactions

    def run(url: str) -> _Result:
        engine = create_engine(url, application_name="kiln-user")
        try:
            check_schema(engine)
            return Transactions(engine).run_now(work, *params, **options)
        finally:
            engine.dispose()

    return on_database(config, run)


def _config(args: argparse.Namespace) -> KilnConfig:
    from appliance.config import load_config_from_args

    return load_config_from_args(args)


def run_create(args: argparse.Namespace) -> int:
    from appliance.services.accounts import create_account, remove_setup_token

    config = _config(args)
    password = None if args.no_password else _password(args)
    account = _on_database(config, create_account, args.name, password=password, admin=args.admin)
    if account.is_admin:
        remove_setup_token(config.data_dir.secrets)  # an admin exists: no first-admin setup
    print(f"created {'admin account' if account.is_admin else 'account'} {account.username}")
    return 0


def run_passwd(args: argparse.Namespace) -> int:
    from appliance.services.accounts import set_password

    password = _password(args)
    account = _on_database(_config(args), set_password, args.name, password)
    print(f"password of {account.username} changed; their login sessions ended")
    return 0


def run_set_disabled(args: argparse.Namespace) -> int:
    from appliance.services.accounts import set_disabled

    account = _on_database(_config(args), set_disabled, args.name, args.disabled)
    print(f"{account.username} {'disabled' if account.disabled else 'enabled'}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from appliance.services.accounts import list_accounts

    accounts = _on_database(_config(args), list_accounts)
    if args.json:
        for account in accounts:
            print(
                json.dumps(
                    {
                        "username": account.username,
                        "is_admin": account.is_admin,
                        "disabled": account.disabled,
                        "has_password": account.has_password,
                        "created_on": account.created_on.isoformat(),
                        "last_login": account.last_login.isoformat()
                        if account.last_login
                        else None,
                    }
                )
            )
        return 0
    if not accounts:
        print("no accounts yet (kiln user create NAME --admin creates the first admin)")
        return 0
    width = max(len(account.username) for account in accounts)
    print(f"{'NAME':<{width}}  ADMIN  DISABLED  PASSWORD  LAST LOGIN")
    for account in accounts:
        last = account.last_login.strftime("%Y-%m-%d %H:%M") if account.last_login else "never"
        print(
            f"{account.username:<{width}}  {'yes' if account.is_admin else 'no':<5}  "
            f"{'yes' if account.disabled else 'no':<8}  "
            f"{'yes' if account.has_password else 'no':<8}  {last}"
        )
    return 0
