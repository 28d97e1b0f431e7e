"""The policy middleware: timeouts, activity, passive requests, hygiene.

Time is moved by editing a session's stored timestamps relative to
``timezone.now()``; every request goes through the real middleware stack,
synchronously (``Client``) and asynchronously (``AsyncClient``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import F
from django.http import HttpResponseBase
from django.test import AsyncClient, Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_sessionkit.conf import conf
from django_sessionkit.keys import hash_key, new_key
from django_sessionkit.models import Session, SessionEvent
from django_sessionkit.policy import Policy, deadlines
from django_sessionkit.signals import session_expired
from tests import policies, urls_middleware
from tests.helpers import (
    PASSWORD,
    acaptured_queries,
    aforget_cached_entries,
    forget_cached_entries,
)

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.urls("tests.urls_middleware"),
    pytest.mark.usefixtures("engine"),
]

COOKIE = settings.SESSION_COOKIE_NAME
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
IDLE = timedelta(minutes=30)
ABSOLUTE = timedelta(hours=12)
REMEMBER_IDLE = timedelta(days=14)
REMEMBER_ABSOLUTE = timedelta(days=30)
COOKIE_AGE = timedelta(seconds=settings.SESSION_COOKIE_AGE)

JSON = {"Accept": "application/json"}
XHR = {"X-Requested-With": "XMLHttpRequest"}
LOGIN_REDIRECT = "/accounts/login/?next="
EXPIRED_TEXT = {
    "idle": "You were signed out after a period of inactivity.",
    "absolute": "Your session reached its maximum length. Please sign in again.",
}
CLEAR_SITE_DATA = '"cache", "cookies", "storage"'

TIMEOUTS = ["idle", "absolute"]
# Offsets from a limit: one second early, exactly on it, one second late.
BOUNDARY = [(-SECOND, False), (timedelta(0), True), (SECOND, True)]
BOUNDARY_IDS = ["one_second_before", "exactly_at", "one_second_after"]
# Column values that no honest write leaves behind.
CORRUPTIONS: dict[str, Callable[[datetime], dict[str, Any]]] = {
    "sign_in_missing": lambda now: {"authenticated_at": None},
    "sign_in_in_future": lambda now: {"authenticated_at": now + DAY},
    "activity_in_future": lambda now: {"last_seen_at": now + DAY},
    "activity_far_future": lambda now: {
        "last_seen_at": now.replace(year=9999),
        "expire_date": now.replace(year=9999),
    },
    "idle_deadline_beyond_policy": lambda now: {
        "last_seen_at": now - IDLE - SECOND,
        "expire_date": now + 365 * DAY,
    },
    "absolute_deadline_beyond_policy": lambda now: {
        "authenticated_at": now - ABSOLUTE - SECOND,
        "absolute_expire_date": now + 365 * DAY,
    },
    "absolute_deadline_missing": lambda now: {
        "authenticated_at": now - ABSOLUTE - SECOND,
        "absolute_expire_date": None,
    },
}


@pytest.fixture
def expired() -> Iterator[list[dict[str, Any]]]:
    """The keyword arguments of every ``session_expired`` sent."""
    received: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        received.append({"sender": sender, **kwargs})

    session_expired.connect(receiver, weak=False)
    try:
        yield received
    finally:
        session_expired.disconnect(receiver)


# -- Helpers -----------------------------------------------------------------------


def settings_policy(*, remember: bool = False) -> Policy:
    if remember:
        return Policy(
            conf.REMEMBER_ME_IDLE_TIMEOUT, conf.REMEMBER_ME_ABSOLUTE_TIMEOUT, None
        )
    return Policy(conf.IDLE_TIMEOUT, conf.ABSOLUTE_TIMEOUT, None)


def aged(
    record: Session,
    *,
    idle: timedelta,
    signed_in: timedelta,
    policy: Policy | None = None,
    **columns: Any,
) -> Session:
    """Make ``record`` look signed in ``signed_in`` ago and last active ``idle``
    ago, with the deadline columns an honest write under ``policy`` (default:
    the settings' policy) would have left; ``columns`` then override any.
    """
    now = timezone.now()
    authenticated_at = now - signed_in
    last_seen_at = now - idle
    limits = deadlines(
        policy or settings_policy(remember=record.remember_me),
        authenticated_at=authenticated_at,
        active_at=last_seen_at,
    )
    values = {
        "authenticated_at": authenticated_at,
        "last_seen_at": last_seen_at,
        # Rotated at the last activity: no interval rotation is due.
        "rotated_at": last_seen_at,
        "expire_date": limits.idle or last_seen_at + COOKIE_AGE,
        "absolute_expire_date": limits.absolute,
        **columns,
    }
    Session.objects.filter(pk=record.pk).update(**values)
    forget_cached_entries()
    return Session.objects.get(pk=record.pk)


aaged = sync_to_async(aged)


def limit_ages(
    timeout: str, offset: timedelta, *, idle: timedelta, absolute: timedelta
) -> dict[str, timedelta]:
    """Ages that put a session ``offset`` past its ``timeout`` limit."""
    if timeout == "idle":
        return {"idle": idle + offset, "signed_in": min(absolute, 2 * idle)}
    return {"idle": MINUTE, "signed_in": absolute + offset}


def key_of(client: Client | AsyncClient) -> str:
    return str(client.cookies[COOKIE].value)


def row_of(client: Client | AsyncClient) -> Session:
    return Session.objects.get(key_hash=hash_key(key_of(client)))


arow_of = sync_to_async(row_of)


def exists(record: Session) -> bool:
    return Session.objects.filter(pk=record.pk).exists()


aexists = sync_to_async(exists)


def sign_in(client: Client, path: str = "/login/", username: str = "alice") -> Session:
    response = client.post(path, {"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.content
    return row_of(client)


async def asign_in(
    client: AsyncClient, path: str = "/alogin/", username: str = "alice"
) -> Session:
    response = await client.post(path, {"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.content
    return await arow_of(client)


def user_of(response: HttpResponseBase) -> str:
    assert response.status_code == 200, response.content
    return str(response.json()["user"])  # type: ignore[attr-defined]


def expired_json(response: HttpResponseBase) -> str:
    """The reason of a 401 "session expired" answer."""
    assert response.status_code == 401, response.content
    body = response.json()  # type: ignore[attr-defined]
    assert body.keys() == {"error", "reason"}
    assert body["error"] == "session_expired"
    return str(body["reason"])


def deletes_session_cookie(response: HttpResponseBase) -> bool:
    morsel = response.cookies.get(COOKIE)
    return morsel is not None and morsel.value == "" and morsel["max-age"] == 0


def no_store(response: HttpResponseBase) -> bool:
    return "no-store" in response.get("Cache-Control", "")


def deadline_columns(record: Session) -> tuple[Any, ...]:
    return (
        record.authenticated_at,
        record.last_seen_at,
        record.expire_date,
        record.absolute_expire_date,
    )


def snapshot(record: Session) -> tuple[Any, ...]:
    fresh = Session.objects.get(pk=record.pk)
    return (
        fresh.key_hash,
        fresh.remember_me,
        fresh.session_data,
        *deadline_columns(fresh),
    )


asnapshot = sync_to_async(snapshot)


def timeout_events() -> list[tuple[int | None, int | None, str]]:
    return [
        (event.session_id, event.user_id, event.reason)
        for event in SessionEvent.objects.filter(kind=SessionEvent.Kind.TIMEOUT)
    ]


atimeout_events = sync_to_async(timeout_events)


def is_write(sql: str) -> bool:
    return sql.lstrip().split(None, 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}


def is_session_select(sql: str) -> bool:
    return sql.lstrip().upper().startswith("SELECT") and '"sessionkit_session"' in sql


def statements(queries: CaptureQueriesContext) -> list[str]:
    return [query["sql"] for query in queries.captured_queries]


def writes(queries: CaptureQueriesContext) -> list[str]:
    return [sql for sql in statements(queries) if is_write(sql)]


def session_selects(queries: CaptureQueriesContext) -> list[str]:
    return [sql for sql in statements(queries) if is_session_select(sql)]


# -- Timeouts at their limits -------------------------------------------------------


@pytest.mark.parametrize(("offset", "expires"), BOUNDARY, ids=BOUNDARY_IDS)
@pytest.mark.parametrize("timeout", TIMEOUTS)
def test_timeout_limit_sync(
    alice: User, timeout: str, offset: timedelta, expires: bool
) -> None:
    client = Client()
    record = sign_in(client)
    aged(record, **limit_ages(timeout, offset, idle=IDLE, absolute=ABSOLUTE))
    response = client.get("/peek/", headers=JSON)
    if expires:
        assert expired_json(response) == timeout
        assert not exists(record)
    else:
        assert user_of(response) == "alice"
        assert exists(record)


@pytest.mark.parametrize(("offset", "expires"), BOUNDARY, ids=BOUNDARY_IDS)
@pytest.mark.parametrize("timeout", TIMEOUTS)
async def test_timeout_limit_async(
    alice: User, timeout: str, offset: timedelta, expires: bool
) -> None:
    client = AsyncClient()
    record = await asign_in(client)
    await aaged(record, **limit_ages(timeout, offset, idle=IDLE, absolute=ABSOLUTE))
    response = await client.get("/peek/", headers=JSON)
    if expires:
        assert expired_json(response) == timeout
        assert not await aexists(record)
    else:
        assert user_of(response) == "alice"
        assert await aexists(record)


# The stored deadlines were written under the old, longer limits: the limits
# of the current policy apply all the same.
LOWER = {"SESSIONKIT_IDLE_TIMEOUT": 600, "SESSIONKIT_ABSOLUTE_TIMEOUT": 7200}
LOWER_IDLE = timedelta(seconds=600)
LOWER_ABSOLUTE = timedelta(seconds=7200)


@pytest.mark.parametrize(("offset", "expires"), BOUNDARY, ids=BOUNDARY_IDS)
@pytest.mark.parametrize("timeout", TIMEOUTS)
def test_timeout_limit_lowered_after_write_sync(
    alice: User, timeout: str, offset: timedelta, expires: bool
) -> None:
    client = Client()
    record = sign_in(client)
    ages = limit_ages(timeout, offset, idle=LOWER_IDLE, absolute=LOWER_ABSOLUTE)
    record = aged(record, **ages)
    assert record.expire_date > timezone.now() + MINUTE
    with override_settings(**LOWER):
        response = client.get("/peek/", headers=JSON)
    if expires:
        assert expired_json(response) == timeout
        assert not exists(record)
    else:
        assert user_of(response) == "alice"


@pytest.mark.parametrize(("offset", "expires"), BOUNDARY, ids=BOUNDARY_IDS)
@pytest.mark.parametrize("timeout", TIMEOUTS)
async def test_timeout_limit_lowered_after_write_async(
    alice: User, timeout: str, offset: timedelta, expires: bool
) -> None:
    client = AsyncClient()
    record = await asign_in(client)
    ages = limit_ages(timeout, offset, idle=LOWER_IDLE, absolute=LOWER_ABSOLUTE)
    record = await aaged(record, **ages)
    with override_settings(**LOWER):
        response = await client.get("/peek/", headers=JSON)
    if expires:
        assert expired_json(response) == timeout
        assert not await aexists(record)
    else:
        assert user_of(response) == "alice"


def test_idle_25_hours_expires_as_idle_sync(alice: User) -> None:
    # Left 25 hours ago: the idle deadline, not the absolute one, ended it.
    client = Client()
    record = sign_in(client)
    aged(record, idle=25 * HOUR, signed_in=25 * HOUR)
    assert expired_json(client.get("/peek/", headers=JSON)) == "idle"
    assert not exists(record)


async def test_idle_25_hours_expires_as_idle_async(alice: User) -> None:
    client = AsyncClient()
    record = await asign_in(client)
    await aaged(record, idle=25 * HOUR, signed_in=25 * HOUR)
    assert expired_json(await client.get("/peek/", headers=JSON)) == "idle"
    assert not await aexists(record)


@override_settings(SESSIONKIT_ABSOLUTE_TIMEOUT=None)
def test_idle_25_hours_without_absolute_limit_expires(alice: User) -> None:
    client = Client()
    record = sign_in(client)
    aged(record, idle=25 * HOUR, signed_in=25 * HOUR)
    assert expired_json(client.get("/peek/", headers=JSON)) == "idle"


# -- The absolute limit counts from the sign-in ------------------------------------


def test_absolute_counts_from_sign_in_not_session_creation(alice: User) -> None:
    client = Client()
    assert client.get("/put/?colour=blue").status_code == 200
    anonymous = row_of(client)
    Session.objects.filter(pk=anonymous.pk).update(
        created_at=timezone.now() - ABSOLUTE - HOUR
    )
    forget_cached_entries()
    record = sign_in(client)
    assert record.pk == anonymous.pk
    assert record.authenticated_at is not None
    assert record.absolute_expire_date == record.authenticated_at + ABSOLUTE
    assert user_of(client.get("/peek/")) == "alice"


def test_absolute_not_from_creation_or_last_login(alice: User) -> None:
    client = Client()
    record = sign_in(client)
    now = timezone.now()
    aged(record, idle=MINUTE, signed_in=ABSOLUTE + SECOND, created_at=now)
    User.objects.filter(pk=alice.pk).update(last_login=now)
    assert expired_json(client.get("/peek/", headers=JSON)) == "absolute"


def test_absolute_not_extended_by_old_creation_or_last_login(alice: User) -> None:
    client = Client()
    record = sign_in(client)
    long_ago = timezone.now() - ABSOLUTE - DAY
    aged(record, idle=MINUTE, signed_in=HOUR, created_at=long_ago)
    User.objects.filter(pk=alice.pk).update(last_login=long_ago)
    assert user_of(client.get("/peek/", headers=JSON)) == "alice"


def test_sign_in_again_restarts_absolute_limit(alice: User) -> None:
    client = Client()
    record = aged(sign_in(client), idle=MINUTE, signed_in=ABSOLUTE - MINUTE)
    before = timezone.now()
    again = sign_in(client)
    assert again.pk == record.pk
    assert again.authenticated_at is not None and again.authenticated_at >= before
    assert again.absolute_expire_date == again.authenticated_at + ABSOLUTE


# -- Corrupted timestamps fail closed ----------------------------------------------


@pytest.mark.parametrize("corrupt", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_corrupted_timestamp_fails_closed_sync(
    alice: User, corrupt: Callable[[datetime], dict[str, Any]]
) -> None:
    client = Client()
    record = sign_in(client)
    aged(record, idle=MINUTE, signed_in=HOUR, **corrupt(timezone.now()))
    assert expired_json(client.get("/peek/", headers=JSON)) in TIMEOUTS
    assert not exists(record)
    assert user_of(client.get("/peek/")) == ""


@pytest.mark.parametrize("corrupt", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
async def test_corrupted_timestamp_fails_closed_async(
    alice: User, corrupt: Callable[[datetime], dict[str, Any]]
) -> None:
    client = AsyncClient()
    record = await asign_in(client)
    await aaged(record, idle=MINUTE, signed_in=HOUR, **corrupt(timezone.now()))
    assert expired_json(await client.get("/peek/", headers=JSON)) in TIMEOUTS
    assert not await aexists(record)
    assert user_of(await client.get("/peek/")) == ""


UNREADABLE = {"text": "not a time", "empty": "", "impossible": "2024-13-45 99:99:99"}


@pytest.mark.parametrize("value", UNREADABLE.values(), ids=UNREADABLE.keys())
@pytest.mark.parametrize("column", ["authenticated_at", "last_seen_at", "expire_date"])
def test_unreadable_timestamp_is_never_served(
    alice: User, column: str, value: str
) -> None:
    # Only SQLite stores a timestamp as text that can be anything at all.
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL refuses a value that is not a timestamp")
    client = Client(raise_request_exception=False)
    record = sign_in(client)
    with connection.cursor() as cursor:
        cursor.execute(
            f'UPDATE "sessionkit_session" SET "{column}" = %s WHERE "id" = %s',  # noqa: S608
            [value, record.pk],
        )
    forget_cached_entries()
    for _ in range(2):
        response = client.get("/peek/", headers=JSON)
        served = response.status_code == 200 and response.json()["user"] == "alice"
        assert not served


# -- What expiry does ----------------------------------------------------------------


@pytest.mark.parametrize("timeout", TIMEOUTS)
def test_expired_session_is_ended_sync(
    alice: User, expired: list[dict[str, Any]], timeout: str
) -> None:
    client = Client()
    record = sign_in(client)
    key = key_of(client)
    aged(record, **limit_ages(timeout, SECOND, idle=IDLE, absolute=ABSOLUTE))

    response = client.get("/peek/?x=1")

    assert response.status_code == 302
    assert response["Location"] == LOGIN_REDIRECT + "/peek/%3Fx%3D1"
    assert deletes_session_cookie(response)
    assert no_store(response)
    assert not exists(record)
    assert timeout_events() == [(record.pk, alice.pk, timeout)]
    assert len(expired) == 1
    sent = expired[0]
    assert sent["sender"] is Session
    assert (sent["session_id"], sent["user"], sent["reason"]) == (
        record.pk,
        alice,
        timeout,
    )
    assert sent["by"] is None
    assert sent["request"] is not None
    assert client.get("/messages/").json()["messages"] == [
        {"level": "warning", "text": EXPIRED_TEXT[timeout]}
    ]
    # The old cookie, presented again, is only an anonymous visitor now.
    client.cookies[COOKIE] = key
    assert user_of(client.get("/peek/")) == ""
    assert len(timeout_events()) == 1
    assert len(expired) == 1


@pytest.mark.parametrize("timeout", TIMEOUTS)
async def test_expired_session_is_ended_async(
    alice: User, expired: list[dict[str, Any]], timeout: str
) -> None:
    client = AsyncClient()
    record = await asign_in(client)
    key = key_of(client)
    await aaged(record, **limit_ages(timeout, SECOND, idle=IDLE, absolute=ABSOLUTE))

    response = await client.get("/peek/?x=1")

    assert response.status_code == 302
    assert response["Location"] == LOGIN_REDIRECT + "/peek/%3Fx%3D1"
    assert deletes_session_cookie(response)
    assert no_store(response)
    assert not await aexists(record)
    assert await atimeout_events() == [(record.pk, alice.pk, timeout)]
    assert [(s["session_id"], s["user"], s["reason"]) for s in expired] == [
        (record.pk, alice, timeout)
    ]
    messages = (await client.get("/messages/")).json()["messages"]
    assert messages == [{"level": "warning", "text": EXPIRED_TEXT[timeout]}]
    client.cookies[COOKIE] = key
    assert user_of(await client.get("/peek/")) == ""
    assert len(await atimeout_events()) == 1


@pytest.mark.parametrize("timeout", TIMEOUTS)
def test_expired_policy_limit_is_ended_the_same_way(
    alice: User, expired: list[dict[str, Any]], timeout: str
) -> None:
    # Stored deadlines still in the future; only the current policy says over.
    client = Client()
    record = sign_in(client)
    ages = limit_ages(timeout, SECOND, idle=LOWER_IDLE, absolute=LOWER_ABSOLUTE)
    aged(record, **ages)
    with override_settings(**LOWER):
        response = client.get("/peek/")
    assert response.status_code == 302
    assert response["Location"] == LOGIN_REDIRECT + "/peek/"
    assert deletes_session_cookie(response)
    assert not exists(record)
    assert timeout_events() == [(record.pk, alice.pk, timeout)]
    assert [(s["session_id"], s["user"], s["reason"]) for s in expired] == [
        (record.pk, alice, timeout)
    ]
    assert client.get("/messages/").json()["messages"] == [
        {"level": "warning", "text": EXPIRED_TEXT[timeout]}
    ]


@pytest.mark.parametrize("headers", [JSON, XHR], ids=["accept_json", "xhr"])
@pytest.mark.parametrize("timeout", TIMEOUTS)
def test_expired_json_client_gets_401_sync(
    alice: User, timeout: str, headers: dict[str, str]
) -> None:
    client = Client()
    record = sign_in(client)
    aged(record, **limit_ages(timeout, SECOND, idle=IDLE, absolute=ABSOLUTE))
    response = client.get("/peek/", headers=headers)
    assert response.json() == {"error": "session_expired", "reason": timeout}
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert deletes_session_cookie(response)
    assert no_store(response)
    # Stored for the sign-in page a script sends the browser to next.
    assert "messages" in response.cookies
    assert not exists(record)
    assert timeout_events() == [(record.pk, alice.pk, timeout)]


@pytest.mark.parametrize("headers", [JSON, XHR], ids=["accept_json", "xhr"])
@pytest.mark.parametrize("timeout", TIMEOUTS)
async def test_expired_json_client_gets_401_async(
    alice: User, timeout: str, headers: dict[str, str]
) -> None:
    client = AsyncClient()
    record = await asign_in(client)
    await aaged(record, **limit_ages(timeout, SECOND, idle=IDLE, absolute=ABSOLUTE))
    response = await client.get("/peek/", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "session_expired", "reason": timeout}
    assert deletes_session_cookie(response)
    assert not await aexists(record)
    assert await atimeout_events() == [(record.pk, alice.pk, timeout)]


def test_expired_browser_accepting_html_first_is_redirected(alice: User) -> None:
    client = Client()
    record = sign_in(client)
    aged(record, idle=IDLE + SECOND, signed_in=HOUR)
    accept = "text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8"
    response = client.get("/peek/", headers={"Accept": accept})
    assert response.status_code == 302
    assert response["Location"] == LOGIN_REDIRECT + "/peek/"


@pytest.mark.parametrize(
    ("login_url", "location"),
    [
        ("/signin/", "/signin/?next=/peek/"),
        ("admin:login", "/admin/login/?next=/peek/"),
    ],
    ids=["path", "url_name"],
)
def test_expired_redirect_follows_login_url(
    alice: User, login_url: str, location: str
) -> None:
    client = Client()
    record = sign_in(client)
    aged(record, idle=IDLE + SECOND, signed_in=HOUR)
    with override_settings(LOGIN_URL=login_url):
        response = client.get("/peek/")
    assert response.status_code == 302
    assert response["Location"] == location


# -- None disables a timeout; durations in seconds ---------------------------------


@override_settings(SESSIONKIT_IDLE_TIMEOUT=None)
def test_idle_timeout_none_disables_idle_expiry(alice: User) -> None:
    client = Client()
    record = sign_in(client)
    assert record.absolute_expire_date == record.authenticated_at + ABSOLUTE
    aged(record, idle=ABSOLUTE - MINUTE, signed_in=ABSOLUTE - MINUTE)
    assert user_of(client.get("/peek/")) == "alice"
    aged(record, idle=ABSOLUTE + SECOND, signed_in=ABSOLUTE + SECOND)
    assert expired_json(client.get("/peek/", headers=JSON)) == "absolute"


@override_settings(SESSIONKIT_ABSOLUTE_TIMEOUT=None)
def test_absolute_timeout_none_disables_absolute_expiry(alice: User) -> None:
    client = Client()
    record = sign_in(client)
    assert record.absolute_expire_date is None
    assert record.expire_date == record.last_seen_at + IDLE
    aged(record, idle=IDLE - MINUTE, signed_in=400 * DAY)
    assert user_of(client.get("/peek/")) == "alice"
    aged(record, idle=IDLE + SECOND, signed_in=400 * DAY)
    assert expired_json(client.get("/peek/", headers=JSON)) == "idle"


@override_settings(SESSIONKIT_IDLE_TIMEOUT=None, SESSIONKIT_ABSOLUTE_TIMEOUT=None)
async def test_both_timeouts_none_never_expire_async(alice: User) -> None:
    client = AsyncClient()
    record = await asign_in(client)
    assert record.absolute_expire_date is None
    await aaged(record, idle=COOKIE_AGE - DAY, signed_in=400 * DAY)
    assert user_of(await client.get("/peek/")) == "alice"


@pytest.mark.parametrize("seconds", [600, 600.0], ids=["int", "float"])
@pytest.mark.parametrize(("offset", "expires"), BOUNDARY, ids=BOUNDARY_IDS)
@pytest.mark.parametrize("timeout", TIMEOUTS)
def test_timeouts_given_in_seconds(
    alice: User, timeout: str, offset: timedelta, expires: bool, seconds: float
) -> None:
    limit = timedelta(seconds=seconds)
    name = f"SESSIONKIT_{timeout.upper()}_TIMEOUT"
    with override_settings(**{name: seconds}):
        client = Client()
        record = sign_in(client)
        column = (
            record.expire_date if timeout == "idle" else record.absolute_expire_date
        )
        start = record.last_seen_at if timeout == "idle" else record.authenticated_at
        assert column == start + limit
        idle, absolute = (limit, ABSOLUTE) if timeout == "idle" else (IDLE, limit)
        aged(record, **limit_ages(timeout, offset, idle=idle, absolute=absolute))
        response = client.get("/peek/", headers=JSON)
    if expires:
        assert expired_json(response) == timeout
    else:
        assert user_of(response) == "alice"


# -- Activity, at most once per resolution -----------------------------------------

#: The tests that count the session SELECTs of a request: the database store's
#: cost. The cached store's (a hit costs none) is tested in
#: tests/test_backends_cached_db.py.
counts_database_reads = pytest.mark.parametrize("engine", ["db"], indirect=True)


@counts_database_reads
@pytest.mark.parametrize("path", ["/nothing/", "/peek/"])
def test_read_only_request_within_resolution_reads_once_writes_nothing(
    alice: User, path: str
) -> None:
    client = Client()
    record = aged(sign_in(client), idle=59 * SECOND, signed_in=HOUR)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200
    assert len(session_selects(queries)) == 1
    assert writes(queries) == []
    if path == "/nothing/":
        assert len(queries) == 1
    fresh = Session.objects.get(pk=record.pk)
    assert deadline_columns(fresh) == deadline_columns(record)


@counts_database_reads
@pytest.mark.parametrize("path", ["/anothing/", "/nothing/", "/peek/"])
async def test_read_only_request_within_resolution_reads_once_writes_nothing_async(
    alice: User, path: str
) -> None:
    client = AsyncClient()
    record = await aaged(await asign_in(client), idle=59 * SECOND, signed_in=HOUR)
    async with acaptured_queries() as queries:
        response = await client.get(path)
    assert response.status_code == 200
    assert len(session_selects(queries)) == 1
    assert writes(queries) == []
    if path != "/peek/":
        assert len(queries) == 1
    fresh = await Session.objects.aget(pk=record.pk)
    assert deadline_columns(fresh) == deadline_columns(record)


@counts_database_reads
@pytest.mark.parametrize("path", ["/nothing/", "/peek/"])
def test_activity_after_resolution_one_update(alice: User, path: str) -> None:
    client = Client()
    record = aged(sign_in(client), idle=61 * SECOND, signed_in=HOUR)
    before = timezone.now()
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200
    assert len(session_selects(queries)) == 1
    [update] = writes(queries)
    assert update.lstrip().upper().startswith('UPDATE "SESSIONKIT_SESSION"')
    fresh = Session.objects.get(pk=record.pk)
    assert fresh.last_seen_at >= before
    assert fresh.expire_date == fresh.last_seen_at + IDLE
    assert fresh.absolute_expire_date == record.absolute_expire_date
    assert fresh.authenticated_at == record.authenticated_at
    assert fresh.key_hash == record.key_hash
    assert not no_store(response)


@counts_database_reads
@pytest.mark.parametrize("path", ["/anothing/", "/nothing/"])
async def test_activity_after_resolution_one_update_async(
    alice: User, path: str
) -> None:
    client = AsyncClient()
    record = await aaged(await asign_in(client), idle=61 * SECOND, signed_in=HOUR)
    before = timezone.now()
    async with acaptured_queries() as queries:
        response = await client.get(path)
    assert response.status_code == 200
    assert len(session_selects(queries)) == 1
    [update] = writes(queries)
    assert update.lstrip().upper().startswith('UPDATE "SESSIONKIT_SESSION"')
    fresh = await Session.objects.aget(pk=record.pk)
    assert fresh.last_seen_at >= before
    assert fresh.expire_date == fresh.last_seen_at + IDLE
    assert fresh.absolute_expire_date == record.absolute_expire_date
    assert fresh.authenticated_at == record.authenticated_at


def test_activity_never_moves_idle_deadline_past_absolute(alice: User) -> None:
    client = Client()
    record = aged(sign_in(client), idle=2 * MINUTE, signed_in=ABSOLUTE - 10 * MINUTE)
    before = timezone.now()
    with CaptureQueriesContext(connection) as queries:
        assert user_of(client.get("/peek/")) == "alice"
    assert len(writes(queries)) == 1
    fresh = Session.objects.get(pk=record.pk)
    assert fresh.last_seen_at >= before
    assert fresh.absolute_expire_date == record.authenticated_at + ABSOLUTE
    assert fresh.expire_date == fresh.absolute_expire_date


async def test_activity_never_moves_idle_deadline_past_absolute_async(
    alice: User,
) -> None:
    client = AsyncClient()
    record = await aaged(
        await asign_in(client), idle=2 * MINUTE, signed_in=ABSOLUTE - 10 * MINUTE
    )
    assert user_of(await client.get("/peek/")) == "alice"
    fresh = await Session.objects.aget(pk=record.pk)
    assert fresh.last_seen_at > record.last_seen_at
    assert fresh.absolute_expire_date == record.authenticated_at + ABSOLUTE
    assert fresh.expire_date == fresh.absolute_expire_date


@override_settings(SESSIONKIT_ACTIVITY_RESOLUTION=300)
@pytest.mark.parametrize(
    ("idle", "updates"), [(299 * SECOND, 0), (301 * SECOND, 1)], ids=["within", "past"]
)
def test_activity_resolution_setting_in_seconds(
    alice: User, idle: timedelta, updates: int
) -> None:
    client = Client()
    aged(sign_in(client), idle=idle, signed_in=HOUR)
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/nothing/").status_code == 200
    assert len(writes(queries)) == updates


@override_settings(SESSIONKIT_ACTIVITY_RESOLUTION=0)
def test_activity_resolution_zero_writes_every_request(alice: User) -> None:
    client = Client()
    aged(sign_in(client), idle=SECOND, signed_in=HOUR)
    for _ in range(2):
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/nothing/").status_code == 200
        assert len(writes(queries)) == 1


def test_modified_session_within_resolution_does_not_extend(alice: User) -> None:
    client = Client()
    record = aged(sign_in(client), idle=30 * SECOND, signed_in=HOUR)
    assert client.get("/put/?colour=blue").status_code == 200
    fresh = Session.objects.get(pk=record.pk)
    assert fresh.get_decoded()["colour"] == "blue"
    assert deadline_columns(fresh) == deadline_columns(record)


# -- Passive requests never extend -------------------------------------------------

PASSIVE_URLS = {"SESSIONKIT_PASSIVE_URLS": [r"^/poll/"]}
PASSIVE_PATHS = ["/passive/", "/apassive/", "/poll/updates/", "/sessions/status/"]
PASSIVE_IDS = ["decorated_sync", "decorated_async", "url_regex", "status"]


@counts_database_reads
@override_settings(**PASSIVE_URLS)
@pytest.mark.parametrize("path", PASSIVE_PATHS, ids=PASSIVE_IDS)
def test_passive_request_never_extends_sync(alice: User, path: str) -> None:
    client = Client()
    record = aged(sign_in(client), idle=IDLE - MINUTE, signed_in=HOUR)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200, response.content
    assert len(session_selects(queries)) == 1
    assert writes(queries) == []
    assert snapshot(record) == (
        record.key_hash,
        record.remember_me,
        record.session_data,
        *deadline_columns(record),
    )


@counts_database_reads
@override_settings(**PASSIVE_URLS)
@pytest.mark.parametrize("path", PASSIVE_PATHS, ids=PASSIVE_IDS)
async def test_passive_request_never_extends_async(alice: User, path: str) -> None:
    client = AsyncClient()
    record = await aaged(await asign_in(client), idle=IDLE - MINUTE, signed_in=HOUR)
    async with acaptured_queries() as queries:
        response = await client.get(path)
    assert response.status_code == 200, response.content
    assert len(session_selects(queries)) == 1
    assert writes(queries) == []
    fresh = await Session.objects.aget(pk=record.pk)
    assert deadline_columns(fresh) == deadline_columns(record)
    assert fresh.key_hash == record.key_hash


@override_settings(**PASSIVE_URLS)
def test_passive_url_regex_leaves_other_paths_active(alice: User) -> None:
    client = Client()
    record = aged(sign_in(client), idle=IDLE - MINUTE, signed_in=HOUR)
    assert client.get("/nothing/").status_code == 200
    fresh = Session.objects.get(pk=record.pk)
    assert fresh.last_seen_at > record.last_seen_at
    assert fresh.expire_date > record.expire_date


def test_passive_url_regex_only_when_configured(alice: User) -> None:
    client = Client()
    record = aged(sign_in(client), idle=IDLE - MINUTE, signed_in=HOUR)
    assert client.get("/poll/updates/").status_code == 200
    assert Session.objects.get(pk=record.pk).last_seen_at > record.last_seen_at


def test_passive_request_that_saves_data_does_not_extend(alice: User) -> None:
    client = Client()
    record = aged(sign_in(client), idle=IDLE - MINUTE, signed_in=HOUR)
    assert client.get("/passive/put/?colour=blue").status_code == 200
    fresh = Session.objects.get(pk=record.pk)
    assert fresh.get_decoded()["colour"] == "blue"
    assert deadline_columns(fresh) == deadline_columns(record)


@override_settings(**PASSIVE_URLS)
@pytest.mark.parametrize("path", PASSIVE_PATHS, ids=PASSIVE_IDS)
def test_polling_cannot_keep_a_session_alive(alice: User, path: str) -> None:
    client = Client()
    record = aged(sign_in(client), idle=IDLE - MINUTE, signed_in=HOUR)
    for _ in range(3):
        assert client.get(path, headers=JSON).status_code == 200
    aged(record, idle=IDLE + SECOND, signed_in=HOUR)
    assert expired_json(client.get(path, headers=JSON)) == "idle"
    assert not exists(record)


def test_status_reports_stored_deadlines(alice: User) -> None:
    client = Client()
    record = aged(sign_in(client), idle=10 * MINUTE, signed_in=HOUR)
    body = client.get("/sessions/status/").json()
    assert body["idle_deadline"] == record.expire_date.isoformat()
    assert body["absolute_deadline"] == record.absolute_expire_date.isoformat()


def test_status_signed_out_is_401(alice: User) -> None:
    response = Client().get("/sessions/status/")
    assert response.status_code == 401
    assert response.json() == {"error": "not_signed_in"}


# -- Keep-alive -----------------------------------------------------------------


def test_keep_alive_extends_now_sync(alice: User) -> None:
    client = Client()
    record = aged(sign_in(client), idle=10 * SECOND, signed_in=HOUR)
    before = timezone.now()
    with CaptureQueriesContext(connection) as queries:
        response = client.post("/sessions/keep-alive/")
    assert response.status_code == 200
    assert len(writes(queries)) == 1
    fresh = Session.objects.get(pk=record.pk)
    assert fresh.last_seen_at >= before
    assert fresh.expire_date == fresh.last_seen_at + IDLE
    assert fresh.absolute_expire_date == record.absolute_expire_date
    body = response.json()
    assert body["idle_deadline"] == fresh.expire_date.isoformat()
    assert body["absolute_deadline"] == fresh.absolute_expire_date.isoformat()


async def test_keep_alive_extends_now_async(alice: User) -> None:
    client = AsyncClient()
    record = await aaged(await asign_in(client), idle=10 * SECOND, signed_in=HOUR)
    before = timezone.now()
    response = await client.post("/sessions/keep-alive/")
    assert response.status_code == 200
    fresh = await Session.objects.aget(pk=record.pk)
    assert fresh.last_seen_at >= before
    assert fresh.expire_date == fresh.last_seen_at + IDLE
    assert response.json()["idle_deadline"] == fresh.expire_date.isoformat()


def test_keep_alive_never_past_absolute(alice: User) -> None:
    client = Client()
    record = aged(sign_in(client), idle=10 * SECOND, signed_in=ABSOLUTE - 5 * MINUTE)
    response = client.post("/sessions/keep-alive/")
    assert response.status_code == 200
    fresh = Session.objects.get(pk=record.pk)
    assert fresh.absolute_expire_date == record.authenticated_at + ABSOLUTE
    assert fresh.expire_date == fresh.absolute_expire_date
    body = response.json()
    assert body["idle_deadline"] == body["absolute_deadline"]
    assert body["absolute_deadline"] == fresh.absolute_expire_date.isoformat()


def test_keep_alive_is_post_only(alice: User) -> None:
    client = Client()
    record = aged(sign_in(client), idle=10 * SECOND, signed_in=HOUR)
    assert client.get("/sessions/keep-alive/").status_code == 405
    fresh = Session.objects.get(pk=record.pk)
    assert deadline_columns(fresh) == deadline_columns(record)


def test_keep_alive_needs_csrf_token(alice: User) -> None:
    client = Client(enforce_csrf_checks=True)
    record = aged(sign_in(client), idle=10 * SECOND, signed_in=HOUR)
    assert client.post("/sessions/keep-alive/").status_code == 403
    assert deadline_columns(Session.objects.get(pk=record.pk)) == deadline_columns(
        record
    )
    token = client.get("/csrf/").json()["token"]
    response = client.post("/sessions/keep-alive/", headers={"X-CSRFToken": token})
    assert response.status_code == 200
    assert Session.objects.get(pk=record.pk).last_seen_at > record.last_seen_at


def test_keep_alive_signed_out_is_401() -> None:
    client = Client(enforce_csrf_checks=True)
    token = client.get("/csrf/").json()["token"]
    response = client.post("/sessions/keep-alive/", headers={"X-CSRFToken": token})
    assert response.status_code == 401
    assert response.json() == {"error": "not_signed_in"}
    assert not Session.objects.exists()


def test_keep_alive_after_expiry_is_401_and_ends_session(alice: User) -> None:
    client = Client()
    record = aged(sign_in(client), idle=IDLE + SECOND, signed_in=HOUR)
    response = client.post("/sessions/keep-alive/", headers=JSON)
    assert expired_json(response) == "idle"
    assert not exists(record)


# -- Remember me -------------------------------------------------------------------


def test_remember_me_sign_in_gets_remember_me_deadlines_sync(alice: User) -> None:
    record = sign_in(Client(), "/login-remember/")
    assert record.remember_me is True
    assert record.authenticated_at is not None
    assert record.absolute_expire_date == record.authenticated_at + REMEMBER_ABSOLUTE
    assert record.expire_date == record.last_seen_at + REMEMBER_IDLE


async def test_remember_me_sign_in_gets_remember_me_deadlines_async(
    alice: User,
) -> None:
    record = await asign_in(AsyncClient(), "/alogin-remember/")
    assert record.remember_me is True
    assert record.authenticated_at is not None
    assert record.absolute_expire_date == record.authenticated_at + REMEMBER_ABSOLUTE
    assert record.expire_date == record.last_seen_at + REMEMBER_IDLE


def test_sign_in_without_remember_me_gets_default_deadlines(alice: User) -> None:
    record = sign_in(Client())
    assert record.remember_me is False
    assert record.absolute_expire_date == record.authenticated_at + ABSOLUTE
    assert record.expire_date == record.last_seen_at + IDLE


def test_remember_me_survives_25_hours_idle(alice: User) -> None:
    client = Client()
    aged(sign_in(client, "/login-remember/"), idle=25 * HOUR, signed_in=25 * HOUR)
    assert user_of(client.get("/peek/")) == "alice"


@pytest.mark.parametrize("timeout", TIMEOUTS)
@pytest.mark.parametrize(
    ("offset", "expires"), [BOUNDARY[0], BOUNDARY[2]], ids=["before", "after"]
)
def test_remember_me_limits_sync(
    alice: User, timeout: str, offset: timedelta, expires: bool
) -> None:
    client = Client()
    record = sign_in(client, "/login-remember/")
    ages = limit_ages(timeout, offset, idle=REMEMBER_IDLE, absolute=REMEMBER_ABSOLUTE)
    aged(record, **ages)
    response = client.get("/peek/", headers=JSON)
    if expires:
        assert expired_json(response) == timeout
    else:
        assert user_of(response) == "alice"


@pytest.mark.parametrize("timeout", TIMEOUTS)
@pytest.mark.parametrize(
    ("offset", "expires"), [BOUNDARY[0], BOUNDARY[2]], ids=["before", "after"]
)
async def test_remember_me_limits_async(
    alice: User, timeout: str, offset: timedelta, expires: bool
) -> None:
    client = AsyncClient()
    record = await asign_in(client, "/alogin-remember/")
    ages = limit_ages(timeout, offset, idle=REMEMBER_IDLE, absolute=REMEMBER_ABSOLUTE)
    await aaged(record, **ages)
    response = await client.get("/peek/", headers=JSON)
    if expires:
        assert expired_json(response) == timeout
    else:
        assert user_of(response) == "alice"


@override_settings(
    SESSIONKIT_REMEMBER_ME_IDLE_TIMEOUT=3600,
    SESSIONKIT_REMEMBER_ME_ABSOLUTE_TIMEOUT=timedelta(days=2),
)
def test_remember_me_timeouts_read_from_settings(alice: User) -> None:
    client = Client()
    record = sign_in(client, "/login-remember/")
    assert record.expire_date == record.last_seen_at + HOUR
    assert record.absolute_expire_date == record.authenticated_at + 2 * DAY
    aged(record, idle=HOUR + SECOND, signed_in=DAY)
    assert expired_json(client.get("/peek/", headers=JSON)) == "idle"


@override_settings(
    SESSIONKIT_REMEMBER_ME_IDLE_TIMEOUT=timedelta(days=20),
    SESSIONKIT_REMEMBER_ME_ABSOLUTE_TIMEOUT=timedelta(days=60),
)
def test_remember_me_idle_longer_than_session_cookie_age(alice: User) -> None:
    assert timedelta(days=20) > COOKIE_AGE
    client = Client()
    record = sign_in(client, "/login-remember/")
    assert record.expire_date == record.last_seen_at + timedelta(days=20)
    aged(record, idle=COOKIE_AGE + DAY, signed_in=COOKIE_AGE + DAY)
    assert user_of(client.get("/peek/")) == "alice"


def test_remember_me_activity_extends_by_remember_me_idle(alice: User) -> None:
    client = Client()
    record = aged(sign_in(client, "/login-remember/"), idle=2 * DAY, signed_in=3 * DAY)
    assert user_of(client.get("/peek/")) == "alice"
    fresh = Session.objects.get(pk=record.pk)
    assert fresh.last_seen_at > record.last_seen_at
    assert fresh.expire_date == fresh.last_seen_at + REMEMBER_IDLE
    assert fresh.absolute_expire_date == record.authenticated_at + REMEMBER_ABSOLUTE


def test_remember_me_on_second_sign_in_counts_from_that_sign_in(alice: User) -> None:
    client = Client()
    aged(sign_in(client), idle=MINUTE, signed_in=ABSOLUTE - HOUR)
    record = sign_in(client, "/login-remember/")
    assert record.remember_me is True
    assert record.authenticated_at is not None
    assert record.authenticated_at > timezone.now() - MINUTE
    assert record.absolute_expire_date == record.authenticated_at + REMEMBER_ABSOLUTE


# -- SESSIONKIT_POLICY -----------------------------------------------------------

STRICT = {"SESSIONKIT_POLICY": "tests.policies.strict"}
STAFF_IDLE = policies.STAFF_IDLE_TIMEOUT
STAFF_ABSOLUTE = policies.STAFF_ABSOLUTE_TIMEOUT


@override_settings(**STRICT)
def test_custom_policy_sets_staff_deadlines_at_sign_in(
    alice: User, staff: User
) -> None:
    record = sign_in(Client(), username="staff")
    assert record.absolute_expire_date == record.authenticated_at + STAFF_ABSOLUTE
    assert record.expire_date == record.last_seen_at + STAFF_IDLE
    member = sign_in(Client())
    assert member.absolute_expire_date == member.authenticated_at + ABSOLUTE
    assert member.expire_date == member.last_seen_at + IDLE


@override_settings(**STRICT)
@pytest.mark.parametrize("timeout", TIMEOUTS)
@pytest.mark.parametrize(
    ("offset", "expires"), [BOUNDARY[0], BOUNDARY[2]], ids=["before", "after"]
)
def test_custom_policy_staff_limits_sync(
    alice: User, staff: User, timeout: str, offset: timedelta, expires: bool
) -> None:
    client = Client()
    record = sign_in(client, username="staff")
    strict = Policy(STAFF_IDLE, STAFF_ABSOLUTE, None)
    ages = limit_ages(timeout, offset, idle=STAFF_IDLE, absolute=STAFF_ABSOLUTE)
    aged(record, policy=strict, **ages)
    response = client.get("/peek/", headers=JSON)
    if expires:
        assert expired_json(response) == timeout
    else:
        assert user_of(response) == "staff"


@override_settings(**STRICT)
@pytest.mark.parametrize("timeout", TIMEOUTS)
@pytest.mark.parametrize(
    ("offset", "expires"), [BOUNDARY[0], BOUNDARY[2]], ids=["before", "after"]
)
async def test_custom_policy_staff_limits_async(
    alice: User, staff: User, timeout: str, offset: timedelta, expires: bool
) -> None:
    client = AsyncClient()
    record = await asign_in(client, username="staff")
    strict = Policy(STAFF_IDLE, STAFF_ABSOLUTE, None)
    ages = limit_ages(timeout, offset, idle=STAFF_IDLE, absolute=STAFF_ABSOLUTE)
    await aaged(record, policy=strict, **ages)
    response = await client.get("/peek/", headers=JSON)
    if expires:
        assert expired_json(response) == timeout
    else:
        assert user_of(response) == "staff"


@override_settings(**STRICT)
def test_custom_policy_leaves_others_on_settings(alice: User, staff: User) -> None:
    client = Client()
    aged(sign_in(client), idle=STAFF_IDLE + MINUTE, signed_in=STAFF_ABSOLUTE + HOUR)
    assert user_of(client.get("/peek/")) == "alice"


def test_custom_policy_applies_on_next_request_after_promotion(alice: User) -> None:
    client = Client()
    record = aged(
        sign_in(client), idle=STAFF_IDLE + SECOND, signed_in=STAFF_ABSOLUTE / 2
    )
    alice.is_staff = True
    alice.save()
    with override_settings(**STRICT):
        assert expired_json(client.get("/peek/", headers=JSON)) == "idle"
    assert not exists(record)


async def test_custom_policy_applies_on_next_request_after_promotion_async(
    alice: User,
) -> None:
    client = AsyncClient()
    record = await aaged(
        await asign_in(client), idle=STAFF_IDLE + SECOND, signed_in=STAFF_ABSOLUTE / 2
    )
    await User.objects.filter(pk=alice.pk).aupdate(is_staff=True)
    with override_settings(**STRICT):
        response = await client.get("/peek/", headers=JSON)
    assert expired_json(response) == "idle"
    assert not await aexists(record)


@override_settings(SESSIONKIT_POLICY="tests.policies.other")
def test_custom_policy_replaces_settings_entirely(alice: User) -> None:
    record = sign_in(Client())
    assert record.expire_date == record.last_seen_at + policies.OTHER.idle_timeout
    assert (
        record.absolute_expire_date
        == record.authenticated_at + policies.OTHER.absolute_timeout
    )


# -- Another device's sign-in ------------------------------------------------------


def test_sign_in_on_device_b_never_extends_device_a(alice: User) -> None:
    device_a, device_b = Client(), Client()
    record_a = aged(sign_in(device_a), idle=20 * MINUTE, signed_in=ABSOLUTE - HOUR)
    before = snapshot(record_a)
    sign_in(device_b)
    sign_in(device_b, "/login-remember/")
    assert user_of(device_b.get("/peek/")) == "alice"
    assert device_b.post("/sessions/keep-alive/").status_code == 200
    assert snapshot(record_a) == before
    aged(record_a, idle=IDLE + SECOND, signed_in=ABSOLUTE - HOUR)
    assert expired_json(device_a.get("/peek/", headers=JSON)) == "idle"
    assert user_of(device_b.get("/peek/")) == "alice"


async def test_sign_in_on_device_b_never_extends_device_a_async(alice: User) -> None:
    device_a, device_b = AsyncClient(), AsyncClient()
    record_a = await aaged(
        await asign_in(device_a), idle=20 * MINUTE, signed_in=ABSOLUTE - HOUR
    )
    before = await asnapshot(record_a)
    await asign_in(device_b)
    await asign_in(device_b, "/alogin-remember/")
    assert user_of(await device_b.get("/peek/")) == "alice"
    assert await asnapshot(record_a) == before
    await aaged(record_a, idle=IDLE + SECOND, signed_in=ABSOLUTE - HOUR)
    assert expired_json(await device_a.get("/peek/", headers=JSON)) == "idle"
    assert user_of(await device_b.get("/peek/")) == "alice"


# -- Response hygiene ---------------------------------------------------------------


@pytest.mark.parametrize("path", ["/login/", "/login-remember/"])
def test_sign_in_response_is_no_store(alice: User, path: str) -> None:
    response = Client().post(path, {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    assert response.cookies[COOKIE].value
    assert no_store(response)
    assert "Clear-Site-Data" not in response


async def test_sign_in_response_is_no_store_async(alice: User) -> None:
    client = AsyncClient()
    response = await client.post(
        "/alogin/", {"username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 200
    assert response.cookies[COOKIE].value
    assert no_store(response)


@pytest.mark.parametrize("path", ["/logout/", "/alogout/"], ids=["sync", "async"])
def test_sign_out_response_is_no_store(alice: User, path: str) -> None:
    client = Client()
    sign_in(client)
    response = client.post(path)
    assert response.status_code == 200
    assert deletes_session_cookie(response)
    assert no_store(response)
    assert "Clear-Site-Data" not in response


async def test_sign_out_response_is_no_store_async(alice: User) -> None:
    client = AsyncClient()
    await asign_in(client)
    response = await client.post("/alogout/")
    assert response.status_code == 200
    assert deletes_session_cookie(response)
    assert no_store(response)
    assert "Clear-Site-Data" not in response


def test_session_write_response_is_no_store(alice: User) -> None:
    client = Client()
    sign_in(client)
    response = client.get("/put/?colour=blue")
    assert response.cookies[COOKIE].value
    assert no_store(response)


@pytest.mark.parametrize("path", ["/nothing/", "/peek/", "/anothing/"])
def test_read_only_response_is_cacheable(alice: User, path: str) -> None:
    client = Client()
    aged(sign_in(client), idle=10 * SECOND, signed_in=HOUR)
    response = client.get(path)
    assert response.status_code == 200
    assert COOKIE not in response.cookies
    assert not no_store(response)


async def test_read_only_response_is_cacheable_async(alice: User) -> None:
    client = AsyncClient()
    await aaged(await asign_in(client), idle=10 * SECOND, signed_in=HOUR)
    response = await client.get("/anothing/")
    assert response.status_code == 200
    assert COOKIE not in response.cookies
    assert not no_store(response)


def test_anonymous_response_is_cacheable() -> None:
    response = Client().get("/nothing/")
    assert COOKIE not in response.cookies
    assert not no_store(response)


@override_settings(SESSIONKIT_CLEAR_SITE_DATA_ON_LOGOUT=True)
@pytest.mark.parametrize("path", ["/logout/", "/alogout/"], ids=["sync", "async"])
def test_clear_site_data_on_sign_out_when_enabled(alice: User, path: str) -> None:
    client = Client()
    sign_in(client)
    response = client.post(path)
    assert response["Clear-Site-Data"] == CLEAR_SITE_DATA
    assert no_store(response)


@override_settings(SESSIONKIT_CLEAR_SITE_DATA_ON_LOGOUT=True)
async def test_clear_site_data_on_sign_out_when_enabled_async(alice: User) -> None:
    client = AsyncClient()
    await asign_in(client)
    response = await client.post("/alogout/")
    assert response["Clear-Site-Data"] == CLEAR_SITE_DATA


@override_settings(SESSIONKIT_CLEAR_SITE_DATA_ON_LOGOUT=True)
def test_clear_site_data_only_on_sign_out(alice: User) -> None:
    client = Client()
    sign_in_response = client.post(
        "/login/", {"username": "alice", "password": PASSWORD}
    )
    assert "Clear-Site-Data" not in sign_in_response
    assert "Clear-Site-Data" not in client.get("/nothing/")
    assert "Clear-Site-Data" not in client.get("/put/?colour=blue")


# -- Public pages stay cacheable ------------------------------------------------------


@pytest.fixture
def page_cache(settings: Any, engine: str) -> Iterator[list[str]]:
    """Django's per-site cache around the stack, in a private local-memory
    cache; yields the paths the public views ran for."""
    settings.CACHES = {
        **settings.CACHES,
        "pages": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"pages-{uuid.uuid4()}",
        },
    }
    settings.CACHE_MIDDLEWARE_ALIAS = "pages"
    settings.CACHE_MIDDLEWARE_SECONDS = 600
    settings.MIDDLEWARE = [
        "django.middleware.cache.UpdateCacheMiddleware",
        *settings.MIDDLEWARE,
        "django.middleware.cache.FetchFromCacheMiddleware",
    ]
    urls_middleware.public_runs.clear()
    yield urls_middleware.public_runs
    urls_middleware.public_runs.clear()


def anonymous_visitors() -> list[Client]:
    """No cookie; another site cookie; an unknown session key; an anonymous
    session holding data."""
    with_other_cookie = Client()
    with_other_cookie.cookies["theme"] = "dark"
    with_unknown_key = Client()
    with_unknown_key.cookies[COOKIE] = new_key()
    with_data = Client()
    assert with_data.get("/put/?colour=blue").cookies[COOKIE].value
    return [Client(), with_other_cookie, with_unknown_key, with_data]


def varies_on_cookie(response: HttpResponseBase) -> bool:
    return "cookie" in response.get("Vary", "").lower()


@pytest.mark.parametrize("path", ["/public/", "/apublic/"], ids=["sync", "async"])
def test_public_page_anonymous_visitors_share_one_cached_copy_sync(
    page_cache: list[str], path: str
) -> None:
    responses = [visitor.get(path) for visitor in anonymous_visitors()]
    assert [r.status_code for r in responses] == [200] * 4
    assert not varies_on_cookie(responses[0])
    assert page_cache == [path]


@pytest.mark.parametrize("path", ["/public/", "/apublic/"], ids=["sync", "async"])
async def test_public_page_anonymous_visitors_share_one_cached_copy_async(
    page_cache: list[str], path: str
) -> None:
    visitors = await sync_to_async(anonymous_visitors)()
    responses = []
    for visitor in visitors:
        browser = AsyncClient()
        browser.cookies = visitor.cookies
        responses.append(await browser.get(path))
    assert [r.status_code for r in responses] == [200] * 4
    assert not varies_on_cookie(responses[0])
    assert page_cache == [path]


@pytest.mark.parametrize("path", ["/public/", "/apublic/"], ids=["sync", "async"])
def test_public_page_of_signed_in_user_varies_on_cookie(
    alice: User, page_cache: list[str], path: str
) -> None:
    signed_in = Client()
    sign_in(signed_in)
    response = signed_in.get(path)
    assert response.status_code == 200
    assert varies_on_cookie(response)
    # Its copy is the signed-in browser's alone.
    assert Client().get(path).status_code == 200
    assert page_cache == [path, path]


async def test_public_page_of_signed_in_user_varies_on_cookie_async(
    alice: User, page_cache: list[str]
) -> None:
    signed_in = AsyncClient()
    await asign_in(signed_in)
    response = await signed_in.get("/apublic/")
    assert response.status_code == 200
    assert varies_on_cookie(response)
    assert (await AsyncClient().get("/apublic/")).status_code == 200
    assert page_cache == ["/apublic/", "/apublic/"]


def test_page_showing_the_user_varies_on_cookie(
    alice: User, page_cache: list[str]
) -> None:
    signed_in = Client()
    sign_in(signed_in)
    assert varies_on_cookie(signed_in.get("/peek/"))
    assert user_of(Client().get("/peek/")) == ""


def test_anonymous_session_read_by_view_varies_on_cookie(page_cache: list[str]) -> None:
    visitor = Client()
    visitor.get("/put/?colour=blue")
    response = visitor.get("/peek/")
    assert response.json()["data"] == {"colour": "blue"}
    assert varies_on_cookie(response)
    assert Client().get("/peek/").json()["data"] == {}


# -- The sign-in page after an expiry -------------------------------------------------


@pytest.mark.parametrize("login_url", ["/accounts/login/", "sign-in"])
@pytest.mark.parametrize("timeout", TIMEOUTS)
def test_expired_session_sign_in_page_shown_anonymous_sync(
    alice: User, settings: Any, timeout: str, login_url: str
) -> None:
    settings.LOGIN_URL = login_url
    client = Client()
    record = sign_in(client)
    aged(record, **limit_ages(timeout, SECOND, idle=IDLE, absolute=ABSOLUTE))
    response = client.get("/accounts/login/?next=/peek/")
    assert response.status_code == 200
    assert response.json() == {
        "user": "",
        "messages": [{"level": "warning", "text": EXPIRED_TEXT[timeout]}],
    }
    assert deletes_session_cookie(response)
    assert not exists(record)
    assert timeout_events() == [(record.pk, alice.pk, timeout)]


@pytest.mark.parametrize("login_url", ["/accounts/login/", "sign-in"])
@pytest.mark.parametrize("timeout", TIMEOUTS)
async def test_expired_session_sign_in_page_shown_anonymous_async(
    alice: User, settings: Any, timeout: str, login_url: str
) -> None:
    settings.LOGIN_URL = login_url
    client = AsyncClient()
    record = await asign_in(client)
    await aaged(record, **limit_ages(timeout, SECOND, idle=IDLE, absolute=ABSOLUTE))
    response = await client.get("/accounts/login/")
    assert response.status_code == 200
    assert response.json() == {
        "user": "",
        "messages": [{"level": "warning", "text": EXPIRED_TEXT[timeout]}],
    }
    assert deletes_session_cookie(response)
    assert not await aexists(record)
    assert await atimeout_events() == [(record.pk, alice.pk, timeout)]


@pytest.mark.parametrize("login_url", ["/accounts/login/", "sign-in"])
@pytest.mark.parametrize("timeout", TIMEOUTS)
def test_expired_session_sign_in_post_signs_in_sync(
    alice: User, settings: Any, timeout: str, login_url: str
) -> None:
    settings.LOGIN_URL = login_url
    client = Client()
    record = sign_in(client)
    aged(record, **limit_ages(timeout, SECOND, idle=IDLE, absolute=ABSOLUTE))
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 302
    assert response["Location"] == "/peek/"
    assert user_of(client.get("/peek/")) == "alice"
    assert row_of(client).pk != record.pk
    assert not exists(record)
    assert timeout_events() == [(record.pk, alice.pk, timeout)]
    # Signed in again: the expiry is no news any more.
    assert client.get("/messages/").json()["messages"] == []


@pytest.mark.parametrize("timeout", TIMEOUTS)
async def test_expired_session_sign_in_post_signs_in_async(
    alice: User, timeout: str
) -> None:
    client = AsyncClient()
    record = await asign_in(client)
    await aaged(record, **limit_ages(timeout, SECOND, idle=IDLE, absolute=ABSOLUTE))
    response = await client.post(
        "/accounts/login/", {"username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 302
    assert response["Location"] == "/peek/"
    assert user_of(await client.get("/peek/")) == "alice"
    assert (await arow_of(client)).pk != record.pk
    assert await atimeout_events() == [(record.pk, alice.pk, timeout)]
    assert (await client.get("/messages/")).json()["messages"] == []


@pytest.mark.parametrize("timeout", TIMEOUTS)
def test_expired_policy_limit_sign_in_post_signs_in_sync(
    alice: User, timeout: str
) -> None:
    # Stored deadlines still ahead: the middleware's policy check ends it.
    client = Client()
    record = sign_in(client)
    ages = limit_ages(timeout, SECOND, idle=LOWER_IDLE, absolute=LOWER_ABSOLUTE)
    aged(record, **ages)
    with override_settings(**LOWER):
        page = client.get("/accounts/login/")
        assert page.json()["messages"] == [
            {"level": "warning", "text": EXPIRED_TEXT[timeout]}
        ]
        response = client.post(
            "/accounts/login/", {"username": "alice", "password": PASSWORD}
        )
        assert response.status_code == 302
        assert user_of(client.get("/peek/")) == "alice"
    assert timeout_events() == [(record.pk, alice.pk, timeout)]


@pytest.mark.parametrize("timeout", TIMEOUTS)
async def test_expired_policy_limit_sign_in_post_signs_in_async(
    alice: User, timeout: str
) -> None:
    client = AsyncClient()
    record = await asign_in(client)
    ages = limit_ages(timeout, SECOND, idle=LOWER_IDLE, absolute=LOWER_ABSOLUTE)
    await aaged(record, **ages)
    with override_settings(**LOWER):
        response = await client.post(
            "/accounts/login/", {"username": "alice", "password": PASSWORD}
        )
        assert response.status_code == 302
        assert user_of(await client.get("/peek/")) == "alice"
    assert await atimeout_events() == [(record.pk, alice.pk, timeout)]
    assert (await client.get("/messages/")).json()["messages"] == []


def test_expired_session_failed_sign_in_post_keeps_message(alice: User) -> None:
    client = Client()
    record = sign_in(client)
    aged(record, idle=IDLE + SECOND, signed_in=HOUR)
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": "wrong"}
    )
    assert response.status_code == 200
    assert response.json()["user"] == ""
    assert deletes_session_cookie(response)
    assert timeout_events() == [(record.pk, alice.pk, "idle")]
    assert client.get("/messages/").json()["messages"] == [
        {"level": "warning", "text": EXPIRED_TEXT["idle"]}
    ]


@pytest.mark.parametrize("headers", [{}, JSON], ids=["html", "json"])
def test_expired_session_elsewhere_still_answered_by_middleware(
    alice: User, headers: dict[str, str]
) -> None:
    # Only the sign-in page lets an expired session through.
    client = Client()
    record = sign_in(client)
    aged(record, idle=IDLE + SECOND, signed_in=HOUR)
    response = client.post("/login/", {"username": "alice"}, headers=headers)
    assert response.status_code == (401 if headers else 302)


def test_expired_session_sign_in_url_on_other_host_not_matched(
    alice: User, settings: Any
) -> None:
    settings.LOGIN_URL = "https://id.example.com/accounts/login/"
    client = Client()
    record = sign_in(client)
    aged(record, idle=IDLE + SECOND, signed_in=HOUR)
    response = client.get("/accounts/login/")
    assert response.status_code == 302
    assert response["Location"].startswith("https://id.example.com/accounts/login/")


# -- Stale keys under SESSIONKIT_ON_STALE_KEY = "log" ---------------------------------


def stale_key_of(client: Client) -> str:
    """Rotate the signed-in session of ``client`` periodically; return its
    previous key, now past its grace window."""
    old = key_of(client)
    past = timezone.now() - 16 * MINUTE
    Session.objects.update(rotated_at=past, authenticated_at=past)
    forget_cached_entries()
    assert user_of(client.get("/peek/")) == "alice"
    assert key_of(client) != old
    Session.objects.update(rotated_at=timezone.now() - 2 * MINUTE)
    forget_cached_entries()
    return old


async def astale_key_of(client: AsyncClient) -> str:
    old = key_of(client)
    past = timezone.now() - 16 * MINUTE
    await Session.objects.aupdate(rotated_at=past, authenticated_at=past)
    await aforget_cached_entries()
    assert user_of(await client.get("/peek/")) == "alice"
    assert key_of(client) != old
    await Session.objects.aupdate(rotated_at=timezone.now() - 2 * MINUTE)
    await aforget_cached_entries()
    return old


#: ``SESSIONKIT_ACTIVITY_RESOLUTION`` of the test settings (its default).
RESOLUTION = MINUTE


def anomalies() -> list[tuple[int | None, str]]:
    return [
        (event.session_id, event.reason)
        for event in SessionEvent.objects.filter(
            kind=SessionEvent.Kind.ANOMALY
        ).order_by("pk")
    ]


aanomalies = sync_to_async(anomalies)


def push_back_anomalies(by: timedelta) -> None:
    SessionEvent.objects.filter(kind=SessionEvent.Kind.ANOMALY).update(
        created_at=F("created_at") - by
    )


apush_back_anomalies = sync_to_async(push_back_anomalies)


@override_settings(SESSIONKIT_ON_STALE_KEY="log")
def test_stale_key_logged_once_per_resolution_sync(alice: User) -> None:
    client = Client()
    record = sign_in(client)
    old = stale_key_of(client)
    for _ in range(10):
        stale = Client()
        stale.cookies[COOKIE] = old
        assert user_of(stale.get("/peek/")) == ""
    assert anomalies() == [(record.pk, "stale_key")]
    push_back_anomalies(RESOLUTION - SECOND)
    stale.cookies[COOKIE] = old
    stale.get("/peek/")
    assert len(anomalies()) == 1
    push_back_anomalies(2 * SECOND)
    stale.cookies[COOKIE] = old
    stale.get("/peek/")
    assert anomalies() == [(record.pk, "stale_key")] * 2
    # Logged only: the user's own browser is still signed in.
    assert user_of(client.get("/peek/")) == "alice"


@override_settings(SESSIONKIT_ON_STALE_KEY="log")
async def test_stale_key_logged_once_per_resolution_async(alice: User) -> None:
    client = AsyncClient()
    record = await asign_in(client)
    old = await astale_key_of(client)
    for _ in range(10):
        stale = AsyncClient()
        stale.cookies[COOKIE] = old
        assert user_of(await stale.get("/peek/")) == ""
    assert await aanomalies() == [(record.pk, "stale_key")]
    await apush_back_anomalies(RESOLUTION + SECOND)
    stale.cookies[COOKIE] = old
    await stale.get("/peek/")
    assert await aanomalies() == [(record.pk, "stale_key")] * 2


@override_settings(SESSIONKIT_ON_STALE_KEY="log", SESSIONKIT_ACTIVITY_RESOLUTION=0)
def test_stale_key_logged_once_per_minute_without_resolution(alice: User) -> None:
    client = Client()
    record = sign_in(client)
    old = stale_key_of(client)
    for _ in range(3):
        stale = Client()
        stale.cookies[COOKIE] = old
        stale.get("/peek/")
    assert anomalies() == [(record.pk, "stale_key")]
    push_back_anomalies(MINUTE)
    stale.cookies[COOKIE] = old
    stale.get("/peek/")
    assert len(anomalies()) == 2
