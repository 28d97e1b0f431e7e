"""The cached_db store behind Redis Sentinel, as the docs recommend it.

Real processes on free loopback ports: a primary, a replica and one Sentinel.
The session cache is django-redis' ``DefaultClient`` with the
``SentinelConnectionFactory`` and one ``LOCATION`` naming the service: every
command goes to the primary the Sentinel names, none to a replica.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import caches
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_redis.pool import ConnectionFactory

from django_sessionkit.backends.cache_entry import GONE, entry_key
from django_sessionkit.checks.cache import check_session_cache
from django_sessionkit.keys import hash_key
from django_sessionkit.models import Session
from django_sessionkit.revocation import revoke_session
from tests.helpers import PASSWORD, cached_engine_on, carrying, user_of
from tests.servers import INSTALL_HINT, RedisProcess, free_port

pytestmark = pytest.mark.django_db

COOKIE = settings.SESSION_COOKIE_NAME
SERVICE = "mymaster"
LOCATION = f"redis://{SERVICE}/0"
#: Commands that read keys: none of them may reach the replica.
READS = frozenset(
    {
        *("get", "mget", "getex", "exists", "ttl", "pttl", "type", "strlen"),
        *("scan", "keys", "eval", "evalsha"),
    }
)


def sentinel_cache_config(
    sentinel_port: int, client_class: str = "django_redis.client.DefaultClient"
) -> dict[str, Any]:
    """The session cache the docs recommend with Sentinel."""
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": LOCATION,
        "OPTIONS": {
            "CLIENT_CLASS": client_class,
            "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
            "SENTINELS": [("127.0.0.1", sentinel_port)],
            "SOCKET_CONNECT_TIMEOUT": 0.5,
            "SOCKET_TIMEOUT": 0.5,
        },
    }


# -- Processes -------------------------------------------------------------------


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 15) -> float:
    """Poll ``condition`` until it holds; return the seconds it took."""
    start = time.monotonic()
    while True:
        try:
            if condition():
                return time.monotonic() - start
        except redis.ConnectionError:
            pass
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll ``condition`` for at most ``timeout`` seconds; return whether it held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


class SentinelProcess:
    """A private ``redis-server --sentinel`` monitoring one primary as ``mymaster``.

    Its configuration file (which Sentinel rewrites) lives in a temporary
    directory removed by :meth:`stop`.
    """

    def __init__(self, primary_port: int, down_after_ms: int = 1000) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(f"redis-server was not found. {INSTALL_HINT}")
        self.binary = binary
        self.port = free_port()
        self.workdir = tempfile.mkdtemp(prefix="sessionkit-sentinel-")
        self.config = os.path.join(self.workdir, "sentinel.conf")
        with open(self.config, "w") as file:
            file.write(
                f"port {self.port}\n"
                "bind 127.0.0.1\n"
                "daemonize no\n"
                f"dir {self.workdir}\n"
                "sentinel resolve-hostnames no\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 1\n"
                f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}\n"
                f"sentinel failover-timeout {SERVICE} 10000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
        self.proc: subprocess.Popen[bytes] | None = None

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def start(self, timeout: float = 10) -> SentinelProcess:
        """Start the Sentinel and wait until it answers."""
        self.proc = subprocess.Popen(
            [self.binary, self.config, "--sentinel"],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def answers() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis sentinel on port {self.port} exited.")
            with self.client() as client:
                return bool(client.ping())

        wait_for("the sentinel to answer", answers, timeout)
        return self

    def primary_port(self) -> int:
        """The primary's port, once no failover of it is under way."""
        with self.client() as client:
            state = client.sentinel_master(SERVICE)
        # The clients' check (redis.sentinel.Sentinel.check_master_state).
        if not state["is_master"] or state["is_sdown"] or state["is_odown"]:
            return 0
        return int(state["port"])

    def replica_ports(self) -> list[int]:
        """The replicas the Sentinel knows as connected and linked to the primary."""
        with self.client() as client:
            replicas = client.sentinel_slaves(SERVICE)
        return [
            int(r["port"])
            for r in replicas
            if r["is_slave"]
            and not r["is_disconnected"]
            and not r["is_sdown"]
            and r["master-link-status"] == "ok"
        ]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)


def client_of(server: RedisProcess) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=2)


def role(server: RedisProcess) -> str:
    with client_of(server) as client:
        return str(client.info("replication")["role"])


def commandstats(server: RedisProcess) -> dict[str, int]:
    """How many times each command ran on ``server`` (``INFO commandstats``)."""
    with client_of(server) as client:
        stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(values["calls"])
        for name, values in stats.items()
    }


def reads_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """The read commands that ran between two ``commandstats`` snapshots."""
    return {
        name: after.get(name, 0) - before.get(name, 0)
        for name in READS
        if after.get(name, 0) != before.get(name, 0)
    }


def forget_pools() -> None:
    """Drop django-redis' process-wide pools for the service.

    django-redis keys its pools by LOCATION alone; each test has a Sentinel
    on a port of its own, so a pool left over would ask a stopped Sentinel.
    """
    for url in [u for u in ConnectionFactory._pools if u.startswith(LOCATION)]:
        ConnectionFactory._pools.pop(url).disconnect()


@dataclass
class Replicated:
    """A primary, its replica, and a Sentinel that knows both."""

    primary: RedisProcess
    replica: RedisProcess
    sentinel: SentinelProcess


@pytest.fixture
def replicated() -> Iterator[Replicated]:
    primary = RedisProcess()
    replica = RedisProcess()
    sentinel: SentinelProcess | None = None
    try:
        for server in (primary, replica):
            server.start()
            with client_of(server) as client:
                # Start a full sync at once instead of after the 5 s default.
                client.config_set("repl-diskless-sync-delay", 0)
        with client_of(replica) as client:
            client.replicaof("127.0.0.1", primary.port)
        sentinel = SentinelProcess(primary.port).start()
        wait_for(
            "the sentinel to know the primary and its replica",
            lambda: (
                sentinel is not None
                and sentinel.primary_port() == primary.port
                and sentinel.replica_ports() == [replica.port]
            ),
        )
        yield Replicated(primary, replica, sentinel)
    finally:
        forget_pools()
        if sentinel is not None:
            sentinel.stop()
        replica.stop()
        primary.stop()


@pytest.fixture
def sentinel_engine(settings: Any, replicated: Replicated) -> Iterator[Replicated]:
    """The cached_db store on the Sentinel-managed primary, as the docs say."""
    forget_pools()
    config = sentinel_cache_config(replicated.sentinel.port)
    try:
        with cached_engine_on(settings, LOCATION, config):
            yield replicated
    finally:
        forget_pools()


def sign_in(client: Client) -> tuple[str, str]:
    """Sign alice in; return the session key the cookie carries, and its hash."""
    response = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200, response.content
    key = client.cookies[COOKIE].value
    return key, hash_key(key)


def stored(server: RedisProcess, key: str) -> bool:
    """Whether ``key`` (a session cache key, unprefixed) is on ``server``."""
    with client_of(server) as client:
        return bool(client.exists(caches["sessions"].make_key(key)))


def tombstoned_on(server: RedisProcess, key_hash: str) -> bool:
    """Whether ``server`` holds the tombstone of ``key_hash`` (in its entry key)."""
    with client_of(server) as client:
        value = client.get(caches["sessions"].make_key(entry_key(key_hash)))
    return value == str(GONE).encode()


def replicated_entry(servers: Replicated, key_hash: str) -> None:
    """Wait until the session's entry is on the replica too: it could answer."""
    wait_for(
        "the entry to replicate",
        lambda: stored(servers.replica, entry_key(key_hash)),
    )


def session_queries(queries: CaptureQueriesContext) -> list[str]:
    table = Session._meta.db_table
    return [q["sql"] for q in queries.captured_queries if table in q["sql"]]


def served_from_cache(client: Client) -> bool:
    """Request ``/peek/``; return whether the session came from the cache."""
    response = client.get("/peek/")
    assert response.status_code == 200, response.content
    return bool(response.wsgi_request.session.from_cache)  # type: ignore[attr-defined]


def peek_from_cache(client: Client) -> str:
    """Request ``/peek/``; assert it was answered from the cache; return the user."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/peek/")
    assert response.wsgi_request.session.from_cache is True  # type: ignore[attr-defined]
    assert session_queries(queries) == []
    return user_of(response)


# -- System checks ------------------------------------------------------------------


def test_check_sentinel_connection_factory_default_client_passes(
    settings: Any,
) -> None:
    settings.SESSION_ENGINE = "django_sessionkit.backends.cached_db"
    settings.SESSION_CACHE_ALIAS = "sessions"
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "sessions": sentinel_cache_config(26379),
    }
    assert check_session_cache() == []


def test_check_sentinel_replica_location_reports_e017(settings: Any) -> None:
    """``?is_master=0`` sends every command of the cache to a replica."""
    config = sentinel_cache_config(26379)
    config["LOCATION"] = f"{LOCATION}?is_master=0"
    settings.SESSION_ENGINE = "django_sessionkit.backends.cached_db"
    settings.SESSION_CACHE_ALIAS = "sessions"
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "sessions": config,
    }
    assert [m.id for m in check_session_cache()] == ["sessionkit.E017"]


def test_check_sentinel_client_passes(settings: Any) -> None:
    """The store reads through the client's primary connection (measured by
    ``test_sentinel_client_reads_replica``)."""
    settings.SESSION_ENGINE = "django_sessionkit.backends.cached_db"
    settings.SESSION_CACHE_ALIAS = "sessions"
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "sessions": sentinel_cache_config(
            26379, client_class="django_redis.client.SentinelClient"
        ),
    }
    assert check_session_cache() == []


# -- Reads go to the primary, never the replica -------------------------------------


def test_sentinel_requests_served_from_primary_only(
    sentinel_engine: Replicated, alice: User
) -> None:
    servers = sentinel_engine
    client = Client()
    _, key_hash = sign_in(client)
    assert stored(servers.primary, entry_key(key_hash))
    # The entry replicates: the replica could answer, were it asked.
    replicated_entry(servers, key_hash)
    primary_before = commandstats(servers.primary)
    replica_before = commandstats(servers.replica)

    users = [peek_from_cache(client) for _ in range(5)]

    assert users == ["alice"] * 5
    primary_after = commandstats(servers.primary)
    assert primary_after.get("get", 0) - primary_before.get("get", 0) == 5
    assert reads_between(replica_before, commandstats(servers.replica)) == {}


def test_sentinel_client_reads_replica(
    settings: Any, sentinel_engine: Replicated, alice: User
) -> None:
    """The same measurement sees SentinelClient read a replica through
    Django's cache API, and the store, which asks django-redis for its
    primary connection, never read it."""
    servers = sentinel_engine
    settings.CACHES = {
        **settings.CACHES,
        "sessions": sentinel_cache_config(
            servers.sentinel.port, client_class="django_redis.client.SentinelClient"
        ),
    }
    client = Client()
    _, key_hash = sign_in(client)
    assert stored(servers.primary, entry_key(key_hash))
    replicated_entry(servers, key_hash)
    replica_before = commandstats(servers.replica)

    assert peek_from_cache(client) == "alice"
    assert reads_between(replica_before, commandstats(servers.replica)) == {}

    assert caches["sessions"].get(entry_key(key_hash)) is not None
    assert reads_between(replica_before, commandstats(servers.replica)) == {"get": 1}


# -- Revocation ---------------------------------------------------------------------


def test_sentinel_revoked_session_is_anonymous_next_request(
    sentinel_engine: Replicated, alice: User
) -> None:
    servers = sentinel_engine
    client = Client()
    key, key_hash = sign_in(client)
    assert peek_from_cache(client) == "alice"
    replica_before = commandstats(servers.replica)

    assert revoke_session(Session.objects.get(key_hash=key_hash), reason="test")

    assert tombstoned_on(servers.primary, key_hash)
    response = client.get("/peek/")
    assert user_of(response) == ""
    assert response.wsgi_request.session.from_cache is False  # type: ignore[attr-defined]
    # The same cookie presented again, by anyone: still nobody.
    assert user_of(carrying(key).get("/peek/")) == ""
    assert reads_between(replica_before, commandstats(servers.replica)) == {}


# -- Failover -------------------------------------------------------------------------


def test_sentinel_failover_after_primary_crash_keeps_sessions_and_revocation(
    sentinel_engine: Replicated, alice: User
) -> None:
    servers = sentinel_engine
    client = Client()
    _, key_hash = sign_in(client)
    assert peek_from_cache(client) == "alice"
    replicated_entry(servers, key_hash)

    servers.primary.kill()
    wait_for(
        "the sentinel to promote the replica",
        lambda: (
            servers.sentinel.primary_port() == servers.replica.port
            and role(servers.replica) == "master"
        ),
    )

    # Still signed in, and answered by the new primary's copy of the entry.
    new_before = commandstats(servers.replica)
    assert peek_from_cache(client) == "alice"
    assert commandstats(servers.replica).get("get", 0) > new_before.get("get", 0)

    assert revoke_session(Session.objects.get(key_hash=key_hash), reason="test")

    assert tombstoned_on(servers.replica, key_hash)
    assert user_of(client.get("/peek/")) == ""


def failover(servers: Replicated) -> None:
    """``SENTINEL FAILOVER``: wait until the replica is the primary Sentinel names."""
    with servers.sentinel.client() as client:
        assert client.sentinel_failover(SERVICE)
    wait_for(
        "the sentinel to promote the replica",
        lambda: (
            servers.sentinel.primary_port() == servers.replica.port
            and role(servers.replica) == "master"
        ),
    )


def demoted(servers: Replicated) -> None:
    """Wait until Sentinel has made the old primary a synced replica of the new one.

    Sentinel leaves a reachable old primary alone for about 10 s after the
    switch, then sends it ``REPLICAOF`` (and ``CLIENT KILL``); the full sync
    that follows replaces its data with the new primary's.
    """

    def synced() -> bool:
        with client_of(servers.primary) as client:
            info = client.info("replication")
        return bool(
            info["role"] == "slave"
            and info["master_port"] == servers.replica.port
            and info["master_link_status"] == "up"
        )

    wait_for("the old primary to become a replica", synced, timeout=30)


def test_sentinel_manual_failover_keeps_sessions_and_revocation(
    sentinel_engine: Replicated, alice: User
) -> None:
    servers = sentinel_engine
    client = Client()
    _, key_hash = sign_in(client)
    assert peek_from_cache(client) == "alice"
    replicated_entry(servers, key_hash)

    failover(servers)
    demoted(servers)

    new_before = commandstats(servers.replica)
    old_before = commandstats(servers.primary)
    assert peek_from_cache(client) == "alice"
    assert commandstats(servers.replica).get("get", 0) > new_before.get("get", 0)
    assert reads_between(old_before, commandstats(servers.primary)) == {}

    assert revoke_session(Session.objects.get(key_hash=key_hash), reason="test")

    assert tombstoned_on(servers.replica, key_hash)
    assert user_of(client.get("/peek/")) == ""


def test_sentinel_revocation_during_manual_failover_stays_final(
    sentinel_engine: Replicated, alice: User, settings: Any
) -> None:
    # Redis replicates asynchronously: a tombstone the old primary accepted
    # after the switch is lost when it is demoted. Waiting for a replica to
    # keep it (Redis WAIT) turns that into a failed write, recorded in the
    # database and written to the new primary before the cache is trusted.
    settings.SESSIONKIT_CACHE_WAIT_REPLICAS = 1
    servers = sentinel_engine
    client = Client()
    key, key_hash = sign_in(client)
    assert peek_from_cache(client) == "alice"
    replicated_entry(servers, key_hash)

    failover(servers)
    # The switch is done; the old primary has not been demoted yet, and this
    # process's connection still reaches it.
    assert role(servers.primary) == "master"
    assert revoke_session(Session.objects.get(key_hash=key_hash), reason="test")
    assert user_of(client.get("/peek/")) == ""
    demoted(servers)

    # The stolen cookie, presented again until a request has read the new
    # primary (a first one may meet the killed connection and be served by
    # the database for RETRY_AFTER): nobody, every time.
    users: list[str] = []

    def reads_new_primary() -> bool:
        # A fresh browser each time: an anonymous answer deletes the cookie.
        before = commandstats(servers.replica).get("get", 0)
        users.append(user_of(carrying(key).get("/peek/")))
        return commandstats(servers.replica).get("get", 0) > before

    assert wait_until(reads_new_primary, timeout=20)
    assert set(users) == {""}
