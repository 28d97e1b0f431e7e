"""What happens to a session: sign-in, sign-out, rotation, "remember me".

Every door calls these functions, so a sign-in, a sign-out or a rotation has
the same effects and the same audit trail whichever door it comes through:

- :func:`sign_in` links the session to its user and device, sets its
  deadlines, applies the session limit, sends the new-device email and
  writes the ``login`` / ``new_device`` events. The ``user_logged_in``
  receiver calls it for ``login()`` and ``alogin()``; a token sign-in will
  call it too.
- :func:`signed_out` records a ``logout()``; :func:`sign_out_revoked`
  finishes signing out a request whose own session was just revoked.
- Rotation: :func:`rotate_session` (and :func:`arotate_session`) now,
  :func:`rotate_at_save` with the response's write (periodic rotation),
  :func:`schedule_user_rotation` at each session's next request (privileges
  changed). This module is the only writer of ``rotate`` events.
- :func:`remember_me` switches a session to the "remember me" policy.
- :func:`user_changed` applies a change of a user row to their sessions
  (deactivated, new password, new privileges).

Ending sessions is :mod:`django_sessionkit.revocation`'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.signals import user_logged_out
from django.db import router, transaction
from django.http import HttpRequest
from django.utils import timezone

from django_sessionkit import devices, limits, policy
from django_sessionkit.backends.db import UNLINKED_USER_KEY, SessionStore
from django_sessionkit.conf import conf
from django_sessionkit.events import Kind, Subject, aemit, emit
from django_sessionkit.http import current_store, require_store, store_of
from django_sessionkit.models import Device, Session
from django_sessionkit.revocation import (
    caching_store,
    locked_key_hashes,
    revoke_user_sessions,
)
from django_sessionkit.shield import shielded
from django_sessionkit.signals import device_added


def is_user(user: Any) -> bool:
    """Whether ``user`` is an instance of ``AUTH_USER_MODEL`` (or a proxy)."""
    meta = getattr(user, "_meta", None)
    return meta is not None and meta.concrete_model is get_user_model()


# -- Sign-in and sign-out ----------------------------------------------------------


def sign_in(request: HttpRequest, user: Any) -> None:
    """Sign the session of ``request`` in as ``user``.

    Call it once Django's ``login()`` (or ``alogin()``, which runs sync
    receivers in a thread) has put the user in the session; the
    ``user_logged_in`` receiver does. Nothing happens without a
    django-sessionkit store. Raise
    :class:`~django_sessionkit.limits.SessionLimitReached` when the session
    limit refuses the sign-in (the session is flushed).
    """
    session = store_of(request)
    if session is None:
        return
    _record_switch(request, session, user)
    session.mark_signed_in(request, user)
    if not is_user(user):
        _sign_in_unlinked(request, session)
        return
    session.pop(UNLINKED_USER_KEY, None)
    device: Device | None = None
    new_device = False
    with transaction.atomic(using=router.db_for_write(Session)):
        limits.lock_user(user)
        denied = limits.denied(session, user)
        if not denied:
            # Before any write of the sign-in: the write links the device.
            device, new_device = devices.device_for_sign_in(request, user)
            session.link_device(device.pk)
            if not session.key_renewed:
                # Django keeps the key when the same user signs in again.
                session.cycle_key()
            if limits.active() or session.record is None:
                # Linked to its user now, inside the lock, so that
                # simultaneous sign-ins count each other (and with an id for
                # the event); otherwise the response's save does it.
                session.save()
            limits.evict_oldest(session, user, request)
    if denied:
        session.flush()
        raise limits.refuse(request)
    record = session.record
    assert record is not None and device is not None
    subject = Subject(
        session_id=record.pk, user=user, device_id=device.pk, ip=record.ip
    )
    emit(Kind.LOGIN, [subject], reason="login", request=request)
    if new_device:
        emit(Kind.NEW_DEVICE, [subject], reason="new_device", request=request)
        device_added.send(sender=Device, device=device, user=user, request=request)
        devices.notify_new_device(device, user, request=request)


def _sign_in_unlinked(request: HttpRequest, session: SessionStore) -> None:
    """A sign-in of something a backend returned that is not a user.

    Its id is no user's: the session gets no user (nor device, limit or
    email), so that it never counts as, or is listed for, the user who has
    that id. The key is renewed and the sign-in recorded all the same.
    """
    session[UNLINKED_USER_KEY] = True
    if not session.key_renewed:
        session.cycle_key()
    if session.record is None:
        session.save()  # an id for the event
    record = session.record
    assert record is not None
    subject = Subject(session_id=record.pk, user=None, ip=record.ip)
    emit(Kind.LOGIN, [subject], reason="login", request=request)


def _record_switch(request: HttpRequest, session: SessionStore, user: Any) -> None:
    """Record the end of another user's session that ``login()`` flushed."""
    switched, session.flushed_record = session.flushed_record, None
    if (
        switched is None
        or switched.user_id is None
        or (is_user(user) and switched.user_id == user.pk)
        or getattr(request, "sessionkit_signed_out", False)  # logged out already
    ):
        return
    emit(Kind.LOGOUT, [Subject.of(switched)], reason="user_switched", request=request)


def signed_out(request: HttpRequest) -> None:
    """Record that ``logout()`` is ending the session of ``request``.

    The ``user_logged_out`` receiver calls it, before Django flushes the
    session; the response then asks the browser to clear the site's data
    (``SESSIONKIT_CLEAR_SITE_DATA_ON_LOGOUT``).
    """
    session = store_of(request)
    if session is None:
        return
    request.sessionkit_signed_out = True  # type: ignore[attr-defined]
    record = session.record
    if record is not None:
        emit(Kind.LOGOUT, [Subject.of(record)], reason="logout", request=request)


def sign_out_revoked(request: HttpRequest) -> None:
    """Finish signing out a request whose own session was just revoked.

    As ``logout()`` does, but after the revocation and without a second
    (``logout``) event: the session is flushed, ``user_logged_out`` is sent
    and the request becomes anonymous.
    """
    user = request.user
    request.session.flush()
    user_logged_out.send(sender=type(user), request=request, user=user)
    request.user = AnonymousUser()


def remember_me(request: HttpRequest, remember: bool = True) -> None:
    """Mark the request's session "remember me": the longer
    ``SESSIONKIT_REMEMBER_ME_*`` timeouts apply to it from now on, counted
    from its sign-in, and its cookie lasts until its absolute deadline.

    Call it in the sign-in view, after ``login()``, when the visitor ticked
    the box; ``remember=False`` undoes it. Raise ``TypeError`` when
    ``SESSION_ENGINE`` is not one of django-sessionkit's stores.
    """
    session = require_store(request, "remember_me")
    session.set_remember_me(remember)
    now = timezone.now()
    session.set_policy_deadlines(
        policy.resolve(request, request.user), now=now, active_at=now
    )
    # The cookie must last until the absolute deadline, even when that is
    # later than SESSION_COOKIE_AGE; without one, SESSION_COOKIE_AGE applies.
    absolute = session.deadlines.absolute if session.deadlines is not None else None
    session.set_expiry(absolute if remember else None)


# -- Rotation ----------------------------------------------------------------------


def _rotated(record: Session | None, reason: str, request: HttpRequest | None) -> None:
    if record is not None:
        emit(Kind.ROTATE, [Subject.of(record)], reason=reason, request=request)


async def _arotated(
    record: Session | None, reason: str, request: HttpRequest | None
) -> None:
    if record is not None:
        subject = await Subject.aof(record)
        await aemit(Kind.ROTATE, [subject], reason=reason, request=request)


def rotate_session(request: HttpRequest, *, reason: str = "explicit") -> None:
    """Give the request's session a new key now; the old key stops working.

    Call it when the trust in a session changes (a second factor passed, a
    step-up authentication); the middleware calls it with ``reason=
    "privilege"`` after a change of the user's privileges. The response
    carries the new cookie. Write a ``rotate`` event and send
    :data:`~django_sessionkit.signals.session_rotated`, both with
    ``reason``. Raise ``TypeError`` when ``SESSION_ENGINE`` is not one of
    django-sessionkit's stores.
    """
    session = require_store(request, "rotate_session")
    session.cycle_key()
    _rotated(session.record, reason, request)


@shielded
async def arotate_session(request: HttpRequest, *, reason: str = "explicit") -> None:
    """Async twin of :func:`rotate_session`; runs to its end when cancelled,
    so that no new key goes without its event."""
    session = require_store(request, "arotate_session")
    await session.acycle_key()
    await _arotated(session._record, reason, request)


class _RotationRecorder:
    """Writes the ``rotate`` event of a rotation the store makes with its save."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def rotated(self, record: Session) -> None:
        _rotated(record, self.reason, None)

    async def arotated(self, record: Session) -> None:
        await _arotated(record, self.reason, None)


_INTERVAL = _RotationRecorder("interval")


def rotate_at_save(store: SessionStore) -> None:
    """Rotate the key of ``store``'s session with its next save (a periodic
    rotation), keeping the old key valid for ``SESSIONKIT_ROTATE_GRACE``.

    Of several requests that rotate the same key at once, only the one whose
    write rotates it records the ``rotate`` event.
    """
    store.schedule_rotation(_INTERVAL)


def schedule_user_rotation(user: Any) -> int:
    """Give every session of ``user`` a new key at its next request.

    A key issued before a change of privileges must not carry the new ones.
    Each session's row is marked ``rotate_due`` (with the cached store, its
    cached key is tombstoned, so that the next read finds the mark in the
    database); at the session's next non-passive request the middleware
    rotates its key, with a ``rotate`` event, ``reason="privilege"``. Return
    how many sessions were marked.

    The app does this itself when ``is_staff`` or ``is_superuser`` change,
    and when a user's groups or permissions change (through
    :func:`schedule_users_rotation`); call it yourself when privileges it
    cannot see change. It has no async twin.
    """
    return schedule_users_rotation([user.pk])


def schedule_users_rotation(user_ids: Iterable[Any]) -> int:
    """Give every session of the users of ``user_ids`` a new key at its next
    request, as :func:`schedule_user_rotation` does, in one ``UPDATE`` (a
    group's permissions changed, say); return how many were marked.
    """
    ids = list(user_ids)
    if not ids:
        return 0
    rows = Session.objects.using(router.db_for_write(Session)).filter(user_id__in=ids)
    store = caching_store()
    with transaction.atomic(using=rows.db):
        key_hashes = locked_key_hashes(rows)
        marked = rows.update(rotate_due=True)
    if store is not None:
        # Cached entries still say "not due": make the next read ask the
        # database, which does.
        store.ended(key_hashes)
    return marked


# -- Changes of the user ------------------------------------------------------------


def privileges(user: Any) -> tuple[bool, bool]:
    """The flags of ``user`` that give privileges: ``is_staff``, ``is_superuser``."""
    return (
        bool(getattr(user, "is_staff", False)),
        bool(getattr(user, "is_superuser", False)),
    )


def user_loaded(user: Any) -> None:
    """Remember the privileges ``user`` was loaded with, for :func:`user_changed`."""
    user._sessionkit_privileges = privileges(user)


def user_changed(user: Any) -> None:
    """Apply a save of an existing user row to the user's sessions.

    Deactivated: every session ends. A new password (``set_password()``)
    with ``SESSIONKIT_REVOKE_OTHERS_ON_PASSWORD_CHANGE``: every session but
    the current request's ends. Other privileges: every session gets a new
    key at its next request.
    """
    if not getattr(user, "is_active", True):
        revoke_user_sessions(user, reason="inactive")
        return
    if (
        getattr(user, "_password", None) is not None
        and conf.REVOKE_OTHERS_ON_PASSWORD_CHANGE
    ):
        # set_password() was called: this request's own session stays (its
        # key is rotated by update_session_auth_hash()); the others end.
        current = current_store()
        keep = current.record if current is not None else None
        if keep is not None and keep.user_id != user.pk:
            keep = None
        revoke_user_sessions(user, except_session=keep, reason="password_change")
    before = getattr(user, "_sessionkit_privileges", None)
    now = privileges(user)
    if before is not None and before != now:
        schedule_user_rotation(user)
    user._sessionkit_privileges = now
