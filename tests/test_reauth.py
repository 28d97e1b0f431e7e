"""Sudo mode: ``@recent_auth_required`` and the re-authentication view.

Time is moved by writing a session's ``authenticated_at`` in the past through
the database; every request goes through the real middleware stack, with the
test ``Client`` and ``AsyncClient``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.auth.signals import user_logged_out, user_login_failed
from django.db import connections
from django.db.models import F
from django.http import HttpResponseBase
from django.test import AsyncClient, Client
from django.utils import timezone

from django_sessionkit.keys import hash_key
from django_sessionkit.models import Session, SessionEvent
from django_sessionkit.reauth import REAUTH_KEY, recent_auth_required
from django_sessionkit.signals import session_anomaly
from tests import urls_reauth
from tests.helpers import (
    PASSWORD,
    captured,
    carrying,
    events,
    postgresql_only,
    set_cookie,
    together,
    user_of,
)

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.urls_reauth")]

COOKIE = settings.SESSION_COOKIE_NAME
REAUTH_URL = "/sessions/reauthenticate/"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT = "/accounts/profile/"
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
DEFAULT_MAX_AGE = timedelta(minutes=10)
ABSOLUTE = timedelta(hours=12)
JSON = {"Accept": "application/json"}
XHR = {"X-Requested-With": "XMLHttpRequest"}
WRONG_PASSWORD_TEXT = "Your password was entered incorrectly."

# Views protected under the setting's default, synchronous and asynchronous.
DEFAULT_VIEWS = ["/sensitive/", "/asensitive/"]
# Views protected with max_age=5 minutes (a timedelta and seconds).
FIVE_MINUTE_VIEWS = ["/sensitive-five/", "/asensitive-five/"]


#: Bob's password here is his own: alice's session must refuse it.
BOBS_PASSWORD = "bobs password"


@pytest.fixture
def bob_with_own_password(db: None) -> User:
    """Bob, with a password other than the shared users' ``PASSWORD``."""
    return User.objects.create_user("bob", password=BOBS_PASSWORD)


# -- Helpers ---------------------------------------------------------------------------


def key_of(client: Client | AsyncClient) -> str:
    return str(client.cookies[COOKIE].value)


def row_of(client: Client | AsyncClient) -> Session:
    return Session.objects.get(key_hash=hash_key(key_of(client)))


arow_of = sync_to_async(row_of)


def sign_in(client: Client) -> Session:
    response = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200, response.content
    return row_of(client)


async def asign_in(client: AsyncClient) -> Session:
    response = await client.post(
        "/alogin/", {"username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 200, response.content
    return await arow_of(client)


def signed_in_ago(client: Client | AsyncClient, age: timedelta) -> Session:
    """Make the client's session look signed in ``age`` ago."""
    record = row_of(client)
    rows = Session.objects.filter(pk=record.pk)
    assert rows.update(authenticated_at=timezone.now() - age) == 1
    return rows.get()


asigned_in_ago = sync_to_async(signed_in_ago)


def reauth_redirect(response: HttpResponseBase) -> dict[str, list[str]]:
    """The query of a redirect to the re-authentication page."""
    assert response.status_code == 302, response.content
    location = urlsplit(response["Location"])
    assert location.path == REAUTH_URL
    return parse_qs(location.query)


def stored_reauth(client: Client) -> Any:
    """The re-authentication time in the session's data, through ``/peek/``."""
    response = client.get("/peek/")
    assert response.status_code == 200
    return response.json()["data"].get(REAUTH_KEY)


def reauthenticate(
    client: Client, password: str = PASSWORD, **data: str
) -> HttpResponseBase:
    return client.post(REAUTH_URL, {"password": password, **data})


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


# -- The decorator: recent, stale, anonymous -------------------------------------------


@pytest.mark.parametrize("path", DEFAULT_VIEWS + FIVE_MINUTE_VIEWS)
def test_recent_auth_fresh_sign_in_passes_sync(alice: User, path: str) -> None:
    client = Client()
    sign_in(client)
    assert user_of(client.get(path)) == "alice"


@pytest.mark.parametrize("path", DEFAULT_VIEWS + FIVE_MINUTE_VIEWS)
async def test_recent_auth_fresh_sign_in_passes_async(alice: User, path: str) -> None:
    client = AsyncClient()
    await asign_in(client)
    assert user_of(await client.get(path)) == "alice"


@pytest.mark.parametrize("path", DEFAULT_VIEWS)
def test_recent_auth_stale_redirects_with_next_sync(alice: User, path: str) -> None:
    client = Client()
    sign_in(client)
    signed_in_ago(client, DEFAULT_MAX_AGE + MINUTE)
    response = client.get(f"{path}?page=2&sort=name")
    assert reauth_redirect(response) == {"next": [f"{path}?page=2&sort=name"]}


@pytest.mark.parametrize("path", DEFAULT_VIEWS)
async def test_recent_auth_stale_redirects_with_next_async(
    alice: User, path: str
) -> None:
    client = AsyncClient()
    await asign_in(client)
    await asigned_in_ago(client, DEFAULT_MAX_AGE + MINUTE)
    response = await client.get(f"{path}?page=2")
    assert reauth_redirect(response) == {"next": [f"{path}?page=2"]}


# Ten seconds either side of the limit: the test's own requests take time.
@pytest.mark.parametrize(
    ("age", "passes"),
    [(5 * MINUTE - 10 * SECOND, True), (5 * MINUTE + 10 * SECOND, False)],
    ids=["just_under", "just_over"],
)
@pytest.mark.parametrize("path", FIVE_MINUTE_VIEWS)
def test_recent_auth_max_age_limit(
    alice: User, path: str, age: timedelta, passes: bool
) -> None:
    client = Client()
    sign_in(client)
    signed_in_ago(client, age)
    response = client.get(path)
    if passes:
        assert user_of(response) == "alice"
    else:
        assert reauth_redirect(response) == {"next": [path]}


@pytest.mark.parametrize("path", FIVE_MINUTE_VIEWS)
def test_recent_auth_max_age_overrides_setting(alice: User, path: str) -> None:
    client = Client()
    sign_in(client)
    signed_in_ago(client, 6 * MINUTE)
    # Under the setting's 10 minutes the same session is recent enough.
    assert user_of(client.get("/sensitive/")) == "alice"
    assert reauth_redirect(client.get(path)) == {"next": [path]}


@pytest.mark.parametrize("headers", [JSON, XHR], ids=["accept_json", "xhr"])
@pytest.mark.parametrize("path", DEFAULT_VIEWS)
def test_recent_auth_stale_json_gets_403_sync(
    alice: User, path: str, headers: dict[str, str]
) -> None:
    client = Client()
    sign_in(client)
    signed_in_ago(client, DEFAULT_MAX_AGE + MINUTE)
    response = client.get(path, headers=headers)
    assert response.status_code == 403
    assert response.json() == {
        "error": "reauthentication_required",
        "reauth_url": REAUTH_URL,
    }


@pytest.mark.parametrize("path", DEFAULT_VIEWS)
async def test_recent_auth_stale_json_gets_403_async(alice: User, path: str) -> None:
    client = AsyncClient()
    await asign_in(client)
    await asigned_in_ago(client, DEFAULT_MAX_AGE + MINUTE)
    response = await client.get(path, headers=JSON)
    assert response.status_code == 403
    assert response.json()["error"] == "reauthentication_required"
    assert response.json()["reauth_url"] == REAUTH_URL


@pytest.mark.parametrize("path", DEFAULT_VIEWS + FIVE_MINUTE_VIEWS)
def test_recent_auth_anonymous_redirected_to_login_sync(path: str) -> None:
    response = Client().get(f"{path}?x=1")
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.path == LOGIN_URL
    assert parse_qs(location.query) == {"next": [f"{path}?x=1"]}


@pytest.mark.parametrize("path", DEFAULT_VIEWS)
async def test_recent_auth_anonymous_redirected_to_login_async(path: str) -> None:
    response = await AsyncClient().get(path)
    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN_URL}?next={path}"


@pytest.mark.parametrize("path", DEFAULT_VIEWS)
def test_recent_auth_anonymous_json_gets_401(path: str) -> None:
    response = Client().get(path, headers=JSON)
    assert response.status_code == 401
    assert response.json() == {"error": "not_signed_in", "login_url": LOGIN_URL}


def test_recent_auth_login_url_on_other_host_gets_full_next(settings: Any) -> None:
    settings.LOGIN_URL = "https://accounts.example/login/"
    response = Client().get("/sensitive/")
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.netloc == "accounts.example"
    assert parse_qs(location.query) == {"next": ["http://testserver/sensitive/"]}


def test_recent_auth_called_without_arguments(alice: User) -> None:
    client = Client()
    sign_in(client)
    assert client.get("/sensitive-called/").content == b"called"
    signed_in_ago(client, DEFAULT_MAX_AGE + MINUTE)
    assert reauth_redirect(client.get("/sensitive-called/")) == {
        "next": ["/sensitive-called/"]
    }


def test_recent_auth_post_returns_to_referring_page(alice: User) -> None:
    client = Client()
    sign_in(client)
    signed_in_ago(client, DEFAULT_MAX_AGE + MINUTE)
    referer = "http://testserver/account/?tab=security"
    response = client.post("/action/", headers={"Referer": referer})
    # The POST cannot be repeated by a redirect: back to the form's page.
    assert reauth_redirect(response) == {"next": ["/account/?tab=security"]}


@pytest.mark.parametrize(
    "referer",
    [
        "https://evil.example/account/",
        "",
        "not a url",
        "/account/",
        "http://[bad/account/",
    ],
    ids=repr,
)
def test_recent_auth_post_foreign_referer_no_next(alice: User, referer: str) -> None:
    client = Client()
    sign_in(client)
    signed_in_ago(client, DEFAULT_MAX_AGE + MINUTE)
    headers = {"Referer": referer} if referer else {}
    response = client.post("/action/", headers=headers)
    assert response.status_code == 302
    assert response["Location"] == REAUTH_URL


def test_recent_auth_post_recent_runs_view(alice: User) -> None:
    client = Client()
    sign_in(client)
    assert client.post("/action/").content == b"done"


# -- The setting -----------------------------------------------------------------------


@pytest.mark.parametrize("path", DEFAULT_VIEWS)
def test_recent_auth_default_follows_setting(
    alice: User, settings: Any, path: str
) -> None:
    client = Client()
    sign_in(client)
    signed_in_ago(client, 2 * MINUTE)
    assert user_of(client.get(path)) == "alice"
    settings.SESSIONKIT_REAUTH_MAX_AGE = timedelta(minutes=1)
    assert reauth_redirect(client.get(path)) == {"next": [path]}
    settings.SESSIONKIT_REAUTH_MAX_AGE = 180  # seconds
    assert user_of(client.get(path)) == "alice"


@pytest.mark.parametrize("path", DEFAULT_VIEWS)
def test_recent_auth_setting_none_needs_sign_in_only(
    alice: User, settings: Any, path: str
) -> None:
    settings.SESSIONKIT_REAUTH_MAX_AGE = None
    client = Client()
    sign_in(client)
    signed_in_ago(client, 2 * 60 * MINUTE)
    assert user_of(client.get(path)) == "alice"
    response = Client().get(path)
    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == LOGIN_URL


# -- The decorator itself --------------------------------------------------------------


def test_recent_auth_keeps_sync_and_async_views_apart() -> None:
    assert iscoroutinefunction(urls_reauth.asensitive)
    assert iscoroutinefunction(urls_reauth.asensitive_five)
    assert not iscoroutinefunction(urls_reauth.sensitive)
    assert not iscoroutinefunction(urls_reauth.sensitive_five)
    assert urls_reauth.sensitive.__name__ == "sensitive"
    assert urls_reauth.asensitive.__doc__ is None
    assert urls_reauth.sensitive.__doc__ == (
        "Protected under ``SESSIONKIT_REAUTH_MAX_AGE``."
    )
    assert urls_reauth.asensitive_five.__wrapped__.__name__ == "asensitive_five"  # type: ignore[attr-defined]


def test_recent_auth_max_age_seconds_or_timedelta() -> None:
    assert urls_reauth.sensitive_five.recent_auth_max_age == timedelta(minutes=5)  # type: ignore[attr-defined]
    assert urls_reauth.asensitive_five.recent_auth_max_age == timedelta(minutes=5)  # type: ignore[attr-defined]
    assert urls_reauth.sensitive.recent_auth_max_age is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", [0, -1, timedelta(0), timedelta(seconds=-5)])
def test_recent_auth_max_age_not_positive_raises(value: Any) -> None:
    with pytest.raises(ValueError, match="max_age must be more than zero"):
        recent_auth_required(max_age=value)


@pytest.mark.parametrize("value", ["600", True, [60]])
def test_recent_auth_max_age_wrong_type_raises(value: Any) -> None:
    with pytest.raises(TypeError, match="max_age must be a timedelta"):
        recent_auth_required(max_age=value)


# -- The stored re-authentication time -------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        "",
        "2020-01-01T00:00:00",  # naive: never written by the package
        12345,
        None,
        ["2020-01-01T00:00:00+00:00"],
        {"at": "now"},
    ],
    ids=repr,
)
@pytest.mark.parametrize("path", DEFAULT_VIEWS)
def test_recent_auth_stored_time_garbage_treated_as_absent(
    alice: User, path: str, value: Any
) -> None:
    client = Client()
    sign_in(client)
    assert client.post("/put-reauth/", json.dumps(value), "application/json")
    signed_in_ago(client, DEFAULT_MAX_AGE + MINUTE)
    assert reauth_redirect(client.get(path)) == {"next": [path]}


@pytest.mark.parametrize("path", DEFAULT_VIEWS)
def test_recent_auth_stored_time_in_future_treated_as_absent(
    alice: User, path: str
) -> None:
    client = Client()
    sign_in(client)
    future = (timezone.now() + timedelta(days=1)).isoformat()
    client.post("/put-reauth/", json.dumps(future), "application/json")
    signed_in_ago(client, DEFAULT_MAX_AGE + MINUTE)
    assert reauth_redirect(client.get(path)) == {"next": [path]}
    assert client.get("/last/").json()["at"] == (
        row_of(client).authenticated_at.isoformat()
    )


@pytest.mark.parametrize("path", DEFAULT_VIEWS)
def test_recent_auth_stored_time_naive_treated_as_absent(
    alice: User, path: str
) -> None:
    # The package writes aware UTC times only; a naive one is not ours.
    client = Client()
    sign_in(client)
    naive = timezone.now().replace(tzinfo=None).isoformat()
    client.post("/put-reauth/", json.dumps(naive), "application/json")
    signed_in_ago(client, DEFAULT_MAX_AGE + MINUTE)
    assert reauth_redirect(client.get(path)) == {"next": [path]}


@pytest.mark.parametrize("path", DEFAULT_VIEWS)
def test_recent_auth_stored_time_valid_counts(alice: User, path: str) -> None:
    # The control for the two tests above: a sound stored time is read.
    client = Client()
    sign_in(client)
    recent = (timezone.now() - MINUTE).isoformat()
    client.post("/put-reauth/", json.dumps(recent), "application/json")
    signed_in_ago(client, DEFAULT_MAX_AGE + MINUTE)
    assert user_of(client.get(path)) == "alice"


@pytest.mark.parametrize("path", ["/last/", "/alast/"])
def test_last_authenticated_at_later_of_sign_in_and_reauth(
    alice: User, path: str
) -> None:
    client = Client()
    assert client.get(path).json() == {"at": None}
    sign_in(client)
    record = signed_in_ago(client, DEFAULT_MAX_AGE + MINUTE)
    assert record.authenticated_at is not None
    assert parse(client.get(path).json()["at"]) == record.authenticated_at
    older = (record.authenticated_at - MINUTE).isoformat()
    client.post("/put-reauth/", json.dumps(older), "application/json")
    assert parse(client.get(path).json()["at"]) == record.authenticated_at
    at = parse(client.post("/reauth-now/").json()["at"])
    assert parse(client.get(path).json()["at"]) == at
    assert at > record.authenticated_at


# -- The re-authentication view --------------------------------------------------------


def test_reauthenticate_page_labelled_form_without_inline_code(alice: User) -> None:
    client = Client()
    sign_in(client)
    response = client.get(REAUTH_URL, {"next": "/sensitive/"})
    assert response.status_code == 200
    html = response.content.decode()
    assert '<label for="id_password">' in html
    assert 'id="id_password"' in html
    assert 'autocomplete="current-password"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert '<input type="hidden" name="next" value="/sensitive/">' in html
    assert "alice" in html
    assert "Confirm your password" in html
    # A strict Content-Security-Policy allows the page.
    for inline in ("<script", "<style", "style=", "onclick", "javascript:"):
        assert inline not in html
    assert "no-store" in response["Cache-Control"]


def test_reauthenticate_right_password_records_rotates_and_redirects(
    alice: User,
) -> None:
    client = Client()
    sign_in(client)
    before_record = signed_in_ago(client, DEFAULT_MAX_AGE + MINUTE)
    old_key = key_of(client)
    assert reauth_redirect(client.get("/sensitive/")) == {"next": ["/sensitive/"]}
    before = timezone.now()
    response = reauthenticate(client, next="/sensitive/")
    after = timezone.now()
    assert response.status_code == 302
    assert response["Location"] == "/sensitive/"
    new_key = set_cookie(response)
    assert new_key is not None and new_key != old_key
    # The old key stopped working at once; the session is the same row.
    assert user_of(carrying(old_key).get("/peek/")) == ""
    record = row_of(client)
    assert record.pk == before_record.pk
    assert user_of(client.get("/sensitive/")) == "alice"
    assert before <= parse(stored_reauth(client)) <= after
    [event] = events("rotate")
    assert event.reason == "reauthenticate"


def test_reauthenticate_keeps_sign_in_and_absolute_deadline(alice: User) -> None:
    client = Client()
    sign_in(client)
    before = signed_in_ago(client, DEFAULT_MAX_AGE + MINUTE)
    assert before.authenticated_at is not None
    absolute_before = before.absolute_expire_date
    assert reauthenticate(client).status_code == 302
    after = row_of(client)
    assert after.authenticated_at == before.authenticated_at
    assert after.absolute_expire_date == absolute_before
    # The next activity write recomputes the deadlines from the sign-in, which
    # the re-authentication did not move.
    Session.objects.filter(pk=after.pk).update(
        last_seen_at=F("last_seen_at") - 2 * MINUTE
    )
    assert user_of(client.get("/peek/")) == "alice"
    written = row_of(client)
    assert written.last_seen_at is not None
    assert written.last_seen_at > timezone.now() - MINUTE
    assert written.absolute_expire_date == before.authenticated_at + ABSOLUTE


def test_reauthenticate_without_next_goes_to_login_redirect_url(alice: User) -> None:
    client = Client()
    sign_in(client)
    response = reauthenticate(client)
    assert response.status_code == 302
    assert response["Location"] == LOGIN_REDIRECT


def test_reauthenticate_next_from_query_string(alice: User) -> None:
    client = Client()
    sign_in(client)
    response = client.post(
        f"{REAUTH_URL}?next=/sensitive/%3Fpage%3D2", {"password": PASSWORD}
    )
    assert response.status_code == 302
    assert response["Location"] == "/sensitive/?page=2"


@pytest.mark.parametrize(
    "unsafe",
    [
        "https://evil.example/",
        "//evil.example/",
        "http://evil.example/sensitive/",
        "javascript:alert(1)",
        "https://testserver.evil.example/",
    ],
)
def test_reauthenticate_unsafe_next_ignored(alice: User, unsafe: str) -> None:
    client = Client()
    sign_in(client)
    page = client.get(REAUTH_URL, {"next": unsafe})
    assert "evil.example" not in page.content.decode()
    assert 'name="next"' not in page.content.decode()
    response = reauthenticate(client, next=unsafe)
    assert response.status_code == 302
    assert response["Location"] == LOGIN_REDIRECT
    # The password was right all the same.
    assert stored_reauth(client) is not None


def test_reauthenticate_wrong_password_changes_nothing(alice: User) -> None:
    client = Client()
    sign_in(client)
    signed_in_ago(client, DEFAULT_MAX_AGE + MINUTE)
    key = key_of(client)
    with captured(user_login_failed) as failures:
        response = reauthenticate(client, "wrong password", next="/sensitive/")
    assert response.status_code == 200
    html = response.content.decode()
    assert WRONG_PASSWORD_TEXT in html
    assert 'aria-invalid="true"' in html
    assert '<input type="hidden" name="next" value="/sensitive/">' in html
    assert set_cookie(response) is None
    assert key_of(client) == key
    assert stored_reauth(client) is None
    assert events("rotate") == []
    assert reauth_redirect(client.get("/sensitive/")) == {"next": ["/sensitive/"]}
    # Sign-in throttling sees the failure as a failed sign-in.
    [failure] = failures
    assert failure["credentials"]["username"] == "alice"
    assert failure["credentials"]["password"] != "wrong password"


def test_reauthenticate_other_users_password_refused(
    alice: User, bob_with_own_password: User
) -> None:
    client = Client()
    sign_in(client)
    response = reauthenticate(client, BOBS_PASSWORD)
    assert response.status_code == 200
    assert WRONG_PASSWORD_TEXT in response.content.decode()
    assert stored_reauth(client) is None


def test_reauthenticate_empty_password_changes_nothing(alice: User) -> None:
    client = Client()
    sign_in(client)
    response = client.post(REAUTH_URL, {})
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert set_cookie(response) is None
    assert stored_reauth(client) is None


@pytest.mark.parametrize("method", ["get", "post"])
def test_reauthenticate_anonymous_redirected_to_login(method: str) -> None:
    client = Client()
    response = getattr(client, method)(REAUTH_URL, {"password": PASSWORD})
    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == LOGIN_URL
    assert Session.objects.count() == 0


def test_reauthenticate_anonymous_json_gets_401() -> None:
    response = Client().post(REAUTH_URL, {"password": PASSWORD}, headers=JSON)
    assert response.status_code == 401
    assert response.json()["error"] == "not_signed_in"


def test_reauthenticate_post_requires_csrf_token(alice: User) -> None:
    client = Client(enforce_csrf_checks=True)
    sign_in(client)
    assert client.get(REAUTH_URL).status_code == 200
    key = key_of(client)
    assert reauthenticate(client).status_code == 403
    assert key_of(client) == key
    assert stored_reauth(client) is None
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    response = reauthenticate(client, csrfmiddlewaretoken=token)
    assert response.status_code == 302
    assert key_of(client) != key


def test_reauthenticate_post_without_csrf_token_json_403(alice: User) -> None:
    client = Client(enforce_csrf_checks=True)
    sign_in(client)
    key = key_of(client)
    response = client.post(REAUTH_URL, {"password": PASSWORD}, headers=JSON)
    assert response.status_code == 403
    assert response.json() == {"error": "csrf_failed"}
    assert key_of(client) == key
    assert failures_of(alice) == []


@pytest.mark.parametrize("method", ["put", "delete"])
def test_reauthenticate_other_methods_refused(alice: User, method: str) -> None:
    client = Client()
    sign_in(client)
    assert getattr(client, method)(REAUTH_URL).status_code == 405


def test_reauthenticate_json_right_password(alice: User) -> None:
    client = Client()
    sign_in(client)
    key = key_of(client)
    before = timezone.now()
    response = client.post(REAUTH_URL, {"password": PASSWORD}, headers=JSON)
    assert response.status_code == 200
    at = parse(response.json()["reauthenticated_at"])
    assert before <= at <= timezone.now()
    assert key_of(client) != key


def test_reauthenticate_json_wrong_password_400(alice: User) -> None:
    client = Client()
    sign_in(client)
    key = key_of(client)
    response = client.post(REAUTH_URL, {"password": "nope"}, headers=JSON)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_password"
    assert body["errors"]["password"][0]["code"] == "invalid_password"
    assert key_of(client) == key
    assert stored_reauth(client) is None


def test_reauthenticate_with_cached_store(alice: User, cached_engine: str) -> None:
    client = Client()
    sign_in(client)
    old_key = key_of(client)
    response = reauthenticate(client, next="/sensitive/")
    assert response.status_code == 302
    assert key_of(client) != old_key
    assert user_of(carrying(old_key).get("/peek/")) == ""
    assert stored_reauth(client) is not None
    assert user_of(client.get("/sensitive/")) == "alice"


# -- mark_reauthenticated / amark_reauthenticated --------------------------------------


def test_mark_reauthenticated_rotates_and_records(alice: User) -> None:
    client = Client()
    sign_in(client)
    signed_in_ago(client, DEFAULT_MAX_AGE + MINUTE)
    old_key = key_of(client)
    at = parse(client.post("/reauth-now/").json()["at"])
    assert key_of(client) != old_key
    assert user_of(carrying(old_key).get("/peek/")) == ""
    assert parse(stored_reauth(client)) == at
    assert [event.reason for event in events("rotate")] == ["reauthenticate"]
    assert user_of(client.get("/sensitive/")) == "alice"


async def test_amark_reauthenticated_rotates_and_records(alice: User) -> None:
    client = AsyncClient()
    await asign_in(client)
    await asigned_in_ago(client, DEFAULT_MAX_AGE + MINUTE)
    old_key = key_of(client)
    assert reauth_redirect(await client.get("/asensitive/"))
    at = parse((await client.post("/areauth-now/")).json()["at"])
    assert key_of(client) != old_key
    old = AsyncClient()
    old.cookies[COOKIE] = old_key
    assert user_of(await old.get("/peek/")) == ""
    data = (await client.get("/peek/")).json()["data"]
    assert parse(data[REAUTH_KEY]) == at
    reasons = [event.reason for event in await sync_to_async(events)("rotate")]
    assert reasons == ["reauthenticate"]
    assert user_of(await client.get("/asensitive/")) == "alice"
    assert parse((await client.get("/alast/")).json()["at"]) == at


def test_mark_reauthenticated_other_engine_raises(settings: Any) -> None:
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    with pytest.raises(TypeError, match="django-sessionkit SESSION_ENGINE"):
        Client().post("/reauth-now/")


# -- Brute force: failures are limited, recorded and reported -------------------------

FAILED_REASON = "reauth_failed"
LOCKED_TEXT = "Too many wrong passwords"


def failures_of(user: User) -> list[SessionEvent]:
    return list(
        SessionEvent.objects.filter(user=user, reason=FAILED_REASON).order_by("pk")
    )


def fail(client: Client, times: int) -> list[int]:
    return [reauthenticate(client, "wrong password").status_code for _ in range(times)]


def age_failures(user: User, age: timedelta) -> None:
    """Move the user's failures ``age`` into the past, as time passing would."""
    rows = SessionEvent.objects.filter(user=user, reason=FAILED_REASON)
    assert rows.update(created_at=F("created_at") - age) > 0


def test_reauthenticate_failures_limit_then_429_with_right_password(
    alice: User,
) -> None:
    client = Client()
    record = sign_in(client)
    key = key_of(client)
    # The fifth failure already says that the limit is reached.
    assert fail(client, 5) == [200, 200, 200, 200, 429]
    response = reauthenticate(client, next="/sensitive/")
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 15 * 60
    html = response.content.decode()
    assert LOCKED_TEXT in html
    assert 'name="password"' not in html
    # Refused unchecked: no rotation, no re-authentication, no more failures.
    assert key_of(client) == key
    assert stored_reauth(client) is None
    assert events("rotate") == []
    failures = failures_of(alice)
    assert len(failures) == 5
    assert {event.session_id for event in failures} == {record.pk}
    assert {event.kind for event in failures} == {"anomaly"}
    assert client.get(REAUTH_URL).status_code == 429


def test_reauthenticate_locked_json_gets_429(alice: User) -> None:
    client = Client()
    sign_in(client)
    fail(client, 5)
    before = timezone.now()
    response = client.post(REAUTH_URL, {"password": PASSWORD}, headers=JSON)
    assert response.status_code == 429
    body = response.json()
    assert body["error"] == "too_many_failures"
    assert 0 < body["retry_after"] <= 15 * 60
    until = parse(body["locked_until"])
    assert before < until <= timezone.now() + timedelta(minutes=15)
    assert int(response["Retry-After"]) == body["retry_after"]


def test_reauthenticate_failures_limit_per_user_other_session(alice: User) -> None:
    thief, owner = Client(), Client()
    sign_in(thief)
    sign_in(owner)
    fail(thief, 5)
    response = reauthenticate(owner)
    assert response.status_code == 429
    assert stored_reauth(owner) is None


def test_reauthenticate_failures_other_user_not_limited(
    alice: User, bob_with_own_password: User
) -> None:
    client = Client()
    sign_in(client)
    fail(client, 5)
    bob = Client()
    response = bob.post("/login/", {"username": "bob", "password": BOBS_PASSWORD})
    assert response.status_code == 200
    response = reauthenticate(bob, BOBS_PASSWORD)
    assert response.status_code == 302


def test_reauthenticate_failures_window_passed_right_password_works(
    alice: User,
) -> None:
    client = Client()
    sign_in(client)
    fail(client, 5)
    age_failures(alice, timedelta(minutes=15) + SECOND)
    response = reauthenticate(client, next="/sensitive/")
    assert response.status_code == 302
    assert user_of(client.get("/sensitive/")) == "alice"


def test_reauthenticate_failures_window_partly_passed_still_locked(
    alice: User,
) -> None:
    client = Client()
    sign_in(client)
    fail(client, 4)
    age_failures(alice, timedelta(minutes=15) + SECOND)
    # Four failures left the window: four more are allowed, then the limit.
    assert fail(client, 5) == [200, 200, 200, 200, 429]


def test_reauthenticate_failure_limit_setting(alice: User, settings: Any) -> None:
    settings.SESSIONKIT_REAUTH_FAILURE_LIMIT = 2
    settings.SESSIONKIT_REAUTH_FAILURE_WINDOW = 60
    client = Client()
    sign_in(client)
    assert fail(client, 2) == [200, 429]
    age_failures(alice, MINUTE + SECOND)
    assert reauthenticate(client).status_code == 302


def test_reauthenticate_failure_limit_none_never_locks(
    alice: User, settings: Any
) -> None:
    settings.SESSIONKIT_REAUTH_FAILURE_LIMIT = None
    settings.SESSIONKIT_REAUTH_REVOKE_AFTER = None
    client = Client()
    sign_in(client)
    assert set(fail(client, 8)) == {200}
    assert len(failures_of(alice)) == 8
    assert reauthenticate(client).status_code == 302


def test_reauthenticate_revoke_after_failures_signs_out(alice: User) -> None:
    client = Client()
    record = sign_in(client)
    key = key_of(client)
    other = Client()
    sign_in(other)
    statuses: list[int] = []
    for _ in range(3):
        statuses += fail(client, 5)
        age_failures(alice, timedelta(minutes=16))
    assert statuses == [200, 200, 200, 200, 429] * 3
    assert events("revoke") == []
    with captured(user_logged_out) as signed_out:
        statuses = fail(client, 5)
    # The twentieth failure of the session revokes it.
    assert statuses == [200, 200, 200, 200, 302]
    [revoke] = events("revoke")
    assert revoke.reason == "reauth_failures"
    assert revoke.session_id == record.pk
    assert not Session.objects.filter(pk=record.pk).exists()
    assert len(signed_out) == 1
    assert user_of(carrying(key).get("/peek/")) == ""
    assert user_of(client.get("/peek/")) == ""
    # Only that session: the user's other session stays signed in.
    assert user_of(other.get("/peek/")) == "alice"


def test_reauthenticate_revoke_after_setting_json(alice: User, settings: Any) -> None:
    settings.SESSIONKIT_REAUTH_REVOKE_AFTER = 2
    client = Client()
    record = sign_in(client)
    assert reauthenticate(client, "wrong").status_code == 200
    response = client.post(REAUTH_URL, {"password": "wrong"}, headers=JSON)
    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "session_revoked"
    assert body["login_url"] == LOGIN_URL
    assert [e.reason for e in events("revoke")] == ["reauth_failures"]
    assert not Session.objects.filter(pk=record.pk).exists()


def test_reauthenticate_failure_sends_user_login_failed_without_password(
    alice: User,
) -> None:
    client = Client()
    sign_in(client)
    with captured(user_login_failed) as failures:
        reauthenticate(client, "wrong password")
    [failure] = failures
    assert failure["credentials"]["username"] == "alice"
    assert "wrong password" not in json.dumps(failure["credentials"])
    assert failure["request"] is not None
    assert failure["request"].path == REAUTH_URL


def test_reauthenticate_failure_recorded_as_anomaly_event(alice: User) -> None:
    client = Client()
    record = sign_in(client)
    with captured(session_anomaly) as anomalies:
        reauthenticate(client, "wrong password")
    [event] = failures_of(alice)
    assert (event.kind, event.session_id) == ("anomaly", record.pk)
    assert "wrong password" not in json.dumps(event.detail)
    [signal] = anomalies
    assert (signal["reason"], signal["session_id"]) == (FAILED_REASON, record.pk)


def test_reauthenticate_right_password_leaves_no_failure(alice: User) -> None:
    client = Client()
    sign_in(client)
    with captured(session_anomaly) as anomalies:
        assert reauthenticate(client).status_code == 302
    assert failures_of(alice) == []
    assert anomalies == []


@postgresql_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("atomic", [False, True], ids=["autocommit", "atomic"])
def test_reauthenticate_parallel_failures_bounded(
    alice: User, atomic: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attempts racing each other cannot pass the limit together, also with
    ATOMIC_REQUESTS (whose transactions would hide each attempt's row)."""
    settings_dict = connections["default"].settings_dict
    monkeypatch.setitem(settings_dict, "ATOMIC_REQUESTS", atomic)
    clients = [Client() for _ in range(12)]
    for client in clients:
        sign_in(client)
    statuses = together(clients, lambda c: reauthenticate(c, "wrong").status_code)
    # At most five passwords were checked; every other attempt was refused.
    assert len(failures_of(alice)) <= 5
    assert statuses.count(200) <= 5
    assert set(statuses) <= {200, 429}


def test_reauthenticate_sign_in_without_user_counts_its_own_failures(
    alice: User, settings: Any
) -> None:
    """A session of a backend that returns no user: its failures are its own,
    never those of the user who shares its id, and never a 500."""
    from tests.test_receivers import ACCOUNT_BACKENDS, Account

    settings.AUTHENTICATION_BACKENDS = ACCOUNT_BACKENDS
    Account.objects.create(pk=alice.pk, name="ops")
    browser = Client()
    response = browser.post("/login/", {"username": "ops", "password": "wrong"})
    response = browser.post(
        "/login/", {"username": "ops", "password": "account secret"}
    )
    assert response.status_code == 200, response.content
    record = row_of(browser)
    assert record.user_id is None
    statuses = [reauthenticate(browser, "wrong").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]  # the fifth locks
    assert failures_of(alice) == []
    events = SessionEvent.objects.filter(reason=FAILED_REASON)
    assert {(e.user_id, e.session_id) for e in events} == {(None, record.pk)}
    assert reauthenticate(browser, "account secret").status_code == 429
    alices = Client()
    sign_in(alices)
    assert reauthenticate(alices).status_code == 302
