"""Housekeeping: expired sessions and old audit rows, in bounded batches.

``clearsessions`` (through the store's ``clear_expired()``) calls these.
"""

from __future__ import annotations

from typing import Any

from django.db import router
from django.db.models import QuerySet
from django.utils import timezone

from django_sessionkit.conf import conf
from django_sessionkit.models import SessionEvent


def delete_in_batches(rows: QuerySet[Any]) -> int:
    """Delete ``rows``, ``SESSIONKIT_CLEANUP_BATCH_SIZE`` at a time."""
    total = 0
    while ids := list(rows.values_list("pk", flat=True)[: conf.CLEANUP_BATCH_SIZE]):
        deleted, _ = (
            rows.model._default_manager.using(rows.db).filter(pk__in=ids).delete()
        )
        total += deleted
    return total


async def adelete_in_batches(rows: QuerySet[Any]) -> int:
    """Async twin of :func:`delete_in_batches`."""
    total = 0
    while ids := [
        pk async for pk in rows.values_list("pk", flat=True)[: conf.CLEANUP_BATCH_SIZE]
    ]:
        deleted, _ = (
            await rows.model._default_manager.using(rows.db)
            .filter(pk__in=ids)
            .adelete()
        )
        total += deleted
    return total


def _old_events() -> QuerySet[SessionEvent] | None:
    retention = conf.EVENT_RETENTION
    if retention is None:
        return None
    events = SessionEvent.objects.using(router.db_for_write(SessionEvent))
    return events.filter(created_at__lt=timezone.now() - retention)


def cleanup_events() -> int:
    """Delete events older than ``SESSIONKIT_EVENT_RETENTION``; return how many."""
    rows = _old_events()
    return delete_in_batches(rows) if rows is not None else 0


async def acleanup_events() -> int:
    """Async twin of :func:`cleanup_events`."""
    rows = _old_events()
    return await adelete_in_batches(rows) if rows is not None else 0
