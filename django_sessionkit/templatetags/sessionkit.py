"""Template tags of django-sessionkit: ``{% load sessionkit %}``.

``{% sessionkit_idle_warning %}`` renders the idle warning of
``django_sessionkit/idle_warning.html`` with its script and stylesheet (no
inline script or style, so it works under a strict Content-Security-Policy);
``{% sessionkit_deadlines as deadlines %}`` gives a template the session's
deadlines. Both are thin wrappers over the functions here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django import template
from django.conf import settings
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, QueryDict
from django.middleware.csrf import get_token
from django.shortcuts import resolve_url
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString

from django_sessionkit import policy
from django_sessionkit.conf import conf
from django_sessionkit.http import session_deadlines, utc_iso

register = template.Library()

IDLE_WARNING_TEMPLATE = "django_sessionkit/idle_warning.html"


def _iso(value: datetime | None) -> str:
    return utc_iso(value) or ""


def login_url(request: HttpRequest) -> str:
    """``LOGIN_URL`` with ``?next=`` set to the page of ``request``."""
    parts = urlsplit(resolve_url(settings.LOGIN_URL))
    query = QueryDict(parts.query, mutable=True)
    query[REDIRECT_FIELD_NAME] = request.get_full_path()
    return urlunsplit(parts._replace(query=query.urlencode(safe="/")))


def csrf_header_name() -> str:
    """The HTTP header of ``CSRF_HEADER_NAME`` as a browser sends it."""
    name = settings.CSRF_HEADER_NAME.removeprefix("HTTP_")
    return "-".join(word.capitalize() for word in name.split("_"))


def idle_warning_context(
    request: HttpRequest, *, logout_url: str | None = None
) -> dict[str, Any] | None:
    """The context of the idle warning for ``request``.

    ``None`` when no warning applies: an anonymous request, a request the
    middleware did not see, a session without deadlines, or
    ``SESSIONKIT_IDLE_WARNING = None``. ``logout_url`` (a URL or URL name)
    adds a "Sign out" button that posts there.
    """
    warn_before = conf.IDLE_WARNING
    if warn_before is None:
        return None
    deadlines = session_deadlines(request)
    if deadlines is None or deadlines.earliest is None:
        return None
    now = timezone.now()
    return {
        "now": _iso(now),
        "idle_deadline": _iso(deadlines.idle),
        "absolute_deadline": _iso(deadlines.absolute),
        "warn_before": f"{warn_before.total_seconds():g}",
        "keep_alive_url": reverse("sessionkit:keep_alive"),
        "status_url": reverse("sessionkit:status"),
        "login_url": login_url(request),
        "csrf_token": get_token(request),
        "csrf_header": csrf_header_name(),
        "logout_url": resolve_url(logout_url) if logout_url else "",
    }


def render_idle_warning(request: HttpRequest, *, logout_url: str | None = None) -> str:
    """The HTML of the idle warning for ``request``, or "" when none applies."""
    context = idle_warning_context(request, logout_url=logout_url)
    if context is None:
        return SafeString("")
    return render_to_string(IDLE_WARNING_TEMPLATE, context)


def _request(context: template.Context, tag: str) -> HttpRequest:
    request: HttpRequest | None = context.get("request")
    if request is None:
        raise ImproperlyConfigured(
            f"{{% {tag} %}} needs the request in the template context: add "
            '"django.template.context_processors.request" to the '
            "context_processors of TEMPLATES, and render with a request."
        )
    return request


@register.simple_tag(takes_context=True)
def sessionkit_idle_warning(
    context: template.Context, logout_url: str | None = None
) -> SafeString:
    """Render the idle warning, its script and its stylesheet.

    Nothing for anonymous visitors. Put it once per page, e.g. at the end of
    ``<body>`` in the base template: ``{% sessionkit_idle_warning %}``, or
    ``{% sessionkit_idle_warning logout_url="logout" %}`` for a "Sign out"
    button in the warning.
    """
    request = _request(context, "sessionkit_idle_warning")
    return SafeString(render_idle_warning(request, logout_url=logout_url))


@register.simple_tag(takes_context=True)
def sessionkit_deadlines(context: template.Context) -> policy.Deadlines | None:
    """The session's deadlines (``.idle``, ``.absolute``), or ``None``.

    ``{% sessionkit_deadlines as deadlines %}``; elements with
    ``data-sessionkit-countdown="idle"`` or ``"absolute"`` on a page with the
    idle warning show a live countdown to them.
    """
    return session_deadlines(_request(context, "sessionkit_deadlines"))
