"""Views for the browser side of the policy: keep-alive and status."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from django_sessionkit.decorators import passive
from django_sessionkit.http import record_activity, session_deadlines, utc_iso
from django_sessionkit.json_errors import json_errors


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
