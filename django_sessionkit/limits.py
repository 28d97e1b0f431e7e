"""The limit on concurrent sessions per user (``SESSIONKIT_MAX_SESSIONS_PER_USER``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asgiref.sync import iscoroutinefunction
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db import router
from django.http import HttpRequest, HttpResponseBase
from django.utils.translation import gettext_lazy as _

from django_sessionkit.conf import conf
from django_sessionkit.http import current_record
from django_sessionkit.models import Session, SessionQuerySet

if TYPE_CHECKING:
    from django_sessionkit.backends.db import SessionStore

#: The message of a refused sign-in, translated: the form error of
#: :class:`~django_sessionkit.forms.AuthenticationForm` and the text of
#: :exc:`SessionLimitReached`.
LIMIT_MESSAGE = _(
    "You are signed in on too many devices. Sign out on one of them first."
)


#: Set on a request whose sign-in form checked the limit and let it pass.
FORM_CHECKED = "sessionkit_limit_checked"
_RETRIED = "sessionkit_limit_retried"


class SessionLimitReached(PermissionDenied):
    """A sign-in refused because the user has the maximum number of sessions.

    Raised by ``login()`` and ``alogin()`` when
    ``SESSIONKIT_MAX_SESSIONS_POLICY`` is ``"deny"`` and the user already has
    ``SESSIONKIT_MAX_SESSIONS_PER_USER`` other live sessions. A
    ``PermissionDenied``, so Django answers 403; ``request.user`` is
    anonymous again. When the sign-in view's form is
    :class:`~django_sessionkit.forms.AuthenticationForm` and its check let
    the sign-in pass (a simultaneous sign-in took the last place in
    between), the middleware runs a sync view once more instead, and the
    form shows its error (:func:`refused_response`).
    """


def refuse(request: HttpRequest) -> SessionLimitReached:
    """Leave ``request`` anonymous after a refused sign-in; the error to raise.

    ``login()`` has set ``request.user`` already: nothing after the refusal
    may act as the user.
    """
    request.user = AnonymousUser()
    return SessionLimitReached(str(LIMIT_MESSAGE))


def refused_response(
    request: HttpRequest, exception: Exception
) -> HttpResponseBase | None:
    """The answer to a sign-in the limit refused after its form let it pass.

    The form's check (:func:`would_exceed`) and the sign-in's (under the
    lock) are a moment apart: a simultaneous sign-in can take the last place
    in between. The view then runs once more, and its form, which now sees
    the limit, shows its ordinary error. ``None`` (Django answers 403) for
    anything else: another exception, a view without the package's form, an
    async view, a second refusal.
    """
    if (
        not isinstance(exception, SessionLimitReached)
        or not getattr(request, FORM_CHECKED, False)
        or getattr(request, _RETRIED, False)
    ):
        return None
    match = request.resolver_match
    if match is None or iscoroutinefunction(match.func):
        return None
    setattr(request, _RETRIED, True)
    setattr(request, FORM_CHECKED, False)
    response: HttpResponseBase = match.func(request, *match.args, **match.kwargs)
    return response


def _live_sessions(user: Any) -> SessionQuerySet:
    sessions = Session.objects.using(router.db_for_write(Session))
    return sessions.of_user(user).live()


def would_exceed(user: Any, request: HttpRequest | None = None) -> bool:
    """Whether a new sign-in of ``user`` would be refused (policy ``"deny"``).

    For a friendly form error before signing in; the sign-in itself checks
    again under a lock. The session of ``request``, which the sign-in would
    reuse, does not count.
    """
    limit = conf.MAX_SESSIONS_PER_USER
    if limit is None or conf.MAX_SESSIONS_POLICY != "deny":
        return False
    rows = _live_sessions(user)
    current = current_record(request) if request is not None else None
    if current is not None:
        rows = rows.exclude(pk=current.pk)
    return rows.count() >= limit


def active() -> bool:
    """Whether a session limit is configured."""
    return conf.MAX_SESSIONS_PER_USER is not None


def lock_user(user: Any) -> None:
    """Serialise sign-ins of one user (inside a transaction), when limited."""
    if not active():
        return
    model = get_user_model()
    users = model._default_manager.using(router.db_for_write(model))
    list(users.select_for_update().filter(pk=user.pk).values_list("pk", flat=True))


def _others(session: SessionStore, user: Any) -> SessionQuerySet:
    rows = _live_sessions(user)
    record = session.record
    return rows.exclude(pk=record.pk) if record is not None else rows


def denied(session: SessionStore, user: Any) -> bool:
    """Whether policy ``"deny"`` refuses this sign-in of ``user``."""
    limit = conf.MAX_SESSIONS_PER_USER
    return (
        limit is not None
        and conf.MAX_SESSIONS_POLICY == "deny"
        and _others(session, user).count() >= limit
    )


def evict_oldest(session: SessionStore, user: Any, request: HttpRequest) -> None:
    """Under policy ``"evict_oldest"``, revoke the least recently active others."""
    limit = conf.MAX_SESSIONS_PER_USER
    if limit is None or conf.MAX_SESSIONS_POLICY != "evict_oldest":
        return
    others = _others(session, user)
    excess = others.count() + 1 - limit
    if excess <= 0:
        return
    from django_sessionkit.revocation import revoke_session

    oldest = others.order_by("last_seen_at", "pk").values_list("pk", flat=True)
    for pk in list(oldest[:excess]):
        revoke_session(pk, reason="limit", request=request)
