"""Shared fixtures. Real services only: SQLite or PostgreSQL, and Redis."""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User

from tests.helpers import PASSWORD, cached_engine_on
from tests.servers import RedisProcess


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
    try:
        server = RedisProcess().start()
    except RuntimeError as exc:
        pytest.fail(
            f"{exc} Or set SESSIONKIT_TEST_REDIS_URL to a running server, "
            "e.g. redis://127.0.0.1:6379/15."
        )
    try:
        yield server.url, True
    finally:
        server.stop()


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


@pytest.fixture
def cached_engine(settings: Any, redis_url: str) -> Iterator[str]:
    """Run the test with the cached_db store on a private Redis; yield its URL.

    See :func:`tests.helpers.cached_engine_on`.
    """
    with cached_engine_on(settings, redis_url):
        yield redis_url


@pytest.fixture(params=["db", "cached_db"])
def engine(request: pytest.FixtureRequest) -> str:
    """Run the test with each session store."""
    if request.param == "cached_db":
        request.getfixturevalue("cached_engine")
    return str(request.param)


# -- Users -------------------------------------------------------------------
# The same few people in every test module; each signs in with PASSWORD.


@pytest.fixture
def alice(db: None) -> User:
    """A user with no privileges."""
    return User.objects.create_user("alice", "alice@example.com", PASSWORD)


@pytest.fixture
def bob(db: None) -> User:
    """Another user with no privileges."""
    return User.objects.create_user("bob", "bob@example.com", PASSWORD)


@pytest.fixture
def staff(db: None) -> User:
    """A staff member (``is_staff``) who is not a superuser."""
    return User.objects.create_user(
        "staff", "staff@example.com", PASSWORD, is_staff=True
    )


@pytest.fixture
def root(db: None) -> User:
    """A superuser."""
    return User.objects.create_superuser("root", "root@example.com", PASSWORD)
