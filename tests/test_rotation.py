"""Key rotation: explicit, periodic with a grace window, and under concurrency."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from importlib import import_module
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import AsyncClient, Client
from django.utils import timezone

from django_sessionkit.keys import hash_key, successor
from django_sessionkit.models import Session, SessionEvent
from django_sessionkit.signals import session_anomaly, session_revoked, session_rotated
from tests.helpers import (
    PASSWORD,
    aforget_cached_entries,
    captured,
    carrying,
    events,
    forget_cached_entries,
    postgresql_only,
    set_cookie,
    together,
    user_of,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("engine")]

COOKIE = settings.SESSION_COOKIE_NAME
Kind = SessionEvent.Kind


def sign_in(client: Client, path: str = "/login/") -> str:
    response = client.post(path, {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200, response.content
    return str(client.cookies[COOKIE].value)


def sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def push_back(ago: timedelta, *fields: str) -> None:
    """Move the session's timestamps ``ago`` into the past."""
    Session.objects.update(**dict.fromkeys(fields, timezone.now() - ago))
    forget_cached_entries()


def make_rotation_due(ago: timedelta = timedelta(minutes=16)) -> None:
    push_back(ago, "rotated_at", "authenticated_at")


def rotate_periodically(client: Client) -> tuple[str, str]:
    """Make the rotation due and let one request rotate: (old key, new key)."""
    old = str(client.cookies[COOKIE].value)
    make_rotation_due()
    response = client.get("/peek/")
    assert user_of(response) == "alice"
    new = set_cookie(response)
    assert new is not None and new != old
    return old, new


# -- Explicit rotation (step-up, two-factor) ------------------------------------


@pytest.mark.urls("tests.urls_rotation")
def test_rotate_session_gives_new_key_on_same_row(client: Client, alice: User) -> None:
    old = sign_in(client)
    row = Session.objects.get()
    with captured(session_rotated) as rotated:
        response = client.post("/step-up/")
    assert response.status_code == 200
    new = set_cookie(response)
    assert new is not None and new != old
    after = Session.objects.get()
    assert after.pk == row.pk
    assert after.created_at == row.created_at
    assert after.key_hash == hash_key(new)
    # No grace for an explicit rotation: the old key dies at once.
    assert after.previous_key_hash is None
    assert user_of(carrying(old).get("/peek/")) == ""
    assert user_of(client.get("/peek/")) == "alice"
    [event] = events(Kind.ROTATE)
    assert (event.session_id, event.user, event.reason) == (row.pk, alice, "explicit")
    assert [(r["session_id"], r["user"], r["reason"]) for r in rotated] == [
        (row.pk, alice, "explicit")
    ]
    assert not events(Kind.ANOMALY)


@pytest.mark.urls("tests.urls_rotation")
async def test_arotate_session_gives_new_key_on_same_row(alice: User) -> None:
    client = AsyncClient()
    response = await client.post(
        "/alogin/", {"username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 200
    old = client.cookies[COOKIE].value
    row = await Session.objects.aget()
    with captured(session_rotated) as rotated:
        response = await client.post("/astep-up/")
    assert response.status_code == 200
    new = set_cookie(response)
    assert new is not None and new != old
    after = await Session.objects.aget()
    assert after.pk == row.pk
    assert after.key_hash == hash_key(new)
    assert after.previous_key_hash is None
    stale = AsyncClient()
    stale.cookies[COOKIE] = old
    assert user_of(await stale.get("/peek/")) == ""
    assert user_of(await client.get("/peek/")) == "alice"
    rotations = [e async for e in SessionEvent.objects.filter(kind=Kind.ROTATE)]
    assert [(e.session_id, e.user_id, e.reason) for e in rotations] == [
        (row.pk, alice.pk, "explicit")
    ]
    assert [(r["session_id"], r["user"], r["reason"]) for r in rotated] == [
        (row.pk, alice, "explicit")
    ]


# -- Periodic rotation --------------------------------------------------------


def test_periodic_rotation_not_due_keeps_key(client: Client, alice: User) -> None:
    key = sign_in(client)
    make_rotation_due(timedelta(minutes=14))
    response = client.get("/peek/")
    assert user_of(response) == "alice"
    assert set_cookie(response) is None
    assert Session.objects.get().key_hash == hash_key(key)
    assert not events(Kind.ROTATE)


def test_periodic_rotation_sets_successor_cookie(client: Client, alice: User) -> None:
    old = sign_in(client)
    row = Session.objects.get()
    before = timezone.now()
    with captured(session_rotated) as rotated:
        old_, new = rotate_periodically(client)
    assert old_ == old
    assert new == successor(old)
    after = Session.objects.get()
    assert after.pk == row.pk
    # Only hashes are stored: the new key's, and the old one's for the grace.
    assert after.key_hash == sha256(new)
    assert after.previous_key_hash == sha256(old)
    assert after.rotated_at is not None and after.rotated_at >= before
    assert not after.rotate_due
    for value in vars(after).values():
        assert old not in str(value) and new not in str(value)
    [event] = events(Kind.ROTATE)
    assert (event.session_id, event.user, event.reason) == (row.pk, alice, "interval")
    assert [(r["session_id"], r["reason"]) for r in rotated] == [(row.pk, "interval")]
    assert user_of(client.get("/peek/")) == "alice"


def test_periodic_rotation_follows_interval_setting(
    client: Client, alice: User, settings: Any
) -> None:
    settings.SESSIONKIT_ROTATE_INTERVAL = 120
    old = sign_in(client)
    make_rotation_due(timedelta(minutes=3))
    response = client.get("/peek/")
    assert set_cookie(response) == successor(old)


def test_periodic_rotation_off_without_interval(
    client: Client, alice: User, settings: Any
) -> None:
    settings.SESSIONKIT_ROTATE_INTERVAL = None
    key = sign_in(client)
    make_rotation_due(timedelta(hours=2))
    assert set_cookie(client.get("/peek/")) is None
    assert Session.objects.get().key_hash == hash_key(key)


async def test_periodic_rotation_async(alice: User) -> None:
    client = AsyncClient()
    response = await client.post(
        "/alogin/", {"username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 200
    old = client.cookies[COOKIE].value
    past = timezone.now() - timedelta(minutes=16)
    await Session.objects.aupdate(rotated_at=past, authenticated_at=past)
    await aforget_cached_entries()
    response = await client.get("/peek/")
    assert user_of(response) == "alice"
    assert set_cookie(response) == successor(old)
    row = await Session.objects.aget()
    assert row.key_hash == sha256(successor(old))
    assert row.previous_key_hash == sha256(old)
    rotations = [e.reason async for e in SessionEvent.objects.filter(kind=Kind.ROTATE)]
    assert rotations == ["interval"]


@pytest.mark.urls("tests.urls_rotation")
@pytest.mark.parametrize("path", ["/nothing/", "/poll/"], ids=["setting", "decorator"])
def test_passive_request_does_not_rotate(
    client: Client, alice: User, settings: Any, path: str
) -> None:
    settings.SESSIONKIT_PASSIVE_URLS = [r"^/nothing/$"]
    key = sign_in(client)
    make_rotation_due()
    response = client.get(path)
    assert response.status_code == 200
    assert set_cookie(response) is None
    assert Session.objects.get().key_hash == hash_key(key)
    assert not events(Kind.ROTATE)
    # The next active request does rotate.
    assert set_cookie(client.get("/peek/")) == successor(key)


# -- The grace window -----------------------------------------------------------


def test_previous_key_within_grace_gets_new_cookie(client: Client, alice: User) -> None:
    sign_in(client)
    old, new = rotate_periodically(client)
    push_back(timedelta(seconds=50), "rotated_at")
    with captured(session_anomaly) as anomalies:
        response = carrying(old).get("/peek/")
    assert user_of(response) == "alice"
    assert set_cookie(response) == new
    row = Session.objects.get()
    assert row.key_hash == hash_key(new)
    assert row.previous_key_hash == hash_key(old)
    assert anomalies == []
    assert not events(Kind.ANOMALY)
    assert user_of(client.get("/peek/")) == "alice"


def test_previous_key_after_grace_revokes_session(client: Client, alice: User) -> None:
    sign_in(client)
    old, _ = rotate_periodically(client)
    row = Session.objects.get()
    push_back(timedelta(seconds=61), "rotated_at")
    with captured(session_anomaly) as anomalies, captured(session_revoked) as revoked:
        response = carrying(old).get("/peek/")
    assert user_of(response) == ""
    assert set_cookie(response) is None
    [anomaly] = events(Kind.ANOMALY)
    assert (anomaly.session_id, anomaly.user, anomaly.reason) == (
        row.pk,
        alice,
        "stale_key",
    )
    assert [(a["session_id"], a["user"], a["reason"]) for a in anomalies] == [
        (row.pk, alice, "stale_key")
    ]
    [revoke] = events(Kind.REVOKE)
    assert (revoke.session_id, revoke.reason) == (row.pk, "stale_key")
    assert [r["session_id"] for r in revoked] == [row.pk]
    assert not Session.objects.exists()
    # The copy may be the attacker's or the user's: both are signed out.
    assert user_of(client.get("/peek/")) == ""


def test_previous_key_after_grace_only_logged(
    client: Client, alice: User, settings: Any
) -> None:
    sign_in(client)
    settings.SESSIONKIT_ON_STALE_KEY = "log"
    old, new = rotate_periodically(client)
    row = Session.objects.get()
    push_back(timedelta(minutes=2), "rotated_at")
    with captured(session_anomaly) as anomalies:
        response = carrying(old).get("/peek/")
    assert user_of(response) == ""
    [anomaly] = events(Kind.ANOMALY)
    assert (anomaly.session_id, anomaly.reason) == (row.pk, "stale_key")
    assert [a["session_id"] for a in anomalies] == [row.pk]
    assert not events(Kind.REVOKE)
    assert Session.objects.get().key_hash == hash_key(new)
    assert user_of(client.get("/peek/")) == "alice"


def test_grace_follows_setting(client: Client, alice: User, settings: Any) -> None:
    sign_in(client)
    settings.SESSIONKIT_ROTATE_GRACE = 10
    old, _ = rotate_periodically(client)
    push_back(timedelta(seconds=20), "rotated_at")
    assert user_of(carrying(old).get("/peek/")) == ""
    assert [e.reason for e in events(Kind.ANOMALY)] == ["stale_key"]
    assert not Session.objects.exists()


async def test_previous_key_after_grace_revokes_session_async(alice: User) -> None:
    client = AsyncClient()
    response = await client.post(
        "/alogin/", {"username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 200
    old = client.cookies[COOKIE].value
    past = timezone.now() - timedelta(minutes=16)
    await Session.objects.aupdate(rotated_at=past, authenticated_at=past)
    await aforget_cached_entries()
    assert set_cookie(await client.get("/peek/")) == successor(old)
    row = await Session.objects.aget()
    await Session.objects.aupdate(rotated_at=timezone.now() - timedelta(minutes=2))
    await aforget_cached_entries()
    stale = AsyncClient()
    stale.cookies[COOKIE] = old
    with captured(session_anomaly) as anomalies:
        assert user_of(await stale.get("/peek/")) == ""
    kinds = [
        (e.kind, e.session_id, e.reason)
        async for e in SessionEvent.objects.exclude(
            kind__in=[Kind.LOGIN, Kind.NEW_DEVICE]
        ).order_by("pk")
    ]
    assert kinds == [
        (Kind.ROTATE, row.pk, "interval"),
        (Kind.ANOMALY, row.pk, "stale_key"),
        (Kind.REVOKE, row.pk, "stale_key"),
    ]
    assert [a["session_id"] for a in anomalies] == [row.pk]
    assert not await Session.objects.aexists()


def test_only_immediate_predecessor_is_honoured(client: Client, alice: User) -> None:
    sign_in(client)
    first, second = rotate_periodically(client)
    _, third = rotate_periodically(client)
    assert third == successor(second)
    row = Session.objects.get()
    assert row.previous_key_hash == hash_key(second)
    response = carrying(first).get("/peek/")
    assert user_of(response) == ""
    assert set_cookie(response) is None
    assert not events(Kind.ANOMALY)
    assert Session.objects.get().key_hash == hash_key(third)
    # The immediate predecessor still is, within its window.
    response = carrying(second).get("/peek/")
    assert user_of(response) == "alice"
    assert set_cookie(response) == third


def test_previous_key_within_grace_after_secret_key_change(
    client: Client, alice: User, settings: Any
) -> None:
    sign_in(client)
    old, new = rotate_periodically(client)
    row = Session.objects.get()
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "tests-only-the-next-secret"
    # The rotation made under the previous secret is still recognised, and
    # the store continues with the key that is actually live.
    store = import_module(settings.SESSION_ENGINE).SessionStore(old)
    assert store.load() != {}
    assert store.session_key == new
    response = carrying(old).get("/peek/")
    assert user_of(response) == "alice"
    live = set_cookie(response)
    assert live is not None
    assert Session.objects.get(key_hash=hash_key(live)).pk == row.pk


# -- Concurrency ----------------------------------------------------------------


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_parallel_requests_at_rotation_leave_one_live_key(alice: User) -> None:
    browser = Client()
    key = sign_in(browser)
    row = Session.objects.get()
    for _ in range(3):
        make_rotation_due()
        responses = together(
            [carrying(key) for _ in range(8)], lambda c: c.get("/peek/")
        )
        assert [user_of(r) for r in responses] == ["alice"] * 8
        new = successor(key)
        assert [set_cookie(r) for r in responses] == [new] * 8
        live = Session.objects.get()
        assert live.pk == row.pk
        assert live.key_hash == hash_key(new)
        assert live.previous_key_hash == hash_key(key)
        assert user_of(carrying(new).get("/peek/")) == "alice"
        key = new
    assert not events(Kind.ANOMALY)
    assert not events(Kind.REVOKE)


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_parallel_requests_at_rotation_record_one_rotation(alice: User) -> None:
    # "One SessionEvent row and one signal per happening" (events.py): the
    # requests that lost the race adopted the winner's key, they rotated
    # nothing.
    key = sign_in(Client())
    make_rotation_due()
    with captured(session_rotated) as rotated:
        together([carrying(key) for _ in range(8)], lambda c: c.get("/peek/"))
    assert Session.objects.get().key_hash == hash_key(successor(key))
    assert [e.reason for e in events(Kind.ROTATE)] == ["interval"]
    assert [r["reason"] for r in rotated] == ["interval"]
