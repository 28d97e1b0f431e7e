"""System checks: a misconfiguration fails at start-up, not on a request.

Ids are stable and never reused: ``E0xx`` for invalid ``SESSIONKIT_*``
values, ``W0xx`` for set-up warnings, ``W1xx`` for ``check --deploy``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from importlib import import_module
from inspect import signature
from typing import Any
from urllib.parse import parse_qs, urlparse

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.utils.module_loading import import_string

from django_sessionkit.conf import (
    DURATION_SETTINGS,
    MAX_SESSIONS_POLICY_CHOICES,
    ON_STALE_KEY_CHOICES,
    STORE_IP_CHOICES,
    conf,
)

TAG = "sessionkit"
ENGINES = ("django_sessionkit.backends.db", "django_sessionkit.backends.cached_db")
MIDDLEWARE = "django_sessionkit.middleware.SessionKitMiddleware"
AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"
GEOIP2_RESOLVER = "django_sessionkit.location.geoip2"
# Durations that may be zero (the others must be positive when set).
_ZERO_ALLOWED = {"ACTIVITY_RESOLUTION", "ROTATE_GRACE", "IDLE_WARNING"}
_BOOLEANS = (
    "REVOKE_OTHERS_ON_PASSWORD_CHANGE",
    "CLEAR_SITE_DATA_ON_LOGOUT",
    "NOTIFY_NEW_DEVICE",
)
# A cookie name is an HTTP token (RFC 6265): no separators, spaces or controls.
_COOKIE_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


# Header names are ASCII tokens (RFC 9110); letters, digits, "-" and "_".
_HEADER_NAME = re.compile(r"[A-Za-z0-9_-]+")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _imported(path: str, attribute: str | None = None) -> Any:
    """The object at ``path`` (a module, or ``module.attribute``), or None."""
    try:
        if attribute is None:
            return import_string(path)
        return getattr(import_module(path), attribute, None)
    except Exception:  # any failure to import means "not that object"
        return None


def _is_subclass(value: object, base: type) -> bool:
    return isinstance(value, type) and issubclass(value, base)


def uses_sessionkit_engine() -> bool:
    from django_sessionkit.backends.db import SessionStore

    return _is_subclass(
        _imported(settings.SESSION_ENGINE, "SessionStore"), SessionStore
    )


@register(TAG)
def check_session_engine(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    engine = settings.SESSION_ENGINE
    if uses_sessionkit_engine():
        return []
    return [
        Warning(
            f"django_sessionkit is installed but SESSION_ENGINE is {engine!r}, "
            "so sessions are neither hashed nor tracked by it.",
            hint=f'Set SESSION_ENGINE = "{ENGINES[0]}".',
            id="sessionkit.W001",
        )
    ]


@register(TAG)
def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    count = conf.TRUSTED_PROXY_COUNT
    if not _is_int(count) or count < 0:
        errors.append(
            Error(
                f"SESSIONKIT_TRUSTED_PROXY_COUNT must be a whole number >= 0, "
                f"not {count!r}.",
                hint="Set it to the number of reverse proxies in front of "
                "Django that append to the client IP header, or 0 for none.",
                id="sessionkit.E001",
            )
        )
    header = conf.CLIENT_IP_HEADER
    if not isinstance(header, str) or not _HEADER_NAME.fullmatch(header.strip()):
        errors.append(
            Error(
                f"SESSIONKIT_CLIENT_IP_HEADER must be an HTTP header name, "
                f"not {header!r}.",
                hint='For example "X-Forwarded-For" or "X-Real-IP".',
                id="sessionkit.E002",
            )
        )
    if conf.STORE_IP not in STORE_IP_CHOICES:
        errors.append(
            Error(
                f"SESSIONKIT_STORE_IP must be one of "
                f"{', '.join(map(repr, STORE_IP_CHOICES))}, not {conf.STORE_IP!r}.",
                hint='"full" keeps the address, "truncated" keeps an IPv4 /24 '
                'or IPv6 /48 network, "none" keeps nothing.',
                id="sessionkit.E003",
            )
        )
    if not isinstance(conf.STORE_USER_AGENT, bool):
        errors.append(
            Error(
                f"SESSIONKIT_STORE_USER_AGENT must be True or False, "
                f"not {conf.STORE_USER_AGENT!r}.",
                id="sessionkit.E004",
            )
        )
    batch = conf.CLEANUP_BATCH_SIZE
    if not _is_int(batch) or batch < 1:
        errors.append(
            Error(
                f"SESSIONKIT_CLEANUP_BATCH_SIZE must be a whole number >= 1, "
                f"not {batch!r}.",
                hint="The default, 1000, suits most databases.",
                id="sessionkit.E005",
            )
        )
    device_cookie = conf.DEVICE_COOKIE_NAME
    if (
        not isinstance(device_cookie, str)
        or not _COOKIE_NAME.fullmatch(device_cookie)
        or device_cookie in (settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME)
    ):
        errors.append(
            Error(
                "SESSIONKIT_DEVICE_COOKIE_NAME must be a cookie name of its own "
                f"(not the session's or the CSRF cookie's), not {device_cookie!r}.",
                hint='The default is "sessionkit_device"; "__Host-device" on an '
                "HTTPS-only site (with SESSION_COOKIE_SECURE = True).",
                id="sessionkit.E021",
            )
        )
    samesite = settings.SESSION_COOKIE_SAMESITE
    if samesite not in (None, False, "") and (
        not isinstance(samesite, str)
        or samesite.lower() not in ("lax", "strict", "none")
    ):
        errors.append(
            Error(
                f"SESSION_COOKIE_SAMESITE must be 'Lax', 'Strict' or 'None', "
                f"not {samesite!r}.",
                hint="'Lax' is Django's default and right for most sites.",
                id="sessionkit.E006",
            )
        )
    return errors


def _duration_errors() -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for name in DURATION_SETTINGS:
        value = getattr(conf, name)
        if value is None:
            continue
        floor = "zero or more" if name in _ZERO_ALLOWED else "more than zero"
        if not isinstance(value, timedelta) or (
            value < timedelta(0) if name in _ZERO_ALLOWED else value <= timedelta(0)
        ):
            errors.append(
                Error(
                    f"SESSIONKIT_{name} must be a timedelta or a number of "
                    f"seconds, {floor}, or None; not {value!r}.",
                    hint=f"For example SESSIONKIT_{name} = timedelta(minutes=30), "
                    "or None to switch it off.",
                    id="sessionkit.E007",
                )
            )
    return errors


def _choice_error(name: str, value: Any, choices: Sequence[str], id: str) -> Error:
    return Error(
        f"SESSIONKIT_{name} must be one of {', '.join(map(repr, choices))}, "
        f"not {value!r}.",
        id=id,
    )


@register(TAG)
def check_policy_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    errors = _duration_errors()
    if conf.POLICY is not None and not callable(_imported(str(conf.POLICY))):
        errors.append(
            Error(
                f"SESSIONKIT_POLICY must be the dotted path of a callable "
                f"(request, user) -> Policy; {conf.POLICY!r} cannot be imported "
                "or is not callable.",
                hint="Check the module and name, or remove the setting for "
                "the default policy.",
                id="sessionkit.E008",
            )
        )
    errors.extend(_passive_url_errors())
    if conf.ON_STALE_KEY not in ON_STALE_KEY_CHOICES:
        errors.append(
            _choice_error(
                "ON_STALE_KEY",
                conf.ON_STALE_KEY,
                ON_STALE_KEY_CHOICES,
                "sessionkit.E010",
            )
        )
    limit = conf.MAX_SESSIONS_PER_USER
    if limit is not None and (not _is_int(limit) or limit < 1):
        errors.append(
            Error(
                f"SESSIONKIT_MAX_SESSIONS_PER_USER must be a whole number >= 1 or "
                f"None, not {limit!r}.",
                id="sessionkit.E011",
            )
        )
    if conf.MAX_SESSIONS_POLICY not in MAX_SESSIONS_POLICY_CHOICES:
        errors.append(
            _choice_error(
                "MAX_SESSIONS_POLICY",
                conf.MAX_SESSIONS_POLICY,
                MAX_SESSIONS_POLICY_CHOICES,
                "sessionkit.E012",
            )
        )
    for name in _BOOLEANS:
        value = getattr(conf, name)
        if not isinstance(value, bool):
            errors.append(
                Error(
                    f"SESSIONKIT_{name} must be True or False, not {value!r}.",
                    id="sessionkit.E013",
                )
            )
    return errors


def _passive_url_errors() -> list[CheckMessage]:
    patterns = conf.PASSIVE_URLS
    problem = None
    if isinstance(patterns, str) or not isinstance(patterns, list | tuple):
        problem = f"must be a list of regular expressions, not {patterns!r}"
    else:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except (re.error, TypeError) as exc:
                problem = (
                    f"holds {pattern!r}, which is not a regular expression ({exc})"
                )
                break
    if problem is None:
        return []
    return [
        Error(
            f"SESSIONKIT_PASSIVE_URLS {problem}.",
            hint='For example SESSIONKIT_PASSIVE_URLS = [r"^/api/poll/"].',
            id="sessionkit.E009",
        )
    ]


def _geoip2_problem() -> tuple[str, str] | None:
    """Why Django's GeoIP2 cannot work here, and the fix; ``None`` if it can."""
    try:
        import_module("geoip2.database")
    except ImportError:
        return (
            "the geoip2 package is not installed",
            "Run pip install geoip2 (and set GEOIP_PATH).",
        )
    if not getattr(settings, "GEOIP_PATH", None):
        return (
            "GEOIP_PATH is not set",
            "Set GEOIP_PATH to the directory holding MaxMind's "
            "GeoLite2-City.mmdb (or GeoLite2-Country.mmdb), or to the file.",
        )
    return None


def _count_error(name: str, value: Any, check_id: str, hint: str) -> Error:
    return Error(
        f"SESSIONKIT_{name} must be a whole number >= 1 or None, not {value!r}.",
        hint=hint,
        id=check_id,
    )


@register(TAG)
def check_reauth_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """The limits on wrong re-authentication passwords (E027-E030); the
    window's type and sign are E007's."""
    errors: list[CheckMessage] = []
    limit = conf.REAUTH_FAILURE_LIMIT
    if limit is not None and (not _is_int(limit) or limit < 1):
        errors.append(
            _count_error(
                "REAUTH_FAILURE_LIMIT",
                limit,
                "sessionkit.E027",
                "Set how many wrong passwords within "
                "SESSIONKIT_REAUTH_FAILURE_WINDOW lock re-authentication "
                "(5 by default), or None for no lock.",
            )
        )
    window = conf.REAUTH_FAILURE_WINDOW
    if window is None and limit is not None:
        errors.append(
            Error(
                "SESSIONKIT_REAUTH_FAILURE_WINDOW must be a duration while "
                f"SESSIONKIT_REAUTH_FAILURE_LIMIT is set, not {window!r}.",
                hint="For example SESSIONKIT_REAUTH_FAILURE_WINDOW = "
                "timedelta(minutes=15), or set SESSIONKIT_REAUTH_FAILURE_LIMIT "
                "= None for no lock.",
                id="sessionkit.E028",
            )
        )
    retention = conf.EVENT_RETENTION
    if (
        limit is not None
        and isinstance(window, timedelta)
        and isinstance(retention, timedelta)
        and retention < window
    ):
        # The failures are counted from their events: clearsessions must
        # not delete them before they leave the window.
        errors.append(
            Error(
                "SESSIONKIT_EVENT_RETENTION is shorter than "
                "SESSIONKIT_REAUTH_FAILURE_WINDOW: clearsessions would delete "
                "the recorded re-authentication failures before they leave the "
                "window, and cut a lock short.",
                hint="Keep events at least as long as the window (the defaults "
                "are 90 days and 15 minutes).",
                id="sessionkit.E030",
            )
        )
    after = conf.REAUTH_REVOKE_AFTER
    if after is not None and (not _is_int(after) or after < 1):
        errors.append(
            _count_error(
                "REAUTH_REVOKE_AFTER",
                after,
                "sessionkit.E029",
                "Set how many wrong passwords revoke a session (20 by "
                "default), or None never to revoke it for them.",
            )
        )
    return errors


@register(TAG)
def check_location_resolver(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    from django_sessionkit import location

    path = conf.LOCATION_RESOLVER
    if path is None:
        return []
    resolver = _imported(str(path))
    if not callable(resolver):
        return [
            Error(
                "SESSIONKIT_LOCATION_RESOLVER must be the dotted path of a "
                f"callable (ip) -> str | None; {path!r} cannot be imported or "
                "is not callable.",
                hint="Check the module and name; use "
                f'"{GEOIP2_RESOLVER}" for Django\'s GeoIP2, or remove the '
                "setting to show no locations.",
                id="sessionkit.E022",
            )
        ]
    problem = _geoip2_problem() if resolver is location.geoip2 else None
    if problem is None:
        return []
    reason, hint = problem
    return [
        Error(
            f"SESSIONKIT_LOCATION_RESOLVER is the GeoIP2 resolver, but {reason}.",
            hint=hint,
            id="sessionkit.E022",
        )
    ]


@register(TAG)
def check_middleware(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    from django.contrib.auth.middleware import AuthenticationMiddleware

    from django_sessionkit.middleware import SessionKitMiddleware

    if not uses_sessionkit_engine():
        return []
    classes = [_imported(path) for path in settings.MIDDLEWARE]
    ours = [i for i, c in enumerate(classes) if _is_subclass(c, SessionKitMiddleware)]
    auth = [
        i for i, c in enumerate(classes) if _is_subclass(c, AuthenticationMiddleware)
    ]
    if ours and auth and ours[0] > auth[-1]:
        return []
    problem = (
        "is missing from MIDDLEWARE"
        if not ours
        else "must come after AuthenticationMiddleware"
    )
    return [
        Error(
            f"{MIDDLEWARE} {problem}: without it activity never extends a "
            "signed-in session, expired sessions end without telling why, and "
            "keys are not rotated on schedule or on privilege changes.",
            hint=f'Put "{MIDDLEWARE}" in MIDDLEWARE after "{AUTH_MIDDLEWARE}" '
            '(and after "django.contrib.messages.middleware.MessageMiddleware").',
            id="sessionkit.E020",
        )
    ]


# Cache backends whose entries live in one process: another app server's
# revocation cannot purge them.
_PROCESS_LOCAL_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)
_DJANGO_REDIS = "django_redis.cache.RedisCache"
_DEFAULT_CLIENT = "django_redis.client.DefaultClient"


def _caching_engine() -> bool:
    store = _imported(settings.SESSION_ENGINE, "SessionStore")
    return uses_sessionkit_engine() and getattr(store, "caches_rows", False)


def _locations(config: dict[str, Any]) -> list[str]:
    location = config.get("LOCATION", [])
    if isinstance(location, str):
        return [part for part in location.split(",") if part.strip()] or [location]
    return list(location)


def _ignores_exceptions(config: dict[str, Any]) -> bool:
    options = config.get("OPTIONS") or {}
    if "IGNORE_EXCEPTIONS" in options:
        return bool(options["IGNORE_EXCEPTIONS"])
    return bool(getattr(settings, "DJANGO_REDIS_IGNORE_EXCEPTIONS", False))


# What redis-py reads as false in a URL's query (``is_master=0``).
_FALSE = {"0", "F", "FALSE", "N", "NO"}


def _names_replica(location: str, options: dict[str, Any]) -> bool:
    # SentinelConnectionFactory connects to a replica for ``is_master=0`` in
    # the URL or ``is_master: False`` in the pool's keyword arguments.
    values = parse_qs(urlparse(location).query).get("is_master", [])
    pool = options.get("CONNECTION_POOL_KWARGS") or {}
    return any(v.upper() in _FALSE for v in values) or pool.get("is_master") is False


def _reads_primary(config: dict[str, Any]) -> bool:
    # The store sends every command through django-redis' write connection
    # (the first LOCATION; Sentinel's current primary) with its default and
    # Sentinel clients, not with the herd and shard clients nor with other
    # caches, which it reads through Django's cache API.
    if config.get("BACKEND") != _DJANGO_REDIS:
        return False
    options = config.get("OPTIONS") or {}
    client = _imported(options.get("CLIENT_CLASS") or _DEFAULT_CLIENT)
    base = _imported("django_redis.client", "DefaultClient")
    others = tuple(
        c
        for c in (
            _imported("django_redis.client", "HerdClient"),
            _imported("django_redis.client", "ShardClient"),
        )
        if c is not None
    )
    return (
        base is not None
        and _is_subclass(client, base)
        and not issubclass(client, others)
    )


def _replica_reads(config: dict[str, Any]) -> bool:
    options = config.get("OPTIONS") or {}
    client = options.get("CLIENT_CLASS", "")
    locations = _locations(config)
    if any(_names_replica(location, options) for location in locations):
        return True  # a replica's own address: every client reads it
    if _reads_primary(config):
        return False
    return len(locations) > 1 and not client.endswith("ShardClient")


@register(TAG)
def check_session_cache(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    if not _caching_engine():
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
    if backend == _DJANGO_REDIS and _ignores_exceptions(config):
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
    if _replica_reads(config):
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
    if not _is_int(replicas) or replicas < 0:
        errors.append(
            Error(
                "SESSIONKIT_CACHE_WAIT_REPLICAS must be a whole number >= 0, "
                f"not {replicas!r}.",
                hint="Set it to the number of Redis replicas that must keep a "
                "tombstone (Redis WAIT), or 0 not to wait.",
                id="sessionkit.E018",
            )
        )
    elif replicas and (backend != _DJANGO_REDIS or conf.CACHE_WAIT_TIMEOUT is None):
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


_DJANGO_REDIS_CACHE = "django.core.cache.backends.redis.RedisCache"
# The connection arguments of redis-py, and the OPTIONS that django-redis
# turns into them.
_TIMEOUTS = {
    "socket_timeout": "SOCKET_TIMEOUT",
    "socket_connect_timeout": "SOCKET_CONNECT_TIMEOUT",
}
_NOT_SET = object()


def _redis_default_timeout() -> Any:
    """What the installed redis-py waits without a timeout: ``None`` (for
    ever) before redis-py 8, 5 seconds since."""
    connection = _imported("redis.connection")
    for name in ("AbstractConnection", "Connection"):
        try:
            init = getattr(connection, name).__init__
            parameter = signature(init).parameters["socket_timeout"]
        except (AttributeError, KeyError, TypeError, ValueError):
            continue
        return parameter.default
    return None


def _timeout_setting(config: dict[str, Any], argument: str) -> Any:
    """The value the session cache's settings give redis-py's ``argument``,
    or ``_NOT_SET``: a URL query wins over the pool's keyword arguments,
    which win over the cache's OPTIONS (as in redis-py and django-redis)."""
    options = config.get("OPTIONS") or {}
    for location in _locations(config)[:1]:
        query = parse_qs(urlparse(location).query)
        if argument in query:
            return query[argument][-1]
    if config.get("BACKEND") == _DJANGO_REDIS:
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
    # A deployment warning, not an error: the store stays correct without
    # timeouts (it serves from the database when Redis fails), but a Redis
    # that hangs without closing its connections would hold every request
    # and every revocation for as long as the client waits.
    if not _caching_engine():
        return []
    alias = settings.SESSION_CACHE_ALIAS
    config = settings.CACHES.get(alias)
    if config is None or config.get("BACKEND") not in (
        _DJANGO_REDIS,
        _DJANGO_REDIS_CACHE,
    ):
        return []
    upper = config.get("BACKEND") == _DJANGO_REDIS
    missing: list[tuple[str, str]] = []
    for argument in _TIMEOUTS:
        value = _timeout_setting(config, argument)
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


@register(TAG, Tags.security, deploy=True)
def check_session_cookie(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    warnings: list[CheckMessage] = []
    samesite = settings.SESSION_COOKIE_SAMESITE
    if samesite in (None, False, ""):
        warnings.append(
            Warning(
                "SESSION_COOKIE_SAMESITE is not set, so the session cookie is "
                "sent with cross-site requests by browsers that do not default "
                "to Lax.",
                hint="Set SESSION_COOKIE_SAMESITE = 'Lax' (or 'Strict').",
                id="sessionkit.W101",
            )
        )
    elif (
        isinstance(samesite, str)
        and samesite.lower() == "none"
        and not settings.SESSION_COOKIE_SECURE
    ):
        warnings.append(
            Warning(
                "SESSION_COOKIE_SAMESITE is 'None' but SESSION_COOKIE_SECURE is "
                "False: browsers reject such a cookie, and without Secure it "
                "would travel over plain HTTP.",
                hint="Set SESSION_COOKIE_SECURE = True, or use 'Lax'.",
                id="sessionkit.W102",
            )
        )
    if settings.SESSION_COOKIE_DOMAIN:
        warnings.append(
            Warning(
                f"SESSION_COOKIE_DOMAIN is {settings.SESSION_COOKIE_DOMAIN!r}: "
                "the session cookie is sent to every subdomain, where any "
                "application can read or overwrite it.",
                hint="Leave SESSION_COOKIE_DOMAIN = None (a host-only cookie) "
                "unless subdomains must share the session.",
                id="sessionkit.W103",
            )
        )
    warnings.extend(_host_prefix_warnings())
    return warnings


def _host_prefix_warnings() -> list[CheckMessage]:
    name = settings.SESSION_COOKIE_NAME
    # The device cookie takes Secure, Domain and Path from these settings too
    # (devices.set_device_cookie), so one answer holds for both cookies.
    host_only = (
        settings.SESSION_COOKIE_SECURE
        and not settings.SESSION_COOKIE_DOMAIN
        and settings.SESSION_COOKIE_PATH == "/"
    )
    warnings = _session_host_prefix_warnings(name, bool(host_only))
    device_cookie = conf.DEVICE_COOKIE_NAME
    if (
        isinstance(device_cookie, str)
        and device_cookie.startswith("__Host-")
        and not host_only
    ):
        warnings.append(
            Warning(
                f"SESSIONKIT_DEVICE_COOKIE_NAME is {device_cookie!r}, but "
                "browsers accept a __Host- cookie only with Secure, no Domain "
                "and Path=/, which the device cookie takes from the "
                "SESSION_COOKIE_* settings; this one would be rejected, so "
                "every sign-in would come from a new device (and send the "
                "new-device email).",
                hint="Set SESSION_COOKIE_SECURE = True, SESSION_COOKIE_DOMAIN "
                '= None and SESSION_COOKIE_PATH = "/", or use a name without '
                'the prefix (the default is "sessionkit_device").',
                id="sessionkit.W106",
            )
        )
    return warnings


def _session_host_prefix_warnings(name: str, host_only: bool) -> list[CheckMessage]:
    if name.startswith("__Host-"):
        if host_only:
            return []
        return [
            Warning(
                f"SESSION_COOKIE_NAME is {name!r}, but browsers accept a "
                "__Host- cookie only with Secure, no Domain and Path=/; this "
                "one would be rejected and nobody could sign in.",
                hint="Set SESSION_COOKIE_SECURE = True, SESSION_COOKIE_DOMAIN "
                '= None and SESSION_COOKIE_PATH = "/".',
                id="sessionkit.W105",
            )
        ]
    if not host_only:
        return []
    return [
        Warning(
            f"SESSION_COOKIE_NAME is {name!r}; with the __Host- prefix browsers "
            "refuse the cookie from subdomains and plain HTTP, so it cannot be "
            "planted or overwritten by them.",
            hint='Set SESSION_COOKIE_NAME = "__Host-sessionid" (this signs '
            "everybody out once).",
            id="sessionkit.W104",
        )
    ]
