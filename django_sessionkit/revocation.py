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
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import router, transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from django_sessionkit import events
from django_sessionkit.conf import conf
from django_sessionkit.events import Kind, Subject
from django_sessionkit.models import Device, Session, SessionQuerySet
from django_sessionkit.shield import shielded

if TYPE_CHECKING:
    from django_sessionkit.backends.db import SessionStore


def _sessions() -> SessionQuerySet:
    return Session.objects.using(router.db_for_write(Session))


def caching_store() -> type[SessionStore] | None:
    """Return the ``SessionStore`` class of ``SESSION_ENGINE`` when it keeps
    copies of rows that ending sessions must purge (its ``caches_rows`` is
    true: the cached store), else ``None``.

    The engine is looked up on each call, so a changed setting applies at
    once. The revocation functions and
    :func:`~django_sessionkit.lifecycle.schedule_user_rotation` use it to
    decide whether to read the key hashes they touch and pass them to its
    :meth:`~django_sessionkit.backends.db.SessionStore.ended`.
    """
    store = getattr(import_module(settings.SESSION_ENGINE), "SessionStore", None)
    return store if getattr(store, "caches_rows", False) else None


def _pk(session: Session | int) -> int:
    return session.pk if isinstance(session, Session) else session


def _batches(rows: QuerySet[Session]) -> QuerySet[Session]:
    return rows.select_related("user").order_by("pk")[: conf.CLEANUP_BATCH_SIZE]


def _locked(rows: SessionQuerySet) -> list[tuple[int, str]]:
    """Lock ``rows`` and return their ids and key hashes.

    Call it inside the transaction that changes or deletes the rows: a
    rotation or another revocation then cannot change them before that
    transaction commits. When the engine caches rows, the key hashes are
    also recorded as pending purges in that same transaction, so a process
    that dies after the commit and before its tombstones reach the cache
    leaves them for the next sweep of any process instead of losing them.
    """
    locked = list(rows.select_for_update().values_list("pk", "key_hash"))
    store = caching_store()
    if store is not None:
        store.ending([key_hash for _, key_hash in locked])
    return locked


def locked_key_hashes(rows: SessionQuerySet) -> list[str]:
    """Return the key hashes of ``rows``, read with ``SELECT ... FOR UPDATE``,
    when :func:`caching_store` is not ``None``; otherwise ``[]``.

    Call it inside the transaction that changes or deletes the rows, and
    pass the result to the store's
    :meth:`~django_sessionkit.backends.db.SessionStore.ended` once it
    commits: a rotation racing the change waits for the lock, so these are
    exactly the cached keys to purge, and they are recorded as pending
    purges in the same transaction. Without a caching engine there is
    nothing to purge, and no query is made.
    """
    if caching_store() is None:
        return []
    return [key_hash for _, key_hash in _locked(rows)]


def _delete(
    records: list[Session],
    kind: str,
    subjects: list[Subject],
    reason: str,
    by: Any,
    request: HttpRequest | None,
) -> tuple[list[Subject], list[str]]:
    """Delete the rows of ``records`` and write their events, or neither.

    Return the subjects whose rows this call deleted (a revocation racing
    this one may have taken some: each session gets one event) and the key
    hashes to purge from a cache.
    """
    rows = _sessions().filter(pk__in=[r.pk for r in records])
    with transaction.atomic(using=rows.db):
        locked = _locked(rows)
        pks = {pk for pk, _ in locked}
        _sessions().filter(pk__in=pks).delete()
        ended = [s for s in subjects if s.session_id in pks]
        if ended:
            events.write(kind, ended, reason=reason, by=by, request=request)
    return ended, [key_hash for _, key_hash in locked]


def _end(
    records: list[Session],
    kind: str,
    reason: str,
    by: Any,
    request: HttpRequest | None,
) -> int:
    subjects = [Subject.of(r) for r in records]
    ended, key_hashes = _delete(records, kind, subjects, reason, by, request)
    store = caching_store()
    if store is not None:
        store.ended(key_hashes)
    if ended:
        events.send(kind, ended, reason=reason, by=by, request=request)
    return len(ended)


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
    ended, key_hashes = await sync_to_async(_delete)(
        records, kind, subjects, reason, by, request
    )
    store = caching_store()
    if store is not None:
        await store.aended(key_hashes)
    if ended:
        await events.asend(kind, ended, reason=reason, by=by, request=request)
    return len(ended)


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
    rows = _sessions().of_user(user)
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

    Delete its row, write a ``revoke`` event and send
    :data:`~django_sessionkit.signals.session_revoked`. With ``request``, the
    event records that request's IP address and the signal carries the
    request; without, the event records the session's own address. Return
    ``True`` when this call ended the session, ``False`` when it was unknown
    or already ended (then nothing is written and no signal is sent).
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
    """Revoke every session of ``user`` but ``except_session`` (a ``Session``
    or its ``id``), as :func:`revoke_session` does; return how many.

    Other users' sessions are never touched, even when ``except_session``
    belongs to someone else.
    """
    return _end_all(_user_rows(user, except_session), Kind.REVOKE, reason, by)


def revoke_sessions(rows: QuerySet[Session], *, reason: str, by: Any = None) -> int:
    """Revoke the sessions of a queryset (the admin's selection, say), as
    :func:`revoke_session` does; return how many."""
    return _end_all(rows, Kind.REVOKE, reason, by)


def revoke_all_sessions(*, reason: str, by: Any = None) -> int:
    """Revoke every session, as :func:`revoke_session` does; return how many.

    Anonymous sessions that stored data end too. For incidents and
    migrations.
    """
    return _end_all(_sessions().all(), Kind.REVOKE, reason, by)


def revoke_device(device: Device | int, *, reason: str, by: Any = None) -> int:
    """Revoke every session of ``device`` (a ``Device`` or its ``id``) and
    forget its token, so that its cookie recognises nothing any more.

    The token is forgotten first (``token_hash`` set to ``NULL``, even when
    the device has no session), so that a sign-in racing the revocation
    makes a new device rather than joining this one; a ``Device`` given
    has its attribute cleared too. Return how many sessions were revoked.
    The device row stays, with its name and history.
    """
    _forget_token(device).update(token_hash=None)
    if isinstance(device, Device):
        device.token_hash = None
    return _end_all(_device_rows(device), Kind.REVOKE, reason, by)


def expire_session(
    session: Session, *, reason: str, request: HttpRequest | None = None
) -> bool:
    """End a session that passed a deadline (``reason``: ``"idle"`` or
    ``"absolute"``); the middleware calls it.

    As final as a revocation, but the event is a ``timeout`` and the signal
    :data:`~django_sessionkit.signals.session_expired`. Return ``False``,
    writing nothing, when the session is already gone.
    """
    return _end([session], Kind.TIMEOUT, reason, None, request) > 0


# -- Async API ----------------------------------------------------------------
#
# Each call is shielded (django_sessionkit.shield): a client that disconnects
# cancels the view's task, and a revocation cancelled half-way would have
# committed its delete in the ORM's thread and skipped the cache tombstones
# and the signals that follow, or the batches still to come.


@shielded
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


@shielded
async def arevoke_user_sessions(
    user: Any,
    *,
    except_session: Session | int | None = None,
    reason: str,
    by: Any = None,
) -> int:
    """Async twin of :func:`revoke_user_sessions`."""
    return await _aend_all(_user_rows(user, except_session), Kind.REVOKE, reason, by)


@shielded
async def arevoke_sessions(
    rows: QuerySet[Session], *, reason: str, by: Any = None
) -> int:
    """Async twin of :func:`revoke_sessions`."""
    return await _aend_all(rows, Kind.REVOKE, reason, by)


@shielded
async def arevoke_all_sessions(*, reason: str, by: Any = None) -> int:
    """Async twin of :func:`revoke_all_sessions`."""
    return await _aend_all(_sessions().all(), Kind.REVOKE, reason, by)


@shielded
async def arevoke_device(device: Device | int, *, reason: str, by: Any = None) -> int:
    """Async twin of :func:`revoke_device`."""
    await _forget_token(device).aupdate(token_hash=None)
    if isinstance(device, Device):
        device.token_hash = None
    return await _aend_all(_device_rows(device), Kind.REVOKE, reason, by)


@shielded
async def aexpire_session(
    session: Session, *, reason: str, request: HttpRequest | None = None
) -> bool:
    """Async twin of :func:`expire_session`."""
    return await _aend([session], Kind.TIMEOUT, reason, None, request) > 0
