"""Explicit key rotation, for step-up and two-factor flows."""

from __future__ import annotations

from django.http import HttpRequest

from django_sessionkit.backends.db import SessionStore
from django_sessionkit.events import Kind, Subject, aemit, emit


def _store(request: HttpRequest) -> SessionStore:
    session = request.session
    if not isinstance(session, SessionStore):
        raise TypeError(
            "rotate_session() needs a django-sessionkit SESSION_ENGINE, "
            f"not {type(session).__module__}."
        )
    return session


def rotate_session(request: HttpRequest, *, reason: str = "explicit") -> None:
    """Give the request's session a new key now; the old key stops working.

    Call it when the trust in a session changes (a second factor passed, a
    step-up authentication). The response carries the new cookie.
    """
    session = _store(request)
    session.cycle_key()
    record = session.record
    if record is not None:
        emit(Kind.ROTATE, [Subject.of(record)], reason=reason, request=request)


async def arotate_session(request: HttpRequest, *, reason: str = "explicit") -> None:
    """Async twin of :func:`rotate_session`."""
    session = _store(request)
    await session.acycle_key()
    record = session._record
    if record is not None:
        subject = await Subject.aof(record)
        await aemit(Kind.ROTATE, [subject], reason=reason, request=request)
