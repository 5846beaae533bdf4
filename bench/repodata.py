"""A large, deterministic, synthetic conda channel for the solve benchmark.

Real channels cannot be reached here, and a solve benchmark against the ten-package demo channel
says nothing about how Kiln copes with conda-forge-sized metadata. This module writes a channel
whose ``linux-64/repodata.json`` has at least :data:`TARGET_RECORDS` records shaped like
conda-forge's, plus an empty ``noarch/repodata.json`` (rattler requires the noarch subdir):

- a core layer with real names (``_libgcc_mutex``, ``libgcc-ng``, ``openssl``, ...), ``python``
  3.8-3.13 with several patch releases and builds, and ``python_abi`` with ``constrains``;
- thousands of compiled C libraries (``lib...``) depending on popular lower-level libraries with
  run-exports style pins (``libfoo >=1.4.2,<2.0a0``) and on ``__glibc``;
- many more Python packages: compiled ones with one build per supported Python
  (``py311h1a2b3c4_0`` depending on ``python >=3.11,<3.12.0a0`` and
  ``python_abi 3.11.* *_cp311``), pure ones with a single ``pyh..._0`` build; their dependencies
  on other Python packages use lower bounds, ranges or no version at all.

Every package releases versions over a shared timeline; a release depends on the version of each
dependency that was current when it was released. The newest release of everything is therefore
co-installable and older ones conflict with newer majors, as in a real channel, so a solve with a
few pins has real choices to make. Dependencies prefer popular (low-index) packages, so a handful
of top-level specs pulls in a few hundred names, not the whole channel (the gateway only parses
the records of names reachable from the specs).

Generation is seeded and independent of ``PYTHONHASHSEED``: the same :data:`GENERATOR_VERSION`
always writes the same bytes. Records are streamed to disk (two temporary section files joined at
the end), so memory stays small and the first run takes well under a minute.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import random
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

#: Bump when the generated channel changes; the cache directory name includes it.
GENERATOR_VERSION = 1

#: The seed of every random choice.
SEED = 20251125

#: The generator keeps adding Python packages until the channel has at least this many records.
TARGET_RECORDS = 500_000

#: Python minor versions and the part of the timeline ([0, 1]) in which packages were built for
#: them.
PYTHON_WINDOWS: dict[int, tuple[float, float]] = {
    8: (0.0, 0.7),
    9: (0.1, 1.0),
    10: (0.3, 1.0),
    11: (0.5, 1.0),
    12: (0.7, 1.0),
    13: (0.9, 1.0),
}

#: Core packages in dependency order, each with the packages it depends on.
CORE_PACKAGES: dict[str, tuple[str, ...]] = {
    "_libgcc_mutex": (),
    "_openmp_mutex": ("_libgcc_mutex",),
    "libgcc-ng": ("_libgcc_mutex", "_openmp_mutex"),
    "libstdcxx-ng": ("libgcc-ng",),
    "libgomp": ("_libgcc_mutex",),
    "ca-certificates": (),
    "tzdata": (),
    "libzlib": ("libgcc-ng",),
    "bzip2": ("libgcc-ng",),
    "xz": ("libgcc-ng",),
    "libffi": ("libgcc-ng",),
    "libuuid": ("libgcc-ng",),
    "ncurses": ("libgcc-ng",),
    "readline": ("libgcc-ng", "ncurses"),
    "libsqlite": ("libgcc-ng", "libzlib"),
    "tk": ("libgcc-ng", "libzlib"),
    "openssl": ("ca-certificates", "libgcc-ng"),
}

#: Compiled C libraries besides the core.
C_LIBRARY_COUNT = 5_000

#: Share of Python packages that are pure Python (one build per release).
PURE_PYTHON_SHARE = 0.45

#: How many dependencies a package has (inclusive range) and how strongly they favour popular
#: (low-index) packages: index = count * random() ** bias. These set how many packages a solve
#: installs (the newest releases' closure) and how many the gateway must load (every release's).
C_DEPENDS, C_BIAS = (0, 2), 4.0
PYTHON_DEPENDS, PYTHON_BIAS = (1, 5), 3.0
LINKED_DEPENDS, LINKED_BIAS = (0, 2), 4.0
#: Share of Python packages whose older releases had 1-2 dependencies that newer ones dropped.
FORMER_SHARE, FORMER_DEPENDS, FORMER_BIAS = 0.7, (1, 3), 1.2
#: The first packages of each layer count as popular: more releases, released from the start.
HUB_COUNT = 200

#: Python packages with real names, the most depended-upon ones (lowest index).
PYTHON_HUBS = ("pip", "setuptools", "wheel", "packaging", "typing_extensions", "six")

#: 2019-01-01 .. 2025-11-01 in milliseconds: the timeline's span.
_EPOCH_MS = (1_546_300_800_000, 1_761_955_200_000)

_LICENSES = (
    "MIT",
    "BSD-3-Clause",
    "Apache-2.0",
    "GPL-3.0-or-later",
    "LGPL-2.1-or-later",
    "MPL-2.0",
)
_SYLLABLES = tuple(
    consonant + vowel
    for consonant in ("b", "c", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z")
    for vowel in ("a", "e", "i", "o", "u", "y")
)
_SUFFIXES = ("", "", "", "", "", "-core", "-base", "-tools", "-utils", "-io", "-plugin", "-cli")


@dataclass(frozen=True)
class BenchChannel:
    """A generated channel on disk and the request the solve benchmark makes against it."""

    root: Path
    records: int
    names: int
    size_bytes: int
    specs: tuple[str, ...]

    @property
    def url(self) -> str:
        """The channel as a ``file://`` URL (rattler reads ``<subdir>/repodata.json`` directly)."""
        return self.root.as_uri()

    @property
    def repodata(self) -> Path:
        return self.root / "linux-64" / "repodata.json"


@dataclass
class _Release:
    version: str
    major: int
    minor: int
    time: float
    build_numbers: tuple[int, ...]


@dataclass
class _Plan:
    """One package name: its releases over the timeline and what it depends on."""

    name: str
    kind: str  # "core", "clib", "compiled", "pure", "python", "python_abi"
    releases: list[_Release]
    depends: list[tuple[str, str]] = field(default_factory=list)  # (name, pin style)
    #: Dependencies that releases before a moment had and later ones dropped: (name, style, until).
    former: list[tuple[str, str, float]] = field(default_factory=list)
    glibc: bool = False
    times: list[float] = field(default_factory=list)

    def current(self, moment: float) -> _Release | None:
        """The newest release published at or before ``moment``."""
        index = bisect.bisect_right(self.times, moment)
        return self.releases[index - 1] if index else None


def ensure_channel(cache_dir: Path) -> BenchChannel:
    """The benchmark channel under ``cache_dir``, generated on first use and reused afterwards.

    The channel lives in ``cache_dir/channel-v<GENERATOR_VERSION>-<SEED>-<TARGET_RECORDS>``; its
    ``manifest.json`` is written last, so a directory without it (an interrupted run) is
    regenerated. ``cache_dir`` gets a ``.gitignore`` ignoring everything in it.
    """
    cache_dir = cache_dir.resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    ignore = cache_dir / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# Generated benchmark data (bench/repodata.py); never commit it.\n*\n")
    root = cache_dir / f"channel-v{GENERATOR_VERSION}-{SEED}-{TARGET_RECORDS}"
    manifest = root / "manifest.json"
    if manifest.exists():
        data = json.loads(manifest.read_text())
        return BenchChannel(
            root=root,
            records=data["records"],
            names=data["names"],
            size_bytes=data["size_bytes"],
            specs=tuple(data["specs"]),
        )
    shutil.rmtree(root, ignore_errors=True)
    return generate_channel(root)


def generate_channel(root: Path) -> BenchChannel:
    """Write the channel into ``root`` (which must not exist) and return its description."""
    rng = random.Random(SEED)
    plans = _plan(rng)
    specs = _choose_specs(rng, plans)
    (root / "noarch").mkdir(parents=True)
    (root / "noarch" / "repodata.json").write_text(
        json.dumps(
            {
                "info": {"subdir": "noarch"},
                "packages": {},
                "packages.conda": {},
                "repodata_version": 1,
            },
            separators=(",", ":"),
        )
    )
    subdir = root / "linux-64"
    subdir.mkdir()
    records = _write_repodata(subdir / "repodata.json", plans)
    channel = BenchChannel(
        root=root,
        records=records,
        names=len(plans),
        size_bytes=(subdir / "repodata.json").stat().st_size,
        specs=specs,
    )
    (root / "manifest.json").write_text(
        json.dumps(
            {
                "generator_version": GENERATOR_VERSION,
                "seed": SEED,
                "records": channel.records,
                "names": channel.names,
                "size_bytes": channel.size_bytes,
                "specs": list(channel.specs),
            },
            indent=2,
        )
        + "\n"
    )
    return channel


# --- planning: names, releases, dependencies (small, in memory) ---------------------------------


def _plan(rng: random.Random) -> dict[str, _Plan]:
    plans: dict[str, _Plan] = {}
    taken: set[str] = set(CORE_PACKAGES) | {"python", "python_abi", *PYTHON_HUBS}

    for name, depends in CORE_PACKAGES.items():
        plan = _Plan(name, "core", _releases(rng, start=0.0, count=_release_count(rng, 0)))
        plan.depends = [(dep, "lower_major") for dep in depends]
        plans[name] = plan
    plans["python_abi"] = _Plan("python_abi", "python_abi", _python_abi_releases())
    python = _Plan("python", "python", _python_releases(rng))
    python.depends = [
        (dep, "pin_major")
        for dep in (
            "bzip2",
            "libffi",
            "libgcc-ng",
            "libsqlite",
            "libuuid",
            "libzlib",
            "ncurses",
            "openssl",
            "readline",
            "tk",
            "xz",
            "tzdata",
        )
    ]
    python.glibc = True
    plans["python"] = python

    core_libs = [name for name in CORE_PACKAGES if not name.startswith("_")]
    c_libraries: list[str] = []
    for index in range(C_LIBRARY_COUNT):
        name = _new_name(rng, taken, prefix="lib")
        start = 0.0 if index < HUB_COUNT else rng.uniform(0.0, 0.85)
        plan = _Plan(
            name, "clib", _releases(rng, start, _release_count(rng, index), builds=(0.3, 0.1))
        )
        plan.depends = [("libgcc-ng", "lower_major")]
        if rng.random() < 0.5:
            plan.depends.append(("libstdcxx-ng", "lower_major"))
        for dep in _popular(rng, c_libraries, _depends_count(rng, index, C_DEPENDS), C_BIAS):
            plan.depends.append((dep, "pin_major"))
        if rng.random() < 0.3:
            plan.depends.append((rng.choice(core_libs), "pin_major"))
        plan.glibc = rng.random() < 0.2
        plans[name] = plan
        c_libraries.append(name)

    python_packages: list[str] = []
    total = sum(_record_count(plan) for plan in plans.values())
    while total < TARGET_RECORDS:
        index = len(python_packages)
        if index < len(PYTHON_HUBS):
            name, kind, start = PYTHON_HUBS[index], "pure", 0.0
        else:
            name = _new_name(rng, taken)
            kind = "pure" if rng.random() < PURE_PYTHON_SHARE else "compiled"
            start = 0.0 if index < HUB_COUNT else rng.uniform(0.0, 0.85)
        builds = (0.2, 0.05) if kind == "compiled" else (0.0, 0.0)
        plan = _Plan(name, kind, _releases(rng, start, _release_count(rng, index), builds=builds))
        count = _depends_count(rng, index, PYTHON_DEPENDS)
        for dep in _popular(rng, python_packages, count, PYTHON_BIAS):
            plan.depends.append((dep, rng.choices(("lower", "range", "any"), (55, 25, 20))[0]))
        if kind == "compiled":
            for dep in _popular(rng, c_libraries, rng.randint(*LINKED_DEPENDS), LINKED_BIAS):
                plan.depends.append((dep, "pin_major"))
        if len(plan.releases) > 1 and rng.random() < FORMER_SHARE:
            current = {dep for dep, _style in plan.depends}
            until = rng.choice(plan.releases[1:]).time
            for dep in _popular(rng, python_packages, rng.randint(*FORMER_DEPENDS), FORMER_BIAS):
                if dep not in current:
                    plan.former.append((dep, "lower", until))
        plans[name] = plan
        python_packages.append(name)
        total += _record_count(plan)

    for plan in plans.values():
        plan.times = [release.time for release in plan.releases]
    return dict(sorted(plans.items()))


def _choose_specs(rng: random.Random, plans: dict[str, _Plan]) -> tuple[str, ...]:
    """``python 3.11.*``, one C library, five Python packages, and one Python package held
    below its newest major (an older release that supports Python 3.11, with older pins)."""
    recent_python = [
        plan
        for plan in plans.values()
        if plan.kind in ("compiled", "pure")
        and plan.releases[0].time < 0.3
        and len(plan.releases) >= 8
        and len(plan.depends) >= 4
    ]
    recent_python.sort(key=lambda plan: plan.name)
    held = rng.choice(
        [
            plan
            for plan in recent_python
            if any(
                release.major < plan.releases[-1].major and release.time >= 0.6
                for release in plan.releases
            )
        ]
    )
    latest = rng.sample([plan for plan in recent_python if plan is not held], 5)
    libraries = sorted(
        (plan for plan in plans.values() if plan.kind == "clib" and len(plan.depends) >= 4),
        key=lambda plan: plan.name,
    )
    library = rng.choice(libraries)
    specs = ["python 3.11.*", library.name, *(plan.name for plan in latest)]
    specs.append(f"{held.name} <{held.releases[-1].major}")
    return tuple(specs)


def _new_name(rng: random.Random, taken: set[str], prefix: str = "") -> str:
    while True:
        stem = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
        name = f"{prefix}{stem}{rng.choice(_SUFFIXES)}"
        if name not in taken:
            taken.add(name)
            return name


def _popular(rng: random.Random, names: Sequence[str], count: int, exponent: float) -> list[str]:
    """Up to ``count`` distinct names, biased towards the front (the popular ones)."""
    if not names:
        return []
    chosen = {names[int(len(names) * rng.random() ** exponent)] for _ in range(count)}
    return sorted(chosen)


def _depends_count(rng: random.Random, index: int, bounds: tuple[int, int]) -> int:
    """Foundational (low-index) packages depend on little, applications on more."""
    ceiling = min(bounds[1], int(math.log10(index + 1) * 1.5))
    return rng.randint(min(bounds[0], ceiling), ceiling)


def _release_count(rng: random.Random, index: int = HUB_COUNT) -> int:
    """Releases per name: heavy-tailed, median ~7; the popular packages (the first
    :data:`HUB_COUNT` of a layer) median ~20, as numpy or openssl have many."""
    mu = 3.0 if index < HUB_COUNT else 2.0
    return max(1, min(150, int(rng.lognormvariate(mu, 0.8))))


def _releases(
    rng: random.Random,
    start: float,
    count: int,
    builds: tuple[float, float] = (0.3, 0.1),
) -> list[_Release]:
    """``count`` releases spread from ``start`` to the end of the timeline (the last at 1.0)."""
    major, minor, patch = rng.choice((0, 1, 1, 2, 3)), rng.randint(0, 5), 0
    releases = []
    for number in range(count):
        if number:
            roll = rng.random()
            if roll < 0.08:
                major, minor, patch = major + 1, 0, 0
            elif roll < 0.35:
                minor, patch = minor + 1, 0
            else:
                patch += 1
        moment = 1.0 if count == 1 else start + (1.0 - start) * number / (count - 1)
        build_count = 1 + (rng.random() < builds[0]) + (rng.random() < builds[1])
        releases.append(
            _Release(f"{major}.{minor}.{patch}", major, minor, moment, tuple(range(build_count)))
        )
    return releases


def _python_releases(rng: random.Random) -> list[_Release]:
    releases = []
    for minor, (start, end) in PYTHON_WINDOWS.items():
        patches = rng.randint(6, 18)
        for patch in range(patches):
            moment = start + (end - start) * patch / max(1, patches - 1)
            builds = tuple(range(1 + (rng.random() < 0.5)))
            releases.append(_Release(f"3.{minor}.{patch}", 3, minor, moment, builds))
    releases.sort(key=lambda release: release.time)
    return releases


def _python_abi_releases() -> list[_Release]:
    return [
        _Release(f"3.{minor}", 3, minor, start, (0,))
        for minor, (start, _end) in PYTHON_WINDOWS.items()
    ]


def _python_minors(moment: float) -> list[int]:
    return [minor for minor, (start, end) in PYTHON_WINDOWS.items() if start <= moment <= end]


def _record_count(plan: _Plan) -> int:
    if plan.kind == "compiled":
        return sum(
            len(release.build_numbers) * len(_python_minors(release.time))
            for release in plan.releases
        )
    return sum(len(release.build_numbers) for release in plan.releases)


# --- writing: records streamed to two section files, joined at the end --------------------------


def _write_repodata(path: Path, plans: dict[str, _Plan]) -> int:
    """Write ``repodata.json`` at ``path`` atomically; returns the number of records."""
    partial = path.with_name(path.name + ".partial")
    sections = {
        ".tar.bz2": path.with_name("packages.partial"),
        ".conda": path.with_name("packages.conda.partial"),
    }
    count = 0
    with (
        sections[".tar.bz2"].open("w", encoding="ascii", buffering=1 << 20) as tar_bz2,
        sections[".conda"].open("w", encoding="ascii", buffering=1 << 20) as conda,
    ):
        outputs: dict[str, IO[str]] = {".tar.bz2": tar_bz2, ".conda": conda}
        first = {".tar.bz2": True, ".conda": True}
        for plan in plans.values():
            for extension, key, record in _records(plan, plans):
                outputs[extension].write(("" if first[extension] else ",") + f'"{key}":{record}')
                first[extension] = False
                count += 1
    with partial.open("w", encoding="ascii") as output:
        output.write('{"info":{"subdir":"linux-64"},"packages":{')
        with sections[".tar.bz2"].open(encoding="ascii") as section:
            shutil.copyfileobj(section, output, 1 << 20)
        output.write('},"packages.conda":{')
        with sections[".conda"].open(encoding="ascii") as section:
            shutil.copyfileobj(section, output, 1 << 20)
        output.write('},"removed":[],"repodata_version":1}')
    for section_path in sections.values():
        section_path.unlink()
    os.replace(partial, path)
    return count


def _records(plan: _Plan, plans: dict[str, _Plan]) -> Iterator[tuple[str, str, str]]:
    """(extension, file name, record JSON) for every build of every release of ``plan``."""
    rng = random.Random(f"{SEED}:{plan.name}")
    license_ = rng.choice(_LICENSES)
    for release in plan.releases:
        extension = ".conda" if release.time >= 0.4 else ".tar.bz2"
        timestamp = int(_EPOCH_MS[0] + (_EPOCH_MS[1] - _EPOCH_MS[0]) * release.time)
        base = _dependencies(plan, release, plans)
        for build, depends, constrains in _builds(plan, release, rng, base):
            record = _record_json(
                plan.name, release.version, build, depends, constrains, license_, timestamp, rng
            )
            yield extension, f"{plan.name}-{release.version}-{build}{extension}", record


def _builds(
    plan: _Plan, release: _Release, rng: random.Random, base: list[str]
) -> Iterator[tuple[str, list[str], list[str]]]:
    """(build string, depends, constrains) of each build of ``release``."""
    if plan.kind == "compiled":
        for minor in _python_minors(release.time):
            pins = [
                f"python >=3.{minor},<3.{minor + 1}.0a0",
                f"python_abi 3.{minor}.* *_cp3{minor}",
            ]
            for number in release.build_numbers:
                yield f"py3{minor}h{rng.getrandbits(28):07x}_{number}", base + pins, []
    elif plan.kind == "pure":
        oldest = min(_python_minors(release.time), default=8)
        yield f"pyh{rng.getrandbits(28):07x}_0", [*base, f"python >=3.{oldest}"], []
    elif plan.kind == "python":
        abi = f"python_abi 3.{release.minor}.* *_cp3{release.minor}"
        for number in release.build_numbers:
            yield f"h{rng.getrandbits(28):07x}_{number}_cpython", base, [abi]
    elif plan.kind == "python_abi":
        interpreter = f"python 3.{release.minor}.* *_cpython"
        yield f"{release.minor - 3}_cp3{release.minor}", [], [interpreter]
    else:
        for number in release.build_numbers:
            yield f"h{rng.getrandbits(28):07x}_{number}", base, []


def _dependencies(plan: _Plan, release: _Release, plans: dict[str, _Plan]) -> list[str]:
    """The dependencies of ``release``: each pinned to the version current at its release."""
    depends = []
    wanted = plan.depends + [
        (name, style) for name, style, until in plan.former if release.time < until
    ]
    for name, style in wanted:
        current = plans[name].current(release.time)
        if current is None:
            continue  # the dependency did not exist yet
        if style == "pin_major":
            depends.append(f"{name} >={current.version},<{current.major + 1}.0a0")
        elif style == "lower_major":
            depends.append(f"{name} >={current.major}")
        elif style == "lower":
            depends.append(f"{name} >={current.major}.{current.minor}")
        elif style == "range":
            depends.append(f"{name} >={current.major}.{current.minor},<{current.major + 1}")
        else:
            depends.append(name)
    if plan.glibc:
        depends.append("__glibc >=2.17,<3.0.a0")
    return sorted(depends)


def _record_json(
    name: str,
    version: str,
    build: str,
    depends: list[str],
    constrains: list[str],
    license_: str,
    timestamp: int,
    rng: random.Random,
) -> str:
    """One record, keys sorted as conda-index and rattler write them."""
    number = build.rsplit("_", 1)[-1]
    build_number = int(number) if number.isdigit() else 0
    size = int(rng.lognormvariate(11.5, 1.6))
    parts = [f'"build":"{build}","build_number":{build_number}']
    if constrains:
        parts.append(f'"constrains":{json.dumps(constrains)}')
    parts.append(
        f'"depends":{json.dumps(depends)},"license":"{license_}",'
        f'"md5":"{rng.getrandbits(128):032x}","name":"{name}",'
        f'"sha256":"{rng.getrandbits(256):064x}","size":{size},"subdir":"linux-64",'
        f'"timestamp":{timestamp},"version":"{version}"'
    )
    return "{" + ",".join(parts) + "}"


def main() -> None:
    """Generate (or reuse) the channel in ``bench/.cache`` and print what it holds."""
    started = time.perf_counter()
    channel = ensure_channel(Path(__file__).resolve().parent / ".cache")
    print(
        f"{channel.repodata}: {channel.records:,} records, {channel.names:,} names, "
        f"{channel.size_bytes / 1e6:.0f} MB ({time.perf_counter() - started:.1f}s)"
    )
    print("specs:", ", ".join(channel.specs))


if __name__ == "__main__":
    main()
