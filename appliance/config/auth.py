"""Options of authentication (who is calling) and authorization (what they may do).

The class names are conda-store's, so ``c.AuthorizationBackend.role_mappings = ...`` and
``c.RBACAuthorizationBackend.role_mappings = ...`` both work. These classes hold settings only;
:mod:`appliance.auth` implements login, tokens and role checks from them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from traitlets import Bool, Callable, Dict, Enum, TraitError, Unicode, Union, default, validate

from appliance.config.base import (
    DEFAULT_TEXT,
    SECRET,
    ClassChoice,
    KilnConfigurable,
    enum_value,
    obsolete_option,
)

#: Every permission a role can grant (conda-store's vocabulary).
PERMISSIONS = (
    "environment::create",
    "environment::read",
    "environment::update",
    "environment::delete",
    "environment::solve",
    "build::cancel",
    "build::delete",
    "namespace::create",
    "namespace::read",
    "namespace::update",
    "namespace::delete",
    "namespace-role-mapping::create",
    "namespace-role-mapping::read",
    "namespace-role-mapping::update",
    "namespace-role-mapping::delete",
    "setting::read",
    "setting::update",
)

#: conda-store spells ENVIRONMENT_CREATE with one colon; both spellings mean the same.
PERMISSION_ALIASES = {"environment:create": "environment::create"}

#: ``developer`` is conda-store's older name of ``editor``.
ROLE_ALIASES = {"developer": "editor"}

#: Characters allowed in namespace and environment names (conda-store's set).
NAME_CHARACTERS = "A-Za-z0-9-+_@$&?^~.="
ARN_PATTERN = re.compile(rf"^([{NAME_CHARACTERS}*]+)/([{NAME_CHARACTERS}*]+)$")

_VIEWER = sorted(["environment::read", "namespace::read", "namespace-role-mapping::read"])
_EDITOR = sorted(
    [
        "build::cancel",
        "environment::create",
        "environment::read",
        "environment::solve",
        "environment::update",
        "namespace::read",
        "namespace-role-mapping::read",
        "setting::read",
    ]
)
_ADMIN = sorted(PERMISSIONS)


def _normalize_permissions(owner: str, role: str, value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise TraitError(f"{owner}: role {role!r} must map to a list or set of permissions")
    result = set()
    for item in value:
        permission = enum_value(item)
        permission = PERMISSION_ALIASES.get(permission, permission)
        if permission not in PERMISSIONS:
            raise TraitError(
                f"{owner}: role {role!r} has unknown permission {permission!r}; "
                f"allowed: {', '.join(PERMISSIONS)}"
            )
        result.add(permission)
    return sorted(result)


def _normalize_bindings(owner: str, value: dict[Any, Any]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for arn, roles in value.items():
        if not isinstance(arn, str) or not ARN_PATTERN.match(arn):
            raise TraitError(
                f"{owner}: {arn!r} is not a '<namespace>/<environment>' pattern "
                "('*' matches any characters, e.g. 'default/*')"
            )
        if isinstance(roles, str) or not isinstance(roles, Iterable):
            raise TraitError(f"{owner}: roles of {arn!r} must be a list or set of role names")
        names = sorted({str(enum_value(role)) for role in roles})
        result[arn] = names
    return result


class AuthenticationBackend(KilnConfigurable):
    """How Kiln signs and checks its tokens (JWTs)."""

    secret = Unicode(
        None,
        allow_none=True,
        help="""
        Symmetric secret that signs Kiln's tokens and session cookies. Unset (the default)
        means a random secret generated once and kept in <data dir>/secrets/ (0600), so tokens
        survive restarts and every web process sharing the data dir agrees. conda-store drew a
        new random secret in every process, which logged everyone out on restart. Set it
        explicitly when web processes on several hosts do not share the data dir.

        Example: c.AuthenticationBackend.secret = open("/run/secrets/kiln-jwt").read().strip()
        """,
    ).tag(
        config=True, **{SECRET: True, DEFAULT_TEXT: "generated once, kept in <data dir>/secrets/"}
    )

    jwt_algorithm = Enum(
        ["HS256", "HS384", "HS512"],
        default_value="HS256",
        help="""
        HMAC algorithm used to sign tokens.

        Example: c.AuthenticationBackend.jwt_algorithm = "HS512"
        """,
    ).tag(config=True)

    predefined_tokens = Dict(
        {},
        help="""
        Fixed tokens with fixed permissions, for service accounts (conda-store's option):
        token string -> token payload ({"primary_namespace": ..., "role_bindings": {...}}).
        Prefer `kiln token create`, whose tokens expire and can be revoked.

        Example: c.AuthenticationBackend.predefined_tokens = {
            "long-random-string": {"primary_namespace": "ci",
                                   "role_bindings": {"ci/*": ["editor"]}}}
        """,
    ).tag(config=True, **{SECRET: True})


class AuthorizationBackend(KilnConfigurable):
    """Role-based access control: roles, and which roles callers get by default.

    A binding maps a '<namespace>/<environment>' pattern ('*' is a wildcard) to role names.
    Bindings from every source (these defaults, the caller's token, the namespace's role
    mappings in the database) are unioned, never overwritten.
    """

    role_mappings = Dict(
        {"viewer": _VIEWER, "editor": _EDITOR, "admin": _ADMIN},
        help="""
        Roles and the permissions each one grants: role name -> list of permissions.
        Default roles: viewer (read), editor (create, update, solve, cancel builds; read),
        admin (everything). conda-store's Permissions enum members and its
        "environment:create" spelling are accepted; "developer" is an alias of "editor".
        Permissions: """
        + ", ".join(PERMISSIONS)
        + """.

        Example (add a role): c.AuthorizationBackend.role_mappings.update(
            {"auditor": ["environment::read", "namespace::read", "setting::read"]})
        """,
    ).tag(config=True)

    @validate("role_mappings")
    def _validate_role_mappings(self, proposal: Any) -> dict[str, list[str]]:
        owner = "AuthorizationBackend.role_mappings"
        return {
            str(role): _normalize_permissions(owner, str(role), permissions)
            for role, permissions in proposal.value.items()
        }

    unauthenticated_role_bindings = Dict(
        {},
        help="""
        Roles of callers who are not logged in. Kiln's default is none: anonymous callers see
        nothing (conda-store let anyone read the default namespace). To get conda-store's
        behaviour back:

        Example: c.AuthorizationBackend.unauthenticated_role_bindings = {"default/*": ["viewer"]}
        """,
    ).tag(config=True)

    authenticated_role_bindings = Dict(
        {"default/*": ["viewer"], "filesystem/*": ["viewer"]},
        help="""
        Roles every logged-in caller gets, in addition to those of their token and of their
        namespace's role mappings.

        Example: c.AuthorizationBackend.authenticated_role_bindings = {"default/*": ["editor"]}
        """,
    ).tag(config=True)

    @validate("unauthenticated_role_bindings", "authenticated_role_bindings")
    def _validate_bindings(self, proposal: Any) -> dict[str, list[str]]:
        return _normalize_bindings(f"AuthorizationBackend.{proposal.trait.name}", proposal.value)

    role_mappings_version = obsolete_option(
        "Kiln has a single role-mapping model (conda-store's v2)",
        """
        conda-store's switch between its two namespace role-mapping tables. Ignored: Kiln has
        one role-mapping model (conda-store's version 2).

        Example: c.RBACAuthorizationBackend.role_mappings_version = 2
        """,
    )

    def known_roles(self) -> set[str]:
        """Role names bindings may use: those of role_mappings plus their aliases."""
        roles = set(self.role_mappings)
        roles.update(alias for alias, role in ROLE_ALIASES.items() if role in roles)
        return roles


class RBACAuthorizationBackend(AuthorizationBackend):
    """conda-store's name of AuthorizationBackend; ``c.RBACAuthorizationBackend.*`` is read too."""


_LOGIN_HTML_HELP = """
        HTML shown on the login page instead of Kiln's own form. Empty (the default) means
        Kiln's built-in page. OAuth classes replace "{authorization_url}" in it with the
        provider's login URL.

        Example: c.Authentication.login_html = "<p>Sign in with your company account.</p>"
        """


class Authentication(KilnConfigurable):
    """How callers log in. Choose the class with ``c.CondaStoreServer.authentication_class``.

    Options set on ``Authentication`` apply to every authentication class; options set on a
    specific class (``c.GithubOAuthAuthentication.cookie_name``) apply to that class only.
    """

    cookie_name = Unicode(
        "conda-store-auth",
        help="""
        Name of the session cookie (conda-store's default name is kept).

        Example: c.Authentication.cookie_name = "kiln-auth"
        """,
    ).tag(config=True)

    cookie_domain = Unicode(
        None,
        allow_none=True,
        help="""
        Domain of the session cookie, to share it with subdomains. Unset means the host that
        served the login.

        Example: c.Authentication.cookie_domain = "example.org"
        """,
    ).tag(config=True)

    authentication_backend = ClassChoice(
        AuthenticationBackend,
        klass=AuthenticationBackend,
        choices={"AuthenticationBackend": AuthenticationBackend},
        conda_store_modules=("conda_store_server.server.auth",),
        help="""
        Class that holds the token options (a subclass of AuthenticationBackend).

        Example: c.Authentication.authentication_backend = "AuthenticationBackend"
        """,
    ).tag(config=True)

    authorization_backend = ClassChoice(
        RBACAuthorizationBackend,
        klass=AuthorizationBackend,
        choices={
            "RBACAuthorizationBackend": RBACAuthorizationBackend,
            "AuthorizationBackend": AuthorizationBackend,
        },
        conda_store_modules=("conda_store_server.server.auth",),
        help="""
        Class that holds the role options (a subclass of AuthorizationBackend). The default
        reads both c.AuthorizationBackend.* and c.RBACAuthorizationBackend.*.

        Example: c.Authentication.authorization_backend = "RBACAuthorizationBackend"
        """,
    ).tag(config=True)

    login_html = Unicode("", help=_LOGIN_HTML_HELP).tag(config=True)


class LocalAccountAuthentication(Authentication):
    """Kiln's default: user accounts stored in Kiln's database (scrypt password hashes).

    The first administrator is created from the one-time setup token that `kiln serve` prints
    on first start, or with `kiln token create`; further accounts from the admin console.
    """


class DummyAuthentication(Authentication):
    """For tests and demos only: anyone who knows the one password logs in, as any user name."""

    password = Unicode(
        "password",
        help="""
        The password every user name logs in with (conda-store's default is kept). Empty
        means any password is accepted. Never use this class on a reachable server.

        Example: c.DummyAuthentication.password = "demo"
        """,
    ).tag(config=True, **{SECRET: True})


class GenericOAuthAuthentication(Authentication):
    """Log in through any OAuth 2 provider (Keycloak, GitLab, Google, ...)."""

    access_token_url = Unicode(
        "",
        help="""
        Provider URL that exchanges the authorization code for an access token.

        Example: c.GenericOAuthAuthentication.access_token_url = "https://sso.example.org/oauth/token"
        """,
    ).tag(config=True)

    authorize_url = Unicode(
        "",
        help="""
        Provider URL users are sent to in order to log in and authorize Kiln.

        Example: c.GenericOAuthAuthentication.authorize_url = "https://sso.example.org/oauth/authorize"
        """,
    ).tag(config=True)

    client_id = Unicode(
        "",
        help="""
        Client id Kiln is registered with at the provider.

        Example: c.GenericOAuthAuthentication.client_id = "kiln"
        """,
    ).tag(config=True)

    client_secret = Unicode(
        "",
        help="""
        Client secret Kiln is registered with at the provider (masked in `kiln config show`).

        Example: c.GenericOAuthAuthentication.client_secret = open("/run/secrets/oauth").read()
        """,
    ).tag(config=True, **{SECRET: True})

    access_scope = Unicode(
        "",
        help="""
        Scope(s) requested from the provider, space separated.

        Example: c.GenericOAuthAuthentication.access_scope = "openid profile"
        """,
    ).tag(config=True)

    user_data_url = Unicode(
        "",
        help="""
        Provider URL that returns the logged-in user as JSON (called with the access token).

        Example: c.GenericOAuthAuthentication.user_data_url = "https://sso.example.org/userinfo"
        """,
    ).tag(config=True)

    user_data_key = Unicode(
        "",
        help="""
        Key of the user name in the JSON returned by user_data_url.

        Example: c.GenericOAuthAuthentication.user_data_key = "preferred_username"
        """,
    ).tag(config=True)

    tls_verify = Bool(
        True,
        help="""
        Verify the provider's TLS certificates. Turn off only for a test provider.

        Example: c.GenericOAuthAuthentication.tls_verify = False
        """,
    ).tag(config=True)

    oauth_callback_url = Union(
        [Unicode(), Callable()],
        default_value="",
        help="""
        URL the provider redirects back to after login, or a callable taking the request and
        returning it. Empty means "<Kiln's URL>/oauth_callback/" derived from the request.

        Example: c.GenericOAuthAuthentication.oauth_callback_url = "https://kiln.example/oauth_callback/"
        """,
    ).tag(config=True)


class GithubOAuthAuthentication(GenericOAuthAuthentication):
    """Log in with GitHub (or GitHub Enterprise). The OAuth URLs follow github_url/github_api."""

    github_url = Unicode(
        "https://github.com",
        help="""
        Base URL of GitHub; access_token_url and authorize_url are derived from it.

        Example: c.GithubOAuthAuthentication.github_url = "https://github.example.org"
        """,
    ).tag(config=True)

    github_api = Unicode(
        "https://api.github.com",
        help="""
        Base URL of GitHub's API; user_data_url is derived from it. A bare host name gets
        https:// prepended.

        Example: c.GithubOAuthAuthentication.github_api = "https://github.example.org/api/v3"
        """,
    ).tag(config=True)

    @default("access_token_url")
    def _default_access_token_url(self) -> str:
        return f"{self.github_url.rstrip('/')}/login/oauth/access_token"

    @default("authorize_url")
    def _default_authorize_url(self) -> str:
        return f"{self.github_url.rstrip('/')}/login/oauth/authorize"

    @default("access_scope")
    def _default_access_scope(self) -> str:
        return "user:email"

    @default("user_data_url")
    def _default_user_data_url(self) -> str:
        api = self.github_api if "://" in self.github_api else f"https://{self.github_api}"
        return f"{api.rstrip('/')}/user"

    @default("user_data_key")
    def _default_user_data_key(self) -> str:
        return "login"


class JupyterHubOAuthAuthentication(GenericOAuthAuthentication):
    """Log in through JupyterHub (Kiln registered as a Hub OAuth service)."""

    jupyterhub_url = Unicode(
        "",
        help="""
        Base URL of JupyterHub, without "/hub/"; the OAuth URLs are derived from it.

        Example: c.JupyterHubOAuthAuthentication.jupyterhub_url = "https://hub.example.org"
        """,
    ).tag(config=True)

    @default("access_token_url")
    def _default_access_token_url(self) -> str:
        return f"{self.jupyterhub_url.rstrip('/')}/hub/api/oauth2/token"

    @default("authorize_url")
    def _default_authorize_url(self) -> str:
        return f"{self.jupyterhub_url.rstrip('/')}/hub/api/oauth2/authorize"

    @default("access_scope")
    def _default_access_scope(self) -> str:
        return "profile"

    @default("user_data_url")
    def _default_user_data_url(self) -> str:
        return f"{self.jupyterhub_url.rstrip('/')}/hub/api/user"

    @default("user_data_key")
    def _default_user_data_key(self) -> str:
        return "name"


#: Short names accepted by ``CondaStoreServer.authentication_class``.
AUTHENTICATION_CLASSES: dict[str, type] = {
    "LocalAccountAuthentication": LocalAccountAuthentication,
    "DummyAuthentication": DummyAuthentication,
    "GenericOAuthAuthentication": GenericOAuthAuthentication,
    "GithubOAuthAuthentication": GithubOAuthAuthentication,
    "JupyterHubOAuthAuthentication": JupyterHubOAuthAuthentication,
}

#: conda-store modules whose ``<module>.<name>`` spelling names the same classes.
CONDA_STORE_AUTH_MODULES = ("conda_store_server.server.auth",)
