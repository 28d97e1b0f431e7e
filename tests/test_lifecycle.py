"""The lifecycle module: the one home of sign-in, sign-out and rotation.

Its behaviour through the doors (login views, the middleware, the receivers)
is tested in test_receivers, test_rotation and test_middleware; here, what a
new door calling it directly relies on.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.contrib.sessions.backends.signed_cookies import (
    SessionStore as SignedCookieStore,
)
from django.test import RequestFactory

import django_sessionkit
from django_sessionkit import lifecycle
from django_sessionkit.backends.db import SessionStore
from django_sessionkit.models import Session, SessionEvent

pytestmark = pytest.mark.django_db

Kind = SessionEvent.Kind
PACKAGE = Path(django_sessionkit.__file__).parent


def request_with(session: Any, user: Any = None) -> Any:
    request = RequestFactory().get("/")
    request.session = session
    request.user = user if user is not None else AnonymousUser()
    return request


@pytest.mark.parametrize(
    "call",
    [
        lambda r: lifecycle.remember_me(r),
        lambda r: lifecycle.rotate_session(r),
    ],
    ids=["remember_me", "rotate_session"],
)
def test_needs_a_sessionkit_store(call: Any) -> None:
    request = request_with(SignedCookieStore())
    with pytest.raises(
        TypeError, match=r"\(\) needs a django-sessionkit SESSION_ENGINE"
    ):
        call(request)


async def test_arotate_session_needs_a_sessionkit_store() -> None:
    request = request_with(SignedCookieStore())
    with pytest.raises(TypeError, match="arotate_session"):
        await lifecycle.arotate_session(request)


def test_sign_in_without_sessionkit_store_does_nothing(alice: User) -> None:
    request = request_with(SignedCookieStore(), alice)
    lifecycle.sign_in(request, alice)
    lifecycle.signed_out(request)
    assert not SessionEvent.objects.exists()
    assert not Session.objects.exists()


def test_sign_in_called_directly_links_user_and_records_login(alice: User) -> None:
    # What a door other than user_logged_in (token sign-in) does: put the
    # user in the session as login() would, then call sign_in().
    store = SessionStore()
    request = request_with(store, alice)
    store["_auth_user_id"] = str(alice.pk)
    store["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    store["_auth_user_hash"] = alice.get_session_auth_hash()
    lifecycle.sign_in(request, alice)
    store.save()
    record = Session.objects.get()
    assert record.user_id == alice.pk
    assert record.device_id is not None
    assert record.authenticated_at is not None
    kinds = list(SessionEvent.objects.values_list("kind", "session_id"))
    assert sorted(kinds) == sorted(
        [(Kind.LOGIN, record.pk), (Kind.NEW_DEVICE, record.pk)]
    )


class Recorder:
    """A rotation listener that keeps what it was told."""

    def __init__(self) -> None:
        self.told: list[int] = []

    def rotated(self, record: Session) -> None:
        self.told.append(record.pk)

    async def arotated(self, record: Session) -> None:
        self.told.append(record.pk)


def signed_in_store(user: User) -> SessionStore:
    store = SessionStore()
    store["_auth_user_id"] = str(user.pk)
    store.save(must_create=True)
    return SessionStore(store.session_key)


def test_scheduled_rotation_tells_its_listener_once(alice: User) -> None:
    store = signed_in_store(alice)
    old = store.session_key
    record = store.record
    assert record is not None
    recorder = Recorder()
    store.schedule_rotation(recorder)
    store.save()
    assert store.session_key != old
    assert recorder.told == [record.pk]
    store.save()  # an ordinary save after it: no second rotation
    assert recorder.told == [record.pk]


async def test_scheduled_rotation_tells_its_listener_once_async(alice: User) -> None:
    from asgiref.sync import sync_to_async

    store = await sync_to_async(signed_in_store)(alice)
    old = store.session_key
    await store.aload()
    await store._aget_session()  # type: ignore[attr-defined]
    record = store._record
    assert record is not None
    recorder = Recorder()
    store.schedule_rotation(recorder)
    await store.asave()
    assert store.session_key != old
    assert recorder.told == [record.pk]


def test_rotate_at_save_records_one_interval_event(alice: User) -> None:
    store = signed_in_store(alice)
    record = store.record
    assert record is not None
    lifecycle.rotate_at_save(store)
    store.save()
    rotations = SessionEvent.objects.filter(kind=Kind.ROTATE)
    assert list(rotations.values_list("session_id", "reason")) == [
        (record.pk, "interval")
    ]


def test_only_lifecycle_writes_rotate_events() -> None:
    # The one home of rotation: no other module names the rotate event kind
    # (events.py only maps each kind to its signal).
    writers = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "ROTATE"
        in {
            node.attr
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Attribute)
        }
    )
    assert writers == ["events.py", "lifecycle.py"]


def test_remember_me_sets_the_longer_policy(alice: User, settings: Any) -> None:
    store = signed_in_store(alice)
    request = request_with(store, alice)
    lifecycle.remember_me(request)
    assert store.remember_me is True
    assert store.get_expiry_date() == store.deadlines.absolute  # type: ignore[union-attr]
    lifecycle.remember_me(request, False)
    assert store.remember_me is False
