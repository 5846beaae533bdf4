"""``kiln tui``: the admin console (Textual), against a running Kiln.

Where to connect and as whom, first answer wins:

1. ``--url URL`` / ``$KILN_TUI_URL`` and ``--token TOKEN`` / ``$KILN_TUI_TOKEN`` (any host: the
   console then needs nothing but the URL and an admin token, e.g. from ``kiln token
   create``);
2. on the Kiln host, the data dir and configuration (``--data-dir``, ``--config``, as for
   ``kiln serve``): the URL from ``CondaStoreServer.address``/``port``/``url_prefix``, and a
   short-lived admin token (``ADMIN_TOKEN_LIFETIME``, renewed when it expires) minted from the
   data dir's secret and recorded in the database, exactly as ``kiln token create`` does. That
   needs read access to the secret (run as Kiln's user, e.g. ``sudo -u kiln kiln tui``).

When neither gives a URL that answers and a token, the command says what it tried and exits
with status 2, before the console takes over the terminal.

The console itself (package ``tui``) talks to Kiln only over HTTP; this module is the only
place that knows both sides, and imports the console lazily.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from appliance.common.errors import KilnError

#: Environment variables read when ``--url``/``--token`` are not given.
URL_ENV, TOKEN_ENV = "KILN_TUI_URL", "KILN_TUI_TOKEN"

#: How long a token minted for the console lives (it is renewed when it expires). Tokens the
#: console creates cannot outlive it: longer ones come from `kiln token create`.
ADMIN_TOKEN_LIFETIME = timedelta(hours=12)

#: The console's screens (``--screen``).
SCREENS = ("dashboard", "builds", "environments", "access", "configuration", "logs")

#: Exit status when the console cannot connect or authenticate.
CANNOT_CONNECT = 2

logger = logging.getLogger("kiln.tui")


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``kiln tui`` to the top-level ``subparsers``."""
    parser = subparsers.add_parser(
        "tui",
        parents=[common],
        help="the admin console: monitor and configure a running Kiln",
        description="Kiln's admin console (a terminal UI): services, queue, builds, "
        "environments, users and tokens, configuration and logs of a running Kiln. On the "
        "Kiln host it finds the server from the data dir and logs in as an admin with a "
        "short-lived token minted from the local secret (run it as Kiln's user). From "
        f"elsewhere: --url and --token (or ${URL_ENV} and ${TOKEN_ENV}) with a token from "
        "`kiln token create`. Keys: 1-6 switch screens, Ctrl+P opens the command palette, "
        "q quits.",
    )
    parser.add_argument(
        "--url", metavar="URL",
        help=f"Kiln's address with its url_prefix, e.g. http://kiln.example:5000 (default: "
        f"${URL_ENV}, else the address and port of the local configuration)",
    )  # fmt: skip
    parser.add_argument(
        "--token", metavar="TOKEN",
        help=f"an admin API token (default: ${TOKEN_ENV}, else one minted from the data dir's "
        "secret)",
    )  # fmt: skip
    parser.add_argument(
        "--screen", choices=SCREENS, default="dashboard", help="the first screen shown"
    )
    parser.add_argument(
        "--theme", default="ansi-dark", metavar="NAME",
        help="colour theme (default: ansi-dark, the terminal's own 16 colours; e.g. "
        "textual-dark for 24-bit colour)",
    )  # fmt: skip
    parser.set_defaults(func=run)


@dataclass(frozen=True)
class Connection:
    """Where the console connects, with which token, and how it renews it."""

    url: str
    token: str
    #: Mints a fresh token (None: the token came from the command line; it cannot be renewed).
    renew: Callable[[], str] | None = None
    #: The local data dir (None when connecting from elsewhere).
    data_dir: Path | None = None


class CannotConnect(KilnError):
    """The console cannot reach or log in to Kiln; the message says what was tried."""


def run(args: argparse.Namespace) -> int:
    try:
        connection = resolve_connection(args, os.environ)
    except CannotConnect as error:
        print(f"kiln tui: {error.message}", file=sys.stderr)
        return CANNOT_CONNECT
    from tui.app import KilnConsole

    app = KilnConsole(
        connection.url,
        connection.token,
        renew=connection.renew,
        start=args.screen,
        data_dir=str(connection.data_dir) if connection.data_dir else None,
        theme=args.theme,
    )
    with quiet_logging():
        app.run()
    return 0


def resolve_connection(
    args: argparse.Namespace, environ: dict[str, str] | os._Environ[str]
) -> Connection:
    """The URL and token to use (module docstring); raises :class:`CannotConnect`."""
    url = args.url or environ.get(URL_ENV) or None
    token = args.token or environ.get(TOKEN_ENV) or None
    if url and token:
        check_answers(url, f"--url/${URL_ENV}")
        return Connection(url.rstrip("/"), token)
    from appliance.config import load_config_from_args
    from appliance.config.loader import InvalidConfiguration

    try:
        config = load_config_from_args(args)
    except InvalidConfiguration as error:
        raise CannotConnect(
            f"cannot read the local configuration to find Kiln ({error.message}); pass --url "
            "URL --token TOKEN"
        ) from None
    where = f"the configuration in {config.data_dir.root}"
    if url is None:
        url = local_url(config.server.address, config.server.port, config.server.url_prefix)
        check_answers(url, where)
    else:
        check_answers(url, f"--url/${URL_ENV}")
    if token is not None:
        return Connection(url.rstrip("/"), token, data_dir=config.data_dir.root)

    def renew() -> str:
        return mint_admin_token(config)

    try:
        token = renew()
    except CannotConnect:
        raise
    except (KilnError, OSError) as error:
        message = error.message if isinstance(error, KilnError) else str(error)
        raise CannotConnect(
            f"Kiln answers at {url}, but no admin token could be minted here ({message}); run "
            "as Kiln's user, or pass --token TOKEN (`kiln token create` on the Kiln host)"
        ) from None
    return Connection(url.rstrip("/"), token, renew=renew, data_dir=config.data_dir.root)


def local_url(address: str, port: int, url_prefix: str) -> str:
    """The URL of the web server of this host's configuration (a wildcard address means this
    host's loopback)."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(address, address)
    if ":" in host:
        host = f"[{host}]"
    prefix = url_prefix.rstrip("/")
    return f"http://{host}:{port}{prefix}"


def check_answers(url: str, source: str, timeout: float = 5.0) -> None:
    """Raise :class:`CannotConnect` unless Kiln's API answers at ``url`` (from ``source``)."""
    if not url.startswith(("http://", "https://")):
        raise CannotConnect(f"{url!r} (from {source}) is not an http:// or https:// URL")
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/api/v1/", timeout=timeout) as answer:
            body = json.load(answer)
    except urllib.error.HTTPError as error:
        raise CannotConnect(
            f"{url} (from {source}) answered {error.code} {error.reason}, not Kiln's API; check "
            "the URL and its url_prefix"
        ) from None
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise CannotConnect(
            f"no Kiln answers at {url} (from {source}): {reason}. Is it running (`kiln serve`, "
            "or `systemctl status kiln`)? Elsewhere, pass --url URL --token TOKEN"
        ) from None
    if not isinstance(body, dict) or "data" not in body:
        raise CannotConnect(f"{url} (from {source}) answered, but not as Kiln's API does")


def mint_admin_token(config: Any) -> str:
    """A recorded admin token (``*/*: admin``) living :data:`ADMIN_TOKEN_LIFETIME`, signed with
    the data dir's secret; what ``kiln token create`` does, for the console."""
    from appliance.auth.secrets import JWT_SECRET
    from appliance.auth.tokens import TokenClaims, mint
    from appliance.cli.database import on_database
    from appliance.db.engine import create_engine
    from appliance.db.schema import check_schema
    from appliance.services.tokens import record_token
    from appliance.services.transactions import Transactions

    backend = config.authentication_backend
    secret = backend.secret or read_secret(config.data_dir.secrets / JWT_SECRET)
    claims = TokenClaims(
        role_bindings={"*/*": ("admin",)},
        expires_at=(datetime.now(UTC) + ADMIN_TOKEN_LIFETIME).replace(microsecond=0),
        primary_namespace=config.conda_store.default_namespace,
        subject="kiln-tui",
    )
    name = f"kiln tui ({_user()}@{socket.gethostname()})"

    def record(url: str) -> None:
        engine = create_engine(url, application_name="kiln-tui")
        try:
            check_schema(engine)
            Transactions(engine).run_now(record_token, claims, name=name, user_id=None)
        finally:
            engine.dispose()

    on_database(config, record)
    return mint(claims, secret=secret, algorithm=backend.jwt_algorithm)


def read_secret(path: Path) -> str:
    """The signing secret kept in ``path``; :class:`CannotConnect` saying why it is not
    usable (never created here: that is the server's job)."""
    try:
        value = path.read_text().strip()
    except PermissionError:
        raise CannotConnect(
            f"{path} is not readable by {_user()}: run `kiln tui` as Kiln's user (e.g. sudo -u "
            "kiln kiln tui), or pass --token TOKEN"
        ) from None
    except FileNotFoundError:
        raise CannotConnect(
            f"{path} does not exist: is this Kiln's data dir (--data-dir, $KILN_DATA_DIR)? Or "
            "pass --url URL --token TOKEN"
        ) from None
    if not value:
        raise CannotConnect(f"{path} is empty")
    return value


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


class quiet_logging:
    """While the console owns the terminal, log records would be written over it: raise the
    threshold of the handlers on stderr to CRITICAL, and restore them afterwards."""

    def __enter__(self) -> None:
        self._levels = [(handler, handler.level) for handler in logging.getLogger().handlers]
        for handler, _ in self._levels:
            handler.setLevel(logging.CRITICAL)

    def __exit__(self, *exc_info: object) -> None:
        for handler, level in self._levels:
            handler.setLevel(level)
