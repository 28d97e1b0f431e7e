"""The audit trail: one ``SessionEvent`` row and one signal per happening."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.dispatch import Signal
from django.http import HttpRequest
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from django_sessionkit import client, signals
from django_sessionkit.models import Session, SessionEvent

Kind = SessionEvent.Kind

#: The signal that mirrors each kind of event.
SIGNALS: dict[str, Signal] = {
    Kind.LOGIN: signals.session_started,
    Kind.ROTATE: signals.session_rotated,
    Kind.TIMEOUT: signals.session_expired,
    Kind.REVOKE: signals.session_revoked,
    Kind.ANOMALY: signals.session_anomaly,
}


#: The words for each ``reason`` the app itself records, as the admin and the
#: sessions page show them. A reason of the site's own (``sessionkit_revoke
#: --reason``, ``rotate_session(reason=...)``) has no entry and is shown as is.
REASONS: dict[str, Promise] = {
    # Sign-in and sign-out.
    "login": _("sign-in"),
    "new_device": _("sign-in from a new device"),
    "logout": _("sign-out"),
    "user_switched": _("another user signed in"),
    # Deadlines.
    "idle": _("inactivity"),
    "absolute": _("maximum session length reached"),
    # Key rotation.
    "interval": _("scheduled key rotation"),
    "privilege": _("staff or superuser status changed"),
    "explicit": _("key rotated by the site"),
    "reauthenticate": _("password confirmed"),
    # Revocation.
    "stale_key": _("replaced session key used again"),
    "reauth_failed": _("wrong password when confirming"),
    "reauth_failures": _("too many wrong passwords"),
    "limit": _("too many sessions"),
    "admin": _("signed out by staff"),
    "command": _("signed out by a command"),
    "inactive": _("account deactivated"),
    "password_change": _("password changed"),
    "user_deleted": _("account deleted"),
    "user_signed_out": _("signed out by the user"),
    "user_signed_out_device": _("device signed out by the user"),
    "user_signed_out_others": _("signed out everywhere else by the user"),
}


def reason_label(reason: str) -> str:
    """The translated words for ``reason``, or ``reason`` itself when the app
    has none (a reason of the site's own)."""
    label = REASONS.get(reason)
    return reason if label is None else str(label)


@dataclass(frozen=True)
class Subject:
    """The session an event is about: never its key."""

    session_id: int | None
    user: Any
    device_id: int | None = None
    ip: str | None = None

    @classmethod
    def of(cls, record: Session, user: Any = None) -> Subject:
        """The subject of ``record``; ``user`` spares loading its user."""
        if user is None and record.user_id is not None:
            user = record.user
        return cls(
            session_id=record.pk, user=user, device_id=record.device_id, ip=record.ip
        )

    @classmethod
    async def aof(cls, record: Session) -> Subject:
        """Async twin of :meth:`of`."""
        user = None
        if record.user_id is not None:
            if Session.user.is_cached(record):
                user = record.user
            else:
                users = get_user_model()._default_manager
                user = await users.filter(pk=record.user_id).afirst()
        return cls.of(record, user)


def _event(
    kind: str,
    subject: Subject,
    *,
    reason: str,
    by: Any,
    request: HttpRequest | None,
    detail: dict[str, Any] | None,
) -> SessionEvent:
    ip = subject.ip
    if request is not None:
        ip = client.ip_for_storage(client.client_ip(request))
    return SessionEvent(
        kind=kind,
        session_id=subject.session_id,
        user=subject.user,
        actor=by if getattr(by, "pk", None) is not None else None,
        device_id=subject.device_id,
        ip=ip,
        reason=reason[:64],
        detail=detail or {},
    )


def _events(
    kind: str,
    subjects: Iterable[Subject],
    *,
    reason: str,
    by: Any,
    request: HttpRequest | None,
    detail: dict[str, Any] | None,
) -> list[SessionEvent]:
    return [
        _event(kind, s, reason=reason, by=by, request=request, detail=detail)
        for s in subjects
    ]


def _signal_kwargs(
    subject: Subject, reason: str, by: Any, request: HttpRequest | None
) -> dict[str, Any]:
    return {
        "session_id": subject.session_id,
        "user": subject.user,
        "reason": reason,
        "by": by,
        "request": request,
    }


def write(
    kind: str,
    subjects: Iterable[Subject],
    *,
    reason: str,
    by: Any = None,
    request: HttpRequest | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Write one event per subject."""
    SessionEvent.objects.bulk_create(
        _events(kind, subjects, reason=reason, by=by, request=request, detail=detail)
    )


def record(
    kind: str,
    subject: Subject,
    *,
    reason: str,
    by: Any = None,
    request: HttpRequest | None = None,
    detail: dict[str, Any] | None = None,
) -> SessionEvent:
    """Write one event and return it, saved: for a caller that counts it
    before it knows the outcome, and may delete it again (see
    :mod:`django_sessionkit.reauth_limits`). Send its signal with :func:`send`.
    """
    event = _event(kind, subject, reason=reason, by=by, request=request, detail=detail)
    event.save(force_insert=True)
    return event


def send(
    kind: str,
    subjects: Iterable[Subject],
    *,
    reason: str,
    by: Any = None,
    request: HttpRequest | None = None,
) -> None:
    """Send the kind's signal (if it has one) for each subject."""
    signal = SIGNALS.get(kind)
    if signal is not None:
        for subject in subjects:
            signal.send(sender=Session, **_signal_kwargs(subject, reason, by, request))


def emit(
    kind: str,
    subjects: Iterable[Subject],
    *,
    reason: str,
    by: Any = None,
    request: HttpRequest | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Write one event per subject, then send the kind's signal for each."""
    subjects = list(subjects)
    write(kind, subjects, reason=reason, by=by, request=request, detail=detail)
    send(kind, subjects, reason=reason, by=by, request=request)


async def aemit(
    kind: str,
    subjects: Iterable[Subject],
    *,
    reason: str,
    by: Any = None,
    request: HttpRequest | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Async twin of :func:`emit`."""
    subjects = list(subjects)
    await SessionEvent.objects.abulk_create(
        _events(kind, subjects, reason=reason, by=by, request=request, detail=detail)
    )
    await asend(kind, subjects, reason=reason, by=by, request=request)


async def asend(
    kind: str,
    subjects: Iterable[Subject],
    *,
    reason: str,
    by: Any = None,
    request: HttpRequest | None = None,
) -> None:
    """Async twin of :func:`send`."""
    signal = SIGNALS.get(kind)
    if signal is not None:
        for subject in subjects:
            await signal.asend(
                sender=Session, **_signal_kwargs(subject, reason, by, request)
            )
