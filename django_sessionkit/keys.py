"""Session keys: their shape, and the hash that is stored instead of them."""

from __future__ import annotations

import hashlib
import re

from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.utils.crypto import get_random_string

#: Length of the keys this package issues: 32 characters of ``[a-z0-9]``
#: carry about 165 bits of randomness.
KEY_LENGTH = 32

_ISSUED_KEY = re.compile(rf"[a-z0-9]{{{KEY_LENGTH}}}")


def new_key() -> str:
    """Return a fresh random session key."""
    return get_random_string(KEY_LENGTH, VALID_KEY_CHARS)


def hash_key(key: str) -> str:
    """Return the SHA-256 hex digest of ``key``: the only form that is stored."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def is_well_formed(key: object) -> bool:
    """Whether ``key`` has the shape of a key this package could have issued.

    Anything else (empty, too short or long, other characters, NUL,
    non-ASCII) is treated as no session at all, without a database query.
    """
    return isinstance(key, str) and _ISSUED_KEY.fullmatch(key) is not None
