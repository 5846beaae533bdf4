"""``kiln config show``: the effective configuration, secrets masked, with each value's source."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from traitlets.config import Configurable

from appliance.config.base import OBSOLETE, ClassChoice, describe, masked, ordered_traits
from appliance.config.catalog import CLASSES
from appliance.config.loader import KilnConfig


@dataclass(frozen=True)
class EffectiveOption:
    """One option as it is in effect."""

    section: str
    name: str
    #: The value with secrets replaced by ``********``.
    value: Any
    #: ``describe``'d value, valid Python for plain values.
    display: str
    #: ``default``, ``file <path>``, ``environment KILN_X`` (see ``KilnConfig.source_of``).
    source: str
    #: Why Kiln ignores the option, for conda-store options that were set.
    ignored: str | None = None

    @property
    def option(self) -> str:
        return f"{self.section}.{self.name}"


_ROLES = {
    "storage": "CondaStore.storage_class",
    "authentication": "CondaStoreServer.authentication_class",
    "authentication_backend": "Authentication.authentication_backend",
    "authorization_backend": "Authentication.authorization_backend",
}


def _role(config: KilnConfig, instance: Configurable) -> str | None:
    for attribute, option in _ROLES.items():
        if getattr(config, attribute) is instance:
            return option
    return None


def _sections(config: KilnConfig) -> list[tuple[Configurable, str | None]]:
    """(instance, note) for the sections in use, then those configured but not in use."""
    active = config.active_sections()
    sections: list[tuple[Configurable, str | None]] = []
    for instance in active:
        role = _role(config, instance)
        sections.append((instance, f"chosen by {role}" if role else None))
    in_use = {type(instance) for instance in active}
    configured = config.configured_sections()
    for cls in CLASSES:
        if (
            cls.__name__ in configured
            and cls not in in_use
            and not any(issubclass(used, cls) for used in in_use)
        ):
            sections.append((config.section(cls), "configured but not in use"))
    return sections


def effective_options(config: KilnConfig, instance: Configurable) -> list[EffectiveOption]:
    """The options of one configured instance (ignored ones only when they were set)."""
    options: list[EffectiveOption] = []
    section = type(instance).__name__
    for name, trait in ordered_traits(type(instance)).items():
        source = config.source_of(instance, name)
        reason = trait.metadata.get(OBSOLETE)
        if reason and source == "default":
            continue
        value = masked(trait, getattr(instance, name))
        options.append(
            EffectiveOption(
                section=section,
                name=name,
                value=value,
                display=describe(trait, value),
                source=source,
                ignored=reason,
            )
        )
    return options


def render_text(config: KilnConfig) -> str:
    """The effective configuration as commented, Python-like text."""
    lines = [
        "# Effective Kiln configuration (secrets are shown as ********).",
        f"# data dir:    {config.data_dir.root}",
        f"# config file: {config.config_file or 'none'}",
    ]
    for instance, note in _sections(config):
        section = type(instance).__name__
        lines.append("")
        lines.append(f"# {section}" + (f" ({note})" if note else ""))
        for option in effective_options(config, instance):
            comment = option.source
            if option.ignored:
                comment += f"; ignored: {option.ignored}"
            lines.append(f"c.{section}.{option.name} = {option.display}  # {comment}")
    return "\n".join(lines) + "\n"


def _jsonable(trait_value: Any, trait: Any = None) -> Any:
    if isinstance(trait_value, type):
        if isinstance(trait, ClassChoice):
            return trait.short_name(trait_value)
        return f"{trait_value.__module__}.{trait_value.__qualname__}"
    if callable(trait_value):
        return describe(trait, trait_value) if trait is not None else repr(trait_value)
    if isinstance(trait_value, set | frozenset | tuple):
        return [_jsonable(item) for item in sorted(trait_value, key=str)]
    if isinstance(trait_value, list):
        return [_jsonable(item) for item in trait_value]
    if isinstance(trait_value, dict):
        return {str(key): _jsonable(item) for key, item in trait_value.items()}
    if trait_value is None or isinstance(trait_value, str | int | float | bool):
        return trait_value
    return repr(trait_value)


def render_json(config: KilnConfig) -> str:
    """The effective configuration as JSON (for the TUI and scripts)."""
    sections = []
    for instance, note in _sections(config):
        traits = type(instance).class_traits(config=True)
        sections.append(
            {
                "class": type(instance).__name__,
                "note": note,
                "options": [
                    {
                        "option": option.option,
                        "value": _jsonable(option.value, traits[option.name]),
                        "source": option.source,
                        "ignored": option.ignored,
                    }
                    for option in effective_options(config, instance)
                ],
            }
        )
    document = {
        "data_dir": str(config.data_dir.root),
        "config_file": str(config.config_file) if config.config_file else None,
        "sections": sections,
    }
    return json.dumps(document, indent=2) + "\n"
