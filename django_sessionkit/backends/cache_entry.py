"""What the cached store keeps in the cache: entries, tombstones, miss markers.

An entry is ``(FORMAT, data, *columns)``: the session's data already decoded
(as Django's cache engines keep it, so a hit costs no signature check and no
JSON parsing), then every other column of the row in field order, datetimes
as ISO 8601 strings so that pickle, JSON and msgpack serializers all give
back what was stored. How long each of them may live is decided here too,
from ``SESSIONKIT_CACHE_MAX_AGE``.
"""

from __future__ import annotations

import functools
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models.base import ModelState
from django.utils import timezone

from django_sessionkit.conf import conf
from django_sessionkit.models import Session

#: Version of the entry layout; an entry of another layout is a miss.
FORMAT = 3
#: What an ended session's entry is overwritten with (the tombstone): not a
#: tuple, so never an entry. An int, because django-redis and Django's Redis
#: cache store ints as their digits whatever the serializer or compressor, so
#: the compare-and-set script can recognise it without decoding.
GONE = 0
#: What the entry of a key that matched no session holds for a few seconds
#: (the miss marker), so that a key sent again and again (a stale cookie, a
#: replay) costs one ``GET`` and no SQL: neither a tuple nor the tombstone.
#: Written only with set-if-absent, and replaced by every write of a row and
#: by a refill, so it cannot hide a session written after it.
MISS = 1
#: How long a miss marker lives at most (and never longer than an entry).
MISS_TIMEOUT = timedelta(seconds=5)
#: How much longer than any entry a tombstone lives: covers the time between
#: a request's database read and its cache write, and clock steps.
TOMBSTONE_MARGIN = timedelta(seconds=60)


def entry_key(key_hash: str) -> str:
    """Name the cache key of the entry of the session whose key hashes to ``key_hash``.

    Every process derives it alike, so a revocation in one finds the entry
    another one wrote.
    """
    return f"sessionkit:s:{key_hash}"


def tombstone_key(key_hash: str) -> str:
    """Name the cache key that marks ``key_hash`` as no longer served from the cache.

    Only caches without compare-and-set write it (see
    :class:`~django_sessionkit.backends.cache_access.Plain`): there a late
    write may replace a tombstoned entry, but not this key.
    """
    return f"sessionkit:t:{key_hash}"


# -- How long each of them lives --------------------------------------------


def max_age() -> float:
    """Return ``SESSIONKIT_CACHE_MAX_AGE`` in seconds, read on every call so
    that ``override_settings`` applies."""
    age = conf.CACHE_MAX_AGE
    return age.total_seconds() if age is not None else 0.0


def miss_timeout() -> float:
    """Return how long a miss marker lives: ``MISS_TIMEOUT``, within ``max_age()``,
    so that it never outlives an entry written before the row existed."""
    return min(MISS_TIMEOUT.total_seconds(), max_age())


def tombstone_timeout() -> float:
    """Return how long a tombstone lives: longer than any entry written before
    it, so no entry can surface again once its tombstone has gone."""
    return max_age() + TOMBSTONE_MARGIN.total_seconds()


def entry_timeout(values: dict[str, Any], observed: float) -> float | None:
    """Return the seconds the entry of ``values`` may live, or ``None`` when not at all.

    ``observed`` is the ``time.monotonic()`` at which the database returned or
    accepted ``values``: the entry's age counts from then, not from the cache
    write, so a slow request cannot stretch how long the cache is trusted.
    """
    deadlines = [
        d for d in (values["expire_date"], values["absolute_expire_date"]) if d
    ]
    remaining = (min(deadlines) - timezone.now()).total_seconds()
    timeout = min(remaining, max_age() - (time.monotonic() - observed))
    return timeout if timeout > 0 else None


# -- Entries: a row's columns and its data, in plain values ----------------


@functools.cache
def _columns(model: type[Session]) -> tuple[str, ...]:
    return tuple(field.attname for field in model._meta.concrete_fields)


@functools.cache
def _layout(model: type[Session]) -> tuple[tuple[str, ...], frozenset[str]]:
    fields = [f for f in model._meta.concrete_fields if f.attname != "session_data"]
    names = tuple(field.attname for field in fields)
    dates = frozenset(f.attname for f in fields if isinstance(f, models.DateTimeField))
    return names, dates


def row_values(record: Session) -> dict[str, Any]:
    """Return the columns of ``record`` by attribute name: what :func:`pack` takes."""
    return {name: getattr(record, name) for name in _columns(type(record))}


def pack(
    values: dict[str, Any], data: dict[str, Any], model: type[Session] = Session
) -> tuple[Any, ...]:
    """Build the entry of a row (``values``, by attribute name) whose data is ``data``.

    Datetimes become ISO 8601 strings, so every cache serializer gives back
    what :func:`unpack` expects.
    """
    names, dates = _layout(model)
    return (
        FORMAT,
        data,
        *(
            values[name].isoformat()
            if name in dates and values[name] is not None
            else values[name]
            for name in names
        ),
    )


def unpack(
    entry: Any, using: str, model: type[Session] = Session
) -> tuple[Session, dict[str, Any]] | None:
    """Return the row and data stored as ``entry``, or ``None`` when it is not an entry.

    Anything else (a tombstone, a miss marker, another layout, another
    ``USE_TZ``) is a miss, which the database answers. The row's
    ``session_data`` is left empty: the data comes decoded beside it.
    """
    names, dates = _layout(model)
    if (
        not isinstance(entry, tuple | list)
        or len(entry) != len(names) + 2
        or entry[0] != FORMAT
        or not isinstance(entry[1], dict)
    ):
        return None
    # An entry written under the other USE_TZ (a rolling deploy that changes
    # it) holds naive datetimes where aware ones are compared, or the other
    # way round: a miss, read from the database.
    aware = settings.USE_TZ
    values: dict[str, Any] = {}
    try:
        for name, value in zip(names, entry[2:], strict=True):
            if name in dates and value is not None:
                value = datetime.fromisoformat(value)
                if (value.tzinfo is not None) is not aware:
                    return None
            values[name] = value
    except (TypeError, ValueError):
        return None
    # What ``Model.from_db()`` builds, without ``__init__``'s per-field work:
    # every column is set, so nothing is deferred.
    record = model.__new__(model)
    record.__dict__.update(values, session_data="")
    record._state = ModelState()
    record._state.adding = False
    record._state.db = using
    return record, entry[1]
