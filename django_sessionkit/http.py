"""Request plumbing shared by every door: the middleware, the pages, the idle
warning, re-authentication, the template tags and the signal receivers.

- the session store of a request (:func:`store_of`, :func:`require_store`),
  the session being handled (:func:`current_store`) and its row
  (:func:`current_record`);
- what the policy middleware learnt about the request's session
  (:class:`State`, :func:`request_state`) and the deadlines the request leaves
  it with (:func:`session_deadlines`); what counts as activity
  (:func:`is_passive`, :func:`record_activity`);
- JSON negotiation (:func:`wants_json`), timestamps for templates and JSON
  (:func:`utc_iso`), and the anonymous answer (:func:`sign_in_response`).

Nothing here decides policy; the middleware does (``middleware.py``), with
the rules of ``policy.py``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ImproperlyConfigured
from django.http import (
    HttpRequest,
    HttpResponseBase,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import resolve_url
from django.template import Context
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from django_sessionkit import policy
from django_sessionkit.backends.db import SessionStore, current_session
from django_sessionkit.conf import conf
from django_sessionkit.models import Session

# -- The store and the session of a request ------------------------------------


def store_of(request: HttpRequest | None) -> SessionStore | None:
    """The django-sessionkit store of ``request``, or ``None`` (no session,
    or a ``SESSION_ENGINE`` that is not one of this app's)."""
    session = getattr(request, "session", None)
    return session if isinstance(session, SessionStore) else None


def require_store(request: HttpRequest, caller: str) -> SessionStore:
    """The django-sessionkit store of ``request``; ``TypeError`` naming
    ``caller`` when the site uses another ``SESSION_ENGINE``."""
    store = store_of(request)
    if store is None:
        session = getattr(request, "session", None)
        raise TypeError(
            f"{caller}() needs a django-sessionkit SESSION_ENGINE, "
            f"not {type(session).__module__}."
        )
    return store


def current_store() -> SessionStore | None:
    """The store of the request being handled in this context, or ``None``.

    The middleware's store, or else the first store made in this request
    (Django's ``SessionMiddleware`` makes it before any view runs): code that
    is not given the request (a ``post_save`` receiver, say) finds the
    request's own session here, never one made to decode another's data.
    """
    return current_session.get()


def current_record(request: HttpRequest) -> Session | None:
    """The row of the request's own session, or ``None``."""
    store = store_of(request)
    return store.record if store is not None else None


# -- What the policy middleware learnt -------------------------------------------


class State:
    """What the middleware's request phase learnt, for its response phase and
    for the doors that show the session's deadlines."""

    # A plain class with slots: built on every signed-in request.
    __slots__ = ("now", "policy", "record", "store")

    def __init__(
        self, store: SessionStore, record: Session, policy: policy.Policy, now: datetime
    ) -> None:
        self.store = store
        self.record = record
        self.policy = policy
        self.now = now

    def expiry_reason(self) -> str | None:
        """Whether the policy ends the session now: ``"idle"``, ``"absolute"``."""
        return policy.expiry_reason(
            self.policy,
            authenticated_at=self.record.authenticated_at,
            active_at=self.record.last_seen_at,
            now=self.now,
        )

    def activity_due(self, request: HttpRequest) -> bool:
        """Whether ``request`` writes activity: asked for with
        :func:`record_activity`, or ``SESSIONKIT_ACTIVITY_RESOLUTION`` passed."""
        resolution = conf.ACTIVITY_RESOLUTION
        last = self.record.last_seen_at
        return (
            getattr(request, "sessionkit_activity", False)
            or resolution is None
            or last is None
            or self.now - last >= resolution
        )


def request_state(request: HttpRequest) -> State | None:
    """The middleware's :class:`State` of a signed-in ``request``, or ``None``."""
    return getattr(request, "sessionkit_state", None)


def is_passive(request: HttpRequest) -> bool:
    """Whether the request must not extend the idle deadline."""
    match = getattr(request, "resolver_match", None)
    if match is not None and getattr(match.func, "sessionkit_passive", False):
        return True
    return any(pattern.match(request.path_info) for pattern in _passive_patterns())


def _passive_patterns() -> list[re.Pattern[str]]:
    # Compiled once, and again when the setting changes.
    return conf.derived(  # type: ignore[no-any-return]
        "passive_patterns", lambda: [re.compile(p) for p in conf.PASSIVE_URLS]
    )


def record_activity(request: HttpRequest) -> None:
    """Make this request write activity now, whatever the resolution."""
    request.sessionkit_activity = True  # type: ignore[attr-defined]


def session_deadlines(request: HttpRequest) -> policy.Deadlines | None:
    """The deadlines of the request's signed-in session, as this request leaves
    them: extended when the request counts as activity, else as stored.

    ``None`` for an anonymous request or without the middleware.
    """
    state = request_state(request)
    if state is None or state.record.authenticated_at is None:
        return None
    active = state.record.last_seen_at
    if not is_passive(request) and state.activity_due(request):
        active = state.now
    return policy.deadlines(
        state.policy, authenticated_at=state.record.authenticated_at, active_at=active
    )


def context_request(context: Context, tag: str) -> HttpRequest:
    """The request of a template ``context``, for the template tag ``tag``;
    ``ImproperlyConfigured`` saying how to provide it when it is missing."""
    request: HttpRequest | None = context.get("request")
    if request is None:
        raise ImproperlyConfigured(
            f"{{% {tag} %}} needs the request in the template context: add "
            '"django.template.context_processors.request" to the '
            "context_processors of TEMPLATES, and render with a request."
        )
    return request


# -- Answers ---------------------------------------------------------------------


def wants_json(request: HttpRequest) -> bool:
    """Whether the client asked for JSON rather than a page."""
    if request.headers.get("X-Requested-With") == "XMLHttpRequest":
        return True
    preferred = request.get_preferred_type(["text/html", "application/json"])
    return preferred == "application/json"


def utc_iso(value: datetime | None) -> str | None:
    """``value`` in UTC as ISO 8601 (a naive value is in the current time
    zone), so that browsers compare times in one zone whatever ``USE_TZ``."""
    if value is None:
        return None
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    return value.astimezone(UTC).isoformat()


def return_to(request: HttpRequest) -> str | None:
    """Where to come back after signing in or re-authenticating.

    The requested URL for a ``GET``; for a form ``POST`` (which cannot be
    repeated by a redirect), the page the form was on, when it is ours.
    """
    if request.method in ("GET", "HEAD"):
        return request.get_full_path()
    referer = request.headers.get("Referer", "")
    if not url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return None
    parts = urlsplit(referer)  # parses: the check above would have failed
    # A Referer is an absolute URL; anything else is not a page of ours.
    if not parts.netloc:
        return None
    return urlunsplit(("", "", parts.path or "/", parts.query, ""))


def sign_in_response(request: HttpRequest) -> HttpResponseBase:
    """The anonymous answer: a redirect to ``LOGIN_URL`` (HTML) or 401 (JSON).

    ``next`` is the requested URL for a ``GET``; for a form ``POST`` (which a
    redirect cannot repeat), the page the form was on, when it is ours. As
    with ``login_required``, ``next`` is a full URL when the sign-in page is
    on another host. A JSON client gets
    ``{"error": "not_signed_in", "login_url": ...}``.
    """
    login_url = resolve_url(settings.LOGIN_URL)
    if wants_json(request):
        return JsonResponse(
            {"error": "not_signed_in", "login_url": login_url}, status=401
        )
    back = return_to(request)
    if back is None:
        return HttpResponseRedirect(login_url)
    # As login_required: a sign-in page on another host gets a full URL back.
    path = request.build_absolute_uri(back)
    login_scheme, login_netloc = urlsplit(login_url)[:2]
    scheme, netloc = urlsplit(path)[:2]
    if (not login_scheme or login_scheme == scheme) and (
        not login_netloc or login_netloc == netloc
    ):
        path = back
    return redirect_to_login(path, login_url)
