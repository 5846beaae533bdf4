"""The Kiln demo channel: about ten small, real conda packages made on the spot.

Kiln runs where no conda channel is reachable, so its first run, its documentation and its tests
use a channel it writes itself (``kiln channel demo DIR``). The packages are tiny but carry what
real packages carry and what an environment store must get right:

- ``linux-64`` and ``noarch`` subdirs, both ``.conda`` and ``.tar.bz2`` files in each;
- dependencies with version ranges, a ``constrains`` entry, a metapackage without files;
- two versions of one library, and a pair of packages that cannot be installed together;
- shared-library symlink chains (``libkilndemo.so -> libkilndemo.so.1 -> libkilndemo.so.1.0.0``);
- text and binary prefix placeholders with a 255-character conda-build style build prefix;
- dependencies on virtual packages (``__cuda``, ``__glibc``);
- one package with thousands of files, for benchmarks.

The channel is byte-reproducible: writing it twice gives identical files, ``repodata.json``
included (rattler's indexer stamps each record with the time of indexing; that field is removed).
:data:`CATALOGUE` describes every package; each package's purpose is the docstring of the
function that defines it.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from appliance.channels.index import index_channel_async
from appliance.channels.package import (
    LONG_PLACEHOLDER,
    NoArch,
    Package,
    PackageFile,
    PackageFormat,
    PlaceholderMode,
    write_package,
)
from appliance.common.errors import ChannelError

#: The subdirs of the demo channel.
DEMO_SUBDIRS = ("linux-64", "noarch")

#: The build prefix embedded in the demo packages' placeholder files (255 characters).
DEMO_PLACEHOLDER = LONG_PLACEHOLDER

#: How many files ``kiln-demo-big`` has.
BIG_FILE_COUNT = 3000

_LICENSE = "BSD-3-Clause"


@dataclass(frozen=True)
class DemoPackage:
    """One package of the demo channel, the format it is written in, and why it exists."""

    package: Package
    format: PackageFormat
    purpose: str

    @property
    def name(self) -> str:
        return self.package.name

    @property
    def version(self) -> str:
        return self.package.version

    @property
    def subdir(self) -> str:
        return self.package.subdir

    @property
    def filename(self) -> str:
        return self.package.filename(self.format)

    @property
    def relative_path(self) -> str:
        """Where the file lies in the channel: ``subdir/filename``."""
        return f"{self.subdir}/{self.filename}"


def kiln_demo_lib(version: str) -> Package:
    """A shared library with a symlink chain and text and binary prefix placeholders.

    The channel has two versions, 1.0.0 and 2.0.0.

    ``lib/libkilndemo.so -> libkilndemo.so.<major> -> libkilndemo.so.<version>`` is a symlink
    chain like every real shared library's. The library itself is binary and embeds the build
    prefix twice in NUL-terminated strings (binary placeholder: replaced in place, padded with
    NULs, file length unchanged); ``lib/pkgconfig/kilndemo.pc`` embeds it as text.
    """
    major = version.split(".")[0]
    real_name = f"libkilndemo.so.{version}"
    pkgconfig = (
        f"prefix={DEMO_PLACEHOLDER}\n"
        "libdir=${prefix}/lib\n"
        "includedir=${prefix}/include\n\n"
        "Name: kilndemo\n"
        "Description: Kiln demo library\n"
        f"Version: {version}\n"
        "Libs: -L${libdir} -lkilndemo\n"
        "Cflags: -I${includedir}\n"
    )
    return _package(
        kiln_demo_lib,
        "kiln-demo-lib",
        version,
        subdir="linux-64",
        files=(
            PackageFile(
                f"lib/{real_name}",
                _library_image(version),
                mode=0o755,
                placeholder=PlaceholderMode.BINARY,
            ),
            PackageFile.symlink(f"lib/libkilndemo.so.{major}", real_name),
            PackageFile.symlink("lib/libkilndemo.so", f"libkilndemo.so.{major}"),
            PackageFile.text(
                "lib/pkgconfig/kilndemo.pc", pkgconfig, placeholder=PlaceholderMode.TEXT
            ),
            PackageFile.text(
                "include/kilndemo.h",
                f'#define KILNDEMO_VERSION "{version}"\nint kilndemo_answer(void);\n',
            ),
        ),
    )


def kiln_demo_tool(version: str, lib_range: str) -> Package:
    """A shell command that prints the prefix it is installed in.

    ``bin/kiln-demo-tool`` is a POSIX sh script whose prefix is a text placeholder: installers
    replace it with the environment's prefix and ``conda-unpack`` with the new location after a
    move, so running it shows whether relocation worked. ``--version`` prints the version.
    Version 1.0.0 accepts ``kiln-demo-lib >=1.0,<3``; version 0.9.0 only ``>=1.0,<2``.
    """
    script = (
        "#!/bin/sh\n"
        f"# kiln-demo-tool {version}: print the prefix this copy is installed in.\n"
        'if [ "$1" = "--version" ]; then\n'
        f"    echo 'kiln-demo-tool {version}'\n"
        "    exit 0\n"
        "fi\n"
        f"printf '%s\\n' '{DEMO_PLACEHOLDER}'\n"
    )
    return _package(
        kiln_demo_tool,
        "kiln-demo-tool",
        version,
        subdir="linux-64",
        depends=(f"kiln-demo-lib {lib_range}", "kiln-demo-data >=1.0"),
        files=(
            PackageFile.text(
                "bin/kiln-demo-tool", script, executable=True, placeholder=PlaceholderMode.TEXT
            ),
        ),
    )


def kiln_demo_data() -> Package:
    """Architecture-independent data (noarch: generic), including a path with a space."""
    colors = "name,hex\nember,#e25822\nash,#b2beb5\nclay,#b66a50\n"
    return _package(
        kiln_demo_data,
        "kiln-demo-data",
        "1.0.0",
        noarch=NoArch.GENERIC,
        files=(
            PackageFile.text("share/kiln-demo/colors.csv", colors),
            PackageFile.text("share/kiln-demo/read me.txt", "Data shipped by kiln-demo-data.\n"),
        ),
    )


def kiln_demo_gpu() -> Package:
    """A package that needs the __cuda and __glibc virtual packages.

    Depends on ``__cuda >=11``, ``__glibc >=2.17`` and ``kiln-demo-lib >=2``; solvable only
    when the solve is told about a CUDA driver, e.g. with ``__cuda=12``.
    """
    return _package(
        kiln_demo_gpu,
        "kiln-demo-gpu",
        "1.0.0",
        subdir="linux-64",
        depends=("__cuda >=11", "__glibc >=2.17", "kiln-demo-lib >=2"),
        files=(PackageFile.text("share/kiln-demo/gpu/README.txt", "Pretends to need a GPU.\n"),),
    )


def kiln_demo_legacy() -> Package:
    """A package that only works with kiln-demo-lib 1.x (``>=1.0,<2``).

    Together with ``kiln-demo-gpu`` or ``kiln-demo-lib >=2`` it makes an unsatisfiable request.
    """
    script = "#!/bin/sh\necho 'kiln-demo-legacy runs with kiln-demo-lib 1.x'\n"
    return _package(
        kiln_demo_legacy,
        "kiln-demo-legacy",
        "1.0.0",
        subdir="linux-64",
        depends=("kiln-demo-lib >=1.0,<2",),
        files=(PackageFile.text("bin/kiln-demo-legacy", script, executable=True),),
    )


def kiln_demo_plugin() -> Package:
    """A noarch plugin for the tool; constrains kiln-demo-lib to >=2 without requiring it."""
    return _package(
        kiln_demo_plugin,
        "kiln-demo-plugin",
        "1.0.0",
        noarch=NoArch.GENERIC,
        depends=("kiln-demo-tool >=1.0",),
        constrains=("kiln-demo-lib >=2",),
        files=(PackageFile.text("share/kiln-demo/plugins/hello.txt", "hello from a plugin\n"),),
    )


def kiln_demo_meta() -> Package:
    """A metapackage: no files, only dependencies on the tool and the data."""
    return _package(
        kiln_demo_meta,
        "kiln-demo-meta",
        "1.0.0",
        noarch=NoArch.GENERIC,
        depends=("kiln-demo-tool", "kiln-demo-data"),
    )


def kiln_demo_big() -> Package:
    """Thousands of small files for install and image benchmarks (:data:`BIG_FILE_COUNT`).

    Written as ``.conda``: zstd keeps writing the demo channel fast.
    """
    files = tuple(
        PackageFile(
            f"share/kiln-demo-big/{number // 100:02d}/file-{number:04d}.txt",
            f"kiln-demo-big file {number}\n".encode(),
        )
        for number in range(BIG_FILE_COUNT)
    )
    return _package(kiln_demo_big, "kiln-demo-big", "1.0.0", noarch=NoArch.GENERIC, files=files)


def write_demo_channel(directory: Path) -> Path:
    """Write and index the demo channel in ``directory``; return the channel's absolute path.

    ``directory`` may be missing, empty, or a demo channel written before (it is rewritten);
    anything else in it is refused with a :class:`ChannelError`, so that foreign packages never
    end up indexed into the demo. Runs its own event loop (see :func:`write_demo_channel_async`).
    """
    return asyncio.run(write_demo_channel_async(directory))


async def write_demo_channel_async(directory: Path) -> Path:
    """Async :func:`write_demo_channel`."""
    root = directory.absolute()
    await asyncio.to_thread(_write_packages, root)
    await index_channel_async(root, force=True)
    for subdir in DEMO_SUBDIRS:
        _drop_indexing_time(root / subdir / "repodata.json")
    return root


def _write_packages(root: Path) -> None:
    _check_target(root)
    for entry in CATALOGUE:
        write_package(entry.package, root / entry.subdir, entry.format)


def _check_target(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise ChannelError(f"{root} exists and is not a directory: choose another place")
    if not root.exists():
        return
    expected = {Path(subdir) for subdir in DEMO_SUBDIRS}
    expected |= {Path(subdir, "repodata.json") for subdir in DEMO_SUBDIRS}
    expected |= {Path(entry.relative_path) for entry in CATALOGUE}
    relative_paths = (path.relative_to(root) for path in root.rglob("*"))
    # Stop at the first few: DIR could be a large tree given by mistake.
    foreign = [str(path) for path in islice(_not_in(relative_paths, expected), 6)]
    if foreign:
        shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise ChannelError(
            f"{root} already holds files that are not part of the demo channel ({shown}): "
            "choose an empty or new directory"
        )


def _not_in(paths: Iterable[Path], expected: set[Path]) -> Iterator[Path]:
    return (path for path in paths if path not in expected)


def _drop_indexing_time(repodata_path: Path) -> None:
    """Remove rattler's per-record ``indexed_timestamp`` (the time of indexing), keeping the
    rest of the document byte for byte as rattler laid it out (compact, keys sorted)."""
    repodata: dict[str, Any] = json.loads(repodata_path.read_bytes())
    for key in ("packages", "packages.conda"):
        for record in repodata.get(key, {}).values():
            record.pop("indexed_timestamp", None)
    repodata_path.write_text(
        json.dumps(repodata, separators=(",", ":"), sort_keys=True, ensure_ascii=False),
        encoding="utf-8",
    )


def _package(
    definition: Callable[..., Package],
    name: str,
    version: str,
    *,
    subdir: str = "noarch",
    noarch: NoArch | None = None,
    depends: tuple[str, ...] = (),
    constrains: tuple[str, ...] = (),
    files: tuple[PackageFile, ...] = (),
) -> Package:
    """A demo package; its summary is the first line of ``definition``'s docstring and its
    build string is derived from its dependencies, like conda-build's ``h<hash>_<number>``."""
    summary = (inspect.getdoc(definition) or name).splitlines()[0]
    digest = hashlib.sha256(json.dumps([subdir, depends, constrains]).encode()).hexdigest()
    return Package(
        name=name,
        version=version,
        build=f"h{digest[:7]}_0",
        subdir=subdir,
        noarch=noarch,
        depends=depends,
        constrains=constrains,
        files=files,
        license=_LICENSE,
        summary=summary,
    )


def _library_image(version: str) -> bytes:
    """Stand-in for a compiled library: non-text bytes with the build prefix embedded in two
    NUL-terminated strings (a runtime search path and a data directory), as compilers leave them.
    Deliberately not ELF, so no tool mistakes it for loadable code."""
    placeholder = DEMO_PLACEHOLDER.encode()
    return b"".join(
        (
            b"\x00KILNDEMO\x00",
            f"libkilndemo {version}".encode(),
            b"\x00",
            bytes(range(256)),
            placeholder + b"/lib\x00",
            bytes(64),
            placeholder + b"/share/kiln-demo\x00",
            bytes(range(255, -1, -1)),
        )
    )


def _catalogue() -> tuple[DemoPackage, ...]:
    conda, tar_bz2 = PackageFormat.CONDA, PackageFormat.TAR_BZ2
    entries = [
        (kiln_demo_lib("1.0.0"), tar_bz2),
        (kiln_demo_lib("2.0.0"), conda),
        (kiln_demo_tool("0.9.0", ">=1.0,<2"), tar_bz2),
        (kiln_demo_tool("1.0.0", ">=1.0,<3"), conda),
        (kiln_demo_gpu(), conda),
        (kiln_demo_legacy(), tar_bz2),
        (kiln_demo_data(), tar_bz2),
        (kiln_demo_plugin(), conda),
        (kiln_demo_meta(), tar_bz2),
        (kiln_demo_big(), conda),
    ]
    return tuple(
        DemoPackage(package=package, format=package_format, purpose=package.summary)
        for package, package_format in entries
    )


#: Every package of the demo channel, in a stable order.
CATALOGUE: tuple[DemoPackage, ...] = _catalogue()
