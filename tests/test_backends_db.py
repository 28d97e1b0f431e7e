"""The database store: hashed keys, metadata columns, no resurrection."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import User
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.management import call_command
from django.db import IntegrityError, connection
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_sessionkit.backends.db import SessionStore, SignIn
from django_sessionkit.keys import hash_key
from django_sessionkit.models import Session, SessionEvent
from tests.helpers import PASSWORD, acaptured_queries

pytestmark = pytest.mark.django_db

COOKIE = settings.SESSION_COOKIE_NAME


def sign_in(client: Client, path: str = "/login/", **extra: Any) -> str:
    response = client.post(path, {"username": "alice", "password": PASSWORD}, **extra)
    assert response.status_code == 200, response.content
    return str(client.cookies[COOKIE].value)


class AsyncClientFrom(AsyncClient):
    """An AsyncClient whose requests come from ``ip`` (ASGI scope "client")."""

    def __init__(self, ip: str) -> None:
        super().__init__()
        self.ip = ip

    def _base_scope(self, **request: Any) -> dict[str, Any]:
        scope: dict[str, Any] = super()._base_scope(**request)
        scope["client"] = [self.ip, 4321]
        return scope


def all_database_text() -> Iterator[tuple[str, str]]:
    """Every value of every column of every table, as text."""
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            for row in cursor.fetchall():
                for value in row:
                    yield table, str(value)


# -- Keys never reach the database --------------------------------------------


def test_raw_key_nowhere_in_database_after_sign_in(client: Client, alice: User) -> None:
    with CaptureQueriesContext(connection) as queries:
        key = sign_in(client)
        client.get("/peek/")
        client.get("/put/?colour=blue")
    assert len(key) == 32
    assert Session.objects.get().key_hash == hash_key(key)
    leaks = [table for table, text in all_database_text() if key in text]
    assert leaks == []
    assert not [q["sql"] for q in queries.captured_queries if key in q["sql"]]


def test_sign_in_links_user_and_records_metadata(client: Client, alice: User) -> None:
    before = timezone.now()
    sign_in(client, REMOTE_ADDR="198.51.100.7", HTTP_USER_AGENT="TestBrowser/1.0")
    row = Session.objects.get()
    assert row.user == alice
    assert row.authenticated_at is not None and row.authenticated_at >= before
    assert row.ip == "198.51.100.7"
    assert row.user_agent == "TestBrowser/1.0"
    assert row.last_seen_at >= before
    # Deadlines of the default policy, counted from the sign-in.
    assert row.expire_date == row.authenticated_at + timedelta(minutes=30)
    assert row.absolute_expire_date == row.authenticated_at + timedelta(hours=12)
    assert client.get("/peek/").json()["user"] == "alice"


async def test_async_sign_in_links_user(alice: User) -> None:
    async_client = AsyncClientFrom("192.0.2.1")
    response = await async_client.post(
        "/alogin/", {"username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 200
    key = async_client.cookies[COOKIE].value
    row = await Session.objects.aget(key_hash=hash_key(key))
    assert row.user_id == alice.pk
    assert row.authenticated_at is not None
    assert row.ip == "192.0.2.1"


async def _alogin_on_store(user: User) -> SessionStore:
    from django.contrib.auth import alogin

    request = RequestFactory().post("/", REMOTE_ADDR="192.0.2.9")
    store = SessionStore()
    request.session = store
    user.backend = "django.contrib.auth.backends.ModelBackend"  # type: ignore[attr-defined]
    await alogin(request, user)
    await store.asave()
    return store


async def test_alogin_then_asave_links_user(alice: User) -> None:
    store = await _alogin_on_store(alice)
    row = await Session.objects.aget(key_hash=hash_key(store.session_key or ""))
    assert row.user_id == alice.pk
    assert row.ip == "192.0.2.9"
    assert row.authenticated_at is not None


def test_signing_in_as_another_user_starts_a_new_row(
    client: Client, alice: User, bob: User
) -> None:
    sign_in(client)
    first = Session.objects.get()
    response = client.post("/login/", {"username": "bob", "password": PASSWORD})
    assert response.status_code == 200
    second = Session.objects.get()
    assert second.pk != first.pk
    assert second.user is not None and second.user.username == "bob"


def test_sign_out_deletes_row(client: Client, alice: User) -> None:
    sign_in(client)
    client.post("/logout/")
    assert not Session.objects.exists()


# -- Malformed and unknown cookies --------------------------------------------

MALFORMED = {
    "empty": "",
    "too_short": "abc123",
    "almost": "a" * 31,
    "too_long": "a" * 33,
    "ten_kb": "a" * 10_240,
    "upper_case": "A" * 32,
    "punctuation": "a" * 31 + ";",
    "path": "../" * 10 + "aa",
    "nul": "a" * 16 + "\x00" + "a" * 15,
    "non_ascii": "é" * 32,
    "newline": "a" * 31 + "\n",
}


@pytest.mark.parametrize("value", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_key_is_no_session_without_query(value: str) -> None:
    store = SessionStore(value)
    with CaptureQueriesContext(connection) as queries:
        assert store.load() == {}
        assert store.exists(value) is False
        store.delete(value)
    assert len(queries) == 0
    assert store.session_key is None


@pytest.mark.parametrize("value", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_key_is_no_session_async(value: str) -> None:
    store = SessionStore(value)
    assert await store.aload() == {}
    assert await store.aexists(value) is False
    await store.adelete(value)
    assert store.session_key is None


@pytest.mark.parametrize("value", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_cookie_through_middleware(value: str) -> None:
    def view(request: HttpRequest) -> HttpResponse:
        assert request.session.get("anything") is None
        return HttpResponse("ok")

    request = RequestFactory().get("/")
    request.COOKIES[COOKIE] = value
    with CaptureQueriesContext(connection) as queries:
        response = SessionMiddleware(view)(request)
    assert response.status_code == 200
    assert len(queries) == 0
    assert not Session.objects.exists()


def test_anonymous_visitor_creates_no_row(client: Client) -> None:
    for path in ("/nothing/", "/peek/", "/admin/login/"):
        assert client.get(path).status_code == 200
    assert not Session.objects.exists()
    assert COOKIE not in client.cookies


def test_unknown_well_formed_cookie_creates_no_row(client: Client) -> None:
    client.cookies[COOKIE] = "q" * 32
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/peek/").json()["data"] == {}
    # One indexed lookup answers both "a session's key?" and "the previous
    # key of a rotation?"; nothing written, through the whole middleware.
    assert len(queries) == 1
    assert all(q["sql"].startswith("SELECT") for q in queries.captured_queries)
    assert not Session.objects.exists()


async def test_unknown_well_formed_cookie_costs_one_query_async() -> None:
    client = AsyncClient()
    client.cookies[COOKIE] = "q" * 32
    async with acaptured_queries() as queries:
        response = await client.get("/peek/")
    assert response.json()["data"] == {}
    assert len(queries) == 1
    assert queries.captured_queries[0]["sql"].startswith("SELECT")


def test_unknown_key_load_is_one_query() -> None:
    store = SessionStore("q" * 32)
    with CaptureQueriesContext(connection) as queries:
        assert store.load() == {}
    assert len(queries) == 1
    assert store.session_key is None
    assert store.ended_record is None


async def test_unknown_key_aload_is_one_query() -> None:
    store = SessionStore("q" * 32)
    async with acaptured_queries() as queries:
        assert await store.aload() == {}
    assert len(queries) == 1
    assert store.session_key is None


def test_live_key_load_is_one_query_and_prefers_current_key() -> None:
    store = SessionStore()
    store["x"] = 1
    store.save()
    key = store.session_key
    assert key is not None
    # Another row naming this key as its previous one must not be taken for
    # it: the row whose current key it is wins.
    other = SessionStore()
    other["x"] = 2
    other.save()
    Session.objects.filter(key_hash=hash_key(other.session_key or "")).update(
        previous_key_hash=hash_key(key)
    )
    loaded = SessionStore(key)
    with CaptureQueriesContext(connection) as queries:
        assert loaded.load() == {"x": 1}
    assert len(queries) == 1
    assert loaded.session_key == key


def test_unknown_cookie_is_never_adopted(client: Client) -> None:
    planted = "q" * 32
    client.cookies[COOKIE] = planted
    client.get("/put/?a=1")
    row = Session.objects.get()
    assert row.key_hash != hash_key(planted)
    assert client.cookies[COOKIE].value != planted


def test_expired_session_is_not_loaded() -> None:
    store = SessionStore()
    store["x"] = 1
    store.save()
    key = store.session_key
    Session.objects.update(absolute_expire_date=timezone.now() - timedelta(seconds=1))
    assert SessionStore(key).load() == {}
    Session.objects.update(
        absolute_expire_date=None, expire_date=timezone.now() - timedelta(seconds=1)
    )
    again = SessionStore(key)
    assert again.load() == {}
    assert again.session_key is None


# -- No resurrection ----------------------------------------------------------


def test_save_after_concurrent_delete_fails() -> None:
    first = SessionStore()
    first["x"] = 1
    first.save()
    SessionStore(first.session_key).delete()
    first["x"] = 2
    with pytest.raises(UpdateError):
        first.save()
    assert not Session.objects.exists()


async def test_asave_after_concurrent_delete_fails() -> None:
    first = SessionStore()
    await first.aset("x", 1)
    await first.asave()
    await SessionStore(first.session_key).adelete()
    await first.aset("x", 2)
    with pytest.raises(UpdateError):
        await first.asave()
    assert not await Session.objects.aexists()


def test_slow_request_cannot_resurrect_signed_out_session(
    client: Client, alice: User
) -> None:
    key = sign_in(client)

    def slow_view(request: HttpRequest) -> HttpResponse:
        request.session["cart"] = "late write"
        # Meanwhile, another tab signs out.
        other = Client()
        other.cookies[COOKIE] = key
        other.post("/logout/")
        return HttpResponse("ok")

    request = RequestFactory().get("/")
    request.COOKIES[COOKIE] = key
    with pytest.raises(SessionInterrupted):
        SessionMiddleware(slow_view)(request)
    assert not Session.objects.exists()


def test_cycle_key_of_deleted_session_does_not_recreate_it() -> None:
    store = SessionStore()
    store["_auth_user_id"] = "1"
    store.save()
    store.load()
    SessionStore(store.session_key).delete()
    with pytest.raises(SessionInterrupted):
        store.cycle_key()
    assert not Session.objects.exists()


async def test_acycle_key_of_deleted_session_does_not_recreate_it() -> None:
    store = SessionStore()
    await store.aset("x", 1)
    await store.asave()
    await SessionStore(store.session_key).adelete()
    with pytest.raises(SessionInterrupted):
        await store.acycle_key()
    assert not await Session.objects.aexists()


# -- Rotation keeps identity ----------------------------------------------------


def _saved_store() -> tuple[SessionStore, Session]:
    store = SessionStore()
    store["colour"] = "blue"
    store.save()
    row = Session.objects.get()
    SessionEvent.objects.create(kind=SessionEvent.Kind.LOGIN, session_id=row.pk)
    return store, row


def test_cycle_key_keeps_id_and_history() -> None:
    store, row = _saved_store()
    old_key = store.session_key
    with CaptureQueriesContext(connection) as queries:
        store.cycle_key()
    assert len(queries) == 1  # one UPDATE, no INSERT + DELETE
    assert store.session_key != old_key
    assert store.modified
    rotated = Session.objects.get()
    assert rotated.pk == row.pk
    assert rotated.created_at == row.created_at
    assert rotated.key_hash == hash_key(store.session_key or "")
    assert SessionEvent.objects.get().session_id == rotated.pk
    assert SessionStore(old_key).load() == {}
    assert SessionStore(store.session_key).load() == {"colour": "blue"}


async def test_acycle_key_keeps_id_and_history() -> None:
    store, row = await sync_to_async(_saved_store)()
    old_key = store.session_key
    await store.acycle_key()
    rotated = await Session.objects.aget()
    assert rotated.pk == row.pk
    assert store.session_key != old_key
    assert await SessionStore(old_key).aload() == {}
    assert await SessionStore(store.session_key).aload() == {"colour": "blue"}


def test_sign_in_rotates_anonymous_session_in_place(
    client: Client, alice: User
) -> None:
    client.get("/put/?basket=3")
    anonymous = Session.objects.get()
    old_key = client.cookies[COOKIE].value
    new_key = sign_in(client)
    signed_in = Session.objects.get()
    assert new_key != old_key
    assert signed_in.pk == anonymous.pk
    assert signed_in.user == alice
    assert client.get("/peek/").json()["data"]["basket"] == "3"


def test_cycle_key_without_row_creates_one() -> None:
    store = SessionStore()
    store["x"] = 1
    store.cycle_key()
    assert store.session_key is not None
    assert Session.objects.get().key_hash == hash_key(store.session_key)


# -- Cleanup --------------------------------------------------------------------


def _make_sessions(live: int, expired: int, past_absolute: int) -> None:
    now = timezone.now()
    rows = []
    for i in range(live + expired + past_absolute):
        rows.append(
            Session(
                key_hash=hash_key(f"{i:032d}"),
                session_data="",
                expire_date=now
                + (
                    timedelta(hours=1)
                    if i < live + past_absolute
                    else -timedelta(hours=1)
                ),
                absolute_expire_date=(now - timedelta(seconds=1))
                if live <= i < live + past_absolute
                else None,
            )
        )
    Session.objects.bulk_create(rows)


def test_clearsessions_deletes_expired_in_batches(settings: Any) -> None:
    settings.SESSIONKIT_CLEANUP_BATCH_SIZE = 3
    _make_sessions(live=2, expired=9, past_absolute=2)
    with CaptureQueriesContext(connection) as queries:
        call_command("clearsessions")
    deletes = [q for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 4  # 11 expired rows, 3 per batch
    assert Session.objects.count() == 2
    assert not Session.objects.filter(absolute_expire_date__isnull=False).exists()


async def test_aclear_expired_deletes_in_batches(settings: Any) -> None:
    settings.SESSIONKIT_CLEANUP_BATCH_SIZE = 4
    await sync_to_async(_make_sessions)(live=3, expired=7, past_absolute=1)
    await SessionStore.aclear_expired()
    assert await Session.objects.acount() == 3


# -- Nothing of the key in a shared cache ----------------------------------------


def test_raw_key_never_reaches_redis(
    client: Client, alice: User, redis_url: str, settings: Any
) -> None:
    import redis
    from django.core.cache import caches

    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": redis_url,
        }
    }
    caches["default"].set("probe", "written through django-redis")
    key = sign_in(client)
    client.get("/put/?colour=blue")
    client.get("/peek/")
    server = redis.Redis.from_url(redis_url)
    names = list(server.scan_iter(count=1000))
    assert names, "the cache was not in use"
    for name in names:
        assert key.encode() not in name
        value = server.dump(name) or b""
        assert key.encode() not in value
    caches["default"].clear()


# -- A row that cannot be read, a user that is gone ---------------------------

sqlite_only = pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="only SQLite stores text in a timestamp column",
)
NOT_A_DATE = {"word": "garbage", "impossible": "2026-13-45 10:00:00", "empty": ""}
DATE_COLUMNS = ["expire_date", "absolute_expire_date", "authenticated_at"]


def spoil(column: str, value: str) -> None:
    """Write ``value``, which is no timestamp, into every session's ``column``."""
    table = connection.ops.quote_name(Session._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {column} = %s", [value])  # noqa: S608


@sqlite_only
@pytest.mark.parametrize("value", NOT_A_DATE.values(), ids=NOT_A_DATE.keys())
@pytest.mark.parametrize("column", DATE_COLUMNS)
def test_timestamp_not_a_date_is_a_dead_session(
    client: Client, alice: User, column: str, value: str, caplog: Any
) -> None:
    sign_in(client)
    spoil(column, value)
    # A 500 would raise here (the test client re-raises the view's error).
    response = client.get("/peek/")
    assert response.status_code == 200
    assert response.json() == {"user": "", "data": {}}
    assert "not a date" in caplog.text
    # And again: no request with that cookie is ever signed in again.
    assert user_of_response(client.get("/peek/")) == ""
    call_command("clearsessions")
    assert not Session.objects.exists()


@sqlite_only
@pytest.mark.parametrize("column", DATE_COLUMNS)
async def test_timestamp_not_a_date_is_a_dead_session_async(
    alice: User, column: str
) -> None:
    client = AsyncClient()
    response = await client.post(
        "/alogin/", {"username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 200
    await sync_to_async(spoil)(column, "garbage")
    response = await client.get("/peek/")
    assert response.status_code == 200
    assert response.json() == {"user": "", "data": {}}
    await SessionStore.aclear_expired()
    assert not await Session.objects.aexists()


def user_of_response(response: HttpResponse) -> str:
    user: str = response.json()["user"]
    return user


def _anonymous_row() -> SessionStore:
    store = SessionStore()
    store["x"] = 1
    store.save()
    return store


@pytest.mark.django_db(transaction=True)
def test_save_naming_deleted_user_fails_as_ended_session(bob: User) -> None:
    store = _anonymous_row()
    store[SESSION_KEY] = str(bob.pk)
    bob.delete()  # as in a request racing this one
    with pytest.raises(UpdateError):
        store.save()
    row = Session.objects.get()
    assert row.user_id is None
    assert row.get_decoded() == {"x": 1}


@pytest.mark.django_db(transaction=True)
async def test_asave_naming_deleted_user_fails_as_ended_session(bob: User) -> None:
    store = SessionStore()
    store["x"] = 1
    await store.asave()
    store[SESSION_KEY] = str(bob.pk)
    await bob.adelete()
    with pytest.raises(UpdateError):
        await store.asave()
    row = await Session.objects.aget()
    assert row.user_id is None


@pytest.mark.django_db(transaction=True)
def test_new_session_naming_deleted_user_is_never_written(bob: User) -> None:
    store = SessionStore()
    store[SESSION_KEY] = str(bob.pk)
    bob.delete()
    with pytest.raises(UpdateError):
        store.save()
    assert not Session.objects.exists()


@pytest.mark.django_db(transaction=True)
async def test_anew_session_naming_deleted_user_is_never_written(bob: User) -> None:
    store = SessionStore()
    store[SESSION_KEY] = str(bob.pk)
    await bob.adelete()
    with pytest.raises(UpdateError):
        await store.asave()
    assert not await Session.objects.aexists()


@pytest.mark.django_db(transaction=True)
def test_request_saving_deleted_user_is_interrupted_not_500(bob: User) -> None:

    def view(request: HttpRequest) -> HttpResponse:
        request.session[SESSION_KEY] = str(bob.pk)
        User.objects.filter(pk=bob.pk).delete()
        return HttpResponse("ok")

    request = RequestFactory().get("/")
    # What Django's handler answers with 400 Bad Request.
    with pytest.raises(SessionInterrupted):
        SessionMiddleware(view)(request)
    assert not Session.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_integrity_error_of_a_live_user_is_not_hidden(alice: User) -> None:
    # Only a missing user makes a failed write an ended session: another
    # integrity error is a bug to see.
    store = _anonymous_row()
    store._sign_in = SignIn(at=timezone.now(), ip=None, user_agent="", device_id=0)
    store[SESSION_KEY] = str(alice.pk)
    with pytest.raises(IntegrityError):
        store.save()
