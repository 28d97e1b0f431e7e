"""Housekeeping: expired sessions, old audit rows, forgotten devices and
old consent records, in bounded batches.

``clearsessions`` (through the store's ``clear_expired()``) calls these.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.db import router, transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from django_sessionkit.conf import conf
from django_sessionkit.models import ConsentRecord, Device, Session, SessionEvent


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
    """Delete events older than ``SESSIONKIT_EVENT_RETENTION``, in batches of
    ``SESSIONKIT_CLEANUP_BATCH_SIZE``; return how many.

    ``clearsessions`` calls it, through the store's ``clear_expired()``.
    Nothing is deleted while the retention is ``None``.
    """
    rows = _old_events()
    return delete_in_batches(rows) if rows is not None else 0


async def acleanup_events() -> int:
    """Async twin of :func:`cleanup_events`."""
    rows = _old_events()
    return await adelete_in_batches(rows) if rows is not None else 0


def _forgotten_devices() -> QuerySet[Device] | None:
    retention = conf.DEVICE_RETENTION
    if retention is None:
        return None
    devices = Device.objects.using(router.db_for_write(Device))
    sessions = Session.objects.using(devices.db).filter(device=OuterRef("pk"))
    return devices.filter(last_seen_at__lt=timezone.now() - retention).exclude(
        Exists(sessions)
    )


def cleanup_devices() -> int:
    """Delete devices without sessions last seen before
    ``SESSIONKIT_DEVICE_RETENTION``, in batches of
    ``SESSIONKIT_CLEANUP_BATCH_SIZE``; return how many.

    ``clearsessions`` calls it, through the store's ``clear_expired()``.
    Nothing is deleted while the retention is ``None``. Each batch is locked
    and deleted in one transaction, skipping devices a sign-in holds at that
    moment: a device that a sign-in is reusing, or linking a new session to,
    is never deleted under it (the ``Session`` rows of a device would go
    with it).
    """
    rows = _forgotten_devices()
    if rows is None:
        return 0
    total = 0
    while True:
        with transaction.atomic(using=rows.db):
            batch = rows.select_for_update(skip_locked=True)
            ids = list(batch.values_list("pk", flat=True)[: conf.CLEANUP_BATCH_SIZE])
            if not ids:
                return total
            _, deleted = Device.objects.using(rows.db).filter(pk__in=ids).delete()
            total += deleted.get(Device._meta.label, 0)


async def acleanup_devices() -> int:
    """Async twin of :func:`cleanup_devices`.

    Run in a thread: the lock and the delete of a batch share one
    transaction, which the async ORM cannot open.
    """
    return await sync_to_async(cleanup_devices)()


def _old_consents() -> QuerySet[ConsentRecord] | None:
    retention = conf.CONSENT_RETENTION
    if retention is None:
        return None
    records = ConsentRecord.objects.using(router.db_for_write(ConsentRecord))
    return records.filter(created_at__lt=timezone.now() - retention)


def cleanup_consents() -> int:
    """Delete consent records older than ``SESSIONKIT_CONSENT_RETENTION``, in
    batches of ``SESSIONKIT_CLEANUP_BATCH_SIZE``; return how many.

    ``clearsessions`` calls it, through the store's ``clear_expired()``.
    Nothing is deleted while the retention is ``None``.
    """
    rows = _old_consents()
    return delete_in_batches(rows) if rows is not None else 0


async def acleanup_consents() -> int:
    """Async twin of :func:`cleanup_consents`."""
    rows = _old_consents()
    return await adelete_in_batches(rows) if rows is not None else 0
