"""Splitting an environment into layers, and writing each layer.

One layer per conda package, so that images with a package in common share that layer's blob
(in storage, in the registry, on pull). A layer's bytes depend only on the package's installed
files and the in-image prefix, never on the other packages of the environment: its entries are
the package's files plus the directories above them, all written the same way
(:mod:`appliance.oci.tarball`). Layers are ordered by package name.

When an environment has more packages than an image may have layers, the largest packages keep
their own layers and the rest share one (:func:`plan_layers`). Last comes the environment's own
layer: everything in the prefix no package owns (``conda-meta``, activation scripts, files pip
installed), with ``conda-meta`` records stripped of the build host's paths.

Timestamps: the files a package ships (``paths_data`` types ``hardlink`` and ``softlink``) keep
the modification time they were installed with: it comes from the package archive, and Python's
``.pyc`` files are only valid next to sources with that exact time. Files the installer makes
(entry points, compiled files), directories and the environment's own layer get time 0.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from appliance.oci.tarball import LayerBlob, LayerWriter

#: ``paths_data`` types of files copied (or linked) from the package as they are in it.
_SHIPPED = frozenset({"hardlink", "softlink", "directory"})
#: Fields of a ``conda-meta`` record that name places on the build host.
_HOST_FIELDS = ("extracted_package_dir", "package_tarball_full_path")


@dataclass(frozen=True)
class PackageFiles:
    """One installed conda package, as its ``conda-meta`` record describes it."""

    name: str
    version: str
    build: str
    #: Paths relative to the prefix, as the record lists them.
    paths: tuple[str, ...]
    #: Bytes of its files, from the record (for planning only).
    size: int
    #: Paths the installer made rather than copied from the package (entry points, .pyc).
    generated: frozenset[str] = frozenset()
    #: The ``conda-meta`` record as read (its file name and content), for the environment's
    #: own layer.
    record_file: str = field(default="", compare=False, repr=False)
    record: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def title(self) -> str:
        return f"{self.name} {self.version} {self.build}"


def read_packages(prefix: Path) -> list[PackageFiles]:
    """The packages installed in ``prefix``, from ``conda-meta/*.json``, sorted by name."""
    packages = []
    for record_path in sorted((prefix / "conda-meta").glob("*.json")):
        record: dict[str, Any] = json.loads(record_path.read_bytes())
        paths_data = record.get("paths_data") or {}
        entries = paths_data.get("paths") or [] if isinstance(paths_data, dict) else []
        entries = [entry for entry in entries if isinstance(entry, dict) and "_path" in entry]
        sizes = {entry["_path"]: int(entry.get("size_in_bytes") or 0) for entry in entries}
        paths = tuple(record.get("files") or sizes)
        packages.append(
            PackageFiles(
                name=str(record["name"]),
                version=str(record["version"]),
                build=str(record["build"]),
                paths=paths,
                size=sum(sizes.get(path, 0) for path in paths),
                generated=frozenset(
                    entry["_path"]
                    for entry in entries
                    if entry.get("path_type", "hardlink") not in _SHIPPED
                ),
                record_file=record_path.name,
                record=record,
            )
        )
    return sorted(packages, key=lambda package: package.name)


@dataclass(frozen=True)
class LayerPlan:
    """The packages one layer holds (one, or several small ones)."""

    packages: tuple[PackageFiles, ...]

    @property
    def description(self) -> str:
        """What the layer holds, for the image history and the build log."""
        if len(self.packages) == 1:
            return f"conda package {self.packages[0].title}"
        names = ", ".join(package.name for package in self.packages)
        return f"{len(self.packages)} small conda packages: {names}"


def plan_layers(packages: Sequence[PackageFiles], *, max_layers: int) -> list[LayerPlan]:
    """Layers for ``packages``: one per package with files, in name order; when there are
    more than ``max_layers``, the ``max_layers - 1`` largest keep their own layers and the
    others share the last one. ``max_layers`` must be at least 1."""
    if max_layers < 1:
        raise ValueError("an image needs room for at least one package layer")
    with_files = sorted((p for p in packages if p.paths), key=lambda p: p.name)
    if len(with_files) <= max_layers:
        return [LayerPlan((package,)) for package in with_files]
    by_size = sorted(with_files, key=lambda p: (-p.size, p.name))
    own = {package.name for package in by_size[: max_layers - 1]}
    plans = [LayerPlan((package,)) for package in with_files if package.name in own]
    plans.append(LayerPlan(tuple(package for package in with_files if package.name not in own)))
    return plans


def _sort_key(name: str) -> str:
    """Order of entries in a layer: path components compared one by one (a directory comes
    right before its contents): ``/`` sorts below every other character."""
    return name.replace("/", "\0")


class _Entry(NamedTuple):
    """A path to archive: where it is on disk, whether it keeps its modification time (else
    time 0), and how a regular file's content is rewritten (when it is)."""

    source: str
    keep_time: bool
    transform: Callable[[bytes], bytes] | None = None


class LayerContent:
    """The entries of one layer under ``root`` (the in-image prefix without its leading
    slash), collected, then written sorted with every parent directory."""

    def __init__(self, root: str) -> None:
        self.root = root.strip("/")
        self._entries: dict[str, _Entry] = {}
        self._directories: set[str] = set()
        self._add_parents(self.root + "/")

    def __len__(self) -> int:
        return len(self._entries)

    def _add_parents(self, name: str) -> None:
        directory = name.rpartition("/")[0]
        while directory and directory not in self._directories:
            self._directories.add(directory)
            directory = directory.rpartition("/")[0]

    def add_package_files(
        self, prefix: str, relatives: Iterable[str], generated: frozenset[str]
    ) -> None:
        """Many files of a package at once (``prefix/<relative>`` as ``<root>/<relative>``),
        keeping their modification times except for ``generated`` ones."""
        root, entries, directories = self.root, self._entries, self._directories
        for relative in relatives:
            name = f"{root}/{relative}"
            entries[name] = _Entry(f"{prefix}/{relative}", relative not in generated)
            if name.rpartition("/")[0] not in directories:
                self._add_parents(name)

    def add(
        self,
        relative: str,
        source: str | os.PathLike[str],
        *,
        keep_time: bool = False,
        transform: Callable[[bytes], bytes] | None = None,
    ) -> None:
        """``source`` (a file, symlink or directory) as ``<root>/<relative>``; ``keep_time``
        keeps its modification time; ``transform`` rewrites a regular file's bytes (when the
        layer is written, in the writing thread)."""
        name = f"{self.root}/{relative.strip('/')}"
        self._add_parents(name)
        self._entries[name] = _Entry(os.fspath(source), keep_time, transform)

    def write(self, path: Path) -> LayerBlob:
        """Write the layer to ``path``. Hard links between entries of this layer stay hard
        links; paths that vanished from disk are skipped."""
        names = sorted({*self._directories, *self._entries}, key=_sort_key)
        seen: dict[tuple[int, int], str] = {}
        entries = self._entries
        with LayerWriter(path) as writer:
            for name in names:
                entry = entries.get(name)
                if entry is None:
                    writer.add_directory(name)
                    continue
                try:
                    info = os.lstat(entry.source)
                except FileNotFoundError:
                    continue
                mode = info.st_mode
                mtime = max(0, int(info.st_mtime)) if entry.keep_time else 0
                if stat.S_ISREG(mode):
                    if entry.transform is not None:
                        data = entry.transform(_read(entry.source, info.st_size))
                        writer.add_bytes(name, data, mode=mode, mtime=mtime)
                        continue
                    if info.st_nlink > 1:
                        inode = (info.st_dev, info.st_ino)
                        if inode in seen:
                            writer.add_hardlink(name, seen[inode], mode=mode, mtime=mtime)
                            continue
                        seen[inode] = name
                    size = info.st_size
                    if size <= _SMALL:
                        writer.add_bytes(name, _read(entry.source, size), mode=mode, mtime=mtime)
                    else:
                        writer.add_file(name, entry.source, mode=mode, size=size, mtime=mtime)
                elif stat.S_ISLNK(mode):
                    writer.add_symlink(name, os.readlink(entry.source), mtime=mtime)
                elif stat.S_ISDIR(mode):
                    writer.add_directory(name)
            return writer.finish()


#: Files up to this size are read whole by :func:`_read`.
_SMALL = 1 << 20


def _read(path: str, size: int) -> bytes:
    """The ``size`` bytes of the file at ``path``; OSError if it has another size now."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, size + 1)
        while len(data) < size and (more := os.read(fd, size + 1 - len(data))):
            data += more
    finally:
        os.close(fd)
    if len(data) != size:
        raise OSError(f"{path} changed size while it was archived")
    return data


def package_layer(prefix: Path, image_prefix: str, plan: LayerPlan) -> LayerContent:
    """The content of the layer of ``plan``'s packages, staged in ``prefix``."""
    content = LayerContent(image_prefix)
    for package in plan.packages:
        content.add_package_files(os.fspath(prefix), package.paths, package.generated)
    return content


def relocatable_record(data: bytes | Mapping[str, Any]) -> bytes:
    """A ``conda-meta`` record (bytes, or already parsed) without the build host's paths
    (package cache locations), as conda-pack writes them, in a fixed layout."""
    record = dict(json.loads(data) if isinstance(data, bytes) else data)
    for name in _HOST_FIELDS:
        if name in record:
            record[name] = ""
    link = record.get("link")
    if isinstance(link, dict) and "source" in link:
        record["link"] = {**link, "source": ""}
    return json.dumps(record, sort_keys=True).encode()


def environment_layer(
    prefix: Path, image_prefix: str, packages: Iterable[PackageFiles]
) -> LayerContent:
    """The content of the environment's own layer: every file under ``prefix`` that no
    package owns (time 0), ``conda-meta`` records made relocatable."""
    packages = list(packages)
    owned = {relative for package in packages for relative in package.paths}
    parsed = {package.record_file: package.record for package in packages if package.record}
    content = LayerContent(image_prefix)
    for directory, subdirectories, files in os.walk(prefix):
        subdirectories.sort()
        base = Path(directory)
        relative_directory = base.relative_to(prefix).as_posix()
        for name in sorted(files) + [d for d in subdirectories if (base / d).is_symlink()]:
            relative = name if relative_directory == "." else f"{relative_directory}/{name}"
            if relative in owned:
                continue
            transform = None
            if relative_directory == "conda-meta" and name.endswith(".json"):
                transform = _relocate(parsed.get(name))
            content.add(relative, base / name, transform=transform)
    return content


def _relocate(parsed: Mapping[str, Any] | None) -> Callable[[bytes], bytes]:
    """The transform of a ``conda-meta`` record: from the record already parsed, if any."""
    if parsed is None:
        return relocatable_record
    return lambda _data: relocatable_record(parsed)


def carry_files(built: Path, staged: Path, image_prefix: str) -> int:
    """Copy into ``staged`` the files of ``built`` that no conda package owns and ``staged``
    lacks, outside ``conda-meta`` (what pip installed); returns how many.

    Text files (no NUL byte) and symlink targets have ``built``'s path replaced by
    ``image_prefix``; other files are copied as they are. Modification times are kept.
    """
    owned = {relative for package in read_packages(built) for relative in package.paths}
    old, new = str(built), image_prefix
    count = 0
    for directory, subdirectories, files in os.walk(built):
        base = Path(directory)
        relative_directory = base.relative_to(built).as_posix()
        if relative_directory == "conda-meta":
            subdirectories[:] = []
            continue
        links = [d for d in subdirectories if (base / d).is_symlink()]
        for name in sorted(files) + links:
            relative = name if relative_directory == "." else f"{relative_directory}/{name}"
            target = staged / relative
            if relative in owned or os.path.lexists(target):
                continue
            source = base / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_symlink():
                link = os.readlink(source)
                os.symlink(new + link[len(old) :] if link.startswith(old + "/") else link, target)
            else:
                data = source.read_bytes()
                if b"\0" not in data and old.encode() in data:
                    data = data.replace(old.encode(), new.encode())
                target.write_bytes(data)
                info = source.stat()
                os.chmod(target, stat.S_IMODE(info.st_mode))
                os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
            count += 1
    return count
