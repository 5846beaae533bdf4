"""What API handlers need, built once per web process from the configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.auth.rbac import RolePolicy
from appliance.auth.secrets import JWT_SECRET, load_or_create_secret
from appliance.builder.settings import BuildSettings, settings_from_config
from appliance.config.auth import Authentication
from appliance.config.loader import KilnConfig
from appliance.services.access import AccessCache
from appliance.services.settings import built_in_defaults, defaults_from_config
from appliance.services.specifications import Solver
from appliance.services.transactions import AsyncTransactions
from appliance.storage.base import Storage
from appliance.storage.factory import open_storage

#: File (in the secrets dir) of the key that seals web-session state (OAuth logins).
SESSION_SECRET = "session-secret"

#: Largest request body the API reads (a specification or lockfile); larger ones get 413.
MAX_BODY_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class TokenSettings:
    """How tokens are signed and carried."""

    secret: str
    algorithm: str = "HS256"
    cookie_name: str = "conda-store-auth"
    cookie_domain: str | None = None
    #: token string -> {"primary_namespace": ..., "role_bindings": {...}}.
    predefined_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Lifetime of a login session, in seconds.
    session_lifetime: float = 24 * 3600.0


@dataclass(frozen=True)
class ApiSettings:
    """Plain options of the API."""

    url_prefix: str = "/"
    max_page_size: int = 100
    default_namespace: str = "default"
    max_body_bytes: int = MAX_BODY_BYTES
    #: ``CondaStoreServer.registry_external_url``: host[:port] of image references ("" means
    #: the request's host).
    registry_external_url: str = ""


@dataclass
class ApiContext:
    """Everything a handler needs besides the request."""

    settings: ApiSettings
    tokens: TokenSettings
    policy: RolePolicy
    db: AsyncTransactions
    storage: Storage
    build_settings: BuildSettings
    #: The configured ``CondaStoreServer.authentication_class`` instance (login method).
    authentication: Authentication
    #: ``<data dir>/secrets`` (the one-time setup token lives there).
    secrets_dir: Path | None = None
    #: The configuration file this context was loaded from (None: none was), the one the
    #: admin API's configuration changes are written to.
    config_file: Path | None = None
    #: ``CondaStoreServer.secret_key`` (or the generated one): seals OAuth login state.
    session_secret: str = ""
    #: Deployment defaults of the settings API (appliance.services.settings).
    setting_defaults: dict[str, Any] = field(default_factory=built_in_defaults)
    #: Callers resolved in the last seconds (appliance.services.access.AccessCache).
    access_cache: AccessCache = field(default_factory=AccessCache)
    _solver: Solver | None = field(default=None, init=False, repr=False)

    @property
    def solver(self) -> Solver:
        """This web process's solver, made on first use and shared by the API's solve endpoint
        and the UI's preview: one limit on concurrent solves, one repodata cache."""
        if self._solver is None:
            self._solver = Solver(self.build_settings)
        return self._solver

    @classmethod
    def from_config(cls, config: KilnConfig, *, database_url: str) -> ApiContext:
        """The context ``config`` describes, on ``database_url`` (no I/O but the secret file)."""
        backend = config.authentication_backend
        auth = config.authentication
        server = config.server
        return cls(
            settings=ApiSettings(
                url_prefix=server.url_prefix,
                max_page_size=server.max_page_size,
                default_namespace=config.conda_store.default_namespace,
                registry_external_url=server.registry_external_url,
            ),
            tokens=TokenSettings(
                secret=backend.secret or load_or_create_secret(config.data_dir.secrets, JWT_SECRET),
                algorithm=backend.jwt_algorithm,
                cookie_name=auth.cookie_name,
                cookie_domain=auth.cookie_domain,
                predefined_tokens=dict(backend.predefined_tokens),
            ),
            policy=RolePolicy.from_config(config.authorization_backend),
            db=AsyncTransactions(database_url),
            storage=open_storage(config.storage),
            build_settings=settings_from_config(config),
            authentication=auth,
            secrets_dir=config.data_dir.secrets,
            config_file=config.config_file,
            session_secret=server.secret_key
            or load_or_create_secret(config.data_dir.secrets, SESSION_SECRET),
            setting_defaults=defaults_from_config(config.conda_store),
        )

    async def close(self) -> None:
        await self.db.close()
