"""A revocation, sign-out or rotation that dies half-way loses nothing.

With the cached_db store, ending or re-keying a session is a database commit
followed by a cache tombstone. Two real interruptions between them:

- the process is killed (``SIGKILL``) right after the commit: the purge it
  owed was recorded in the same transaction, so the next sweep of any other
  process writes the tombstone, and the cached copy is not served again;
- an ASGI client disconnects while the view waits for the database: Django
  cancels the view's task, and the library's async call still finishes,
  tombstone and signal included.

Both need processes that share the database: PostgreSQL only, like
``tests/test_two_servers.py``.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache.backends.base import default_key_func
from django.db import connection
from django.test import Client

from django_sessionkit.backends import cache_entry, cache_health, cached_db
from django_sessionkit.models import CachePurge, Session
from tests.helpers import PASSWORD, Key, cached_engine_on, postgresql_only
from tests.servers import free_port, stop_process

pytestmark = [postgresql_only, pytest.mark.django_db(transaction=True)]

COOKIE = settings.SESSION_COOKIE_NAME
ROOT = Path(__file__).resolve().parent.parent
SIGNALS = "sessionkit-test:signals"


def server_env(redis_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings_two_servers",
        "SESSIONKIT_TEST_DATABASE": "postgres",
        "SESSIONKIT_SERVERS_DATABASE": str(connection.settings_dict["NAME"]),
        "SESSIONKIT_SERVERS_REDIS_URL": redis_url,
        # Only the interrupted call itself may write its tombstone.
        "SESSIONKIT_SERVERS_SWEEP_INTERVAL": "3600",
        **extra,
    }


def raw_entry(redis_url: str, key: Key) -> bytes | None:
    name = default_key_func(cache_entry.entry_key(key.hash), "", 1)
    value = redis.Redis.from_url(redis_url, socket_timeout=5).get(name)
    assert value is None or isinstance(value, bytes)
    return value


def has_tombstone(redis_url: str, key: Key) -> bool:
    return raw_entry(redis_url, key) == str(cache_entry.GONE).encode()


def eventually(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def cached(settings: Any, redis_url: str) -> Iterator[str]:
    with cached_engine_on(settings, redis_url):
        yield redis_url


def signed_in_and_cached(client: Client, redis_url: str, user: User) -> Key:
    """Sign ``user`` in, and read once so that Redis holds the session's entry."""
    name = user.get_username()
    response = client.post("/login/", {"username": name, "password": PASSWORD})
    assert response.status_code == 200, response.content
    key = Key(client.cookies[COOKIE].value)
    assert client.get("/peek/").json()["user"] == name
    assert raw_entry(redis_url, key) not in (None, str(cache_entry.GONE).encode())
    return key


def served_by_another_process(redis_url: str, key: Key) -> bool:
    """Whether this process, as another app server, still serves ``key``.

    It sweeps before it trusts the cache (``SESSIONKIT_CACHE_SWEEP_INTERVAL``
    has passed for it), as any server does within that interval.
    """
    cache_health.health.sweep_at = 0.0
    store = cached_db.SessionStore(key.raw)
    return bool(store.load())


# -- A process killed between its commit and its tombstone ------------------

# The child registers, for the first statement that deletes or re-keys a
# session row, a kill of itself right after that statement's transaction
# commits: the moment between the database and the cache.
CHILD = """
import os, signal, sys, django
django.setup()
from django.db import connection, transaction
from django_sessionkit.backends.cached_db import SessionStore

def die_after_commit(execute, sql, params, many, context):
    result = execute(sql, params, many, context)
    statement = sql.lstrip().upper()
    if statement.startswith(("DELETE", "UPDATE")) and "SESSIONKIT_SESSION" in statement:
        transaction.on_commit(lambda: os.kill(os.getpid(), signal.SIGKILL))
    return result

action, argument = sys.argv[1], sys.argv[2]
with connection.execute_wrapper(die_after_commit):
    if action == "revoke":
        from django_sessionkit.revocation import revoke_session
        revoke_session(int(argument), reason="test_revoke")
    elif action == "sign_out":
        SessionStore(argument).delete()
    elif action == "rotate":
        store = SessionStore(argument)
        store.load()
        store.cycle_key()
print("not killed")
"""


@pytest.mark.parametrize("action", ["revoke", "sign_out", "rotate"])
def test_killed_after_commit_purge_left_for_sweep(
    alice: User, cached: str, settings: Any, action: str
) -> None:
    settings.SESSIONKIT_CACHE_SWEEP_INTERVAL = timedelta(seconds=0)
    key = signed_in_and_cached(Client(), cached, alice)
    pk = Session.objects.get(key_hash=key.hash).pk
    argument = str(pk) if action == "revoke" else key.raw

    child = subprocess.run(
        [sys.executable, "-c", CHILD, action, argument],
        cwd=ROOT,
        env=server_env(cached),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr
    assert not Session.objects.filter(key_hash=key.hash).exists()
    # Killed before its tombstone: Redis still holds the live entry ...
    assert not has_tombstone(cached, key)
    # ... and the purge it owed was committed with the change.
    assert CachePurge.objects.filter(key_hash=key.hash).exists()
    assert not served_by_another_process(cached, key)
    assert has_tombstone(cached, key)
    assert not CachePurge.objects.filter(key_hash=key.hash).exists()


def test_purge_written_ahead_cleared_once_tombstoned(alice: User, cached: str) -> None:
    from django_sessionkit.revocation import revoke_session

    key = signed_in_and_cached(Client(), cached, alice)
    assert revoke_session(Session.objects.get(key_hash=key.hash), reason="test")
    assert has_tombstone(cached, key)
    assert not CachePurge.objects.exists()


# -- An ASGI client that disconnects mid-request ------------------------------


class AsgiServer:
    """uvicorn serving ``tests/asgi_server.py`` on a free loopback port."""

    def __init__(self, redis_url: str, log: Path) -> None:
        self.port = free_port()
        self.log = log
        env = server_env(
            redis_url,
            SESSIONKIT_SERVERS_URLCONF="tests.asgi_server",
            SESSIONKIT_SERVERS_SLOW_WRITES="0.8",
        )
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "tests.asgi_server:application",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--lifespan",
                    "off",
                    "--log-level",
                    "warning",
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if not eventually(self.answers, 30):
            self.stop()
            pytest.fail(f"uvicorn did not answer:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def answers(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"uvicorn exited:\n{self.output()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            conn.request("GET", "/whoami/")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def post_and_hang_up(self, path: str, key: Key | None) -> None:
        """POST, wait until the view is waiting for the database, then reset
        the connection."""
        cookie = f"Cookie: {COOKIE}={key.raw}\r\n" if key is not None else ""
        request = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{cookie}"
            "Content-Length: 0\r\nAccept: application/json\r\n\r\n"
        ).encode()
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.sendall(request)
        time.sleep(0.3)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture
def asgi_server(cached: str, tmp_path: Path) -> Iterator[AsgiServer]:
    redis.Redis.from_url(cached).delete(SIGNALS)
    server = AsgiServer(cached, tmp_path / "uvicorn.log")
    try:
        yield server
    finally:
        server.stop()


def signals_sent(redis_url: str) -> list[str]:
    sent = redis.Redis.from_url(redis_url).lrange(SIGNALS, 0, -1)
    return [item.decode() for item in sent]


def test_async_revoke_finishes_when_client_disconnects(
    alice: User, cached: str, asgi_server: AsgiServer
) -> None:
    key = signed_in_and_cached(Client(), cached, alice)
    pk = Session.objects.get(key_hash=key.hash).pk

    asgi_server.post_and_hang_up(f"/arevoke/{pk}/", None)

    assert eventually(lambda: not Session.objects.filter(pk=pk).exists())
    assert eventually(lambda: has_tombstone(cached, key), 5), asgi_server.output()
    assert eventually(lambda: f"revoked:{pk}:test_revoke" in signals_sent(cached), 5)
    assert "CancelledError" not in asgi_server.output()


def test_async_sign_out_finishes_when_client_disconnects(
    alice: User, cached: str, asgi_server: AsgiServer
) -> None:
    key = signed_in_and_cached(Client(), cached, alice)
    pk = Session.objects.get(key_hash=key.hash).pk

    asgi_server.post_and_hang_up("/asign-out/", key)

    assert eventually(lambda: not Session.objects.filter(pk=pk).exists())
    assert eventually(lambda: has_tombstone(cached, key), 5), asgi_server.output()


def test_async_rotation_finishes_when_client_disconnects(
    alice: User, cached: str, asgi_server: AsgiServer
) -> None:
    key = signed_in_and_cached(Client(), cached, alice)
    pk = Session.objects.get(key_hash=key.hash).pk

    asgi_server.post_and_hang_up("/arotate/", key)

    assert eventually(lambda: not Session.objects.filter(key_hash=key.hash).exists())
    assert Session.objects.filter(pk=pk).exists()
    assert eventually(lambda: has_tombstone(cached, key), 5), asgi_server.output()
    assert eventually(lambda: f"rotated:{pk}:test_rotate" in signals_sent(cached), 5)
