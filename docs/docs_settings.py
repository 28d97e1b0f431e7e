"""Django settings for building the documentation.

Just enough for ``sphinx.ext.autodoc`` to import the package: no database is
opened, no cache is reached and nothing is fetched from the network.
"""

from __future__ import annotations

# Never signs anything: nothing is served.
SECRET_KEY = "docs-only-not-secret"  # noqa: S105
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "django_sessionkit",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
SESSION_ENGINE = "django_sessionkit.backends.db"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
