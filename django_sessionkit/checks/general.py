"""The general settings (E001-E006, E021): the client's address, what is
stored of it, the cleanup batch, and the cookies' names and SameSite."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from django_sessionkit.checks.base import TAG, is_int
from django_sessionkit.conf import STORE_IP_CHOICES, conf

# A cookie name is an HTTP token (RFC 6265): no separators, spaces or controls.
_COOKIE_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Header names are ASCII tokens (RFC 9110); letters, digits, "-" and "_".
_HEADER_NAME = re.compile(r"[A-Za-z0-9_-]+")


@register(TAG)
def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Refuse invalid general settings (E001-E006, E021) at start-up rather
    than on the first request that reads them."""
    errors: list[CheckMessage] = []
    count = conf.TRUSTED_PROXY_COUNT
    if not is_int(count) or count < 0:
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
    if not is_int(batch) or batch < 1:
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
