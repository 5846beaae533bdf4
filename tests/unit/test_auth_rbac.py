"""Role bindings: which names a pattern covers, what roles grant, and token narrowing."""

from __future__ import annotations

import pytest

from appliance.auth.passwords import check_password_rules, hash_password, verify_password
from appliance.auth.rbac import (
    Permission,
    RolePolicy,
    arn_applies,
    arn_within,
    freeze,
    like_pattern,
    union,
)
from appliance.config.auth import PERMISSIONS, AuthorizationBackend


@pytest.fixture
def policy() -> RolePolicy:
    return RolePolicy.from_config(AuthorizationBackend())


@pytest.mark.parametrize(
    ("pattern", "namespace", "environment", "applies"),
    [
        ("*/*", "any", "thing", True),
        ("team/*", "team", "env", True),
        ("team/*", "team", None, True),  # a pattern grants on the namespace itself too
        ("team/*", "teams", "env", False),
        ("team-*/*", "team-a", "x", True),
        ("team-*/*", "team", "x", False),
        ("lab/numpy*", "lab", "numpy-2", True),
        ("lab/numpy*", "lab", "scipy", False),
        ("a.b/*", "aXb", "env", False),  # '.' is literal, not a regex wildcard
    ],
)
def test_which_names_a_binding_applies_to(
    pattern: str, namespace: str, environment: str | None, applies: bool
) -> None:
    assert arn_applies(pattern, namespace, environment) is applies


def test_roles_grant_conda_store_s_permissions_and_developer_is_editor(policy: RolePolicy) -> None:
    viewer = policy.permissions_of(["viewer"])
    assert viewer == {"environment::read", "namespace::read", "namespace-role-mapping::read"}
    assert policy.permissions_of(["developer"]) == policy.permissions_of(["editor"])
    assert Permission.NAMESPACE_CREATE not in policy.permissions_of(["editor"])
    assert policy.permissions_of(["admin"]) == set(PERMISSIONS)
    assert policy.permissions_of(["no-such-role"]) == frozenset()


def test_bindings_from_several_sources_are_unioned_not_replaced(policy: RolePolicy) -> None:
    bindings = union(freeze({"lab/*": ["viewer"]}), freeze({"lab/*": ["editor"]}))
    assert bindings["lab/*"] == {"viewer", "editor"}
    assert Permission.ENVIRONMENT_CREATE in policy.permissions(bindings, "lab", "env")


def test_a_narrower_token_is_covered_and_a_wider_one_is_not(policy: RolePolicy) -> None:
    held = freeze({"alice/*": ["admin"], "default/*": ["viewer"]})
    assert policy.uncovered(held, freeze({"alice/env": ["editor"]})) == []
    assert policy.uncovered(held, freeze({"alice/*": ["viewer"], "default/x": ["viewer"]})) == []
    (problem,) = policy.uncovered(held, freeze({"default/*": ["editor"]}))
    assert problem.startswith("default/*: editor needs ") and "environment::create" in problem
    assert policy.uncovered(held, freeze({"*/*": ["viewer"]})) != []
    assert arn_within("alice/*", "*/*") and not arn_within("*/*", "alice/*")


def test_glob_patterns_become_like_patterns_with_sql_wildcards_escaped() -> None:
    assert like_pattern("team-*") == "team-%"
    assert like_pattern("a_b%c") == "a\\_b\\%c"


def test_passwords_are_salted_scrypt_hashes_checked_in_constant_time() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second and first.startswith("scrypt$")
    assert verify_password("correct horse", first)
    assert not verify_password("wrong horse", first)
    assert not verify_password("anything", None)
    assert not verify_password("anything", "scrypt$broken")
    assert check_password_rules("short") is not None
    assert check_password_rules("long enough") is None
