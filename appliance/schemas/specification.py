"""Environment specifications: parsing, validation and the content-addressed form.

:func:`parse_specification` is the one door for a submitted specification (API, web UI, CLI,
``watch_paths``). It accepts

- an ``environment.yaml`` (conda's format; see :class:`EnvironmentSpec`),
- a conda-lock v1 lockfile, YAML or JSON, bare (``version``, ``metadata``, ``package``) or in
  conda-store's lockfile-specification shape ``{name, description, lockfile: {...}}`` (see
  :mod:`appliance.schemas.lockfile`),

and returns an immutable :class:`EnvironmentSpec` or :class:`LockfileSpec`, or raises
:class:`~appliance.common.errors.SpecificationError` whose message names the field and line and
says what is allowed. Parsing is pure: no network, no files, no configuration; channel policy
(:func:`~appliance.schemas.channels.check_allowed_channels`) and conda-store's default/required
package policy are applied later by the caller, who knows the settings.

**Environment names** (:data:`NAME_PATTERN`): letters, digits, ``_``, ``.``, ``+`` and ``-``;
the first character a letter, digit or ``_``; no ``..``; at most ``SpecLimits.max_name_length``
(64) characters. That is conda-store's charset (``A-Za-z0-9-+_@$&?^~.=``) without the characters
that break URLs, shells or file names (``@ $ & ? ^ ~ =``), and without names that are or walk
paths (``.``, ``..``, ``.hidden``, ``-flag``). The name becomes a directory
(``store/<namespace>/envs/<name>``), part of a build key and of URLs. 64 characters keeps the
build prefix well inside conda-store's 255-character path limit.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.resolver import VersionedResolver

from appliance.schemas.channels import NODEFAULTS, ChannelReference, check_channel
from appliance.schemas.dependencies import (
    InvalidDependency,
    check_pip_entry,
    dependency_channel,
    normalize_matchspec,
    resolve_dependency_channel,
)
from appliance.schemas.document import (
    describe,
    fail,
    line_of,
    load_document,
    raw_text,
    start_line,
)
from appliance.schemas.lockfile import (
    CONDA_LOCK_KEYS,
    LockedPackage,
    LockfileSpec,
    lockfile_from_data,
)

__all__ = [
    "ENVIRONMENT_KEYS",
    "NAME_PATTERN",
    "EnvironmentSpec",
    "LockedPackage",
    "LockfileSpec",
    "SpecLimits",
    "canonical_json",
    "parse_specification",
    "specification_from_dict",
    "validate_name",
]

#: Top-level keys of an environment specification. ``prefix`` is accepted and ignored.
ENVIRONMENT_KEYS = ("name", "channels", "dependencies", "variables", "description", "prefix")
#: conda-store's lockfile-specification shape.
LOCKFILE_SPEC_KEYS = ("name", "description", "lockfile")

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class SpecLimits:
    """Size limits for submitted specifications; the configuration layer supplies real values.

    ``max_bytes`` and ``max_dependencies`` apply to environment specifications (conda and pip
    entries together); lockfiles, which list every package of every platform, have their own
    ``max_lockfile_bytes`` and ``max_lockfile_packages``. Text larger than both byte limits is
    refused before it is parsed.
    """

    max_bytes: int = 64 * 1024
    max_name_length: int = 64
    max_dependencies: int = 1000
    max_lockfile_bytes: int = 16 * 1024 * 1024
    max_lockfile_packages: int = 50_000


def canonical_json(data: Any) -> str:
    """JSON with sorted keys and no whitespace; lists keep their order (channel priority)."""
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


@dataclass(frozen=True)
class EnvironmentSpec:
    """A validated ``environment.yaml``.

    - ``channels``: as written, in priority order (``nodefaults`` dropped, nothing else changed);
      :func:`~appliance.schemas.channels.normalize_channel` resolves them.
    - ``dependencies``: conda MatchSpecs, each normalized by
      :func:`~appliance.schemas.dependencies.normalize_matchspec` to a string rattler's strict
      parser accepts with conda's meaning (``pkg 1.0`` -> ``pkg ==1.0``; ``pkg=1.0`` kept, meaning
      1.0.*), in the order written.
    - ``pip``: the entries of the ``- pip:`` block in order (requirements and index options).
    - ``variables``: environment variables set on activation, values as text exactly as written
      (``1.10`` stays ``"1.10"``).
    - ``prefix`` in the YAML is accepted and ignored: Kiln chooses where environments live.

    Build one with :func:`parse_specification` or :func:`specification_from_dict`; the
    constructor does not validate. Do not mutate ``variables``.
    """

    name: str
    channels: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()
    pip: tuple[str, ...] = ()
    variables: Mapping[str, str] = field(default_factory=dict)
    description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """conda's ``environment.yaml`` shape; :func:`specification_from_dict` reads it back.

        ``variables`` and ``description`` appear only when set; the pip block comes last.
        """
        dependencies: list[Any] = list(self.dependencies)
        if self.pip:
            dependencies.append({"pip": list(self.pip)})
        data: dict[str, Any] = {
            "name": self.name,
            "channels": list(self.channels),
            "dependencies": dependencies,
        }
        if self.variables:
            data["variables"] = dict(self.variables)
        if self.description is not None:
            data["description"] = self.description
        return data

    def to_yaml(self) -> str:
        """:meth:`to_dict` as block-style YAML, keys in conda's usual order."""
        yaml = YAML(typ="safe", pure=True)
        yaml.Resolver = _QuoteForYaml11
        yaml.default_flow_style = False
        yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
        stream = io.StringIO()
        yaml.dump(self.to_dict(), stream)
        return stream.getvalue()

    def canonical_json(self) -> str:
        """The hashed form: :meth:`to_dict` as :func:`canonical_json` (channel order matters)."""
        return canonical_json(self.to_dict())

    def sha256(self) -> str:
        """Content address of the specification (hex)."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    def __hash__(self) -> int:
        return hash(self.canonical_json())

    def channel_references(self) -> tuple[ChannelReference, ...]:
        """Every channel this spec names: ``channels`` then ``channel::pkg`` dependencies."""
        references = [
            ChannelReference(channel, f"channels[{index}]")
            for index, channel in enumerate(self.channels)
        ]
        for index, spec in enumerate(self.dependencies):
            channel = dependency_channel(spec)
            if channel is not None:
                references.append(ChannelReference(channel, f"dependencies[{index}]"))
        return tuple(references)

    def solver_dependencies(self, *, channel_alias: str) -> tuple[str, ...]:
        """``dependencies`` with ``channel::`` prefixes resolved to URLs under ``channel_alias``.

        Hand these to rattler: it resolves channel names against its own built-in alias, so
        ``conda-forge::numpy`` would not match packages from a mirror.
        """
        return tuple(
            resolve_dependency_channel(spec, channel_alias=channel_alias)
            for spec in self.dependencies
        )


class _QuoteForYaml11(VersionedResolver):
    """Quote what a YAML 1.1 reader would not read as text (``yes``, ``on``, ``010``) too.

    The output stays YAML 1.2 (no directive); PyYAML-based tools read it the same way.
    """

    @property
    def processing_version(self) -> tuple[int, int]:
        return (1, 1)


def validate_name(
    name: object, *, limits: SpecLimits = SpecLimits(), line: int | None = None
) -> str:
    """Check an environment name against the rule in the module docstring; return it."""
    allowed = (
        "names use letters, digits, '_', '.', '+' and '-', start with a letter, digit or '_', "
        f"and have at most {limits.max_name_length} characters"
    )
    if name is None:
        fail(
            f"the environment needs a name; add 'name: my-env' ({allowed})", field="name", line=line
        )
    if not isinstance(name, str):
        fail(
            f"the name must be text, not {describe(name)}; quote it ({allowed})",
            field="name",
            line=line,
        )
    if not name:
        fail(f"the name cannot be empty; {allowed}", field="name", line=line)
    if len(name) > limits.max_name_length:
        fail(f"the name is {len(name)} characters long; {allowed}", field="name", line=line)
    if ".." in name:
        fail(f"the name {name!r} contains '..'; {allowed}", field="name", line=line)
    if not NAME_PATTERN.match(name):
        bad = sorted({c for c in name if not re.match(r"[A-Za-z0-9_.+-]", c)})
        detail = (
            f"contains {', '.join(repr(c) for c in bad)}" if bad else (f"starts with {name[0]!r}")
        )
        fail(f"the name {name!r} {detail}; {allowed}", field="name", line=line)
    return name


def parse_specification(
    text: str | bytes, *, limits: SpecLimits = SpecLimits(), name: str | None = None
) -> EnvironmentSpec | LockfileSpec:
    """Read a submitted specification (environment.yaml or conda-lock v1 lockfile, YAML or JSON).

    ``name`` overrides the document's name, or provides it (bare lockfiles have none). Raises
    :class:`~appliance.common.errors.SpecificationError`.
    """
    if isinstance(text, bytes):
        size = len(text)
        _check_size(size, max(limits.max_bytes, limits.max_lockfile_bytes))
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            fail(f"the text is not UTF-8 (invalid byte at offset {error.start}); save it as UTF-8")
    else:
        size = len(text.encode("utf-8", "surrogatepass"))
        _check_size(size, max(limits.max_bytes, limits.max_lockfile_bytes))
    data = load_document(text.removeprefix("\ufeff"))
    return _from_data(data, limits=limits, name=name, size=size)


def specification_from_dict(
    data: Mapping[str, Any], *, limits: SpecLimits = SpecLimits(), name: str | None = None
) -> EnvironmentSpec | LockfileSpec:
    """Like :func:`parse_specification` for an already parsed mapping (an API JSON body).

    The byte limits apply to the mapping's JSON form.
    """
    try:
        size = len(json.dumps(data, ensure_ascii=False).encode())
    except (TypeError, ValueError) as error:
        fail(f"the specification cannot be represented as JSON: {error}")
    _check_size(size, max(limits.max_bytes, limits.max_lockfile_bytes))
    return _from_data(data, limits=limits, name=name, size=size)


def _check_size(size: int, limit: int) -> None:
    if size > limit:
        fail(f"the specification is {size} bytes; the limit on this server is {limit} bytes")


def _from_data(
    data: Any, *, limits: SpecLimits, name: str | None, size: int
) -> EnvironmentSpec | LockfileSpec:
    if not isinstance(data, Mapping):
        fail(
            f"the specification must be a mapping with the keys {', '.join(ENVIRONMENT_KEYS)} "
            f"(or a conda-lock lockfile), not {describe(data)}",
            line=start_line(data) or 1,
        )
    keys = set(data)
    if "lockfile" in keys:
        return _lockfile_spec(data, limits=limits, name=name, size=size, wrapped=True)
    if keys & {"package", "metadata"} and not keys & {"dependencies", "channels"}:
        return _lockfile_spec(data, limits=limits, name=name, size=size, wrapped=False)
    if "environments" in keys and "version" in keys:
        fail(
            f"this looks like a pixi/rattler lock file (version {data.get('version')}); Kiln "
            "accepts environment.yaml files and conda-lock v1 lockfiles (conda-lock.yml)",
            field="version",
            line=line_of(data, "version"),
        )
    _check_size(size, limits.max_bytes)
    return _environment_spec(data, limits=limits, name=name)


def _lockfile_spec(
    data: Mapping[str, Any], *, limits: SpecLimits, name: str | None, size: int, wrapped: bool
) -> LockfileSpec:
    if size > limits.max_lockfile_bytes:
        fail(
            f"the lockfile is {size} bytes; the limit on this server is "
            f"{limits.max_lockfile_bytes} bytes"
        )
    if wrapped:
        _reject_unknown_keys(data, LOCKFILE_SPEC_KEYS, "a lockfile specification")
        content = data.get("lockfile")
        prefix = "lockfile"
        effective = name if name is not None else data.get("name")
        name_line = line_of(data, "name") if name is None else None
        description = _optional_text(data, "description")
    else:
        content = data
        prefix = ""
        effective = name
        name_line = None
        description = None
    if effective is None:
        fail(
            "a lockfile carries no environment name; give one along with it, or submit "
            "{name: my-env, lockfile: {...}} (conda-store's lockfile specification)",
            field="name",
        )
    checked_name = validate_name(effective, limits=limits, line=name_line)
    if not isinstance(content, Mapping):
        fail(
            f"the lockfile must be a conda-lock v1 mapping with the keys "
            f"{', '.join(CONDA_LOCK_KEYS)}, not {describe(content)}",
            field=prefix or None,
            line=line_of(data, "lockfile") if wrapped else None,
        )
    return lockfile_from_data(
        content,
        name=checked_name,
        description=description,
        max_packages=limits.max_lockfile_packages,
        prefix=prefix,
    )


def _reject_unknown_keys(
    data: Mapping[str, Any], allowed: tuple[str, ...], what: str, note: str = ""
) -> None:
    for key in data:
        if key not in allowed:
            fail(
                f"unknown key {key!r} in {what}; allowed keys: {', '.join(allowed)}{note}",
                field=str(key),
                line=line_of(data, key),
            )


def _optional_text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    fail(f"{key} must be text, not {describe(value)}; quote it", field=key, line=line_of(data, key))


def _environment_spec(
    data: Mapping[str, Any], *, limits: SpecLimits, name: str | None
) -> EnvironmentSpec:
    _reject_unknown_keys(
        data,
        ENVIRONMENT_KEYS,
        "an environment specification",
        f" (a conda-lock lockfile has {', '.join(CONDA_LOCK_KEYS)})",
    )
    checked_name = validate_name(
        name if name is not None else data.get("name"),
        limits=limits,
        line=line_of(data, "name") if name is None else None,
    )
    channels = _channels(data)
    dependencies, pip = _dependencies(data, limits)
    return EnvironmentSpec(
        name=checked_name,
        channels=channels,
        dependencies=dependencies,
        pip=pip,
        variables=_variables(data),
        description=_optional_text(data, "description"),
    )


def _section_list(data: Mapping[str, Any], key: str, example: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        fail(
            f"{key} must be a list ({example}), not {describe(value)}",
            field=key,
            line=line_of(data, key),
        )
    return value


def _channels(data: Mapping[str, Any]) -> tuple[str, ...]:
    entries = _section_list(data, "channels", "'- conda-forge' lines")
    channels: list[str] = []
    for index, entry in enumerate(entries):
        where, line = f"channels[{index}]", line_of(entries, index)
        if entry is None:
            fail(
                "empty entry; remove the '-' or write a channel name such as conda-forge",
                field=where,
                line=line,
            )
        if not isinstance(entry, str):
            shown = raw_text(entries, index) or entry
            fail(
                f"a channel is text, not {describe(entry)} ({shown!r}); quote it",
                field=where,
                line=line,
            )
        try:
            channel = check_channel(entry)
        except ValueError as error:
            fail(str(error), field=where, line=line)
        if channel != NODEFAULTS:
            channels.append(channel)
    return tuple(channels)


def _dependencies(
    data: Mapping[str, Any], limits: SpecLimits
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    entries = _section_list(data, "dependencies", "'- numpy=1.26' lines")
    conda: list[str] = []
    pip: list[str] | None = None
    for index, entry in enumerate(entries):
        where = f"dependencies[{index}]"
        line = line_of(entries, index)
        if isinstance(entry, str):
            try:
                conda.append(normalize_matchspec(entry))
            except InvalidDependency as error:
                fail(str(error), field=where, line=line)
        elif isinstance(entry, Mapping) and list(entry) == ["pip"]:
            if pip is not None:
                fail(
                    "a second pip block; put all pip requirements in one '- pip:' list",
                    field=where,
                    line=line,
                )
            pip = _pip_block(entry, where, line)
        else:
            fail(_not_a_spec(entry, raw_text(entries, index)), field=where, line=line)
    pip = pip or []
    total = len(conda) + len(pip)
    if total > limits.max_dependencies:
        fail(
            f"{total} dependencies ({len(conda)} conda, {len(pip)} pip); the limit on this "
            f"server is {limits.max_dependencies}",
            field="dependencies",
            line=line_of(data, "dependencies"),
        )
    return tuple(conda), tuple(pip)


def _not_a_spec(entry: object, raw: str | None) -> str:
    if entry is None:
        return "empty entry; remove the '-' or write a package spec such as numpy=1.26"
    if isinstance(entry, Mapping):
        pairs = list(entry.items())
        if len(pairs) == 1 and pairs[0][1] is None:
            written = str(pairs[0][0])
            return (
                f"YAML read '{written}:' as a mapping because of the ':' at its end. A package "
                f"spec is text: write \"{written}\" without the trailing ':' (and quote any spec "
                "that contains ': ' or ' #')"
            )
        if len(pairs) == 1:
            key, value = pairs[0]
            return (
                f"YAML read this entry as a mapping ({key}: {value}), not a package spec. Write "
                f'it as text, quoted: "{key}={value}" or "{key} {value}". The only mapping '
                "allowed in dependencies is the '- pip:' block"
            )
        return (
            "YAML read this entry as a mapping, not a package spec; write one quoted spec per "
            "'-' line. The only mapping allowed in dependencies is the '- pip:' block"
        )
    if isinstance(entry, list):
        return "a list is not a package spec; write one spec per '-' line, such as numpy=1.26"
    shown = raw if raw is not None else str(entry)
    return (
        f"YAML read {shown!r} as {describe(entry)}, not a package spec; write a spec such as "
        f'"numpy=1.26" (quote it in YAML)'
    )


def _pip_block(entry: Mapping[str, Any], where: str, line: int | None) -> list[str]:
    block = entry["pip"]
    if block is None:
        fail(
            "the pip block is empty; list requirements under it ('- requests>=2') or remove it",
            field=f"{where}.pip",
            line=line,
        )
    if not isinstance(block, list):
        fail(
            f"the pip block must be a list of requirements, not {describe(block)}",
            field=f"{where}.pip",
            line=line_of(entry, "pip") or line,
        )
    pip: list[str] = []
    for index, item in enumerate(block):
        item_where = f"{where}.pip[{index}]"
        item_line = line_of(block, index)
        if not isinstance(item, str):
            shown = raw_text(block, index) or item
            fail(
                f"pip entries are text (a PEP 508 requirement or an index option), not "
                f"{describe(item)} ({shown!r}); quote it",
                field=item_where,
                line=item_line,
            )
        try:
            pip.append(check_pip_entry(item))
        except InvalidDependency as error:
            fail(str(error), field=item_where, line=item_line)
    return pip


def _variables(data: Mapping[str, Any]) -> dict[str, str]:
    value = data.get("variables")
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        fail(
            f"variables must be a mapping of NAME: value, not {describe(value)}",
            field="variables",
            line=line_of(data, "variables"),
        )
    variables: dict[str, str] = {}
    for key, item in value.items():
        where = f"variables.{key}"
        line = line_of(value, key)
        if not isinstance(key, str) or not _VARIABLE_NAME.match(key):
            fail(
                f"{key!r} is not a valid environment variable name; use letters, digits and "
                "'_', not starting with a digit",
                field=where,
                line=line,
            )
        if isinstance(item, str):
            variables[key] = item
        elif isinstance(item, bool | int | float):
            variables[key] = raw_text(value, key) or _scalar_text(item)
        else:
            fail(
                f"a variable's value must be text or a number, not {describe(item)}"
                + ("; write '' for an empty value" if item is None else ""),
                field=where,
                line=line,
            )
    return variables


def _scalar_text(value: bool | int | float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, float) else str(value)
