"""System checks: a misconfiguration fails at start-up, not on a request.

Ids are stable and never reused: ``E0xx`` for invalid ``SESSIONKIT_*``
values, ``W0xx`` for set-up warnings, ``W1xx`` for ``check --deploy``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib import import_module
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from django_sessionkit.conf import STORE_IP_CHOICES, conf

TAG = "sessionkit"
ENGINES = ("django_sessionkit.backends.db",)


# Header names are ASCII tokens (RFC 9110); letters, digits, "-" and "_".
_HEADER_NAME = re.compile(r"[A-Za-z0-9_-]+")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@register(TAG)
def check_session_engine(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    from django_sessionkit.backends.db import SessionStore

    engine = settings.SESSION_ENGINE
    try:
        store = getattr(import_module(engine), "SessionStore", None)
    except Exception:  # any failure to import means "not our store"
        store = None
    if isinstance(store, type) and issubclass(store, SessionStore):
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
    return warnings
