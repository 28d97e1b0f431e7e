"""Settings of the soak site that ``soak/run.py`` serves with two gunicorn servers.

The cached store on a private Redis and a private PostgreSQL database, both
named by the driver through the environment (``SOAK_REDIS_URL``,
``SOAK_DATABASE``; the connection from the usual ``PG*`` variables). Test
scaffolding: never deploy it.
"""

from __future__ import annotations

import os
from datetime import timedelta

SECRET_KEY = "soak-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["127.0.0.1"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.messages",
    "django.contrib.sessions",
    "django_sessionkit",
]

# As docs/tutorial/installation.rst orders them: the policy middleware after
# AuthenticationMiddleware and MessageMiddleware.
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_sessionkit.middleware.SessionKitMiddleware",
]

ROOT_URLCONF = "soak.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The run measures sessions, not password hashing: with PBKDF2 the sign-ins
# would take most of the machine's CPU.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.dummy.EmailBackend"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("SOAK_DATABASE", "sessionkit_soak"),
        "USER": os.environ.get("PGUSER", "postgres"),
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
        "HOST": os.environ.get("PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("PGPORT", "5432"),
    }
}

SESSION_ENGINE = "django_sessionkit.backends.cached_db"
SESSION_CACHE_ALIAS = "sessions"
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "sessions": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": os.environ.get("SOAK_REDIS_URL", "redis://127.0.0.1:6379/0"),
        # Short, so that a paused Redis costs a request half a second per
        # command instead of hanging it (redis-py waits forever by default).
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
    },
}

# The driver's crash-safety bound is this interval plus one second: a
# revocation whose tombstone was left pending must stop being served by every
# process within one sweep. Two seconds keeps the run short; run.py reads the
# value from here.
SESSIONKIT_CACHE_SWEEP_INTERVAL = timedelta(seconds=2)

# Errors and cache failures on stderr, which the driver keeps in a log per
# server and shows when the run fails (with DEBUG off Django would only mail
# them).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django.request": {"handlers": ["stderr"], "level": "ERROR"},
        "django.contrib.sessions": {"handlers": ["stderr"], "level": "ERROR"},
    },
}
