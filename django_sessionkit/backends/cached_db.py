"""A database session store with a shared cache in front: Redis through django-redis.

Use it as ``SESSION_ENGINE = "django_sessionkit.backends.cached_db"``, with
``SESSION_CACHE_ALIAS`` naming a cache that every app server shares. The
database stays the source of truth for validity, listing and revocation; the
cache only answers reads of sessions the database vouched for a moment ago.

- A read is one ``GET`` of the session's entry, keyed by ``sha256(key)``; a
  hit costs no SQL. The deadlines in the entry are checked against the
  application's clock, as with the database store. An entry that looks
  expired is confirmed with the database before anyone is signed out.
- A miss reads the database and refills with ``add`` (set-if-absent). Writes
  go to the database first and to the cache only after they succeeded, with
  a compare-and-set (one Lua script) that never replaces a tombstone.
- Every key that stops being valid (revocation, logout, expiry, rotation) has
  its entry replaced by a tombstone. A read that finds one goes to the
  database and never refills, so a request that read the row just before a
  revoke cannot bring it back by writing the cache just after it.
- No entry lives longer than ``SESSIONKIT_CACHE_MAX_AGE`` from the moment its
  state was read from or written to the database, nor past the session's own
  deadlines; tombstones outlive every entry that could have been written
  before them.
- When the cache cannot be reached, requests are served from the database.
  Tombstones that could not be written are recorded in the database
  (``CachePurge``); a process writes them before it trusts the cache again
  after a failure, and every process looks for them once per
  ``SESSIONKIT_CACHE_SWEEP_INTERVAL``. A write that finds its row gone
  tombstones the key at once.

Caches other than django-redis (Django's own Redis cache, memcached) have no
compare-and-set through Django's cache API: there the tombstone is also kept
under a key of its own, read together with the entry (one ``get_many()``),
and a write after a database write cannot hide it.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted
from django.core.cache import BaseCache, caches
from django.db import models, router
from django.db.models.base import ModelState
from django.utils import timezone

from django_sessionkit.backends import db
from django_sessionkit.conf import conf
from django_sessionkit.keys import hash_key, is_well_formed
from django_sessionkit.models import CachePurge, Session
from django_sessionkit.shield import shielded

# Django's own cached_db store logs its cache failures here; sites already
# watch this logger.
logger = logging.getLogger("django.contrib.sessions")

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
#: How long a process serves from the database alone after a cache failure
#: before it tries the cache again.
RETRY_AFTER = 1.0
_PURGE_BATCH = 500


def entry_key(key_hash: str) -> str:
    """The cache key of the entry of the session whose key hashes to ``key_hash``."""
    return f"sessionkit:s:{key_hash}"


def tombstone_key(key_hash: str) -> str:
    """The cache key that marks ``key_hash`` as no longer served from the cache."""
    return f"sessionkit:t:{key_hash}"


def session_cache() -> BaseCache:
    """The cache named by ``SESSION_CACHE_ALIAS``."""
    return caches[settings.SESSION_CACHE_ALIAS]


def max_age() -> float:
    """``SESSIONKIT_CACHE_MAX_AGE`` in seconds."""
    age = conf.CACHE_MAX_AGE
    return age.total_seconds() if age is not None else 0.0


def miss_timeout() -> float:
    """How long a miss marker lives: ``MISS_TIMEOUT``, within ``max_age()``."""
    return min(MISS_TIMEOUT.total_seconds(), max_age())


def tombstone_timeout() -> float:
    """How long a tombstone lives: longer than any entry written before it."""
    return max_age() + TOMBSTONE_MARGIN.total_seconds()


# -- Entries: a row's columns and its data, in plain values ----------------
#
# An entry is ``(FORMAT, data, *columns)``: the session's data already
# decoded (as Django's cache engines keep it, so a hit costs no signature
# check and no JSON parsing), then every other column of the row in field
# order, datetimes as ISO 8601 strings so that pickle, JSON and msgpack
# serializers all give back what was stored.


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
    """The columns of ``record``, by attribute name."""
    return {name: getattr(record, name) for name in _columns(type(record))}


def pack(
    values: dict[str, Any], data: dict[str, Any], model: type[Session] = Session
) -> tuple[Any, ...]:
    """The entry of a row (``values``, by attribute name) whose data is ``data``."""
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
    """The row and data stored as ``entry``, or ``None`` when it is not an entry.

    The row's ``session_data`` is left empty: the data comes decoded beside it.
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


def entry_timeout(values: dict[str, Any], observed: float) -> float | None:
    """Seconds the entry of ``values`` may live, or ``None`` when not at all.

    ``observed`` is the ``time.monotonic()`` at which the database returned or
    accepted ``values``: the entry's age counts from then, not from the cache
    write.
    """
    deadlines = [
        d for d in (values["expire_date"], values["absolute_expire_date"]) if d
    ]
    remaining = (min(deadlines) - timezone.now()).total_seconds()
    timeout = min(remaining, max_age() - (time.monotonic() - observed))
    return timeout if timeout > 0 else None


# -- Two ways to keep tombstones safe from later writes --------------------


class Plain:
    """Any Django cache: the tombstone also under a key of its own.

    A write after a database write may replace a tombstoned entry (Django's
    cache API has no compare-and-set), so a read asks for the entry and the
    tombstone key together and believes the tombstone key.
    """

    def __init__(self, cache: BaseCache) -> None:
        self.cache = cache

    def tombstones(self, key_hashes: Iterable[str]) -> dict[str, int]:
        """The keys and values that tombstone ``key_hashes``."""
        marks: dict[str, int] = {}
        for key_hash in key_hashes:
            marks[entry_key(key_hash)] = GONE
            marks[tombstone_key(key_hash)] = GONE
        return marks

    @staticmethod
    def _answer(key_hash: str, found: dict[str, Any]) -> tuple[Any, bool]:
        entry = found.get(entry_key(key_hash))
        return entry, entry == GONE or tombstone_key(key_hash) in found

    def read(self, key_hash: str) -> tuple[Any, bool]:
        """The entry stored for ``key_hash`` (or ``None``) and whether it ended."""
        keys = [entry_key(key_hash), tombstone_key(key_hash)]
        return self._answer(key_hash, self.cache.get_many(keys))

    async def aread(self, key_hash: str) -> tuple[Any, bool]:
        """Async twin of :meth:`read`."""
        keys = [entry_key(key_hash), tombstone_key(key_hash)]
        return self._answer(key_hash, await _aget_many(self.cache, keys))

    def put(self, key_hash: str, entry: tuple[Any, ...] | None, timeout: float) -> None:
        """After a database write: store ``entry``, or drop the stale one."""
        if entry is not None:
            self.cache.set(entry_key(key_hash), entry, timeout)
        else:
            self.cache.delete(entry_key(key_hash))

    async def aput(
        self, key_hash: str, entry: tuple[Any, ...] | None, timeout: float
    ) -> None:
        """Async twin of :meth:`put`."""
        if entry is not None:
            await self.cache.aset(entry_key(key_hash), entry, timeout)
        else:
            await self.cache.adelete(entry_key(key_hash))

    def refill(self, key: str, value: Any, timeout: float) -> None:
        """After a miss: ``add`` the entry (or the miss marker) under ``key``.

        A tombstone and a newer entry stay. A miss marker does not stay under
        a row's entry: it was written by a request that looked before the row
        existed, and would hide it. Deleting it (the next read refills) is
        safe without compare-and-set: what a delete racing a write removes is
        only read from the database again, and the tombstone key stays.
        """
        if self.cache.add(key, value, timeout) or value == MISS:
            return
        if self.cache.get(key) == MISS:
            self.cache.delete(key)

    async def arefill(self, key: str, value: Any, timeout: float) -> None:
        """Async twin of :meth:`refill`."""
        if await self.cache.aadd(key, value, timeout) or value == MISS:
            return
        if await self.cache.aget(key) == MISS:
            await self.cache.adelete(key)


# Run atomically by Redis: replace (or, without a value, delete) the entry
# unless it is a tombstone; a miss marker is replaced like an entry. GONE is
# stored as its digits.
_PUT_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return 0 end
if ARGV[2] == '' then return redis.call('DEL', KEYS[1]) end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""
# A refill after a miss: set the entry if the key is empty or holds a miss
# marker (MISS, as its digits), never over a tombstone or a newer entry.
_REFILL_SCRIPT = """
local found = redis.call('GET', KEYS[1])
if found and found ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""


class Guarded(Plain):
    """django-redis: one key per session and a compare-and-set for writes.

    Reads are one ``GET`` on the primary (``get_client(write=True)``), and a
    write after a database write runs a Lua script that leaves a tombstone
    in place, so the tombstone needs no key of its own.
    """

    def __init__(self, cache: BaseCache) -> None:
        super().__init__(cache)
        self.client = cache.client  # type: ignore[attr-defined]
        self._script: Any = None
        self._refill_script: Any = None

    def tombstones(self, key_hashes: Iterable[str]) -> dict[str, int]:
        return {entry_key(key_hash): GONE for key_hash in key_hashes}

    def read(self, key_hash: str) -> tuple[Any, bool]:
        client = self.client
        raw = client.get_client(write=True).get(client.make_key(entry_key(key_hash)))
        entry = None if raw is None else client.decode(raw)
        return entry, entry == GONE

    async def aread(self, key_hash: str) -> tuple[Any, bool]:
        # django-redis has no async client: its sync one, on a thread.
        answer: tuple[Any, bool] = await sync_to_async(self.read)(key_hash)
        return answer

    def put(self, key_hash: str, entry: tuple[Any, ...] | None, timeout: float) -> None:
        client = self.client
        redis = client.get_client(write=True)
        if self._script is None:
            self._script = redis.register_script(_PUT_SCRIPT)
        value = b"" if entry is None else client.encode(entry)
        self._script(
            keys=[client.make_key(entry_key(key_hash))],
            args=[GONE, value, max(1, int(timeout * 1000))],
            client=redis,
        )

    async def aput(
        self, key_hash: str, entry: tuple[Any, ...] | None, timeout: float
    ) -> None:
        await sync_to_async(self.put)(key_hash, entry, timeout)

    def refill(self, key: str, value: Any, timeout: float) -> None:
        if value == MISS:
            self.cache.add(key, value, timeout)
            return
        client = self.client
        redis = client.get_client(write=True)
        if self._refill_script is None:
            self._refill_script = redis.register_script(_REFILL_SCRIPT)
        self._refill_script(
            keys=[client.make_key(key)],
            args=[MISS, client.encode(value), max(1, int(timeout * 1000))],
            client=redis,
        )

    async def arefill(self, key: str, value: Any, timeout: float) -> None:
        await sync_to_async(self.refill)(key, value, timeout)


def _guardable(cache: BaseCache) -> bool:
    # django-redis' default client (and its Sentinel flavour) reach one
    # primary through get_client(write=True) and store values as encode()
    # makes them; the shard and herd clients do neither.
    try:
        from django_redis.cache import RedisCache
        from django_redis.client import DefaultClient, HerdClient, ShardClient
    except ImportError:  # pragma: no cover - django-redis is a dependency
        return False
    if not isinstance(cache, RedisCache):
        return False
    client = cache.client
    return isinstance(client, DefaultClient) and not isinstance(
        client, HerdClient | ShardClient
    )


#: The attribute of a cache object that holds its access object.
_ACCESS = "_sessionkit_access"


def access(cache: BaseCache) -> Plain:
    """How the store reads and writes ``cache``: :class:`Guarded` or :class:`Plain`.

    Django makes a cache object per alias and thread (and per task under
    ASGI): the access object is kept on the cache object itself, so it goes
    when the cache object goes.
    """
    found: Plain | None = getattr(cache, _ACCESS, None)
    if found is None or found.cache is not cache:
        found = Guarded(cache) if _guardable(cache) else Plain(cache)
        setattr(cache, _ACCESS, found)
    return found


def _tombstones(cache: BaseCache, key_hashes: Iterable[str]) -> dict[str, int]:
    return access(cache).tombstones(key_hashes)


# -- This process's trust in the cache --------------------------------------


@dataclass
class Health:
    """Whether this process may use the cache.

    A process starts suspicious: before its first use of the cache it writes
    the tombstones recorded as pending (by any process) while the cache could
    not be reached. After a cache failure it serves from the database alone
    for ``RETRY_AFTER`` seconds, then drains the pending tombstones again
    before it reads the cache.
    """

    suspect: bool = True
    retry_at: float = 0.0
    sweep_at: float = 0.0

    def failed(self) -> None:
        self.suspect = True
        self.retry_at = time.monotonic() + RETRY_AFTER

    def may_try(self) -> bool:
        return not self.suspect or time.monotonic() >= self.retry_at

    def drained(self) -> None:
        self.suspect = False
        interval = conf.CACHE_SWEEP_INTERVAL
        seconds = interval.total_seconds() if interval is not None else float("inf")
        self.sweep_at = time.monotonic() + seconds

    def sweep_due(self) -> bool:
        return self.suspect or time.monotonic() >= self.sweep_at


health = Health()


def _pending() -> models.QuerySet[CachePurge]:
    return CachePurge.objects.using(router.db_for_write(CachePurge)).order_by("pk")


def _record_pending(key_hashes: list[str]) -> None:
    if key_hashes:
        CachePurge.objects.using(router.db_for_write(CachePurge)).bulk_create(
            [CachePurge(key_hash=h) for h in key_hashes], ignore_conflicts=True
        )


async def _arecord_pending(key_hashes: list[str]) -> None:
    if key_hashes:
        await CachePurge.objects.using(router.db_for_write(CachePurge)).abulk_create(
            [CachePurge(key_hash=h) for h in key_hashes], ignore_conflicts=True
        )


class ReplicationError(Exception):
    """Fewer replicas than ``SESSIONKIT_CACHE_WAIT_REPLICAS`` kept a tombstone."""


def _replicated_tombstones(cache: BaseCache, key_hashes: Iterable[str]) -> None:
    # django-redis' own client: the writes and the WAIT go down one
    # connection in one pipeline, so WAIT counts exactly these writes.
    wanted = conf.CACHE_WAIT_REPLICAS
    wait = conf.CACHE_WAIT_TIMEOUT or timedelta(0)
    client = cache.client  # type: ignore[attr-defined]
    milliseconds = int(tombstone_timeout() * 1000)
    pipeline = client.get_client(write=True).pipeline(transaction=False)
    for key, value in _tombstones(cache, key_hashes).items():
        pipeline.set(client.make_key(key), client.encode(value), px=milliseconds)
    pipeline.execute_command("WAIT", wanted, max(1, int(wait.total_seconds() * 1000)))
    kept = pipeline.execute()[-1]
    if kept < wanted:
        raise ReplicationError(f"{kept} of {wanted} replicas kept the tombstones")


# Django 5.2's BaseCache.aget_many()/aset_many() ask the backend key by key,
# one round trip each; Django 6 calls the backend's own get_many()/set_many()
# (one MGET, one pipeline) on the ORM's thread. These do what Django 6 does.


def _own(cache: BaseCache, method: str) -> bool:
    """Whether the backend has its own ``method``, not BaseCache's key loop."""
    return getattr(type(cache), method, None) is not getattr(BaseCache, method)


async def _aget_many(cache: BaseCache, keys: list[str]) -> dict[str, Any]:
    if not _own(cache, "get_many"):
        return await cache.aget_many(keys)
    found: dict[str, Any] = await sync_to_async(cache.get_many)(keys)
    return found


async def _aset_many(cache: BaseCache, data: dict[str, Any], timeout: float) -> None:
    if not _own(cache, "set_many"):
        await cache.aset_many(data, timeout)
    else:
        await sync_to_async(cache.set_many)(data, timeout)


def write_tombstones(cache: BaseCache, key_hashes: Iterable[str]) -> None:
    """Tombstone ``key_hashes`` in one round trip; raise when that failed.

    With ``SESSIONKIT_CACHE_WAIT_REPLICAS``, the tombstones only count as
    written once that many replicas have them: a failover then cannot lose
    them.
    """
    if conf.CACHE_WAIT_REPLICAS:
        _replicated_tombstones(cache, key_hashes)
    else:
        cache.set_many(_tombstones(cache, key_hashes), tombstone_timeout())


async def awrite_tombstones(cache: BaseCache, key_hashes: Iterable[str]) -> None:
    """Async twin of :func:`write_tombstones`."""
    if conf.CACHE_WAIT_REPLICAS:
        # django-redis has no async client: its sync one, on a thread.
        await sync_to_async(_replicated_tombstones, thread_sensitive=False)(
            cache, list(key_hashes)
        )
    else:
        await _aset_many(cache, _tombstones(cache, key_hashes), tombstone_timeout())


def _drain_failed() -> None:
    # The cache, or the database holding the pending purges: the traceback
    # says which (and shows a programming error for what it is).
    logger.warning(
        "Pending cache purges could not be written; serving sessions from the database",
        exc_info=True,
    )
    health.failed()


def drain() -> bool:
    """Write every pending tombstone; return whether the cache may be trusted."""
    if not health.may_try():
        return False
    cache = session_cache()
    try:
        while batch := list(_pending().values_list("pk", "key_hash")[:_PURGE_BATCH]):
            write_tombstones(cache, [h for _, h in batch])
            _pending().filter(pk__in=[pk for pk, _ in batch]).delete()
    except Exception:
        _drain_failed()
        return False
    health.drained()
    return True


async def adrain() -> bool:
    """Async twin of :func:`drain`."""
    if not health.may_try():
        return False
    cache = session_cache()
    try:
        while batch := [
            row async for row in _pending().values_list("pk", "key_hash")[:_PURGE_BATCH]
        ]:
            await awrite_tombstones(cache, [h for _, h in batch])
            await _pending().filter(pk__in=[pk for pk, _ in batch]).adelete()
    except Exception:
        _drain_failed()
        return False
    health.drained()
    return True


def usable() -> bool:
    """Whether this process may read the cache now.

    Drains first when this process saw the cache fail, and otherwise every
    ``SESSIONKIT_CACHE_SWEEP_INTERVAL``: so tombstones that another process
    could not write (it could not reach Redis) reach the cache within that
    interval, from any process that can. Writes call it too, but are tried
    whatever it answers: a failed write is logged and recorded, and a write
    never brings back what a tombstone ended.
    """
    return drain() if health.sweep_due() else True


async def ausable() -> bool:
    """Async twin of :func:`usable`."""
    return await adrain() if health.sweep_due() else True


def _settled(key_hashes: list[str]) -> None:
    # The tombstones are in the cache: their pending purges (written ahead,
    # in the transaction that ended or changed the rows) are done.
    try:
        _pending().filter(key_hash__in=key_hashes).delete()
    except Exception:
        # Left for the next sweep, which writes them again: harmless.
        logger.warning("Done cache purges could not be cleared", exc_info=True)


async def _asettled(key_hashes: list[str]) -> None:
    try:
        await _pending().filter(key_hash__in=key_hashes).adelete()
    except Exception:
        logger.warning("Done cache purges could not be cleared", exc_info=True)


def purge(key_hashes: list[str]) -> None:
    """Tombstone ``key_hashes`` in one round trip, or record them as pending.

    Pending purges of the same keys (written ahead by the transaction that
    ended the sessions) are cleared once the tombstones are written.
    """
    if not key_hashes:
        return
    usable()
    try:
        write_tombstones(session_cache(), key_hashes)
    except Exception:
        logger.exception("Error purging sessions from the cache")
        health.failed()
        _record_pending(key_hashes)
        return
    _settled(key_hashes)


async def apurge(key_hashes: list[str]) -> None:
    """Async twin of :func:`purge`."""
    if not key_hashes:
        return
    await ausable()
    try:
        await awrite_tombstones(session_cache(), key_hashes)
    except Exception:
        logger.exception("Error purging sessions from the cache")
        health.failed()
        await _arecord_pending(key_hashes)
        return
    await _asettled(key_hashes)


# -- The store --------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    """What a successful database write leaves for the cache to do."""

    key_hash: str | None
    entry: tuple[Any, ...] | None
    timeout: float | None
    replaced: str | None

    def pending(self) -> list[str]:
        """Keys to purge later when the cache cannot take this write."""
        return [h for h in (self.replaced, self.key_hash) if h is not None]


class SessionStore(db.SessionStore):
    """Database-backed sessions read through a shared cache."""

    caches_rows = True
    cache_key_prefix = "sessionkit:s:"

    def __init__(self, session_key: str | None = None) -> None:
        self._cache = session_cache()
        super().__init__(session_key)
        # The row as the database has it after this request's last write.
        self._row: dict[str, Any] | None = None
        #: Whether the session was served from the cache (no SQL).
        self.from_cache = False

    @property
    def cache_key(self) -> str:
        """The cache key of this session's entry (derived from the key's hash)."""
        return entry_key(hash_key(self._get_or_create_session_key()))  # type: ignore[attr-defined]

    async def acache_key(self) -> str:
        """Async twin of :attr:`cache_key`."""
        key = await self._aget_or_create_session_key()  # type: ignore[attr-defined]
        return entry_key(hash_key(key))

    # -- Decisions shared by the sync and async paths ------------------------

    def _presented(self) -> str | None:
        """The hash of the presented key, or ``None`` (no lookup at all)."""
        session_key = self.session_key
        if not is_well_formed(session_key):
            self._session_key = None
            return None
        assert session_key is not None
        return hash_key(session_key)

    def _hit(
        self, key_hash: str, found: tuple[Any, bool]
    ) -> tuple[Session, dict[str, Any]] | None:
        """The live row and data the cache answered with, or ``None`` to ask
        the database."""
        entry, ended = found
        if ended:
            return None
        hit = unpack(entry, self._using())
        if hit is None or hit[0].key_hash != key_hash:
            return None
        # An entry past a deadline may be stale: the database decides.
        if not hit[0].is_live(timezone.now()):
            return None
        return hit

    def _marked_missing(self, found: tuple[Any, bool]) -> bool:
        """Whether the cache says that no row had this key a moment ago."""
        entry, ended = found
        if ended or type(entry) is not int or entry != MISS:
            return False
        self.from_cache = True
        return True

    def _served(self, hit: tuple[Session, dict[str, Any]]) -> dict[str, Any]:
        self.from_cache = True
        self._record, data = hit
        self._has_row = True
        return data

    def _refill(
        self, key_hash: str, observed: float, data: dict[str, Any]
    ) -> tuple[str, Any, float] | None:
        """What to ``add`` after a miss: only the row found by the presented key."""
        record = self._record
        if record is None or record.key_hash != key_hash:
            return None  # none, or found through a previous key
        values = row_values(record)
        timeout = entry_timeout(values, observed)
        if timeout is None:
            return None
        return entry_key(key_hash), pack(values, data, type(record)), timeout

    def _missed(self, key_hash: str) -> tuple[str, Any, float] | None:
        """The miss marker to ``add`` when no row has the presented key."""
        if self._record is not None or self.ended_record is not None:
            return None
        timeout = miss_timeout()
        return (entry_key(key_hash), MISS, timeout) if timeout > 0 else None

    def _add(self, key: str, entry: Any, timeout: float) -> None:
        """Refill after a miss: a tombstone or a newer entry stays."""
        access(self._cache).refill(key, entry, timeout)

    async def _aadd(self, key: str, entry: Any, timeout: float) -> None:
        """Async twin of :meth:`_add`."""
        await access(self._cache).arefill(key, entry, timeout)

    def _using(self) -> str:
        return router.db_for_write(self.get_model_class())

    def _write(
        self,
        values: dict[str, Any] | None,
        replaced: str | None,
        complete: bool,
        observed: float,
    ) -> Write:
        session_key = self._session_key
        key_hash = None
        if session_key is not None and is_well_formed(session_key):
            key_hash = hash_key(session_key)
        row = self._row
        if (values is None or row is None) and self._record is not None:
            # An insert wrote the whole record; else start from the row read.
            row = row_values(self._record)
        entry = timeout = None
        # What the row's data is after the write: this request's data.
        data = getattr(self, "_session_cache", None)
        if complete and row is not None and key_hash is not None and data is not None:
            row = {**row, **(values or {}), "key_hash": key_hash}
            self._row = row
            timeout = entry_timeout(row, observed)
            entry = pack(row, data, self.get_model_class()) if timeout else None
        else:
            self._row = None
        return Write(key_hash, entry, timeout, replaced)

    def _cache_failed(self, write: Write) -> list[str]:
        logger.exception("Error saving to cache (%s)", self._cache)
        health.failed()
        return write.pending()

    # -- Hooks of the database store -----------------------------------------

    def _stored(
        self,
        values: dict[str, Any] | None,
        *,
        replaced: str | None = None,
        complete: bool = True,
    ) -> None:
        observed = time.monotonic()  # the database has just written
        # A due sweep may take a while: the entry's lifetime counts from the
        # database write, so it is worked out after the sweep.
        usable()
        write = self._write(values, replaced, complete, observed)
        try:
            if write.replaced is not None:
                write_tombstones(self._cache, [write.replaced])
            if write.key_hash is not None:
                access(self._cache).put(
                    write.key_hash, write.entry, write.timeout or 0.0
                )
        except Exception:
            _record_pending(self._cache_failed(write))
            return
        if write.replaced is not None:
            _settled([write.replaced])

    async def _astored(
        self,
        values: dict[str, Any] | None,
        *,
        replaced: str | None = None,
        complete: bool = True,
    ) -> None:
        observed = time.monotonic()  # the database has just written
        # A due sweep may take a while: the entry's lifetime counts from the
        # database write, so it is worked out after the sweep.
        await ausable()
        write = self._write(values, replaced, complete, observed)
        try:
            if write.replaced is not None:
                await awrite_tombstones(self._cache, [write.replaced])
            if write.key_hash is not None:
                await access(self._cache).aput(
                    write.key_hash, write.entry, write.timeout or 0.0
                )
        except Exception:
            await _arecord_pending(self._cache_failed(write))
            return
        if write.replaced is not None:
            await _asettled([write.replaced])

    def _removed(self, key_hash: str) -> None:
        self._row = None
        purge([key_hash])

    async def _aremoved(self, key_hash: str) -> None:
        self._row = None
        await apurge([key_hash])

    @classmethod
    def ending(cls, key_hashes: list[str]) -> None:
        _record_pending(key_hashes)

    @classmethod
    def ended(cls, key_hashes: list[str]) -> None:
        purge(key_hashes)

    @classmethod
    async def aended(cls, key_hashes: list[str]) -> None:
        await apurge(key_hashes)

    def forget(self) -> None:
        super().forget()
        self._row = None

    def _lost(self) -> list[str]:
        """A write found no row: the key to tombstone, so no copy outlives it.

        The database says the session is gone (revoked while this process
        could not hear about it, say): whatever the cache still holds for
        the key must not serve it again.
        """
        self._row = None
        session_key = self._session_key
        if session_key is None or not is_well_formed(session_key):
            return []
        return [hash_key(session_key)]

    # -- Sync API ------------------------------------------------------------

    def save(self, must_create: bool = False) -> None:
        try:
            super().save(must_create)
        except UpdateError:
            purge(self._lost())
            raise

    def touch(self) -> bool:
        """Write activity and deadlines; tombstone the key when the row is gone."""
        if super().touch():
            return True
        purge(self._lost())
        return False

    def cycle_key(self) -> None:
        try:
            super().cycle_key()
        except SessionInterrupted:
            purge(self._lost())
            raise

    def _cached(self, key_hash: str) -> tuple[Any, bool] | None:
        """The cache's answer for ``key_hash``: its entry and whether it ended."""
        if not usable():
            return None
        try:
            found = access(self._cache).read(key_hash)
        except Exception:
            logger.warning("Session cache unavailable; serving from the database")
            health.failed()
            return None
        return found

    def load(self) -> dict[str, Any]:
        self.from_cache = False
        self._row = None
        key_hash = self._presented()
        if key_hash is None:
            return {}
        found = self._cached(key_hash)
        if found is not None:
            if self._marked_missing(found):
                return self._end(None, None)
            hit = self._hit(key_hash, found)
            if hit is not None:
                return self._served(hit)
        observed = time.monotonic()
        data = super().load()
        if found is not None and not found[1]:
            refill = self._refill(key_hash, observed, data)
            if refill is None and found[0] is None:
                refill = self._missed(key_hash)
            if refill is not None:
                try:
                    self._add(*refill)
                except Exception:
                    health.failed()
        return data

    def exists(self, session_key: str | None) -> bool:
        if is_well_formed(session_key):
            assert session_key is not None
            key_hash = hash_key(session_key)
            found = self._cached(key_hash)
            if found is not None and self._hit(key_hash, found) is not None:
                return True
        return super().exists(session_key)

    @classmethod
    def clear_expired(cls) -> None:
        """Delete expired sessions and old events; write pending tombstones."""
        super().clear_expired()
        drain()

    # -- Async API -----------------------------------------------------------

    @shielded
    async def asave(self, must_create: bool = False) -> None:
        try:
            await super().asave(must_create)
        except UpdateError:
            await apurge(self._lost())
            raise

    async def atouch(self) -> bool:
        """Async twin of :meth:`touch`."""
        if await super().atouch():
            return True
        await apurge(self._lost())
        return False

    @shielded
    async def acycle_key(self) -> None:
        try:
            await super().acycle_key()
        except SessionInterrupted:
            await apurge(self._lost())
            raise

    async def _acached(self, key_hash: str) -> tuple[Any, bool] | None:
        if not await ausable():
            return None
        try:
            found = await access(self._cache).aread(key_hash)
        except Exception:
            logger.warning("Session cache unavailable; serving from the database")
            health.failed()
            return None
        return found

    async def aload(self) -> dict[str, Any]:
        self.from_cache = False
        self._row = None
        key_hash = self._presented()
        if key_hash is None:
            return {}
        found = await self._acached(key_hash)
        if found is not None:
            if self._marked_missing(found):
                return self._end(None, None)
            hit = self._hit(key_hash, found)
            if hit is not None:
                return self._served(hit)
        observed = time.monotonic()
        data = await super().aload()
        if found is not None and not found[1]:
            refill = self._refill(key_hash, observed, data)
            if refill is None and found[0] is None:
                refill = self._missed(key_hash)
            if refill is not None:
                try:
                    await self._aadd(*refill)
                except Exception:
                    health.failed()
        return data

    async def aexists(self, session_key: str | None) -> bool:
        if is_well_formed(session_key):
            assert session_key is not None
            key_hash = hash_key(session_key)
            found = await self._acached(key_hash)
            if found is not None and self._hit(key_hash, found) is not None:
                return True
        return await super().aexists(session_key)

    @classmethod
    async def aclear_expired(cls) -> None:
        """Async twin of :meth:`clear_expired`."""
        await super().aclear_expired()
        await adrain()
