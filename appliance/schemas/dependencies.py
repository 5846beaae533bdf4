"""Dependency strings: conda MatchSpecs and pip requirements, checked and normalized.

**Conda.** Users write conda's lenient spellings; the solver (py-rattler 0.28) parses string specs
strictly and refuses some of them (``pkg 1.0``, ``pkg=1.0=build``). :func:`normalize_matchspec`
turns every spelling conda accepts into one the strict parser accepts *with the same meaning*:

- a spec the strict parser already reads the way conda does is kept exactly as written
  (``numpy``, ``python=3.11``, ``numpy>=1.2,<2``, ``conda-forge::numpy``, ``numpy ==1.26``);
- otherwise it is rewritten in rattler's canonical text: ``pkg 1.0`` becomes ``pkg ==1.0``
  (conda: a bare version after a space is an exact match), ``pkg=1.0=build_0`` and
  ``pkg 1.0 build_0`` become ``pkg ==1.0 build_0``, ``pkg=1.0.*`` becomes ``pkg 1.0.*``,
  ``pkg[version='1.0']`` becomes ``pkg ==1.0``;
- ``pkg=1.0`` keeps conda's *fuzzy* meaning (``1.0.*``: 1.0, 1.0.1, ...) and ``pkg==1.0`` /
  ``pkg 1.0`` the *exact* one (1.0, which equals 1.0.0);
- a channel written in front (``channel::pkg``, a name or a URL) is kept as written; rattler's
  own text would turn ``https://conda.anaconda.org/conda-forge::pkg`` into ``conda-forge::pkg``,
  which means another URL on a server with a different ``channel_alias``.

Every result is checked: the strict parse of the result must equal the lenient parse of the
input (same rendering, channel URL and subdir), otherwise the dependency is refused. rattler-only
extensions (``[extras=...]``, ``[when=...]``, ``[flags=...]``) and glob or regex package names are
refused: a specification stays readable by conda, conda-lock and conda-store.

**pip.** Entries are PEP 508 requirements (``requests>=2``, ``pkg @ https://...``) or one of the
options conda-store allows plus ``--find-links``, each with a value (``--index-url URL`` or
``--index-url=URL``).
"""

from __future__ import annotations

import re

from packaging.requirements import InvalidRequirement, Requirement
from rattler import MatchSpec

from appliance.schemas.channels import NODEFAULTS, check_channel, normalize_channel


class InvalidDependency(ValueError):
    """A dependency string is not acceptable; the message says why and what to write."""


_EXAMPLES = 'numpy, numpy=1.26, "numpy>=1.26,<2", "numpy 1.26.4 py311h_0", conda-forge::numpy'
_QUOTE_HINT = "in YAML, quote specs that contain ': ', ' #', '[' or start with '*', '&' or '!'"
_CANONICAL_CHANNEL = re.compile(r',?channel="([^"]*)"')


def _lenient(text: str) -> MatchSpec:
    return MatchSpec(
        text, strict=False, exact_names_only=True, extras=False, conditionals=False, flags=False
    )


def _strict(text: str) -> MatchSpec:
    return MatchSpec(
        text, strict=True, exact_names_only=True, extras=False, conditionals=False, flags=False
    )


def _same(a: MatchSpec, b: MatchSpec) -> bool:
    def channel_url(m: MatchSpec) -> str | None:
        return m.channel.base_url if m.channel is not None else None

    return str(a) == str(b) and channel_url(a) == channel_url(b) and a.subdir == b.subdir


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0].rstrip(".") if text else type(error).__name__


def split_channel(spec: str) -> tuple[str | None, str | None, str]:
    """Split a MatchSpec into (channel as written, subdir written with it, the rest).

    ``conda-forge/linux-64::numpy >=1`` gives ``("conda-forge", "linux-64", "numpy >=1")``;
    ``numpy[channel=conda-forge]`` gives ``("conda-forge", None, 'numpy')``; a spec without a
    channel gives ``(None, None, spec)``. Raises :class:`InvalidDependency` when ``spec`` is not
    a MatchSpec.
    """
    text = spec.strip()
    parsed = _parse_lenient(text)
    if parsed.channel is None:
        return None, None, text
    bracket = text.find("[")
    head = text if bracket < 0 else text[:bracket]
    if "::" in head:
        channel, _, rest = text.partition("::")
        channel = channel.strip()
        subdir = parsed.subdir
        if subdir and channel.rstrip("/").endswith("/" + subdir):
            return channel.rstrip("/")[: -len(subdir) - 1], subdir, rest.strip()
        return channel, None, rest.strip()
    found = None
    if "channel" in text[len(head) :]:
        try:
            canonical = parsed.to_canonical_string()
        except Exception:  # rattler raises one of a dozen native exception types
            canonical = ""
        found = _CANONICAL_CHANNEL.search(canonical)
    if found is None:
        raise InvalidDependency(
            f"{text!r}: write its channel in front of the package name, separated by '::' "
            "(conda-forge::numpy)"
        )
    rest = _CANONICAL_CHANNEL.sub("", canonical).replace("[,", "[").replace("[]", "")
    return found.group(1).rstrip("/"), None, str(_parse_lenient(rest))


def _parse_lenient(text: str) -> MatchSpec:
    try:
        return _lenient(text)
    except Exception as error:  # rattler raises one of a dozen native exception types
        raise InvalidDependency(
            f"{text!r} is not a valid conda package spec: {_first_line(error)}. "
            f"Examples: {_EXAMPLES}; {_QUOTE_HINT}"
        ) from None


def _strict_or_none(text: str) -> MatchSpec | None:
    try:
        return _strict(text)
    except Exception:  # rattler raises one of a dozen native exception types
        return None


def _strict_reason(text: str) -> str:
    try:
        _strict(text)
    except Exception as error:  # rattler raises one of a dozen native exception types
        return _first_line(error)
    return "conda and Kiln's solver read it differently"


def normalize_matchspec(spec: str) -> str:
    """The text of ``spec`` that rattler's strict parser reads the way conda reads ``spec``.

    See the module docstring for the rules. Raises :class:`InvalidDependency`.
    """
    text = spec.strip()
    if not text:
        raise InvalidDependency(f"a package spec cannot be empty. Examples: {_EXAMPLES}")
    lenient = _parse_lenient(text)
    strict = _strict_or_none(text)
    if strict is not None and _same(lenient, strict):
        candidate = text
    else:
        channel, subdir, rest = split_channel(text)
        rest_text = str(_parse_lenient(rest))
        if channel is None:
            candidate = rest_text
        else:
            candidate = f"{channel}/{subdir}::{rest_text}" if subdir else f"{channel}::{rest_text}"
        checked = _strict_or_none(candidate)
        if checked is None or not _same(lenient, checked):
            raise InvalidDependency(
                f"{text!r} cannot be read unambiguously ({_strict_reason(text)}). Write the "
                "version with an explicit operator: ==1.0 for exactly 1.0, =1.0 for any 1.0.x, "
                f'">=1.0,<2" for a range. Examples: {_EXAMPLES}'
            )
    if lenient.channel is not None:
        channel, _, _ = split_channel(candidate)
        try:
            check_channel(channel)
        except ValueError as error:
            raise InvalidDependency(f"{text!r}: {error}") from None
        if channel == NODEFAULTS:
            raise InvalidDependency(f"{text!r}: 'nodefaults' is not a channel; name a channel")
    return candidate


def dependency_channel(spec: str) -> str | None:
    """The channel a (normalized) MatchSpec names, as written, without its subdir; or ``None``."""
    channel, _, _ = split_channel(spec)
    return channel


def resolve_dependency_channel(spec: str, *, channel_alias: str) -> str:
    """``spec`` with its channel replaced by the URL it means on this server.

    rattler resolves ``conda-forge::numpy`` against its own built-in alias
    (``https://conda.anaconda.org``); a server with a mirror as ``channel_alias`` must hand the
    solver ``https://mirror/conda-forge::numpy`` instead, or the spec matches no package. Specs
    without a channel are returned unchanged.
    """
    channel, subdir, rest = split_channel(spec)
    if channel is None:
        return spec
    url = normalize_channel(channel, channel_alias=channel_alias)
    where = f"{url}/{subdir}" if subdir else url
    for candidate in (f"{where}::{rest}", f"{where}::{_parse_lenient(rest)}"):
        if _strict_or_none(candidate) is not None:
            return candidate
    raise InvalidDependency(f"{spec!r}: cannot name channel {url} in this spec")


_PIP_OPTIONS = {
    "--index-url": "URL",
    "--extra-index-url": "URL",
    "--trusted-host": "HOST",
    "--find-links": "URL",
}
_PIP_OPTIONS_HELP = ", ".join(f"{option} {value}" for option, value in _PIP_OPTIONS.items())


def check_pip_entry(entry: str) -> str:
    """Check one ``pip:`` entry; return it stripped. Raises :class:`InvalidDependency`."""
    text = entry.strip()
    if not text:
        raise InvalidDependency(
            "a pip entry cannot be empty; write a requirement such as requests>=2"
        )
    if text.startswith("-"):
        option, separator, value = text.partition("=")
        if not separator:
            option, _, value = text.partition(" ")
        option, value = option.strip(), value.strip()
        if option not in _PIP_OPTIONS:
            raise InvalidDependency(
                f"unknown pip option {option!r}; allowed options: {_PIP_OPTIONS_HELP}"
            )
        if not value or any(c.isspace() for c in value):
            raise InvalidDependency(
                f"pip option {option} needs one {_PIP_OPTIONS[option]} after it, "
                f"as in '{option} {_PIP_OPTIONS[option]}' or '{option}={_PIP_OPTIONS[option]}'"
            )
        return text
    try:
        Requirement(text)
    except InvalidRequirement as error:
        hint = ""
        if "://" in text and "@" not in text:
            hint = "; name URL requirements: 'mypkg @ git+https://host/repo.git'"
        reason = str(error).splitlines()[0]
        raise InvalidDependency(
            f"{text!r} is not a PEP 508 requirement ({reason}){hint}. "
            f"Examples: requests, requests>=2.31, \"requests[socks]==2.31; python_version>'3.8'\""
        ) from None
    return text
