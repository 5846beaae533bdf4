"""Settings at three levels: the deployment's defaults, then global, namespace and environment
values stored in the database (conda-store-api.md §7.2).

A key's effective value comes from the most specific level that sets it: the configuration file
(``c.CondaStore.<key>``) < global (``PUT /api/v1/setting/``) < namespace (``/setting/{ns}/``) <
environment (``/setting/{ns}/{env}/``). Lists replace the value of the level above, they are not
merged. Every lookup builds a new dict from deep copies, so one namespace's values never leak into
another's (conda-store mutated its cached defaults in place).

Which levels may set a key (:data:`SETTING_KEYS`):

- ``any``: conda-store's per-environment keys (artifacts, solve platforms, channels, the
  ``conda_*`` and ``pypi_*`` package lists);
- ``global``: keys that only make sense for the whole server (conda-store's global-only keys that
  a build uses). Kiln adds ``conda_channel_alias`` to them: a namespace that could move the alias
  would change what the allowed channel names mean and escape ``conda_allowed_channels``;
- ``deployment``: conda-store's other global-only keys, which Kiln's processes read from the
  configuration file at start (``default_namespace``, ``storage_threshold``, ...). They are shown
  but cannot be changed through the API (400 naming the configuration option).

A PUT may echo a key it cannot change with its current effective value, so a client can GET the
settings, edit one key and PUT the whole object back. ``null`` removes the level's own value (the
level above applies again).

``conda_allowed_channels`` below the global level only narrows: every channel it lists must be
allowed by the level above (when that one restricts channels), and a lookup keeps only the
channels the level above still allows, so a namespace admin can never widen what the operator
allowed.

Permissions: ``setting::read`` / ``setting::update`` on the environment; a namespace's settings
apply to all its environments, so they need the permission from a binding covering ``<ns>/*``
(an admin of one environment cannot change the whole namespace), and the global level from a
``*/*`` binding.

Whether a build uses the settings is decided where it is submitted and run:
:func:`effective_build_settings` gives the build engine's view of the settings that apply to one
environment.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from packaging.requirements import InvalidRequirement, Requirement
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from traitlets import TraitError

from appliance.auth.rbac import Permission
from appliance.builder.policy import PackagePolicy
from appliance.builder.settings import BuildSettings, Permissions
from appliance.common.errors import KilnError
from appliance.config.store import CondaStore
from appliance.db.models import Setting
from appliance.schemas import api as wire
from appliance.schemas.channels import check_channel, normalize_channel
from appliance.schemas.dependencies import normalize_matchspec
from appliance.schemas.names import check_name
from appliance.services.access import Access, Caller

Reach = Literal["any", "global", "deployment"]

#: Every setting key and the levels that may set it (see the module docstring).
SETTING_KEYS: dict[str, Reach] = {
    "build_artifacts": "any",
    "conda_solve_platforms": "any",
    "conda_default_channels": "any",
    "conda_allowed_channels": "any",
    "conda_default_packages": "any",
    "conda_required_packages": "any",
    "conda_included_packages": "any",
    "pypi_default_packages": "any",
    "pypi_required_packages": "any",
    "pypi_included_packages": "any",
    "conda_channel_alias": "global",
    "conda_max_solve_time": "global",
    "default_uid": "global",
    "default_gid": "global",
    "default_permissions": "global",
    "build_artifacts_kept_on_deletion": "deployment",
    "conda_platforms": "deployment",
    "conda_indexed_channels": "deployment",
    "default_namespace": "deployment",
    "filesystem_namespace": "deployment",
    "storage_threshold": "deployment",
}

_CHANNEL_LISTS = frozenset({"conda_default_channels", "conda_allowed_channels"})
_CONDA_LISTS = frozenset(
    {"conda_default_packages", "conda_required_packages", "conda_included_packages"}
)
_PYPI_LISTS = frozenset(
    {"pypi_default_packages", "pypi_required_packages", "pypi_included_packages"}
)
_INTEGERS = frozenset({"conda_max_solve_time", "default_uid", "default_gid"})

#: Largest value of one key, as JSON, and longest list.
MAX_VALUE_BYTES = 64 * 1024
MAX_LIST_LENGTH = 1000

_LEVEL_NAMES = ("global", "namespace", "environment")


class SettingError(KilnError):
    """The settings cannot be changed this way; the message names the keys and what is allowed."""

    code = "invalid_setting"


def defaults_from_config(store: CondaStore) -> dict[str, Any]:
    """The deployment's value of every setting key (``c.CondaStore.*``), as plain JSON values."""
    return {key: _plain(getattr(store, key)) for key in SETTING_KEYS}


def built_in_defaults() -> dict[str, Any]:
    """:func:`defaults_from_config` of an unconfigured ``CondaStore`` (Kiln's own defaults)."""
    return defaults_from_config(CondaStore())


def _plain(value: Any) -> Any:
    if isinstance(value, list | tuple | frozenset | set):
        return [str(item) for item in value]
    return value


@dataclass(frozen=True)
class _Level:
    """Where a request reads or writes: the scopes that apply, most general first."""

    namespace: str | None
    environment: str | None

    @property
    def scopes(self) -> list[str]:
        scopes = [""]
        if self.namespace is not None:
            scopes.append(self.namespace)
            if self.environment is not None:
                scopes.append(f"{self.namespace}/{self.environment}")
        return scopes

    @property
    def depth(self) -> int:
        """0 global, 1 namespace, 2 environment."""
        return len(self.scopes) - 1

    @property
    def name(self) -> str:
        if self.namespace is None:
            return "global"
        if self.environment is None:
            return f"namespace {self.namespace}"
        return f"environment {self.namespace}/{self.environment}"

    def authorize(self, access: Access, permission: str) -> None:
        """Global and namespace settings apply to every environment below them, so they need
        the permission on all of those (``*/*``, ``<ns>/*``)."""
        if self.namespace is None:
            access.require_over("*/*", permission)
        elif self.environment is None:
            access.require_over(f"{self.namespace}/*", permission)
        else:
            access.require(permission, namespace=self.namespace, environment=self.environment)


def _level(namespace: str | None, environment: str | None) -> _Level:
    if namespace is not None:
        check_name(namespace)
    if environment is not None:
        if namespace is None:
            raise SettingError("an environment's settings need its namespace")
        check_name(environment, what="environment")
    return _Level(namespace, environment)


def _stored(session: Session, level: _Level) -> list[dict[str, Any]]:
    """The values stored at each scope of ``level``, most general first."""
    scopes = level.scopes
    found: dict[str, dict[str, Any]] = {scope: {} for scope in scopes}
    rows = session.execute(
        select(Setting.scope, Setting.key, Setting.value).where(Setting.scope.in_(scopes))
    )
    for scope, key, value in rows:
        found[scope][key] = value
    return [found[scope] for scope in scopes]


def _merge(defaults: Mapping[str, Any], levels: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``defaults`` overridden by each level in turn (a fresh deep copy; inputs untouched)."""
    return _merge_with_depths(defaults, levels)[0]


def _merge_with_depths(
    defaults: Mapping[str, Any], levels: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, Any], dict[str, int]]:
    """:func:`_merge`, and for each key the depth of the level its value comes from (-1: the
    deployment's default)."""
    merged = copy.deepcopy(dict(defaults))
    depths = dict.fromkeys(merged, -1)
    for depth, stored in enumerate(levels):
        for key, value in stored.items():
            reach = SETTING_KEYS.get(key)
            if reach is None or reach == "deployment" or (reach == "global" and depth > 0):
                continue
            if key == "conda_allowed_channels" and depth > 0:
                value = _narrowed(merged[key], value, merged["conda_channel_alias"])
            merged[key] = copy.deepcopy(value)
            depths[key] = depth
    return merged, depths


def _channel_url(channel: str, alias: str) -> str | None:
    try:
        return normalize_channel(channel, channel_alias=alias)
    except KilnError:
        return None


def _narrowed(above: Sequence[str], wanted: Sequence[str], alias: str) -> list[str]:
    """The channels of ``wanted`` that ``above`` allows (all of ``above`` if none is left)."""
    if not above:
        return list(wanted)
    allowed = {_channel_url(channel, alias) for channel in above} - {None}
    kept = [channel for channel in wanted if _channel_url(channel, alias) in allowed]
    return kept or list(above)


def get_settings(
    session: Session,
    caller: Caller,
    defaults: Mapping[str, Any],
    namespace: str | None = None,
    environment: str | None = None,
) -> wire.Settings:
    """The effective settings of the global level, a namespace, or one environment."""
    level = _level(namespace, environment)
    level.authorize(caller.access(session), Permission.SETTING_READ)
    return wire.Settings(**_merge(defaults, _stored(session, level)))


def setting_sources(
    session: Session,
    caller: Caller,
    defaults: Mapping[str, Any],
    namespace: str | None = None,
    environment: str | None = None,
) -> dict[str, str]:
    """Where each effective setting of a level comes from: ``"default"`` (the deployment's
    configuration), ``"global"``, ``"namespace"`` or ``"environment"`` (needs what
    :func:`get_settings` needs)."""
    level = _level(namespace, environment)
    level.authorize(caller.access(session), Permission.SETTING_READ)
    _, depths = _merge_with_depths(defaults, _stored(session, level))
    names = ("global", "namespace", "environment")
    return {key: "default" if depth < 0 else names[depth] for key, depth in depths.items()}


@dataclass(frozen=True)
class SettingsUpdate:
    """The outcome of a PUT: the keys written (or removed) and the new effective settings."""

    settings: wire.Settings
    keys: list[str]
    message: str


def update_settings(
    session: Session,
    caller: Caller,
    defaults: Mapping[str, Any],
    values: Mapping[str, Any],
    namespace: str | None = None,
    environment: str | None = None,
) -> SettingsUpdate:
    """Set (or, with ``None``, remove) keys at one level. Every key and value is checked first;
    on any problem nothing is written and :class:`SettingError` names every bad key."""
    level = _level(namespace, environment)
    level.authorize(caller.access(session), Permission.SETTING_UPDATE)
    if not isinstance(values, Mapping):
        raise SettingError("the body must be a JSON object of setting keys and values")
    unknown = sorted(str(key) for key in values if key not in SETTING_KEYS)
    if unknown:
        raise SettingError(
            f"unknown setting key(s) {', '.join(unknown)}; allowed: {', '.join(SETTING_KEYS)}"
        )
    stored = _stored(session, level)
    above = _merge(defaults, stored[:-1])
    current = _merge(defaults, stored)
    changes: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in values.items():
        try:
            checked = None if value is None else check_setting(key, value)
        except SettingError as error:
            problems.append(error.message)
            continue
        refusal = _reach_refusal(key, level)
        if refusal is not None:
            # An echo of the effective value (or null: nothing is stored here) changes nothing.
            if checked is not None and checked != current[key]:
                problems.append(refusal)
            continue
        if key == "conda_allowed_channels" and level.depth > 0 and checked is not None:
            problem = _widening(checked, above[key], above["conda_channel_alias"], level)
            if problem:
                problems.append(problem)
                continue
        changes[key] = checked
    if problems:
        raise SettingError("; ".join(problems))
    _write(session, level.scopes[-1], changes)
    keys = sorted(changes)
    prefix = "global" if level.depth == 0 else level.name
    message = f"{prefix} setting keys {keys} updated"
    return SettingsUpdate(
        settings=wire.Settings(**_merge(defaults, _stored(session, level))),
        keys=keys,
        message=message,
    )


def _reach_refusal(key: str, level: _Level) -> str | None:
    """Why ``key`` cannot be written at ``level`` (None: it can)."""
    reach = SETTING_KEYS[key]
    if reach == "deployment":
        return (
            f"{key} is read from the configuration file only: set c.CondaStore.{key} in "
            "kiln_config.py and restart Kiln"
        )
    if reach == "global" and level.depth > 0:
        return (
            f"{key} is a global setting key and cannot be set for a {_LEVEL_NAMES[level.depth]}; "
            "set it with PUT /api/v1/setting/"
        )
    return None


def _widening(wanted: list[str], above: Sequence[str], alias: str, level: _Level) -> str | None:
    if not above:
        return None
    if not wanted:
        return (
            f"conda_allowed_channels of a {_LEVEL_NAMES[level.depth]} cannot be empty (which "
            "would allow every channel): the level above allows only "
            f"{', '.join(above)}; send null to use that list"
        )
    allowed = {_channel_url(channel, alias) for channel in above} - {None}
    outside = [channel for channel in wanted if _channel_url(channel, alias) not in allowed]
    if outside:
        return (
            f"conda_allowed_channels of a {_LEVEL_NAMES[level.depth]} can only narrow the "
            f"channels allowed above; not allowed there: {', '.join(outside)}; allowed: "
            f"{', '.join(above)}"
        )
    return None


def _write(session: Session, scope: str, changes: Mapping[str, Any]) -> None:
    removed = [key for key, value in changes.items() if value is None]
    if removed:
        session.execute(delete(Setting).where(Setting.scope == scope, Setting.key.in_(removed)))
    for key, value in changes.items():
        if value is None:
            continue
        statement = insert(Setting).values(scope=scope, key=key, value=value)
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["scope", "key"],
                set_={"value": statement.excluded.value, "updated_on": func.now()},
            )
        )


def check_setting(key: str, value: Any) -> Any:
    """``value`` checked and normalized as ``c.CondaStore.<key>`` would be (the same traitlets
    trait and validators), plus the checks a specification's own channels and packages get.
    Raises :class:`SettingError` saying what is wrong."""
    if key in _INTEGERS and isinstance(value, bool):
        raise SettingError(f"setting {key}: expected a whole number, not {value!r}")
    if len(json.dumps(value)) > MAX_VALUE_BYTES:
        raise SettingError(f"setting {key}: the value is larger than {MAX_VALUE_BYTES} bytes")
    if isinstance(value, list) and len(value) > MAX_LIST_LENGTH:
        raise SettingError(f"setting {key}: at most {MAX_LIST_LENGTH} entries")
    scratch = CondaStore()
    try:
        setattr(scratch, key, value)
    except TraitError as error:
        raise SettingError(f"setting {key}: {_trait_message(key, error)}") from None
    checked = _plain(getattr(scratch, key))
    if key in _CHANNEL_LISTS:
        for channel in checked:
            try:
                check_channel(channel)
            except ValueError as error:
                raise SettingError(f"setting {key}: {error}") from None
    elif key in _CONDA_LISTS:
        for spec in checked:
            try:
                normalize_matchspec(spec)
            except ValueError as error:
                raise SettingError(f"setting {key}: {error}") from None
    elif key in _PYPI_LISTS:
        for entry in checked:
            if entry.startswith("-"):
                continue
            try:
                Requirement(entry)
            except InvalidRequirement as error:
                raise SettingError(
                    f"setting {key}: {entry!r} is not a pip requirement ({error})"
                ) from None
    return checked


def _trait_message(key: str, error: TraitError) -> str:
    text = str(error).strip().removeprefix(f"CondaStore.{key}: ")
    return text.replace(" of a CondaStore instance", "")


def effective_build_settings(
    session: Session, base: BuildSettings, namespace: str, environment: str | None = None
) -> BuildSettings:
    """``base`` (the deployment's build settings) with the global, ``namespace`` and
    ``namespace/environment`` settings stored in the database applied, as a build of that
    environment should use them. Returns ``base`` itself when nothing is stored."""
    stored = _stored(session, _Level(namespace, environment))
    if not any(stored):
        return base
    merged = _merge(_build_defaults(base), stored)
    return replace(
        base,
        channel_alias=merged["conda_channel_alias"],
        allowed_channels=tuple(merged["conda_allowed_channels"]),
        default_channels=tuple(merged["conda_default_channels"]),
        solve_platforms=tuple(merged["conda_solve_platforms"]),
        artifacts=frozenset(merged["build_artifacts"]),
        policy=PackagePolicy(
            conda_default=tuple(merged["conda_default_packages"]),
            conda_included=tuple(merged["conda_included_packages"]),
            conda_required=tuple(merged["conda_required_packages"]),
            pypi_default=tuple(merged["pypi_default_packages"]),
            pypi_included=tuple(merged["pypi_included_packages"]),
            pypi_required=tuple(merged["pypi_required_packages"]),
        ),
        max_solve_seconds=float(merged["conda_max_solve_time"]),
        permissions=Permissions(
            uid=merged["default_uid"],
            gid=merged["default_gid"],
            mode=merged["default_permissions"],
        ),
    )


def _build_defaults(base: BuildSettings) -> dict[str, Any]:
    """The keys a build uses, as ``base`` has them."""
    return {
        "conda_channel_alias": base.channel_alias,
        "conda_allowed_channels": list(base.allowed_channels),
        "conda_default_channels": list(base.default_channels),
        "conda_solve_platforms": list(base.solve_platforms),
        "build_artifacts": sorted(base.artifacts),
        "conda_default_packages": list(base.policy.conda_default),
        "conda_included_packages": list(base.policy.conda_included),
        "conda_required_packages": list(base.policy.conda_required),
        "pypi_default_packages": list(base.policy.pypi_default),
        "pypi_included_packages": list(base.policy.pypi_included),
        "pypi_required_packages": list(base.policy.pypi_required),
        "conda_max_solve_time": base.max_solve_seconds,
        "default_uid": base.permissions.uid,
        "default_gid": base.permissions.gid,
        "default_permissions": base.permissions.mode,
    }
