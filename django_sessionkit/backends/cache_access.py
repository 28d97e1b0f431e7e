"""How the cached store talks to its cache, and what a cache configuration is.

Two strategies keep tombstones safe from later writes: :class:`Guarded` for
django-redis clients that reach one primary (one key per session, writes
through a compare-and-set script), :class:`Plain` for every other Django
cache (the tombstone also under a key of its own). :func:`access` picks one
for a live cache object; the system checks ask the same questions of a
``CACHES`` entry (:func:`config_reaches_primary`, :func:`reads_replicas`),
so the rules about django-redis clients are written once, here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import BaseCache, caches
from django.utils.module_loading import import_string

from django_sessionkit.backends.cache_entry import (
    GONE,
    MISS,
    entry_key,
    tombstone_key,
    tombstone_timeout,
)
from django_sessionkit.conf import conf

#: The client django-redis uses without ``OPTIONS["CLIENT_CLASS"]``.
_DEFAULT_CLIENT = "django_redis.client.DefaultClient"


def session_cache() -> BaseCache:
    """Return the cache named by ``SESSION_CACHE_ALIAS``: the one every
    process shares, read on every call so that ``override_settings`` applies."""
    return caches[settings.SESSION_CACHE_ALIAS]


# -- What a cache is: one set of rules for cache objects and CACHES entries ---


def _class_at(path: object) -> type | None:
    # A setting that cannot be imported is the checks' to report, never an
    # exception here.
    if not isinstance(path, str):
        return None
    try:
        found = import_string(path)
    except Exception:  # any failure to import means "not that class"
        return None
    return found if isinstance(found, type) else None


def _is_subclass(value: object, base: type) -> bool:
    return isinstance(value, type) and issubclass(value, base)


def is_django_redis(backend: object) -> bool:
    """Return whether ``backend`` (a cache class) is django-redis' cache or built on it.

    Only such a cache gives the store its own client (``cache.client``):
    compare-and-set scripts and ``WAIT`` for replicas need it.
    """
    from django_redis.cache import RedisCache

    return _is_subclass(backend, RedisCache)


def reaches_primary(backend: object, client: object) -> bool:
    """Return whether the store's reads and writes all go to one primary.

    ``backend`` is the cache's class and ``client`` django-redis' client
    class. django-redis' default client (and its Sentinel flavour) reach one
    primary through ``get_client(write=True)`` and store values as
    ``encode()`` makes them: the store then reads and writes through that
    connection (:class:`Guarded`). The shard and herd clients do neither, and
    other caches are read through Django's cache API, which reads the other
    ``LOCATION`` entries of a cache that has several.
    """
    from django_redis.client import DefaultClient, HerdClient, ShardClient

    return (
        is_django_redis(backend)
        and isinstance(client, type)
        and issubclass(client, DefaultClient)
        and not issubclass(client, HerdClient | ShardClient)
    )


def cache_reaches_primary(cache: BaseCache) -> bool:
    """Apply :func:`reaches_primary` to a live cache object."""
    return is_django_redis(type(cache)) and reaches_primary(
        type(cache),
        type(cache.client),  # type: ignore[attr-defined]
    )


def backend_of(config: dict[str, Any]) -> type | None:
    """Return the class a ``CACHES`` entry's ``BACKEND`` names, or ``None``."""
    return _class_at(config.get("BACKEND"))


def config_reaches_primary(config: dict[str, Any]) -> bool:
    """Apply :func:`reaches_primary` to a ``CACHES`` entry, for the checks."""
    options = config.get("OPTIONS") or {}
    client = _class_at(options.get("CLIENT_CLASS") or _DEFAULT_CLIENT)
    return reaches_primary(backend_of(config), client)


def locations(config: dict[str, Any]) -> list[str]:
    """Return the server URLs of a ``CACHES`` entry, in order.

    Django and django-redis both accept a list or one comma-separated string;
    the first is the one written to.
    """
    location = config.get("LOCATION", [])
    if isinstance(location, str):
        return [part for part in location.split(",") if part.strip()] or [location]
    return list(location)


# What redis-py reads as false in a URL's query (``is_master=0``).
_FALSE = {"0", "F", "FALSE", "N", "NO"}


def _names_replica(location: str, options: dict[str, Any]) -> bool:
    # SentinelConnectionFactory connects to a replica for ``is_master=0`` in
    # the URL or ``is_master: False`` in the pool's keyword arguments; every
    # client then reads that replica, whatever else it does.
    values = parse_qs(urlparse(location).query).get("is_master", [])
    pool = options.get("CONNECTION_POOL_KWARGS") or {}
    return any(v.upper() in _FALSE for v in values) or pool.get("is_master") is False


def reads_replicas(config: dict[str, Any]) -> bool:
    """Return whether the store, on the cache ``config`` describes, may read a replica.

    A replica that has not yet seen a tombstone would still serve the
    session it ended: reads of validity must go to the primary.
    """
    options = config.get("OPTIONS") or {}
    found = locations(config)
    if any(_names_replica(location, options) for location in found):
        return True  # a replica's own address: every client reads it
    if config_reaches_primary(config):
        return False
    if len(found) < 2:
        return False
    # django-redis' shard client spreads keys over its LOCATIONs, each a
    # primary; other clients and caches read the others as replicas.
    from django_redis.client import ShardClient

    return not _is_subclass(_class_at(options.get("CLIENT_CLASS")), ShardClient)


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
        """Return the keys and values that tombstone ``key_hashes``."""
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
        """Return the entry stored for ``key_hash`` (or ``None``), and whether
        the key was ended."""
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


#: The attribute of a cache object that holds its access object.
_ACCESS = "_sessionkit_access"


def access(cache: BaseCache) -> Plain:
    """Return how the store reads and writes ``cache``: :class:`Guarded` or
    :class:`Plain`.

    Django makes a cache object per alias and thread (and per task under
    ASGI): the access object is kept on the cache object itself, so it goes
    when the cache object goes.
    """
    found: Plain | None = getattr(cache, _ACCESS, None)
    if found is None or found.cache is not cache:
        found = Guarded(cache) if cache_reaches_primary(cache) else Plain(cache)
        setattr(cache, _ACCESS, found)
    return found


# -- Tombstones: one round trip, and WAIT for replicas ------------------------


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
    for key, value in access(cache).tombstones(key_hashes).items():
        pipeline.set(client.make_key(key), client.encode(value), px=milliseconds)
    pipeline.execute_command("WAIT", wanted, max(1, int(wait.total_seconds() * 1000)))
    kept = pipeline.execute()[-1]
    if kept < wanted:
        raise ReplicationError(f"{kept} of {wanted} replicas kept the tombstones")


def write_tombstones(cache: BaseCache, key_hashes: Iterable[str]) -> None:
    """Tombstone ``key_hashes`` in one round trip; raise when that failed.

    With ``SESSIONKIT_CACHE_WAIT_REPLICAS``, the tombstones only count as
    written once that many replicas have them: a failover then cannot lose
    them.
    """
    if conf.CACHE_WAIT_REPLICAS:
        _replicated_tombstones(cache, key_hashes)
    else:
        cache.set_many(access(cache).tombstones(key_hashes), tombstone_timeout())


async def awrite_tombstones(cache: BaseCache, key_hashes: Iterable[str]) -> None:
    """Async twin of :func:`write_tombstones`."""
    if conf.CACHE_WAIT_REPLICAS:
        # django-redis has no async client: its sync one, on a thread.
        await sync_to_async(_replicated_tombstones, thread_sensitive=False)(
            cache, list(key_hashes)
        )
    else:
        await _aset_many(
            cache, access(cache).tombstones(key_hashes), tombstone_timeout()
        )


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
