"""Load Kiln's configuration: a traitlets Python file, ``KILN_*`` variables, the data dir.

Precedence, lowest to highest: the defaults of the classes (some computed from the data dir),
the configuration file, environment variables named in the options' help. The result is a
:class:`KilnConfig` holding one instance of each configurable class, plus where every value
came from.

Problems are collected rather than raised one at a time, so that ``kiln config verify`` can
report them all and ``load_config`` can name every bad option in one error:

- errors: a file that does not run (syntax error, exception; with file and line), a value of the
  wrong type or outside the allowed values, settings that cannot work together;
- warnings: options and classes Kiln does not know (an error under ``strict``), conda-store
  options and values that Kiln accepts and ignores (with the reason).
"""

from __future__ import annotations

import ast
import difflib
import logging
import os
import types
from collections.abc import Iterable, Mapping
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from traitlets import Bool, Integer, TraitError, TraitType, Unicode
from traitlets.config import Config, Configurable
from traitlets.config.loader import ConfigFileNotFound, LazyConfigValue, PyFileConfigLoader

from appliance.common.errors import ConfigurationError
from appliance.common.paths import DataDir, default_data_dir
from appliance.config.auth import (
    Authentication,
    AuthenticationBackend,
    AuthorizationBackend,
    GenericOAuthAuthentication,
    JupyterHubOAuthAuthentication,
)
from appliance.config.base import (
    ENV,
    FOLLOWS,
    MASK,
    OBSOLETE,
    SECRET,
    ClassChoice,
    KilnConfigurable,
)
from appliance.config.builder import Builder
from appliance.config.catalog import CLASSES, CLASSES_BY_NAME
from appliance.config.compat import config_file_builtins, provided_names
from appliance.config.images import Images
from appliance.config.platforms import current_platform
from appliance.config.postgres import ManagedPostgres
from appliance.config.server import CondaStoreServer
from appliance.config.storage import LocalStorage, S3Storage, Storage
from appliance.config.store import CondaStore
from appliance.config.supervisor import Supervisor
from appliance.config.worker import CondaStoreWorker

log = logging.getLogger("appliance.config")

C = TypeVar("C", bound=Configurable)

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with (or worth knowing about) a configuration."""

    severity: Severity
    message: str
    #: ``Class.option`` the problem is about, when there is one.
    option: str | None = None
    file: Path | None = None
    line: int | None = None

    @property
    def where(self) -> str:
        """``file:line: `` (or ``file: ``, or nothing) to put before the message."""
        if self.file is None:
            return ""
        return f"{self.file}:{self.line}: " if self.line else f"{self.file}: "

    def __str__(self) -> str:
        return f"{self.where}{self.severity}: {self.message}"


class InvalidConfiguration(ConfigurationError):
    """The configuration has errors; ``problems`` lists each (file, line, option, message)."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        errors = [problem for problem in self.problems if problem.severity == "error"]
        if len(errors) == 1:
            message = str(errors[0])
        else:
            message = f"{len(errors)} problems in the configuration:\n" + "\n".join(
                f"  {problem}" for problem in errors
            )
        super().__init__(message)


@dataclass(frozen=True)
class Origin:
    """Where a value was set: a file (and line) or an environment variable."""

    file: Path | None = None
    line: int | None = None
    env: str | None = None

    @property
    def source(self) -> str:
        if self.env:
            return f"environment {self.env}"
        return f"file {self.file}"

    def problem(self, severity: Severity, message: str, option: str | None = None) -> Problem:
        if self.env:
            message = f"environment variable {self.env}: {message}"
        return Problem(severity, message, option=option, file=self.file, line=self.line)


# --- reading a configuration file -------------------------------------------------------------


@dataclass(frozen=True)
class ConfigFile:
    """A configuration file after it ran: its traitlets ``Config`` and where options were set."""

    path: Path
    config: Config
    #: ``(Class, option)`` -> line of the (last) statement that sets it.
    lines: Mapping[tuple[str, str], int] = field(default_factory=dict)


class _KilnPyFileConfigLoader(PyFileConfigLoader):
    """traitlets' Python file loader, running the file with the conda-store stand-in modules."""

    def _read_file_as_dict(self) -> None:
        def get_config() -> Config:
            return self.config

        namespace: dict[str, Any] = {
            "c": self.config,
            "load_subconfig": self.load_subconfig,
            "get_config": get_config,
            "__file__": self.full_filename,
            "__name__": "kiln_config",
            "__builtins__": config_file_builtins(),
        }
        with open(self.full_filename, "rb") as source:
            code = compile(source.read(), self.full_filename, "exec")
        exec(code, namespace, namespace)


def read_config_file(path: Path) -> ConfigFile:
    """Run the configuration file at ``path`` and return what it set.

    Raises :class:`InvalidConfiguration` (a ``ConfigurationError``) naming the file and line
    when the file does not exist, does not compile or raises.
    """
    path = Path(os.path.abspath(os.path.expanduser(path)))
    if not path.is_file():
        raise InvalidConfiguration(
            [Problem("error", "configuration file does not exist (or is not a file)", file=path)]
        )
    loader = _KilnPyFileConfigLoader(path.name, str(path.parent), log=log)
    try:
        config = loader.load_config()
    except SyntaxError as error:
        where = Path(error.filename) if error.filename else path
        raise InvalidConfiguration(
            [Problem("error", f"syntax error: {error.msg}", file=where, line=error.lineno)]
        ) from None
    except ConfigFileNotFound as error:
        raise InvalidConfiguration([Problem("error", str(error), file=path)]) from None
    except (Exception, SystemExit) as error:  # the file is arbitrary code
        where, line = _failing_line(error.__traceback__, path)
        message = f"{type(error).__name__}: {error}"
        module = getattr(error, "name", None) or ""
        if isinstance(error, ImportError) and not isinstance(error, ModuleNotFoundError):
            names = [name for name in provided_names() if name.rpartition(".")[0] == module]
            if names:
                message += (
                    f" (Kiln's {module} provides {', '.join(n.rpartition('.')[2] for n in names)})"
                )
        raise InvalidConfiguration([Problem("error", message, file=where, line=line)]) from None
    try:
        lines = assignment_lines(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        lines = {}
    return ConfigFile(path=path, config=config, lines=lines)


def _failing_line(
    traceback: types.TracebackType | None, default_file: Path
) -> tuple[Path, int | None]:
    """The innermost frame that ran configuration-file code (the file, or a subconfig)."""
    found: tuple[Path, int | None] = (default_file, None)
    while traceback is not None:
        frame_globals = traceback.tb_frame.f_globals
        if isinstance(frame_globals.get("c"), Config) and "load_subconfig" in frame_globals:
            found = (Path(traceback.tb_frame.f_code.co_filename), traceback.tb_lineno)
        traceback = traceback.tb_next
    return found


def _config_target(node: ast.expr) -> tuple[str, str] | None:
    while isinstance(node, ast.Subscript):
        node = node.value
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "c"
    ):
        return node.value.attr, node.attr
    return None


def assignment_lines(source: str) -> dict[tuple[str, str], int]:
    """Find ``c.Class.option = ...`` (and ``c.Class.option.append(...)``) statements' lines."""
    lines: dict[tuple[str, str], int] = {}
    for node in ast.walk(ast.parse(source)):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets, line = list(node.targets), node.lineno
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets, line = [node.target], node.lineno
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            targets, line = [node.func.value], node.lineno
        for target in targets:
            key = _config_target(target)
            if key is not None:
                lines[key] = max(lines.get(key, 0), line)
    return lines


# --- environment variables --------------------------------------------------------------------


def environment_options() -> dict[str, tuple[type[KilnConfigurable], str]]:
    """``KILN_*`` variable -> (class, option) for every option that documents one."""
    found: dict[str, tuple[type[KilnConfigurable], str]] = {}
    for cls in CLASSES:
        for name, trait in cls.class_own_traits(config=True).items():
            variable = trait.metadata.get(ENV)
            if variable:
                found[variable] = (cls, name)
    return found


def _from_environment(trait: TraitType[Any, Any], raw: str) -> Any:
    if isinstance(trait, Unicode):
        return raw
    if isinstance(trait, Integer):
        return int(raw.strip())
    if isinstance(trait, Bool):
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{raw!r} is not a boolean (use true or false)")
    return trait.from_string(raw)


# --- checking ---------------------------------------------------------------------------------


@dataclass
class _Entry:
    section: str
    key: str
    value: Any
    origin: Origin


def _suggest(word: str, candidates: Iterable[str]) -> str:
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {matches[0]}?)" if matches else ""


def _suggest_option(section: str, key: str, known: Mapping[str, type[KilnConfigurable]]) -> str:
    cls = known[section]
    matches = difflib.get_close_matches(key, list(cls.class_traits(config=True)), n=1, cutoff=0.6)
    if matches:
        return f" (did you mean {section}.{matches[0]}?)"
    elsewhere = [
        name for name, other in known.items() if key in other.class_own_traits(config=True)
    ]
    if elsewhere:
        return f" (did you mean {elsewhere[0]}.{key}?)"
    return ""


def _value_message(option: str, trait: TraitType[Any, Any], value: Any, error: Exception) -> str:
    message = str(error)
    if message.startswith(option):
        message = message[len(option) :].lstrip(": ")
    else:
        for marker in (" instance ", " instance. "):
            if marker in message and message.startswith("The "):
                message = message.split(marker, 1)[1]
                break
    if trait.metadata.get(SECRET) and value not in (None, ""):
        message = message.replace(repr(value), MASK)
        if isinstance(value, str):
            message = message.replace(value, MASK)
    return f"{option}: {message.rstrip('.')}"


class _Checker:
    """Validates entries against the known classes, option by option, collecting problems."""

    def __init__(self, data_dir: DataDir, *, strict: bool) -> None:
        self.data_dir = data_dir
        self.unknown: Severity = "error" if strict else "warning"
        self.known: dict[str, type[KilnConfigurable]] = dict(CLASSES_BY_NAME)
        self.problems: list[Problem] = []
        self.accepted: list[_Entry] = []
        self._probes: dict[str, KilnConfigurable] = {}

    def probe(self, section: str) -> KilnConfigurable:
        if section not in self._probes:
            cls = self.known[section]
            self._probes[section] = cls(data_dir=self.data_dir, log=log)
        return self._probes[section]

    def check(self, entries: list[_Entry]) -> None:
        later: list[_Entry] = []
        for entry in entries:
            if entry.section in self.known:
                self._check_entry(entry)
            else:
                later.append(entry)
        # Sections of custom classes named by storage_class/authentication_class are known now.
        reported: set[str] = set()
        for entry in later:
            if entry.section in self.known:
                self._check_entry(entry)
            elif not entry.section[:1].isupper():
                self.problems.append(
                    entry.origin.problem(
                        "error",
                        f"c.{entry.section} is not an option; options are set as "
                        "c.<Class>.<option>, e.g. c.CondaStore.store_directory",
                    )
                )
            elif entry.section not in reported:
                reported.add(entry.section)
                self.problems.append(
                    entry.origin.problem(
                        self.unknown,
                        f"unknown class {entry.section}{_suggest(entry.section, self.known)}",
                        option=entry.section,
                    )
                )

    def _check_entry(self, entry: _Entry) -> None:
        cls = self.known[entry.section]
        option = f"{entry.section}.{entry.key}"
        trait = cls.class_traits(config=True).get(entry.key)
        if isinstance(entry.value, Config) or (trait is None and entry.key[:1].isupper()):
            self.problems.append(
                entry.origin.problem(
                    "warning", f"nested section {option} is not used by Kiln", option=option
                )
            )
            return
        if trait is None:
            suggestion = _suggest_option(entry.section, entry.key, self.known)
            self.problems.append(
                entry.origin.problem(
                    self.unknown, f"unknown option {option}{suggestion}", option=option
                )
            )
            return
        reason = trait.metadata.get(OBSOLETE)
        if reason and entry.value is None:
            return  # "not set", as written by `kiln config generate`
        if reason:
            self.problems.append(
                entry.origin.problem("warning", f"{option} is ignored: {reason}", option=option)
            )
            self.accepted.append(entry)
            return
        probe = self.probe(entry.section)
        value = entry.value
        try:
            if isinstance(value, LazyConfigValue):
                value = value.get_value(getattr(probe, entry.key))
            setattr(probe, entry.key, deepcopy(value))
        except (TraitError, ValueError, TypeError) as error:
            self.problems.append(
                entry.origin.problem(
                    "error", _value_message(option, trait, value, error), option=option
                )
            )
            return
        for notice in cls.value_notices(entry.key, value):
            self.problems.append(entry.origin.problem("warning", notice, option=option))
        if isinstance(trait, ClassChoice):
            chosen = getattr(probe, entry.key)
            if isinstance(chosen, type) and issubclass(chosen, KilnConfigurable):
                self.known.setdefault(chosen.__name__, chosen)
        self.accepted.append(entry)


def _entries_from_config(config: Config, origin_for: Any) -> list[_Entry]:
    entries: list[_Entry] = []
    for section, values in config.items():
        if isinstance(values, Config):
            for key, value in values.items():
                entries.append(_Entry(section, key, value, origin_for(section, key)))
        else:
            entries.append(_Entry(section, "", values, origin_for(section, "")))
    return entries


# --- the loaded configuration -----------------------------------------------------------------


class KilnConfig:
    """The effective configuration: one configured instance per class, and value sources.

    Read options from the instances, e.g. ``config.conda_store.store_directory``,
    ``config.builder.virtual_packages_for("linux-64")``, ``config.server.port``,
    ``config.storage`` (the instance of ``CondaStore.storage_class``). Any other configurable
    class is instantiated on demand with :meth:`section`.
    """

    def __init__(
        self,
        *,
        data_dir: DataDir,
        config_file: Path | None,
        config: Config,
        origins: Mapping[tuple[str, str], Origin],
        problems: Iterable[Problem] = (),
    ) -> None:
        #: The data dir everything defaults into.
        self.data_dir = data_dir
        #: The configuration file that was loaded, if any.
        self.config_file = config_file
        #: The traitlets ``Config`` the instances were built from (file, then environment).
        self.config = config
        #: Warnings found while loading (already logged).
        self.problems = tuple(problems)
        self._origins = dict(origins)
        self._sections: dict[type[Configurable], Configurable] = {}

        self.conda_store = self.section(CondaStore)
        self.builder = self.section(Builder)
        #: How OCI images of builds are made (``Images``).
        self.images = self.section(Images)
        self.server = self.section(CondaStoreServer)
        self.worker = self.section(CondaStoreWorker)
        self.local_storage = self.section(LocalStorage)
        self.s3_storage = self.section(S3Storage)
        #: Kiln's own Postgres, used when ``CondaStore.database_url`` is unset.
        self.managed_postgres = self.section(ManagedPostgres)
        #: How `kiln serve` runs this host's processes.
        self.supervisor = self.section(Supervisor)
        #: The configured artifact store: an instance of ``CondaStore.storage_class``.
        self.storage = self.section(cast(type[Storage], self.conda_store.storage_class))
        #: The configured login method: an instance of ``CondaStoreServer.authentication_class``.
        self.authentication = self.section(
            cast(type[Authentication], self.server.authentication_class)
        )
        self.authentication_backend = self.section(
            cast(type[AuthenticationBackend], self.authentication.authentication_backend)
        )
        self.authorization_backend = self.section(
            cast(type[AuthorizationBackend], self.authentication.authorization_backend)
        )

    def section(self, cls: type[C]) -> C:
        """The configured instance of ``cls`` (created on first use, then cached)."""
        if cls not in self._sections:
            kwargs: dict[str, Any] = {"config": self.config, "log": log}
            if issubclass(cls, KilnConfigurable):
                kwargs["data_dir"] = self.data_dir
            self._sections[cls] = cls(**kwargs)
        return cast(C, self._sections[cls])

    def active_sections(self) -> list[Configurable]:
        """The instances that are in use, in the order ``kiln config show`` prints them."""
        sections: list[Configurable] = [
            self.conda_store,
            self.builder,
            self.images,
            self.server,
            self.worker,
            self.supervisor,
            *([self.managed_postgres] if self.conda_store.database_url is None else []),
            self.storage,
            self.authentication,
            self.authentication_backend,
            self.authorization_backend,
        ]
        return sections

    def configured_sections(self) -> set[str]:
        """Names of the sections (``c.<Name>.*``) that the file or the environment set."""
        return {section for section, _ in self._origins}

    def source_of(self, cls: type[Configurable] | Configurable | str, option: str) -> str:
        """Where the value of ``cls.option`` comes from.

        ``cls`` is a class, its name or an instance (``config.authorization_backend``).
        ``"default"``, ``"file <path>"`` or ``"environment KILN_X"``; a default derived from
        another option that was set reads ``"default (follows Class.other: <its source>)"``.
        Sections of base classes count (``c.Authentication.cookie_name`` sets
        ``DummyAuthentication.cookie_name``), the most specific one winning as in traitlets.
        """
        klass = _class_of(cls)
        origin = self._find_origin(klass, option)
        if origin is not None:
            return origin.source
        trait = klass.class_traits().get(option)
        follows = trait.metadata.get(FOLLOWS) if trait is not None else None
        if follows:
            source = self.source_of(klass, follows)
            if source != "default":
                return f"default (follows {klass.__name__}.{follows}: {source})"
        return "default"

    def origin_of(self, cls: type[Configurable] | Configurable | str, option: str) -> Origin:
        """Where ``cls.option`` was set (file and line, or variable); empty when a default."""
        klass = _class_of(cls)
        return self._find_origin(klass, option) or Origin()

    def _find_origin(self, klass: type[Configurable], option: str) -> Origin | None:
        for section in reversed(klass.section_names()):
            if (section, option) in self._origins:
                return self._origins[(section, option)]
        return None


def _class_of(cls: type[Configurable] | Configurable | str) -> type[Configurable]:
    if isinstance(cls, str):
        return CLASSES_BY_NAME[cls]
    if isinstance(cls, Configurable):
        return type(cls)
    return cls


# --- entry points -----------------------------------------------------------------------------


def resolve_paths(
    config_file: Path | str | None,
    data_dir: Path | str | DataDir | None,
    environ: Mapping[str, str] | None = None,
) -> tuple[DataDir, Path | None]:
    """The data dir and configuration file to use (``None``: there is no file)."""
    if isinstance(data_dir, DataDir):
        layout = data_dir
    else:
        root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir(environ)
        layout = DataDir(Path(os.path.abspath(root)))
    if config_file is not None:
        return layout, Path(config_file)
    return layout, layout.config_file if layout.config_file.is_file() else None


@dataclass
class Collected:
    """A file and the environment, merged and checked (see :func:`collect`)."""

    #: The checked ``Config``: unknown options and bad values removed.
    config: Config
    #: ``(section, option)`` -> where its value was set.
    origins: dict[tuple[str, str], Origin]
    problems: list[Problem]


def collect(
    config_file: Path | None,
    data_dir: DataDir,
    environ: Mapping[str, str],
    *,
    strict: bool = False,
) -> Collected:
    """Read, merge and check a file and the environment, without raising on bad values.

    Used by :func:`load_config` and ``kiln config verify``. A file that does not run raises
    :class:`InvalidConfiguration`.
    """
    entries: list[_Entry] = []
    problems: list[Problem] = []
    if config_file is not None:
        loaded = read_config_file(config_file)
        path = loaded.path

        def origin_for(section: str, key: str) -> Origin:
            line = loaded.lines.get((section, key))
            if line is None:
                line = min((n for (s, _), n in loaded.lines.items() if s == section), default=None)
            return Origin(file=path, line=line)

        entries.extend(_entries_from_config(loaded.config, origin_for))
    for variable, (cls, name) in environment_options().items():
        if variable not in environ:
            continue
        trait = cls.class_traits()[name]
        origin = Origin(env=variable)
        try:
            value = _from_environment(trait, environ[variable])
        except (ValueError, TraitError) as error:
            shown = MASK if trait.metadata.get(SECRET) else repr(environ[variable])
            option = f"{cls.__name__}.{name}"
            problems.append(
                origin.problem("error", f"{option}: cannot use {shown}: {error}", option)
            )
            continue
        # The environment overrides the file: drop the file's value of the same option.
        entries = [e for e in entries if (e.section, e.key) != (cls.__name__, name)]
        entries.append(_Entry(cls.__name__, name, value, origin))

    checker = _Checker(data_dir, strict=strict)
    checker.check(entries)
    config = Config()
    origins: dict[tuple[str, str], Origin] = {}
    for entry in checker.accepted:
        config[entry.section][entry.key] = entry.value
        origins[(entry.section, entry.key)] = entry.origin
    return Collected(config=config, origins=origins, problems=problems + checker.problems)


def cross_check(loaded: KilnConfig) -> list[Problem]:
    """Rules that involve more than one option; checked on the instantiated configuration."""
    problems: list[Problem] = []

    def problem(severity: Severity, option: str, message: str) -> None:
        section, _, key = option.partition(".")
        origin = loaded.origin_of(section, key)
        problems.append(origin.problem(severity, message, option=option))

    if isinstance(loaded.storage, S3Storage) and not loaded.storage.internal_endpoint:
        problem(
            "error",
            "S3Storage.internal_endpoint",
            "S3Storage.internal_endpoint must be set when CondaStore.storage_class is S3Storage "
            '(e.g. c.S3Storage.internal_endpoint = "minio:9000")',
        )
    authentication = loaded.authentication
    if isinstance(authentication, GenericOAuthAuthentication):
        name = type(authentication).__name__
        if not authentication.client_id:
            problem(
                "error",
                f"{name}.client_id",
                f"{name}.client_id must be set when it is CondaStoreServer.authentication_class",
            )
        if isinstance(authentication, JupyterHubOAuthAuthentication):
            if not authentication.jupyterhub_url:
                problem(
                    "error",
                    f"{name}.jupyterhub_url",
                    f"{name}.jupyterhub_url must be set (e.g. 'https://hub.example.org')",
                )
        elif not (authentication.authorize_url and authentication.access_token_url):
            problem(
                "error",
                f"{name}.authorize_url",
                f"{name}.authorize_url and access_token_url must be set",
            )
    authorization = loaded.authorization_backend
    roles = authorization.known_roles()
    for option in ("unauthenticated_role_bindings", "authenticated_role_bindings"):
        bindings: dict[str, list[str]] = getattr(authorization, option)
        for arn, names in bindings.items():
            unknown = sorted(set(names) - roles)
            if unknown:
                problem(
                    "error",
                    f"AuthorizationBackend.{option}",
                    f"AuthorizationBackend.{option}: {arn!r} uses unknown role(s) "
                    f"{', '.join(unknown)}; roles: {', '.join(sorted(roles))}",
                )
    if loaded.server.enable_ui and not loaded.server.enable_api:
        problem(
            "warning",
            "CondaStoreServer.enable_api",
            "CondaStoreServer.enable_ui is on but enable_api is off: the UI's downloads, live "
            "logs and package search are API routes and will answer 404; turn enable_api on, "
            "or enable_ui off",
        )
    platform = current_platform()
    solve_platforms: list[str] = loaded.conda_store.conda_solve_platforms
    if platform not in solve_platforms:
        problem(
            "warning",
            "CondaStore.conda_solve_platforms",
            f"CondaStore.conda_solve_platforms does not include this host's platform "
            f"{platform}: builds on this host cannot install their environment",
        )
    for solve_platform in solve_platforms:
        if not loaded.builder.virtual_packages_for(solve_platform):
            problem(
                "warning",
                "Builder.virtual_packages",
                f"Builder.virtual_packages has no entry for {solve_platform}: it is solved "
                "assuming no glibc, kernel or CPU features",
            )
    return problems


def load_config(
    config_file: Path | str | None = None,
    data_dir: Path | str | DataDir | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    strict: bool = False,
) -> KilnConfig:
    """Load Kiln's configuration.

    ``config_file``: the traitlets Python file to run; ``None`` means
    ``<data dir>/kiln_config.py`` if it exists, else no file. ``data_dir``: default
    :func:`~appliance.common.paths.default_data_dir` (``$KILN_DATA_DIR``, systemd's
    ``StateDirectory``, ``~/.local/share/kiln``). ``environ``: the environment to read
    ``KILN_*`` variables from (default ``os.environ``; only read). ``strict``: unknown classes
    and options are errors instead of warnings.

    Warnings are logged (once per load) and kept in ``KilnConfig.problems``; errors raise
    :class:`InvalidConfiguration`, a :class:`~appliance.common.errors.ConfigurationError`
    whose message names every bad option as ``Class.option`` with file and line.
    """
    env = os.environ if environ is None else environ
    layout, path = resolve_paths(config_file, data_dir, env)
    collected = collect(path, layout, env, strict=strict)
    problems = collected.problems
    try:
        loaded = KilnConfig(
            data_dir=layout,
            config_file=Path(os.path.abspath(path)) if path is not None else None,
            config=collected.config,
            origins=collected.origins,
        )
    except TraitError as error:
        raise InvalidConfiguration([Problem("error", str(error), file=path)]) from None
    problems.extend(cross_check(loaded))
    if any(problem.severity == "error" for problem in problems):
        raise InvalidConfiguration(problems)
    for problem in problems:
        log.warning("%s%s", problem.where, problem.message)
    loaded.problems = tuple(problems)
    return loaded


def load_config_from_args(args: Any, *, strict: bool = False) -> KilnConfig:
    """:func:`load_config` with the ``--config`` and ``--data-dir`` options of the CLI."""
    return load_config(
        getattr(args, "config", None), getattr(args, "data_dir", None), strict=strict
    )
