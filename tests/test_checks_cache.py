"""System checks of the session cache (E014-E017, W002, W107): the cached
store only."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from django.core import checks
from django.core.cache import caches
from django.test import override_settings
from django_redis.cache import RedisCache

from django_sessionkit.backends import cache_access, cached_db
from django_sessionkit.checks.cache import (
    check_session_cache,
    check_session_cache_timeouts,
)
from django_sessionkit.checks.installation import check_session_engine

CACHED = "django_sessionkit.backends.cached_db"
CACHE_IDS = {
    "sessionkit.E014",
    "sessionkit.E015",
    "sessionkit.E016",
    "sessionkit.E017",
    "sessionkit.W002",
}
DJANGO_REDIS = "django_redis.cache.RedisCache"
HERD_CLIENT = "django_redis.client.HerdClient"
DJANGO_BUILTIN_REDIS = "django.core.cache.backends.redis.RedisCache"
LOCMEM = "django.core.cache.backends.locmem.LocMemCache"
DUMMY = "django.core.cache.backends.dummy.DummyCache"
PRIMARY = "redis://10.0.0.1:6379/1"
REPLICA = "redis://10.0.0.2:6379/1"


class SessionStore(cached_db.SessionStore):
    """A project's store built on the cached one: ``SESSION_ENGINE = __name__``."""


class ProjectRedisCache(RedisCache):
    """A project's cache built on django-redis': ``BACKEND = PROJECT_REDIS``."""


PROJECT_REDIS = f"{__name__}.ProjectRedisCache"


def ids(messages: Sequence[checks.CheckMessage]) -> list[str]:
    return [str(message.id) for message in messages]


def only(messages: Sequence[checks.CheckMessage], check_id: str) -> checks.CheckMessage:
    assert ids(messages) == [check_id]
    return messages[0]


def redis_cache(**config: Any) -> dict[str, Any]:
    """A django-redis cache on one primary, with ``config`` on top."""
    return {"BACKEND": DJANGO_REDIS, "LOCATION": PRIMARY, **config}


def cached(
    cache: dict[str, Any] | None = None,
    alias: str = "sessions",
    engine: str = CACHED,
    **more: Any,
) -> override_settings:
    """Settings with ``engine`` (the cached store) and ``cache`` as the session
    cache."""
    return override_settings(
        SESSION_ENGINE=engine,
        SESSION_CACHE_ALIAS=alias,
        CACHES={
            "default": {"BACKEND": LOCMEM},
            "sessions": cache if cache is not None else redis_cache(),
        },
        **more,
    )


# -- Only with the cached store ---------------------------------------------------


def test_good_session_cache_ok() -> None:
    with cached():
        assert check_session_cache() == []
        assert check_session_engine() == []


def test_subclass_of_cached_store_checked() -> None:
    several = {"BACKEND": DJANGO_BUILTIN_REDIS, "LOCATION": [PRIMARY, REPLICA]}
    with cached(several, engine=__name__):
        assert ids(check_session_cache()) == ["sessionkit.E017"]


BROKEN = {
    "BACKEND": DJANGO_REDIS,
    "LOCATION": [PRIMARY, REPLICA],
    "OPTIONS": {"IGNORE_EXCEPTIONS": True, "CLIENT_CLASS": HERD_CLIENT},
}


@pytest.mark.parametrize(
    "engine",
    [
        "django_sessionkit.backends.db",
        "django.contrib.sessions.backends.cached_db",
        "django.contrib.sessions.backends.cache",
        "no_such_package.sessions",
    ],
)
def test_other_engines_not_checked(engine: str) -> None:
    # Every problem at once, but the sessions are not cached by our store.
    with cached(BROKEN, "nope", engine, SESSIONKIT_CACHE_MAX_AGE=None):
        assert check_session_cache() == []
    with cached(BROKEN, engine=engine, SESSIONKIT_CACHE_MAX_AGE=None):
        assert check_session_cache() == []


def test_subclass_of_database_store_not_checked() -> None:
    # tests.test_checks defines a SessionStore built on the database store.
    with cached(BROKEN, engine="tests.test_checks", SESSIONKIT_CACHE_MAX_AGE=None):
        assert check_session_cache() == []


def test_every_problem_reported_with_cached_store() -> None:
    with cached(BROKEN, SESSIONKIT_CACHE_MAX_AGE=None):
        assert ids(check_session_cache()) == [
            "sessionkit.E014",
            "sessionkit.E016",
            "sessionkit.E017",
        ]


# -- E014: SESSIONKIT_CACHE_MAX_AGE ------------------------------------------------


def test_cache_max_age_none_errors() -> None:
    with cached(SESSIONKIT_CACHE_MAX_AGE=None):
        error = only(check_session_cache(), "sessionkit.E014")
    assert error.level == checks.ERROR
    assert "SESSIONKIT_CACHE_MAX_AGE" in error.msg
    assert error.hint


@pytest.mark.parametrize("value", [timedelta(minutes=1), 30, 0.5])
def test_cache_max_age_set_ok(value: Any) -> None:
    with cached(SESSIONKIT_CACHE_MAX_AGE=value):
        assert check_session_cache() == []


# -- E015: SESSION_CACHE_ALIAS -----------------------------------------------------


def test_cache_alias_missing_errors() -> None:
    with cached(alias="nope"):
        error = only(check_session_cache(), "sessionkit.E015")
    assert error.level == checks.ERROR
    assert "'nope'" in error.msg
    assert "CACHES" in error.msg


def test_cache_alias_default_when_present_ok() -> None:
    with cached(alias="default"):
        # "default" is a local-memory cache here: only W002.
        assert ids(check_session_cache()) == ["sessionkit.W002"]


def test_cache_alias_missing_and_max_age_none_both_reported() -> None:
    with cached(alias="nope", SESSIONKIT_CACHE_MAX_AGE=None):
        assert ids(check_session_cache()) == ["sessionkit.E014", "sessionkit.E015"]


# -- E016: django-redis ignoring errors ----------------------------------------------


def test_ignore_exceptions_option_errors() -> None:
    with cached(redis_cache(OPTIONS={"IGNORE_EXCEPTIONS": True})):
        error = only(check_session_cache(), "sessionkit.E016")
    assert error.level == checks.ERROR
    assert "'sessions'" in error.msg
    assert "IGNORE_EXCEPTIONS" in (error.hint or "")


def test_global_ignore_exceptions_errors() -> None:
    with cached(DJANGO_REDIS_IGNORE_EXCEPTIONS=True):
        only(check_session_cache(), "sessionkit.E016")


def test_ignore_exceptions_option_false_overrides_global() -> None:
    cache = redis_cache(OPTIONS={"IGNORE_EXCEPTIONS": False})
    with cached(cache, DJANGO_REDIS_IGNORE_EXCEPTIONS=True):
        assert check_session_cache() == []


def test_ignore_exceptions_option_true_overrides_global_false() -> None:
    cache = redis_cache(OPTIONS={"IGNORE_EXCEPTIONS": True})
    with cached(cache, DJANGO_REDIS_IGNORE_EXCEPTIONS=False):
        only(check_session_cache(), "sessionkit.E016")


@pytest.mark.parametrize(
    "options", [{}, {"IGNORE_EXCEPTIONS": False}, {"SOCKET_TIMEOUT": 0.5}]
)
def test_errors_raised_ok(options: dict[str, Any]) -> None:
    with cached(redis_cache(OPTIONS=options), DJANGO_REDIS_IGNORE_EXCEPTIONS=False):
        assert check_session_cache() == []


def test_ignore_exceptions_of_another_cache_ok() -> None:
    with override_settings(
        SESSION_ENGINE=CACHED,
        SESSION_CACHE_ALIAS="sessions",
        CACHES={
            "default": redis_cache(OPTIONS={"IGNORE_EXCEPTIONS": True}),
            "sessions": redis_cache(OPTIONS={"IGNORE_EXCEPTIONS": False}),
        },
    ):
        assert check_session_cache() == []


def test_ignore_exceptions_of_django_redis_subclass_errors() -> None:
    cache = redis_cache(BACKEND=PROJECT_REDIS, OPTIONS={"IGNORE_EXCEPTIONS": True})
    with cached(cache):
        only(check_session_cache(), "sessionkit.E016")


def test_ignore_exceptions_only_for_django_redis() -> None:
    cache = {
        "BACKEND": DJANGO_BUILTIN_REDIS,
        "LOCATION": PRIMARY,
        "OPTIONS": {"IGNORE_EXCEPTIONS": True},
    }
    with cached(cache, DJANGO_REDIS_IGNORE_EXCEPTIONS=True):
        assert check_session_cache() == []


# -- E017: reads from replicas --------------------------------------------------------


@pytest.mark.parametrize(
    "cache",
    [
        {"BACKEND": DJANGO_BUILTIN_REDIS, "LOCATION": [PRIMARY, REPLICA]},
        {"BACKEND": DJANGO_BUILTIN_REDIS, "LOCATION": f"{PRIMARY},{REPLICA}"},
        redis_cache(LOCATION=[PRIMARY, REPLICA], OPTIONS={"CLIENT_CLASS": HERD_CLIENT}),
        redis_cache(
            LOCATION=f"{PRIMARY},{REPLICA}", OPTIONS={"CLIENT_CLASS": HERD_CLIENT}
        ),
    ],
    ids=["django_list", "django_comma_string", "herd_list", "herd_comma_string"],
)
def test_several_locations_read_through_cache_api_error(cache: dict[str, Any]) -> None:
    # Django's own RedisCache and django-redis' herd client read through
    # Django's cache API, which sends reads to the other LOCATIONs.
    with cached(cache):
        error = only(check_session_cache(), "sessionkit.E017")
    assert error.level == checks.ERROR
    assert "'sessions'" in error.msg
    assert "replica" in error.msg


@pytest.mark.parametrize(
    "cache",
    [
        redis_cache(LOCATION=[PRIMARY, REPLICA]),
        redis_cache(LOCATION=f"{PRIMARY},{REPLICA}"),
        redis_cache(
            LOCATION="redis://mymaster/0",
            OPTIONS={
                "CLIENT_CLASS": "django_redis.client.SentinelClient",
                "SENTINELS": [("10.0.0.3", 26379)],
            },
        ),
    ],
    ids=["list", "comma_string", "sentinel_client"],
)
def test_django_redis_default_and_sentinel_clients_ok(cache: dict[str, Any]) -> None:
    # The store sends every command through their primary connection
    # (tests.test_sentinel measures it for the Sentinel client).
    with cached(cache):
        assert check_session_cache() == []


def test_replica_location_errors_with_any_client() -> None:
    cache = redis_cache(LOCATION=f"{PRIMARY}?is_master=0")
    with cached(cache):
        error = only(check_session_cache(), "sessionkit.E017")
    assert "is_master=0" in error.msg


def test_shard_client_with_several_locations_ok() -> None:
    cache = redis_cache(
        LOCATION=[PRIMARY, REPLICA],
        OPTIONS={"CLIENT_CLASS": "django_redis.client.ShardClient"},
    )
    with cached(cache):
        assert check_session_cache() == []


@pytest.mark.parametrize(
    "cache",
    [
        redis_cache(),
        redis_cache(LOCATION=[PRIMARY]),
        redis_cache(OPTIONS={"CLIENT_CLASS": "django_redis.client.DefaultClient"}),
        {"BACKEND": DJANGO_BUILTIN_REDIS, "LOCATION": PRIMARY},
    ],
    ids=["string", "list_of_one", "default_client", "django_redis_backend"],
)
def test_one_location_ok(cache: dict[str, Any]) -> None:
    with cached(cache):
        assert check_session_cache() == []


def test_django_redis_subclass_with_several_locations_ok() -> None:
    # The store reads such a cache through the primary connection too.
    cache = redis_cache(BACKEND=PROJECT_REDIS, LOCATION=[PRIMARY, REPLICA])
    with cached(cache):
        assert check_session_cache() == []


# -- The checks and the store follow one set of rules ---------------------------------

SENTINEL_OPTIONS = {
    "CLIENT_CLASS": "django_redis.client.SentinelClient",
    "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
    "SENTINELS": [("10.0.0.3", 26379)],
}
RULE_CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("django_redis", redis_cache(), True),
    ("django_redis_list", redis_cache(LOCATION=[PRIMARY, REPLICA]), True),
    ("subclass", redis_cache(BACKEND=PROJECT_REDIS), True),
    (
        "sentinel",
        redis_cache(LOCATION="redis://mymaster/0", OPTIONS=SENTINEL_OPTIONS),
        True,
    ),
    ("herd", redis_cache(OPTIONS={"CLIENT_CLASS": HERD_CLIENT}), False),
    (
        "shard",
        redis_cache(
            LOCATION=[PRIMARY, REPLICA],
            OPTIONS={"CLIENT_CLASS": "django_redis.client.ShardClient"},
        ),
        False,
    ),
    ("django", {"BACKEND": DJANGO_BUILTIN_REDIS, "LOCATION": PRIMARY}, False),
    ("locmem", {"BACKEND": LOCMEM}, False),
]


@pytest.mark.parametrize(
    ("cache", "primary"),
    [(cache, primary) for _, cache, primary in RULE_CASES],
    ids=[name for name, _, _ in RULE_CASES],
)
def test_checks_and_store_agree_on_primary_reads(
    cache: dict[str, Any], primary: bool
) -> None:
    # The check reads CACHES; the store looks at the cache object Django
    # makes from it (no connection is opened): same answer.
    with cached(cache):
        live = caches.create_connection("sessions")
        assert cache_access.config_reaches_primary(cache) is primary
        assert cache_access.cache_reaches_primary(live) is primary
        guarded = isinstance(cache_access.access(live), cache_access.Guarded)
        assert guarded is primary


# -- E018, E019: waiting for replicas --------------------------------------------------


@pytest.mark.parametrize("replicas", [-1, 1.5, "1", True, None])
def test_cache_wait_replicas_not_a_whole_number_errors(replicas: Any) -> None:
    with cached(SESSIONKIT_CACHE_WAIT_REPLICAS=replicas):
        error = only(check_session_cache(), "sessionkit.E018")
    assert error.level == checks.ERROR
    assert "SESSIONKIT_CACHE_WAIT_REPLICAS" in error.msg
    assert error.hint


@pytest.mark.parametrize("backend", [DJANGO_REDIS, PROJECT_REDIS])
def test_cache_wait_replicas_with_django_redis_ok(backend: str) -> None:
    with cached(redis_cache(BACKEND=backend), SESSIONKIT_CACHE_WAIT_REPLICAS=1):
        assert check_session_cache() == []


def test_cache_wait_replicas_without_django_redis_errors() -> None:
    cache = {"BACKEND": DJANGO_BUILTIN_REDIS, "LOCATION": PRIMARY}
    with cached(cache, SESSIONKIT_CACHE_WAIT_REPLICAS=1):
        error = only(check_session_cache(), "sessionkit.E019")
    assert error.level == checks.ERROR
    assert "django-redis" in error.msg


def test_cache_wait_replicas_without_wait_timeout_errors() -> None:
    with cached(SESSIONKIT_CACHE_WAIT_REPLICAS=2, SESSIONKIT_CACHE_WAIT_TIMEOUT=None):
        error = only(check_session_cache(), "sessionkit.E019")
    assert "SESSIONKIT_CACHE_WAIT_TIMEOUT" in error.msg


# -- W002: process-local caches -------------------------------------------------------


@pytest.mark.parametrize("backend", [LOCMEM, DUMMY])
def test_process_local_cache_warns(backend: str) -> None:
    with cached({"BACKEND": backend}):
        warning = only(check_session_cache(), "sessionkit.W002")
    assert warning.level == checks.WARNING
    assert backend in warning.msg
    assert warning.hint


def test_process_local_cache_not_warned_with_database_store() -> None:
    with cached({"BACKEND": LOCMEM}, engine="django_sessionkit.backends.db"):
        assert check_session_cache() == []


# -- Registration ---------------------------------------------------------------------


def test_run_checks_reports_cache_problems() -> None:
    with cached(alias="nope"):
        found = ids(checks.run_checks(tags=["sessionkit"]))
    assert [i for i in found if i in CACHE_IDS] == ["sessionkit.E015"]
    with cached():
        found = ids(checks.run_checks(tags=["sessionkit"]))
    assert [i for i in found if i in CACHE_IDS] == []


# -- W107: no socket timeouts (check --deploy) -----------------------------------------

BOTH = {"SOCKET_TIMEOUT": 0.5, "SOCKET_CONNECT_TIMEOUT": 0.5}
BOTH_LOWER = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
QUERY = "?socket_timeout=0.5&socket_connect_timeout=0.5"

# Each config names a database of its own: django-redis keeps one pool per
# URL for the whole process.
TIMEOUT_CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("django_redis_none", redis_cache(LOCATION=f"{PRIMARY[:-1]}2"), True),
    (
        "django_redis_both",
        redis_cache(LOCATION=f"{PRIMARY[:-1]}3", OPTIONS=BOTH),
        False,
    ),
    (
        "django_redis_read_only",
        redis_cache(LOCATION=f"{PRIMARY[:-1]}4", OPTIONS={"SOCKET_TIMEOUT": 0.5}),
        True,
    ),
    (
        "django_redis_zero",
        redis_cache(
            LOCATION=f"{PRIMARY[:-1]}5",
            OPTIONS={"SOCKET_TIMEOUT": 0, "SOCKET_CONNECT_TIMEOUT": 0.5},
        ),
        True,
    ),
    (
        "django_redis_pool_kwargs",
        redis_cache(
            LOCATION=f"{PRIMARY[:-1]}6", OPTIONS={"CONNECTION_POOL_KWARGS": BOTH_LOWER}
        ),
        False,
    ),
    ("django_redis_url", redis_cache(LOCATION=f"{PRIMARY[:-1]}7{QUERY}"), False),
    ("django_none", {"BACKEND": DJANGO_BUILTIN_REDIS, "LOCATION": PRIMARY}, True),
    (
        "django_both",
        {"BACKEND": DJANGO_BUILTIN_REDIS, "LOCATION": PRIMARY, "OPTIONS": BOTH_LOWER},
        False,
    ),
    (
        "django_explicit_none",
        {
            "BACKEND": DJANGO_BUILTIN_REDIS,
            "LOCATION": PRIMARY,
            "OPTIONS": {"socket_timeout": None, "socket_connect_timeout": 0.5},
        },
        True,
    ),
    (
        "django_url",
        {"BACKEND": DJANGO_BUILTIN_REDIS, "LOCATION": f"{PRIMARY}{QUERY}"},
        False,
    ),
    (
        "subclass_none",
        redis_cache(BACKEND=PROJECT_REDIS, LOCATION=f"{PRIMARY[:-1]}10"),
        True,
    ),
    (
        "subclass_both",
        redis_cache(BACKEND=PROJECT_REDIS, LOCATION=f"{PRIMARY[:-1]}11", OPTIONS=BOTH),
        False,
    ),
]


def connection_timeouts(alias: str = "sessions") -> tuple[Any, Any]:
    """The read and connect timeouts of a connection the cache would open
    (made by the real client, not opened)."""
    cache: Any = caches.create_connection(alias)
    if hasattr(cache, "_cache"):  # Django's RedisCache
        pool = cache._cache._get_connection_pool(True)
    else:  # django-redis
        pool = cache.client.get_client(write=True).connection_pool
    connection = pool.make_connection()
    return connection.socket_timeout, connection.socket_connect_timeout


@pytest.mark.parametrize(
    ("cache", "warns"),
    [(cache, warns) for _, cache, warns in TIMEOUT_CASES],
    ids=[name for name, _, _ in TIMEOUT_CASES],
)
def test_session_cache_without_socket_timeouts_warns(
    cache: dict[str, Any], warns: bool
) -> None:
    with cached(cache):
        found = check_session_cache_timeouts()
        timeouts = connection_timeouts()
    # The check agrees with what redis-py would do: quiet exactly when both
    # of the connection's timeouts are the ones the settings chose.
    assert timeouts == (0.5, 0.5) or warns
    assert timeouts != (0.5, 0.5) or not warns
    if not warns:
        assert found == []
        return
    warning = only(found, "sessionkit.W107")
    assert warning.level == checks.WARNING
    assert "'sessions'" in warning.msg
    assert warning.hint


def test_session_cache_timeout_warning_says_what_redis_py_waits() -> None:
    with cached(redis_cache(LOCATION=f"{PRIMARY[:-1]}8")):
        warning = only(check_session_cache_timeouts(), "sessionkit.W107")
        default, _ = connection_timeouts()
    assert "SOCKET_TIMEOUT" in warning.msg
    assert "SOCKET_CONNECT_TIMEOUT" in warning.msg
    waits = "for ever" if default is None else f"{default:g} seconds"
    assert waits in warning.msg
    explicit_none = {
        "BACKEND": DJANGO_BUILTIN_REDIS,
        "LOCATION": PRIMARY,
        "OPTIONS": {"socket_timeout": None, "socket_connect_timeout": 0.5},
    }
    with cached(explicit_none):
        warning = only(check_session_cache_timeouts(), "sessionkit.W107")
        assert connection_timeouts()[0] is None
    assert "socket_timeout" in warning.msg
    assert "for ever" in warning.msg


@pytest.mark.parametrize(
    "engine", ["django_sessionkit.backends.db", "django.contrib.sessions.backends.db"]
)
def test_session_cache_timeouts_not_checked_without_cached_store(engine: str) -> None:
    with cached(engine=engine):
        assert check_session_cache_timeouts() == []


@pytest.mark.parametrize("backend", [LOCMEM, DUMMY])
def test_session_cache_timeouts_not_checked_for_other_caches(backend: str) -> None:
    with cached({"BACKEND": backend}):
        assert check_session_cache_timeouts() == []
    with cached(alias="nope"):
        assert check_session_cache_timeouts() == []


@pytest.mark.django_db
def test_session_cache_timeouts_checked_only_with_deploy() -> None:
    with cached(redis_cache(LOCATION=f"{PRIMARY[:-1]}9")):
        assert "sessionkit.W107" not in ids(checks.run_checks())
        deploy = checks.run_checks(include_deployment_checks=True)
        assert "sessionkit.W107" in ids(deploy)
