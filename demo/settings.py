"""Settings for the local demo site that ``make demo`` serves.

Development only: DEBUG is on and the site listens on the loopback interface.
SQLite lives in ``demo/db.sqlite3`` (``DEMO_DATABASE_PATH`` overrides it), and
the secret key is generated on first use and kept in ``demo/.secret_key``
(``DEMO_SECRET_KEY_FILE`` overrides it); both files are git-ignored.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

from django.core.management.utils import get_random_secret_key

DEMO_DIR = Path(__file__).resolve().parent


def _secret_key(path: Path) -> str:
    """Return the key stored in ``path``, creating the file on first use."""
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    # Written aside and linked into place, so that two processes starting at
    # once agree on one key and neither reads a half-written file.
    partial = path.with_name(f"{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(get_random_secret_key() + "\n")
    try:
        os.link(partial, path)
    except FileExistsError:
        pass
    finally:
        partial.unlink()
    return path.read_text(encoding="ascii").strip()


SECRET_KEY = _secret_key(
    Path(os.environ.get("DEMO_SECRET_KEY_FILE") or DEMO_DIR / ".secret_key")
)
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_sessionkit",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "demo.middleware.ContentSecurityPolicyMiddleware",
    # Above every middleware that sets cookies, so that it sees them all:
    # non-essential cookies go out only with the visitor's consent.
    "django_sessionkit.middleware.ConsentMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language chosen in the header (Django's set_language view keeps it
    # in a cookie), else the browser's.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_sessionkit.middleware.SessionKitMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Before the apps: demo/templates/django_sessionkit/ overrides the
        # package's templates, to show its pages in the demo's layout.
        "DIRS": [DEMO_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DEMO_DATABASE_PATH") or DEMO_DIR / "db.sqlite3",
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

SESSION_ENGINE = "django_sessionkit.backends.db"

# Short limits, so that the deadlines in the header visibly count down and the
# idle warning comes after a few minutes of doing nothing. "Remember me" at
# sign-in switches to the longer pair.
SESSIONKIT_IDLE_TIMEOUT = timedelta(minutes=5)
SESSIONKIT_IDLE_WARNING = timedelta(minutes=1)
SESSIONKIT_ABSOLUTE_TIMEOUT = timedelta(hours=1)
SESSIONKIT_REMEMBER_ME_IDLE_TIMEOUT = timedelta(days=1)
SESSIONKIT_REMEMBER_ME_ABSOLUTE_TIMEOUT = timedelta(days=7)
# Every page load counts as activity after 10 seconds (default: 60).
SESSIONKIT_ACTIVITY_RESOLUTION = timedelta(seconds=10)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"django.contrib.auth.password_validation.{name}"}
    for name in (
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    )
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

LANGUAGE_CODE = "en"
# The languages of the package's catalogues, offered in the header.
LANGUAGES = [
    ("en", "English"),
    ("de", "German"),
    ("fr", "French"),
    ("es", "Spanish"),
]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
