"""Shared fixtures. Real services only: SQLite or PostgreSQL, and Redis."""

from __future__ import annotations

import inspect
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest
import redis
from asgiref.sync import async_to_sync


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests the way Django's TestCase does.

    ``async_to_sync`` runs the test in an event loop on another thread, while
    the ORM's ``sync_to_async`` calls come back to this thread and so use the
    test's own database connection and transaction.
    """
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    async_to_sync(pyfuncitem.obj)(**{name: pyfuncitem.funcargs[name] for name in names})
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_server() -> Iterator[tuple[str, bool]]:
    """A Redis URL for the tests, and whether the tests own the whole server.

    ``SESSIONKIT_TEST_REDIS_URL`` names an existing server (use a database
    number of its own); otherwise a private ``redis-server`` is started on a
    free loopback port and stopped afterwards.
    """
    url = os.environ.get("SESSIONKIT_TEST_REDIS_URL")
    if url:
        try:
            redis.Redis.from_url(url).ping()
        except redis.RedisError as exc:
            pytest.fail(
                f"SESSIONKIT_TEST_REDIS_URL={url!r} does not answer ({exc}). "
                "Start that Redis, or unset the variable so the tests start "
                "their own redis-server."
            )
        yield url, False
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "The Redis tests need a Redis server: install one "
            "(Debian/Ubuntu: apt-get install redis-server) so the tests can "
            "start their own, or set SESSIONKIT_TEST_REDIS_URL to a running "
            "one, e.g. redis://127.0.0.1:6379/15."
        )
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="sessionkit-redis-")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"redis-server on port {port} did not start.")
                time.sleep(0.05)
        yield url, True
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def redis_url(redis_server: tuple[str, bool]) -> Iterator[str]:
    """A Redis URL whose database is empty at the start of the test."""
    url, owned = redis_server
    client = redis.Redis.from_url(url)
    if owned:
        client.flushdb()
    yield url
    if owned:
        client.flushdb()
