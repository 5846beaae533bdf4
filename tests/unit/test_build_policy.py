"""The package policy (conda-store's default / included / required packages)."""

from __future__ import annotations

import pytest

from appliance.builder.policy import PackagePolicy, apply_package_policy
from appliance.common.errors import SpecificationError
from appliance.schemas.specification import EnvironmentSpec, parse_specification


def spec(text: str) -> EnvironmentSpec:
    parsed = parse_specification(text)
    assert isinstance(parsed, EnvironmentSpec)
    return parsed


def test_an_empty_specification_gets_the_default_packages() -> None:
    policy = PackagePolicy(conda_default=("python", "ipykernel"), pypi_default=("requests",))
    result = apply_package_policy(spec("name: e\n"), policy)
    assert result.dependencies == ("python", "ipykernel")
    assert result.pip == ("requests",)


def test_included_packages_are_added_only_when_missing() -> None:
    policy = PackagePolicy(conda_included=("ipykernel", "numpy"), pypi_included=("Rich",))
    result = apply_package_policy(
        spec("name: e\ndependencies:\n  - conda-forge::numpy >=1\n  - pip:\n    - rich==13\n"),
        policy,
    )
    assert result.dependencies == ("conda-forge::numpy >=1", "ipykernel")
    assert result.pip == ("rich==13",)


def test_missing_required_packages_are_named() -> None:
    policy = PackagePolicy(conda_required=("python", "ipykernel"))
    with pytest.raises(SpecificationError) as refused:
        apply_package_policy(spec("name: e\ndependencies:\n  - python 3.11\n"), policy)
    assert "requires ipykernel in every environment" in refused.value.message
    assert "conda_required_packages" in refused.value.message


def test_missing_required_pip_packages_are_named() -> None:
    policy = PackagePolicy(pypi_required=("black",))
    with pytest.raises(SpecificationError, match=r"dependencies\.pip: .*requires black"):
        apply_package_policy(spec("name: e\ndependencies:\n  - python\n"), policy)


def test_a_specification_that_meets_the_policy_is_unchanged() -> None:
    original = spec("name: e\ndependencies:\n  - python\n")
    assert apply_package_policy(original, PackagePolicy(conda_required=("python",))) is original
