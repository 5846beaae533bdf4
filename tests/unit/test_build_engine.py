"""The build engine end to end on the demo channel: real solve, install, lock, pack."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from appliance.builder.pipeline import Builder, BuildRequest, BuildResult
from appliance.builder.settings import BuildSettings
from appliance.common.errors import BuildError, SolveError, SpecificationError
from appliance.schemas.specification import parse_specification
from appliance.storage import ArtifactKind, LocalArtifactStore
from tests.fixtures.mounts import tmpfs

DEMO_SPEC = """\
name: demo
dependencies:
  - kiln-demo-tool >=1.0
  - kiln-demo-data
variables:
  KILN_DEMO_GREETING: hello from Kiln
"""


def build(
    builder: Builder, text: str, build_id: int = 1, namespace: str = "default"
) -> BuildResult:
    request = BuildRequest(namespace, parse_specification(text), build_id)
    return asyncio.run(builder.build(request))


def run_tool(prefix: Path) -> str:
    return subprocess.run(
        [str(prefix / "bin" / "kiln-demo-tool")], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_demo_build_gives_a_working_prefix_link_and_artifacts(
    builder: Builder, local_storage: LocalArtifactStore, build_settings: BuildSettings
) -> None:
    result = build(builder, DEMO_SPEC)

    assert run_tool(result.prefix) == str(result.prefix)
    link = build_settings.store_directory / "default" / "envs" / "demo"
    assert link.is_symlink()
    assert os.readlink(link) == f"../{result.build_key}"
    assert run_tool(link) == str(result.prefix)
    for kind in ArtifactKind:
        assert local_storage.exists(kind.storage_key(result.build_key)), kind
    assert {p.name for p in result.packages} == {
        "kiln-demo-tool",
        "kiln-demo-lib",
        "kiln-demo-data",
    }
    assert result.size > 0
    assert result.artifacts["DIRECTORY"] == str(result.prefix)


def test_the_log_tells_each_step_as_it_happens(
    builder: Builder, local_storage: LocalArtifactStore
) -> None:
    result = build(builder, DEMO_SPEC)
    log = local_storage.get(ArtifactKind.LOGS.storage_key(result.build_key)).decode()
    positions = [
        log.index(f"--- {step} ---")
        for step in (
            "prepare",
            "solve",
            "lock",
            "install",
            "finalize",
            "export",
            "conda-pack",
            "activate",
        )
    ]
    assert positions == sorted(positions)
    assert "kiln-demo-lib 2.0.0" in log
    assert log.rstrip().endswith("build 1 completed")


def test_packages_are_hardlinked_from_the_shared_cache(
    builder: Builder, build_settings: BuildSettings
) -> None:
    first = build(builder, DEMO_SPEC, build_id=1)
    second = build(builder, DEMO_SPEC.replace("name: demo", "name: other"), build_id=2)
    path = Path("share/kiln-demo/read me.txt")
    one, two = (first.prefix / path).stat(), (second.prefix / path).stat()
    assert one.st_ino == two.st_ino
    assert one.st_nlink >= 3  # the cache's copy and both environments
    cached = [p for p in build_settings.package_cache.rglob("read me.txt")]
    assert cached and cached[0].stat().st_ino == one.st_ino


def test_variables_are_set_on_activation(builder: Builder) -> None:
    result = build(builder, DEMO_SPEC)
    script = result.prefix / "etc/conda/activate.d/kiln-variables.sh"
    shell = subprocess.run(
        ["sh", "-c", f'. "{script}"; printf %s "$KILN_DEMO_GREETING"'],
        check=True,
        capture_output=True,
        text=True,
    )
    assert shell.stdout == "hello from Kiln"
    state = yaml.safe_load((result.prefix / "conda-meta/state").read_text())
    assert state["env_vars"] == {"KILN_DEMO_GREETING": "hello from Kiln"}


def test_lockfile_and_pinned_yaml_describe_the_build(
    builder: Builder, local_storage: LocalArtifactStore, demo_channel: Path
) -> None:
    result = build(builder, DEMO_SPEC)
    lockfile = yaml.safe_load(
        local_storage.get(ArtifactKind.LOCKFILE.storage_key(result.build_key))
    )
    assert lockfile["version"] == 1
    assert lockfile["metadata"]["platforms"] == ["linux-64"]
    locked = {p["name"]: p for p in lockfile["package"]}
    assert locked["kiln-demo-lib"]["version"] == "2.0.0"
    assert len(locked["kiln-demo-tool"]["hash"]["sha256"]) == 64
    pinned = yaml.safe_load(local_storage.get(ArtifactKind.YAML.storage_key(result.build_key)))
    assert pinned["channels"] == [demo_channel.as_uri()]
    assert "kiln-demo-lib=2.0.0=" + locked["kiln-demo-lib"]["build"] in pinned["dependencies"]
    assert pinned["variables"] == {"KILN_DEMO_GREETING": "hello from Kiln"}


def test_building_from_the_lockfile_installs_exactly_the_locked_packages(
    builder: Builder, local_storage: LocalArtifactStore
) -> None:
    first = build(builder, DEMO_SPEC.replace("kiln-demo-tool >=1.0", "kiln-demo-tool <1"), 1)
    lockfile = local_storage.get(ArtifactKind.LOCKFILE.storage_key(first.build_key)).decode()
    spec = parse_specification(lockfile, name="from-lock")
    second = asyncio.run(builder.build(BuildRequest("default", spec, 2)))
    assert sorted((p.name, p.version, p.build) for p in second.packages) == sorted(
        (p.name, p.version, p.build) for p in first.packages
    )
    assert ("kiln-demo-lib", "1.0.0") in {(p.name, p.version) for p in second.packages}
    log = local_storage.get(ArtifactKind.LOGS.storage_key(second.build_key)).decode()
    assert "--- solve ---" not in log
    assert run_tool(second.prefix) == str(second.prefix)


def test_a_package_that_does_not_match_its_locked_checksum_fails_the_build(
    builder: Builder, local_storage: LocalArtifactStore, build_settings: BuildSettings
) -> None:
    first = build(builder, DEMO_SPEC)
    lockfile = yaml.safe_load(local_storage.get(ArtifactKind.LOCKFILE.storage_key(first.build_key)))
    for package in lockfile["package"]:
        if package["name"] == "kiln-demo-tool":
            package["hash"]["sha256"] = "0" * 64
            package["hash"]["md5"] = "0" * 32
    spec = parse_specification(yaml.safe_dump(lockfile), name="tampered")
    fresh = Builder(
        BuildSettings(
            store_directory=build_settings.store_directory,
            package_cache=build_settings.package_cache.with_name("other-pkgs"),
            repodata_cache=build_settings.repodata_cache,
        ),
        local_storage,
        builder.gateway,
    )
    with pytest.raises(BuildError, match=r"does not match its recorded checksum"):
        asyncio.run(fresh.build(BuildRequest("default", spec, 2)))
    assert not (build_settings.store_directory / "default" / "envs" / "tampered").exists()


def test_an_unsatisfiable_spec_fails_with_a_one_line_reason_and_the_full_story_in_the_log(
    builder: Builder, local_storage: LocalArtifactStore, build_settings: BuildSettings
) -> None:
    good = build(builder, DEMO_SPEC, 1)
    bad = "name: demo\ndependencies:\n  - kiln-demo-legacy\n  - kiln-demo-lib >=2\n"
    request = BuildRequest("default", parse_specification(bad), 2)
    with pytest.raises(SolveError) as failure:
        asyncio.run(builder.build(request))
    assert "\n" not in failure.value.message
    assert "cannot be satisfied" in failure.value.message
    log = local_storage.get(ArtifactKind.LOGS.storage_key(request.build_key)).decode()
    assert "kiln-demo-legacy" in log and "build failed" in log
    # The failed build left nothing behind and did not move the current environment.
    assert not (build_settings.store_directory / "default" / request.build_key).exists()
    link = build_settings.store_directory / "default" / "envs" / "demo"
    assert link.resolve() == good.prefix.resolve()


def test_virtual_packages_come_from_configuration_and_spec_variables_not_the_host(
    builder: Builder,
) -> None:
    gpu = "name: gpu\ndependencies:\n  - kiln-demo-gpu\n"
    with pytest.raises(SolveError, match="__cuda"):
        build(builder, gpu, 1)
    result = build(builder, gpu + "variables:\n  CONDA_OVERRIDE_CUDA: '12.4'\n", 2)
    assert "kiln-demo-gpu" in {p.name for p in result.packages}


def test_the_lockfile_can_cover_several_platforms(
    build_settings: BuildSettings, local_storage: LocalArtifactStore, builder: Builder
) -> None:
    from dataclasses import replace

    multi = Builder(
        replace(build_settings, solve_platforms=("linux-64", "osx-arm64")),
        local_storage,
        builder.gateway,
    )
    result = build(multi, "name: data\ndependencies:\n  - kiln-demo-data\n")
    lockfile = yaml.safe_load(
        local_storage.get(ArtifactKind.LOCKFILE.storage_key(result.build_key))
    )
    assert lockfile["metadata"]["platforms"] == ["linux-64", "osx-arm64"]
    assert {p["platform"] for p in lockfile["package"]} == {"linux-64", "osx-arm64"}


def test_a_channel_that_is_not_allowed_is_refused_naming_it(builder: Builder) -> None:
    spec = "name: demo\nchannels:\n  - conda-forge\ndependencies:\n  - kiln-demo-data\n"
    with pytest.raises(SpecificationError, match=r"channel .*conda-forge.* is not allowed"):
        build(builder, spec)


def test_an_unwritable_store_fails_the_build_with_that_reason(
    build_settings: BuildSettings,
    local_storage: LocalArtifactStore,
    builder: Builder,
    tmp_path: Path,
) -> None:
    from dataclasses import replace

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    broken = Builder(
        replace(build_settings, store_directory=blocker / "store"), local_storage, builder.gateway
    )
    with pytest.raises(BuildError, match=r"store directory .* is not writable"):
        build(broken, DEMO_SPEC)


def test_a_too_long_build_path_is_refused(
    build_settings: BuildSettings,
    local_storage: LocalArtifactStore,
    builder: Builder,
    tmp_path: Path,
) -> None:
    from dataclasses import replace

    deep = tmp_path / ("d" * 200)
    broken = Builder(replace(build_settings, store_directory=deep), local_storage, builder.gateway)
    with pytest.raises(BuildError, match="characters long; the limit is 255"):
        build(broken, DEMO_SPEC)


def test_pip_dependencies_without_a_python_fail_with_a_clear_message(builder: Builder) -> None:
    spec = DEMO_SPEC + "  - pip:\n    - requests\n"
    spec = spec.replace("variables:\n  KILN_DEMO_GREETING: hello from Kiln\n", "") + ""
    text = "name: demo\ndependencies:\n  - kiln-demo-data\n  - pip:\n    - requests\n"
    with pytest.raises(BuildError, match="pip dependencies but the environment has no Python"):
        build(builder, text)


def test_ownership_and_mode_are_applied(
    build_settings: BuildSettings, local_storage: LocalArtifactStore, builder: Builder
) -> None:
    from dataclasses import replace

    from appliance.builder.settings import Permissions

    if os.geteuid() != 0:
        pytest.skip("changing ownership needs root")  # CI runs as root
    owned = Builder(
        replace(build_settings, permissions=Permissions(uid=1234, gid=2345, mode="750")),
        local_storage,
        builder.gateway,
    )
    result = build(owned, DEMO_SPEC)
    tool = (result.prefix / "bin" / "kiln-demo-tool").stat()
    data = (result.prefix / "share" / "kiln-demo" / "read me.txt").stat()
    assert (tool.st_uid, tool.st_gid) == (1234, 2345)
    assert tool.st_mode & 0o777 == 0o750
    assert data.st_mode & 0o777 == 0o640


@pytest.mark.parametrize("writer", ["gnu-tar", "in-process"])
def test_the_conda_pack_archive_relocates(writer: str, builder: Builder, tmp_path: Path) -> None:
    from appliance.builder.pack import pack_prefix

    result = build(builder, DEMO_SPEC)
    archive = pack_prefix(
        result.prefix, tmp_path / "env.tar.gz", tar="auto" if writer == "gnu-tar" else None
    )
    target = tmp_path / "elsewhere" / "unpacked-env"
    target.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        tar.extractall(target, filter="tar")
    assert members["bin/activate"].uid == 0 and members["bin/activate"].mode & 0o444 == 0o444
    assert members["lib/libkilndemo.so"].issym()
    meta = next(name for name in members if name.startswith("conda-meta/kiln-demo-tool"))
    assert str(builder.settings.package_cache) not in (target / meta).read_text()
    subprocess.run([sys.executable, str(target / "bin" / "conda-unpack")], check=True)
    assert run_tool(target) == str(target)
    assert (target / "etc/conda/activate.d/kiln-variables.sh").is_file()


def test_the_stored_archive_is_the_environment(
    builder: Builder, local_storage: LocalArtifactStore, tmp_path: Path
) -> None:
    result = build(builder, DEMO_SPEC)
    archive = local_storage.path_of(ArtifactKind.CONDA_PACK.storage_key(result.build_key))
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"bin/kiln-demo-tool", "bin/conda-unpack", "conda-meta/history"} <= names


@pytest.fixture
def tiny_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: a store directory that fills up during the install."""
    with tmpfs(tmp_path / "tiny", "size=1m,nr_inodes=400") as mountpoint:
        yield mountpoint


def test_a_full_disk_fails_the_build_with_that_reason_and_activates_nothing(
    build_settings: BuildSettings,
    local_storage: LocalArtifactStore,
    builder: Builder,
    tiny_filesystem: Path,
) -> None:
    from dataclasses import replace

    full = Builder(
        replace(build_settings, store_directory=tiny_filesystem / "store"),
        local_storage,
        builder.gateway,
    )
    request = BuildRequest(
        "default", parse_specification("name: big\ndependencies: [kiln-demo-big]\n"), 1
    )
    with pytest.raises(BuildError, match="ran out of disk space"):
        asyncio.run(full.build(request))
    assert not (tiny_filesystem / "store" / "default" / request.build_key).exists()
    assert not (tiny_filesystem / "store" / "default" / "envs" / "big").exists()


@pytest.mark.parametrize(
    ("version", "pattern"),
    [
        (1, r"[0-9a-f]{64}-\d{8}-\d{6}-\d{6}-7-demo"),
        (2, r"[0-9a-f]{8}-\d+-7-demo"),
        (3, r"[0-9a-f]{32}"),
    ],
)
def test_build_keys_follow_the_configured_version(
    version: int, pattern: str, builder: Builder, build_settings: BuildSettings
) -> None:
    import re

    request = BuildRequest("default", parse_specification(DEMO_SPEC), 7, key_version=version)
    assert re.fullmatch(pattern, request.build_key)
    result = asyncio.run(builder.build(request))
    assert result.prefix.name == request.build_key
    assert run_tool(result.prefix) == str(result.prefix)
    link = build_settings.store_directory / "default" / "envs" / "demo"
    if version == 3:  # as in conda-store: v3 builds sit in the store itself, with no envs/ link
        assert result.prefix.parent == build_settings.store_directory
        assert result.environment_link is None and not link.exists()
    else:
        assert link.resolve() == result.prefix


def test_a_build_never_touches_an_existing_prefix_with_its_key(
    builder: Builder, build_settings: BuildSettings
) -> None:
    request = BuildRequest("default", parse_specification(DEMO_SPEC), 1)
    occupied = build_settings.store_directory / "default" / request.build_key
    occupied.mkdir(parents=True)
    (occupied / "keep-me").write_text("someone else's")
    with pytest.raises(BuildError, match="already exists"):
        asyncio.run(builder.build(request))
    assert (occupied / "keep-me").read_text() == "someone else's"
