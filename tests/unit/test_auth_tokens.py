"""Tokens and the secret that signs them."""

from __future__ import annotations

import base64
import json
import stat
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appliance.auth.secrets import load_or_create_secret
from appliance.auth.tokens import (
    InvalidToken,
    TokenClaims,
    binding_covers,
    check_role_bindings,
    mint,
    parse_lifetime,
    verify,
)
from appliance.common.errors import KilnError

SECRET = "a" * 64


def claims(**changes: object) -> TokenClaims:
    values: dict[str, object] = {
        "role_bindings": {"default/*": ("developer",)},
        "expires_at": datetime.now(UTC) + timedelta(hours=1),
    }
    values.update(changes)
    return TokenClaims(**values)  # type: ignore[arg-type]


def test_a_minted_token_verifies_to_its_claims() -> None:
    original = claims(subject="alice", primary_namespace="alice")
    verified = verify(mint(original, secret=SECRET), secret=SECRET)
    assert verified.role_bindings == {"default/*": ("developer",)}
    assert (verified.subject, verified.primary_namespace) == ("alice", "alice")
    assert verified.token_id == original.token_id


def test_expired_tokens_are_refused() -> None:
    token = mint(claims(expires_at=datetime.now(UTC) - timedelta(seconds=5)), secret=SECRET)
    with pytest.raises(InvalidToken, match="expired"):
        verify(token, secret=SECRET)


def test_a_token_signed_with_another_key_is_refused() -> None:
    with pytest.raises(InvalidToken, match="not valid"):
        verify(mint(claims(), secret="b" * 64), secret=SECRET)


def test_alg_none_tokens_are_refused() -> None:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    forged = ".".join(
        [part({"alg": "none", "typ": "JWT"}), part({
            "jti": "x", "exp": int((datetime.now(UTC) + timedelta(hours=1)).timestamp()),
            "role_bindings": {"*/*": ["admin"]}}), ""]
    )  # fmt: skip
    with pytest.raises(InvalidToken):
        verify(forged, secret=SECRET)


@pytest.mark.parametrize(
    ("bindings", "message"),
    [
        ({"default": ["viewer"]}, "expected NAMESPACE/ENVIRONMENT"),
        ({"default/*": ["owner"]}, "unknown role owner; allowed: viewer, developer, editor, admin"),
        ({"default/*": []}, "unknown role (none)"),
    ],
)
def test_bad_role_bindings_are_named(bindings: dict[str, list[str]], message: str) -> None:
    with pytest.raises(KilnError) as refused:
        check_role_bindings(bindings)
    assert message in refused.value.message


def test_binding_patterns_are_globs() -> None:
    assert binding_covers("default/*", "default", "numpy")
    assert binding_covers("*/*", "team", "x")
    assert not binding_covers("default/*", "other", "numpy")


@pytest.mark.parametrize(
    ("text", "seconds"), [("30m", 1800), ("12h", 43200), ("7d", 604800), ("2w", 1209600)]
)
def test_lifetimes(text: str, seconds: int) -> None:
    assert parse_lifetime(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["soon", "10s", "-1d", ""])
def test_bad_lifetimes_are_refused(text: str) -> None:
    with pytest.raises(KilnError, match="lifetime"):
        parse_lifetime(text)


def test_the_secret_is_created_once_private_and_shared_by_concurrent_callers(
    tmp_path: Path,
) -> None:
    secrets_dir = tmp_path / "secrets"
    with ThreadPoolExecutor(8) as pool:
        values = set(pool.map(lambda _: load_or_create_secret(secrets_dir, "jwt"), range(16)))
    assert len(values) == 1
    assert stat.S_IMODE((secrets_dir / "jwt").stat().st_mode) == 0o600
    assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700
    assert load_or_create_secret(secrets_dir, "jwt") == values.pop()
    assert [p.name for p in secrets_dir.iterdir()] == ["jwt"]
