"""The session cache of the cached store (E014-E019, W002; W107 with
``--deploy``).

What a cache configuration is (django-redis, a client that reaches the
primary, replicas) is decided in
:mod:`~django_sessionkit.backends.cache_access`, the same rules the store
follows on the live cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from inspect import signature
from typing import Any
from urllib.parse import parse_qs, urlparse

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from django_sessionkit.backends.cache_access import (
    backend_of,
    is_django_redis,
    locations,
    reads_replicas,
)
from django_sessionkit.checks.base import (
    TAG,
    imported,
    is_int,
    is_subclass,
    uses_cached_store,
)
from django_sessionkit.conf import conf

# Cache backends whose entries live in one process: another app server's
# revocation cannot purge them.
_PROCESS_LOCAL_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)
_DJANGO_REDIS_CACHE = "django.core.cache.backends.redis.RedisCache"
# The connection arguments of redis-py, and the OPTIONS that django-redis
# turns into them.
_TIMEOUTS = {
    "socket_timeout": "SOCKET_TIMEOUT",
    "socket_connect_timeout": "SOCKET_CONNECT_TIMEOUT",
}
_NOT_SET = object()


def _ignores_exceptions(config: dict[str, Any]) -> bool:
    options = config.get("OPTIONS") or {}
    if "IGNORE_EXCEPTIONS" in options:
        return bool(options["IGNORE_EXCEPTIONS"])
    return bool(getattr(settings, "DJANGO_REDIS_IGNORE_EXCEPTIONS", False))


@register(TAG)
def check_session_cache(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Refuse a session cache the cached store cannot use safely (E014-E019)
    and warn of a process-local one (W002): a revocation must reach every
    copy of a session."""
    if not uses_cached_store():
        return []
    alias = settings.SESSION_CACHE_ALIAS
    config = settings.CACHES.get(alias)
    errors: list[CheckMessage] = []
    if conf.CACHE_MAX_AGE is None:
        errors.append(
            Error(
                "SESSIONKIT_CACHE_MAX_AGE must be set with the cached_db store: "
                "it bounds how long a cached entry is trusted without the "
                "database.",
                hint="Leave it at its default of 5 minutes, or set a timedelta.",
                id="sessionkit.E014",
            )
        )
    if config is None:
        errors.append(
            Error(
                f"SESSION_CACHE_ALIAS is {alias!r}, which is not in CACHES.",
                hint="Add a django-redis cache under that alias, or point "
                "SESSION_CACHE_ALIAS at one.",
                id="sessionkit.E015",
            )
        )
        return errors
    backend = config.get("BACKEND", "")
    django_redis = is_django_redis(backend_of(config))
    if django_redis and _ignores_exceptions(config):
        errors.append(
            Error(
                f"The session cache {alias!r} ignores Redis errors "
                "(IGNORE_EXCEPTIONS or DJANGO_REDIS_IGNORE_EXCEPTIONS): a "
                "revocation could not tell that its tombstones were not "
                "written, and a stale entry would serve the revoked session "
                "again once Redis is back.",
                hint="Set OPTIONS['IGNORE_EXCEPTIONS'] = False for this cache "
                "(other caches may keep ignoring errors). The store itself "
                "serves from the database when Redis fails.",
                id="sessionkit.E016",
            )
        )
    if reads_replicas(config):
        errors.append(
            Error(
                f"The session cache {alias!r} reads from replicas (a LOCATION "
                "with is_master=0, or several LOCATIONs with a cache the "
                "store reads through Django's cache API): a replica that "
                "has not yet seen a revocation would still serve the session.",
                hint="Give the session cache one LOCATION, the primary, or "
                "use django-redis' default client, whose primary connection "
                "the store uses for every read. With Sentinel use its "
                "DefaultClient and SentinelConnectionFactory.",
                id="sessionkit.E017",
            )
        )
    replicas = conf.CACHE_WAIT_REPLICAS
    if not is_int(replicas) or replicas < 0:
        errors.append(
            Error(
                "SESSIONKIT_CACHE_WAIT_REPLICAS must be a whole number >= 0, "
                f"not {replicas!r}.",
                hint="Set it to the number of Redis replicas that must keep a "
                "tombstone (Redis WAIT), or 0 not to wait.",
                id="sessionkit.E018",
            )
        )
    elif replicas and (not django_redis or conf.CACHE_WAIT_TIMEOUT is None):
        errors.append(
            Error(
                "SESSIONKIT_CACHE_WAIT_REPLICAS needs the session cache to be "
                "django-redis (django_redis.cache.RedisCache) and "
                "SESSIONKIT_CACHE_WAIT_TIMEOUT to be set.",
                hint="Use django-redis for the session cache alias, or set "
                "SESSIONKIT_CACHE_WAIT_REPLICAS = 0.",
                id="sessionkit.E019",
            )
        )
    if backend in _PROCESS_LOCAL_CACHES:
        errors.append(
            Warning(
                f"The session cache {alias!r} ({backend}) is private to each "
                "process: a revocation made by one process cannot purge the "
                "entries of another, which serve the session until "
                "SESSIONKIT_CACHE_MAX_AGE passes.",
                hint="Use django-redis (or another shared cache) for the "
                "session cache alias, or the database store.",
                id="sessionkit.W002",
            )
        )
    return errors


def _redis_default_timeout() -> Any:
    """What the installed redis-py waits without a timeout: ``None`` (for
    ever) before redis-py 8, 5 seconds since."""
    connection = imported("redis.connection")
    for name in ("AbstractConnection", "Connection"):
        try:
            init = getattr(connection, name).__init__
            parameter = signature(init).parameters["socket_timeout"]
        except (AttributeError, KeyError, TypeError, ValueError):
            continue
        return parameter.default
    return None


def _timeout_setting(config: dict[str, Any], argument: str, django_redis: bool) -> Any:
    """The value the session cache's settings give redis-py's ``argument``,
    or ``_NOT_SET``: a URL query wins over the pool's keyword arguments,
    which win over the cache's OPTIONS (as in redis-py and django-redis)."""
    options = config.get("OPTIONS") or {}
    for location in locations(config)[:1]:
        query = parse_qs(urlparse(location).query)
        if argument in query:
            return query[argument][-1]
    if django_redis:
        pool = options.get("CONNECTION_POOL_KWARGS") or {}
        if argument in pool:
            return pool[argument]
        # django-redis passes only a true value on to redis-py.
        return options.get(_TIMEOUTS[argument]) or _NOT_SET
    return options.get(argument, _NOT_SET)


def _is_positive(value: Any) -> bool:
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return False


def _waits(value: Any) -> str:
    if value is None or not _is_positive(value):
        return "for ever"
    return f"{float(value):g} seconds"


@register(TAG, Tags.caches, deploy=True)
def check_session_cache_timeouts(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Warn when the session cache's Redis connections wait without a time
    limit (W107)."""
    # A deployment warning, not an error: the store stays correct without
    # timeouts (it serves from the database when Redis fails), but a Redis
    # that hangs without closing its connections would hold every request
    # and every revocation for as long as the client waits.
    if not uses_cached_store():
        return []
    alias = settings.SESSION_CACHE_ALIAS
    config = settings.CACHES.get(alias)
    if config is None:
        return []
    backend = backend_of(config)
    # django-redis takes the timeouts in upper-case OPTIONS; Django's own
    # Redis cache passes its OPTIONS on to redis-py as they are.
    upper = is_django_redis(backend)
    if not upper and not is_subclass(backend, imported(_DJANGO_REDIS_CACHE)):
        return []
    missing: list[tuple[str, str]] = []
    for argument in _TIMEOUTS:
        value = _timeout_setting(config, argument, upper)
        if _is_positive(value):
            continue
        waits = _waits(_redis_default_timeout() if value is _NOT_SET else value)
        missing.append((_TIMEOUTS[argument] if upper else argument, waits))
    if not missing:
        return []
    names = " and ".join(name for name, _ in missing)
    waits = "; ".join(f"without {name} it waits {w}" for name, w in missing)
    where = "OPTIONS" if upper else "OPTIONS (redis-py's connection arguments)"
    return [
        Warning(
            f"The session cache {alias!r} does not set {names}: a Redis that "
            "stops answering without closing its connections (a paused process, a "
            "network partition) holds every request, and every revocation's "
            f"tombstone writes, for as long as redis-py waits ({waits}).",
            hint=f"Set {names} in the session "
            f"cache's {where} to a fraction of a second, well above Redis's "
            "usual answer time, for example 0.5.",
            id="sessionkit.W107",
        )
    ]
