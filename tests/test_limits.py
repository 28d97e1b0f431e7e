"""The limit on concurrent sessions per user."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import alogin, login
from django.contrib.auth import views as auth_views
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.test import AsyncClient, Client
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

import tests.urls
from django_sessionkit import limits
from django_sessionkit.backends.db import SessionStore
from django_sessionkit.forms import AuthenticationForm
from django_sessionkit.keys import hash_key
from django_sessionkit.models import Session, SessionEvent
from django_sessionkit.revocation import arevoke_session, revoke_session
from django_sessionkit.signals import session_revoked, session_started
from tests.helpers import PASSWORD, captured, events, postgresql_only, together

pytestmark = pytest.mark.django_db

COOKIE = settings.SESSION_COOKIE_NAME
Kind = SessionEvent.Kind


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
    alice: User, bob: User, limited: Callable[[int, str | None], None]
) -> None:
    limited(1, "evict_oldest")
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
    alice: User, limited: Callable[[int, str | None], None], policy: str
) -> None:
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
        # A sign-in evicted by a simultaneous one while still in flight
        # answers as signed in; its next request is anonymous.
        assert {outcome for outcome in outcomes} <= {(200, "alice"), (200, "")}
        assert len(events(Kind.REVOKE)) == beyond
    else:
        # The first round fills the places, the later ones find none. This
        # view has no sign-in form to show the error: 403.
        assert sorted(outcomes) == [(200, "alice")] * LIMIT + [(403, "")] * beyond
        assert not events(Kind.REVOKE)


# -- The sign-in form -----------------------------------------------------------


def test_authentication_form_reports_limit_as_form_error(
    alice: User, settings: Any
) -> None:
    from django.test import RequestFactory

    from django_sessionkit.forms import AuthenticationForm
    from django_sessionkit.limits import LIMIT_MESSAGE

    settings.SESSIONKIT_MAX_SESSIONS_PER_USER = 1
    settings.SESSIONKIT_MAX_SESSIONS_POLICY = "deny"
    data = {"username": "alice", "password": PASSWORD}
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
    alice: User, settings: Any
) -> None:
    from django_sessionkit.forms import AuthenticationForm

    settings.SESSIONKIT_MAX_SESSIONS_PER_USER = 1
    settings.SESSIONKIT_MAX_SESSIONS_POLICY = "deny"
    data = {"username": "alice", "password": PASSWORD}
    browser = Client()
    assert browser.post("/login/", data).status_code == 200

    # The same browser signing in again reuses its session: not over the limit.
    class Request:
        session = SessionStore(browser.cookies[COOKIE].value)

    assert AuthenticationForm(Request(), data=data).is_valid()  # type: ignore[arg-type]
    assert browser.post("/login/", data).status_code == 200
    assert Session.objects.filter(user=alice).count() == 1


# -- Simultaneous sign-ins through Django's sign-in view ---------------------------


class SignInView(auth_views.LoginView):
    """Django's sign-in view with the package's form; answers its errors."""

    authentication_form = AuthenticationForm

    def render_to_response(self, context: dict[str, Any], **kwargs: Any) -> Any:
        errors = context["form"].errors.get_json_data()
        return JsonResponse({"errors": errors})


@csrf_exempt
def sign_in_then_evicted(request: HttpRequest) -> HttpResponse:
    # A simultaneous sign-in evicts this one between its sign-in and its
    # response, as under the session limit.
    login(request, User.objects.get(username="alice"))
    revoke_session(request.session.record, reason="limit")  # type: ignore[attr-defined]
    request.session["after"] = "sign-in"
    return HttpResponse("signed in")


@csrf_exempt
async def asign_in_then_evicted(request: HttpRequest) -> HttpResponse:
    await alogin(request, await User.objects.aget(username="alice"))
    await arevoke_session(request.session.record, reason="limit")  # type: ignore[attr-defined]
    await request.session.aset("after", "sign-in")
    return HttpResponse("signed in")


class RacedSignInView(SignInView):
    """A simultaneous sign-in takes the last place between the form's check
    and this sign-in."""

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        other = Client()
        assert post_sign_in(other).status_code == 200
        return super().form_valid(form)  # type: ignore[no-any-return]


urlpatterns = [
    path("signin/", SignInView.as_view()),
    path("signin-raced/", RacedSignInView.as_view()),
    path("evicted/", sign_in_then_evicted),
    path("aevicted/", asign_in_then_evicted),
    *tests.urls.urlpatterns,
]


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("limit", [5, None], ids=["limited", "unlimited"])
@pytest.mark.parametrize("path", ["/evicted/", "/aevicted/"])
def test_sign_in_evicted_in_flight_answers_signed_in(
    alice: User, path: str, limit: int | None, settings: Any
) -> None:
    # With a limit the sign-in is written under the lock before the view
    # goes on; without, at the response.
    settings.SESSIONKIT_MAX_SESSIONS_PER_USER = limit
    browser = Client()
    response = browser.post(path)
    assert response.status_code == 200, response.content
    assert user_of(browser) == ""
    assert not Session.objects.exists()
    assert [e.reason for e in events(Kind.REVOKE)] == ["limit"]


def outcome(response: HttpResponseBase) -> str:
    """ "signed in", the form's error code, or the bare status of anything else."""
    if response.status_code == 302:
        return "signed in"
    if response.status_code == 200:
        [error] = response.json()["errors"]["__all__"]  # type: ignore[attr-defined]
        return str(error["code"])
    return str(response.status_code)


@postgresql_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.urls(__name__)
@pytest.mark.parametrize(
    ("policy", "expected"),
    [("evict_oldest", {"signed in"}), ("deny", {"signed in", "session_limit"})],
)
def test_simultaneous_sign_ins_through_view_answer_normally(
    alice: User,
    limited: Callable[[int, str | None], None],
    policy: str,
    expected: set[str],
) -> None:
    limited(LIMIT, policy)
    outcomes: list[str] = []
    for _ in range(4):
        browsers = [Client() for _ in range(2 * LIMIT + 2)]
        responses = together(browsers, lambda b: post_sign_in(b, "/signin/"))
        outcomes += [outcome(r) for r in responses]
        assert Session.objects.filter(user=alice).count() == LIMIT
        for response, browser in zip(responses, browsers, strict=True):
            signed_in = outcome(response) == "signed in"
            assert user_of(browser) in (("alice", "") if signed_in else ("",))
    assert set(outcomes) <= expected, outcomes
    assert outcomes.count("signed in") >= LIMIT


@pytest.mark.urls(__name__)
def test_deny_raced_after_form_check_shows_form_error(
    alice: User, limited: Callable[[int, str | None], None]
) -> None:
    limited(2, "deny")
    signed_in_browsers(1)
    browser = Client()
    response = post_sign_in(browser, "/signin-raced/")
    assert outcome(response) == "session_limit"
    assert user_of(browser) == ""
    assert Session.objects.filter(user=alice).count() == 2
    assert len(events(Kind.LOGIN)) == 2


class CountingBackend(ModelBackend):
    """Django's backend, counting the sign-in attempts it answers."""

    attempts = 0

    def authenticate(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        type(self).attempts += 1
        return super().authenticate(request, *args, **kwargs)


@pytest.mark.urls(__name__)
def test_deny_refused_without_form_still_403(
    alice: User, limited: Callable[[int, str | None], None], settings: Any
) -> None:
    # A view without the package's form runs once: no form to ask again.
    limited(1, "deny")
    signed_in_browsers(1)
    settings.AUTHENTICATION_BACKENDS = [f"{__name__}.CountingBackend"]
    CountingBackend.attempts = 0
    assert post_sign_in(Client()).status_code == 403
    assert CountingBackend.attempts == 1
