"""The cached_db store when Redis dies, hangs or comes back.

Every test runs its own ``redis-server`` (``tests.servers.RedisProcess``), so
that it can kill it (``SIGKILL``: data lost), pause it (``SIGSTOP``: data kept,
connections hang, like a network partition) and start it again on the same
port. Requests go through the real middleware stack, synchronously
(``Client``) and asynchronously (``AsyncClient``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import caches
from django.core.management import call_command
from django.http import HttpResponseBase
from django.test import AsyncClient, Client
from django.utils import timezone

from django_sessionkit.backends import cache_entry, cache_health, cached_db
from django_sessionkit.conf import conf
from django_sessionkit.models import CachePurge, Session, SessionEvent
from django_sessionkit.revocation import arevoke_session, revoke_session
from tests.helpers import PASSWORD, Key, cached_engine_on, user_of
from tests.servers import RedisProcess

pytestmark = pytest.mark.django_db

COOKIE = settings.SESSION_COOKIE_NAME
JSON = {"Accept": "application/json"}
OUTAGES = ["killed", "paused"]


class FlakyRedis:
    """A private Redis that the test can kill, pause and start again.

    ``restart()`` starts a new server on the same port, so the application's
    settings (and its connection pool) stay as they are.
    """

    def __init__(self) -> None:
        self.servers = [RedisProcess().start()]
        self.paused = False

    @property
    def url(self) -> str:
        return self.servers[-1].url

    def raw(self) -> redis.Redis:
        """A client of this test's own, with patient timeouts."""
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def kill(self) -> None:
        self.servers[-1].kill()

    def restart(self) -> None:
        port = self.servers[-1].port
        self.servers.append(RedisProcess(port=port).start())

    def pause(self) -> None:
        self.servers[-1].pause()
        self.paused = True

    def resume(self) -> None:
        self.servers[-1].resume()
        self.paused = False
        self.raw().ping()

    def heal_losing_writes(self, entries: dict[Key, bytes]) -> None:
        """Resume, and leave Redis as a partition that dropped packets would.

        A stopped ``redis-server`` keeps the commands sent to it in its socket
        buffers and runs them when it resumes, even those whose client timed
        out long ago; a real partition loses them. So the cached entries are
        put back as they were before the pause, over the tombstones the
        timed-out writes left: only the pending purges recorded in the
        database can now stop a stale entry from being trusted.
        """
        self.resume()
        time.sleep(0.2)  # let the resumed server run what it had buffered
        client = self.raw()
        for key, value in entries.items():
            client.set(stored_key(cache_entry.entry_key(key.hash)), value, ex=300)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def stored_key(key: str) -> str:
    """The Redis key under which the session cache stores ``key``."""
    return str(caches["sessions"].make_key(key))


@pytest.fixture
def flaky(settings: Any) -> Iterator[FlakyRedis]:
    """The cached_db store on a Redis of the test's own (cache alias "sessions")."""
    server = FlakyRedis()
    try:
        with cached_engine_on(settings, server.url):
            yield server
    finally:
        server.stop()


# -- Helpers -----------------------------------------------------------------


def user(name: str) -> User:
    return User.objects.create_user(name, password=PASSWORD)


def sign_in(client: Client, username: str) -> Key:
    response = client.post("/login/", {"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.content
    return Key(client.cookies[COOKIE].value)


async def asign_in(client: AsyncClient, username: str) -> Key:
    response = await client.post(
        "/alogin/", {"username": username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.content
    return Key(client.cookies[COOKIE].value)


def from_cache(response: HttpResponseBase) -> bool:
    """Whether the request's session was served from Redis (no SQL)."""
    request = getattr(response, "wsgi_request", None) or response.asgi_request  # type: ignore[attr-defined]
    return bool(request.session.from_cache)


def cached_entry(server: FlakyRedis, key: Key) -> bytes:
    """The raw entry Redis holds for the session of ``key``; it must be there."""
    value = server.raw().get(stored_key(cache_entry.entry_key(key.hash)))
    assert isinstance(value, bytes), "the session was not cached"
    return value


def has_tombstone(server: FlakyRedis, key: Key) -> bool:
    """Whether the entry of ``key`` is a tombstone (django-redis keeps it there)."""
    value = server.raw().get(stored_key(cache_entry.entry_key(key.hash)))
    return value == str(cache_entry.GONE).encode()


def pending(key: Key) -> bool:
    return CachePurge.objects.filter(key_hash=key.hash).exists()


async def apending(key: Key) -> bool:
    return await CachePurge.objects.filter(key_hash=key.hash).aexists()


def session_pk(key: Key) -> int:
    return int(Session.objects.get(key_hash=key.hash).pk)


async def asession_pk(key: Key) -> int:
    return int((await Session.objects.aget(key_hash=key.hash)).pk)


def idle_passed(key: Key) -> None:
    """Make the session of ``key`` look unused for longer than the idle timeout,
    with the deadlines an honest write under the default policy left."""
    idle, absolute = conf.IDLE_TIMEOUT, conf.ABSOLUTE_TIMEOUT
    assert idle is not None and absolute is not None
    now = timezone.now()
    signed_in = now - timedelta(hours=1)
    last_seen = now - idle - timedelta(seconds=1)
    updated = Session.objects.filter(key_hash=key.hash).update(
        authenticated_at=signed_in,
        last_seen_at=last_seen,
        rotated_at=last_seen,
        expire_date=last_seen + idle,
        absolute_expire_date=signed_in + absolute,
    )
    assert updated == 1


def cache_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "django.contrib.sessions"
        and r.getMessage().startswith("Error saving to cache")
    ]


def outage(server: FlakyRedis, kind: str) -> None:
    if kind == "killed":
        server.kill()
    else:
        server.pause()


def trust_again() -> None:
    """Skip the ``RETRY_AFTER`` wait: the next cache use tries Redis again."""
    cache_health.health.retry_at = 0.0


# -- A stream of requests through a crash --------------------------------------

STEPS = 200
KILL_AT, REVOKE_AT, RESTART_AT = 60, 100, 140
READER, WRITER, MIXED, REVOKED = range(4)


def writes_at(who: int, step: int) -> bool:
    if who == WRITER:
        return (step // 4) % 2 == 0
    return who == MIXED and (step // 4) % 4 == 0


def test_stream_survives_redis_killed_revoke_and_restart(
    flaky: FlakyRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="django.contrib.sessions")
    names = ["reader", "writer", "mixed", "revoked"]
    for name in names:
        user(name)
    clients = [Client() for _ in names]
    keys = [sign_in(client, name) for client, name in zip(clients, names, strict=True)]
    revoked_pk = session_pk(keys[REVOKED])
    written: list[dict[str, str]] = [{} for _ in names]
    failures: list[str] = []
    # Whether the reader's /peek/ came from Redis, by phase.
    reader_hits: dict[str, list[bool]] = {"before": [], "down": [], "after": []}

    for step in range(STEPS):
        if step == KILL_AT:
            flaky.kill()
        if step == REVOKE_AT:
            assert revoke_session(revoked_pk, reason="test")
            assert pending(keys[REVOKED])
        if step == RESTART_AT:
            flaky.restart()
            time.sleep(cache_health.RETRY_AFTER + 0.1)
        who = step % len(names)
        client = clients[who]
        gone = who == REVOKED and step >= REVOKE_AT
        if gone:
            # Present the revoked key every time, whatever the last response
            # did to the cookie.
            client.cookies[COOKIE] = keys[REVOKED].raw
        if writes_at(who, step):
            response = client.get(f"/put/?s{step}={step}")
            if response.status_code != 200:
                failures.append(f"step {step}: {response.status_code}")
            written[who][f"s{step}"] = str(step)
            continue
        response = client.get("/peek/")
        if response.status_code >= 500:
            failures.append(f"step {step}: {response.status_code}")
            continue
        expected = "" if gone else names[who]
        if user_of(response) != expected:
            failures.append(f"step {step}: {names[who]} is {user_of(response)!r}")
        data = response.json()["data"]
        if {k: data.get(k) for k in written[who]} != written[who]:
            failures.append(f"step {step}: {names[who]} lost session data")
        if who == READER:
            phase = (
                "before" if step < KILL_AT else "down" if step < RESTART_AT else "after"
            )
            reader_hits[phase].append(from_cache(response))

    assert failures == []
    # What was written while Redis was down is read back now it is up.
    during = {
        k: v for k, v in written[WRITER].items() if KILL_AT <= int(v) < RESTART_AT
    }
    data = clients[WRITER].get("/peek/").json()["data"]
    assert during
    assert {k: data.get(k) for k in during} == during
    assert len(cache_errors(caplog)) > 0
    # The cache served before the crash, nothing while down, and again after.
    assert all(reader_hits["before"])
    assert not any(reader_hits["down"])
    assert reader_hits["after"][-1] is True
    # The purges that failed meanwhile were written once Redis was back.
    assert not CachePurge.objects.exists()
    assert has_tombstone(flaky, keys[REVOKED])
    assert not Session.objects.filter(pk=revoked_pk).exists()


# -- A partition: Redis keeps its (now stale) entries ----------------------------


@pytest.mark.usefixtures("alice", "bob")
def test_revoke_during_partition_stale_entry_not_revived(flaky: FlakyRedis) -> None:
    alice, bob = Client(), Client()
    alice_key = sign_in(alice, "alice")
    sign_in(bob, "bob")
    assert from_cache(alice.get("/peek/"))
    assert from_cache(bob.get("/peek/"))
    stale = {alice_key: cached_entry(flaky, alice_key)}

    flaky.pause()
    assert revoke_session(session_pk(alice_key), reason="test")
    assert pending(alice_key)
    # Bob, still signed in, is served from the database meanwhile.
    response = bob.get("/peek/")
    assert (user_of(response), from_cache(response)) == ("bob", False)
    flaky.heal_losing_writes(stale)
    assert cached_entry(flaky, alice_key) == stale[alice_key]
    assert not has_tombstone(flaky, alice_key)
    trust_again()

    alice.cookies[COOKIE] = alice_key.raw
    response = alice.get("/peek/")

    assert user_of(response) == ""
    assert not pending(alice_key)
    assert has_tombstone(flaky, alice_key)
    # The cache is trusted again for the sessions that are still live.
    response = bob.get("/peek/")
    assert user_of(response) == "bob"
    response = bob.get("/peek/")
    assert (user_of(response), from_cache(response)) == ("bob", True)
    alice.cookies[COOKIE] = alice_key.raw
    assert user_of(alice.get("/peek/")) == ""


@pytest.mark.usefixtures("alice")
def test_revoke_during_partition_waits_for_retry_before_trusting(
    flaky: FlakyRedis,
) -> None:
    # Without skipping the wait: the process serves from the database for
    # RETRY_AFTER, then drains, then trusts the cache.
    alice = Client()
    key = sign_in(alice, "alice")
    stale = {key: cached_entry(flaky, key)}
    flaky.pause()
    assert revoke_session(session_pk(key), reason="test")
    flaky.heal_losing_writes(stale)

    alice.cookies[COOKIE] = key.raw
    assert user_of(alice.get("/peek/")) == ""
    time.sleep(cache_health.RETRY_AFTER + 0.1)
    alice.cookies[COOKIE] = key.raw
    assert user_of(alice.get("/peek/")) == ""

    assert not pending(key)
    assert has_tombstone(flaky, key)


# -- Signed in while Redis is down --------------------------------------------


@pytest.mark.parametrize("kind", OUTAGES)
@pytest.mark.usefixtures("alice")
def test_signed_in_session_served_from_database_while_redis_down(
    flaky: FlakyRedis, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    caplog.set_level(logging.WARNING, logger="django.contrib.sessions")
    client = Client()
    key = sign_in(client, "alice")
    assert from_cache(client.get("/peek/"))
    stale = {key: cached_entry(flaky, key)}

    outage(flaky, kind)
    pages = [client.get("/peek/"), client.get("/nothing/")]
    stored = client.get("/put/?colour=blue")
    after_write = client.get("/peek/")

    assert [r.status_code for r in [*pages, stored, after_write]] == [200] * 4
    assert (user_of(pages[0]), from_cache(pages[0])) == ("alice", False)
    assert pages[1].content == b"nothing"
    assert user_of(after_write) == "alice"
    assert after_write.json()["data"]["colour"] == "blue"
    assert len(cache_errors(caplog)) == 1
    # Same key, still signed in; the entry the write could not update is
    # recorded for a purge.
    current = Key(client.cookies[COOKIE].value)
    assert current == key
    assert pending(key)

    if kind == "killed":
        flaky.restart()
    else:
        flaky.heal_losing_writes(stale)
    trust_again()
    response = client.get("/peek/")
    # Not the entry cached before the write (no colour): the database's row.
    assert user_of(response) == "alice"
    assert response.json()["data"]["colour"] == "blue"
    assert not pending(key)
    assert has_tombstone(flaky, key)


@pytest.mark.parametrize("kind", OUTAGES)
def test_idle_timeout_ends_session_while_redis_down(
    flaky: FlakyRedis, kind: str, alice: User
) -> None:
    client = Client()
    key = sign_in(client, "alice")
    pk = session_pk(key)
    assert from_cache(client.get("/peek/"))
    # The cached entry still says "live": only the database knows better.
    stale = {key: cached_entry(flaky, key)}

    outage(flaky, kind)
    idle_passed(key)
    response = client.get("/peek/", headers=JSON)

    assert response.status_code == 401
    assert response.json() == {"error": "session_expired", "reason": "idle"}
    assert not Session.objects.filter(pk=pk).exists()
    timeouts = SessionEvent.objects.filter(kind=SessionEvent.Kind.TIMEOUT)
    assert [(e.session_id, e.user_id, e.reason) for e in timeouts] == [
        (pk, alice.pk, "idle")
    ]
    assert pending(key)

    if kind == "killed":
        flaky.restart()
    else:
        flaky.heal_losing_writes(stale)
    trust_again()
    client.cookies[COOKIE] = key.raw
    assert user_of(client.get("/peek/")) == ""
    assert has_tombstone(flaky, key)
    assert not pending(key)


# -- Async twins -----------------------------------------------------------------


async def test_async_stream_survives_redis_killed_revoke_and_restart(
    flaky: FlakyRedis,
) -> None:
    names = ["reader", "writer", "revoked"]
    for name in names:
        await User.objects.acreate_user(name, password=PASSWORD)
    clients = [AsyncClient() for _ in names]
    keys = [await asign_in(c, n) for c, n in zip(clients, names, strict=True)]
    revoked = 2
    revoked_pk = await asession_pk(keys[revoked])
    written: dict[str, str] = {}
    failures: list[str] = []
    kill_at, revoke_at, restart_at = 15, 25, 40

    for step in range(60):
        if step == kill_at:
            flaky.kill()
        if step == revoke_at:
            assert await arevoke_session(revoked_pk, reason="test")
            assert await apending(keys[revoked])
        if step == restart_at:
            flaky.restart()
            time.sleep(cache_health.RETRY_AFTER + 0.1)
        who = step % len(names)
        client = clients[who]
        gone = who == revoked and step >= revoke_at
        if gone:
            client.cookies[COOKIE] = keys[revoked].raw
        writes = who == 1 and step % 2 == 0
        if writes:
            response = await client.get(f"/put/?s{step}={step}")
            written[f"s{step}"] = str(step)
        else:
            response = await client.get("/peek/")
        if response.status_code >= 500:
            failures.append(f"step {step}: {response.status_code}")
            continue
        if writes:
            continue
        expected = "" if gone else names[who]
        if user_of(response) != expected:
            failures.append(f"step {step}: {names[who]} is {user_of(response)!r}")
        if who == 1:
            data = response.json()["data"]
            if {k: data.get(k) for k in written} != written:
                failures.append(f"step {step}: lost session data")

    assert failures == []
    during = {k: v for k, v in written.items() if kill_at <= int(v) < restart_at}
    data = (await clients[1].get("/peek/")).json()["data"]
    assert during
    assert {k: data.get(k) for k in during} == during
    assert not await CachePurge.objects.aexists()
    assert has_tombstone(flaky, keys[revoked])
    response = await clients[0].get("/peek/")
    assert (user_of(response), from_cache(response)) == ("reader", True)


@pytest.mark.usefixtures("alice")
async def test_async_revoke_during_partition_stale_entry_not_revived(
    flaky: FlakyRedis,
) -> None:
    client = AsyncClient()
    key = await asign_in(client, "alice")
    assert from_cache(await client.get("/peek/"))
    stale = {key: cached_entry(flaky, key)}

    flaky.pause()
    assert await arevoke_session(await asession_pk(key), reason="test")
    assert await apending(key)
    flaky.heal_losing_writes(stale)
    assert not has_tombstone(flaky, key)
    trust_again()

    client.cookies[COOKIE] = key.raw
    response = await client.get("/peek/")

    assert user_of(response) == ""
    assert not await apending(key)
    assert has_tombstone(flaky, key)


# -- clearsessions drains too -----------------------------------------------------


@pytest.mark.usefixtures("alice")
def test_clearsessions_drains_pending_purges_when_redis_back(
    flaky: FlakyRedis,
) -> None:
    client = Client()
    key = sign_in(client, "alice")
    flaky.kill()
    assert revoke_session(session_pk(key), reason="test")
    assert pending(key)
    # A clearsessions process of its own, while Redis is still down: the
    # pending purges are kept for later.
    cache_health.health.suspect, cache_health.health.retry_at = True, 0.0
    call_command("clearsessions")
    assert pending(key)

    flaky.restart()
    cache_health.health.suspect, cache_health.health.retry_at = True, 0.0
    call_command("clearsessions")

    assert not pending(key)
    assert has_tombstone(flaky, key)
    assert cache_health.health.suspect is False


@pytest.mark.usefixtures("alice")
async def test_aclear_expired_drains_pending_purges_when_redis_back(
    flaky: FlakyRedis,
) -> None:
    client = AsyncClient()
    key = await asign_in(client, "alice")
    flaky.kill()
    assert await arevoke_session(await asession_pk(key), reason="test")
    cache_health.health.suspect, cache_health.health.retry_at = True, 0.0
    await cached_db.SessionStore.aclear_expired()
    assert await apending(key)

    flaky.restart()
    cache_health.health.suspect, cache_health.health.retry_at = True, 0.0
    await cached_db.SessionStore.aclear_expired()

    assert not await apending(key)
    assert has_tombstone(flaky, key)
