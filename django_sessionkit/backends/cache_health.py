"""This process's trust in the session cache, and the purges it still owes.

Every key that stops being valid gets a tombstone in the cache. When the
cache cannot be reached, the tombstones are recorded in the database
(``CachePurge``) instead, and written by the first process that reaches the
cache again: a process that saw the cache fail serves from the database
alone until it has written them (:func:`drain`), and every process looks for
them once per ``SESSIONKIT_CACHE_SWEEP_INTERVAL`` (:func:`usable`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.db import models, router

from django_sessionkit.backends.cache_access import (
    awrite_tombstones,
    session_cache,
    write_tombstones,
)
from django_sessionkit.conf import conf
from django_sessionkit.models import CachePurge

# Django's own cached_db store logs its cache failures here; sites already
# watch this logger.
logger = logging.getLogger("django.contrib.sessions")

#: How long a process serves from the database alone after a cache failure
#: before it tries the cache again.
RETRY_AFTER = 1.0
_PURGE_BATCH = 500


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
        """Stop trusting the cache, and leave it alone for ``RETRY_AFTER``
        seconds, so that a dead Redis costs no time on every request."""
        self.suspect = True
        self.retry_at = time.monotonic() + RETRY_AFTER

    def may_try(self) -> bool:
        """Return whether the cache may be tried now (trusted, or the wait is over)."""
        return not self.suspect or time.monotonic() >= self.retry_at

    def drained(self) -> None:
        """Trust the cache again, until the next sweep is due."""
        self.suspect = False
        interval = conf.CACHE_SWEEP_INTERVAL
        seconds = interval.total_seconds() if interval is not None else float("inf")
        self.sweep_at = time.monotonic() + seconds

    def sweep_due(self) -> bool:
        """Return whether pending purges must be written before the cache is read."""
        return self.suspect or time.monotonic() >= self.sweep_at


#: This process's trust in the cache.
health = Health()


def _pending() -> models.QuerySet[CachePurge]:
    return CachePurge.objects.using(router.db_for_write(CachePurge)).order_by("pk")


def record_pending(key_hashes: list[str]) -> None:
    """Record tombstones the cache could not take, for a later :func:`drain`.

    Also called inside the transaction that ends or re-keys rows, before it
    commits: a process dying between the commit and its tombstones then
    loses none.
    """
    if key_hashes:
        CachePurge.objects.using(router.db_for_write(CachePurge)).bulk_create(
            [CachePurge(key_hash=h) for h in key_hashes], ignore_conflicts=True
        )


async def arecord_pending(key_hashes: list[str]) -> None:
    """Async twin of :func:`record_pending`."""
    if key_hashes:
        await CachePurge.objects.using(router.db_for_write(CachePurge)).abulk_create(
            [CachePurge(key_hash=h) for h in key_hashes], ignore_conflicts=True
        )


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
    """Return whether this process may read the cache now.

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


def settled(key_hashes: list[str]) -> None:
    """Clear the pending purges of ``key_hashes`` once their tombstones are in
    the cache (they were recorded ahead, in the transaction that ended or
    changed the rows), so that no sweep writes them again."""
    try:
        _pending().filter(key_hash__in=key_hashes).delete()
    except Exception:
        # Left for the next sweep, which writes them again: harmless.
        logger.warning("Done cache purges could not be cleared", exc_info=True)


async def asettled(key_hashes: list[str]) -> None:
    """Async twin of :func:`settled`."""
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
        record_pending(key_hashes)
        return
    settled(key_hashes)


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
        await arecord_pending(key_hashes)
        return
    await asettled(key_hashes)
