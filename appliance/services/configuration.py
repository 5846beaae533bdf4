"""The configuration as operators see and change it through the admin API.

Reading (:func:`effective_configuration`): the configuration file plus ``KILN_*`` variables,
loaded now by the same loader every Kiln process uses, shown the way ``kiln config show
--json`` shows it (appliance.config.show: each option's value, secrets masked, and its source:
``default``, ``file <path>`` or ``environment KILN_X``), plus each option's help and the
services that must restart for a change to it to take effect. It is what a process started
now would load; processes started earlier keep what they loaded until they restart.

Changing (:func:`change_option`), in this order, each refusal naming what is allowed or what to
do, and changing nothing:

1. the class and option must exist (400, with a "did you mean"), and not be one Kiln ignores;
2. the value must be accepted by the option's own traitlets class, exactly as when the file is
   loaded (400, the trait's message; secrets masked), and the whole configuration with the
   change must pass the loader's cross-option checks (400);
3. the file must be editable: it loads now; the option is not set by a ``KILN_*`` variable
   (which would override the file: 409); the option is not set inside logic Kiln cannot follow
   (appliance.config.edit: 409); the file (or, for a new file, its directory) is writable by
   Kiln's user (409);
4. the edited text is written to a scratch file next to the real one and loaded with the real
   loader: it must set the option to the value asked for, with no new errors (409 otherwise);
5. unless it is a dry run, the file is replaced atomically (temporary file and rename, the
   file's mode kept) when Kiln owns the file and may write its directory, else rewritten in
   place; a symbolic link stays a link (the file it points at is replaced). A dry run stops
   before this step and answers the same. One change at a time per host (a lock in ``run/``).

Which file: the one this web process was started with, else the one the supervisor publishes
(``kiln serve --config FILE`` hands it to its children), else ``<data dir>/kiln_config.py``
(created on the first change). The answer says which services must restart (:data:`RESTART`).
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import inspect
import os
import uuid
from collections.abc import Iterable, Iterator
from copy import deepcopy
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from traitlets import TraitError, TraitType
from traitlets.config import Config

from appliance.common.errors import KilnError
from appliance.config.base import MASK, OBSOLETE, SECRET, ClassChoice, masked
from appliance.config.catalog import CLASSES_BY_NAME
from appliance.config.edit import (
    PlannedEdit,
    UneditableConfiguration,
    plan_assignment,
    python_literal,
)
from appliance.config.loader import (
    InvalidConfiguration,
    KilnConfig,
    Problem,
    collect,
    cross_check,
)
from appliance.config.show import render_json
from appliance.services.operations import Installation
from appliance.services.supervision import read_status

#: The processes that read each configurable class: what must restart after a change. ``kiln
#: serve`` means the supervisor itself (it reads these when it starts: how many workers, how
#: to run PostgreSQL), which the admin API cannot restart.
RESTART: dict[str, tuple[str, ...]] = {
    "CondaStore": ("web", "workers"),
    "Builder": ("web", "workers"),
    "Images": ("web", "workers"),
    "CondaStoreServer": ("web",),
    "CondaStoreWorker": ("workers",),
    "LocalStorage": ("web", "workers"),
    "S3Storage": ("web", "workers"),
    "Authentication": ("web",),
    "LocalAccountAuthentication": ("web",),
    "DummyAuthentication": ("web",),
    "GenericOAuthAuthentication": ("web",),
    "GithubOAuthAuthentication": ("web",),
    "JupyterHubOAuthAuthentication": ("web",),
    "AuthenticationBackend": ("web",),
    "AuthorizationBackend": ("web",),
    "RBACAuthorizationBackend": ("web",),
    "ManagedPostgres": ("kiln serve",),
    "Supervisor": ("kiln serve",),
    "ContainerRegistry": (),
}
#: Options that reach further than their class.
RESTART_OPTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    # Managed or external PostgreSQL is decided by the supervisor when it starts.
    ("CondaStore", "database_url"): ("kiln serve",),
}


class UnknownOption(KilnError):
    """No such configuration class or option."""

    code = "unknown_option"


class InvalidOptionValue(KilnError):
    """The value is not valid for the option."""

    code = "invalid_value"


class ConfigurationRefused(KilnError):
    """The configuration file cannot be changed now; the message says why."""

    code = "conflict"


# --- wire types -------------------------------------------------------------------------------


class ConfigOption(msgspec.Struct, kw_only=True):
    """One option as it is in effect."""

    #: ``Class.option``.
    option: str
    name: str
    #: Secrets are ``********`` (an unset secret is shown as it is: empty).
    value: Any
    #: ``default``, ``file <path>``, ``environment KILN_X`` (or ``default (follows ...)``).
    source: str
    secret: bool
    #: Why Kiln ignores the option (conda-store options that were set).
    ignored: str | None = None
    #: The first paragraph of the option's help.
    help: str = ""


class ConfigSection(msgspec.Struct, kw_only=True):
    """The options of one configurable class."""

    class_: str = msgspec.field(name="class")
    #: ``chosen by CondaStore.storage_class``, ``configured but not in use``, ...
    note: str | None
    #: What must restart after a change here (``web``, ``workers``, ``kiln serve``).
    restart: list[str]
    options: list[ConfigOption]


class ConfigProblem(msgspec.Struct, kw_only=True):
    """Something wrong with (or worth knowing about) the configuration."""

    severity: str
    message: str
    option: str | None = None
    file: str | None = None
    line: int | None = None


class EffectiveConfiguration(msgspec.Struct, kw_only=True):
    """The configuration a process started now would load."""

    data_dir: str
    #: The file changes are written to.
    config_file: str
    config_file_exists: bool
    #: Whether Kiln's user may write it (or create it).
    config_file_writable: bool
    sections: list[ConfigSection]
    #: Errors (the file does not load: ``sections`` is empty) and warnings.
    problems: list[ConfigProblem]


class OptionChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A change to one option: ``c.<class>.<option> = <value>``."""

    class_: str = msgspec.field(name="class")
    option: str
    #: The new value, as JSON (string, number, boolean, null, list or object).
    value: Any
    #: Check everything and say what would be written, but write nothing.
    dry_run: bool = False


class RestartAdvice(msgspec.Struct, kw_only=True):
    """What must restart for a change to take effect."""

    needed: bool
    #: ``web``, ``workers``, ``kiln serve``.
    services: list[str]
    #: Names to POST to ``/api/v1/admin/services/{service}/restart/``, in order (empty when
    #: nothing is needed or the API cannot do it: ``kiln serve`` itself, or no supervisor).
    targets: list[str]
    message: str


class ConfigurationChange(msgspec.Struct, kw_only=True):
    """What a change did (or, in a dry run, would do)."""

    class_: str = msgspec.field(name="class")
    option: str
    #: As the option's class accepted it (secrets masked).
    value: Any
    previous_value: Any
    previous_source: str
    #: The effective value differs from the previous one.
    changed: bool
    dry_run: bool
    #: The file was written (False in a dry run).
    written: bool
    config_file: str
    #: ``replaced`` (the one assignment of the option), ``appended`` or ``created``.
    action: str
    #: Line of the assignment in the file, and the line as written (secrets masked).
    line: int
    line_text: str
    #: The statement that was replaced (None when appended or a secret).
    replaced: str | None = None
    #: Earlier lines setting the option that the appended line overrides.
    overridden_lines: list[int] = msgspec.field(default_factory=list)
    restart: RestartAdvice
    message: str


# --- where ------------------------------------------------------------------------------------


def configuration_file(installation: Installation) -> Path:
    """The file changes go to (module docstring)."""
    if installation.config_file is not None:
        return installation.config_file
    published = read_status(installation.run_dir).status
    if published is not None and published.supervisor.config_file:
        return Path(published.supervisor.config_file)
    return installation.data_dir.config_file


def _writable(path: Path) -> bool:
    if path.exists():
        return os.access(path, os.W_OK)
    return os.access(path.parent, os.W_OK | os.X_OK)


def _load(installation: Installation, path: Path) -> tuple[KilnConfig | None, list[Problem]]:
    """The configuration as a process started now would load it, and its problems (None when
    it does not load)."""
    existing = path if path.is_file() else None
    try:
        collected = collect(existing, installation.data_dir, installation.environ)
    except InvalidConfiguration as error:
        return None, list(error.problems)
    try:
        loaded = KilnConfig(
            data_dir=installation.data_dir,
            config_file=existing,
            config=collected.config,
            origins=collected.origins,
        )
    except TraitError as error:
        return None, [*collected.problems, Problem("error", str(error), file=existing)]
    return loaded, [*collected.problems, *cross_check(loaded)]


def _problem(problem: Problem) -> ConfigProblem:
    return ConfigProblem(
        severity=problem.severity,
        message=problem.message,
        option=problem.option,
        file=str(problem.file) if problem.file is not None else None,
        line=problem.line,
    )


# --- reading ----------------------------------------------------------------------------------


def _help(trait: TraitType[Any, Any] | None) -> str:
    text = inspect.cleandoc(trait.help or "") if trait is not None else ""
    return text.split("\n\n", 1)[0].replace("\n", " ").strip()


def restart_of(section: str, option: str | None = None) -> list[str]:
    """What must restart after a change to ``section.option`` (:data:`RESTART`)."""
    if option is not None and (section, option) in RESTART_OPTIONS:
        return list(RESTART_OPTIONS[(section, option)])
    return list(RESTART.get(section, ("web", "workers")))


def effective_configuration(installation: Installation) -> EffectiveConfiguration:
    """See the module docstring."""
    path = configuration_file(installation)
    loaded, problems = _load(installation, path)
    sections: list[ConfigSection] = []
    if loaded is not None:
        document = msgspec.json.decode(render_json(loaded))
        for section in document["sections"]:
            name = section["class"]
            traits = (
                CLASSES_BY_NAME[name].class_traits(config=True) if name in CLASSES_BY_NAME else {}
            )
            options = []
            for entry in section["options"]:
                key = entry["option"].partition(".")[2]
                trait = traits.get(key)
                options.append(
                    ConfigOption(
                        option=entry["option"],
                        name=key,
                        value=entry["value"],
                        source=entry["source"],
                        secret=bool(trait is not None and trait.metadata.get(SECRET)),
                        ignored=entry["ignored"],
                        help=_help(trait),
                    )
                )
            sections.append(
                ConfigSection(
                    class_=name, note=section["note"], restart=restart_of(name), options=options
                )
            )
    return EffectiveConfiguration(
        data_dir=str(installation.data_dir.root),
        config_file=str(path),
        config_file_exists=path.is_file(),
        config_file_writable=_writable(path),
        sections=sections,
        problems=[_problem(problem) for problem in problems],
    )


# --- changing ---------------------------------------------------------------------------------


def _suggest(word: str, candidates: Iterable[str]) -> str:
    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {found[0]}?)" if found else ""


def _option_trait(section: str, option: str) -> tuple[type[Any], TraitType[Any, Any]]:
    cls = CLASSES_BY_NAME.get(section)
    if cls is None:
        raise UnknownOption(
            f"unknown configuration class {section!r}{_suggest(section, CLASSES_BY_NAME)}; "
            f"classes: {', '.join(CLASSES_BY_NAME)}"
        )
    traits = cls.class_traits(config=True)
    trait = traits.get(option)
    if trait is None:
        usable = [name for name, t in traits.items() if not t.metadata.get(OBSOLETE)]
        raise UnknownOption(
            f"unknown option {section}.{option}{_suggest(option, usable)}; options of "
            f"{section}: {', '.join(sorted(usable))}"
        )
    reason = trait.metadata.get(OBSOLETE)
    if reason:
        raise UnknownOption(f"{section}.{option} is accepted but ignored by Kiln: {reason}")
    return cls, trait


def wire_value(trait: TraitType[Any, Any], value: Any) -> Any:
    """``value`` as the API shows it: masked when secret, classes by name, sets as lists."""
    value = masked(trait, value)
    return _plain(value, trait)


def _plain(value: Any, trait: TraitType[Any, Any] | None = None) -> Any:
    if isinstance(value, type):
        if isinstance(trait, ClassChoice):
            return trait.short_name(value)
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, set | frozenset | tuple):
        return [_plain(item) for item in sorted(value, key=str)]
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


def _validated(
    installation: Installation, cls: type[Any], name: str, trait: TraitType[Any, Any], value: Any
) -> Any:
    """``value`` as the option's class accepts it (step 2 of the module docstring)."""
    option = f"{cls.__name__}.{name}"
    probe = cls(data_dir=installation.data_dir)
    try:
        setattr(probe, name, deepcopy(value))
    except (TraitError, ValueError, TypeError) as error:
        raise InvalidOptionValue(_value_problem(option, trait, value, error)) from None
    return getattr(probe, name)


def _value_problem(option: str, trait: TraitType[Any, Any], value: Any, error: Exception) -> str:
    """``Class.option: what is wrong`` from a trait's error (traitlets starts its messages with
    "The 'option' trait of a Class instance ..."); a secret value never appears."""
    message = str(error).rstrip(".")
    if message.startswith(option):
        message = message[len(option) :].lstrip(": ")
    elif message.startswith("The ") and " instance " in message:
        message = message.split(" instance ", 1)[1]
    if trait.metadata.get(SECRET) and value not in (None, ""):
        message = message.replace(repr(value), MASK).replace(str(value), MASK)
    return f"{option}: {message}"


@contextlib.contextmanager
def _edit_lock(installation: Installation) -> Iterator[None]:
    """One configuration change at a time on this host, across web processes (an advisory lock
    on ``<run dir>/.config-edit.lock``; without a usable run dir, none)."""
    try:
        installation.run_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(
            installation.run_dir / ".config-edit.lock", os.O_RDWR | os.O_CREAT, 0o600
        )
    except OSError:
        yield
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _check_together(
    installation: Installation, current: KilnConfig, section: str, option: str, value: Any
) -> None:
    config = Config(deepcopy(current.config))
    config[section][option] = deepcopy(value)
    try:
        changed = KilnConfig(
            data_dir=installation.data_dir,
            config_file=current.config_file,
            config=config,
            origins={},
        )
    except TraitError as error:
        raise InvalidOptionValue(str(error)) from None
    before = {problem.message for problem in cross_check(current) if problem.severity == "error"}
    new = [
        problem.message
        for problem in cross_check(changed)
        if problem.severity == "error" and problem.message not in before
    ]
    if new:
        raise InvalidOptionValue("; ".join(new))


def _advice(installation: Installation, services: list[str], changed: bool) -> RestartAdvice:
    if not changed or not services:
        reason = "the value does not change" if not changed else "Kiln ignores this option"
        return RestartAdvice(needed=False, services=[], targets=[], message=f"no restart: {reason}")
    if "kiln serve" in services:
        return RestartAdvice(
            needed=True,
            services=services,
            targets=[],
            message="restart kiln serve itself (e.g. systemctl restart kiln): the supervisor "
            "reads this when it starts",
        )
    published = read_status(installation.run_dir).status
    if published is None:
        return RestartAdvice(
            needed=True,
            services=services,
            targets=[],
            message=f"restart {' and '.join(services)} the way they were started (no "
            "supervisor runs this Kiln)",
        )
    targets = [target for target in services if target in published.restart_targets]
    return RestartAdvice(
        needed=True,
        services=services,
        targets=targets,
        message=f"takes effect when {' and '.join(services)} restart"
        + (f": POST /api/v1/admin/services/{{{'|'.join(targets)}}}/restart/" if targets else ""),
    )


def change_option(
    installation: Installation, change: OptionChange, *, changed_by: str
) -> ConfigurationChange:
    """Validate ``change`` and write it to the configuration file (module docstring)."""
    cls, trait = _option_trait(change.class_, change.option)
    checked = _Checked(
        cls=cls,
        trait=trait,
        literal=python_literal(change.value),
        value=_validated(installation, cls, change.option, trait, change.value),
    )
    path = configuration_file(installation)
    with _edit_lock(installation):
        return _apply(installation, change, checked, path, changed_by)


@dataclass(frozen=True)
class _Checked:
    """An option and a value it accepted: its class, its trait, the value as Python source
    and as the class holds it."""

    cls: type[Any]
    trait: TraitType[Any, Any]
    literal: str
    value: Any


def _apply(
    installation: Installation,
    change: OptionChange,
    checked: _Checked,
    path: Path,
    changed_by: str,
) -> ConfigurationChange:
    section, option = change.class_, change.option
    cls, trait, new_value = checked.cls, checked.trait, checked.value
    current, problems = _load(installation, path)
    if current is None:
        errors = "; ".join(str(p) for p in problems if p.severity == "error")
        raise ConfigurationRefused(
            f"the configuration file {path} does not load now, so Kiln will not edit it; fix it "
            f"first: {errors}"
        )
    _check_together(installation, current, section, option, change.value)
    previous_source = current.source_of(cls, option)
    if previous_source.startswith("environment"):
        variable = previous_source.split()[-1]
        raise ConfigurationRefused(
            f"{section}.{option} is set by the environment variable {variable}, which overrides "
            "the configuration file; change it where Kiln's environment is set (e.g. the "
            "systemd unit), or unset it"
        )
    previous = getattr(current.section(cls), option)
    source = _read_source(path)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    note = f"set by {changed_by} with the admin API, {when}"
    plan = plan_assignment(source, section, option, checked.literal, note=note)
    if not _writable(path):
        what = "the configuration file" if path.exists() else "the directory of"
        raise ConfigurationRefused(
            f"{what} {path} is not writable by the user Kiln runs as (uid {os.getuid()}); "
            "change it by hand, or let Kiln's user write it"
        )
    _verify(installation, path, plan, cls, option, new_value)
    if not change.dry_run:
        _write(path, plan.text)
    changed = previous != new_value
    secret = bool(trait.metadata.get(SECRET))
    line_text = plan.text.splitlines()[plan.line - 1]
    if secret:
        line_text = f"c.{section}.{option} = {python_literal(wire_value(trait, new_value))}"
    verb = {"replaced": "replaced line", "appended": "appended at line", "created": "created"}[
        plan.action
    ]
    where = f"{path}" if plan.action == "created" else f"{path}: {verb} {plan.line}"
    return ConfigurationChange(
        class_=section,
        option=option,
        value=wire_value(trait, new_value),
        previous_value=wire_value(trait, previous),
        previous_source=previous_source,
        changed=changed,
        dry_run=change.dry_run,
        written=not change.dry_run,
        config_file=str(path),
        action=plan.action,
        line=plan.line,
        line_text=line_text,
        replaced=None if secret else plan.replaced,
        overridden_lines=list(plan.overridden_lines),
        restart=_advice(installation, restart_of(section, option), changed),
        message=("would write " if change.dry_run else "wrote ")
        + f"c.{section}.{option} ({where})",
    )


def _read_source(path: Path) -> str | None:
    if not path.exists():
        return None
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UneditableConfiguration(
            f"{path} is not UTF-8 text; Kiln edits only UTF-8 configuration files"
        ) from None
    except OSError as error:
        raise ConfigurationRefused(f"cannot read {path}: {error.strerror}") from None


def _scratch(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def _verify(
    installation: Installation,
    path: Path,
    plan: PlannedEdit,
    cls: type[Any],
    option: str,
    expected: Any,
) -> None:
    """Step 4 of the module docstring: load the edited text as the file it will be."""
    scratch = _scratch(path.resolve())
    try:
        try:
            scratch.write_text(plan.text, encoding="utf-8")
        except OSError as error:
            raise ConfigurationRefused(
                f"cannot write next to {path} to check the change: {error.strerror}"
            ) from None
        try:
            collected = collect(scratch, installation.data_dir, {})
            loaded = KilnConfig(
                data_dir=installation.data_dir,
                config_file=path,
                config=collected.config,
                origins=collected.origins,
            )
        except (InvalidConfiguration, TraitError) as error:
            raise ConfigurationRefused(
                f"the edited file would not load ({error}); edit {path} by hand"
            ) from None
        errors = [p.message for p in collected.problems if p.severity == "error"]
        if errors:
            raise ConfigurationRefused(
                f"the edited file would have errors ({'; '.join(errors)}); edit {path} by hand"
            )
        found = getattr(loaded.section(cls), option)
        if found != expected:
            raise ConfigurationRefused(
                f"the edited file would set {cls.__name__}.{option} to {found!r}, not "
                f"{expected!r} (something else in it changes the option); edit {path} by hand"
            )
    finally:
        with contextlib.suppress(OSError):
            scratch.unlink()


def _write(link: Path, text: str) -> None:
    """Replace ``link`` with ``text`` (module docstring, step 5). A symbolic link stays one:
    the file it points at is replaced."""
    path = link.resolve()
    exists = path.exists()
    mode = path.stat().st_mode & 0o777 if exists else 0o640
    ours = not exists or path.stat().st_uid == os.getuid()
    if ours and os.access(path.parent, os.W_OK | os.X_OK):
        scratch = _scratch(path)
        try:
            descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
                stream.write(text)
                stream.flush()
                os.fsync(stream.fileno())
            os.chmod(scratch, mode)
            os.replace(scratch, path)
        finally:
            with contextlib.suppress(OSError):
                scratch.unlink()
        return
    try:
        with path.open("w", encoding="utf-8") as stream:
            stream.write(text)
    except OSError as error:
        raise ConfigurationRefused(f"cannot write {path}: {error.strerror}") from None
