"""The cached store: Redis serves reads, the database decides validity.

Every test runs the store against a real Redis (``cached_engine``) and the
test database; requests go through the real middleware stack, synchronously
(``Client``) and asynchronously (``AsyncClient``). Races are made
deterministic by a store (this module's ``SessionStore``) that acts in the
store's ``refilling()`` hook, between the database read of a cache miss and
the refill of the cache, and by ``pre_delete`` receivers that act between a
revocation's read of the keys and its delete. Round trips are counted on
the client (``CountingConnection``), commands on the server (``INFO
commandstats``).
"""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from io import StringIO
from typing import Any, ClassVar

import pytest
import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import User
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted
from django.core.cache import BaseCache, caches
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models.signals import pre_delete
from django.http import HttpResponseBase
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_sessionkit.backends import (
    cache_access,
    cache_entry,
    cache_health,
    cached_db,
)
from django_sessionkit.keys import hash_key, new_key, successor
from django_sessionkit.lifecycle import rotate_at_save
from django_sessionkit.models import CachePurge, Session, SessionEvent
from django_sessionkit.revocation import (
    arevoke_all_sessions,
    arevoke_session,
    arevoke_user_sessions,
    revoke_all_sessions,
    revoke_session,
    revoke_user_sessions,
)
from tests.helpers import (
    PASSWORD,
    CountingConnection,
    acaptured_queries,
    cached_engine_on,
    carrying,
    events,
    postgresql_only,
    session_cache_config,
    set_cookie,
    user_of,
)
from tests.servers import RedisProcess

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("cached_engine")]

#: The two ways the store keeps tombstones (``cache_access.access``): django-redis
#: (one key per session, compare-and-set writes) and Django's own Redis cache
#: (a tombstone key of its own beside the entry).
CACHE_BACKENDS = ["django-redis", "django"]


@pytest.fixture(params=CACHE_BACKENDS)
def cached_engine(
    request: pytest.FixtureRequest, settings: Any, redis_url: str
) -> Iterator[str]:
    """Every test of this module runs on both kinds of session cache."""
    config = session_cache_config(redis_url)
    if request.param == "django":
        config = {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "OPTIONS": {
                "socket_connect_timeout": 0.5,
                "socket_timeout": 0.5,
                "connection_class": CountingConnection,
            },
        }
    with cached_engine_on(settings, redis_url, config):
        yield redis_url


def guarded() -> bool:
    """Whether the session cache takes compare-and-set writes (django-redis)."""
    return isinstance(cache_access.access(session_cache()), cache_access.Guarded)


plain_only = pytest.mark.usefixtures("plain_cache")


@pytest.fixture
def plain_cache() -> None:
    if guarded():
        pytest.skip("only caches without compare-and-set have a tombstone key")


def django_redis_only() -> None:
    if not guarded():
        pytest.skip("django-redis only")


COOKIE = settings.SESSION_COOKIE_NAME
Kind = SessionEvent.Kind
JSON = {"Accept": "application/json"}
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
IDLE = timedelta(minutes=30)
ABSOLUTE = timedelta(hours=12)
# Quoted, so that "sessionkit_sessionevent" does not count.
SESSION_TABLE = '"sessionkit_session"'
USER_TABLE = '"auth_user"'
JSON_SERIALIZER = "django_redis.serializers.json.JSONSerializer"


# -- A store with a pause between a miss's database read and its refill ---------


class SessionStore(cached_db.SessionStore):
    """The cached store, selected with ``SESSION_ENGINE = __name__`` (``racing``).

    ``between`` runs once, in ``refilling()``: after ``load()`` read the row
    from the database, before it writes the cache. ``abetween`` is its twin,
    awaited in ``arefilling()`` by ``aload()``. ``calls`` notes every hook
    call. Its class name is the cached store's, so that both read the data
    each other signed.
    """

    between: ClassVar[Callable[[Session], None] | None] = None
    abetween: ClassVar[Callable[[Session], Awaitable[None]] | None] = None

    def __init__(self, session_key: str | None = None) -> None:
        #: Every call of the store's hooks, in order (see "Hooks" below).
        self.calls: list[tuple[Any, ...]] = []
        super().__init__(session_key)

    def refilling(self, record: Session) -> None:
        self.calls.append(("refilling", record.key_hash))
        hook, SessionStore.between = SessionStore.between, None
        if hook is not None:
            hook(record)
        super().refilling(record)

    async def arefilling(self, record: Session) -> None:
        self.calls.append(("arefilling", record.key_hash))
        hook, SessionStore.abetween = SessionStore.abetween, None
        if hook is not None:
            await hook(record)
        await super().arefilling(record)

    def row_written(
        self,
        values: dict[str, Any] | None,
        *,
        replaced: str | None = None,
        complete: bool = True,
    ) -> None:
        self.calls.append(("row_written", replaced, complete))
        super().row_written(values, replaced=replaced, complete=complete)

    async def arow_written(
        self,
        values: dict[str, Any] | None,
        *,
        replaced: str | None = None,
        complete: bool = True,
    ) -> None:
        self.calls.append(("arow_written", replaced, complete))
        await super().arow_written(values, replaced=replaced, complete=complete)

    def row_removed(self, key_hash: str) -> None:
        self.calls.append(("row_removed", key_hash))
        super().row_removed(key_hash)

    async def arow_removed(self, key_hash: str) -> None:
        self.calls.append(("arow_removed", key_hash))
        await super().arow_removed(key_hash)


@pytest.fixture
def racing(settings: Any) -> Iterator[type[SessionStore]]:
    settings.SESSION_ENGINE = __name__
    SessionStore.between = SessionStore.abetween = None
    yield SessionStore
    SessionStore.between = SessionStore.abetween = None


class ReplicaRouter:
    """Sends reads of session rows to a replica that does not exist."""

    def db_for_read(self, model: type[Any], **hints: Any) -> str | None:
        return "replica" if model in (Session, CachePurge) else None

    def db_for_write(self, model: type[Any], **hints: Any) -> str | None:
        return DEFAULT_DB_ALIAS


# -- Fixtures and helpers ---------------------------------------------------------


@pytest.fixture(autouse=True)
def on_cached_engine(cached_engine: str) -> str:
    """Every test here runs on the cached store, on the private Redis."""
    return cached_engine


@pytest.fixture
def server(cached_engine: str) -> redis.Redis:
    """A plain client of the session cache's Redis (its calls are not counted)."""
    return redis.Redis.from_url(cached_engine)


def session_cache() -> BaseCache:
    return caches[settings.SESSION_CACHE_ALIAS]


def redis_name(name: str) -> str:
    """The Redis key of the cache key ``name`` (with Django's prefix and version)."""
    return session_cache().make_key(name)


def sign_in(client: Client, username: str = "alice") -> str:
    response = client.post("/login/", {"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.content
    return str(client.cookies[COOKIE].value)


async def asign_in(client: AsyncClient, username: str = "alice") -> str:
    response = await client.post(
        "/alogin/", {"username": username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.content
    return str(client.cookies[COOKIE].value)


def signed_in(count: int, username: str = "alice") -> list[tuple[Client, str]]:
    """``count`` browsers signed in as ``username``, each with one request made."""
    browsers = []
    for _ in range(count):
        client = Client()
        key = sign_in(client, username)
        assert user_of(client.get("/peek/")) == username
        browsers.append((client, key))
    return browsers


def acarrying(key: str) -> AsyncClient:
    client = AsyncClient()
    client.cookies[COOKIE] = key
    return client


def store_of(response: HttpResponseBase) -> cached_db.SessionStore:
    """The session store that served ``response``."""
    request = getattr(response, "wsgi_request", None) or response.asgi_request  # type: ignore[attr-defined]
    store: cached_db.SessionStore = request.session
    return store


def row_of(key: str) -> Session:
    return Session.objects.get(key_hash=hash_key(key))


arow_of = sync_to_async(row_of)


def entry_of(key: str) -> Any:
    """What the cache holds under the entry key of ``key`` (None: nothing)."""
    return session_cache().get(cache_entry.entry_key(hash_key(key)))


def cached_row(key: str) -> Session | None:
    """The row the cache would serve for ``key``, if its entry is an entry."""
    hit = cache_entry.unpack(entry_of(key), DEFAULT_DB_ALIAS)
    return hit[0] if hit is not None else None


def cached_data(key: str) -> dict[str, Any] | None:
    """The session data the cache would serve for ``key``."""
    hit = cache_entry.unpack(entry_of(key), DEFAULT_DB_ALIAS)
    return hit[1] if hit is not None else None


def tombstoned(key: str) -> bool:
    """Whether ``key`` has a tombstone: its entry overwritten, and (for caches
    without compare-and-set) the tombstone key written."""
    if entry_of(key) != cache_entry.GONE:
        return False
    if guarded():
        return True
    mark = session_cache().get(cache_entry.tombstone_key(hash_key(key)))
    return bool(mark == cache_entry.GONE)


def put_entry(record: Session, **columns: Any) -> None:
    """Write ``record`` (with ``columns`` changed) as its entry, kept for 10 min."""
    values = {**cache_entry.row_values(record), **columns}
    entry = cache_entry.pack(values, record.get_decoded(), Session)
    session_cache().set(cache_entry.entry_key(values["key_hash"]), entry, 600)


def drop_entries(server: redis.Redis) -> None:
    """Remove every entry (tombstones stay), as when their time runs out."""
    for name in server.scan_iter(match="*sessionkit:s:*"):
        if server.get(name) != str(cache_entry.GONE).encode():
            server.delete(name)


def read_command() -> str:
    """What one read of the cached store runs: a GET, or an MGET of the entry
    and the tombstone key."""
    return "GET" if guarded() else "MGET"


def update_row(key: str, **columns: Any) -> Session:
    Session.objects.filter(key_hash=hash_key(key)).update(**columns)
    return row_of(key)


aupdate_row = sync_to_async(update_row)


def past_deadline(timeout: str, now: datetime) -> dict[str, Any]:
    """Columns that put a signed-in session one minute past its ``timeout``."""
    if timeout == "idle":
        last_seen_at = now - IDLE - MINUTE
        signed_in_at = now - HOUR
    else:
        last_seen_at = now - MINUTE
        signed_in_at = now - ABSOLUTE - MINUTE
    return {
        "authenticated_at": signed_in_at,
        "last_seen_at": last_seen_at,
        "rotated_at": last_seen_at,
        "expire_date": last_seen_at + IDLE,
        "absolute_expire_date": signed_in_at + ABSOLUTE,
    }


def inactive_for(ago: timedelta, now: datetime) -> dict[str, Any]:
    """Columns of a session signed in and last active ``ago``, not yet rotated."""
    return {
        "authenticated_at": now - ago,
        "last_seen_at": now - ago,
        "rotated_at": now - ago,
        "expire_date": now - ago + IDLE,
        "absolute_expire_date": now - ago + ABSOLUTE,
    }


def statements(queries: CaptureQueriesContext) -> list[str]:
    return [query["sql"] for query in queries.captured_queries]


def session_sql(queries: CaptureQueriesContext) -> list[str]:
    return [sql for sql in statements(queries) if SESSION_TABLE in sql]


def session_updates(queries: CaptureQueriesContext) -> list[str]:
    return [
        sql for sql in session_sql(queries) if sql.lstrip().upper().startswith("UPDATE")
    ]


def reset_counts(server: redis.Redis) -> None:
    """Start counting round trips (client side) and commands (server side)."""
    CountingConnection.reset()
    server.config_resetstat()


def commands_run(server: redis.Redis) -> list[str]:
    """The commands Redis ran since ``reset_counts``, by name, counted.

    Read from the server's own statistics (``INFO commandstats``): this
    module's plain client only adds the ``CONFIG RESETSTAT`` left out here.
    """
    names: list[str] = []
    for stat, values in sorted(server.info("commandstats").items()):
        name = stat.removeprefix("cmdstat_").upper()
        if name not in ("CONFIG|RESETSTAT", "INFO"):
            names += [name] * int(values["calls"])
    return names


def sets(commands: list[str]) -> list[str]:
    """The commands of a pipeline without its MULTI/EXEC frame."""
    return [c for c in commands if c not in ("MULTI", "EXEC")]


def tombstone_writes(sessions: int) -> list[str]:
    """The commands (sorted by name) of tombstoning ``sessions`` keys: django-redis
    sets each entry; Django's Redis cache sets entries and tombstone keys with
    one MSET and an EXPIRE each."""
    if guarded():
        return ["SET"] * sessions
    return ["EXPIRE"] * 2 * sessions + ["MSET"]


def timeout_events() -> list[tuple[int | None, str]]:
    return [(e.session_id, e.reason) for e in events(Kind.TIMEOUT)]


# -- The read path: one GET, no session SQL ----------------------------------------


def test_read_only_request_costs_one_round_trip_and_no_session_sql(
    client: Client, alice: User, server: redis.Redis
) -> None:
    sign_in(client)
    assert user_of(client.get("/peek/")) == "alice"
    reset_counts(server)
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/peek/")
    assert user_of(response) == "alice"
    assert CountingConnection.round_trips == 1
    assert commands_run(server) == [read_command()]
    assert session_sql(queries) == []
    # Only AuthenticationMiddleware's user lookup.
    assert statements(queries)
    assert all(USER_TABLE in sql for sql in statements(queries))
    assert store_of(response).from_cache is True
    assert set_cookie(response) is None


async def test_read_only_request_costs_one_round_trip_and_no_session_sql_async(
    alice: User, server: redis.Redis
) -> None:
    client = AsyncClient()
    await asign_in(client)
    assert user_of(await client.get("/peek/")) == "alice"
    reset_counts(server)
    async with acaptured_queries() as queries:
        response = await client.get("/peek/")
    assert user_of(response) == "alice"
    assert CountingConnection.round_trips == 1
    assert commands_run(server) == [read_command()]
    assert session_sql(queries) == []
    assert all(USER_TABLE in sql for sql in statements(queries))
    assert store_of(response).from_cache is True


def test_cache_miss_reads_database_once_and_refills(
    client: Client, alice: User, server: redis.Redis
) -> None:
    key = sign_in(client)
    drop_entries(server)
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/peek/")
    assert user_of(response) == "alice"
    assert store_of(response).from_cache is False
    assert len(session_sql(queries)) == 1
    refilled = cached_row(key)
    assert refilled is not None
    # The entry holds every column, and the data decoded instead of signed.
    row = row_of(key)
    assert cache_entry.row_values(refilled) == {
        **cache_entry.row_values(row),
        "session_data": "",
    }
    assert cached_data(key) == row.get_decoded()
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/peek/")
    assert store_of(response).from_cache is True
    assert session_sql(queries) == []


# -- Redis holds hashes only; entries never outlive the session ------------------------


def test_redis_holds_key_hashes_never_keys(
    client: Client, alice: User, server: redis.Redis
) -> None:
    client.get("/put/?basket=3")
    anonymous = str(client.cookies[COOKIE].value)
    key = sign_in(client)
    assert key != anonymous
    client.get("/put/?colour=blue")
    assert client.get("/peek/").json()["data"]["colour"] == "blue"
    names = list(server.scan_iter(count=1000))
    assert redis_name(cache_entry.entry_key(hash_key(key))).encode() in names
    # Signing in gave the anonymous session a new key: its old one is ended.
    assert tombstoned(anonymous)
    for name in names:
        value = server.get(name) or b""
        for raw in (key, anonymous):
            assert raw.encode() not in name
            assert raw.encode() not in value
    entry = cached_row(key)
    assert entry is not None and entry.key_hash == hash_key(key)


def test_entry_ttl_within_remaining_lifetime(
    client: Client, alice: User, server: redis.Redis, settings: Any
) -> None:
    settings.SESSIONKIT_IDLE_TIMEOUT = 90  # shorter than CACHE_MAX_AGE (5 min)
    key = sign_in(client)
    assert user_of(client.get("/peek/")) == "alice"
    row = row_of(key)
    assert row.expire_date <= timezone.now() + 90 * SECOND
    remaining = (row.expire_date - timezone.now()).total_seconds() * 1000
    ttl = server.pttl(redis_name(cache_entry.entry_key(hash_key(key))))
    # Redis counts the TTL from when the SET arrives, the store from just
    # before it sends it: on a loaded machine the entry may outlive the row's
    # deadline by that latency (a hit checks the deadline itself). A second
    # is far below the 5 minutes of CACHE_MAX_AGE this tells it apart from.
    assert 0 < ttl <= remaining + 1000


def test_entry_ttl_within_cache_max_age(
    client: Client, alice: User, server: redis.Redis, settings: Any
) -> None:
    settings.SESSIONKIT_CACHE_MAX_AGE = 20
    key = sign_in(client)
    assert user_of(client.get("/peek/")) == "alice"
    ttl = server.pttl(redis_name(cache_entry.entry_key(hash_key(key))))
    assert 0 < ttl <= 20_000
    # A refill after a miss is bounded the same way.
    drop_entries(server)
    assert user_of(client.get("/peek/")) == "alice"
    ttl = server.pttl(redis_name(cache_entry.entry_key(hash_key(key))))
    assert 0 < ttl <= 20_000


def test_tombstone_outlives_every_entry(
    client: Client, alice: User, server: redis.Redis
) -> None:
    key = sign_in(client)
    client.post("/logout/")
    assert tombstoned(key)
    names = [cache_entry.entry_key(hash_key(key))]
    if not guarded():
        names.append(cache_entry.tombstone_key(hash_key(key)))
    for name in names:
        assert server.pttl(redis_name(name)) > 5 * 60 * 1000  # CACHE_MAX_AGE


# -- Deadlines by the application's clock --------------------------------------------


@pytest.mark.parametrize("timeout", ["idle", "absolute"])
@pytest.mark.parametrize("engine", ["db", "cached_db"])
def test_entry_past_deadline_signs_out_as_database_store(
    alice: User, settings: Any, engine: str, timeout: str
) -> None:
    settings.SESSION_ENGINE = f"django_sessionkit.backends.{engine}"
    client = Client()
    key = sign_in(client)
    row = update_row(key, **past_deadline(timeout, timezone.now()))
    # The entry says what the row says, and Redis would keep it 10 minutes.
    put_entry(row)
    response = client.get("/peek/", headers=JSON)
    assert response.status_code == 401, response.content
    assert response.json() == {"error": "session_expired", "reason": timeout}
    assert timeout_events() == [(row.pk, timeout)]
    assert not Session.objects.filter(pk=row.pk).exists()
    assert user_of(carrying(key).get("/peek/")) == ""
    if engine == "cached_db":
        assert tombstoned(key)


async def test_entry_past_deadline_signs_out_async(alice: User) -> None:
    client = AsyncClient()
    key = await asign_in(client)
    row = await aupdate_row(key, **past_deadline("idle", timezone.now()))
    await sync_to_async(put_entry)(row)
    response = await client.get("/peek/", headers=JSON)
    assert response.status_code == 401, response.content
    assert response.json() == {"error": "session_expired", "reason": "idle"}
    assert await sync_to_async(timeout_events)() == [(row.pk, "idle")]
    assert not await Session.objects.filter(pk=row.pk).aexists()
    assert await sync_to_async(tombstoned)(key)
    assert user_of(await acarrying(key).get("/peek/")) == ""


@pytest.mark.parametrize("column", ["expire_date", "absolute_expire_date"])
def test_stale_entry_past_deadline_does_not_sign_out(
    client: Client, alice: User, column: str
) -> None:
    key = sign_in(client)
    row = row_of(key)
    # An entry written before the row was extended: its deadline has passed,
    # the database's has not.
    put_entry(row, **{column: timezone.now() - SECOND})
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/peek/", headers=JSON)
    assert user_of(response) == "alice"
    assert store_of(response).from_cache is False
    assert len(session_sql(queries)) == 1
    assert timeout_events() == []
    assert Session.objects.filter(pk=row.pk).exists()
    assert user_of(client.get("/peek/")) == "alice"


async def test_stale_entry_past_deadline_does_not_sign_out_async(alice: User) -> None:
    client = AsyncClient()
    key = await asign_in(client)
    row = await arow_of(key)
    await sync_to_async(put_entry)(row, expire_date=timezone.now() - SECOND)
    response = await client.get("/peek/", headers=JSON)
    assert user_of(response) == "alice"
    assert store_of(response).from_cache is False
    assert await sync_to_async(timeout_events)() == []
    assert await Session.objects.filter(pk=row.pk).aexists()


def test_store_load_refuses_entry_past_deadline_without_row() -> None:
    store = cached_db.SessionStore()
    store["x"] = 1
    store.save()
    key = store.session_key
    assert key is not None
    row = row_of(key)
    Session.objects.filter(pk=row.pk).delete()  # gone behind the cache's back
    put_entry(row, expire_date=timezone.now() - SECOND)
    again = cached_db.SessionStore(key)
    assert again.load() == {}
    assert again.from_cache is False
    assert again.session_key is None


# -- Activity: at most one write per resolution ----------------------------------------


def test_activity_written_once_per_resolution(client: Client, alice: User) -> None:
    key = sign_in(client)
    row = update_row(key, **inactive_for(61 * SECOND, timezone.now()))
    put_entry(row)
    with CaptureQueriesContext(connection) as queries:
        responses = [client.get("/peek/") for _ in range(5)]
    assert [user_of(r) for r in responses] == ["alice"] * 5
    [update] = session_updates(queries)
    assert "last_seen_at" in update
    assert [store_of(r).from_cache for r in responses] == [True] * 5
    fresh = row_of(key)
    assert fresh.last_seen_at > row.last_seen_at
    # The touch refreshed the entry, so the next requests saw the new activity.
    entry = cached_row(key)
    assert entry is not None
    assert entry.last_seen_at == fresh.last_seen_at
    assert entry.expire_date == fresh.expire_date
    with CaptureQueriesContext(connection) as queries:
        assert user_of(client.get("/peek/")) == "alice"
    assert session_sql(queries) == []


def test_activity_after_next_resolution_written_again(
    client: Client, alice: User, server: redis.Redis
) -> None:
    key = sign_in(client)
    updates = []
    for _ in range(3):
        row = update_row(key, **inactive_for(61 * SECOND, timezone.now()))
        drop_entries(server)
        with CaptureQueriesContext(connection) as queries:
            assert user_of(client.get("/peek/")) == "alice"
            assert user_of(client.get("/peek/")) == "alice"
        updates += session_updates(queries)
    assert len(updates) == 3
    assert row_of(key).last_seen_at > row.last_seen_at


async def test_activity_written_once_per_resolution_async(alice: User) -> None:
    client = AsyncClient()
    key = await asign_in(client)
    row = await aupdate_row(key, **inactive_for(61 * SECOND, timezone.now()))
    await sync_to_async(put_entry)(row)
    async with acaptured_queries() as queries:
        responses = [await client.get("/peek/") for _ in range(5)]
    assert [user_of(r) for r in responses] == ["alice"] * 5
    assert len(session_updates(queries)) == 1
    assert [store_of(r).from_cache for r in responses] == [True] * 5
    fresh = await arow_of(key)
    entry = await sync_to_async(cached_row)(key)
    assert entry is not None
    assert fresh.last_seen_at > row.last_seen_at
    assert entry.last_seen_at == fresh.last_seen_at


# -- Revocation is final with the cache in the loop ------------------------------------


def _revoke_one(record: Session) -> None:
    assert revoke_session(record, reason="test")


def _revoke_users(record: Session) -> None:
    assert revoke_user_sessions(record.user, reason="test") == 1


REVOKES = {"revoke_session": _revoke_one, "revoke_user_sessions": _revoke_users}


@pytest.mark.parametrize("revoke", REVOKES.values(), ids=REVOKES.keys())
def test_revoke_between_miss_and_refill_is_final(
    racing: type[SessionStore],
    alice: User,
    server: redis.Redis,
    revoke: Callable[[Session], None],
) -> None:
    client = Client()
    key = sign_in(client)
    client.get("/put/?secret=42")
    drop_entries(server)
    racing.between = revoke
    # This request read the row before the revoke; it refills after it.
    assert user_of(client.get("/peek/")) == "alice"
    assert racing.between is None  # the pause happened
    assert not Session.objects.exists()
    assert tombstoned(key)
    for browser in (client, carrying(key)):
        response = browser.get("/peek/")
        assert response.json() == {"user": "", "data": {}}
        assert store_of(response).from_cache is False


@plain_only
def test_refill_landing_after_tombstone_is_never_served(
    racing: type[SessionStore], alice: User, server: redis.Redis
) -> None:
    client = Client()
    key = sign_in(client)
    client.get("/put/?secret=42")
    drop_entries(server)

    def revoke_then_lose_entry(record: Session) -> None:
        revoke_session(record, reason="test")
        # The tombstone's entry half is lost (evicted): the late refill writes.
        server.delete(redis_name(cache_entry.entry_key(record.key_hash)))

    racing.between = revoke_then_lose_entry
    assert user_of(client.get("/peek/")) == "alice"
    late = cached_row(key)
    assert late is not None and late.key_hash == hash_key(key)
    response = carrying(key).get("/peek/")
    assert response.json() == {"user": "", "data": {}}
    assert store_of(response).from_cache is False
    assert not Session.objects.exists()


def test_refill_before_revoke_is_purged(
    client: Client, alice: User, server: redis.Redis
) -> None:
    key = sign_in(client)
    drop_entries(server)
    assert user_of(client.get("/peek/")) == "alice"
    assert cached_row(key) is not None
    revoke_session(row_of(key), reason="test")
    assert tombstoned(key)
    assert user_of(client.get("/peek/")) == ""


@pytest.mark.parametrize("revoke", REVOKES.values(), ids=REVOKES.keys())
async def test_revoke_between_miss_and_refill_is_final_async(
    racing: type[SessionStore],
    alice: User,
    server: redis.Redis,
    revoke: Callable[[Session], None],
) -> None:
    client = AsyncClient()
    key = await asign_in(client)
    await client.get("/put/?secret=42")
    await sync_to_async(drop_entries)(server)

    async def arevoke(record: Session) -> None:
        if revoke is _revoke_one:
            assert await arevoke_session(record, reason="test")
        else:
            assert record.user_id is not None
            user = await User.objects.aget(pk=record.user_id)
            assert await arevoke_user_sessions(user, reason="test") == 1
        if not guarded():
            # Lose the entry half of the tombstone: the late aadd then
            # writes, and the tombstone key alone keeps the session ended.
            await sync_to_async(server.delete)(
                redis_name(cache_entry.entry_key(record.key_hash))
            )

    racing.abetween = arevoke
    assert user_of(await client.get("/peek/")) == "alice"
    assert racing.abetween is None
    late = await sync_to_async(cached_row)(key)
    # With django-redis the tombstone is the entry: the late add finds it.
    assert (late is None) is guarded()
    assert not await Session.objects.aexists()
    response = await acarrying(key).get("/peek/")
    assert response.json() == {"user": "", "data": {}}
    assert store_of(response).from_cache is False


def test_save_racing_revoke_fails_and_is_not_cached(alice: User) -> None:
    key = sign_in(Client())
    store = cached_db.SessionStore(key)
    assert store.get(SESSION_KEY) == str(alice.pk)
    assert store.from_cache is True
    revoke_session(row_of(key), reason="test")
    store["late"] = "write"
    with pytest.raises(UpdateError):
        store.save()
    assert not Session.objects.exists()
    assert tombstoned(key)
    again = cached_db.SessionStore(key)
    assert again.load() == {}
    assert again.from_cache is False


async def test_asave_racing_arevoke_fails_and_is_not_cached(alice: User) -> None:
    key = await asign_in(AsyncClient())
    store = cached_db.SessionStore(key)
    assert await store.aget(SESSION_KEY) == str(alice.pk)
    assert store.from_cache is True
    assert await arevoke_session(await arow_of(key), reason="test")
    await store.aset("late", "write")
    with pytest.raises(UpdateError):
        await store.asave()
    assert not await Session.objects.aexists()
    assert await sync_to_async(tombstoned)(key)
    again = cached_db.SessionStore(key)
    assert await again.aload() == {}
    assert again.from_cache is False


class WriteThenRevoke(cached_db.SessionStore):
    """A store whose database write succeeds, then the session is revoked
    (row deleted, key tombstoned), then the store writes the cache."""

    def row_written(self, values: Any, **kwargs: Any) -> None:
        revoke_session(row_of_hash(hash_key(str(self.session_key))), reason="test")
        super().row_written(values, **kwargs)

    async def arow_written(self, values: Any, **kwargs: Any) -> None:
        record = await Session.objects.aget(key_hash=hash_key(str(self.session_key)))
        assert await arevoke_session(record, reason="test")
        await super().arow_written(values, **kwargs)


def row_of_hash(key_hash: str) -> Session:
    return Session.objects.get(key_hash=key_hash)


def test_write_landing_after_revoke_never_serves_session(alice: User) -> None:
    key = sign_in(Client())
    store = WriteThenRevoke(key)
    assert store.get(SESSION_KEY) == str(alice.pk)
    store["late"] = "write"
    store.save()  # the UPDATE found the row; the revoke came after it
    assert not Session.objects.exists()
    # django-redis: the compare-and-set left the tombstone in place. Django's
    # cache: the entry was replaced, and the tombstone key still ends it.
    assert (entry_of(key) == cache_entry.GONE) is guarded()
    response = carrying(key).get("/peek/")
    assert response.json() == {"user": "", "data": {}}
    assert store_of(response).from_cache is False


async def test_awrite_landing_after_arevoke_never_serves_session(alice: User) -> None:
    key = await asign_in(AsyncClient())
    store = WriteThenRevoke(key)
    assert await store.aget(SESSION_KEY) == str(alice.pk)
    await store.aset("late", "write")
    await store.asave()
    assert not await Session.objects.aexists()
    entry = await sync_to_async(entry_of)(key)
    assert (entry == cache_entry.GONE) is await sync_to_async(guarded)()
    response = await acarrying(key).get("/peek/")
    assert response.json() == {"user": "", "data": {}}
    assert store_of(response).from_cache is False


def test_compare_and_set_keeps_tombstone_and_replaces_entries(
    alice: User, server: redis.Redis
) -> None:
    django_redis_only()
    key = sign_in(Client())
    access = cache_access.access(session_cache())
    record = row_of(key)
    entry = cache_entry.pack(cache_entry.row_values(record), {"a": 1})
    # An entry is replaced, then dropped, by a write after a database write.
    access.put(record.key_hash, entry, 60)
    assert cached_data(key) == {"a": 1}
    assert 0 < server.pttl(redis_name(cache_entry.entry_key(record.key_hash))) <= 60_000
    access.put(record.key_hash, None, 60)
    assert entry_of(key) is None
    # A tombstone is neither replaced nor dropped.
    cache_access.write_tombstones(session_cache(), [record.key_hash])
    reset_counts(server)
    access.put(record.key_hash, entry, 60)
    access.put(record.key_hash, None, 60)
    assert CountingConnection.round_trips == 2
    # The script's own GET ran; its SET and DEL did not.
    assert commands_run(server) == ["EVALSHA", "EVALSHA", "GET", "GET"]
    assert entry_of(key) == cache_entry.GONE


def test_several_locations_only_the_first_is_read(
    alice: User, settings: Any, cached_engine: str
) -> None:
    # django-redis' default client sends Django's cache API reads to the
    # other LOCATIONs (as replicas); the store uses the primary connection.
    django_redis_only()
    other = RedisProcess().start()
    try:
        config = {**session_cache_config(cached_engine)}
        config["LOCATION"] = [cached_engine, other.url]
        with cached_engine_on(settings, cached_engine, config):
            client = Client()
            key = sign_in(client)
            for _ in range(3):
                response = client.get("/peek/")
                assert user_of(response) == "alice"
                assert store_of(response).from_cache is True
            revoke_session(row_of(key), reason="test")
            assert user_of(client.get("/peek/")) == ""
            replica = redis.Redis.from_url(other.url)
            ran = {
                name.removeprefix("cmdstat_") for name in replica.info("commandstats")
            }
            # Connection handshakes at most (and this INFO): no key touched.
            assert ran <= {"hello", "client|setinfo", "select", "ping", "info"}
            # The control: Django's cache API reads the other LOCATION.
            session_cache().get("anything")
            assert "cmdstat_get" in replica.info("commandstats")
    finally:
        other.stop()


def test_access_object_goes_with_its_cache_object() -> None:
    # Django makes a cache object per thread (and per task under ASGI).
    cache = caches.create_connection(settings.SESSION_CACHE_ALIAS)
    found = cache_access.access(cache)
    assert cache_access.access(cache) is found
    gone = weakref.ref(cache)
    del cache, found
    gc.collect()
    assert gone() is None


def test_entry_lifetime_counts_from_database_write_across_a_slow_sweep(
    alice: User, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = sign_in(Client())
    settings.SESSIONKIT_CACHE_MAX_AGE = 1
    store = cached_db.SessionStore(key)
    assert store.get(SESSION_KEY) == str(alice.pk)
    sweep = cache_health.usable

    def slow_sweep() -> bool:
        time.sleep(1.1)  # a backlog of pending purges, say
        return sweep()

    monkeypatch.setattr(cache_health, "usable", slow_sweep)
    store["late"] = "write"
    store.save()
    # The database wrote the row more than CACHE_MAX_AGE ago: no entry.
    assert entry_of(key) is None
    assert Session.objects.get(key_hash=hash_key(key)).get_decoded()["late"] == "write"


def test_request_writing_after_revoke_is_interrupted(
    racing: type[SessionStore], alice: User, server: redis.Redis
) -> None:
    client = Client()
    key = sign_in(client)
    drop_entries(server)
    racing.between = _revoke_one
    # SessionMiddleware turns the failed save into SessionInterrupted, which
    # Django answers with 400.
    assert client.get("/put/?late=write").status_code == 400
    assert not Session.objects.exists()
    assert tombstoned(key)
    assert carrying(key).get("/peek/").json() == {"user": "", "data": {}}


def test_cycle_key_racing_revoke_is_interrupted(alice: User) -> None:
    key = sign_in(Client())
    store = cached_db.SessionStore(key)
    assert store.get(SESSION_KEY) == str(alice.pk)
    revoke_session(row_of(key), reason="test")
    with pytest.raises(SessionInterrupted):
        store.cycle_key()
    assert not Session.objects.exists()
    assert tombstoned(key)


def _deleted_behind_the_api(key: str) -> cached_db.SessionStore:
    """A store that loaded ``key`` from the cache, whose row was then deleted
    with the ORM: nothing wrote a tombstone."""
    store = cached_db.SessionStore(key)
    assert store.get(SESSION_KEY) is not None
    assert store.from_cache is True
    Session.objects.filter(key_hash=hash_key(key)).delete()
    assert cached_row(key) is not None
    return store


@pytest.mark.parametrize("write", ["save", "touch", "cycle_key"])
def test_write_finding_row_gone_tombstones_key(alice: User, write: str) -> None:
    key = sign_in(Client())
    store = _deleted_behind_the_api(key)
    if write == "save":
        store["late"] = "write"
        with pytest.raises(UpdateError):
            store.save()
    elif write == "touch":
        assert store.touch() is False
    else:
        with pytest.raises(SessionInterrupted):
            store.cycle_key()
    assert tombstoned(key)
    assert cached_db.SessionStore(key).load() == {}


@pytest.mark.parametrize("write", ["asave", "atouch", "acycle_key"])
async def test_async_write_finding_row_gone_tombstones_key(
    alice: User, write: str
) -> None:
    key = await asign_in(AsyncClient())
    store = await sync_to_async(_deleted_behind_the_api)(key)
    if write == "asave":
        await store.aset("late", "write")
        with pytest.raises(UpdateError):
            await store.asave()
    elif write == "atouch":
        assert await store.atouch() is False
    else:
        with pytest.raises(SessionInterrupted):
            await store.acycle_key()
    assert await sync_to_async(tombstoned)(key)
    assert await cached_db.SessionStore(key).aload() == {}


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_revoke_locks_out_racing_rotation(cached_engine: str, alice: User) -> None:
    key = sign_in(Client())
    row = row_of(key)
    outcome: list[object] = []
    threads: list[threading.Thread] = []

    def rotate() -> None:
        try:
            store = cached_db.SessionStore(key)
            assert store.get(SESSION_KEY) is not None
            store.cycle_key()
            outcome.append(store.session_key)
        except Exception as exc:
            outcome.append(exc)
        finally:
            connection.close()

    def start_rotation(sender: Any, instance: Session, **kwargs: Any) -> None:
        # Between the revocation's locked read of the keys and its delete, a
        # request on another connection rotates: it must wait for the lock.
        if not threads:
            threads.append(threading.Thread(target=rotate))
            threads[0].start()
            threads[0].join(timeout=0.5)

    pre_delete.connect(start_rotation, sender=Session, weak=False)
    try:
        assert revoke_session(row, reason="test")
    finally:
        pre_delete.disconnect(start_rotation, sender=Session)
    threads[0].join(timeout=10)
    assert not threads[0].is_alive()
    [result] = outcome
    assert isinstance(result, SessionInterrupted), type(result).__name__
    assert not Session.objects.exists()
    assert tombstoned(key)


@postgresql_only
@pytest.mark.django_db(transaction=True)
async def test_arevoke_locks_out_racing_rotation(
    cached_engine: str, alice: User
) -> None:
    # The async revocation runs its read of the keys, the delete and the
    # events in one transaction too: a rotation on another connection waits
    # for it, then finds no row.
    key = await asign_in(AsyncClient())
    row = await arow_of(key)
    outcome: list[object] = []
    threads: list[threading.Thread] = []

    def rotate() -> None:
        try:
            store = cached_db.SessionStore(key)
            assert store.get(SESSION_KEY) is not None
            store.cycle_key()
            outcome.append(store.session_key)
        except Exception as exc:
            outcome.append(exc)
        finally:
            connection.close()

    def start_rotation(sender: Any, instance: Session, **kwargs: Any) -> None:
        if not threads:
            threads.append(threading.Thread(target=rotate))
            threads[0].start()
            threads[0].join(timeout=0.5)

    pre_delete.connect(start_rotation, sender=Session, weak=False)
    try:
        assert await arevoke_session(row, reason="test")
    finally:
        pre_delete.disconnect(start_rotation, sender=Session)
    threads[0].join(timeout=10)
    assert not threads[0].is_alive()
    [result] = outcome
    assert isinstance(result, SessionInterrupted), type(result).__name__
    assert not await Session.objects.aexists()
    assert await sync_to_async(tombstoned)(key)


# -- The revocation API tombstones in one round trip -----------------------------------


def test_revoke_user_sessions_one_round_trip(
    alice: User, bob: User, server: redis.Redis
) -> None:
    alices = signed_in(3)
    [(bobs, bobs_key)] = signed_in(1, "bob")
    reset_counts(server)
    assert revoke_user_sessions(alice, reason="test") == 3
    assert CountingConnection.round_trips == 1
    assert sets(commands_run(server)) == tombstone_writes(3)
    for browser, key in alices:
        assert tombstoned(key)
        response = browser.get("/peek/")
        assert user_of(response) == ""
        assert store_of(response).from_cache is False
    assert not Session.objects.filter(user=alice).exists()
    assert not tombstoned(bobs_key)
    response = bobs.get("/peek/")
    assert user_of(response) == "bob"
    assert store_of(response).from_cache is True


async def test_arevoke_user_sessions_one_round_trip(
    alice: User, bob: User, server: redis.Redis
) -> None:
    alices = [AsyncClient() for _ in range(3)]
    keys = [await asign_in(c) for c in alices]
    bobs = AsyncClient()
    bobs_key = await asign_in(bobs, "bob")
    reset_counts(server)
    assert await arevoke_user_sessions(alice, reason="test") == 3
    assert CountingConnection.round_trips == 1
    assert sets(commands_run(server)) == tombstone_writes(3)
    for browser, key in zip(alices, keys, strict=True):
        assert await sync_to_async(tombstoned)(key)
        assert user_of(await browser.get("/peek/")) == ""
    assert not await sync_to_async(tombstoned)(bobs_key)
    response = await bobs.get("/peek/")
    assert user_of(response) == "bob"
    assert store_of(response).from_cache is True


def test_revoke_session_tombstones_only_that_key(
    alice: User, server: redis.Redis
) -> None:
    (first, first_key), (second, _) = signed_in(2)
    reset_counts(server)
    assert revoke_session(row_of(first_key), reason="test")
    assert CountingConnection.round_trips == 1
    assert sets(commands_run(server)) == tombstone_writes(1)
    assert tombstoned(first_key)
    assert user_of(first.get("/peek/")) == ""
    response = second.get("/peek/")
    assert user_of(response) == "alice"
    assert store_of(response).from_cache is True


async def test_arevoke_session_tombstones_only_that_key(alice: User) -> None:
    first, second = AsyncClient(), AsyncClient()
    first_key, second_key = await asign_in(first), await asign_in(second)
    assert await arevoke_session(await arow_of(first_key), reason="test")
    assert await sync_to_async(tombstoned)(first_key)
    assert not await sync_to_async(tombstoned)(second_key)
    assert user_of(await first.get("/peek/")) == ""
    response = await second.get("/peek/")
    assert user_of(response) == "alice"
    assert store_of(response).from_cache is True


def test_revoke_all_sessions_tombstones_every_key(
    alice: User, bob: User, server: redis.Redis
) -> None:
    browsers = signed_in(2) + signed_in(1, "bob")
    reset_counts(server)
    assert revoke_all_sessions(reason="test") == 3
    assert CountingConnection.round_trips == 1
    for browser, key in browsers:
        assert tombstoned(key)
        assert user_of(browser.get("/peek/")) == ""


async def test_arevoke_all_sessions_tombstones_every_key(
    alice: User, bob: User
) -> None:
    names = ["alice", "alice", "bob"]
    browsers = [AsyncClient() for _ in names]
    keys = [await asign_in(c, n) for c, n in zip(browsers, names, strict=True)]
    assert await arevoke_all_sessions(reason="test") == 3
    for browser, key in zip(browsers, keys, strict=True):
        assert await sync_to_async(tombstoned)(key)
        assert user_of(await browser.get("/peek/")) == ""


def test_revoke_in_batches_one_round_trip_per_batch(
    alice: User, settings: Any, server: redis.Redis
) -> None:
    settings.SESSIONKIT_CLEANUP_BATCH_SIZE = 2
    browsers = signed_in(3)
    reset_counts(server)
    assert revoke_user_sessions(alice, reason="test") == 3
    assert CountingConnection.round_trips == 2
    assert all(tombstoned(key) for _, key in browsers)


def test_sessionkit_revoke_command_tombstones_keys(alice: User, bob: User) -> None:
    alices = signed_in(2)
    [(bobs, bobs_key)] = signed_in(1, "bob")
    out = StringIO()
    call_command("sessionkit_revoke", "--user", "alice", stdout=out)
    assert out.getvalue() == "Revoked 2 sessions.\n"
    for browser, key in alices:
        assert tombstoned(key)
        assert user_of(browser.get("/peek/")) == ""
    assert not tombstoned(bobs_key)
    assert user_of(bobs.get("/peek/")) == "bob"


# -- Rotation --------------------------------------------------------------------------


def test_cycle_key_tombstones_old_key_and_caches_new() -> None:
    store = cached_db.SessionStore()
    store["colour"] = "blue"
    store.save()
    old = store.session_key
    assert old is not None
    store.load()
    store.cycle_key()
    new = store.session_key
    assert new is not None and new != old
    assert tombstoned(old)
    entry = cached_row(new)
    assert entry is not None and entry.key_hash == hash_key(new)
    fresh = cached_db.SessionStore(new)
    assert fresh.load() == {"colour": "blue"}
    assert fresh.from_cache is True
    stale = cached_db.SessionStore(old)
    assert stale.load() == {}
    assert stale.from_cache is False


async def test_acycle_key_tombstones_old_key_and_caches_new() -> None:
    store = cached_db.SessionStore()
    await store.aset("colour", "blue")
    await store.asave()
    old = store.session_key
    assert old is not None
    await store.acycle_key()
    new = store.session_key
    assert new is not None and new != old
    assert await sync_to_async(tombstoned)(old)
    fresh = cached_db.SessionStore(new)
    assert await fresh.aload() == {"colour": "blue"}
    assert fresh.from_cache is True
    stale = cached_db.SessionStore(old)
    assert await stale.aload() == {}
    assert stale.from_cache is False


def _make_rotation_due(key: str, server: redis.Redis) -> None:
    past = timezone.now() - timedelta(minutes=16)
    update_row(key, rotated_at=past, authenticated_at=past)
    drop_entries(server)


def test_interval_rotation_through_cache(
    client: Client, alice: User, server: redis.Redis
) -> None:
    old = sign_in(client)
    _make_rotation_due(old, server)
    response = client.get("/peek/")
    assert user_of(response) == "alice"
    new = set_cookie(response)
    assert new == successor(old)
    assert tombstoned(old)
    entry = cached_row(new)
    assert entry is not None
    assert entry.key_hash == hash_key(new)
    assert entry.previous_key_hash == hash_key(old)
    # The new key is served from the cache.
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/peek/")
    assert user_of(response) == "alice"
    assert store_of(response).from_cache is True
    assert session_sql(queries) == []
    # The old key within its grace window: the database path, the new cookie.
    response = carrying(old).get("/peek/")
    assert user_of(response) == "alice"
    assert store_of(response).from_cache is False
    assert set_cookie(response) == new
    assert not events(Kind.ANOMALY)
    # After the grace window: the stale-key anomaly, as with the database store.
    row = update_row(new, rotated_at=timezone.now() - 61 * SECOND)
    response = carrying(old).get("/peek/")
    assert user_of(response) == ""
    assert [(e.session_id, e.reason) for e in events(Kind.ANOMALY)] == [
        (row.pk, "stale_key")
    ]
    assert [(e.session_id, e.reason) for e in events(Kind.REVOKE)] == [
        (row.pk, "stale_key")
    ]
    assert not Session.objects.exists()
    # The revoke purged the live key's entry as well.
    assert tombstoned(new)
    assert user_of(client.get("/peek/")) == ""


async def test_interval_rotation_through_cache_async(
    alice: User, server: redis.Redis
) -> None:
    client = AsyncClient()
    old = await asign_in(client)
    await sync_to_async(_make_rotation_due)(old, server)
    response = await client.get("/peek/")
    assert user_of(response) == "alice"
    new = set_cookie(response)
    assert new == successor(old)
    assert await sync_to_async(tombstoned)(old)
    response = await client.get("/peek/")
    assert user_of(response) == "alice"
    assert store_of(response).from_cache is True
    response = await acarrying(old).get("/peek/")
    assert user_of(response) == "alice"
    assert store_of(response).from_cache is False
    assert set_cookie(response) == new


def test_privilege_change_rotates_despite_cached_entry(
    client: Client, alice: User
) -> None:
    old = sign_in(client)
    assert user_of(client.get("/peek/")) == "alice"
    entry = cached_row(old)
    assert entry is not None and entry.rotate_due is False
    elsewhere = User.objects.get(pk=alice.pk)
    elsewhere.is_staff = True
    elsewhere.save()
    response = client.get("/peek/")
    assert user_of(response) == "alice"
    new = set_cookie(response)
    assert new is not None and new != old
    assert [e.reason for e in events(Kind.ROTATE)] == ["privilege"]
    assert tombstoned(old)
    assert user_of(carrying(old).get("/peek/")) == ""
    response = client.get("/peek/")
    assert user_of(response) == "alice"
    assert set_cookie(response) is None
    assert store_of(response).from_cache is True
    assert not Session.objects.get().rotate_due


async def test_privilege_change_rotates_despite_cached_entry_async(
    alice: User,
) -> None:
    client = AsyncClient()
    old = await asign_in(client)
    assert store_of(await client.get("/peek/")).from_cache is True
    alice.is_staff = True
    await alice.asave()
    response = await client.get("/peek/")
    assert user_of(response) == "alice"
    new = set_cookie(response)
    assert new is not None and new != old
    assert await sync_to_async(tombstoned)(old)
    rotations = [e.reason async for e in SessionEvent.objects.filter(kind=Kind.ROTATE)]
    assert rotations == ["privilege"]
    response = await client.get("/peek/")
    assert store_of(response).from_cache is True
    assert set_cookie(response) is None


# -- Sign-out and exists() -------------------------------------------------------------


def test_logout_tombstones_key(client: Client, alice: User) -> None:
    key = sign_in(client)
    assert cached_row(key) is not None
    client.post("/logout/")
    assert tombstoned(key)
    assert not Session.objects.exists()
    response = carrying(key).get("/peek/")
    assert user_of(response) == ""
    assert store_of(response).from_cache is False


def test_exists_answers_from_cache_then_false_after_delete() -> None:
    store = cached_db.SessionStore()
    store["x"] = 1
    store.save()
    key = store.session_key
    with CaptureQueriesContext(connection) as queries:
        assert cached_db.SessionStore().exists(key) is True
    assert len(queries) == 0
    store.delete()
    assert tombstoned(str(key))
    with CaptureQueriesContext(connection) as queries:
        assert cached_db.SessionStore().exists(key) is False
    assert len(session_sql(queries)) == 1


async def test_aexists_answers_from_cache_then_false_after_adelete() -> None:
    store = cached_db.SessionStore()
    await store.aset("x", 1)
    await store.asave()
    key = store.session_key
    async with acaptured_queries() as queries:
        assert await cached_db.SessionStore().aexists(key) is True
    assert len(queries) == 0
    assert await store.atouch() is True
    entry = await sync_to_async(cached_row)(str(key))
    row = await arow_of(str(key))
    assert entry is not None and entry.expire_date == row.expire_date
    await store.adelete()
    assert await sync_to_async(tombstoned)(str(key))
    assert await cached_db.SessionStore().aexists(key) is False
    assert await store.atouch() is False


# -- Unknown keys: one database read, then a short-lived miss marker -------------------


def test_unknown_key_again_costs_no_sql(server: redis.Redis) -> None:
    key = new_key()
    carrying(new_key()).get("/peek/")  # connects (handshake commands)
    reset_counts(server)
    with CaptureQueriesContext(connection) as queries:
        assert user_of(carrying(key).get("/peek/")) == ""
    # The one lookup of the current and the previous key, then the miss
    # marked with a set-if-absent.
    assert len(session_sql(queries)) == 1
    assert commands_run(server) == sorted([read_command(), "SET"])
    assert entry_of(key) == cache_entry.MISS
    reset_counts(server)
    with CaptureQueriesContext(connection) as queries:
        response = carrying(key).get("/peek/")
    assert response.json() == {"user": "", "data": {}}
    assert session_sql(queries) == []
    assert CountingConnection.round_trips == 1
    assert commands_run(server) == [read_command()]
    assert store_of(response).from_cache is True
    assert not Session.objects.exists()


async def test_unknown_key_again_costs_no_sql_async(server: redis.Redis) -> None:
    key = new_key()
    assert user_of(await acarrying(key).get("/peek/")) == ""
    await sync_to_async(reset_counts)(server)
    async with acaptured_queries() as queries:
        response = await acarrying(key).get("/peek/")
    assert response.json() == {"user": "", "data": {}}
    assert session_sql(queries) == []
    assert CountingConnection.round_trips == 1
    assert store_of(response).from_cache is True


def test_miss_marker_lives_seconds_only(server: redis.Redis, settings: Any) -> None:
    key = new_key()
    carrying(key).get("/peek/")
    ttl = server.pttl(redis_name(cache_entry.entry_key(hash_key(key))))
    assert 0 < ttl <= cache_entry.MISS_TIMEOUT.total_seconds() * 1000
    # Never longer than an entry may live.
    settings.SESSIONKIT_CACHE_MAX_AGE = 2
    other = new_key()
    carrying(other).get("/peek/")
    assert 0 < server.pttl(redis_name(cache_entry.entry_key(hash_key(other)))) <= 2000


def test_miss_marker_never_replaces_tombstone(client: Client, alice: User) -> None:
    key = sign_in(client)
    client.post("/logout/")
    assert tombstoned(key)
    for _ in range(2):
        assert user_of(carrying(key).get("/peek/")) == ""
    assert tombstoned(key)


def test_session_created_with_key_whose_miss_was_cached_is_served_at_once() -> None:
    key = new_key()
    assert carrying(key).get("/peek/").json()["data"] == {}
    assert entry_of(key) == cache_entry.MISS
    # The row is written under that very key by a store that never loaded
    # it (a test helper, say). Rows written outside the store, as
    # sessionkit_import's bulk_create(), are not covered: see docs/topics/store.rst.
    cached_db.SessionStore(key).save(must_create=True)
    assert entry_of(key) != cache_entry.MISS
    assert carrying(key).get("/put/?colour=blue").status_code == 200
    response = carrying(key).get("/peek/")
    assert response.json()["data"] == {"colour": "blue"}
    assert store_of(response).from_cache is True
    assert Session.objects.count() == 1


async def test_session_created_with_key_whose_miss_was_cached_is_served_async() -> None:
    key = new_key()
    assert (await acarrying(key).get("/peek/")).json()["data"] == {}
    await cached_db.SessionStore(key).asave(must_create=True)
    assert (await acarrying(key).get("/put/?colour=blue")).status_code == 200
    response = await acarrying(key).get("/peek/")
    assert response.json()["data"] == {"colour": "blue"}
    assert await Session.objects.acount() == 1


def test_rotation_to_key_whose_miss_was_cached_is_served_at_once(alice: User) -> None:
    client = Client()
    key = sign_in(client)
    new = successor(key)
    # The successor presented before the rotation: a miss, marked.
    assert user_of(carrying(new).get("/peek/")) == ""
    assert entry_of(new) == cache_entry.MISS
    store = cached_db.SessionStore(key)
    store.load()
    rotate_at_save(store)
    store.save()
    assert store.session_key == new
    assert user_of(carrying(new).get("/peek/")) == "alice"


async def test_rotation_to_key_whose_miss_was_cached_is_served_async(
    alice: User,
) -> None:
    client = AsyncClient()
    key = await asign_in(client)
    new = successor(key)
    assert user_of(await acarrying(new).get("/peek/")) == ""
    store = cached_db.SessionStore(key)
    await store.aload()
    rotate_at_save(store)
    await store.asave()
    assert store.session_key == new
    assert user_of(await acarrying(new).get("/peek/")) == "alice"


@pytest.mark.parametrize("write", ["save", "touch", "rotation"])
def test_write_replaces_miss_marker(client: Client, alice: User, write: str) -> None:
    key = sign_in(client)
    store = cached_db.SessionStore(key)
    assert store.get(SESSION_KEY) == str(alice.pk)
    # A marker lands on the live key (from a request that read the database
    # before the row had this key) after this store read it: its write
    # replaces the marker.
    session_cache().set(cache_entry.entry_key(hash_key(key)), cache_entry.MISS, 5)
    if write == "save":
        store["colour"] = "blue"
        store.save()
    elif write == "touch":
        assert store.touch() is True
    else:
        rotate_at_save(store)
        store.save()
    assert store.session_key is not None
    assert cached_row(store.session_key) is not None
    assert user_of(carrying(store.session_key).get("/peek/")) == "alice"


def test_miss_marker_landing_before_refill_hides_nothing(
    racing: type[SessionStore], alice: User, server: redis.Redis
) -> None:
    client = Client()
    key = sign_in(client)
    drop_entries(server)

    def late_marker(record: Session) -> None:
        # A request that found no row for this key before it existed marks
        # the miss only now, between this one's database read and refill.
        session_cache().set(cache_entry.entry_key(record.key_hash), cache_entry.MISS, 5)

    racing.between = late_marker
    assert user_of(client.get("/peek/")) == "alice"
    assert racing.between is None
    assert entry_of(key) != cache_entry.MISS
    for _ in range(2):
        assert user_of(carrying(key).get("/peek/")) == "alice"


async def test_miss_marker_landing_before_refill_hides_nothing_async(
    racing: type[SessionStore], alice: User, server: redis.Redis
) -> None:
    client = AsyncClient()
    key = await asign_in(client)
    await sync_to_async(drop_entries)(server)

    async def late_marker(record: Session) -> None:
        await session_cache().aset(
            cache_entry.entry_key(record.key_hash), cache_entry.MISS, 5
        )

    racing.abetween = late_marker
    assert user_of(await client.get("/peek/")) == "alice"
    assert racing.abetween is None
    assert await sync_to_async(entry_of)(key) != cache_entry.MISS
    for _ in range(2):
        assert user_of(await acarrying(key).get("/peek/")) == "alice"


# -- Entries written under the other USE_TZ --------------------------------------------


@pytest.mark.parametrize(
    ("written", "read"), [(False, True), (True, False)], ids=["naive", "aware"]
)
def test_entry_written_under_other_use_tz_is_a_miss(
    settings: Any, alice: User, written: bool, read: bool
) -> None:
    settings.USE_TZ = written
    client = Client()
    key = sign_in(client)
    client.get("/put/?colour=blue")
    assert cached_row(key) is not None
    settings.USE_TZ = read  # a rolling deploy turned it on (or off)
    response = carrying(key).get("/peek/")
    assert response.status_code == 200
    assert user_of(response) == "alice"
    assert response.json()["data"]["colour"] == "blue"
    assert store_of(response).from_cache is False


@pytest.mark.parametrize(
    ("written", "read"), [(False, True), (True, False)], ids=["naive", "aware"]
)
async def test_entry_written_under_other_use_tz_is_a_miss_async(
    settings: Any, alice: User, written: bool, read: bool
) -> None:
    # Changed on the thread of the ORM's connection, which Django's receiver
    # of setting_changed adjusts to the new USE_TZ.
    await sync_to_async(setattr)(settings, "USE_TZ", written)
    client = AsyncClient()
    key = await asign_in(client)
    assert await sync_to_async(cached_row)(key) is not None
    await sync_to_async(setattr)(settings, "USE_TZ", read)
    response = await acarrying(key).get("/peek/")
    assert response.status_code == 200
    assert user_of(response) == "alice"
    assert store_of(response).from_cache is False


# -- Replicas: validity is read from the primary ---------------------------------------


def test_database_reads_go_to_primary_with_replica_router(
    alice: User, settings: Any, server: redis.Redis
) -> None:
    settings.DATABASE_ROUTERS = [f"{__name__}.ReplicaRouter"]
    primary = Session.objects.using(DEFAULT_DB_ALIAS)
    client = Client()
    key = sign_in(client)
    drop_entries(server)  # a miss: the row is read from the database
    response = client.get("/peek/")
    assert user_of(response) == "alice"
    assert store_of(response).from_cache is False
    assert cached_db.SessionStore().exists(key) is True
    # An unknown key reads the database (and the previous-key index).
    assert user_of(carrying("q" * 32).get("/peek/")) == ""
    client.post("/logout/")  # tombstoned: the next read goes to the database
    assert user_of(carrying(key).get("/peek/")) == ""
    assert cached_db.SessionStore().exists(key) is False
    assert not primary.exists()


async def test_database_reads_go_to_primary_with_replica_router_async(
    alice: User, settings: Any, server: redis.Redis
) -> None:
    settings.DATABASE_ROUTERS = [f"{__name__}.ReplicaRouter"]
    client = AsyncClient()
    key = await asign_in(client)
    await sync_to_async(drop_entries)(server)
    response = await client.get("/peek/")
    assert user_of(response) == "alice"
    assert store_of(response).from_cache is False
    store = cached_db.SessionStore(key)
    assert await store.aget(SESSION_KEY) == str(alice.pk)
    assert store.from_cache is True  # refilled by the request
    await store.adelete()
    assert await cached_db.SessionStore().aexists(key) is False
    assert user_of(await acarrying(key).get("/peek/")) == ""


# -- Refills never overwrite -----------------------------------------------------------


def test_refill_does_not_overwrite_newer_entry(
    racing: type[SessionStore], alice: User, server: redis.Redis
) -> None:
    client = Client()
    key = sign_in(client)
    client.get("/put/?colour=blue")
    drop_entries(server)

    def newer_write(record: Session) -> None:
        # Another request saves the session between this one's read and refill.
        other = cached_db.SessionStore(key)
        other["colour"] = "green"
        other.save()

    racing.between = newer_write
    assert client.get("/peek/").json()["data"]["colour"] == "blue"
    assert racing.between is None
    data = cached_data(key)
    assert data is not None
    assert data["colour"] == "green"
    response = carrying(key).get("/peek/")
    assert response.json()["data"]["colour"] == "green"
    assert store_of(response).from_cache is True


# -- Data through the cache; serializers -----------------------------------------------


def test_data_round_trip_through_cache(client: Client, alice: User) -> None:
    key = sign_in(client)
    client.get("/put/?colour=blue&size=9")
    with CaptureQueriesContext(connection) as queries:
        response = carrying(key).get("/peek/")
    assert response.json()["user"] == "alice"
    assert response.json()["data"]["colour"] == "blue"
    assert response.json()["data"]["size"] == "9"
    assert store_of(response).from_cache is True
    assert session_sql(queries) == []


async def test_data_round_trip_through_cache_async(alice: User) -> None:
    client = AsyncClient()
    key = await asign_in(client)
    await client.get("/put/?colour=blue")
    response = await acarrying(key).get("/peek/")
    assert response.json()["user"] == "alice"
    assert response.json()["data"]["colour"] == "blue"
    assert store_of(response).from_cache is True


def test_json_serializer_entries_survive(
    client: Client, alice: User, settings: Any, server: redis.Redis, cached_engine: str
) -> None:
    config = session_cache_config(cached_engine)
    config["OPTIONS"]["SERIALIZER"] = JSON_SERIALIZER
    settings.CACHES = {**settings.CACHES, "sessions": config}
    key = sign_in(client)
    client.get("/put/?colour=blue")
    raw = server.get(redis_name(cache_entry.entry_key(hash_key(key))))
    assert isinstance(raw, bytes) and raw.startswith(b"[")  # JSON: a list
    assert isinstance(entry_of(key), list)
    response = carrying(key).get("/peek/")
    assert user_of(response) == "alice"
    assert response.json()["data"]["colour"] == "blue"
    assert store_of(response).from_cache is True
    client.post("/logout/")
    assert tombstoned(key)
    assert user_of(carrying(key).get("/peek/")) == ""


# -- Hooks a subclass may override (this module's SessionStore notes them) -------------


def test_refilling_called_on_miss_only(alice: User, server: redis.Redis) -> None:
    key = sign_in(Client())
    drop_entries(server)
    missed = SessionStore(key)
    assert missed.load()[SESSION_KEY] == str(alice.pk)
    assert missed.calls == [("refilling", hash_key(key))]
    assert cached_row(key) is not None
    hit = SessionStore(key)
    assert hit.load()[SESSION_KEY] == str(alice.pk)
    assert hit.from_cache is True
    assert hit.calls == []


async def test_arefilling_called_on_miss_only(alice: User, server: redis.Redis) -> None:
    key = await asign_in(AsyncClient())
    await sync_to_async(drop_entries)(server)
    missed = SessionStore(key)
    assert (await missed.aload())[SESSION_KEY] == str(alice.pk)
    assert missed.calls == [("arefilling", hash_key(key))]
    hit = SessionStore(key)
    assert (await hit.aload())[SESSION_KEY] == str(alice.pk)
    assert hit.from_cache is True
    assert hit.calls == []


def test_refilling_not_called_without_a_row() -> None:
    store = SessionStore(new_key())
    assert store.load() == {}
    assert store.calls == []


def test_row_hooks_called_after_each_database_write(alice: User) -> None:
    key = sign_in(Client())
    store = SessionStore(key)
    store["colour"] = "blue"
    store.save()
    assert store.calls == [("row_written", None, True)]
    store.cycle_key()
    assert store.calls[1:] == [("row_written", hash_key(key), True)]
    new = store.session_key
    assert new is not None and new != key
    store.delete()
    assert store.calls[2:] == [("row_removed", hash_key(new))]
    assert tombstoned(new)


async def test_arow_hooks_called_after_each_database_write(alice: User) -> None:
    key = await asign_in(AsyncClient())
    store = SessionStore(key)
    await store.aset("colour", "blue")
    await store.asave()
    assert store.calls == [("arow_written", None, True)]
    await store.acycle_key()
    assert store.calls[1:] == [("arow_written", hash_key(key), True)]
    new = store.session_key
    assert new is not None and new != key
    await store.adelete()
    assert store.calls[2:] == [("arow_removed", hash_key(new))]
    assert await sync_to_async(tombstoned)(new)
