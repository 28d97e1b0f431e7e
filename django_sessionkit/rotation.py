"""Explicit key rotation, for step-up and two-factor flows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import router, transaction
from django.http import HttpRequest

from django_sessionkit.events import Kind, Subject, aemit, emit
from django_sessionkit.http import require_store
from django_sessionkit.models import Session
from django_sessionkit.revocation import caching_store, locked_key_hashes
from django_sessionkit.shield import shielded


def rotate_session(request: HttpRequest, *, reason: str = "explicit") -> None:
    """Give the request's session a new key now; the old key stops working.

    Call it when the trust in a session changes (a second factor passed, a
    step-up authentication). The response carries the new cookie.
    """
    session = require_store(request, "rotate_session")
    session.cycle_key()
    record = session.record
    if record is not None:
        emit(Kind.ROTATE, [Subject.of(record)], reason=reason, request=request)


@shielded
async def arotate_session(request: HttpRequest, *, reason: str = "explicit") -> None:
    """Async twin of :func:`rotate_session`."""
    session = require_store(request, "arotate_session")
    await session.acycle_key()
    record = session._record
    if record is not None:
        subject = await Subject.aof(record)
        await aemit(Kind.ROTATE, [subject], reason=reason, request=request)


def schedule_user_rotation(user: Any) -> int:
    """Give every session of ``user`` a new key at its next request.

    Called when the user's privileges change: a key issued before must not
    carry the new privileges. Return how many sessions were marked.
    """
    return schedule_users_rotation([user.pk])


def schedule_users_rotation(user_ids: Iterable[Any]) -> int:
    """Give every session of the users of ``user_ids`` a new key at its next
    request (a group's permissions changed, say); return how many were marked.
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
