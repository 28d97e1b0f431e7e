"""Session keys: their shape, and the hash that is stored instead of them."""

from __future__ import annotations

import hashlib
import re

from django.conf import settings
from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.utils.crypto import get_random_string, salted_hmac

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


_SUCCESSOR_SALT = "django_sessionkit.keys.successor"


def _successor(key: str, secret: str | bytes) -> str:
    digest = salted_hmac(_SUCCESSOR_SALT, key, secret=secret, algorithm="sha256")
    number = int.from_bytes(digest.digest(), "big")
    chars = []
    for _ in range(KEY_LENGTH):
        number, index = divmod(number, len(VALID_KEY_CHARS))
        chars.append(VALID_KEY_CHARS[index])
    return "".join(chars)


def successor(key: str) -> str:
    """Return the key that replaces ``key`` at a periodic rotation.

    It is an HMAC of ``key`` under ``SECRET_KEY``: only the holder of the
    predecessor and the server can compute it, so it never has to be stored,
    and parallel requests rotating the same key agree on its successor.
    """
    return _successor(key, settings.SECRET_KEY)


def matching_successor(key: str, key_hash: str) -> str | None:
    """The successor of ``key`` whose hash is ``key_hash``, if there is one.

    Successors under ``SECRET_KEY_FALLBACKS`` count too, so a rotation made
    just before a ``SECRET_KEY`` change is still recognised.
    """
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    for secret in secrets:
        candidate = _successor(key, secret)
        if hash_key(candidate) == key_hash:
            return candidate
    return None
