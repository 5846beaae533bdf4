"""What every Kiln configurable class shares.

Trait metadata conventions (set with ``.tag(...)``; read by the loader, ``generate``, ``show``
and ``verify``):

``config=True``
    The option can be set from a configuration file (traitlets' own flag).
``secret=True`` / ``secret="url"``
    The value is masked as ``********`` wherever Kiln prints it; ``"url"`` masks only the
    password part of a URL (``postgresql://kiln:********@db/kiln``).
``env="KILN_..."``
    An environment variable that sets the option. It overrides the configuration file.
``obsolete="reason"``
    A conda-store option Kiln accepts (so conda-store files load unchanged) and ignores; the
    loader logs the reason once when a file sets it.
``default_text="..."``
    How to describe a default that depends on the host or the data dir (``<data dir>/store``).
``follows="trait"``
    The default is derived from another option of the same class; ``show`` reports it as such.

How classes learn the data dir: :class:`KilnConfigurable` has a ``data_dir`` trait (not
configurable) that the loader passes to every instance it creates. Defaults that live in the
data dir are computed from it when first read, and relative paths given in a configuration file
are taken relative to it, so nothing depends on the working directory or on process-wide state.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Mapping
from typing import Any

from traitlets import Any as AnyTrait
from traitlets import HasTraits, Instance, TraitError, TraitType, Type, Unicode, default
from traitlets.config import LoggingConfigurable
from traitlets.utils.importstring import import_item

from appliance.common.paths import DataDir, default_data_dir

#: What a secret looks like when Kiln prints it.
MASK = "********"

SECRET = "secret"
ENV = "env"
OBSOLETE = "obsolete"
DEFAULT_TEXT = "default_text"
FOLLOWS = "follows"


class KilnConfigurable(LoggingConfigurable):
    """Base of Kiln's configurable classes: knows the data dir its defaults live in."""

    data_dir = Instance(
        DataDir,
        help="The data dir that path defaults and relative paths are resolved against "
        "(given by the loader; not settable from a configuration file).",
    )

    @default("data_dir")
    def _default_data_dir(self) -> DataDir:
        parent = self.parent
        if isinstance(parent, KilnConfigurable):
            return parent.data_dir
        return DataDir(default_data_dir())

    @classmethod
    def value_notices(cls, name: str, value: Any) -> list[str]:
        """Warnings about an accepted value that Kiln will not (fully) use.

        The loader calls this once per option set in a file, so each notice is logged once per
        load (validators run on every instantiation and must stay silent).
        """
        return []


def enum_value(value: Any) -> Any:
    """Return ``value.value`` for enum members (conda-store files use its enums), else ``value``."""
    return value.value if isinstance(value, enum.Enum) else value


class DataDirPath(Unicode):  # type: ignore[type-arg]
    """A filesystem path option.

    Accepts ``str`` or ``os.PathLike``; ``~`` is expanded and a relative path is taken relative
    to the data dir (conda-store took it relative to the working directory, which depends on how
    the service happened to be started). The value is always an absolute path string.
    """

    def validate(self, obj: Any, value: Any) -> Any:
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        value = super().validate(obj, value)
        if value is None:
            return None
        expanded = os.path.expanduser(value)
        if not os.path.isabs(expanded):
            if not expanded:
                raise TraitError(f"{option_name(obj, self)}: expected a path, not an empty string")
            root = obj.data_dir.root if isinstance(obj, KilnConfigurable) else os.getcwd()
            expanded = os.path.join(os.fspath(root), expanded)
        return os.path.normpath(expanded)


class ClassChoice(Type):  # type: ignore[type-arg]
    """A class option that also accepts a short name or a conda-store dotted path.

    ``choices`` maps short names (``"S3Storage"``) to Kiln's classes; ``conda_store_modules``
    lists the conda-store modules whose ``<module>.<name>`` spelling means the same class
    (``"conda_store_server.storage.S3Storage"``). Any other dotted path is imported, for custom
    classes; it must name a subclass of ``klass``. The table is explicit because a frozen binary
    cannot discover plugins by entry points.
    """

    def __init__(
        self,
        default_value: type,
        klass: type,
        choices: Mapping[str, type],
        conda_store_modules: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(default_value, klass=klass, **kwargs)
        self.choices = dict(choices)
        self.conda_store_modules = conda_store_modules

    def allowed_names(self) -> list[str]:
        names = list(self.choices)
        for module in self.conda_store_modules:
            names.extend(f"{module}.{name}" for name in self.choices)
        return names

    def validate(self, obj: Any, value: Any) -> Any:
        if isinstance(value, str):
            value = self._resolve_name(obj, value)
        if isinstance(value, type) and isinstance(self.klass, type):
            if not issubclass(value, self.klass):
                raise TraitError(
                    f"{option_name(obj, self)}: {value.__module__}.{value.__qualname__} is not a "
                    f"{self.klass.__name__}; use one of {', '.join(self.choices)}"
                )
            return value
        return super().validate(obj, value)

    def _resolve_name(self, obj: Any, name: str) -> type:
        if name in self.choices:
            return self.choices[name]
        module, _, short = name.rpartition(".")
        if module in self.conda_store_modules and short in self.choices:
            return self.choices[short]
        if not module:
            raise TraitError(
                f"{option_name(obj, self)}: unknown class {name!r}; allowed: "
                f"{', '.join(self.allowed_names())}, or the dotted path of a custom subclass "
                f"of {getattr(self.klass, '__name__', self.klass)}"
            )
        try:
            resolved = import_item(name)
        except (ImportError, AttributeError) as error:
            raise TraitError(
                f"{option_name(obj, self)}: cannot import {name!r} ({error}); allowed: "
                f"{', '.join(self.allowed_names())}"
            ) from error
        if not isinstance(resolved, type):
            raise TraitError(f"{option_name(obj, self)}: {name!r} is not a class")
        return resolved

    def short_name(self, value: type) -> str:
        """The name to print for ``value``: its short name when it is one of the choices."""
        for name, klass in self.choices.items():
            if klass is value:
                return name
        return f"{value.__module__}.{value.__qualname__}"


def option_name(obj: Any, trait: TraitType[Any, Any]) -> str:
    """``Class.trait`` for messages."""
    owner = type(obj).__name__ if obj is not None else "?"
    return f"{owner}.{trait.name}"


_URL_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@]*:)(?P<pw>[^@]*)(?P<at>@)")


def mask_url_password(url: str) -> str:
    """``scheme://user:password@host/...`` -> ``scheme://user:********@host/...``."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}{m['at']}", url)


def masked(trait: TraitType[Any, Any], value: Any) -> Any:
    """``value`` as it may be printed: secrets replaced by :data:`MASK`, empty values kept."""
    kind = trait.metadata.get(SECRET)
    if not kind or value is None or value == "" or value == {} or value == []:
        return value
    if kind == "url" and isinstance(value, str):
        return mask_url_password(value)
    return MASK


def describe(trait: TraitType[Any, Any], value: Any) -> str:
    """A short, readable rendering of an (already masked) value for messages and ``show``."""
    if isinstance(value, type):
        if isinstance(trait, ClassChoice):
            return repr(trait.short_name(value))
        return repr(f"{value.__module__}.{value.__qualname__}")
    if callable(value) and not isinstance(value, type):
        name = getattr(value, "__qualname__", type(value).__qualname__)
        return f"<callable {getattr(value, '__module__', '?')}.{name}>"
    return repr(value)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class LogLevel(Unicode):  # type: ignore[type-arg]
    """A logging level: a name ("INFO") or a number (``logging.INFO``, as conda-store files use)."""

    def validate(self, obj: Any, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            names = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}
            if value in names:
                return names[value]
        if isinstance(value, str) and value.upper() in LOG_LEVELS:
            return value.upper()
        raise TraitError(
            f"{option_name(obj, self)}: {value!r} is not a log level; allowed: "
            f"{', '.join(LOG_LEVELS)} or logging.DEBUG ... logging.CRITICAL"
        )


def obsolete_option(reason: str, help: str) -> AnyTrait:
    """A conda-store option that Kiln accepts and ignores; ``reason`` is logged when it is set."""
    return AnyTrait(None, allow_none=True, help=help).tag(config=True, **{OBSOLETE: reason})


def ordered_traits(cls: type[HasTraits], *, own: bool = False) -> dict[str, TraitType[Any, Any]]:
    """The configurable traits of ``cls`` in definition order (base classes first).

    ``own=True`` keeps only those defined (or redefined) on ``cls`` itself.
    """
    final = cls.class_own_traits(config=True) if own else cls.class_traits(config=True)
    ordered: dict[str, TraitType[Any, Any]] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, TraitType) and name in final and name not in ordered:
                ordered[name] = final[name]
    return ordered
