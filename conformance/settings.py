"""Settings for running Django's session tests against our store.

``run.py`` runs the suite twice, with ``CONFORMANCE_USE_TZ=1`` and ``=0``.
"""

from __future__ import annotations

import os

SECRET_KEY = "conformance-only-not-secret"  # noqa: S105
USE_TZ = os.environ.get("CONFORMANCE_USE_TZ", "1") == "1"
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    # Django's test module imports its Session model and CustomSession.
    "django.contrib.sessions",
    "django_sessionkit",
    "sessions_tests",
]

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
SESSION_ENGINE = "django_sessionkit.backends.db"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

# The cached_db store's tests run against a real Redis through django-redis;
# run.py starts a private redis-server and passes its URL.
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": os.environ.get("CONFORMANCE_REDIS_URL", "redis://127.0.0.1:6379/0"),
    }
}
