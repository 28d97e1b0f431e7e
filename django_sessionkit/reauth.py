"""Sudo mode: ask for the password again before a sensitive view.

``@recent_auth_required`` runs a view only when the user proved who they are
recently: signed in, or re-entered their password at :func:`reauthenticate`,
within ``max_age``. The time of the last re-authentication is kept in the
session's data, so nothing else is stored and no deadline moves.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar, overload

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.sessions.backends.base import SessionBase
from django.db import transaction
from django.http import (
    HttpRequest,
    HttpResponseBase,
    HttpResponseRedirect,
    JsonResponse,
    QueryDict,
)
from django.shortcuts import resolve_url
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from django_sessionkit.conf import conf, to_timedelta
from django_sessionkit.forms import ReauthenticationForm
from django_sessionkit.http import return_to, sign_in_response, utc_iso, wants_json
from django_sessionkit.json_errors import json_errors
from django_sessionkit.lifecycle import (
    arotate_session,
    rotate_session,
    sign_out_revoked,
)
from django_sessionkit.models import Session
from django_sessionkit.policy import CLOCK_SKEW
from django_sessionkit.reauth_limits import REVOKE_REASON, locked_until

#: The session data key holding the last re-authentication (ISO 8601, UTC).
REAUTH_KEY = "_sessionkit_reauth_at"
#: The ``reason`` of the ``rotate`` event a re-authentication writes.
REAUTH_REASON = "reauthenticate"
#: The template of :func:`reauthenticate`.
TEMPLATE_NAME = "django_sessionkit/reauthenticate.html"

View = TypeVar("View", bound=Callable[..., Any])
MaxAge = timedelta | int | float | None


# -- When the user last authenticated --------------------------------------------


def _credible(moment: datetime | None, now: datetime) -> datetime | None:
    # A stored time further in the future than clocks drift is corrupt: it
    # must not make an authentication look recent for longer.
    if moment is None or moment > now + CLOCK_SKEW:
        return None
    return moment


def _stored_reauth(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return None if timezone.is_naive(moment) else moment


def _signed_in_at(session: SessionBase) -> datetime | None:
    # An imported session's sign-in time is the import's: no proof at all.
    if getattr(session, "signed_in_by_import", False):
        return None
    moment: datetime | None = getattr(session, "authenticated_at", None)
    return moment


def _latest(session: SessionBase, stored: object) -> datetime | None:
    now = timezone.now()
    moments = [
        moment
        for moment in (
            _credible(_signed_in_at(session), now),
            _credible(_stored_reauth(stored), now),
        )
        if moment is not None
    ]
    return max(moments) if moments else None


def last_authenticated_at(request: HttpRequest) -> datetime | None:
    """When the request's session last proved its user: the later of its
    sign-in and its last re-authentication, or ``None``. A session brought
    in by ``sessionkit_import`` has no sign-in that counts, only its
    re-authentications.

    A stored time that is not an aware ISO 8601 time, or lies in the future
    (beyond :data:`~django_sessionkit.policy.CLOCK_SKEW`), counts as absent.
    """
    stored = request.session.get(REAUTH_KEY)  # loads the session first
    return _latest(request.session, stored)


async def alast_authenticated_at(request: HttpRequest) -> datetime | None:
    """Async twin of :func:`last_authenticated_at`."""
    stored = await request.session.aget(REAUTH_KEY)
    return _latest(request.session, stored)


def mark_reauthenticated(request: HttpRequest) -> datetime:
    """Record that the user of ``request`` proved who they are just now.

    Call it after checking a password or another factor yourself. The
    session's key is rotated (trust changed; a ``rotate`` event with
    ``reason="reauthenticate"``), and the time is stored in the session's
    data under :data:`REAUTH_KEY`; the deadlines stay as they are. Return
    the time recorded. Raise ``TypeError``, before anything is stored, when
    ``SESSION_ENGINE`` is not one of django-sessionkit's stores.
    """
    now = timezone.now()
    # Rotate first: with another engine, nothing is stored before the error.
    rotate_session(request, reason=REAUTH_REASON)
    request.session[REAUTH_KEY] = utc_iso(now)
    return now


async def amark_reauthenticated(request: HttpRequest) -> datetime:
    """Async twin of :func:`mark_reauthenticated`."""
    now = timezone.now()
    await arotate_session(request, reason=REAUTH_REASON)
    await request.session.aset(REAUTH_KEY, utc_iso(now))
    return now


# -- The decorator -----------------------------------------------------------------


def _checked_max_age(value: MaxAge) -> timedelta | None:
    if value is None:
        return None
    converted = to_timedelta(value)
    if not isinstance(converted, timedelta):
        raise TypeError(
            f"max_age must be a timedelta or a number of seconds, not {value!r}."
        )
    if converted <= timedelta(0):
        raise ValueError(f"max_age must be more than zero, not {value!r}.")
    return converted


def _effective(max_age: timedelta | None) -> timedelta | None:
    return max_age if max_age is not None else conf.REAUTH_MAX_AGE


def _is_recent(last: datetime | None, max_age: timedelta) -> bool:
    return last is not None and timezone.now() < last + max_age


def _reauth_response(request: HttpRequest) -> HttpResponseBase:
    """The answer for a stale authentication: the re-authentication page
    (HTML, with ``next``) or 403 (JSON)."""
    url = reverse("sessionkit:reauthenticate")
    if wants_json(request):
        return JsonResponse(
            {"error": "reauthentication_required", "reauth_url": url}, status=403
        )
    back = return_to(request)
    if back is None:
        return HttpResponseRedirect(url)
    query = QueryDict(mutable=True)
    query[REDIRECT_FIELD_NAME] = back
    return HttpResponseRedirect(f"{url}?{query.urlencode(safe='/')}")


@overload
def recent_auth_required(view: View, *, max_age: MaxAge = None) -> View: ...


@overload
def recent_auth_required(
    view: None = None, *, max_age: MaxAge = None
) -> Callable[[View], View]: ...


def recent_auth_required(
    view: View | None = None, *, max_age: MaxAge = None
) -> View | Callable[[View], View]:
    """Run a view (sync or async) only for a recent authentication.

    An anonymous request goes to ``LOGIN_URL`` (401 for a JSON client). A
    signed-in user whose last authentication (:func:`last_authenticated_at`)
    is ``max_age`` old or older goes to :func:`reauthenticate` and then back
    (403 with ``reauth_url`` for a JSON client). ``max_age`` is a
    ``timedelta`` or seconds; without it, ``SESSIONKIT_REAUTH_MAX_AGE`` as
    it is at the time of the request.

    Use it as ``@recent_auth_required`` or
    ``@recent_auth_required(max_age=timedelta(minutes=5))``. A ``max_age``
    that is not more than zero raises ``ValueError``, one that is neither a
    ``timedelta`` nor a number ``TypeError``, when the view is decorated,
    not at its first request. The decorated view keeps its name, docstring
    and coroutine-ness; its ``recent_auth_max_age`` attribute is the
    ``max_age`` given, as a ``timedelta``, or ``None``.
    """
    limit = _checked_max_age(max_age)

    def decorator(view: View) -> View:
        wrapper: Callable[..., Any]
        if iscoroutinefunction(view):

            async def async_wrapper(
                request: HttpRequest, *args: Any, **kwargs: Any
            ) -> Any:
                user = await request.auser()
                if not user.is_authenticated:
                    return sign_in_response(request)
                age = _effective(limit)
                if age is None or _is_recent(
                    await alast_authenticated_at(request), age
                ):
                    return await view(request, *args, **kwargs)
                return _reauth_response(request)

            wrapper = async_wrapper
        else:

            def sync_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                if not request.user.is_authenticated:
                    return sign_in_response(request)
                age = _effective(limit)
                if age is None or _is_recent(last_authenticated_at(request), age):
                    return view(request, *args, **kwargs)
                return _reauth_response(request)

            wrapper = sync_wrapper
        wrapped = functools.wraps(view)(wrapper)
        wrapped.recent_auth_max_age = limit  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    if view is not None:
        return decorator(view)
    return decorator


# -- The re-authentication view ----------------------------------------------------


def _safe_next(request: HttpRequest) -> str:
    url = request.POST.get(REDIRECT_FIELD_NAME, request.GET.get(REDIRECT_FIELD_NAME))
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return ""


def _seconds_until(moment: datetime) -> int:
    return max(1, math.ceil((moment - timezone.now()).total_seconds()))


def _locked_response(
    request: HttpRequest, until: datetime, context: dict[str, Any]
) -> HttpResponseBase:
    """429 until the wrong passwords leave the window: the page says why and
    when to retry; a JSON client gets ``too_many_failures``."""
    retry_after = _seconds_until(until)
    response: HttpResponseBase
    if wants_json(request):
        response = JsonResponse(
            {
                "error": "too_many_failures",
                "locked_until": utc_iso(until),
                "retry_after": retry_after,
            },
            status=429,
        )
    else:
        context = {
            **context,
            "locked_until": until,
            "retry_minutes": math.ceil(retry_after / 60),
        }
        response = TemplateResponse(request, TEMPLATE_NAME, context, status=429)
    response["Retry-After"] = str(retry_after)
    return response


def _revoked_response(request: HttpRequest) -> HttpResponseBase:
    sign_out_revoked(request)
    login_url = resolve_url(settings.LOGIN_URL)
    if wants_json(request):
        return JsonResponse(
            {
                "error": "session_revoked",
                "reason": REVOKE_REASON,
                "login_url": login_url,
            },
            status=401,
        )
    # No message: storing one could give the signed-out browser a new session.
    return HttpResponseRedirect(login_url)


# Not atomic under ATOMIC_REQUESTS: each attempt is committed before its
# password is checked, so that attempts racing each other see each other.
@transaction.non_atomic_requests
@sensitive_post_parameters("password")
@json_errors()
@never_cache
@require_http_methods(["GET", "POST"])
def reauthenticate(request: HttpRequest) -> HttpResponseBase:
    """Ask the signed-in user for their password again; CSRF-protected POST.

    Its URL name is ``sessionkit:reauthenticate``. The right password
    records the time (:func:`mark_reauthenticated`, which rotates the key)
    and redirects to ``next`` when it is a URL of this site, else to
    ``LOGIN_REDIRECT_URL``. A wrong one shows the form again with an error;
    it is recorded and counted (see
    :mod:`django_sessionkit.reauth_limits`): once the user is locked out, the
    answer is 429 until the failures leave the window, whatever the
    password, and the failure that reaches ``SESSIONKIT_REAUTH_REVOKE_AFTER``
    revokes the session and signs the user out. A JSON client gets
    ``{"reauthenticated_at": ...}``, 400 with the form's errors, 429 with
    ``retry_after`` (seconds) or 401 once signed out.
    """
    if not request.user.is_authenticated:
        return sign_in_response(request)
    redirect_to = _safe_next(request)
    context: dict[str, Any] = {
        "next": redirect_to,
        "user": request.user,
        "form_action": request.path,
    }
    record = getattr(request.session, "record", None)
    session_id = record.pk if isinstance(record, Session) else None
    until = locked_until(request.user, session_id=session_id)
    if until is not None:
        return _locked_response(request, until, context)
    form = ReauthenticationForm(
        request, data=request.POST if request.method == "POST" else None
    )
    if form.is_valid():
        now = mark_reauthenticated(request)
        if wants_json(request):
            return JsonResponse({"reauthenticated_at": utc_iso(now)})
        return HttpResponseRedirect(
            redirect_to or resolve_url(settings.LOGIN_REDIRECT_URL)
        )
    outcome = form.outcome
    if outcome is not None and outcome.revoked:
        return _revoked_response(request)
    if outcome is not None and outcome.locked_until is not None:
        return _locked_response(request, outcome.locked_until, context)
    if request.method == "POST" and wants_json(request):
        return JsonResponse(
            {"error": "invalid_password", "errors": form.errors.get_json_data()},
            status=400,
        )
    return TemplateResponse(request, TEMPLATE_NAME, {**context, "form": form})
