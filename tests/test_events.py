"""The audit trail: one ``SessionEvent`` row and one signal per happening."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import AnonymousUser, User
from django.dispatch import Signal
from django.test import RequestFactory

from django_sessionkit import signals
from django_sessionkit.events import Subject, aemit, emit
from django_sessionkit.models import Device, Session, SessionEvent

pytestmark = pytest.mark.django_db

# ``emit`` and its async twin, run from a sync test: the twin runs in an
# event loop of its own, as it would in an async view.
TWINS = ["sync", "async"]
EMIT = [emit, async_to_sync(aemit)]
Emit = Callable[..., None]

SIGNAL_OF_KIND: dict[str, Signal] = {
    "login": signals.session_started,
    "rotate": signals.session_rotated,
    "timeout": signals.session_expired,
    "revoke": signals.session_revoked,
    "anomaly": signals.session_anomaly,
}
SUBJECT_IP = "203.0.113.5"
CLIENT_IP = "198.51.100.77"


@pytest.fixture
def sent() -> Iterator[dict[Signal, list[dict[str, Any]]]]:
    """Every sending of every signal of the package, by signal."""
    received: dict[Signal, list[dict[str, Any]]] = {
        signal: [] for signal in SIGNAL_OF_KIND.values()
    }

    def receiver(sender: Any, signal: Signal, **kwargs: Any) -> None:
        received[signal].append({"sender": sender, **kwargs})

    for signal in received:
        signal.connect(receiver, weak=False)
    try:
        yield received
    finally:
        for signal in received:
            signal.disconnect(receiver)


def only_event() -> SessionEvent:
    [event] = SessionEvent.objects.all()
    return event


# -- Rows ------------------------------------------------------------------------


@pytest.mark.parametrize("call", EMIT, ids=TWINS)
def test_emit_writes_one_row_per_subject(
    call: Emit, alice: User, bob: User, sent: dict[Signal, list[dict[str, Any]]]
) -> None:
    device = Device.objects.create(user=alice)
    subjects = [
        Subject(session_id=11, user=alice, device_id=device.pk, ip=SUBJECT_IP),
        Subject(session_id=12, user=bob),
        Subject(session_id=13, user=None),
    ]
    detail = {"source": "admin"}
    call("revoke", subjects, reason="incident", detail=detail)
    rows = SessionEvent.objects.order_by("session_id").values_list(
        "kind", "session_id", "user_id", "device_id", "ip", "reason", "detail"
    )
    assert list(rows) == [
        ("revoke", 11, alice.pk, device.pk, SUBJECT_IP, "incident", detail),
        ("revoke", 12, bob.pk, None, None, "incident", detail),
        ("revoke", 13, None, None, None, "incident", detail),
    ]


@pytest.mark.parametrize("call", EMIT, ids=TWINS)
def test_emit_without_detail_stores_empty_detail(call: Emit, alice: User) -> None:
    call("login", [Subject(session_id=1, user=alice)], reason="login")
    assert only_event().detail == {}


@pytest.mark.parametrize("call", EMIT, ids=TWINS)
def test_emit_without_subjects_writes_and_sends_nothing(
    call: Emit, sent: dict[Signal, list[dict[str, Any]]]
) -> None:
    call("revoke", [], reason="incident")
    assert not SessionEvent.objects.exists()
    assert all(received == [] for received in sent.values())


@pytest.mark.parametrize("call", EMIT, ids=TWINS)
def test_emit_reason_longer_than_64_is_cut(call: Emit, alice: User) -> None:
    call("revoke", [Subject(session_id=1, user=alice)], reason="x" * 64 + "tail")
    assert only_event().reason == "x" * 64


@pytest.mark.parametrize("call", EMIT, ids=TWINS)
def test_emit_reason_of_64_is_kept(call: Emit, alice: User) -> None:
    call("revoke", [Subject(session_id=1, user=alice)], reason="y" * 64)
    assert only_event().reason == "y" * 64


# -- Signals ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", SIGNAL_OF_KIND.keys())
@pytest.mark.parametrize("call", EMIT, ids=TWINS)
def test_emit_sends_signal_of_kind_per_subject(
    call: Emit,
    kind: str,
    alice: User,
    bob: User,
    sent: dict[Signal, list[dict[str, Any]]],
) -> None:
    request = RequestFactory().get("/", REMOTE_ADDR=CLIENT_IP)
    subjects = [Subject(session_id=21, user=alice), Subject(session_id=22, user=bob)]
    call(kind, subjects, reason="why", by=alice, request=request)
    signal = SIGNAL_OF_KIND[kind]
    assert sent[signal] == [
        {
            "sender": Session,
            "session_id": 21,
            "user": alice,
            "reason": "why",
            "by": alice,
            "request": request,
        },
        {
            "sender": Session,
            "session_id": 22,
            "user": bob,
            "reason": "why",
            "by": alice,
            "request": request,
        },
    ]
    assert all(received == [] for s, received in sent.items() if s is not signal)
    assert set(SessionEvent.objects.values_list("kind", flat=True)) == {kind}


@pytest.mark.parametrize("kind", ["logout", "new_device"])
@pytest.mark.parametrize("call", EMIT, ids=TWINS)
def test_emit_kind_without_signal_writes_row_only(
    call: Emit, kind: str, alice: User, sent: dict[Signal, list[dict[str, Any]]]
) -> None:
    call(kind, [Subject(session_id=31, user=alice)], reason=kind)
    event = only_event()
    assert (event.kind, event.session_id, event.user) == (kind, 31, alice)
    assert all(received == [] for received in sent.values())


@pytest.mark.parametrize("call", EMIT, ids=TWINS)
def test_emit_writes_row_before_sending_signal(call: Emit, alice: User) -> None:
    seen: list[bool] = []

    def receiver(sender: Any, session_id: int, **kwargs: Any) -> None:
        seen.append(SessionEvent.objects.filter(session_id=session_id).exists())

    signals.session_revoked.connect(receiver, weak=False)
    try:
        call("revoke", [Subject(session_id=41, user=alice)], reason="r")
    finally:
        signals.session_revoked.disconnect(receiver)
    assert seen == [True]


# -- IP address ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("store_ip", "expected"),
    [("full", CLIENT_IP), ("truncated", "198.51.100.0"), ("none", None)],
)
@pytest.mark.parametrize("call", EMIT, ids=TWINS)
def test_emit_ip_from_request_follows_store_ip(
    call: Emit, store_ip: str, expected: str | None, alice: User, settings: Any
) -> None:
    settings.SESSIONKIT_STORE_IP = store_ip
    request = RequestFactory().get("/", REMOTE_ADDR=CLIENT_IP)
    subject = Subject(session_id=1, user=alice, ip=SUBJECT_IP)
    call("revoke", [subject], reason="r", request=request)
    assert only_event().ip == expected


@pytest.mark.parametrize("call", EMIT, ids=TWINS)
def test_emit_ip_from_request_ipv6_truncated(
    call: Emit, alice: User, settings: Any
) -> None:
    settings.SESSIONKIT_STORE_IP = "truncated"
    request = RequestFactory().get("/", REMOTE_ADDR="2001:db8:1234:5678::9")
    call("revoke", [Subject(session_id=1, user=alice)], reason="r", request=request)
    assert only_event().ip == "2001:db8:1234::"


@pytest.mark.parametrize("call", EMIT, ids=TWINS)
def test_emit_ip_from_subject_without_request(call: Emit, alice: User) -> None:
    call("revoke", [Subject(session_id=1, user=alice, ip=SUBJECT_IP)], reason="r")
    assert only_event().ip == SUBJECT_IP


# -- Who did it ------------------------------------------------------------------


@pytest.mark.parametrize("call", EMIT, ids=TWINS)
def test_emit_by_user_stores_actor(
    call: Emit, alice: User, bob: User, sent: dict[Signal, list[dict[str, Any]]]
) -> None:
    call("revoke", [Subject(session_id=1, user=alice)], reason="r", by=bob)
    event = only_event()
    assert (event.user, event.actor) == (alice, bob)
    assert sent[signals.session_revoked][0]["by"] == bob


BY_WITHOUT_PK = {
    "anonymous": AnonymousUser(),
    "string": "manage.py revokesessions",
    "none": None,
}


@pytest.mark.parametrize("by", BY_WITHOUT_PK.values(), ids=BY_WITHOUT_PK.keys())
@pytest.mark.parametrize("call", EMIT, ids=TWINS)
def test_emit_by_without_pk_stores_no_actor(
    call: Emit, by: Any, alice: User, sent: dict[Signal, list[dict[str, Any]]]
) -> None:
    call("revoke", [Subject(session_id=1, user=alice)], reason="r", by=by)
    event = only_event()
    assert event.actor_id is None
    assert event.user == alice
    assert sent[signals.session_revoked][0]["by"] is by
