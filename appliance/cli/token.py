"""``kiln token create``: mint an API token from the data dir's secret (bootstrap, automation).

With no options the token has admin rights on everything; ``--namespace``, ``--role-binding``
and ``--lifetime`` narrow it. The token is recorded in the database (so it can be listed and
revoked) and printed as the last line of standard output, so ``TOKEN=$(kiln token create | tail
-n1)`` works in scripts.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

DEFAULT_LIFETIME = "1d"


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``kiln token create`` to the top-level ``subparsers``."""
    token = subparsers.add_parser(
        "token", help="mint API tokens", description="API tokens for scripts and bootstrap."
    )
    actions = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        parents=[common],
        help="mint a token (admin on everything unless narrowed)",
        description="Mint an API token signed with this Kiln's secret and record it in the "
        "database. Without options: admin on every namespace and environment for "
        f"{DEFAULT_LIFETIME}.",
    )
    create.add_argument(
        "--namespace", metavar="NS",
        help="primary namespace; without --role-binding the token is admin on NS/* only",
    )  # fmt: skip
    create.add_argument(
        "--role-binding", action="append", default=[], metavar="PATTERN=ROLE[,ROLE]",
        help="grant roles (viewer, developer, admin) on NAMESPACE/ENVIRONMENT globs; repeatable",
    )  # fmt: skip
    create.add_argument(
        "--lifetime", default=DEFAULT_LIFETIME, metavar="DURATION",
        help=f"how long the token is valid: 30m, 12h, 7d, 2w (default {DEFAULT_LIFETIME})",
    )  # fmt: skip
    create.add_argument("--name", default="kiln token create", help="a label for listings")
    create.add_argument("--json", action="store_true", help="print the claims as JSON first")
    create.set_defaults(func=run_create)


def _bindings(args: argparse.Namespace) -> dict[str, list[str]]:
    from appliance.common.errors import KilnError

    if not args.role_binding:
        return {f"{args.namespace}/*" if args.namespace else "*/*": ["admin"]}
    bindings: dict[str, list[str]] = {}
    for entry in args.role_binding:
        pattern, equals, roles = entry.partition("=")
        if not equals:
            raise KilnError(
                f"--role-binding {entry!r}: expected PATTERN=ROLE[,ROLE], e.g. 'default/*=viewer'"
            )
        bindings.setdefault(pattern.strip(), []).extend(r.strip() for r in roles.split(","))
    return bindings


def run_create(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from appliance.auth.secrets import JWT_SECRET, load_or_create_secret
    from appliance.auth.tokens import TokenClaims, check_role_bindings, mint, parse_lifetime
    from appliance.cli.database import on_database
    from appliance.config import load_config_from_args
    from appliance.db.engine import create_engine
    from appliance.db.schema import check_schema
    from appliance.services.tokens import record_token
    from appliance.services.transactions import Transactions

    config = load_config_from_args(args)
    bindings = check_role_bindings(_bindings(args))
    lifetime = parse_lifetime(args.lifetime)
    backend = config.authentication_backend
    secret = backend.secret or load_or_create_secret(config.data_dir.secrets, JWT_SECRET)
    claims = TokenClaims(
        role_bindings=bindings,
        expires_at=(datetime.now(UTC) + lifetime).replace(microsecond=0),
        primary_namespace=args.namespace or config.conda_store.default_namespace,
        subject="kiln-cli",
    )

    def record(url: str) -> None:
        engine = create_engine(url, application_name="kiln-token")
        try:
            check_schema(engine)
            Transactions(engine).run_now(record_token, claims, name=args.name, user_id=None)
        finally:
            engine.dispose()

    on_database(config, record)
    token = mint(claims, secret=secret, algorithm=backend.jwt_algorithm)
    if args.json:
        print(
            json.dumps(
                {
                    "id": claims.token_id,
                    "primary_namespace": claims.primary_namespace,
                    "role_bindings": {k: list(v) for k, v in claims.role_bindings.items()},
                    "expires_at": claims.expires_at.isoformat(),
                }
            )
        )
    print(token)
    return 0
