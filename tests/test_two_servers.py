"""Two app servers, one Redis, one PostgreSQL: no sticky sessions needed.

Each server is a real WSGI server process (``tests/wsgi_server.py``) on a free
loopback port, with the cached_db store (``tests/settings_two_servers.py``)
and this test's own PostgreSQL test database: the tests commit their rows
(``transaction=True``) so that the servers see them. Browsers are plain HTTP
clients that keep one session cookie each. Server A can be made to reach
Redis through a relay that the test cuts: a partition between A and Redis
while B still reaches it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import redis
from django.conf import settings
from django.core.cache.backends.base import default_key_func
from django.db import connection

from django_sessionkit.backends import cache_entry
from django_sessionkit.models import CachePurge, Session, SessionEvent
from tests.helpers import PASSWORD, Key, postgresql_only
from tests.servers import RedisProcess, free_port, stop_process

pytestmark = [postgresql_only, pytest.mark.django_db(transaction=True)]

COOKIE = settings.SESSION_COOKIE_NAME
ROOT = Path(__file__).resolve().parent.parent
SERVE = (
    "import sys, django; django.setup(); "
    "from tests.wsgi_server import serve; serve(int(sys.argv[1]))"
)
START_TIMEOUT = 30.0


@dataclass
class AppServer:
    """One app server process and the file that collects its output."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.proc)


@dataclass
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Browser:
    """An HTTP client with one session cookie, which it updates as told."""

    key: Key | None = None

    def request(
        self,
        server: AppServer,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
    ) -> Answer:
        headers = {"Accept": "application/json"}
        if self.key is not None:
            headers["Cookie"] = f"{COOKIE}={self.key.raw}"
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            conn.request(method, path, body, headers)
            response = conn.getresponse()
            answer = Answer(response.status, response.read())
            for header in response.headers.get_all("Set-Cookie") or []:
                cookie = SimpleCookie(header)
                if COOKIE in cookie:
                    value = cookie[COOKIE].value
                    self.key = Key(value) if value else None
        finally:
            conn.close()
        assert answer.status < 500, f"{server.name}: {answer.status}\n{server.output()}"
        return answer

    def whoami(self, server: AppServer) -> dict[str, Any]:
        answer = self.request(server, "GET", "/whoami/")
        assert answer.status == 200, f"{server.name}: {answer.status}"
        state: dict[str, Any] = answer.json()
        return state

    def sign_in(self, server: AppServer, username: str) -> Key:
        form = {"username": username, "password": PASSWORD}
        answer = self.request(server, "POST", "/login/", form)
        assert answer.status == 200, f"{server.name}: {answer.status}"
        assert self.key is not None
        return self.key


def server_env(redis_url: str, extra: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings_two_servers",
        "SESSIONKIT_TEST_DATABASE": "postgres",
        "SESSIONKIT_SERVERS_DATABASE": str(connection.settings_dict["NAME"]),
        "SESSIONKIT_SERVERS_REDIS_URL": redis_url,
        **extra,
    }


def wait_until_answering(server: AppServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if server.proc.poll() is not None:
            pytest.fail(f"{server.name} exited:\n{server.output()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            try:
                conn.request("GET", "/whoami/")
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    return
            finally:
                conn.close()
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{server.name} did not answer:\n{server.output()}")
        time.sleep(0.05)


class Link:
    """A TCP relay from a loopback port to Redis: a network path to cut.

    Server A reaches Redis through it; ``cut()`` closes every connection and
    refuses new ones, a partition between A and Redis while B, connected
    directly, still reaches it.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self.listener.accept()
            except OSError:
                return
            try:
                far = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                near.close()
                continue
            with self.lock:
                self.sockets += [near, far]
            for source, sink in ((near, far), (far, near)):
                threading.Thread(
                    target=self._pump, args=(source, sink), daemon=True
                ).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        # shutdown() first: close() alone leaves a listener that a thread is
        # blocked on accepting.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self.lock:
            for end in self.sockets:
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()
            self.sockets = []


@dataclass
class Cluster:
    """Two app servers (``a`` and ``b``) and the Redis they share."""

    cache_server: RedisProcess
    env: dict[str, str] = field(repr=False)
    a: AppServer
    b: AppServer
    link_a: Link | None = None

    def raw(self) -> redis.Redis:
        return redis.Redis.from_url(self.cache_server.url, socket_timeout=5)

    def has_tombstone(self, key: Key) -> bool:
        # django-redis keeps the tombstone in the entry's own key.
        name = default_key_func(cache_entry.entry_key(key.hash), "", 1)
        return self.raw().get(name) == str(cache_entry.GONE).encode()

    def manage(self, *args: str) -> str:
        """Run a management command in a process of its own; return its output."""
        done = subprocess.run(
            [sys.executable, "-m", "django", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture
def start_cluster(
    transactional_db: None, tmp_path: Path
) -> Iterator[Callable[..., Cluster]]:
    """Start two app servers and a Redis; stop them all afterwards.

    Keyword arguments become environment variables of the servers. Their
    output is printed at teardown, which pytest shows when the test failed.
    """
    started: list[AppServer] = []
    redises: list[RedisProcess] = []
    links: list[Link] = []

    def start(*, link_a: bool = False, **extra: str) -> Cluster:
        server = RedisProcess().start()
        redises.append(server)
        env = server_env(server.url, extra)
        link = None
        if link_a:
            link = Link(server.port)
            links.append(link)
        pair = []
        for name in ("A", "B"):
            app_env = env
            if name == "A" and link is not None:
                app_env = {**env, "SESSIONKIT_SERVERS_REDIS_URL": link.url}
            port = free_port()
            log = tmp_path / f"server-{name}-{port}.log"
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-c", SERVE, str(port)],
                    cwd=ROOT,
                    env=app_env,
                    stdout=fd,
                    stderr=subprocess.STDOUT,
                )
            finally:
                os.close(fd)
            app = AppServer(name, port, proc, log)
            started.append(app)
            pair.append(app)
        for app in pair:
            wait_until_answering(app)
        return Cluster(server, env, pair[0], pair[1], link)

    try:
        yield start
    finally:
        for app in started:
            app.stop()
        for app in started:
            print(f"--- output of app server {app.name} ---\n{app.output()}")
        for link in links:
            link.cut()
        for server in redises:
            server.stop()


@pytest.mark.usefixtures("alice")
def test_two_servers_share_sessions_and_revocation(
    start_cluster: Callable[..., Cluster],
) -> None:
    cluster = start_cluster()
    a, b = cluster.a, cluster.b
    browser = Browser()
    key = browser.sign_in(a, "alice")

    # Signed in on A, served by B from the shared cache; a write on A is
    # what B reads next.
    assert browser.whoami(b) == {
        "user": "alice",
        "data": {},
        "from_cache": True,
    }
    assert browser.request(a, "GET", "/put/?colour=blue").status == 200
    assert browser.whoami(b) == {
        "user": "alice",
        "data": {"colour": "blue"},
        "from_cache": True,
    }
    assert browser.whoami(a)["user"] == "alice"

    # Signed out through A: a copy of the cookie is anonymous on B at once.
    assert browser.request(a, "POST", "/logout/").status == 200
    assert browser.key is None
    assert cluster.has_tombstone(key)
    copy = Browser(key)
    assert copy.whoami(b) == {"user": "", "data": {}, "from_cache": False}
    assert copy.key is None

    # Revoked from a third process, with the management command.
    key = browser.sign_in(a, "alice")
    assert browser.whoami(b)["from_cache"] is True
    pk = Session.objects.get(key_hash=key.hash).pk
    assert cluster.manage("sessionkit_revoke", "--session", str(pk)).strip() == (
        "Revoked 1 session."
    )
    assert cluster.has_tombstone(key)
    assert Browser(key).whoami(b)["user"] == ""
    assert Browser(key).whoami(a)["user"] == ""
    assert not Session.objects.exists()


INTERVAL, GRACE = 2.0, 2.0


@pytest.mark.usefixtures("alice")
def test_rotation_on_one_server_honoured_by_the_other(
    start_cluster: Callable[..., Cluster],
) -> None:
    cluster = start_cluster(
        SESSIONKIT_SERVERS_ROTATE_INTERVAL=str(INTERVAL),
        SESSIONKIT_SERVERS_ROTATE_GRACE=str(GRACE),
    )
    a, b = cluster.a, cluster.b
    browser = Browser()
    old = browser.sign_in(a, "alice")
    signed_in = time.monotonic()
    assert browser.whoami(b)["user"] == "alice"
    assert browser.key == old

    # The interval passes; the next request on A rotates the key.
    time.sleep(max(0.0, signed_in + INTERVAL + 0.2 - time.monotonic()))
    assert browser.whoami(a)["user"] == "alice"
    rotated = time.monotonic()
    new = browser.key
    assert new is not None and new != old
    row = Session.objects.get()
    assert (row.key_hash, row.previous_key_hash) == (new.hash, old.hash)
    assert cluster.has_tombstone(old)

    # B serves the new key at once, from the entry A wrote.
    assert Browser(new).whoami(b) == {"user": "alice", "data": {}, "from_cache": True}
    # B still accepts the old key within the grace window, and hands out the
    # new one again.
    late = Browser(old)
    assert late.whoami(b)["user"] == "alice", "old key refused within the grace"
    assert late.key == new

    # After the grace window the old key is refused on B: a copied key.
    time.sleep(max(0.0, rotated + GRACE + 0.5 - time.monotonic()))
    assert Browser(old).whoami(b)["user"] == ""
    anomalies = SessionEvent.objects.filter(kind=SessionEvent.Kind.ANOMALY)
    assert [(e.session_id, e.reason) for e in anomalies] == [(row.pk, "stale_key")]
    # SESSIONKIT_ON_STALE_KEY="revoke" (the default): the session ends on
    # every server, whichever key is presented.
    assert Browser(new).whoami(a)["user"] == ""
    assert not Session.objects.exists()


@pytest.mark.usefixtures("alice")
def test_revoke_through_server_cut_off_from_redis_is_final_on_the_other(
    start_cluster: Callable[..., Cluster],
) -> None:
    # A partition between A and Redis only: B still reaches Redis and has
    # never seen a cache failure itself. The purge A could only record
    # reaches Redis through B's sweep, at most one sweep interval later; then
    # B no longer serves the entry it holds for the ended session.
    cluster = start_cluster(link_a=True, SESSIONKIT_SERVERS_SWEEP_INTERVAL="1")
    a, b, link = cluster.a, cluster.b, cluster.link_a
    assert link is not None
    browser = Browser()
    key = browser.sign_in(a, "alice")
    assert browser.whoami(b) == {"user": "alice", "data": {}, "from_cache": True}

    link.cut()
    assert browser.request(a, "POST", "/logout/").status == 200
    assert browser.key is None
    # A recorded the tombstone it could not write.
    assert CachePurge.objects.filter(key_hash=key.hash).exists()
    assert not Session.objects.exists()

    time.sleep(1.2)  # one sweep interval of B's
    copy = Browser(key)
    assert copy.whoami(b)["user"] == "", "a signed-out session is served by B"
