from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone

from django_sessionkit.backends.db import SessionStore
from django_sessionkit.cleanup import (
    acleanup_devices,
    acleanup_events,
    cleanup_devices,
    cleanup_events,
    delete_in_batches,
)
from django_sessionkit.devices import hash_token, new_token
from django_sessionkit.models import Device, Session, SessionEvent

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


# -- Devices ----------------------------------------------------------------------


def _device(user: User, age_in_days: float, *, session_age: float | None = None) -> int:
    """A device last seen ``age_in_days`` ago; with a session that expires
    ``-session_age`` days from now when ``session_age`` is given."""
    seen = timezone.now() - timedelta(days=age_in_days)
    device = Device.objects.create(
        user=user, token_hash=hash_token(new_token()), last_seen_at=seen
    )
    if session_age is not None:
        expiry = timezone.now() - timedelta(days=session_age)
        Session.objects.create(
            key_hash=hash_token(new_token()),
            user=user,
            device=device,
            expire_date=expiry,
            session_data="",
        )
    return device.pk


def test_clearsessions_deletes_devices_past_retention(alice: User) -> None:
    old = _device(alice, 100)
    old_with_live_session = _device(alice, 100, session_age=-1)
    old_with_expired_session = _device(alice, 100, session_age=1)
    recent = _device(alice, 80)
    event = SessionEvent.objects.create(kind=SessionEvent.Kind.LOGIN, device_id=old)
    call_command("clearsessions")
    assert set(Device.objects.values_list("pk", flat=True)) == {
        old_with_live_session,
        recent,
    }
    assert old_with_expired_session not in Session.objects.values_list(
        "device_id", flat=True
    )
    # The audit trail outlives the device.
    event.refresh_from_db()
    assert event.device_id is None


@pytest.mark.parametrize(
    "retention", [timedelta(days=7), 7 * 24 * 3600], ids=["timedelta", "seconds"]
)
def test_cleanup_devices_follows_retention_setting(
    alice: User, settings: Any, retention: Any
) -> None:
    settings.SESSIONKIT_DEVICE_RETENTION = retention
    kept = _device(alice, 6)
    _device(alice, 8)
    _device(alice, 30)
    assert cleanup_devices() == 2
    assert list(Device.objects.values_list("pk", flat=True)) == [kept]


def test_cleanup_devices_keeps_everything_when_retention_none(
    alice: User, settings: Any
) -> None:
    settings.SESSIONKIT_DEVICE_RETENTION = None
    _device(alice, 1000)
    assert cleanup_devices() == 0
    assert Device.objects.count() == 1


def test_cleanup_devices_in_batches(alice: User, settings: Any) -> None:
    settings.SESSIONKIT_CLEANUP_BATCH_SIZE = 2
    for _ in range(5):
        _device(alice, 200)
    kept = _device(alice, 200, session_age=-1)
    assert cleanup_devices() == 5
    assert list(Device.objects.values_list("pk", flat=True)) == [kept]


async def test_acleanup_devices_deletes_old_devices(alice: User, settings: Any) -> None:
    from asgiref.sync import sync_to_async

    settings.SESSIONKIT_CLEANUP_BATCH_SIZE = 2
    old = [await sync_to_async(_device)(alice, 100) for _ in range(3)]
    kept = await sync_to_async(_device)(alice, 100, session_age=-1)
    assert await acleanup_devices() == 3
    assert [pk async for pk in Device.objects.values_list("pk", flat=True)] == [kept]
    assert not await Device.objects.filter(pk__in=old).aexists()


async def test_aclear_expired_deletes_old_devices(alice: User) -> None:
    from asgiref.sync import sync_to_async

    await sync_to_async(_device)(alice, 100)
    recent = await sync_to_async(_device)(alice, 1)
    await SessionStore.aclear_expired()
    assert [pk async for pk in Device.objects.values_list("pk", flat=True)] == [recent]


def test_cached_clear_expired_deletes_old_devices(
    alice: User, cached_engine: str
) -> None:
    from django_sessionkit.backends import cached_db

    _device(alice, 100)
    cached_db.SessionStore.clear_expired()
    assert not Device.objects.exists()
