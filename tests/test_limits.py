"""The limit on concurrent sessions per user."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpResponseBase
from django.test import AsyncClient, Client
from django.utils import timezone

from django_sessionkit import limits
from django_sessionkit.backends.db import SessionStore
from django_sessionkit.keys import hash_key
from django_sessionkit.models import Session, SessionEvent
from django_sessionkit.signals import session_revoked, session_started
from tests.helpers import captured, events, postgresql_only, together

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse"
COOKIE = settings.SESSION_COOKIE_NAME
Kind = SessionEvent.Kind


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", password=PASSWORD)


@pytest.fixture
def limited(settings: Any) -> Callable[[int, str | None], None]:
    def limit(count: int, policy: str | None = None) -> None:
        settings.SESSIONKIT_MAX_SESSIONS_PER_USER = count
        if policy is not None:
            settings.SESSIONKIT_MAX_SESSIONS_POLICY = policy

    return limit


def post_sign_in(client: Client, path: str = "/login/") -> HttpResponseBase:
    return client.post(path, {"username": "alice", "password": PASSWORD})


def sign_in(client: Client, path: str = "/login/") -> str:
    response = post_sign_in(client, path)
    assert response.status_code == 200, response.content
    return str(client.cookies[COOKIE].value)


def signed_in_browsers(count: int) -> list[Client]:
    browsers = [Client() for _ in range(count)]
    for browser in browsers:
        sign_in(browser)
    return browsers


def user_of(client: Client) -> str:
    response = client.get("/peek/")
    assert response.status_code == 200, response.content
    return str(response.json()["user"])


def row_of(client: Client) -> Session:
    return Session.objects.get(key_hash=hash_key(str(client.cookies[COOKIE].value)))


def seen(client: Client, ago: timedelta) -> None:
    Session.objects.filter(pk=row_of(client).pk).update(
        last_seen_at=timezone.now() - ago
    )


# -- No limit ---------------------------------------------------------------------


def test_no_limit_by_default(alice: User) -> None:
    browsers = signed_in_browsers(5)
    assert Session.objects.filter(user=alice).count() == 5
    assert [user_of(b) for b in browsers] == ["alice"] * 5
    assert not events(Kind.REVOKE)


# -- evict_oldest -------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["evict_oldest", None], ids=["set", "default"])
def test_evict_oldest_revokes_least_recently_active(
    alice: User, limited: Callable[[int, str | None], None], policy: str | None
) -> None:
    limited(2, policy)
    first, second = signed_in_browsers(2)
    # The first signed in earlier but was active more recently.
    seen(first, timedelta(minutes=1))
    seen(second, timedelta(minutes=10))
    evicted = row_of(second)
    third = Client()
    with captured(session_revoked) as revoked:
        sign_in(third)
    assert set(Session.objects.filter(user=alice)) == {row_of(first), row_of(third)}
    [event] = events(Kind.REVOKE)
    assert (event.session_id, event.user, event.reason) == (evicted.pk, alice, "limit")
    assert [(r["session_id"], r["reason"]) for r in revoked] == [(evicted.pk, "limit")]
    assert [user_of(b) for b in (first, second, third)] == ["alice", "", "alice"]


def test_evict_oldest_removes_as_many_as_needed(
    alice: User, limited: Callable[[int, str | None], None]
) -> None:
    browsers = signed_in_browsers(4)
    for age, browser in enumerate(browsers):
        seen(browser, timedelta(minutes=age + 1))
    limited(2, "evict_oldest")
    newest = Client()
    sign_in(newest)
    assert [user_of(b) for b in browsers] == ["alice", "", "", ""]
    assert user_of(newest) == "alice"
    assert len(events(Kind.REVOKE)) == 3


def test_evict_oldest_signing_in_again_evicts_nobody(
    alice: User, limited: Callable[[int, str | None], None]
) -> None:
    limited(2, "evict_oldest")
    first, second = signed_in_browsers(2)
    sign_in(first)
    assert Session.objects.filter(user=alice).count() == 2
    assert not events(Kind.REVOKE)
    assert [user_of(b) for b in (first, second)] == ["alice", "alice"]


def test_evict_oldest_other_users_do_not_count(
    alice: User, limited: Callable[[int, str | None], None]
) -> None:
    limited(1, "evict_oldest")
    User.objects.create_user("bob", password=PASSWORD)
    bobs = Client()
    bobs.post("/login/", {"username": "bob", "password": PASSWORD})
    signed_in_browsers(1)
    assert user_of(bobs) == "bob"
    assert not events(Kind.REVOKE)


async def test_evict_oldest_on_alogin(alice: User, settings: Any) -> None:
    settings.SESSIONKIT_MAX_SESSIONS_PER_USER = 1
    first, second = AsyncClient(), AsyncClient()
    for browser in (first, second):
        response = await browser.post(
            "/alogin/", {"username": "alice", "password": PASSWORD}
        )
        assert response.status_code == 200
    row = await Session.objects.aget()
    assert row.key_hash == hash_key(second.cookies[COOKIE].value)
    assert (await first.get("/peek/")).json()["user"] == ""
    reasons = [e.reason async for e in SessionEvent.objects.filter(kind=Kind.REVOKE)]
    assert reasons == ["limit"]


# -- deny ---------------------------------------------------------------------------


def test_deny_refuses_sign_in_beyond_limit(
    alice: User, limited: Callable[[int, str | None], None]
) -> None:
    limited(2, "deny")
    first, second = signed_in_browsers(2)
    rows = set(Session.objects.all())
    third = Client()
    with captured(session_started) as started:
        response = post_sign_in(third)
    assert response.status_code == 403
    assert started == []
    assert user_of(third) == ""
    assert set(Session.objects.all()) == rows
    assert Session.objects.filter(user=alice).count() == 2
    assert [user_of(b) for b in (first, second)] == ["alice", "alice"]
    assert not events(Kind.REVOKE)
    assert len(events(Kind.LOGIN)) == 2


def test_deny_keeps_anonymous_visitor_signed_out(
    alice: User, limited: Callable[[int, str | None], None]
) -> None:
    limited(1, "deny")
    signed_in_browsers(1)
    visitor = Client()
    visitor.get("/put/?basket=3")
    response = post_sign_in(visitor)
    assert response.status_code == 403
    assert user_of(visitor) == ""
    assert Session.objects.filter(user=alice).count() == 1


def test_deny_allows_signing_in_again_at_limit(
    alice: User, limited: Callable[[int, str | None], None]
) -> None:
    limited(2, "deny")
    first, second = signed_in_browsers(2)
    sign_in(first)
    assert [user_of(b) for b in (first, second)] == ["alice", "alice"]
    assert Session.objects.filter(user=alice).count() == 2


def test_deny_ignores_expired_sessions(
    alice: User, limited: Callable[[int, str | None], None]
) -> None:
    limited(1, "deny")
    signed_in_browsers(1)
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    second = Client()
    sign_in(second)
    assert user_of(second) == "alice"


def test_deny_frees_a_place_on_sign_out(
    alice: User, limited: Callable[[int, str | None], None]
) -> None:
    limited(1, "deny")
    [first] = signed_in_browsers(1)
    second = Client()
    assert post_sign_in(second).status_code == 403
    first.post("/logout/")
    sign_in(second)
    assert user_of(second) == "alice"


async def test_deny_refuses_alogin_beyond_limit(alice: User, settings: Any) -> None:
    settings.SESSIONKIT_MAX_SESSIONS_PER_USER = 1
    settings.SESSIONKIT_MAX_SESSIONS_POLICY = "deny"
    first, second = AsyncClient(), AsyncClient()
    response = await first.post("/alogin/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    response = await second.post(
        "/alogin/", {"username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 403
    assert (await second.get("/peek/")).json()["user"] == ""
    assert (await first.get("/peek/")).json()["user"] == "alice"
    assert await Session.objects.filter(user=alice).acount() == 1


def test_would_exceed(alice: User, limited: Callable[[int, str | None], None]) -> None:
    assert not limits.would_exceed(alice)
    limited(2, "deny")
    signed_in_browsers(1)
    assert not limits.would_exceed(alice)
    signed_in_browsers(1)
    assert limits.would_exceed(alice)
    limited(2, "evict_oldest")
    assert not limits.would_exceed(alice)


# -- Atomic under concurrency ---------------------------------------------------


LIMIT = 3


@postgresql_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("policy", ["evict_oldest", "deny"])
def test_simultaneous_sign_ins_never_exceed_limit(
    limited: Callable[[int, str | None], None], policy: str
) -> None:
    alice = User.objects.create_user("alice", password=PASSWORD)
    limited(LIMIT, policy)
    outcomes: list[tuple[int, str]] = []
    for _ in range(3):
        browsers = [Client() for _ in range(LIMIT + 1)]
        responses = together(browsers, post_sign_in)
        assert Session.objects.filter(user=alice).count() == LIMIT
        round_ = [
            (r.status_code, user_of(b))
            for r, b in zip(responses, browsers, strict=True)
        ]
        outcomes += round_
        if policy == "evict_oldest":
            assert [user for _, user in round_].count("alice") == LIMIT
    beyond = len(outcomes) - LIMIT
    if policy == "evict_oldest":
        # A sign-in evicted by a simultaneous one while still in flight cannot
        # save its session back: Django answers 400 (SessionInterrupted).
        assert {outcome for outcome in outcomes} <= {
            (200, "alice"),
            (200, ""),
            (400, ""),
        }
        assert len(events(Kind.REVOKE)) == beyond
    else:
        # The first round fills the places, the later ones find none.
        assert sorted(outcomes) == [(200, "alice")] * LIMIT + [(403, "")] * beyond
        assert not events(Kind.REVOKE)


# -- The sign-in form -----------------------------------------------------------


def test_authentication_form_reports_limit_as_form_error(settings: Any) -> None:
    from django.contrib.auth.models import User
    from django.test import RequestFactory

    from django_sessionkit.forms import AuthenticationForm
    from django_sessionkit.limits import LIMIT_MESSAGE

    settings.SESSIONKIT_MAX_SESSIONS_PER_USER = 1
    settings.SESSIONKIT_MAX_SESSIONS_POLICY = "deny"
    User.objects.create_user("carol", password=PASSWORD)
    data = {"username": "carol", "password": PASSWORD}
    request = RequestFactory().post("/")
    assert AuthenticationForm(request, data=data).is_valid()
    first = Client()
    assert first.post("/login/", data).status_code == 200
    form = AuthenticationForm(request, data=data)
    assert not form.is_valid()
    assert form.non_field_errors() == [str(LIMIT_MESSAGE)]
    assert form.errors.as_data()["__all__"][0].code == "session_limit"
    settings.SESSIONKIT_MAX_SESSIONS_POLICY = "evict_oldest"
    assert AuthenticationForm(request, data=data).is_valid()


def test_authentication_form_does_not_count_the_browsers_own_session(
    settings: Any,
) -> None:
    from django_sessionkit.forms import AuthenticationForm

    settings.SESSIONKIT_MAX_SESSIONS_PER_USER = 1
    settings.SESSIONKIT_MAX_SESSIONS_POLICY = "deny"
    User.objects.create_user("dave", password=PASSWORD)
    data = {"username": "dave", "password": PASSWORD}
    browser = Client()
    assert browser.post("/login/", data).status_code == 200

    # The same browser signing in again reuses its session: not over the limit.
    class Request:
        session = SessionStore(browser.cookies[COOKIE].value)

    assert AuthenticationForm(Request(), data=data).is_valid()  # type: ignore[arg-type]
    assert browser.post("/login/", data).status_code == 200
    assert Session.objects.filter(user__username="dave").count() == 1
