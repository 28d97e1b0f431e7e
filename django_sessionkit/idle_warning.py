"""The idle warning: "Are you still there?" before the idle deadline.

Its context and HTML (:func:`idle_warning_context`,
:func:`render_idle_warning`, rendered by ``{% sessionkit_idle_warning %}`` of
:mod:`django_sessionkit.templatetags.sessionkit`), and the two JSON endpoints
its script calls: :func:`keep_alive` ("Stay signed in") and :func:`status`
(the deadlines, without extending them). The script and stylesheet are
``static/django_sessionkit/idle-warning.js`` and ``idle-warning.css``.

The deadlines come from :func:`django_sessionkit.http.session_deadlines`, so
the warning, the endpoints and the middleware agree on them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import HttpRequest, JsonResponse, QueryDict
from django.middleware.csrf import get_token
from django.shortcuts import resolve_url
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from django_sessionkit.conf import conf
from django_sessionkit.decorators import passive
from django_sessionkit.http import record_activity, session_deadlines, utc_iso
from django_sessionkit.json_errors import json_errors

#: The template of :func:`render_idle_warning`.
TEMPLATE_NAME = "django_sessionkit/idle_warning.html"


# -- The warning ------------------------------------------------------------------


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
    return render_to_string(TEMPLATE_NAME, context)


# -- What its script calls --------------------------------------------------------


def _deadlines_response(request: HttpRequest) -> JsonResponse:
    deadlines = session_deadlines(request)
    if deadlines is None:
        return JsonResponse({"error": "not_signed_in"}, status=401)
    return JsonResponse(
        {
            "now": utc_iso(timezone.now()),
            "idle_deadline": utc_iso(deadlines.idle),
            "absolute_deadline": utc_iso(deadlines.absolute),
        }
    )


@never_cache
@require_POST
@json_errors(only_json=True)
def keep_alive(request: HttpRequest) -> JsonResponse:
    """Extend the idle deadline now ("Stay signed in"); CSRF-protected POST.

    Never past the absolute deadline. Answers the new deadlines as JSON, or
    401 when the session is no longer signed in, or 403 with ``{"error":
    "csrf_failed"}`` without a valid CSRF token.
    """
    record_activity(request)
    return _deadlines_response(request)


@never_cache
@require_GET
@passive
def status(request: HttpRequest) -> JsonResponse:
    """The session's deadlines, without extending them (a passive request)."""
    return _deadlines_response(request)
