"""Loading Kiln's configuration: defaults, conda-store files, environment, errors."""

from __future__ import annotations

import logging
import sys
import textwrap
from pathlib import Path

import pytest

from appliance.common.errors import ConfigurationError
from appliance.common.paths import DataDir
from appliance.config import (
    DummyAuthentication,
    GenericOAuthAuthentication,
    InvalidConfiguration,
    JupyterHubOAuthAuthentication,
    KilnConfig,
    LocalAccountAuthentication,
    LocalStorage,
    S3Storage,
    load_config,
)
from appliance.config.base import ENV, MASK, OBSOLETE, SECRET, ordered_traits
from appliance.config.catalog import CLASSES
from appliance.config.platforms import current_platform

#: A configuration file as conda-store deployments write them (docker-compose / nebari style).
CONDA_STORE_CONFIG = """\
import logging

from conda_store_server import schema
from conda_store_server.server.auth import JupyterHubOAuthAuthentication
from conda_store_server.storage import S3Storage

# ==================================
#      conda-store settings
# ==================================
c.CondaStore.storage_class = S3Storage
c.CondaStore.store_directory = "/opt/conda-store/conda-store/"
c.CondaStore.environment_directory = "/opt/conda-store/envs/{namespace}-{name}"
c.CondaStore.database_url = "postgresql+psycopg2://postgres:password@postgres/conda-store"
c.CondaStore.redis_url = "redis://:password@redis:6379/0"
c.CondaStore.celery_broker_url = "redis://:password@redis:6379/0"
c.CondaStore.celery_results_backend = "redis://:password@redis:6379/0"
c.CondaStore.conda_command = "mamba"
c.CondaStore.default_uid = 1000
c.CondaStore.default_gid = 100
c.CondaStore.default_permissions = "775"
c.CondaStore.conda_included_packages = ["ipykernel"]
c.CondaStore.conda_allowed_channels = ["main", "conda-forge"]
c.CondaStore.build_artifacts = [
    schema.BuildArtifactType.LOCKFILE,
    schema.BuildArtifactType.YAML,
    schema.BuildArtifactType.CONDA_PACK,
    schema.BuildArtifactType.CONSTRUCTOR_INSTALLER,
]

c.S3Storage.internal_endpoint = "minio:9000"
c.S3Storage.internal_secure = False
c.S3Storage.external_endpoint = "localhost:30900"
c.S3Storage.external_secure = False
c.S3Storage.access_key = "admin"
c.S3Storage.secret_key = "s3-very-secret"
c.S3Storage.region = "us-east-1"
c.S3Storage.bucket_name = "conda-store"

# ==================================
#        server settings
# ==================================
c.CondaStoreServer.log_level = logging.INFO
c.CondaStoreServer.enable_ui = True
c.CondaStoreServer.enable_api = True
c.CondaStoreServer.enable_registry = True
c.CondaStoreServer.enable_metrics = True
c.CondaStoreServer.address = "0.0.0.0"
c.CondaStoreServer.port = 8080
c.CondaStoreServer.url_prefix = "/conda-store/"
c.CondaStoreServer.behind_proxy = True

# ==================================
#         auth settings
# ==================================
c.CondaStoreServer.authentication_class = JupyterHubOAuthAuthentication
c.JupyterHubOAuthAuthentication.jupyterhub_url = "https://jupyterhub.example.org"
c.JupyterHubOAuthAuthentication.client_id = "service-this-is-a-jupyterhub-client"
c.JupyterHubOAuthAuthentication.client_secret = "hub-very-secret"
c.JupyterHubOAuthAuthentication.access_scope = "openid"

c.RBACAuthorizationBackend.role_mappings_version = 2
c.RBACAuthorizationBackend.role_mappings = {
    "viewer": {schema.Permissions.ENVIRONMENT_READ, schema.Permissions.NAMESPACE_READ},
    "developer": {
        schema.Permissions.ENVIRONMENT_CREATE,
        schema.Permissions.ENVIRONMENT_READ,
        schema.Permissions.ENVIRONMENT_UPDATE,
    },
    "admin": {schema.Permissions.ENVIRONMENT_DELETE, schema.Permissions.ENVIRONMENT_READ},
}
c.RBACAuthorizationBackend.authenticated_role_bindings = {
    "default/*": {"viewer"},
    "filesystem/*": {"viewer"},
}

# ==================================
#         worker settings
# ==================================
c.CondaStoreWorker.log_level = logging.INFO
c.CondaStoreWorker.watch_paths = ["/opt/environments"]
c.CondaStoreWorker.concurrency = 4
"""


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


def write(directory: Path, text: str, name: str = "kiln_config.py") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(data_dir: Path, text: str | None = None, **kwargs: object) -> KilnConfig:
    path = write(data_dir.parent, text, "config.py") if text is not None else None
    environ = kwargs.pop("environ", {})
    return load_config(path, data_dir, environ=environ, **kwargs)  # type: ignore[arg-type]


# --- defaults ---------------------------------------------------------------------------------


def test_defaults_live_in_the_data_dir(data_dir: Path) -> None:
    config = load(data_dir)

    assert config.data_dir == DataDir(data_dir)
    assert config.config_file is None
    assert config.conda_store.store_directory == str(data_dir / "store")
    assert config.builder.package_cache_directory == str(data_dir / "pkgs")
    assert config.builder.repodata_cache_directory == str(data_dir / "cache" / "repodata")
    assert isinstance(config.storage, LocalStorage)
    assert config.storage.storage_path == str(data_dir / "storage")
    assert config.source_of("CondaStore", "store_directory") == "default"


def test_kiln_defaults_that_differ_from_conda_store(data_dir: Path) -> None:
    config = load(data_dir)

    assert config.server.port == 5000
    assert config.server.max_page_size == 100
    assert config.server.enable_registry is True
    assert config.conda_store.default_namespace == "default"
    assert config.conda_store.conda_channel_alias == "https://conda.anaconda.org"
    assert config.conda_store.conda_allowed_channels == ["conda-forge"]
    assert config.conda_store.conda_solve_platforms == [current_platform()]
    assert config.conda_store.build_artifacts == [
        "LOGS",
        "LOCKFILE",
        "YAML",
        "CONDA_PACK",
        "OCI_IMAGE",
    ]
    assert config.authorization_backend.unauthenticated_role_bindings == {}
    assert isinstance(config.authentication, LocalAccountAuthentication)
    assert config.conda_store.default_uid is None
    assert config.conda_store.default_permissions == "775"


def test_virtual_packages_are_explicit_per_platform(data_dir: Path) -> None:
    config = load(data_dir)

    assert config.builder.virtual_packages_for("linux-64") == [
        "__unix=0=0",
        "__linux=5.10=0",
        "__glibc=2.28=0",
        "__archspec=1=x86_64",
    ]
    assert "__osx=11.0=0" in config.builder.virtual_packages_for("osx-arm64")
    assert config.builder.virtual_packages_for("linux-s390x") == []


def test_the_data_dir_config_file_is_used_when_no_file_is_given(data_dir: Path) -> None:
    write(data_dir, 'c.CondaStore.default_namespace = "team"\n')

    config = load_config(None, data_dir, environ={})

    assert config.conda_store.default_namespace == "team"
    assert config.config_file == data_dir / "kiln_config.py"
    assert config.source_of("CondaStore", "default_namespace") == f"file {data_dir}/kiln_config.py"


def test_relative_paths_are_taken_relative_to_the_data_dir(data_dir: Path) -> None:
    config = load(
        data_dir,
        """
        c.CondaStore.store_directory = "envs"
        c.LocalStorage.storage_path = "~/artifacts"
        c.CondaStoreWorker.watch_paths = ["specs"]
        """,
    )

    assert config.conda_store.store_directory == str(data_dir / "envs")
    assert config.local_storage.storage_path == str(Path.home() / "artifacts")
    assert config.worker.watch_paths == [str(data_dir / "specs")]


# --- a conda-store configuration file ---------------------------------------------------------


def test_a_conda_store_config_file_loads_unchanged(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    modules_before = set(sys.modules)
    with caplog.at_level(logging.WARNING, logger="appliance.config"):
        config = load(data_dir, CONDA_STORE_CONFIG)

    assert isinstance(config.storage, S3Storage)
    assert config.storage is config.s3_storage
    assert config.s3_storage.internal_endpoint == "minio:9000"
    assert config.s3_storage.internal_secure is False
    assert config.s3_storage.external_endpoint == "localhost:30900"
    assert config.s3_storage.secret_key == "s3-very-secret"
    assert config.conda_store.store_directory == "/opt/conda-store/conda-store"
    assert (config.conda_store.database_url or "").startswith("postgresql+psycopg2://")
    assert config.conda_store.default_uid == 1000
    assert config.conda_store.conda_allowed_channels == ["main", "conda-forge"]
    assert config.conda_store.build_artifacts == ["LOGS", "LOCKFILE", "YAML", "CONDA_PACK"]
    assert config.server.log_level == "INFO"
    assert config.server.port == 8080
    assert config.server.url_prefix == "/conda-store"
    assert isinstance(config.authentication, JupyterHubOAuthAuthentication)
    assert config.authentication.authorize_url == (
        "https://jupyterhub.example.org/hub/api/oauth2/authorize"
    )
    assert config.authorization_backend.role_mappings["developer"] == [
        "environment::create",
        "environment::read",
        "environment::update",
    ]
    assert config.authorization_backend.authenticated_role_bindings == {
        "default/*": ["viewer"],
        "filesystem/*": ["viewer"],
    }
    assert config.worker.concurrency == 4
    # The conda_store_server names existed only inside the file.
    assert not {name for name in set(sys.modules) - modules_before if "conda_store" in name}
    assert "conda_store_server" not in sys.modules


def test_obsolete_options_are_logged_once_with_the_reason(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="appliance.config"):
        config = load(data_dir, CONDA_STORE_CONFIG)
        # Instantiating more sections must not repeat the warnings.
        config.section(DummyAuthentication)

    messages = [record.getMessage() for record in caplog.records]
    broker = [m for m in messages if "CondaStore.celery_broker_url is ignored" in m]
    assert len(broker) == 1
    assert "Procrastinate" in broker[0]
    line = 1 + CONDA_STORE_CONFIG.splitlines().index(
        'c.CondaStore.celery_broker_url = "redis://:password@redis:6379/0"'
    )
    assert f"config.py:{line}: " in broker[0]  # file and line of the assignment
    assert any("CondaStore.conda_command is ignored" in m and "py-rattler" in m for m in messages)
    assert any("RBACAuthorizationBackend.role_mappings_version is ignored" in m for m in messages)
    assert any("CONSTRUCTOR_INSTALLER is ignored" in m for m in messages)
    assert all(problem.severity == "warning" for problem in config.problems)


def test_storage_class_accepts_names_dotted_paths_and_classes(data_dir: Path) -> None:
    for value in ('"S3Storage"', '"conda_store_server.storage.S3Storage"', "S3Storage"):
        config = load(
            data_dir,
            f"""
            from appliance.config.storage import S3Storage
            c.CondaStore.storage_class = {value}
            c.S3Storage.internal_endpoint = "s3:9000"
            """,
        )
        assert type(config.storage) is S3Storage, value


def test_an_unknown_storage_class_names_the_allowed_ones(data_dir: Path) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load(data_dir, 'c.CondaStore.storage_class = "GCSStorage"\n')

    message = raised.value.message
    assert "CondaStore.storage_class" in message
    assert "LocalStorage" in message and "conda_store_server.storage.S3Storage" in message


def test_authentication_class_accepts_conda_store_dotted_paths(data_dir: Path) -> None:
    config = load(
        data_dir,
        """
        c.CondaStoreServer.authentication_class = (
            "conda_store_server.server.auth.DummyAuthentication")
        c.Authentication.cookie_name = "kiln"
        """,
    )

    assert type(config.authentication) is DummyAuthentication
    assert config.authentication.cookie_name == "kiln"
    assert config.source_of(config.authentication, "cookie_name").startswith("file ")


def test_a_custom_authentication_class_defined_in_the_file_is_configured(data_dir: Path) -> None:
    config = load(
        data_dir,
        """
        from conda_store_server.server.auth import GenericOAuthAuthentication

        class KeycloakAuthentication(GenericOAuthAuthentication):
            pass

        c.CondaStoreServer.authentication_class = KeycloakAuthentication
        c.KeycloakAuthentication.client_id = "kiln"
        c.KeycloakAuthentication.authorize_url = "https://sso/auth"
        c.KeycloakAuthentication.access_token_url = "https://sso/token"
        """,
    )

    assert type(config.authentication).__name__ == "KeycloakAuthentication"
    assert isinstance(config.authentication, GenericOAuthAuthentication)
    assert config.authentication.client_id == "kiln"


def test_log_levels_accept_logging_constants(data_dir: Path) -> None:
    config = load(data_dir, "import logging\nc.CondaStoreWorker.log_level = logging.DEBUG\n")

    assert config.worker.log_level == "DEBUG"


def test_sqlite_database_urls_fall_back_to_managed_postgres(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="appliance.config"):
        config = load(data_dir, 'c.CondaStore.database_url = "sqlite:///conda-store.sqlite"\n')

    assert config.conda_store.database_url is None
    assert "Kiln cannot use SQLite" in caplog.text

    with pytest.raises(ConfigurationError, match=r"CondaStore\.database_url.*PostgreSQL"):
        load(data_dir, 'c.CondaStore.database_url = "mysql://u:p@db/cs"\n')


# --- environment variables --------------------------------------------------------------------


def test_environment_variables_override_the_file_and_are_reported(data_dir: Path) -> None:
    config = load(
        data_dir,
        "c.CondaStoreServer.port = 6000\nc.CondaStore.database_url = 'postgresql://a@b/c'\n",
        environ={"KILN_PORT": "7000", "KILN_DATABASE_URL": "postgresql://kiln:pw@db/kiln"},
    )

    assert config.server.port == 7000
    assert config.source_of("CondaStoreServer", "port") == "environment KILN_PORT"
    assert config.conda_store.database_url == "postgresql://kiln:pw@db/kiln"
    assert config.source_of("CondaStore", "database_url") == "environment KILN_DATABASE_URL"


def test_a_bad_environment_value_names_the_variable(data_dir: Path) -> None:
    with pytest.raises(InvalidConfiguration) as raised:
        load(data_dir, environ={"KILN_PORT": "http"})

    assert "KILN_PORT" in raised.value.message
    assert "CondaStoreServer.port" in raised.value.message


def test_a_secret_from_the_environment_is_never_echoed(data_dir: Path) -> None:
    config = load(data_dir, environ={"KILN_S3_SECRET_KEY": "from-env"})

    assert config.s3_storage.secret_key == "from-env"
    assert config.source_of(S3Storage, "secret_key") == "environment KILN_S3_SECRET_KEY"


# --- errors -----------------------------------------------------------------------------------


def test_a_syntax_error_names_file_and_line(data_dir: Path) -> None:
    with pytest.raises(InvalidConfiguration) as raised:
        load(data_dir, 'c.CondaStore.default_namespace = "x"\n\nc.CondaStoreServer.port = (5000\n')

    problem = raised.value.problems[0]
    assert problem.line == 3
    assert problem.file == data_dir.parent / "config.py"
    assert "syntax error" in raised.value.message
    assert f"{data_dir.parent / 'config.py'}:3:" in raised.value.message


def test_an_exception_in_the_file_names_file_and_line(data_dir: Path) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load(data_dir, "c.CondaStoreServer.port = 5000\nc.CondaStore.x = 1 / 0\n")

    assert ":2:" in raised.value.message
    assert "ZeroDivisionError" in raised.value.message


def test_a_missing_config_file_is_an_error(data_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_config(data_dir / "nope.py", data_dir, environ={})


def test_bad_values_name_the_option_and_what_is_allowed(data_dir: Path) -> None:
    with pytest.raises(InvalidConfiguration) as raised:
        load(
            data_dir,
            """
            c.CondaStoreServer.port = "5000x"
            c.AuthenticationBackend.jwt_algorithm = "RS256"
            c.CondaStore.build_artifacts = ["LOGS", "WHEEL"]
            c.CondaStore.conda_solve_platforms = ["linux-65"]
            c.CondaStore.default_permissions = "rwx"
            """,
        )

    by_option = {problem.option: problem for problem in raised.value.problems}
    assert "expected an int" in by_option["CondaStoreServer.port"].message
    assert by_option["CondaStoreServer.port"].line == 2
    assert "HS256" in by_option["AuthenticationBackend.jwt_algorithm"].message
    assert "OCI_IMAGE" in by_option["CondaStore.build_artifacts"].message
    assert "linux-64" in by_option["CondaStore.conda_solve_platforms"].message
    assert "octal" in by_option["CondaStore.default_permissions"].message
    assert "5 problems" in raised.value.message


def test_a_bad_secret_value_is_not_echoed(data_dir: Path) -> None:
    with pytest.raises(InvalidConfiguration) as raised:
        load(data_dir, "c.S3Storage.secret_key = 123456789\n")

    assert "S3Storage.secret_key" in raised.value.message
    assert "123456789" not in raised.value.message
    assert MASK in raised.value.message


def test_unknown_options_warn_with_a_suggestion_or_fail_when_strict(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = 'c.CondaStore.store_directry = "/x"\n'
    with caplog.at_level(logging.WARNING, logger="appliance.config"):
        config = load(data_dir, text)
    assert "did you mean CondaStore.store_directory?" in caplog.text
    assert config.conda_store.store_directory == str(data_dir / "store")

    with pytest.raises(InvalidConfiguration, match=r"unknown option CondaStore\.store_directry"):
        load(data_dir, text, strict=True)


def test_role_bindings_must_use_known_roles_and_patterns(data_dir: Path) -> None:
    with pytest.raises(InvalidConfiguration, match="unknown role"):
        load(data_dir, 'c.AuthorizationBackend.authenticated_role_bindings = {"*/*": ["root"]}\n')
    with pytest.raises(InvalidConfiguration, match="namespace>/<environment"):
        load(data_dir, 'c.AuthorizationBackend.authenticated_role_bindings = {"x": ["viewer"]}\n')

    config = load(
        data_dir,
        'c.AuthorizationBackend.unauthenticated_role_bindings = {"default/*": {"developer"}}\n',
    )
    assert config.authorization_backend.unauthenticated_role_bindings == {
        "default/*": ["developer"]
    }


def test_s3_storage_needs_an_endpoint(data_dir: Path) -> None:
    with pytest.raises(InvalidConfiguration, match=r"S3Storage\.internal_endpoint must be set"):
        load(data_dir, 'c.CondaStore.storage_class = "S3Storage"\n')
    with pytest.raises(InvalidConfiguration, match="without a scheme"):
        load(data_dir, 'c.S3Storage.internal_endpoint = "https://s3"\n')


# --- the classes themselves -------------------------------------------------------------------


SECRETS = {
    ("CondaStore", "database_url"),
    ("CondaStoreServer", "secret_key"),
    ("S3Storage", "secret_key"),
    ("AuthenticationBackend", "secret"),
    ("GenericOAuthAuthentication", "client_secret"),
    ("DummyAuthentication", "password"),
}


def test_secrets_are_marked_for_masking() -> None:
    marked = {
        (cls.__name__, name)
        for cls in CLASSES
        for name, trait in cls.class_own_traits(config=True).items()
        if trait.metadata.get(SECRET)
    }
    assert marked >= SECRETS


def test_every_option_has_a_manual_entry_with_an_example() -> None:
    for cls in CLASSES:
        for name, trait in ordered_traits(cls, own=True).items():
            help_text = trait.help or ""
            assert len(help_text.split()) >= 5, f"{cls.__name__}.{name} has no real help"
            assert f".{name} = " in help_text or f".{name}." in help_text, (
                f"{cls.__name__}.{name}: help has no example line"
            )
            variable = trait.metadata.get(ENV)
            if variable:
                assert variable.startswith("KILN_")
                assert variable in help_text, f"{cls.__name__}.{name}: {variable} undocumented"
            if trait.metadata.get(OBSOLETE):
                assert "Ignored" in help_text


def test_the_config_layer_imports_nothing_above_it() -> None:
    import appliance.config.loader as loader_module

    source = Path(loader_module.__file__).parent
    for module in source.glob("*.py"):
        text = module.read_text(encoding="utf-8")
        for layer in ("appliance.builder", "appliance.storage", "appliance.cli", "litestar"):
            assert f"import {layer}" not in text and f"from {layer}" not in text, module


def test_the_ui_without_the_api_is_a_warning_naming_what_breaks(data_dir: Path) -> None:
    config = load(data_dir, "c.CondaStoreServer.enable_api = False\n")
    warnings = [p.message for p in config.problems if p.option == "CondaStoreServer.enable_api"]
    assert len(warnings) == 1
    assert "downloads" in warnings[0] and "enable_ui" in warnings[0]
    both_off = load(
        data_dir, "c.CondaStoreServer.enable_api = False\nc.CondaStoreServer.enable_ui = False\n"
    )
    assert not [p for p in both_off.problems if p.option == "CondaStoreServer.enable_api"]
