"""Password hashes of local accounts: scrypt, with a random salt, in a self-describing string.

Format: ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>``, so the cost can be raised later without
invalidating stored hashes (:func:`needs_rehash`). Verification takes constant time in the
length of the hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

#: scrypt cost (2**14 = 16 MiB of memory per hash, about 50 ms here), block size, parallelism.
COST, BLOCK_SIZE, PARALLELISM = 2**14, 8, 1
_SALT_BYTES, _HASH_BYTES = 16, 32
#: Passwords are at least this long (and at most 1,024 characters).
MIN_LENGTH, MAX_LENGTH = 8, 1024


def check_password_rules(password: str) -> str | None:
    """Why ``password`` cannot be used, or None when it can."""
    if len(password) < MIN_LENGTH:
        return f"the password is too short: use at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"the password is too long: use at most {MAX_LENGTH} characters"
    return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """A new salted scrypt hash of ``password``."""
    salt = os.urandom(_SALT_BYTES)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=COST, r=BLOCK_SIZE, p=PARALLELISM, dklen=_HASH_BYTES
    )
    return f"scrypt${COST}${BLOCK_SIZE}${PARALLELISM}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str | None) -> bool:
    """Whether ``password`` matches the stored hash (False for no hash or a malformed one)."""
    if not encoded or len(password) > MAX_LENGTH:
        return False
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=2**26,
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def needs_rehash(encoded: str) -> bool:
    """Whether a stored hash uses weaker parameters than :data:`COST` and friends."""
    return not encoded.startswith(f"scrypt${COST}${BLOCK_SIZE}${PARALLELISM}$")
