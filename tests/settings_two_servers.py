"""Settings of the app servers that ``tests/test_two_servers.py`` starts.

The test settings on PostgreSQL (``SESSIONKIT_TEST_DATABASE=postgres``), with
the cached_db store on a shared Redis. The test process passes, through the
environment, the name of its own test database (so that every server sees the
rows it committed) and the Redis URL; optionally a rotation interval, grace
window and cache sweep interval in seconds, and the URLconf (the ASGI
server of ``tests/test_crash_safety.py`` serves ``tests.asgi_server``).
"""

from __future__ import annotations

import os
from datetime import timedelta

from tests import settings as base
from tests.settings import *  # noqa: F403


def _seconds(name: str) -> timedelta | None:
    value = os.environ.get(name)
    return timedelta(seconds=float(value)) if value else None


DATABASES = {
    "default": {
        **base.DATABASES["default"],
        "NAME": os.environ["SESSIONKIT_SERVERS_DATABASE"],
    }
}
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "sessions": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": os.environ["SESSIONKIT_SERVERS_REDIS_URL"],
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
    },
}
SESSION_ENGINE = "django_sessionkit.backends.cached_db"
SESSION_CACHE_ALIAS = "sessions"
ROOT_URLCONF = os.environ.get("SESSIONKIT_SERVERS_URLCONF", "tests.wsgi_server")

if (interval := _seconds("SESSIONKIT_SERVERS_ROTATE_INTERVAL")) is not None:
    SESSIONKIT_ROTATE_INTERVAL = interval
if (grace := _seconds("SESSIONKIT_SERVERS_ROTATE_GRACE")) is not None:
    SESSIONKIT_ROTATE_GRACE = grace
if (sweep := _seconds("SESSIONKIT_SERVERS_SWEEP_INTERVAL")) is not None:
    SESSIONKIT_CACHE_SWEEP_INTERVAL = sweep

# Errors and cache failures on the server's stderr, which the test shows when
# it fails (with DEBUG off, Django would only mail them).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django.request": {"handlers": ["stderr"], "level": "WARNING"},
        "django.contrib.sessions": {"handlers": ["stderr"], "level": "WARNING"},
    },
}
