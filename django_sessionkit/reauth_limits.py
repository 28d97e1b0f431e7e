"""How many wrong passwords re-authentication allows ("sudo mode").

Each wrong password is an ``anomaly`` event with ``reason="reauth_failed"``,
and the counts are counted from those rows, so every process and server sees
the same numbers without any other shared state:

- ``SESSIONKIT_REAUTH_FAILURE_LIMIT`` failures of a user within
  ``SESSIONKIT_REAUTH_FAILURE_WINDOW`` lock re-authentication for all of the
  user's sessions (so for each session too) until the oldest of them leaves
  the window; meanwhile no password is checked, not even the right one;
- ``SESSIONKIT_REAUTH_REVOKE_AFTER`` failures of one session revoke it
  (``reason="reauth_failures"``).

:func:`check_password` is the one home of the rule; the form of
:func:`~django_sessionkit.reauth.reauthenticate` calls it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_login_failed
from django.db import router
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from django_sessionkit import events
from django_sessionkit.conf import conf
from django_sessionkit.events import Kind, Subject
from django_sessionkit.lifecycle import is_user
from django_sessionkit.models import Session, SessionEvent
from django_sessionkit.revocation import revoke_session

#: The ``reason`` of the ``anomaly`` event each wrong password writes.
FAILURE_REASON = "reauth_failed"
#: The ``reason`` of the revocation after ``SESSIONKIT_REAUTH_REVOKE_AFTER``.
REVOKE_REASON = "reauth_failures"
# What Django's authenticate() puts in place of a password in the credentials
# of user_login_failed.
_CLEANSED = "********************"


@dataclass(frozen=True)
class PasswordCheck:
    """The outcome of :func:`check_password`.

    ``ok`` is true only when the password was checked and authenticates the
    request's user. ``checked`` is false when the password was refused
    unchecked (the user was locked out). ``locked_until`` is set when
    re-authentication is locked from now on, until that time; ``revoked``
    when this failure revoked the request's session.
    """

    ok: bool
    checked: bool = True
    locked_until: datetime | None = None
    revoked: bool = False


def failures(user: Any, session_id: int | None = None) -> QuerySet[SessionEvent]:
    """The recorded re-authentication failures of ``user``.

    A session signed in by a backend that returned something other than
    ``AUTH_USER_MODEL`` has no user: its failures are those of its session
    (``session_id``), never those of the user who happens to share its id.
    """
    # The primary: a failure recorded a moment ago must count.
    rows = SessionEvent.objects.using(router.db_for_write(SessionEvent)).filter(
        kind=Kind.ANOMALY, reason=FAILURE_REASON
    )
    if is_user(user):
        return rows.filter(user_id=user.pk)
    if session_id is None:
        return rows.none()
    return rows.filter(user=None, session_id=session_id)


def locked_until(
    user: Any, *, excluding: int | None = None, session_id: int | None = None
) -> datetime | None:
    """Until when ``user`` may not re-authenticate, or ``None`` when they may.

    ``excluding`` is the id of a failure row not to count; ``session_id``
    the request's session, which counts for a sign-in without a user.
    """
    limit, window = conf.REAUTH_FAILURE_LIMIT, conf.REAUTH_FAILURE_WINDOW
    if limit is None or window is None:
        return None
    # One indexed query (sessionkit_event_user_reason): the limit-th most
    # recent failure in the window, whose leaving the window ends the lock.
    rows = failures(user, session_id).filter(created_at__gt=timezone.now() - window)
    if excluding is not None:
        rows = rows.exclude(pk=excluding)
    nth = list(
        rows.order_by("-created_at").values_list("created_at", flat=True)[
            limit - 1 : limit
        ]
    )
    return nth[0] + window if nth else None


def _record(request: HttpRequest) -> Session | None:
    record = getattr(request.session, "record", None)
    return record if isinstance(record, Session) else None


def _subject(request: HttpRequest, record: Session | None) -> Subject:
    user = request.user if is_user(request.user) else None
    if record is None:
        return Subject(session_id=None, user=user)
    return Subject(
        session_id=record.pk, user=user, device_id=record.device_id, ip=record.ip
    )


@sensitive_variables("password")
def _authenticates(request: HttpRequest, password: str) -> bool:
    user = request.user
    username = user.get_username()
    found = authenticate(request, username=username, password=password)
    if found is None:
        return False  # authenticate() sent user_login_failed
    if found.pk == user.pk:
        return True
    # Another user's credentials (a backend matching on something other than
    # the username): still a failed sign-in for the throttling tools.
    user_login_failed.send(
        sender=authenticate.__module__,
        credentials={"username": username, "password": _CLEANSED},
        request=request,
    )
    return False


def _revoke_due(record: Session | None, request: HttpRequest) -> bool:
    after = conf.REAUTH_REVOKE_AFTER
    if record is None or after is None:
        return False
    count = failures(request.user, record.pk).filter(session_id=record.pk).count()
    return count >= after and revoke_session(
        record.pk, reason=REVOKE_REASON, request=request
    )


@sensitive_variables("password")
def check_password(request: HttpRequest, password: str) -> PasswordCheck:
    """Check the password of ``request``'s signed-in user, within the limits.

    A wrong password is recorded (an ``anomaly`` event, ``reason=
    "reauth_failed"``, with :data:`~django_sessionkit.signals.session_anomaly`
    and Django's ``user_login_failed``) and may lock the user out or revoke
    the session. While the user is locked out, no password is checked.

    :class:`~django_sessionkit.forms.ReauthenticationForm` calls it; call it
    from a re-authentication view of your own to keep the same limits.
    """
    user = request.user
    record = _record(request)
    subject = _subject(request, record)
    # The attempt counts before its password is checked, and is taken back
    # when the password is right: attempts racing each other then see each
    # other, and at most the limit of them reach the password check.
    attempt = events.record(
        Kind.ANOMALY, subject, reason=FAILURE_REASON, request=request
    )
    session_id = record.pk if record is not None else None
    until = locked_until(user, excluding=attempt.pk, session_id=session_id)
    if until is not None:
        attempt.delete()
        return PasswordCheck(ok=False, checked=False, locked_until=until)
    if _authenticates(request, password):
        attempt.delete()
        return PasswordCheck(ok=True)
    events.send(Kind.ANOMALY, [subject], reason=FAILURE_REASON, request=request)
    revoked = _revoke_due(record, request)
    until = locked_until(user, session_id=session_id)
    return PasswordCheck(ok=False, locked_until=until, revoked=revoked)
