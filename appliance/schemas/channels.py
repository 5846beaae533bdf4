"""Conda channels: what a user may write, what it means on this server, and who may use it.

A channel is written in one of these forms; :func:`normalize_channel` turns each into the one URL
Kiln solves against and compares policies on (``<alias>`` is ``conda_channel_alias`` without its
trailing ``/``, ``https://conda.anaconda.org`` by default):

- ``conda-forge``, ``conda-forge/label/dev`` -> ``<alias>/conda-forge``,
  ``<alias>/conda-forge/label/dev``;
- ``https://host/path/`` (or ``http``) -> ``https://host/path`` (scheme and host lower-cased,
  trailing ``/`` dropped);
- ``file:///srv/channel`` -> itself; ``/srv/channel`` -> ``file:///srv/channel``;
- ``defaults`` -> ``<alias>/main`` (see below).

Refused, with a message that says what to write instead: relative paths (``./chan``,
``../chan``, ``~/chan``; they would be resolved on the server, in whatever directory a worker
happens to run), Windows paths, URLs with a query or fragment, schemes other than http, https and
file, names with ``..`` segments or characters outside ``A-Z a-z 0-9 _ . + -``.

``defaults``: conda expands it to ``repo.anaconda.com/pkgs/main`` and ``/pkgs/r``. Kiln is
offline-first and solves only against channels the operator can mirror, so ``defaults`` means the
``main`` channel under the configured ``channel_alias`` (``https://conda.anaconda.org/main`` on the
public alias, which carries the same packages as ``pkgs/main``; ``<mirror>/main`` behind a
mirror). The legacy ``r`` channel is not added; write it explicitly if you need it. Operators who
want Anaconda's own server list ``https://repo.anaconda.com/pkgs/main`` instead.
``nodefaults`` (an ``environment.yml`` marker meaning "do not add defaults") needs no meaning in
Kiln, which never adds channels behind the user's back: the specification parser drops it.

Policy (:func:`check_allowed_channels`): conda-store's ``conda_allowed_channels``, compared after
normalization, so ``conda-forge`` and ``https://conda.anaconda.org/conda-forge/`` are the same
channel. An empty allowed list allows every channel (conda-store's meaning); Kiln's own default
for the setting is chosen by the configuration layer.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

from appliance.common.errors import ConfigurationError, SpecificationError

#: conda's and conda-store's default ``channel_alias``.
DEFAULT_CHANNEL_ALIAS = "https://conda.anaconda.org"
#: What ``defaults`` stands for, resolved like any channel name (see the module docstring).
DEFAULTS_CHANNEL = "main"
#: Accepted in ``environment.yml`` channel lists and dropped by the parser.
NODEFAULTS = "nodefaults"

_SCHEMES = ("http", "https", "file")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
_WINDOWS_PATH = re.compile(r"^[A-Za-z]:[\\/]|\\")

_NAME_HELP = (
    "write a channel name (conda-forge, conda-forge/label/dev), an http(s):// or file:/// URL, "
    "or an absolute path (/srv/conda/channel)"
)


def check_channel(channel: object) -> str:
    """Check how ``channel`` is written, without resolving it; return it stripped.

    Raises ``ValueError`` whose message says what is wrong and what is allowed; callers add the
    location. ``defaults`` and ``nodefaults`` are accepted.
    """
    if not isinstance(channel, str):
        raise ValueError(f"a channel must be text; {_NAME_HELP}")
    text = channel.strip()
    if not text:
        raise ValueError(f"a channel cannot be empty; {_NAME_HELP}")
    if any(c.isspace() for c in text):
        raise ValueError(f"channel {text!r} contains a space; {_NAME_HELP}")
    if "::" in text:
        raise ValueError(
            f"channel {text!r} contains '::', which only appears in dependencies "
            "(conda-forge::numpy); list the channel alone"
        )
    if _SCHEME.match(text):
        _normalize_url(text)
        return text
    if text.startswith("/"):
        return text
    if text.startswith((".", "~")):
        raise ValueError(
            f"channel {text!r} is a relative path; relative paths are not allowed because the "
            "server would resolve them in its own working directory. Use an absolute path "
            "(/srv/conda/channel) or a file:/// URL"
        )
    if _WINDOWS_PATH.search(text):
        raise ValueError(
            f"channel {text!r} looks like a Windows path; Kiln runs on Linux: use an absolute "
            "POSIX path (/srv/conda/channel) or a file:/// URL"
        )
    for segment in text.rstrip("/").split("/"):
        if not _SEGMENT.match(segment):
            raise ValueError(
                f"channel {text!r} is not a valid channel name: each '/'-separated part must "
                "start with a letter, digit or '_' and contain only letters, digits, "
                f"'_', '.', '+' and '-'; {_NAME_HELP}"
            )
    return text


def normalize_channel(
    channel: str, *, channel_alias: str, defaults_channel: str = DEFAULTS_CHANNEL
) -> str:
    """The URL ``channel`` stands for on a server whose alias is ``channel_alias``.

    See the module docstring for the forms. Raises :class:`SpecificationError` (field
    ``channels``) when the channel is written in a way Kiln refuses, including ``nodefaults``,
    which names no channel; :class:`ConfigurationError` when ``channel_alias`` itself is not an
    http(s)/file URL or absolute path.
    """
    try:
        text = check_channel(channel)
    except ValueError as error:
        raise SpecificationError(f"channels: {error}", field="channels") from None
    if text == NODEFAULTS:
        raise SpecificationError(
            "channels: 'nodefaults' is a marker, not a channel; remove it", field="channels"
        )
    if text == "defaults":
        if defaults_channel == "defaults":
            raise ConfigurationError("the channel that 'defaults' stands for cannot be 'defaults'")
        return normalize_channel(defaults_channel, channel_alias=channel_alias)
    if _SCHEME.match(text):
        return _normalize_url(text)
    if text.startswith("/"):
        return _path_url(text)
    return f"{_normalize_alias(channel_alias)}/{text.rstrip('/')}"


def _normalize_alias(channel_alias: str) -> str:
    alias = channel_alias.strip()
    try:
        if _SCHEME.match(alias):
            return _normalize_url(alias)
        if alias.startswith("/"):
            return _path_url(alias)
    except ValueError as error:
        raise ConfigurationError(f"conda_channel_alias {channel_alias!r}: {error}") from None
    raise ConfigurationError(
        f"conda_channel_alias {channel_alias!r} must be an http(s):// or file:/// URL or an "
        "absolute path, such as https://conda.anaconda.org"
    )


def _path_url(path: str) -> str:
    return PurePosixPath("/" + posixpath.normpath(path).lstrip("/")).as_uri()


def _normalize_url(url: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise ValueError(
            f"channel {url!r} uses the {scheme}:// scheme; Kiln reads channels over "
            "http://, https:// and file:// only"
        )
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ValueError(f"channel URL {url!r} must not have a query (?) or fragment (#)")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(
                f"channel URL {url!r} names a host; file URLs are local: file:///srv/channel"
            )
        if not parts.path.startswith("/"):
            raise ValueError(f"channel URL {url!r} needs an absolute path: file:///srv/channel")
        path = "/" + posixpath.normpath(parts.path).lstrip("/")
        return "file://" + path
    if not parts.hostname:
        raise ValueError(f"channel URL {url!r} has no host name")
    userinfo, _, hostport = parts.netloc.rpartition("@")
    netloc = f"{userinfo}@{hostport.lower()}" if userinfo else hostport.lower()
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


@dataclass(frozen=True)
class ChannelReference:
    """A channel as a specification names it, and where (``channels[0]``, ``dependencies[3]``)."""

    channel: str
    field: str


@runtime_checkable
class ReferencesChannels(Protocol):
    """Anything that can list the channels it names (an :class:`EnvironmentSpec` does)."""

    def channel_references(self) -> tuple[ChannelReference, ...]: ...


def check_allowed_channels(
    channels: ReferencesChannels | Iterable[str | ChannelReference],
    allowed: Sequence[str] = (),
    *,
    channel_alias: str,
) -> None:
    """Refuse any channel that is not in ``allowed`` (conda-store's ``conda_allowed_channels``).

    ``channels`` is a specification (its ``channels`` and the channels its dependencies name with
    ``channel::package``) or plain channel strings. Both sides are normalized with
    ``channel_alias`` before comparing. An empty ``allowed`` allows everything. Raises
    :class:`SpecificationError` naming the refused channel, where it was written, and the allowed
    channels; :class:`ConfigurationError` when an entry of ``allowed`` is itself invalid.
    """
    if not allowed:
        return
    permitted: dict[str, str] = {}
    for entry in allowed:
        try:
            permitted.setdefault(normalize_channel(entry, channel_alias=channel_alias), entry)
        except SpecificationError as error:
            raise ConfigurationError(
                f"conda_allowed_channels entry {entry!r} is invalid: {error.message}"
            ) from None
    if isinstance(channels, ReferencesChannels):
        references: Iterable[str | ChannelReference] = channels.channel_references()
    else:
        references = channels
    for reference in references:
        if isinstance(reference, str):
            reference = ChannelReference(reference, "channels")
        if reference.channel == NODEFAULTS:
            continue
        try:
            url = normalize_channel(reference.channel, channel_alias=channel_alias)
        except SpecificationError as error:
            raise SpecificationError(
                f"{reference.field}: {error.message.removeprefix('channels: ')}",
                field=reference.field,
            ) from None
        if url not in permitted:
            listed = ", ".join(
                written if written == normalized else f"{written} ({normalized})"
                for normalized, written in permitted.items()
            )
            shown = (
                reference.channel if reference.channel == url else (f"{reference.channel} ({url})")
            )
            raise SpecificationError(
                f"{reference.field}: channel {shown} is not allowed on this server; "
                f"allowed channels: {listed}",
                field=reference.field,
            )
