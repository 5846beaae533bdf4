"""The editor's pure parts: inserting a dependency into a specification's text, conda's version
order, and what a new solve changes compared with a build."""

from __future__ import annotations

import itertools

import pytest
from rattler import Version

from appliance.schemas.spec_text import add_dependency
from appliance.schemas.specification import EnvironmentSpec, parse_specification
from appliance.schemas.versions import compare_versions, version_key
from appliance.services.drafts import InstalledPackage, PlannedPackage, compare


def dependencies_of(text: str) -> tuple[str, ...]:
    spec = parse_specification(text)
    assert isinstance(spec, EnvironmentSpec)
    return spec.dependencies


def test_a_dependency_goes_at_the_end_of_the_list_in_its_indentation() -> None:
    text = (
        "name: web  # the site\ndependencies:\n    - numpy  # pinned later\n    - scipy\n"
        "channels:\n  - demo\n"
    )
    inserted = add_dependency(text, "pandas")
    assert inserted.added and inserted.line == 5
    assert inserted.text.splitlines()[4] == "    - pandas"
    assert "# the site" in inserted.text and "# pinned later" in inserted.text
    assert dependencies_of(inserted.text) == ("numpy", "scipy", "pandas")


def test_a_dependency_goes_before_the_pip_block_and_unindented_lists_stay_so() -> None:
    text = "name: web\ndependencies:\n- numpy\n- pip:\n  - requests\n"
    inserted = add_dependency(text, "pip")
    assert inserted.text == "name: web\ndependencies:\n- numpy\n- pip\n- pip:\n  - requests\n"
    spec = parse_specification(inserted.text)
    assert isinstance(spec, EnvironmentSpec)
    assert spec.dependencies == ("numpy", "pip") and spec.pip == ("requests",)


def test_an_empty_or_missing_dependencies_list_gets_one() -> None:
    for text in ("name: web\ndependencies:\n", "name: web\ndependencies: []\n", "name: web"):
        inserted = add_dependency(text, "numpy")
        assert inserted.added, text
        assert dependencies_of(inserted.text) == ("numpy",), inserted.text
    commented = "name: web\ndependencies:\n  # one per line\n"
    inserted = add_dependency(commented, "numpy")
    assert inserted.text == "name: web\ndependencies:\n  # one per line\n  - numpy\n"
    assert inserted.line == 4


def test_nothing_is_inserted_twice_nor_into_a_one_line_list_nor_a_bad_name() -> None:
    text = "name: web\ndependencies:\n  - 'demo::NumPy >=1'\n"
    again = add_dependency(text, "numpy")
    assert not again.added and again.text == text and again.line == 3
    assert "already a dependency (line 3)" in again.message
    flow = "name: web\ndependencies: [numpy]\n"
    refused = add_dependency(flow, "scipy")
    assert not refused.added and refused.text == flow and "on one line" in refused.message
    bad = add_dependency(text, "x y")
    assert not bad.added and "not a package name" in bad.message


VERSIONS = [
    "0.4", "0.4.0", "0.4.1rc1", "0.4.1", "0.5a1", "0.5b3", "0.5", "0.9.6", "0.960923", "1.0",
    "1.1dev1", "1.1a1", "1.1.0dev1", "1.1.a1", "1.1.0rc1", "1.1.0", "1.1", "1.1.0post1",
    "1.1.post1", "1.9", "1.10", "1.10.1", "2.0.0", "2023.10.1", "1!0.1", "1.0+2", "1.0+10",
]  # fmt: skip


def test_versions_are_ordered_as_conda_orders_them() -> None:
    for first, second in itertools.product(VERSIONS, repeat=2):
        expected = (Version(first) > Version(second)) - (Version(first) < Version(second))
        assert compare_versions(first, second) == expected, (first, second)
    assert sorted(["1.10", "1.9", "1.1"], key=version_key) == ["1.1", "1.9", "1.10"]
    assert sorted(["1.0", "not a version!", "0.9"], key=version_key)[-1] == "not a version!"


def test_changes_name_added_removed_upgraded_downgraded_and_moved_packages() -> None:
    installed = [
        InstalledPackage("lib", "1.0.0", "file:///demo"),
        InstalledPackage("old", "1.0", "file:///demo"),
        InstalledPackage("tool", "2.0", "file:///demo"),
        InstalledPackage("data", "1.0.0", "file:///demo"),
        InstalledPackage("same", "3", "file:///demo"),
    ]
    planned = [
        PlannedPackage("lib", "2.0.0", "h0", "file:///demo"),
        PlannedPackage("tool", "1.10", "h0", "file:///demo"),
        PlannedPackage("data", "1.0.0", "h0", "file:///other"),
        PlannedPackage("same", "3", "h0", "file:///demo"),
        PlannedPackage("new", "0.1", "h0", "file:///demo"),
    ]
    changes = compare(7, installed, planned)
    assert changes.build_id == 7 and changes.any
    assert [p.name for p in changes.added] == ["new"]
    assert [p.name for p in changes.removed] == ["old"]
    assert [(c.name, c.old_version, c.new_version) for c in changes.upgraded] == [
        ("lib", "1.0.0", "2.0.0")
    ]
    assert [(c.name, c.old_version, c.new_version) for c in changes.downgraded] == [
        ("tool", "2.0", "1.10")
    ]
    assert [(c.name, c.new_channel) for c in changes.changed] == [("data", "file:///other")]
    assert changes.unchanged == 1
    assert not compare(
        7, installed, [PlannedPackage(p.name, p.version, "", p.channel) for p in installed]
    ).any


@pytest.mark.parametrize("name", ["numpy", "python_abi", "r-base", "ca-certificates"])
def test_real_package_names_are_accepted(name: str) -> None:
    assert add_dependency("name: x\n", name).added
