"""Access: user accounts, role mappings and API tokens, one tab each.

Users: create, disable or enable, reset the password, grant or take admin. Role mappings:
which namespaces' users get which role on a namespace (v2 grants, and conda-store's v1
mappings), add and remove. Tokens: every user's, create one (shown once), revoke.
Keys act on the tab shown; the footer lists only those that apply.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Static, TabbedContent, TabPane

from tui import admin, inputs
from tui.client import KilnApiError
from tui.models import Account, Namespace, RoleGrant, TokenInfo
from tui.screens.base import KilnScreen
from tui.widgets.cells import dim, flag
from tui.widgets.dialogs import Confirm, Field, Form, Notice
from tui.widgets.table import KilnTable

#: Actions that apply on some tabs only, and those tabs.
_TABS_OF_ACTION = {
    "toggle_disabled": {"users"},
    "reset_password": {"users"},
    "toggle_admin": {"users"},
    "new_user": {"users"},
    "new_mapping": {"mappings"},
    "new_token": {"tokens"},
    "remove_mapping": {"mappings"},
    "revoke_token": {"tokens"},
}


@dataclass(frozen=True)
class MappingRow:
    """A role mapping of either kind, as one row."""

    key: str
    namespace: str
    kind: str  # "v2" (a namespace's users on namespace/*) or "v1" (entity glob)
    who: str
    role: str


def mapping_rows(
    namespaces: list[Namespace], grants: dict[str, list[RoleGrant]]
) -> list[MappingRow]:
    rows: list[MappingRow] = []
    for namespace in namespaces:
        for grant in grants.get(namespace.name, []):
            rows.append(
                MappingRow(
                    f"v2:{namespace.name}:{grant.other_namespace}",
                    namespace.name,
                    "v2",
                    f"users of {grant.other_namespace}",
                    grant.role,
                )
            )
        for mapping in namespace.role_mappings:
            rows.append(
                MappingRow(
                    f"v1:{namespace.name}:{mapping.id}",
                    namespace.name,
                    "v1",
                    f"{namespace.name} users on {mapping.entity}",
                    mapping.role,
                )
            )
    return rows


class AccessScreen(KilnScreen):
    """Users, role mappings and tokens."""

    MODE = "access"
    REFRESH_SECONDS = 15.0

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "new_user", "New user"),
        Binding("n", "new_mapping", "New mapping"),
        Binding("n", "new_token", "New token"),
        Binding("x,delete", "remove_mapping", "Remove"),
        Binding("x,delete", "revoke_token", "Revoke"),
        Binding("d", "toggle_disabled", "Disable/enable"),
        Binding("p", "reset_password", "Password"),
        Binding("a", "toggle_admin", "Admin"),
        Binding("r", "reload", "Refresh"),
        Binding("u", "show_tab('users')", "Users", show=False),
        Binding("m", "show_tab('mappings')", "Role mappings", show=False),
        Binding("t", "show_tab('tokens')", "Tokens", show=False),
    ]

    class Loaded(Message):
        def __init__(
            self,
            accounts: list[Account] | None,
            accounts_problem: str,
            namespaces: list[Namespace],
            grants: dict[str, list[RoleGrant]],
            tokens: list[TokenInfo],
        ) -> None:
            super().__init__()
            self.accounts = accounts
            self.accounts_problem = accounts_problem
            self.namespaces = namespaces
            self.grants = grants
            self.tokens = tokens

    def __init__(self) -> None:
        super().__init__()
        self.accounts: list[Account] = []
        self.mappings: list[MappingRow] = []
        self.namespaces: list[Namespace] = []
        self.tokens: list[TokenInfo] = []

    def compose_body(self) -> ComposeResult:
        with TabbedContent(initial="users", id="access-tabs"):
            with TabPane("Users (u)", id="users"):
                yield KilnTable(
                    ("user", "admin", "state", "password", "last login"), id="users-table"
                )
                yield Static("", id="users-note", markup=False)
            with TabPane("Role mappings (m)", id="mappings"):
                yield KilnTable(("namespace", "kind", "who", "role"), id="mappings-table")
                yield Static(
                    "n: give another namespace's users a role on a namespace; x: remove.",
                    classes="hint",
                    markup=False,
                )
            with TabPane("Tokens (t)", id="tokens"):
                yield KilnTable(
                    ("name", "user", "bindings", "expires", "last used", "state"),
                    id="tokens-table",
                )

    @property
    def tab(self) -> str:
        return self.query_one("#access-tabs", TabbedContent).active or "users"

    def table(self, name: str) -> KilnTable:
        return self.query_one(f"#{name}-table", KilnTable)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        tabs = _TABS_OF_ACTION.get(action)
        return tabs is None or not self.is_mounted or self.tab in tabs

    def action_show_tab(self, tab: str) -> None:
        self.query_one("#access-tabs", TabbedContent).active = tab

    @on(TabbedContent.TabActivated)
    def tab_changed(self) -> None:
        self.refresh_bindings()
        self.table(self.tab).focus()

    @work(exclusive=True, group="load")
    async def load(self) -> None:
        found = await self.call(asyncio.gather(self.kiln.namespaces(), self.kiln.tokens()))
        if found is None:
            return
        summaries, tokens = found
        details = await self.call(
            asyncio.gather(*(self.kiln.namespace(item.name) for item in summaries))
        )
        grants = await self.call(
            asyncio.gather(*(self.kiln.role_grants(item.name) for item in summaries))
        )
        if details is None or grants is None:
            return
        accounts: list[Account] | None = None
        problem = ""
        try:
            accounts = await self.kiln.accounts()
        except KilnApiError as error:  # reported in the tab, not as an error popup
            problem = (
                f"this server has no user administration (GET {admin.USERS} answered "
                f"{error.status})"
                if error.status in (404, 405)
                else error.message
            )
        self.post_message(
            self.Loaded(
                accounts,
                problem,
                list(details),
                {item.name: list(found) for item, found in zip(summaries, grants, strict=True)},
                tokens,
            )
        )

    def on_access_screen_loaded(self, message: Loaded) -> None:
        formats = self.formats
        self.accounts = message.accounts or []
        self.table("users").replace_rows(
            (
                account.username,
                (
                    account.username,
                    flag(account.is_admin, "admin"),
                    dim("disabled") if account.disabled else "active",
                    "set" if account.has_password else dim("none"),
                    formats.moment(account.last_login),
                ),
            )
            for account in self.accounts
        )
        self.query_one("#users-note", Static).update(
            f"Accounts cannot be listed: {message.accounts_problem}"
            if message.accounts is None
            else "n: new user · d: disable/enable · p: new password · a: grant/take admin"
        )
        self.namespaces = message.namespaces
        self.mappings = mapping_rows(message.namespaces, message.grants)
        self.table("mappings").replace_rows(
            (row.key, (row.namespace, row.kind, row.who, row.role)) for row in self.mappings
        )
        self.tokens = message.tokens
        self.table("tokens").replace_rows(
            (
                token.id,
                (
                    token.name or dim("(no name)"),
                    token.username or dim("-"),
                    " ".join(
                        f"{pattern}={','.join(roles)}"
                        for pattern, roles in token.role_bindings.items()
                    )
                    or dim("session"),
                    formats.moment(token.expires_on),
                    formats.age(token.last_used) if token.last_used else dim("never"),
                    dim("revoked")
                    if token.revoked
                    else ("this console" if token.current else "valid"),
                ),
            )
            for token in self.tokens
        )

    # --- selection --------------------------------------------------------------------------

    def selected_account(self) -> Account | None:
        key = self.table("users").selected_key
        return next((account for account in self.accounts if account.username == key), None)

    def selected_mapping(self) -> MappingRow | None:
        key = self.table("mappings").selected_key
        return next((row for row in self.mappings if row.key == key), None)

    def selected_token(self) -> TokenInfo | None:
        key = self.table("tokens").selected_key
        return next((token for token in self.tokens if token.id == key), None)

    # --- actions --------------------------------------------------------------------------

    def action_new_user(self) -> None:
        def answered(values: dict[str, str] | None) -> None:
            if values is None:
                return
            try:
                name = inputs.username(values["username"])
                secret = inputs.password(values["password"], values["repeat"])
            except ValueError as error:
                self.notify(str(error), severity="error")
                return
            admin = bool(values["admin"])
            self.act(
                self.kiln.create_account(name, secret, is_admin=admin),
                done=f"user {name} created" + (" (admin)" if admin else ""),
            )

        self.app.push_screen(
            Form(
                "New user",
                [
                    Field("username", "User name"),
                    Field("password", "Password", password=True),
                    Field("repeat", "Password again", password=True),
                    Field("admin", "Admin on everything", checkbox=True),
                ],
                submit="Create",
            ),
            answered,
        )

    def action_toggle_disabled(self) -> None:
        account = self.selected_account()
        if account is None:
            return
        if account.disabled:
            self.act(
                self.kiln.update_account(account.username, disabled=False),
                done=f"user {account.username} enabled",
            )
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.act(
                    self.kiln.update_account(account.username, disabled=True),
                    done=f"user {account.username} disabled",
                )

        self.app.push_screen(
            Confirm(
                f"Disable {account.username}?",
                f"{account.username} can no longer log in, and their sessions and tokens stop "
                "working at once. Their namespaces and environments stay. Enable them again "
                "with d.",
                verb="Disable",
            ),
            answered,
        )

    def action_reset_password(self) -> None:
        account = self.selected_account()
        if account is None:
            return

        def answered(values: dict[str, str] | None) -> None:
            if values is None:
                return
            try:
                secret = inputs.password(values["password"], values["repeat"])
            except ValueError as error:
                self.notify(str(error), severity="error")
                return
            self.act(
                self.kiln.update_account(account.username, password=secret),
                done=f"new password set for {account.username}",
            )

        self.app.push_screen(
            Form(
                f"New password for {account.username}",
                [
                    Field("password", "Password", password=True),
                    Field("repeat", "Password again", password=True),
                ],
                submit="Set password",
                note="Their open sessions end; their API tokens keep working.",
            ),
            answered,
        )

    def action_toggle_admin(self) -> None:
        account = self.selected_account()
        if account is None:
            return
        grant = not account.is_admin
        verb = "Make admin" if grant else "Take admin"
        consequence = (
            f"{account.username} gets admin on every namespace and environment, including "
            "this console's powers."
            if grant
            else f"{account.username} loses admin on everything; they keep their own "
            "namespace and the roles role mappings give them."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.act(
                    self.kiln.update_account(account.username, is_admin=grant),
                    done=f"{account.username} is {'now' if grant else 'no longer'} an admin",
                )

        self.app.push_screen(
            Confirm(f"{verb}: {account.username}?", consequence, verb=verb), answered
        )

    def action_new_mapping(self) -> None:
        names = [namespace.name for namespace in self.namespaces]
        if not names:
            self.notify("There are no namespaces yet.")
            return

        def answered(values: dict[str, str] | None) -> None:
            if values is None:
                return
            other = values["other"].strip()
            if not other:
                self.notify("Name the namespace whose users get the role.", severity="error")
                return
            self.act(
                self.kiln.grant_role(values["namespace"], other, values["role"]),
                done=f"users of {other} are {values['role']} on {values['namespace']}/*",
            )

        self.app.push_screen(
            Form(
                "New role mapping",
                [
                    Field("namespace", "On namespace", choices=names),
                    Field("other", "Users whose primary namespace is", placeholder="e.g. team"),
                    Field("role", "Role", value="viewer", choices=("viewer", "developer", "admin")),
                ],
                submit="Grant",
            ),
            answered,
        )

    def action_remove_mapping(self) -> None:
        row = self.selected_mapping()
        if row is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.act(
                    self.remove_role_mapping(row), done=f"role mapping removed from {row.namespace}"
                )

        self.app.push_screen(
            Confirm(
                "Remove this role mapping?",
                f"{row.who} lose the {row.role} role on {row.namespace}; anything else that "
                "grants them access stays.",
                verb="Remove",
            ),
            answered,
        )

    async def remove_role_mapping(self, row: MappingRow) -> None:
        if row.kind == "v2":
            other = row.key.split(":", 2)[2]
            await self.kiln.revoke_role(row.namespace, other)
            return
        namespace = next(item for item in self.namespaces if item.name == row.namespace)
        mapping_id = int(row.key.split(":", 2)[2])
        kept: dict[str, list[str]] = {}
        for mapping in namespace.role_mappings:
            if mapping.id != mapping_id:
                kept.setdefault(mapping.entity, []).append(mapping.role)
        await self.kiln.set_role_mappings(row.namespace, kept)

    def action_new_token(self) -> None:
        def answered(values: dict[str, str] | None) -> None:
            if values is None:
                return
            try:
                bindings = inputs.role_bindings(values["bindings"])
                seconds = inputs.lifetime(values["lifetime"])
            except ValueError as error:
                self.notify(str(error), severity="error")
                return
            self.create_token(
                values["name"].strip() or "kiln tui",
                bindings,
                values["namespace"].strip() or None,
                seconds,
            )

        self.app.push_screen(
            Form(
                "New API token",
                [
                    Field("name", "What it is for", placeholder="e.g. CI"),
                    Field(
                        "bindings",
                        "Role bindings (PATTERN=ROLE, space-separated)",
                        value="default/*=viewer",
                    ),
                    Field("namespace", "Primary namespace", value="default"),
                    Field("lifetime", "Lifetime (30m, 12h, 7d, 2w)", value="8h"),
                ],
                submit="Create",
                note="The token is shown once. It has at most this console's rights and cannot "
                f"outlive the console's own token{self.console_expiry()}: longer-lived tokens "
                "come from `kiln token create` on the Kiln host.",
            ),
            answered,
        )

    def console_expiry(self) -> str:
        identity = self.console.identity
        if identity is None or identity.expiration is None:
            return ""
        return f" (expires {self.formats.moment(identity.expiration)} UTC)"

    @work(group="act")
    async def create_token(
        self, name: str, bindings: dict[str, list[str]], namespace: str | None, seconds: int
    ) -> None:
        issued = await self.call(
            self.kiln.create_token(
                name=name,
                role_bindings=bindings,
                primary_namespace=namespace,
                lifetime_seconds=seconds,
            )
        )
        if issued is None:
            return
        expires = self.formats.moment(issued.expiration)
        self.app.push_screen(
            Notice(
                f"Token {name!r} created",
                f"Copy it now: it is not shown again. Id {issued.id}, expires {expires}.",
                selectable=issued.token,
            )
        )
        self.reload()

    def action_revoke_token(self) -> None:
        token = self.selected_token()
        if token is None:
            return
        if token.revoked:
            self.notify("This token is already revoked.")
            return
        warning = (
            " It is the token this console uses: the console stops working."
            if token.current
            else ""
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.act(self.kiln.revoke_token(token.id))

        self.app.push_screen(
            Confirm(
                f"Revoke token {token.name or token.id}?",
                f"Token {token.id} ({token.name or 'no name'}, of "
                f"{token.username or 'no user'}) stops working on its next request. This "
                f"cannot be undone.{warning}",
                verb="Revoke",
            ),
            answered,
        )
