"""The one library API that ends sessions.

The admin, the user's own pages, management commands and the middleware all
call these functions, so the effect and the audit trail are the same whichever
door is used. Revocation is final: the session's row is deleted (the
``SessionEvent`` is what remains), the next request carrying its cookie is
anonymous, and a request already in flight cannot save it back (its save is
an UPDATE that finds no row).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import router, transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from django_sessionkit import events
from django_sessionkit.conf import conf
from django_sessionkit.events import Kind, Subject
from django_sessionkit.models import Device, Session, SessionQuerySet


def _sessions() -> SessionQuerySet:
    return Session.objects.using(router.db_for_write(Session))


def caching_store() -> Any:
    """The session engine's store when it keeps cached rows to purge, or None."""
    store = getattr(import_module(settings.SESSION_ENGINE), "SessionStore", None)
    return store if getattr(store, "caches_rows", False) else None


def _pk(session: Session | int) -> int:
    return session.pk if isinstance(session, Session) else session


def _batches(rows: QuerySet[Session]) -> QuerySet[Session]:
    return rows.select_related("user").order_by("pk")[: conf.CLEANUP_BATCH_SIZE]


def locked_key_hashes(rows: SessionQuerySet) -> list[str]:
    """The key hashes of ``rows``, locked, when the engine caches rows.

    Call it inside the transaction that changes or deletes the rows: a
    rotation then cannot change a key before the change commits, so these
    are exactly the cached keys to purge afterwards. Without a caching
    engine there is nothing to purge, and no query is made.
    """
    if caching_store() is None:
        return []
    return list(rows.select_for_update().values_list("key_hash", flat=True))


def _delete(
    records: list[Session],
    kind: str,
    subjects: list[Subject],
    reason: str,
    by: Any,
    request: HttpRequest | None,
) -> tuple[int, list[str]]:
    """Delete the rows of ``records`` and write their events, or neither.

    Return how many rows went and, when the engine caches rows, the key
    hashes to purge: read under a lock, so that a rotation cannot change a
    key between this read and the delete.
    """
    rows = _sessions().filter(pk__in=[r.pk for r in records])
    with transaction.atomic(using=rows.db):
        key_hashes = locked_key_hashes(rows)
        deleted, _ = rows.delete()
        if deleted:
            events.write(kind, subjects, reason=reason, by=by, request=request)
    return deleted, key_hashes


def _end(
    records: list[Session],
    kind: str,
    reason: str,
    by: Any,
    request: HttpRequest | None,
) -> int:
    subjects = [Subject.of(r) for r in records]
    deleted, key_hashes = _delete(records, kind, subjects, reason, by, request)
    store = caching_store()
    if store is not None:
        store.ended(key_hashes)
    if deleted:
        events.send(kind, subjects, reason=reason, by=by, request=request)
    return deleted


async def _aend(
    records: list[Session],
    kind: str,
    reason: str,
    by: Any,
    request: HttpRequest | None,
) -> int:
    subjects = [await Subject.aof(r) for r in records]
    # The async ORM has no transactions: the delete, its lock and its events
    # run as one transaction on the ORM's thread, as in the sync path.
    deleted, key_hashes = await sync_to_async(_delete)(
        records, kind, subjects, reason, by, request
    )
    store = caching_store()
    if store is not None:
        await store.aended(key_hashes)
    if deleted:
        await events.asend(kind, subjects, reason=reason, by=by, request=request)
    return deleted


def _end_all(rows: QuerySet[Session], kind: str, reason: str, by: Any) -> int:
    total = 0
    while records := list(_batches(rows)):
        total += _end(records, kind, reason, by, None)
    return total


async def _aend_all(rows: QuerySet[Session], kind: str, reason: str, by: Any) -> int:
    total = 0
    while records := [r async for r in _batches(rows)]:
        total += await _aend(records, kind, reason, by, None)
    return total


def _user_rows(user: Any, except_session: Session | int | None) -> SessionQuerySet:
    rows = _sessions().filter(user_id=user.pk)
    if except_session is not None:
        rows = rows.exclude(pk=_pk(except_session))
    return rows


def _device_pk(device: Device | int) -> int:
    return device.pk if isinstance(device, Device) else device


def _forget_token(device: Device | int) -> QuerySet[Device]:
    # First: a sign-in racing the revocation then makes a new device rather
    # than joining this one.
    devices = Device.objects.using(router.db_for_write(Device))
    return devices.filter(pk=_device_pk(device)).exclude(token_hash=None)


def _device_rows(device: Device | int) -> SessionQuerySet:
    return _sessions().filter(device_id=_device_pk(device))


def _one(session: Session | int) -> SessionQuerySet:
    return _sessions().select_related("user").filter(pk=_pk(session))


# -- Sync API ---------------------------------------------------------------


def revoke_session(
    session: Session | int,
    *,
    reason: str,
    by: Any = None,
    request: HttpRequest | None = None,
) -> bool:
    """Revoke one session, given as a ``Session`` or its ``id``.

    Return whether it was live; an unknown or already ended session is
    ignored.
    """
    records = list(_one(session))
    return bool(records) and _end(records, Kind.REVOKE, reason, by, request) > 0


def revoke_user_sessions(
    user: Any,
    *,
    except_session: Session | int | None = None,
    reason: str,
    by: Any = None,
) -> int:
    """Revoke every session of ``user`` but ``except_session``; return how many."""
    return _end_all(_user_rows(user, except_session), Kind.REVOKE, reason, by)


def revoke_sessions(rows: QuerySet[Session], *, reason: str, by: Any = None) -> int:
    """Revoke the sessions of a queryset (the admin's selection, say)."""
    return _end_all(rows, Kind.REVOKE, reason, by)


def revoke_all_sessions(*, reason: str, by: Any = None) -> int:
    """Revoke every session of every user; return how many."""
    return _end_all(_sessions().all(), Kind.REVOKE, reason, by)


def revoke_device(device: Device | int, *, reason: str, by: Any = None) -> int:
    """Revoke every session of ``device`` (a ``Device`` or its ``id``) and
    forget its token, so that its cookie recognises nothing any more.

    Return how many sessions were revoked. The device row stays, with its
    name and history; its next sign-in makes a new device.
    """
    _forget_token(device).update(token_hash=None)
    if isinstance(device, Device):
        device.token_hash = None
    return _end_all(_device_rows(device), Kind.REVOKE, reason, by)


def expire_session(
    session: Session, *, reason: str, request: HttpRequest | None = None
) -> bool:
    """End a session that passed a deadline (``reason``: idle or absolute)."""
    return _end([session], Kind.TIMEOUT, reason, None, request) > 0


# -- Async API ----------------------------------------------------------------


async def arevoke_session(
    session: Session | int,
    *,
    reason: str,
    by: Any = None,
    request: HttpRequest | None = None,
) -> bool:
    """Async twin of :func:`revoke_session`."""
    records = [r async for r in _one(session)]
    return bool(records) and await _aend(records, Kind.REVOKE, reason, by, request) > 0


async def arevoke_user_sessions(
    user: Any,
    *,
    except_session: Session | int | None = None,
    reason: str,
    by: Any = None,
) -> int:
    """Async twin of :func:`revoke_user_sessions`."""
    return await _aend_all(_user_rows(user, except_session), Kind.REVOKE, reason, by)


async def arevoke_sessions(
    rows: QuerySet[Session], *, reason: str, by: Any = None
) -> int:
    """Async twin of :func:`revoke_sessions`."""
    return await _aend_all(rows, Kind.REVOKE, reason, by)


async def arevoke_all_sessions(*, reason: str, by: Any = None) -> int:
    """Async twin of :func:`revoke_all_sessions`."""
    return await _aend_all(_sessions().all(), Kind.REVOKE, reason, by)


async def arevoke_device(device: Device | int, *, reason: str, by: Any = None) -> int:
    """Async twin of :func:`revoke_device`."""
    await _forget_token(device).aupdate(token_hash=None)
    if isinstance(device, Device):
        device.token_hash = None
    return await _aend_all(_device_rows(device), Kind.REVOKE, reason, by)


async def aexpire_session(
    session: Session, *, reason: str, request: HttpRequest | None = None
) -> bool:
    """Async twin of :func:`expire_session`."""
    return await _aend([session], Kind.TIMEOUT, reason, None, request) > 0
