"""Small helpers shared by the test modules."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.dispatch import Signal
from django.http import HttpResponseBase
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_redis.pool import ConnectionFactory

from django_sessionkit.backends import cache_health
from django_sessionkit.backends.cache_access import session_cache
from django_sessionkit.backends.cache_entry import entry_key
from django_sessionkit.keys import hash_key
from django_sessionkit.models import Session, SessionEvent

COOKIE = settings.SESSION_COOKIE_NAME
#: The password of the users of ``tests/conftest.py`` (and of any a test makes).
PASSWORD = "correct horse"

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="real concurrency needs PostgreSQL (SESSIONKIT_TEST_DATABASE=postgres)",
)


# Real browsers' user agents, for the device tests.
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)


def carrying(key: str) -> Client:
    """A fresh browser presenting ``key``."""
    client = Client()
    client.cookies[COOKIE] = key
    return client


def user_of(response: HttpResponseBase) -> str:
    """The user ``/peek/`` answered for ("" when anonymous)."""
    assert response.status_code == 200, response.content
    return str(response.json()["user"])  # type: ignore[attr-defined]


def set_cookie(response: HttpResponseBase) -> str | None:
    """The session key the response sets, or ``None`` when it sets none."""
    morsel = response.cookies.get(COOKIE)
    return morsel.value if morsel is not None and morsel.value else None


def together(clients: list[Client], act: Callable[[Client], Any]) -> list[Any]:
    """Run ``act`` on every client, each in its own thread, released at once."""
    barrier = threading.Barrier(len(clients))
    results: list[Any] = [None] * len(clients)
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = act(clients[index])
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    return results


@contextmanager
def captured(signal: Signal) -> Iterator[list[dict[str, Any]]]:
    """Collect the keyword arguments of every ``signal`` sent meanwhile."""
    received: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        received.append(kwargs)

    signal.connect(receiver, weak=False)
    try:
        yield received
    finally:
        signal.disconnect(receiver)


def events(kind: str) -> list[SessionEvent]:
    """The ``SessionEvent`` rows of ``kind``, oldest first."""
    return list(SessionEvent.objects.filter(kind=kind).order_by("pk"))


class CountingConnection(redis.Connection):
    """A real redis-py connection that counts its round trips.

    A pipeline or an ``MGET`` is one ``send_packed_command`` call, so
    ``round_trips`` is what a request costs in network waits. Configure it
    through django-redis ``OPTIONS["CONNECTION_POOL_KWARGS"]``.
    """

    round_trips: ClassVar[int] = 0
    commands: ClassVar[list[str]] = []
    # The handshake of a new connection (HELLO, CLIENT SETINFO) is paid once
    # per connection, not per request: it is not counted.
    _connecting = False

    def on_connect(self) -> None:
        self._connecting = True
        try:
            super().on_connect()
        finally:
            self._connecting = False

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self._connecting:
            type(self).round_trips += 1
        super().send_packed_command(command, check_health)

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        if not self._connecting:
            type(self).commands.append(str(args[0]).upper())
        super().send_command(*args, **kwargs)

    def pack_commands(self, commands: Any) -> Any:
        # A pipeline: its commands go out in one send_packed_command.
        type(self).commands.extend(str(args[0]).upper() for args in commands)
        return super().pack_commands(commands)

    @classmethod
    def reset(cls) -> None:
        cls.round_trips = 0
        cls.commands = []


def session_cache_config(url: str) -> dict[str, Any]:
    """The django-redis cache the cached_db tests use, with short timeouts.

    Short socket timeouts make a paused (``SIGSTOP``) Redis fail fast, the
    way a production site should configure them too.
    """
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": url,
        "OPTIONS": {
            "SOCKET_CONNECT_TIMEOUT": 0.5,
            "SOCKET_TIMEOUT": 0.5,
            "CONNECTION_POOL_KWARGS": {"connection_class": CountingConnection},
        },
    }


def _reset_cache_trust(url: str) -> None:
    # django-redis keeps one connection pool per URL for the whole process:
    # drop any an earlier test made, so that this test's OPTIONS apply.
    ConnectionFactory._pools.pop(url, None)
    cache_health.health.suspect = False
    cache_health.health.retry_at = 0.0
    cache_health.health.sweep_at = 0.0


@contextmanager
def cached_engine_on(
    settings: Any, url: str, config: dict[str, Any] | None = None
) -> Iterator[None]:
    """Run with the cached_db store on the cache alias "sessions" at ``url``.

    ``config`` replaces :func:`session_cache_config`; ``"default"`` is a
    local-memory cache. The process's trust in the cache starts good and is
    reset afterwards, with django-redis' pool for ``url``.
    """
    _reset_cache_trust(url)
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "sessions": config or session_cache_config(url),
    }
    settings.SESSION_CACHE_ALIAS = "sessions"
    settings.SESSION_ENGINE = "django_sessionkit.backends.cached_db"
    CountingConnection.reset()
    try:
        yield
    finally:
        _reset_cache_trust(url)


@dataclass(frozen=True)
class Key:
    """A session key whose repr, in a failure report, shows only its hash."""

    raw: str = field(repr=False)
    hash: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hash", hash_key(self.raw))


@asynccontextmanager
async def acaptured_queries() -> AsyncIterator[CaptureQueriesContext]:
    """``CaptureQueriesContext`` on the connection the ORM's async calls use.

    Not the test thread's: the async ORM runs its queries where
    ``sync_to_async`` runs; the event loop's thread has a connection of its
    own.
    """
    orm_connection = await sync_to_async(lambda: connections[DEFAULT_DB_ALIAS])()
    queries = CaptureQueriesContext(orm_connection)
    await sync_to_async(queries.__enter__)()
    try:
        yield queries
    finally:
        await sync_to_async(queries.__exit__)(None, None, None)


def forget_cached_entries() -> None:
    """Drop the cached store's entries of every session row (tombstones stay).

    The tests move time by rewriting rows, and an entry written before would
    still say the old times; without it the store reads the rewritten row, as
    once the entry's time has run out or Redis has evicted it. The database
    store has no entries.
    """
    if settings.SESSION_ENGINE != "django_sessionkit.backends.cached_db":
        return
    key_hashes = Session.objects.values_list("key_hash", flat=True)
    session_cache().delete_many([entry_key(h) for h in key_hashes])


aforget_cached_entries = sync_to_async(forget_cached_entries)
