"""Revocation: final, audited, the same through every door, sync and async."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.sessions.exceptions import SessionInterrupted
from django.db import connection, connections
from django.db.models import Model
from django.dispatch import Signal
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import path

from django_sessionkit import signals
from django_sessionkit.backends.db import SessionStore
from django_sessionkit.keys import hash_key
from django_sessionkit.models import Session, SessionEvent
from django_sessionkit.revocation import (
    aexpire_session,
    arevoke_all_sessions,
    arevoke_session,
    arevoke_user_sessions,
    expire_session,
    revoke_all_sessions,
    revoke_session,
    revoke_sessions,
    revoke_user_sessions,
)
from tests import urls
from tests.helpers import PASSWORD, postgresql_only

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("engine")]

COOKIE = settings.SESSION_COOKIE_NAME
PAYLOAD = ("session_id", "user", "reason", "by", "request")

# Each library function and its async twin, run from a sync test: the twin
# runs in an event loop of its own, as it would in an async view.
TWINS = ["sync", "async"]
REVOKE_SESSION = [revoke_session, async_to_sync(arevoke_session)]
REVOKE_USER_SESSIONS = [revoke_user_sessions, async_to_sync(arevoke_user_sessions)]
REVOKE_ALL_SESSIONS = [revoke_all_sessions, async_to_sync(arevoke_all_sessions)]
EXPIRE_SESSION = [expire_session, async_to_sync(aexpire_session)]


# -- Views that revoke their own session mid-request ---------------------------


def revoke_own_session(request: HttpRequest) -> HttpResponse:
    assert isinstance(request.session, SessionStore)
    record = request.session.record
    assert record is not None
    revoke_session(record, reason="in flight", request=request)
    request.session["late"] = "write"
    return HttpResponse("ok")


async def arevoke_own_session(request: HttpRequest) -> HttpResponse:
    assert isinstance(request.session, SessionStore)
    await request.session.aget("late")  # loads the session without blocking
    record = request.session.record
    assert record is not None
    await arevoke_session(record, reason="in flight", request=request)
    await request.session.aset("late", "write")
    return HttpResponse("ok")


urlpatterns = [
    path("revoke-own/", revoke_own_session),
    path("arevoke-own/", arevoke_own_session),
    *urls.urlpatterns,
]


# -- Helpers ------------------------------------------------------------------


def listen(signal: Signal) -> Iterator[list[dict[str, Any]]]:
    """Record every sending of ``signal`` while the test runs."""
    sent: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        sent.append({"sender": sender, **kwargs})

    signal.connect(receiver, weak=False)
    try:
        yield sent
    finally:
        signal.disconnect(receiver)


@pytest.fixture
def revoked() -> Iterator[list[dict[str, Any]]]:
    yield from listen(signals.session_revoked)


@pytest.fixture
def expired() -> Iterator[list[dict[str, Any]]]:
    yield from listen(signals.session_expired)


def sign_in(username: str) -> tuple[Client, Session]:
    """A new browser signed in as ``username``, and its session's row."""
    client = Client()
    response = client.post("/login/", {"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.content
    return client, Session.objects.get(session_key=client.cookies[COOKIE].value)


async def asign_in(username: str) -> tuple[AsyncClient, Session]:
    client = AsyncClient()
    response = await client.post(
        "/alogin/", {"username": username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.content
    key = client.cookies[COOKIE].value
    return client, await Session.objects.aget(session_key=key)


def signed_in_as(client: Client) -> str:
    """The username the site sees on the client's next request ("" if none)."""
    return str(client.get("/peek/").json()["user"])


def payload(sent: dict[str, Any]) -> dict[str, Any]:
    return {name: sent[name] for name in PAYLOAD}


def revoke_events() -> list[SessionEvent]:
    return list(
        SessionEvent.objects.filter(kind=SessionEvent.Kind.REVOKE).order_by(
            "session_id"
        )
    )


# -- Revoking one session -------------------------------------------------------


@pytest.mark.parametrize("by_id", [False, True], ids=["instance", "id"])
@pytest.mark.parametrize("call", REVOKE_SESSION, ids=TWINS)
def test_revoke_session_ends_only_that_session(
    call: Callable[..., bool],
    by_id: bool,
    alice: User,
    root: User,
    revoked: list[dict[str, Any]],
) -> None:
    client, session = sign_in("alice")
    other, other_session = sign_in("alice")
    target = session.pk if by_id else session
    assert call(target, reason="lost phone", by=root) is True
    assert not Session.objects.filter(pk=session.pk).exists()
    [event] = revoke_events()
    assert event.session_id == session.pk
    assert event.user == alice
    assert event.actor == root
    assert event.reason == "lost phone"
    assert event.ip == session.ip
    assert len(revoked) == 1
    assert revoked[0]["sender"] is Session
    assert payload(revoked[0]) == {
        "session_id": session.pk,
        "user": alice,
        "reason": "lost phone",
        "by": root,
        "request": None,
    }
    assert signed_in_as(client) == ""
    assert signed_in_as(other) == "alice"
    assert Session.objects.filter(pk=other_session.pk).exists()


@pytest.mark.parametrize("call", REVOKE_SESSION, ids=TWINS)
def test_revoke_session_with_request_records_its_address(
    call: Callable[..., bool], alice: User, revoked: list[dict[str, Any]]
) -> None:
    _, session = sign_in("alice")
    request = RequestFactory().post("/sessions/revoke/", REMOTE_ADDR="198.51.100.7")
    assert call(session, reason="user", by=alice, request=request) is True
    [event] = revoke_events()
    assert event.ip == "198.51.100.7"
    assert event.actor == alice
    assert revoked[0]["request"] is request


@pytest.mark.parametrize("call", REVOKE_SESSION, ids=TWINS)
def test_revoke_session_unknown_id_returns_false(
    call: Callable[..., bool], alice: User, revoked: list[dict[str, Any]]
) -> None:
    _, session = sign_in("alice")
    before = SessionEvent.objects.count()
    assert call(session.pk + 1000, reason="unknown") is False
    assert SessionEvent.objects.count() == before
    assert revoked == []
    assert Session.objects.filter(pk=session.pk).exists()


@pytest.mark.parametrize("call", REVOKE_SESSION, ids=TWINS)
def test_revoke_session_already_revoked_returns_false(
    call: Callable[..., bool], alice: User, revoked: list[dict[str, Any]]
) -> None:
    _, session = sign_in("alice")
    assert call(session, reason="first") is True
    before = SessionEvent.objects.count()
    assert call(session, reason="again") is False
    assert call(session.pk, reason="again") is False
    assert SessionEvent.objects.count() == before
    assert len(revoked) == 1


# -- Revoking a user's sessions ---------------------------------------------------


@pytest.mark.parametrize("call", REVOKE_USER_SESSIONS, ids=TWINS)
def test_revoke_user_sessions_ends_every_session_of_user(
    call: Callable[..., int],
    alice: User,
    bob: User,
    root: User,
    revoked: list[dict[str, Any]],
) -> None:
    alices = [sign_in("alice") for _ in range(3)]
    bobs_client, bobs_session = sign_in("bob")
    assert call(alice, reason="password reset", by=root) == 3
    assert not Session.objects.filter(user=alice).exists()
    events = revoke_events()
    assert [e.session_id for e in events] == sorted(s.pk for _, s in alices)
    assert {(e.user, e.actor, e.reason) for e in events} == {
        (alice, root, "password reset")
    }
    assert sorted(s["session_id"] for s in revoked) == sorted(s.pk for _, s in alices)
    assert {(s["user"], s["by"], s["reason"]) for s in revoked} == {
        (alice, root, "password reset")
    }
    assert [signed_in_as(client) for client, _ in alices] == ["", "", ""]
    assert signed_in_as(bobs_client) == "bob"
    assert Session.objects.filter(pk=bobs_session.pk).exists()


@pytest.mark.parametrize("keep_by_id", [False, True], ids=["instance", "id"])
@pytest.mark.parametrize("call", REVOKE_USER_SESSIONS, ids=TWINS)
def test_revoke_user_sessions_except_session_keeps_it(
    call: Callable[..., int],
    keep_by_id: bool,
    alice: User,
    bob: User,
    revoked: list[dict[str, Any]],
) -> None:
    (kept_client, kept), *others = [sign_in("alice") for _ in range(3)]
    bobs_client, _ = sign_in("bob")
    keep = kept.pk if keep_by_id else kept
    assert call(alice, except_session=keep, reason="others", by=alice) == 2
    assert list(Session.objects.filter(user=alice).values_list("pk", flat=True)) == [
        kept.pk
    ]
    assert [e.session_id for e in revoke_events()] == sorted(s.pk for _, s in others)
    assert {e.actor for e in revoke_events()} == {alice}
    assert len(revoked) == 2
    assert signed_in_as(kept_client) == "alice"
    assert [signed_in_as(client) for client, _ in others] == ["", ""]
    assert signed_in_as(bobs_client) == "bob"


@pytest.mark.parametrize("call", REVOKE_USER_SESSIONS, ids=TWINS)
def test_revoke_user_sessions_without_sessions_returns_zero(
    call: Callable[..., int], alice: User, bob: User, revoked: list[dict[str, Any]]
) -> None:
    sign_in("bob")
    before = SessionEvent.objects.count()
    assert call(alice, reason="none") == 0
    assert SessionEvent.objects.count() == before
    assert revoked == []
    assert Session.objects.filter(user=bob).count() == 1


# -- Revoking every session ---------------------------------------------------------


@pytest.mark.parametrize("call", REVOKE_ALL_SESSIONS, ids=TWINS)
def test_revoke_all_sessions_ends_signed_in_and_anonymous_sessions(
    call: Callable[..., int],
    alice: User,
    bob: User,
    root: User,
    revoked: list[dict[str, Any]],
) -> None:
    alice_client, alice_session = sign_in("alice")
    bob_client, bob_session = sign_in("bob")
    anonymous = Client()
    anonymous.get("/put/?basket=3")
    anonymous_session = Session.objects.get(user=None)
    assert call(reason="incident", by=root) == 3
    assert not Session.objects.exists()
    events = revoke_events()
    assert {(e.session_id, e.user_id) for e in events} == {
        (alice_session.pk, alice.pk),
        (bob_session.pk, bob.pk),
        (anonymous_session.pk, None),
    }
    assert {(e.actor, e.reason) for e in events} == {(root, "incident")}
    assert {(s["session_id"], s["user"]) for s in revoked} == {
        (alice_session.pk, alice),
        (bob_session.pk, bob),
        (anonymous_session.pk, None),
    }
    assert len(revoked) == 3
    assert signed_in_as(alice_client) == ""
    assert signed_in_as(bob_client) == ""
    assert anonymous.get("/peek/").json()["data"] == {}


@pytest.mark.parametrize("call", REVOKE_ALL_SESSIONS, ids=TWINS)
def test_revoke_all_sessions_without_sessions_returns_zero(
    call: Callable[..., int], revoked: list[dict[str, Any]]
) -> None:
    assert call(reason="incident") == 0
    assert not SessionEvent.objects.exists()
    assert revoked == []


BULK: dict[str, Callable[..., int]] = {
    "user-sync": revoke_user_sessions,
    "user-async": async_to_sync(arevoke_user_sessions),
    "all-sync": lambda user, **kwargs: revoke_all_sessions(**kwargs),
    "all-async": lambda user, **kwargs: async_to_sync(arevoke_all_sessions)(**kwargs),
}


@pytest.mark.parametrize("call", BULK.values(), ids=BULK.keys())
def test_revoke_many_deletes_in_batches(
    call: Callable[..., int], alice: User, settings: Any
) -> None:
    settings.SESSIONKIT_CLEANUP_BATCH_SIZE = 2
    sessions = [sign_in("alice")[1] for _ in range(5)]
    remaining: list[int] = []

    def count_remaining(sender: Any, **kwargs: Any) -> None:
        remaining.append(Session.objects.count())

    signals.session_revoked.connect(count_remaining, weak=False)
    try:
        with CaptureQueriesContext(connection) as queries:
            assert call(alice, reason="bulk") == 5
    finally:
        signals.session_revoked.disconnect(count_remaining)
    assert not Session.objects.exists()
    assert [e.session_id for e in revoke_events()] == sorted(s.pk for s in sessions)
    # Each batch's signals are sent after that batch is deleted.
    assert remaining == [3, 3, 1, 1, 0]
    deletes = [
        q
        for q in queries.captured_queries
        if q["sql"].startswith('DELETE FROM "sessionkit_session"')
    ]
    assert len(deletes) == 3


# -- Final: a request in flight cannot save a revoked session back -------------------


def interrupted(caplog: pytest.LogCaptureFixture) -> bool:
    """Whether Django logged a ``SessionInterrupted``.

    It is a ``BadRequest``: Django answers it with a 400 response and logs
    it, rather than letting the test client re-raise it.
    """
    return any(
        record.exc_info is not None
        and isinstance(record.exc_info[1], SessionInterrupted)
        for record in caplog.records
    )


@pytest.mark.urls("tests.test_revocation")
def test_request_in_flight_cannot_save_revoked_session(
    alice: User, revoked: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    client, session = sign_in("alice")
    caplog.set_level(logging.WARNING, logger="django.request")
    response = client.get("/revoke-own/")
    assert response.status_code == 400
    assert interrupted(caplog)
    assert COOKIE not in response.cookies
    assert not Session.objects.exists()
    assert [e.session_id for e in revoke_events()] == [session.pk]
    assert len(revoked) == 1
    assert signed_in_as(client) == ""
    assert not Session.objects.exists()


@pytest.mark.urls("tests.test_revocation")
async def test_async_request_in_flight_cannot_save_revoked_session(
    alice: User, revoked: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    client, session = await asign_in("alice")
    caplog.set_level(logging.WARNING, logger="django.request")
    response = await client.get("/arevoke-own/")
    assert response.status_code == 400
    assert interrupted(caplog)
    assert COOKIE not in response.cookies
    assert not await Session.objects.aexists()
    events = [e async for e in SessionEvent.objects.filter(kind="revoke")]
    assert [e.session_id for e in events] == [session.pk]
    assert len(revoked) == 1
    assert (await client.get("/peek/")).json()["user"] == ""
    assert not await Session.objects.aexists()


async def test_arevoke_session_ends_session_of_async_client(
    alice: User, revoked: list[dict[str, Any]]
) -> None:
    client, session = await asign_in("alice")
    other, _ = await asign_in("alice")
    assert await arevoke_session(session, reason="lost phone", by=alice) is True
    assert (await client.get("/peek/")).json()["user"] == ""
    assert (await other.get("/peek/")).json()["user"] == "alice"
    assert [s["session_id"] for s in revoked] == [session.pk]


# -- Expiry ---------------------------------------------------------------------------


@pytest.mark.parametrize("call", EXPIRE_SESSION, ids=TWINS)
def test_expire_session_records_timeout_and_sends_expired(
    call: Callable[..., bool],
    alice: User,
    expired: list[dict[str, Any]],
    revoked: list[dict[str, Any]],
) -> None:
    client, _ = sign_in("alice")
    # As the middleware holds it: the store's own row, user not loaded.
    session = Session.objects.get(session_key=client.cookies[COOKIE].value)
    assert call(session, reason="idle") is True
    assert not Session.objects.exists()
    [event] = SessionEvent.objects.filter(kind=SessionEvent.Kind.TIMEOUT)
    assert (event.session_id, event.user, event.actor, event.reason) == (
        session.pk,
        alice,
        None,
        "idle",
    )
    assert [payload(s) for s in expired] == [
        {
            "session_id": session.pk,
            "user": alice,
            "reason": "idle",
            "by": None,
            "request": None,
        }
    ]
    assert expired[0]["sender"] is Session
    assert revoked == []
    assert not SessionEvent.objects.filter(kind=SessionEvent.Kind.REVOKE).exists()
    assert signed_in_as(client) == ""
    before = SessionEvent.objects.count()
    assert call(session, reason="idle") is False
    assert SessionEvent.objects.count() == before
    assert len(expired) == 1


@pytest.mark.parametrize("call", EXPIRE_SESSION, ids=TWINS)
def test_expire_session_with_request_records_its_address(
    call: Callable[..., bool], alice: User, expired: list[dict[str, Any]]
) -> None:
    _, session = sign_in("alice")
    request = RequestFactory().get("/", REMOTE_ADDR="198.51.100.8")
    assert call(session, reason="absolute", request=request) is True
    event = SessionEvent.objects.get(kind=SessionEvent.Kind.TIMEOUT)
    assert (event.ip, event.reason) == ("198.51.100.8", "absolute")
    assert expired[0]["request"] is request


async def test_aexpire_session_of_record_loaded_async(
    alice: User, expired: list[dict[str, Any]]
) -> None:
    client, _ = await asign_in("alice")
    session = await Session.objects.aget(session_key=client.cookies[COOKIE].value)
    assert await aexpire_session(session, reason="absolute") is True
    event = await SessionEvent.objects.aget(kind=SessionEvent.Kind.TIMEOUT)
    assert (event.session_id, event.user_id) == (session.pk, alice.pk)
    assert [(s["session_id"], s["user"]) for s in expired] == [(session.pk, alice)]


# -- Never a key --------------------------------------------------------------------

ENDINGS: dict[str, Callable[[Session, User], object]] = {
    "revoke_session": lambda s, by: revoke_session(s, reason="r", by=by),
    "arevoke_session": lambda s, by: async_to_sync(arevoke_session)(
        s, reason="r", by=by
    ),
    "revoke_user_sessions": lambda s, by: revoke_user_sessions(
        s.user, reason="r", by=by
    ),
    "arevoke_user_sessions": lambda s, by: async_to_sync(arevoke_user_sessions)(
        s.user, reason="r", by=by
    ),
    "revoke_all_sessions": lambda s, by: revoke_all_sessions(reason="r", by=by),
    "arevoke_all_sessions": lambda s, by: async_to_sync(arevoke_all_sessions)(
        reason="r", by=by
    ),
    "expire_session": lambda s, by: expire_session(s, reason="idle"),
    "aexpire_session": lambda s, by: async_to_sync(aexpire_session)(s, reason="idle"),
}

SIGNALS = {
    name: getattr(signals, name)
    for name in (
        "session_started",
        "session_rotated",
        "session_expired",
        "session_revoked",
        "session_anomaly",
    )
}


def texts(value: Any) -> Iterator[str]:
    """``value`` as text, and every field of it if it is a model instance."""
    yield repr(value)
    yield str(value)
    if isinstance(value, Model):
        for field in value._meta.concrete_fields:
            yield str(field.value_from_object(value))


@pytest.mark.parametrize("end", ENDINGS.values(), ids=ENDINGS.keys())
def test_revocation_payloads_never_contain_key(
    end: Callable[[Session, User], object], alice: User, root: User
) -> None:
    sent: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        sent.append(kwargs)

    for signal in SIGNALS.values():
        signal.connect(receiver, weak=False)
    try:
        client, session = sign_in("alice")
        key = client.cookies[COOKIE].value
        assert end(session, root)
    finally:
        for signal in SIGNALS.values():
            signal.disconnect(receiver)
    secrets = (key, hash_key(key))
    events = list(SessionEvent.objects.all())
    assert events and sent
    for event in events:
        for text in texts(event):
            assert not any(secret in text for secret in secrets), event
    for kwargs in sent:
        for name, value in kwargs.items():
            for text in texts(value):
                assert not any(secret in text for secret in secrets), name


# -- Two revocations at once ------------------------------------------------------


def _blocked_on_locks() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return int(cursor.fetchone()[0])


@postgresql_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("engine", ["db", "cached_db"], indirect=True)
def test_simultaneous_revocations_write_one_event_per_session(
    engine: str, alice: User, revoked: list[dict[str, Any]]
) -> None:
    first, second, third = (sign_in("alice")[1] for _ in range(3))
    overlapping = [[first.pk, second.pk], [second.pk, third.pk]]
    results: list[int] = []
    errors: list[BaseException] = []

    def revoke(pks: list[int]) -> None:
        try:
            results.append(
                revoke_sessions(Session.objects.filter(pk__in=pks), reason="overlap")
            )
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    # Both revocations read their sessions, then wait on the row of the
    # session they share, held here until both are waiting for it.
    holder = connections.create_connection("default")
    try:
        holder.set_autocommit(False)
        with holder.cursor() as cursor:
            table = Session._meta.db_table
            lock = f"SELECT id FROM {table} WHERE id = %s FOR UPDATE"  # noqa: S608
            cursor.execute(lock, [second.pk])
        threads = [threading.Thread(target=revoke, args=(pks,)) for pks in overlapping]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 20
        while _blocked_on_locks() < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        holder.commit()
    finally:
        holder.close()
    for thread in threads:
        thread.join(timeout=30)

    assert not errors, errors
    assert sorted(results) == [1, 2]
    assert [e.session_id for e in revoke_events()] == sorted(
        [first.pk, second.pk, third.pk]
    )
    assert sorted(s["session_id"] for s in revoked) == sorted(
        [first.pk, second.pk, third.pk]
    )
    assert not Session.objects.exists()
