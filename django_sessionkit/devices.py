"""Devices: the browsers and apps a user signs in from.

A device is recognised by a long-lived cookie (``SESSIONKIT_DEVICE_COOKIE_NAME``)
holding a random token; the database keeps only the token's SHA-256. Devices
are made by sign-ins only: anonymous visitors and bots never create one. The
user agent is parsed when a device is first seen or when its user agent
changes, at a sign-in, never on the ordinary request path.
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import DisallowedHost
from django.core.mail import send_mail
from django.db import router
from django.http import HttpRequest, HttpResponseBase
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext

from django_sessionkit import client
from django_sessionkit.conf import conf
from django_sessionkit.keys import hash_key
from django_sessionkit.models import PARSED_MAX_LENGTH, USER_AGENT_MAX_LENGTH, Device

logger = logging.getLogger(__name__)

#: The request attribute holding the token the response's cookie must carry.
REQUEST_ATTRIBUTE = "sessionkit_device_token"
#: The templates of the new-device email; override them in your project.
SUBJECT_TEMPLATE = "django_sessionkit/email/new_device_subject.txt"
BODY_TEMPLATE = "django_sessionkit/email/new_device_body.txt"

# What secrets.token_urlsafe(32) returns: 43 characters of base64url.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def new_token() -> str:
    """A fresh device token (256 random bits)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The SHA-256 (hex) of a device token: what the database keeps."""
    return hash_key(token)


def is_well_formed(token: object) -> bool:
    """Whether ``token`` looks like one :func:`new_token` made (no query else)."""
    return isinstance(token, str) and _TOKEN.fullmatch(token) is not None


# -- User agents ------------------------------------------------------------------


def _kind(agent: Any) -> str:
    if agent.is_bot:
        return Device.Kind.BOT
    if agent.is_tablet:
        return Device.Kind.TABLET
    if agent.is_mobile:
        return Device.Kind.MOBILE
    if agent.is_pc:
        return Device.Kind.DESKTOP
    return Device.Kind.OTHER


def _name(family: str, version: str = "") -> str:
    # ua-parser calls what it does not recognise "Other".
    if not family or family == "Other":
        return ""
    return f"{family} {version}".strip()[:PARSED_MAX_LENGTH]


def parse_user_agent(user_agent: str) -> dict[str, str]:
    """The fields parsed from ``user_agent``, as ``Device`` stores them.

    Return ``browser`` (``"Chrome 120.0.0"``), ``os`` (``"Windows 10"``),
    ``device_family`` (``"iPhone"``), each ``""`` when unknown, and ``kind``,
    a :class:`~django_sessionkit.models.Device.Kind` value. Never raises: the
    string is bounded to ``USER_AGENT_MAX_LENGTH`` and cleaned before
    parsing, and whatever cannot be parsed is unknown.
    """
    unknown = {"browser": "", "os": "", "device_family": "", "kind": Device.Kind.OTHER}
    text = _CONTROL_CHARS.sub("", str(user_agent)[: 4 * USER_AGENT_MAX_LENGTH])
    text = text[:USER_AGENT_MAX_LENGTH].strip()
    if not text:
        return unknown
    # Imported at the first sign-in, not at start-up: loading the parser's
    # patterns takes a while and most processes never need them.
    from user_agents import parse

    try:
        agent = parse(text)
        return {
            "browser": _name(agent.browser.family, agent.browser.version_string),
            "os": _name(agent.os.family, agent.os.version_string),
            "device_family": _name(agent.device.family),
            "kind": _kind(agent),
        }
    except Exception:
        # A parser bug must never cost a user their sign-in.
        logger.warning("Could not parse a user agent", exc_info=True)
        return unknown


# -- Sign-in ----------------------------------------------------------------------


def _devices() -> Any:
    return Device.objects.using(router.db_for_write(Device))


def _presented(request: HttpRequest, user: Any) -> Device | None:
    token = request.COOKIES.get(conf.DEVICE_COOKIE_NAME)
    if not is_well_formed(token):
        return None
    assert token is not None
    device: Device | None = (
        _devices().filter(token_hash=hash_token(token), user_id=user.pk).first()
    )
    return device


def device_for_sign_in(request: HttpRequest, user: Any) -> tuple[Device, bool]:
    """The device ``user`` signs in from, and whether it was created now.

    The device whose token the request's device cookie carries is reused when
    it belongs to ``user``; otherwise a new device with a fresh token is
    created. Either way the token is left on the request for the middleware
    to set (or refresh) the cookie on the response.
    """
    user_agent = client.user_agent_for_storage(request)
    ip = client.ip_for_storage(client.client_ip(request))
    device = _presented(request, user)
    if device is not None:
        token = request.COOKIES[conf.DEVICE_COOKIE_NAME]
        device.last_seen_at = timezone.now()
        device.ip = ip
        fields = ["last_seen_at", "ip"]
        if device.user_agent != user_agent:
            parsed = parse_user_agent(user_agent)
            for name, value in parsed.items():
                setattr(device, name, value)
            device.user_agent = user_agent
            fields += ["user_agent", *parsed]
        values = {name: getattr(device, name) for name in fields}
        if not _devices().filter(pk=device.pk).update(**values):
            # Deleted by the cleanup since it was read: a new device then.
            device = None
        created = False
    if device is None:
        token = new_token()
        device = _devices().create(
            user=user,
            token_hash=hash_token(token),
            user_agent=user_agent,
            ip=ip,
            **parse_user_agent(user_agent),
        )
        created = True
    setattr(request, REQUEST_ATTRIBUTE, token)
    return device, created


def set_device_cookie(request: HttpRequest, response: HttpResponseBase) -> None:
    """Set the device cookie when this request signed in (called by the middleware).

    HttpOnly always; Secure and SameSite follow ``SESSION_COOKIE_SECURE`` and
    ``SESSION_COOKIE_SAMESITE``.
    """
    token = getattr(request, REQUEST_ATTRIBUTE, None)
    if token is None or response.status_code >= 500:
        return
    age = conf.DEVICE_COOKIE_AGE
    response.set_cookie(
        conf.DEVICE_COOKIE_NAME,
        token,
        max_age=age,
        path=settings.SESSION_COOKIE_PATH,
        domain=settings.SESSION_COOKIE_DOMAIN,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite=settings.SESSION_COOKIE_SAMESITE,
    )


# -- The new-device email ---------------------------------------------------------

#: The browsers (ua-parser's family names) the new-device email names. Any
#: other is "an unrecognised browser": ua-parser copies text of the
#: User-Agent into some families (a bot's or an app's name), and whoever
#: signs in chooses that header, so only these fixed names reach the email.
EMAIL_BROWSERS = frozenset(
    {
        "Android",
        "Chrome",
        "Chrome Mobile",
        "Chrome Mobile iOS",
        "Chrome Mobile WebView",
        "Chromium",
        "DuckDuckGo Mobile",
        "Edge",
        "Edge Mobile",
        "Firefox",
        "Firefox Mobile",
        "Firefox iOS",
        "IE",
        "Mobile Safari",
        "Mobile Safari UI/WKWebView",
        "Opera",
        "Opera Mini",
        "Opera Mobile",
        "Safari",
        "Samsung Internet",
        "UC Browser",
        "Vivaldi",
        "Yandex Browser",
    }
)
#: The operating systems (ua-parser's family names) the email names.
EMAIL_OPERATING_SYSTEMS = frozenset(
    {
        "Android",
        "Chrome OS",
        "Debian",
        "Fedora",
        "FreeBSD",
        "Linux",
        "Mac OS X",
        "Ubuntu",
        "Windows",
        "iOS",
    }
)
# A version as ua-parser writes it: numbers only, so no words of the sender.
_VERSION = re.compile(r"\d{1,6}(?:\.\d{1,6}){0,3}")


def _recognised(name: str, families: frozenset[str]) -> str | None:
    # ``name`` is what Device stores: a family, then its version, if any.
    for family in families:
        if name == family:
            return name
        rest = name.removeprefix(family + " ")
        if rest != name and _VERSION.fullmatch(rest):
            return name
    return None


def email_device_names(device: Device) -> tuple[str, str]:
    """The browser and operating system of ``device`` as the new-device email
    names them: a name from :data:`EMAIL_BROWSERS` (or
    :data:`EMAIL_OPERATING_SYSTEMS`) with its version, else "an unrecognised
    browser" (or "an unrecognised operating system"). Never text of the
    User-Agent beyond those names and the version's numbers."""
    browser = _recognised(device.browser, EMAIL_BROWSERS)
    os = _recognised(device.os, EMAIL_OPERATING_SYSTEMS)
    return (
        browser or gettext("an unrecognised browser"),
        os or gettext("an unrecognised operating system"),
    )


def sessions_page_url(request: HttpRequest | None) -> str | None:
    """The absolute URL of the sessions page (``sessionkit:sessions``), or
    ``None`` without a request or when the app's URLs are not included."""
    if request is None or "*" in settings.ALLOWED_HOSTS:
        # With any host allowed, whoever signs in (with a stolen password,
        # say) would choose the host of the link the user is sent.
        return None
    try:
        return request.build_absolute_uri(reverse("sessionkit:sessions"))
    except NoReverseMatch:
        return None
    except DisallowedHost:
        # A Host header outside ALLOWED_HOSTS never makes it into a link.
        return None


def notify_new_device(
    device: Device, user: Any, request: HttpRequest | None = None
) -> bool:
    """Email ``user`` about a sign-in from ``device``; return whether it was sent.

    Sent only with ``SESSIONKIT_NOTIFY_NEW_DEVICE`` and when the user has an
    email address. The subject and body come from the templates
    ``django_sessionkit/email/new_device_subject.txt`` and
    ``new_device_body.txt``, with ``user``, ``device``, ``browser`` and
    ``os`` (from :func:`email_device_names`; the device's own labels may
    repeat text of the User-Agent) and ``sessions_url`` (the sessions page's
    absolute URL, built from ``request``, or ``None``) in their context. A
    failure to send is logged, never raised: the sign-in goes on.
    """
    if not conf.NOTIFY_NEW_DEVICE:
        return False
    email_field = get_user_model().get_email_field_name()
    address = getattr(user, email_field, "")
    if not address:
        return False
    browser, os = email_device_names(device)
    context = {
        "user": user,
        "device": device,
        "browser": browser,
        "os": os,
        "sessions_url": sessions_page_url(request),
    }
    # A subject is one line: a header must not be split.
    subject = " ".join(render_to_string(SUBJECT_TEMPLATE, context).split())
    body = render_to_string(BODY_TEMPLATE, context)
    try:
        send_mail(subject, body, None, [address])
    except Exception:
        logger.exception("Could not send the new-device email")
        return False
    return True
