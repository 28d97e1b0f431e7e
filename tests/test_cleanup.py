from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from django_sessionkit.backends.db import SessionStore
from django_sessionkit.cleanup import acleanup_events, cleanup_events, delete_in_batches
from django_sessionkit.models import SessionEvent

pytestmark = pytest.mark.django_db


def _events(*ages_in_days: float) -> None:
    now = timezone.now()
    for age in ages_in_days:
        event = SessionEvent.objects.create(kind=SessionEvent.Kind.LOGIN)
        SessionEvent.objects.filter(pk=event.pk).update(
            created_at=now - timedelta(days=age)
        )


def test_clearsessions_deletes_events_past_retention() -> None:
    _events(1, 89, 91, 400)
    call_command("clearsessions")
    kept = sorted(
        round((timezone.now() - e.created_at).days) for e in SessionEvent.objects.all()
    )
    assert kept == [1, 89]


def test_cleanup_events_follows_retention_setting(settings: Any) -> None:
    settings.SESSIONKIT_EVENT_RETENTION = timedelta(days=7)
    _events(1, 6, 8, 30)
    assert cleanup_events() == 2
    assert SessionEvent.objects.count() == 2


def test_cleanup_events_keeps_everything_when_retention_none(settings: Any) -> None:
    settings.SESSIONKIT_EVENT_RETENTION = None
    _events(1, 1000)
    assert cleanup_events() == 0
    assert SessionEvent.objects.count() == 2


async def test_acleanup_events_deletes_in_batches(settings: Any) -> None:
    from asgiref.sync import sync_to_async

    settings.SESSIONKIT_CLEANUP_BATCH_SIZE = 2
    await sync_to_async(_events)(100, 100, 100, 100, 100, 1)
    assert await acleanup_events() == 5
    assert await SessionEvent.objects.acount() == 1


async def test_aclear_expired_deletes_old_events() -> None:
    from asgiref.sync import sync_to_async

    await sync_to_async(_events)(120, 2)
    await SessionStore.aclear_expired()
    assert await SessionEvent.objects.acount() == 1


def test_delete_in_batches_counts(settings: Any) -> None:
    settings.SESSIONKIT_CLEANUP_BATCH_SIZE = 3
    _events(*range(10))
    assert (
        delete_in_batches(SessionEvent.objects.filter(created_at__lte=timezone.now()))
        == 10
    )
