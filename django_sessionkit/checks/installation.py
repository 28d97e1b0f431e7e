"""The app is wired in: our session engine (W001) and our middleware after
Django's authentication middleware (E020)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from django_sessionkit.checks.base import (
    TAG,
    imported,
    is_subclass,
    uses_sessionkit_engine,
)

ENGINES = ("django_sessionkit.backends.db", "django_sessionkit.backends.cached_db")
MIDDLEWARE = "django_sessionkit.middleware.SessionKitMiddleware"
AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"


@register(TAG)
def check_session_engine(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Warn when ``SESSION_ENGINE`` is not one of our stores (W001): the app
    would be installed but track nothing."""
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
def check_middleware(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Require our middleware after Django's authentication middleware (E020):
    without it the policy (timeouts, rotation) is never enforced."""
    from django.contrib.auth.middleware import AuthenticationMiddleware

    from django_sessionkit.middleware import SessionKitMiddleware

    if not uses_sessionkit_engine():
        return []
    classes = [imported(path) for path in settings.MIDDLEWARE]
    ours = [i for i, c in enumerate(classes) if is_subclass(c, SessionKitMiddleware)]
    auth = [
        i for i, c in enumerate(classes) if is_subclass(c, AuthenticationMiddleware)
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
