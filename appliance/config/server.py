"""``CondaStoreServer``: the web process (REST API, web UI, OCI registry, metrics)."""

from __future__ import annotations

from typing import Any

from traitlets import Bool, Integer, TraitError, Unicode, validate

from appliance.config.auth import (
    AUTHENTICATION_CLASSES,
    CONDA_STORE_AUTH_MODULES,
    Authentication,
    LocalAccountAuthentication,
)
from appliance.config.base import (
    DEFAULT_TEXT,
    ENV,
    SECRET,
    ClassChoice,
    KilnConfigurable,
    LogLevel,
    obsolete_option,
)


class CondaStoreServer(KilnConfigurable):
    """The web process (`kiln web`, started by `kiln serve`)."""

    log_level = LogLevel(
        "INFO",
        help="""
        Log level of the web process: DEBUG, INFO, WARNING, ERROR, CRITICAL (or
        logging.INFO etc., as conda-store files write it).

        Example: c.CondaStoreServer.log_level = "DEBUG"
        """,
    ).tag(config=True)

    address = Unicode(
        "0.0.0.0",
        help="""
        Address the web server listens on. "0.0.0.0" means every IPv4 interface; use
        "127.0.0.1" behind a local reverse proxy. Environment variable: KILN_ADDRESS.

        Example: c.CondaStoreServer.address = "127.0.0.1"
        """,
    ).tag(config=True, **{ENV: "KILN_ADDRESS"})

    port = Integer(
        5000,
        min=1,
        max=65535,
        help="""
        TCP port of the web server (the registry answers on the same port under /v2/).
        conda-store 2025 listens on 8080 by default; Kiln keeps its earlier 5000.
        Environment variable: KILN_PORT.

        Example: c.CondaStoreServer.port = 8080
        """,
    ).tag(config=True, **{ENV: "KILN_PORT"})

    url_prefix = Unicode(
        "/",
        help="""
        Path under which the API and UI are served, for proxies that publish Kiln under a
        sub-path. The registry is always at /v2/ (clients require it there).

        Example: c.CondaStoreServer.url_prefix = "/conda-store"
        """,
    ).tag(config=True)

    @validate("url_prefix")
    def _validate_url_prefix(self, proposal: Any) -> str:
        value: str = proposal.value
        if not value.startswith("/"):
            raise TraitError(
                f"CondaStoreServer.url_prefix: {value!r} must start with '/' (e.g. '/kiln')"
            )
        return "/" + value.strip("/") if value.strip("/") else "/"

    behind_proxy = Bool(
        False,
        help="""
        Trust X-Forwarded-For/-Proto/-Host headers (set it only when every request comes
        through your reverse proxy), so links and redirects use the public URL.

        Example: c.CondaStoreServer.behind_proxy = True
        """,
    ).tag(config=True)

    enable_ui = Bool(
        True,
        help="""
        Serve the web UI.

        Example: c.CondaStoreServer.enable_ui = False
        """,
    ).tag(config=True)

    enable_api = Bool(
        True,
        help="""
        Serve the REST API (the UI, the TUI and the conda-store client need it).

        Example: c.CondaStoreServer.enable_api = False
        """,
    ).tag(config=True)

    enable_registry = Bool(
        True,
        help="""
        Serve the OCI registry (/v2/) from which OCI_IMAGE artifacts are pulled. On by default
        in Kiln (conda-store's registry was deprecated and off).

        Example: c.CondaStoreServer.enable_registry = False
        """,
    ).tag(config=True)

    enable_metrics = Bool(
        True,
        help="""
        Serve Prometheus metrics at <url_prefix>/metrics.

        Example: c.CondaStoreServer.enable_metrics = False
        """,
    ).tag(config=True)

    registry_external_url = Unicode(
        "",
        help="""
        host[:port] that users pull images from, shown in image references
        ("<this>/<namespace>/<environment>:latest"). Empty means the host of the request.

        Example: c.CondaStoreServer.registry_external_url = "kiln.example.org"
        """,
    ).tag(config=True)

    @validate("registry_external_url")
    def _validate_registry_url(self, proposal: Any) -> str:
        value: str = proposal.value
        if "://" in value:
            raise TraitError(
                "CondaStoreServer.registry_external_url: give host[:port] without a scheme "
                f"(got {value!r})"
            )
        return value.rstrip("/")

    authentication_class = ClassChoice(
        LocalAccountAuthentication,
        klass=Authentication,
        choices=AUTHENTICATION_CLASSES,
        conda_store_modules=CONDA_STORE_AUTH_MODULES,
        help="""
        How users log in: "LocalAccountAuthentication" (Kiln's default: accounts stored in
        Kiln's database), "GenericOAuthAuthentication", "GithubOAuthAuthentication",
        "JupyterHubOAuthAuthentication", or "DummyAuthentication" (tests and demos only).
        Accepts the class, its short name or conda-store's dotted path
        ("conda_store_server.server.auth.JupyterHubOAuthAuthentication"). conda-store's
        default was DummyAuthentication, which made everyone an administrator.

        Example: c.CondaStoreServer.authentication_class = "GithubOAuthAuthentication"
        """,
    ).tag(config=True)

    secret_key = Unicode(
        None,
        allow_none=True,
        help="""
        Secret that signs the web session (OAuth state, CSRF protection). Unset means a
        random key generated once and kept in <data dir>/secrets/ (0600). Set the same value
        on every host when web processes on several hosts do not share the data dir.

        Example: c.CondaStoreServer.secret_key = open("/run/secrets/kiln-session").read().strip()
        """,
    ).tag(
        config=True, **{SECRET: True, DEFAULT_TEXT: "generated once, kept in <data dir>/secrets/"}
    )

    max_page_size = Integer(
        100,
        min=1,
        help="""
        Largest page size a list endpoint returns (the "size" query parameter is capped to it).

        Example: c.CondaStoreServer.max_page_size = 500
        """,
    ).tag(config=True)

    # --- accepted for compatibility, ignored -----------------------------------------------

    reload = obsolete_option(
        "Kiln has no auto-reload mode",
        """
        conda-store's development auto-reload. Ignored.

        Example: c.CondaStoreServer.reload = False
        """,
    )

    standalone = obsolete_option(
        "`kiln serve` always runs web and workers together; `kiln web` and `kiln worker` run "
        "one role each",
        """
        conda-store's all-in-one mode. Ignored.

        Example: c.CondaStoreServer.standalone = True
        """,
    )

    config_file = obsolete_option(
        "pass --config FILE to kiln, or put kiln_config.py in the data dir",
        """
        conda-store's configuration file option. Ignored.

        Example: c.CondaStoreServer.config_file = "conda_store_config.py"
        """,
    )

    templates = obsolete_option(
        "Kiln's UI is not built from Jinja templates",
        """
        conda-store's Jinja template loader. Ignored.

        Example: c.CondaStoreServer.templates = None
        """,
    )

    template_vars = obsolete_option(
        "Kiln's UI is not built from Jinja templates",
        """
        Variables for conda-store's Jinja templates. Ignored.

        Example: c.CondaStoreServer.template_vars = {}
        """,
    )

    additional_routes = obsolete_option(
        "Kiln runs no user code in its web process",
        """
        conda-store's extra FastAPI routes. Ignored.

        Example: c.CondaStoreServer.additional_routes = []
        """,
    )

    cors_allow_origins = obsolete_option(
        "Kiln's API is same-origin only; add CORS headers in a reverse proxy if needed",
        """
        conda-store's CORS origins. Ignored.

        Example: c.CondaStoreServer.cors_allow_origins = ["https://app.example.org"]
        """,
    )

    cors_allow_origin_regex = obsolete_option(
        "Kiln's API is same-origin only; add CORS headers in a reverse proxy if needed",
        """
        conda-store's CORS origin pattern. Ignored.

        Example: c.CondaStoreServer.cors_allow_origin_regex = ".*"
        """,
    )
