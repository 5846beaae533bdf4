"""``conda_store_server.*`` names for conda-store configuration files loaded by Kiln.

conda-store files often start with ``from conda_store_server.storage import S3Storage`` or
``from conda_store_server.server.auth import JupyterHubOAuthAuthentication``. When Kiln
executes a configuration file, the file's ``import`` statements see a small set of stand-in
modules under ``conda_store_server`` whose names are Kiln's configurable classes (and
conda-store's ``BuildArtifactType``/``Permissions`` enums). Only code in the configuration file
sees them: they are provided through the file's own ``__builtins__.__import__``, never put in
``sys.modules``, so nothing else in the process (nor an installed conda-store) is affected.
"""

from __future__ import annotations

import builtins
import enum
import types
from collections.abc import Callable, Mapping
from typing import Any

from appliance.config.auth import (
    Authentication,
    AuthenticationBackend,
    AuthorizationBackend,
    DummyAuthentication,
    GenericOAuthAuthentication,
    GithubOAuthAuthentication,
    JupyterHubOAuthAuthentication,
    LocalAccountAuthentication,
    RBACAuthorizationBackend,
)
from appliance.config.obsolete import ContainerRegistry
from appliance.config.server import CondaStoreServer
from appliance.config.storage import LocalStorage, S3Storage, Storage
from appliance.config.store import CondaStore
from appliance.config.worker import CondaStoreWorker

ROOT = "conda_store_server"


class BuildArtifactType(enum.Enum):
    """conda-store's artifact enum (plus Kiln's OCI_IMAGE); members are accepted by value."""

    DIRECTORY = "DIRECTORY"
    LOCKFILE = "LOCKFILE"
    LOGS = "LOGS"
    YAML = "YAML"
    CONDA_PACK = "CONDA_PACK"
    DOCKER_BLOB = "DOCKER_BLOB"
    DOCKER_MANIFEST = "DOCKER_MANIFEST"
    CONTAINER_REGISTRY = "CONTAINER_REGISTRY"
    CONSTRUCTOR_INSTALLER = "CONSTRUCTOR_INSTALLER"
    OCI_IMAGE = "OCI_IMAGE"


class Permissions(enum.Enum):
    """conda-store's permission enum, with its values (including "environment:create")."""

    ENVIRONMENT_CREATE = "environment:create"
    ENVIRONMENT_READ = "environment::read"
    ENVIRONMENT_UPDATE = "environment::update"
    ENVIRONMENT_DELETE = "environment::delete"
    ENVIRONMENT_SOLVE = "environment::solve"
    BUILD_CANCEL = "build::cancel"
    BUILD_DELETE = "build::delete"
    NAMESPACE_CREATE = "namespace::create"
    NAMESPACE_READ = "namespace::read"
    NAMESPACE_UPDATE = "namespace::update"
    NAMESPACE_DELETE = "namespace::delete"
    NAMESPACE_ROLE_MAPPING_CREATE = "namespace-role-mapping::create"
    NAMESPACE_ROLE_MAPPING_READ = "namespace-role-mapping::read"
    NAMESPACE_ROLE_MAPPING_UPDATE = "namespace-role-mapping::update"
    NAMESPACE_ROLE_MAPPING_DELETE = "namespace-role-mapping::delete"
    SETTING_READ = "setting::read"
    SETTING_UPDATE = "setting::update"


_AUTH: dict[str, object] = {
    "AuthenticationBackend": AuthenticationBackend,
    "AuthorizationBackend": AuthorizationBackend,
    "RBACAuthorizationBackend": RBACAuthorizationBackend,
    "Authentication": Authentication,
    "LocalAccountAuthentication": LocalAccountAuthentication,
    "DummyAuthentication": DummyAuthentication,
    "GenericOAuthAuthentication": GenericOAuthAuthentication,
    "GithubOAuthAuthentication": GithubOAuthAuthentication,
    "JupyterHubOAuthAuthentication": JupyterHubOAuthAuthentication,
    "Permissions": Permissions,
}
_SCHEMA: dict[str, object] = {"BuildArtifactType": BuildArtifactType, "Permissions": Permissions}

#: Module name -> the names it provides. Parent packages are created automatically.
MODULES: Mapping[str, Mapping[str, object]] = {
    ROOT: {},
    f"{ROOT}.app": {"CondaStore": CondaStore},
    f"{ROOT}.storage": {"Storage": Storage, "LocalStorage": LocalStorage, "S3Storage": S3Storage},
    f"{ROOT}.schema": _SCHEMA,
    f"{ROOT}.registry": {"ContainerRegistry": ContainerRegistry},
    f"{ROOT}.server.auth": _AUTH,
    f"{ROOT}.server.app": {"CondaStoreServer": CondaStoreServer},
    f"{ROOT}.worker.app": {"CondaStoreWorker": CondaStoreWorker},
    f"{ROOT}._internal.schema": _SCHEMA,
    f"{ROOT}._internal.server.app": {"CondaStoreServer": CondaStoreServer},
    f"{ROOT}._internal.worker.app": {"CondaStoreWorker": CondaStoreWorker},
}

ImportFunction = Callable[..., types.ModuleType]


def _build_modules() -> dict[str, types.ModuleType]:
    modules: dict[str, types.ModuleType] = {}
    for name in sorted(MODULES, key=lambda item: item.count(".")):
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            prefix = ".".join(parts[:depth])
            if prefix not in modules:
                module = types.ModuleType(prefix, f"Kiln's stand-in for conda-store's {prefix}")
                module.__path__ = []  # a package, so submodule imports are attempted
                modules[prefix] = module
                if depth > 1:
                    setattr(modules[".".join(parts[: depth - 1])], parts[depth - 1], module)
        for attribute, value in MODULES[name].items():
            setattr(modules[name], attribute, value)
    return modules


def provided_names() -> list[str]:
    """Every ``module.Name`` the stand-in modules provide (for error messages and docs)."""
    return [f"{module}.{name}" for module, names in MODULES.items() for name in names]


def importer(real_import: ImportFunction = builtins.__import__) -> ImportFunction:
    """An ``__import__`` that answers ``conda_store_server`` imports with stand-in modules."""
    modules = _build_modules()

    def import_(
        name: str,
        globals: Mapping[str, Any] | None = None,
        locals: Mapping[str, Any] | None = None,
        fromlist: tuple[str, ...] | list[str] | None = (),
        level: int = 0,
    ) -> types.ModuleType:
        if level == 0 and (name == ROOT or name.startswith(ROOT + ".")):
            module = modules.get(name)
            if module is None:
                raise ModuleNotFoundError(
                    f"No module named {name!r} (Kiln's conda-store compatibility modules: "
                    f"{', '.join(name for name in MODULES if MODULES[name])})",
                    name=name,
                )
            return module if fromlist else modules[ROOT]
        return real_import(name, globals, locals, fromlist or (), level)

    return import_


def config_file_builtins() -> dict[str, Any]:
    """The ``__builtins__`` a configuration file is executed with."""
    namespace = dict(vars(builtins))
    namespace["__import__"] = importer()
    return namespace
