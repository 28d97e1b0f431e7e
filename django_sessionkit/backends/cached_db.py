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

This module holds the store alone. What an entry is and how long it lives:
:mod:`~django_sessionkit.backends.cache_entry`; how the cache is read and
written, and which caches take compare-and-set writes:
:mod:`~django_sessionkit.backends.cache_access`; pending purges and this
process's trust in the cache: :mod:`~django_sessionkit.backends.cache_health`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted
from django.db import router
from django.utils import timezone

from django_sessionkit.backends import cache_health, db
from django_sessionkit.backends.cache_access import (
    access,
    awrite_tombstones,
    session_cache,
    write_tombstones,
)
from django_sessionkit.backends.cache_entry import (
    MISS,
    entry_key,
    entry_timeout,
    miss_timeout,
    pack,
    row_values,
    unpack,
)
from django_sessionkit.keys import hash_key, is_well_formed
from django_sessionkit.models import Session
from django_sessionkit.shield import shielded

# Django's own cached_db store logs its cache failures here; sites already
# watch this logger.
logger = logging.getLogger("django.contrib.sessions")


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
    cache_key_prefix = entry_key("")

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

    def _found_by(self, key_hash: str) -> Session | None:
        """The row the database found by the presented key (not through a
        previous one): the only row a miss refills the cache with."""
        record = self._record
        if record is None or record.key_hash != key_hash:
            return None
        return record

    def _refill(
        self, key_hash: str, observed: float, data: dict[str, Any]
    ) -> tuple[str, Any, float] | None:
        """What to ``add`` after a miss: only the row found by the presented key."""
        record = self._found_by(key_hash)
        if record is None:
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
        cache_health.health.failed()
        return write.pending()

    # -- Hooks --------------------------------------------------------------

    def refilling(self, record: Session) -> None:
        """Called by ``load()`` after a cache miss, once the database has
        returned ``record`` for the presented key and before the cache is
        refilled with it.

        Does nothing here. A subclass may override it to act in that window
        (to observe misses, or to make a race with a revocation happen there
        in a test); it must not change ``record``. Whatever happens in the
        window, the refill never replaces a tombstone or a newer entry.
        """

    async def arefilling(self, record: Session) -> None:
        """Async twin of :meth:`refilling`, awaited by ``aload()`` instead of
        it (so an override may use the async ORM)."""

    def row_written(
        self,
        values: dict[str, Any] | None,
        *,
        replaced: str | None = None,
        complete: bool = True,
    ) -> None:
        observed = time.monotonic()  # the database has just written
        # A due sweep may take a while: the entry's lifetime counts from the
        # database write, so it is worked out after the sweep.
        cache_health.usable()
        write = self._write(values, replaced, complete, observed)
        try:
            if write.replaced is not None:
                write_tombstones(self._cache, [write.replaced])
            if write.key_hash is not None:
                access(self._cache).put(
                    write.key_hash, write.entry, write.timeout or 0.0
                )
        except Exception:
            cache_health.record_pending(self._cache_failed(write))
            return
        if write.replaced is not None:
            cache_health.settled([write.replaced])

    async def arow_written(
        self,
        values: dict[str, Any] | None,
        *,
        replaced: str | None = None,
        complete: bool = True,
    ) -> None:
        observed = time.monotonic()  # the database has just written
        # A due sweep may take a while: the entry's lifetime counts from the
        # database write, so it is worked out after the sweep.
        await cache_health.ausable()
        write = self._write(values, replaced, complete, observed)
        try:
            if write.replaced is not None:
                await awrite_tombstones(self._cache, [write.replaced])
            if write.key_hash is not None:
                await access(self._cache).aput(
                    write.key_hash, write.entry, write.timeout or 0.0
                )
        except Exception:
            await cache_health.arecord_pending(self._cache_failed(write))
            return
        if write.replaced is not None:
            await cache_health.asettled([write.replaced])

    def row_removed(self, key_hash: str) -> None:
        self._row = None
        cache_health.purge([key_hash])

    async def arow_removed(self, key_hash: str) -> None:
        self._row = None
        await cache_health.apurge([key_hash])

    @classmethod
    def ending(cls, key_hashes: list[str]) -> None:
        cache_health.record_pending(key_hashes)

    @classmethod
    def ended(cls, key_hashes: list[str]) -> None:
        cache_health.purge(key_hashes)

    @classmethod
    async def aended(cls, key_hashes: list[str]) -> None:
        await cache_health.apurge(key_hashes)

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
            cache_health.purge(self._lost())
            raise

    def touch(self) -> bool:
        """Write activity and deadlines; tombstone the key when the row is gone."""
        if super().touch():
            return True
        cache_health.purge(self._lost())
        return False

    def cycle_key(self) -> None:
        try:
            super().cycle_key()
        except SessionInterrupted:
            cache_health.purge(self._lost())
            raise

    def _cached(self, key_hash: str) -> tuple[Any, bool] | None:
        """The cache's answer for ``key_hash``: its entry and whether it ended."""
        if not cache_health.usable():
            return None
        try:
            found = access(self._cache).read(key_hash)
        except Exception:
            logger.warning("Session cache unavailable; serving from the database")
            cache_health.health.failed()
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
            record = self._found_by(key_hash)
            if record is not None:
                self.refilling(record)
            refill = self._refill(key_hash, observed, data)
            if refill is None and found[0] is None:
                refill = self._missed(key_hash)
            if refill is not None:
                try:
                    # A tombstone or a newer entry stays.
                    access(self._cache).refill(*refill)
                except Exception:
                    cache_health.health.failed()
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
        cache_health.drain()

    # -- Async API -----------------------------------------------------------

    @shielded
    async def asave(self, must_create: bool = False) -> None:
        try:
            await super().asave(must_create)
        except UpdateError:
            await cache_health.apurge(self._lost())
            raise

    async def atouch(self) -> bool:
        """Async twin of :meth:`touch`."""
        if await super().atouch():
            return True
        await cache_health.apurge(self._lost())
        return False

    @shielded
    async def acycle_key(self) -> None:
        try:
            await super().acycle_key()
        except SessionInterrupted:
            await cache_health.apurge(self._lost())
            raise

    async def _acached(self, key_hash: str) -> tuple[Any, bool] | None:
        if not await cache_health.ausable():
            return None
        try:
            found = await access(self._cache).aread(key_hash)
        except Exception:
            logger.warning("Session cache unavailable; serving from the database")
            cache_health.health.failed()
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
            record = self._found_by(key_hash)
            if record is not None:
                await self.arefilling(record)
            refill = self._refill(key_hash, observed, data)
            if refill is None and found[0] is None:
                refill = self._missed(key_hash)
            if refill is not None:
                try:
                    await access(self._cache).arefill(*refill)
                except Exception:
                    cache_health.health.failed()
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
        await cache_health.adrain()
