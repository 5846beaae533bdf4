"""Removing build files never reaches outside the store, never follows a symlink, and an
``envs/`` link is only removed (or moved back) when it points at the build being removed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance.builder.activate import point_environment_at
from appliance.builder.settings import BuildSettings
from appliance.services.deletion import BuildFiles
from appliance.worker.files import (
    OutsideStore,
    clear_interrupted_build,
    environment_link,
    prefix_of,
    remove_link_to,
    remove_tree,
)


@pytest.fixture
def settings(tmp_path: Path) -> BuildSettings:
    return BuildSettings(
        store_directory=tmp_path / "store",
        package_cache=tmp_path / "pkgs",
        repodata_cache=tmp_path / "repodata",
    )


def files(key: str = "abc-1-1-demo", key_version: int = 2) -> BuildFiles:
    return BuildFiles(
        build_id=1, namespace="default", environment="demo", build_key=key, key_version=key_version
    )


def test_prefixes_and_links_follow_the_build_engine_layout(settings: BuildSettings) -> None:
    store = settings.store_directory
    assert prefix_of(settings, files()) == store / "default" / "abc-1-1-demo"
    assert environment_link(settings, files()) == store / "default" / "envs" / "demo"
    assert prefix_of(settings, files("0123abcd", 3)) == store / "0123abcd"
    assert environment_link(settings, files("0123abcd", 3)) is None


@pytest.mark.parametrize("where", ["/", "store", "store/..", "elsewhere/x", "store/../elsewhere"])
def test_paths_outside_the_store_are_refused(tmp_path: Path, where: str) -> None:
    store = tmp_path / "store"
    (store / "default").mkdir(parents=True)
    (tmp_path / "elsewhere" / "x").mkdir(parents=True)
    target = Path(where) if where == "/" else tmp_path / where
    with pytest.raises(OutsideStore, match="refusing to remove"):
        remove_tree(target, roots=[store])
    assert (tmp_path / "elsewhere" / "x").exists() and store.exists()


def test_a_symlink_in_the_store_is_never_followed(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "default").mkdir(parents=True)
    outside = tmp_path / "precious"
    (outside / "data").mkdir(parents=True)
    (store / "default" / "escape").symlink_to(outside)
    with pytest.raises(OutsideStore):  # its parent resolves outside the store
        remove_tree(store / "default" / "escape" / "data", roots=[store])
    assert remove_tree(store / "default" / "escape", roots=[store])  # the link itself goes
    assert (outside / "data").is_dir()
    assert not os.path.lexists(store / "default" / "escape")


def test_a_tree_is_removed_even_where_it_is_read_only(tmp_path: Path) -> None:
    store = tmp_path / "store"
    prefix = store / "default" / "key"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "tool").write_text("x")
    (prefix / "bin").chmod(0o555)
    assert remove_tree(prefix, roots=[store])
    assert not prefix.exists()
    assert not remove_tree(prefix, roots=[store])  # nothing left: not an error


def test_a_link_is_removed_only_when_it_points_at_a_removed_prefix(tmp_path: Path) -> None:
    old, new = tmp_path / "store" / "a", tmp_path / "store" / "b"
    old.mkdir(parents=True)
    new.mkdir()
    link = tmp_path / "store" / "envs" / "demo"
    point_environment_at(link, new)
    assert not remove_link_to(link, [old])
    assert link.resolve() == new
    assert remove_link_to(link, [new])
    assert not os.path.lexists(link)


def test_an_interrupted_build_that_had_moved_the_link_gives_it_back(
    settings: BuildSettings,
) -> None:
    current = settings.store_directory / "default" / "current-key"
    current.mkdir(parents=True)
    interrupted = files("dead-key")
    prefix = prefix_of(settings, interrupted)
    (prefix / "bin").mkdir(parents=True)
    link = settings.environment_link("default", "demo")
    point_environment_at(link, prefix)
    clear_interrupted_build(settings, interrupted, "current-key")
    assert link.resolve() == current
    assert not prefix.exists()

    # With no current build to go back to, the link goes.
    (prefix / "bin").mkdir(parents=True)
    point_environment_at(link, prefix)
    clear_interrupted_build(settings, interrupted, None)
    assert not os.path.lexists(link) and not prefix.exists()
