"""conda-lock v1 lockfiles as specifications (conda-store's ``LockfileSpecification``).

A lockfile pins every package, with its URL and hash, for each platform it covers; building from
one skips the solve. :func:`lockfile_from_data` checks the structure conda-lock 4's v1 model
requires (unknown keys are refused, as conda-lock's strict models do) and keeps a normalized copy:

- ``version`` is set to 1 when absent;
- channel entries written as plain strings become ``{url, used_env_vars: []}``;
- each package gets conda-lock's defaults (``dependencies: {}``, ``category: main``,
  ``optional: false``) and lower-case hex hashes; scalars YAML read as numbers (``version: 1.10``)
  are kept as the text written.

Beyond conda-lock's own rules, a build from a lockfile verifies every download, so each package
needs a hash (conda packages an md5, as conda-lock requires; pip packages an md5 or sha256), each
package's platform must be one the metadata lists, and a package may appear only once per
platform and manager.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from appliance.schemas.document import describe, fail, line_of, raw_text, start_line

#: Top-level keys of a conda-lock v1 file.
CONDA_LOCK_KEYS = ("version", "metadata", "package")
METADATA_KEYS = (
    "content_hash",
    "channels",
    "platforms",
    "sources",
    "time_metadata",
    "git_metadata",
    "inputs_metadata",
    "custom_metadata",
)
PACKAGE_KEYS = (
    "name",
    "version",
    "manager",
    "platform",
    "dependencies",
    "url",
    "hash",
    "category",
    "optional",
    "source",
    "build",
)
_REQUIRED_METADATA = ("content_hash", "channels", "platforms", "sources")
_REQUIRED_PACKAGE = ("name", "version", "manager", "platform", "url", "hash")
_MANAGERS = ("conda", "pip")
_HEX_LENGTH = {"md5": 32, "sha256": 64}
_HEX = {kind: re.compile(f"^[0-9a-fA-F]{{{length}}}$") for kind, length in _HEX_LENGTH.items()}
_PLATFORM = re.compile(r"^(noarch|[a-z0-9]+-[a-z0-9_]+)$")
_CONDA_URL = re.compile(r"^(https?|file)://\S+$")
_ANY_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")


@dataclass(frozen=True)
class LockedPackage:
    """One package pinned for one platform."""

    name: str
    version: str
    manager: str
    platform: str
    url: str
    md5: str | None
    sha256: str | None
    dependencies: Mapping[str, str] = field(default_factory=dict)
    category: str = "main"
    optional: bool = False
    build: str | None = None


@dataclass(frozen=True)
class LockfileSpec:
    """A validated conda-lock v1 lockfile with the environment's name and description.

    ``lockfile`` is the normalized lockfile content (plain JSON-compatible data; see the module
    docstring). Build one with :func:`~appliance.schemas.specification.parse_specification`;
    the constructor does not validate. Do not mutate ``lockfile``.
    """

    name: str
    description: str | None
    lockfile: Mapping[str, Any]

    @property
    def platforms(self) -> tuple[str, ...]:
        """Platforms the lockfile covers, as listed in its metadata."""
        return tuple(self.lockfile["metadata"]["platforms"])

    @property
    def channels(self) -> tuple[str, ...]:
        """Channel URLs (or names) the lockfile was solved against, in priority order."""
        return tuple(str(channel["url"]) for channel in self.lockfile["metadata"]["channels"])

    def packages(self, platform: str) -> list[LockedPackage]:
        """The conda packages pinned for ``platform``, in file order.

        Raises :class:`SpecificationError` when the lockfile does not cover ``platform``.
        """
        return self._packages(platform, "conda")

    def pip_packages(self, platform: str) -> list[LockedPackage]:
        """The pip packages pinned for ``platform``, in file order."""
        return self._packages(platform, "pip")

    def _packages(self, platform: str, manager: str) -> list[LockedPackage]:
        if platform not in self.platforms:
            fail(
                f"the lockfile does not cover platform {platform} (it covers "
                f"{', '.join(self.platforms)}); lock it for {platform} too",
                field="lockfile.metadata.platforms",
            )
        return [
            LockedPackage(
                name=entry["name"],
                version=entry["version"],
                manager=entry["manager"],
                platform=entry["platform"],
                url=entry["url"],
                md5=entry["hash"].get("md5"),
                sha256=entry["hash"].get("sha256"),
                dependencies=dict(entry["dependencies"]),
                category=entry["category"],
                optional=entry["optional"],
                build=entry.get("build"),
            )
            for entry in self.lockfile["package"]
            if entry["platform"] == platform and entry["manager"] == manager
        ]

    def to_dict(self) -> dict[str, Any]:
        """conda-store's lockfile-specification shape ``{name, description, lockfile}``."""
        data: dict[str, Any] = {"name": self.name}
        if self.description is not None:
            data["description"] = self.description
        data["lockfile"] = self.lockfile
        return data

    def canonical_json(self) -> str:
        """The hashed form: :meth:`to_dict` with sorted keys, lists in file order."""
        return json.dumps(
            self.to_dict(),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )

    def sha256(self) -> str:
        """Content address of the specification (hex)."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    def __hash__(self) -> int:
        return hash(self.canonical_json())


def lockfile_from_data(
    content: Mapping[str, Any],
    *,
    name: str,
    description: str | None,
    max_packages: int,
    prefix: str = "",
) -> LockfileSpec:
    """Validate conda-lock v1 ``content`` (see the module docstring) into a :class:`LockfileSpec`.

    ``prefix`` is prepended to error fields (``lockfile`` for conda-store's wrapped shape).
    """
    return LockfileSpec(
        name=name,
        description=description,
        lockfile=_Validator(prefix).lockfile(content, max_packages),
    )


class _Validator:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def where(self, path: str) -> str:
        return f"{self.prefix}.{path}" if self.prefix else path

    def fail(self, message: str, path: str, container: object, key: object) -> NoReturn:
        line = line_of(container, key)
        if line is None:
            line = start_line(container)
        fail(message, field=self.where(path), line=line)

    def keys(
        self,
        data: Mapping[str, Any],
        allowed: tuple[str, ...],
        required: tuple[str, ...],
        path: str,
        what: str,
    ) -> None:
        for key in data:
            if key not in allowed:
                self.fail(
                    f"unknown key {key!r} in {what}; allowed keys: {', '.join(allowed)}",
                    f"{path}.{key}" if path else str(key),
                    data,
                    key,
                )
        for key in required:
            if key not in data or data[key] is None:
                fail(
                    f"{what} is missing {key!r} (required keys: {', '.join(required)})",
                    field=self.where(f"{path}.{key}" if path else key),
                    line=start_line(data),
                )

    def text(self, container: Any, key: Any, path: str) -> str:
        value = self.optional_text(container, key, path)
        if value is None:
            self.fail("must be text, not empty (null)", path, container, key)
        return value

    def optional_text(self, container: Any, key: Any, path: str) -> str | None:
        value = container.get(key) if isinstance(container, Mapping) else container[key]
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return raw_text(container, key) or str(value)
        self.fail(f"must be text, not {describe(value)}", path, container, key)

    def mapping(self, container: Any, key: str, path: str) -> Mapping[str, Any]:
        value = container[key]
        if not isinstance(value, Mapping):
            self.fail(f"must be a mapping, not {describe(value)}", path, container, key)
        return value

    def sequence(self, container: Any, key: str, path: str) -> list[Any]:
        value = container[key]
        if not isinstance(value, list):
            self.fail(f"must be a list, not {describe(value)}", path, container, key)
        return value

    def text_mapping(self, container: Any, key: str, path: str) -> dict[str, str]:
        mapping = self.mapping(container, key, path)
        result: dict[str, str] = {}
        for item_key in mapping:
            result[str(item_key)] = self.text(mapping, item_key, f"{path}.{item_key}")
        return result

    def text_list(self, container: Any, key: str, path: str) -> list[str]:
        items = self.sequence(container, key, path)
        result: list[str] = []
        for index in range(len(items)):
            result.append(self.text(items, index, f"{path}[{index}]"))
        return result

    def lockfile(self, content: Mapping[str, Any], max_packages: int) -> dict[str, Any]:
        what = "a conda-lock v1 lockfile"
        self.keys(content, CONDA_LOCK_KEYS, ("metadata", "package"), "", what)
        version = content.get("version", 1)
        if version != 1 or isinstance(version, bool) or not isinstance(version, int):
            shown = raw_text(content, "version") or version
            self.fail(
                f"lockfile version {shown!r} is not supported; Kiln reads conda-lock v1 "
                "lockfiles (version: 1, as conda-lock writes them to conda-lock.yml)",
                "version",
                content,
                "version",
            )
        metadata = self.metadata(self.mapping(content, "metadata", "metadata"))
        packages = self.sequence(content, "package", "package")
        if len(packages) > max_packages:
            self.fail(
                f"{len(packages)} packages; the limit on this server is {max_packages}",
                "package",
                content,
                "package",
            )
        platforms = metadata["platforms"]
        seen: dict[tuple[str, str, str], int] = {}
        checked = []
        for index in range(len(packages)):
            package = self.package(packages, index, platforms)
            key = (package["manager"], package["name"], package["platform"])
            if key in seen:
                self.fail(
                    f"{package['manager']} package {package['name']} appears twice for "
                    f"{package['platform']} (also package[{seen[key]}]); keep one",
                    f"package[{index}]",
                    packages,
                    index,
                )
            seen[key] = index
            checked.append(package)
        return {"version": 1, "metadata": metadata, "package": checked}

    def metadata(self, metadata: Mapping[str, Any]) -> dict[str, Any]:
        self.keys(metadata, METADATA_KEYS, _REQUIRED_METADATA, "metadata", "metadata")
        result: dict[str, Any] = {
            "content_hash": self.text_mapping(metadata, "content_hash", "metadata.content_hash"),
            "channels": self.channels(metadata),
            "platforms": self.text_list(metadata, "platforms", "metadata.platforms"),
            "sources": self.text_list(metadata, "sources", "metadata.sources"),
        }
        platforms = metadata["platforms"]
        if not result["platforms"]:
            self.fail(
                "lists no platforms; a lockfile covers at least one (linux-64)",
                "metadata.platforms",
                metadata,
                "platforms",
            )
        for index, platform in enumerate(result["platforms"]):
            if not _PLATFORM.match(platform):
                self.fail(
                    f"{platform!r} is not a conda platform (linux-64, osx-arm64, win-64, ...)",
                    f"metadata.platforms[{index}]",
                    platforms,
                    index,
                )
        for key in ("time_metadata", "git_metadata"):
            if metadata.get(key) is not None:
                result[key] = self.text_mapping(metadata, key, f"metadata.{key}")
        if metadata.get("custom_metadata") is not None:
            result["custom_metadata"] = self.text_mapping(
                metadata, "custom_metadata", "metadata.custom_metadata"
            )
        if metadata.get("inputs_metadata") is not None:
            inputs = self.mapping(metadata, "inputs_metadata", "metadata.inputs_metadata")
            checked: dict[str, dict[str, str | None]] = {}
            result["inputs_metadata"] = checked
            for source in inputs:
                path = f"metadata.inputs_metadata.{source}"
                entry = self.mapping(inputs, source, path)
                self.keys(entry, ("md5", "sha256"), (), path, path)
                checked[str(source)] = {
                    key: self.optional_text(entry, key, f"{path}.{key}")
                    for key in ("md5", "sha256")
                }
        return result

    def channels(self, metadata: Mapping[str, Any]) -> list[dict[str, Any]]:
        entries = self.sequence(metadata, "channels", "metadata.channels")
        result = []
        for index, entry in enumerate(entries):
            path = f"metadata.channels[{index}]"
            if isinstance(entry, str):
                result.append({"url": entry, "used_env_vars": []})
                continue
            if not isinstance(entry, Mapping):
                self.fail(
                    f"a channel is {{url: ..., used_env_vars: [...]}} or text, not "
                    f"{describe(entry)}",
                    path,
                    entries,
                    index,
                )
            self.keys(entry, ("url", "used_env_vars"), ("url",), path, path)
            url = self.text(entry, "url", f"{path}.url")
            used = (
                self.text_list(entry, "used_env_vars", f"{path}.used_env_vars")
                if (entry.get("used_env_vars") is not None)
                else []
            )
            result.append({"url": url, "used_env_vars": used})
        return result

    def package(self, packages: list[Any], index: int, platforms: list[str]) -> dict[str, Any]:
        path = f"package[{index}]"
        entry = packages[index]
        if not isinstance(entry, Mapping):
            self.fail(
                f"a package is a mapping (name, version, manager, platform, url, hash), "
                f"not {describe(entry)}",
                path,
                packages,
                index,
            )
        self.keys(entry, PACKAGE_KEYS, _REQUIRED_PACKAGE, path, path)
        name = self.text(entry, "name", f"{path}.name")
        manager = entry["manager"]
        if manager not in _MANAGERS:
            self.fail(
                f"manager must be conda or pip, not {manager!r}",
                f"{path}.manager",
                entry,
                "manager",
            )
        platform = self.text(entry, "platform", f"{path}.platform")
        if platform not in platforms:
            self.fail(
                f"platform {platform!r} is not one of the lockfile's platforms "
                f"({', '.join(platforms)}); add it to metadata.platforms",
                f"{path}.platform",
                entry,
                "platform",
            )
        url = self.text(entry, "url", f"{path}.url")
        pattern = _CONDA_URL if manager == "conda" else _ANY_URL
        if not pattern.match(url):
            allowed = "an http(s):// or file:// URL" if manager == "conda" else "a URL"
            self.fail(f"url must be {allowed}, not {url!r}", f"{path}.url", entry, "url")
        package: dict[str, Any] = {
            "name": name,
            "version": self.text(entry, "version", f"{path}.version"),
            "manager": manager,
            "platform": platform,
            "dependencies": (
                self.text_mapping(entry, "dependencies", f"{path}.dependencies")
                if entry.get("dependencies") is not None
                else {}
            ),
            "url": url,
            "hash": self.hashes(entry, path, manager, str(name)),
            "category": self.optional_text(entry, "category", f"{path}.category") or "main",
            "optional": self.flag(entry, "optional", f"{path}.optional"),
        }
        source = entry.get("source")
        if source is not None:
            source_path = f"{path}.source"
            source_map = self.mapping(entry, "source", source_path)
            self.keys(source_map, ("type", "url"), ("type", "url"), source_path, source_path)
            if source_map["type"] != "url":
                self.fail("source type must be 'url'", f"{source_path}.type", source_map, "type")
            package["source"] = {
                "type": "url",
                "url": self.text(source_map, "url", f"{source_path}.url"),
            }
        build = self.optional_text(entry, "build", f"{path}.build")
        if build is not None:
            package["build"] = build
        return package

    def hashes(
        self, entry: Mapping[str, Any], path: str, manager: str, name: str
    ) -> dict[str, str]:
        hash_path = f"{path}.hash"
        hashes = self.mapping(entry, "hash", hash_path)
        self.keys(hashes, ("md5", "sha256"), (), hash_path, hash_path)
        result: dict[str, str] = {}
        for kind, pattern in _HEX.items():
            value = self.optional_text(hashes, kind, f"{hash_path}.{kind}")
            if value is None:
                continue
            if not pattern.match(value):
                self.fail(
                    f"{kind} must be {_HEX_LENGTH[kind]} hex digits, not {value!r}",
                    f"{hash_path}.{kind}",
                    hashes,
                    kind,
                )
            result[kind] = value.lower()
        if manager == "conda" and "md5" not in result:
            self.fail(
                f"conda package {name} has no md5 hash; conda-lock requires one and Kiln "
                "verifies every download",
                hash_path,
                entry,
                "hash",
            )
        if not result:
            self.fail(
                f"pip package {name} has no md5 or sha256 hash; Kiln verifies every download",
                hash_path,
                entry,
                "hash",
            )
        return result

    def flag(self, entry: Mapping[str, Any], key: str, path: str) -> bool:
        value = entry.get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            self.fail(f"must be true or false, not {describe(value)}", path, entry, key)
        return value
