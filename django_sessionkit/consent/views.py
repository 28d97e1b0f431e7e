"""The consent endpoints: the decision (``sessionkit:consent``, POST) and
the preferences page (``sessionkit:consent_preferences``).

The banner, the preferences page and any script or API client all post to
:func:`consent`: one door into :func:`~django_sessionkit.consent.state.decide`,
:func:`~django_sessionkit.consent.records.record` and the cookie, so the
proof and the cookies are the same whichever way the visitor decided.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseBase,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from django_sessionkit.consent import gating, records, state, tags
from django_sessionkit.consent.categories import categories
from django_sessionkit.http import return_to, wants_json
from django_sessionkit.json_errors import json_errors

#: The buttons of the banner and the preferences page.
ACTIONS = ("accept_all", "reject_all", "save")


def _is_json_body(request: HttpRequest) -> bool:
    return request.content_type == "application/json"


def _answers_json(request: HttpRequest) -> bool:
    return wants_json(request) or _is_json_body(request)


def _fields(request: HttpRequest) -> dict[str, Any] | None:
    """The posted fields (a form, or a JSON object); ``None`` when the body
    is not one."""
    if not _is_json_body(request):
        post = request.POST
        return {
            "action": post.get("action"),
            "granted": post.getlist("granted"),
            "source": post.get("source"),
            "next": post.get("next"),
        }
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    granted = body.get("granted", [])
    if isinstance(granted, str):
        granted = [granted]
    if not isinstance(granted, list):
        return None
    body["granted"] = [str(key) for key in granted]
    return body


def _source(request: HttpRequest, given: Any) -> str:
    if given in records.Source.values:
        return str(given)
    if given is None and _answers_json(request):
        return records.Source.API
    return records.Source.BANNER


def safe_next(request: HttpRequest, url: Any) -> str | None:
    """``url`` when it is a page of this site (same host, and HTTPS when the
    request is), else ``None``: ``next=//evil.example`` is ignored."""
    if not isinstance(url, str) or not url:
        return None
    if url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return None


def _bad_request(request: HttpRequest, action: Any) -> HttpResponseBase:
    message = gettext(
        "Unknown consent action %(action)r: send accept_all, reject_all or save."
    ) % {"action": action}
    if _answers_json(request):
        return JsonResponse(
            {"error": "bad_action", "message": message, "actions": list(ACTIONS)},
            status=400,
        )
    return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")


def _granted(action: str, fields: dict[str, Any]) -> list[str]:
    if action == "accept_all":
        return [c.key for c in categories() if not c.required]
    if action == "reject_all":
        return []
    return list(fields.get("granted") or [])


@json_errors()
@never_cache
@require_POST
def consent(request: HttpRequest) -> HttpResponseBase:
    """Record the visitor's decision (``action`` = ``accept_all``,
    ``reject_all`` or ``save`` with one ``granted`` per category key), set
    the consent cookie, expire the cookies of withdrawn categories, and
    answer with a redirect to the safe ``next`` (else the page the form was
    on, else ``/``) or, for a JSON client, with the new consent."""
    fields = _fields(request)
    action = fields.get("action") if fields is not None else None
    if fields is None or action not in ACTIONS:
        return _bad_request(request, action)
    previous = gating.consent_of(request)
    decided = state.decide(
        request,
        _granted(action, fields),
        explicit=action == "save",
        previous=previous,
    )
    withdrawn = gating.withdrawn(previous, decided)
    records.record(
        request,
        decided,
        source=_source(request, fields.get("source")),
        action=records.action_of(action, withdrawn),
    )
    # The middleware gates this response by the new decision.
    request.consent = decided  # type: ignore[attr-defined]
    response: HttpResponseBase
    if _answers_json(request):
        response = JsonResponse({**state.as_json(decided), "withdrawn": withdrawn})
    else:
        target = safe_next(request, fields.get("next")) or return_to(request) or "/"
        response = HttpResponseRedirect(target, status=303)
    state.set_cookie(response, decided)
    # Every refused category's cookies go, not only those of a withdrawal: a
    # visitor whose earlier decision ran out (a new revision, the max age)
    # may still carry them.
    refused = [c.key for c in categories() if not decided.granted(c.key)]
    gating.expire_withdrawn(request, response, refused)
    return response


def _back(request: HttpRequest, here: str) -> str:
    """The link back: a safe ``?next=``, else the page the visitor came
    from, unless it is this page itself; else ``/``."""
    for candidate in (request.GET.get("next"), request.headers.get("Referer")):
        url = safe_next(request, candidate)
        if url is not None and urlsplit(url).path != here:
            return url
    return "/"


@never_cache
@require_safe
def preferences(request: HttpRequest) -> HttpResponse:
    """Show the visitor's consent (and its id, to quote in a request) and let
    them change or withdraw it as easily as they gave it."""
    current = gating.consent_of(request)
    gating.vary_on_consent(request)
    here = reverse("sessionkit:consent_preferences")
    back = _back(request, here)
    return render(
        request,
        "django_sessionkit/consent_preferences.html",
        {
            "consent": current,
            "consent_choices": state.choices_context(current),
            "consent_gpc": current.gpc,
            "form_action": reverse("sessionkit:consent"),
            "next": f"{here}?{urlencode({'next': back, 'saved': '1'})}",
            "back": back,
            "saved": request.GET.get("saved") == "1" and current.given,
            "nonce": tags.csp_nonce(request),
        },
    )
