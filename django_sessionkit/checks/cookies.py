"""The session and device cookies with ``--deploy`` (W101-W106): SameSite,
Secure, Domain and the ``__Host-`` prefix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register

from django_sessionkit.checks.base import TAG
from django_sessionkit.conf import conf


@register(TAG, Tags.security, deploy=True)
def check_session_cookie(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Warn of session and device cookie settings that expose the session
    (W101-W106); deployment only, since a development server runs without
    HTTPS and without subdomains."""
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
