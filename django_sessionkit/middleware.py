"""The session policy middleware, and the consent middleware.

Place ``django_sessionkit.middleware.SessionKitMiddleware`` after
``AuthenticationMiddleware`` (and after ``MessageMiddleware``, so that the
"your session expired" message can be shown). On every request it:

- ends a session that passed its idle or absolute deadline (row deleted,
  ``SessionEvent`` written, ``session_expired`` sent) and sends the browser to
  ``LOGIN_URL`` (HTML) or answers 401 (JSON); a request for ``LOGIN_URL``
  itself carries on as anonymous;
- handles a previous key that came back after its grace window (an anomaly,
  recorded at most once per session per ``SESSIONKIT_ACTIVITY_RESOLUTION``);
- writes activity at most once per ``SESSIONKIT_ACTIVITY_RESOLUTION``, never
  for passive requests;
- rotates the key when due (interval, privilege change);
- marks responses that set or delete the session cookie ``no-store``;
- sets the device cookie on the response of a sign-in.

``ConsentMiddleware`` (independent of the session) sets ``request.consent``
and removes the cookies a response may not set without consent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import DisallowedHost
from django.db import router
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.shortcuts import resolve_url
from django.urls import NoReverseMatch
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext_lazy as _

from django_sessionkit import limits, policy
from django_sessionkit.backends.db import SessionStore, current_session
from django_sessionkit.conf import conf
from django_sessionkit.consent import gating
from django_sessionkit.devices import set_device_cookie
from django_sessionkit.events import Kind, Subject, aemit, emit
from django_sessionkit.http import (
    State,
    is_passive,
    request_state,
    store_of,
    wants_json,
)
from django_sessionkit.lifecycle import arotate_session, rotate_at_save, rotate_session
from django_sessionkit.models import Session, SessionEvent
from django_sessionkit.revocation import (
    aexpire_session,
    arevoke_session,
    expire_session,
    revoke_session,
)

EXPIRED_MESSAGES = {
    "idle": _("You were signed out after a period of inactivity."),
    "absolute": _("Your session reached its maximum length. Please sign in again."),
}
STALE_KEY = "stale_key"
#: The shortest interval between two stale-key events of one session, used
#: when ``SESSIONKIT_ACTIVITY_RESOLUTION`` is zero or ``None``.
STALE_KEY_EVENT_INTERVAL = timedelta(minutes=1)


def expired_response(request: HttpRequest, reason: str) -> HttpResponseBase:
    """Sign-in page with a message (HTML), or 401 with a JSON body.

    The message is stored either way: a script that receives the 401 sends
    the browser to the sign-in page, which then says why.
    """
    _end_message(request, reason)
    if wants_json(request):
        return JsonResponse({"error": "session_expired", "reason": reason}, status=401)
    return redirect_to_login(request.get_full_path(), str(settings.LOGIN_URL))


def is_sign_in_page(request: HttpRequest) -> bool:
    """Whether ``request`` is for ``LOGIN_URL`` (a path, a URL or a URL name,
    resolved as ``redirect_to_login()`` does); the query string is ignored."""
    try:
        url = urlsplit(str(resolve_url(settings.LOGIN_URL)))
    except NoReverseMatch:
        return False
    if url.netloc:
        try:
            host = request.get_host()
        except DisallowedHost:
            return False
        if url.netloc != host or (url.scheme and url.scheme != request.scheme):
            return False
    return url.path == request.path


def _end_message(request: HttpRequest, reason: str) -> None:
    messages.warning(request, EXPIRED_MESSAGES[reason], fail_silently=True)


def _expired_answer(request: HttpRequest, reason: str) -> HttpResponseBase | None:
    """The answer to a request whose session has just expired, or ``None`` to
    let it carry on as anonymous."""
    if not is_sign_in_page(request):
        return expired_response(request, reason)
    # The visitor is already where the expiry would send them, or is sending
    # its form: a redirect would lose the form, so the page gets the request.
    if request.method in ("GET", "HEAD"):
        _end_message(request, reason)
    else:
        # After the view: a sign-in that succeeds makes the message stale.
        request.sessionkit_expired = reason  # type: ignore[attr-defined]
    return None


def _expired_after(request: HttpRequest) -> None:
    reason: str | None = getattr(request, "sessionkit_expired", None)
    user = getattr(request, "user", None)
    if reason is not None and not getattr(user, "is_authenticated", False):
        _end_message(request, reason)


def _stale_key_events(record: Session) -> QuerySet[SessionEvent]:
    """The stale-key events of ``record`` within the last interval."""
    interval = conf.ACTIVITY_RESOLUTION or STALE_KEY_EVENT_INTERVAL
    # From the database written to: a replica may not have the last one yet.
    events = SessionEvent.objects.using(router.db_for_write(SessionEvent))
    return events.filter(
        session_id=record.pk,
        kind=Kind.ANOMALY,
        reason=STALE_KEY,
        created_at__gt=timezone.now() - interval,
    )


def _forget(request: HttpRequest, store: SessionStore) -> None:
    """The row is gone: make this request anonymous too."""
    store.forget()
    request.user = AnonymousUser()


def _rotation_due(state: State) -> str | None:
    record, interval = state.record, state.policy.rotate_interval
    if record.rotate_due:
        return "privilege"
    since = record.rotated_at or record.authenticated_at
    if interval is not None and since is not None and since + interval <= state.now:
        return "interval"
    return None


class _Middleware:
    """A middleware for both modes: async when the chain below it is async,
    sync otherwise, so Django never has to adapt it with a thread."""

    sync_capable = True
    async_capable = True

    def __init__(
        self,
        get_response: Callable[[HttpRequest], HttpResponseBase]
        | Callable[[HttpRequest], Awaitable[HttpResponseBase]],
    ) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        raise NotImplementedError


class SessionKitMiddleware(_Middleware):
    """Enforce the session policy; sync and async."""

    # -- Shared decisions ------------------------------------------------------

    def _live_state(
        self, request: HttpRequest, store: SessionStore, accessed: bool
    ) -> State | None:
        """The signed-in session's state after the middleware loaded it;
        ``accessed`` is the store's ``accessed`` from before that load."""
        record = store._record
        if record is None or record.user_id is None:
            # Loading the session to look for a signed-in user is no use of
            # it by the view: without this, SessionMiddleware would add
            # "Vary: Cookie" to every response, and caches would keep a copy
            # of each public page per visitor. A signed-in session stays
            # accessed: what the response holds may come from it without a
            # session read that Django sees (request.user resolved by a
            # policy, the idle warning's deadlines).
            store.accessed = accessed
            return None
        return State(
            store, record, policy.resolve(request, request.user), timezone.now()
        )

    @staticmethod
    def _plan_response(request: HttpRequest, state: State) -> str | None:
        """Set the deadlines for the next write; return a rotation reason."""
        store = state.store
        if store.key_renewed or store._record is None:
            return None  # signed in, out or rotated by the view itself
        passive = is_passive(request)
        active_at = state.now if not passive and state.activity_due(request) else None
        rotation = None if passive else _rotation_due(state)
        if active_at is not None or rotation is not None or store.modified:
            # Only a write needs the deadlines: most requests write nothing.
            store.set_policy_deadlines(state.policy, now=state.now, active_at=active_at)
        return rotation

    @staticmethod
    def _hygiene(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        store = store_of(request)
        if store is not None:
            # The conditions under which SessionMiddleware, which runs after
            # us on the way out, sets or deletes the session cookie.
            empty = store.is_empty()
            deletes = settings.SESSION_COOKIE_NAME in request.COOKIES and empty
            sets = (
                not empty
                and (store.modified or settings.SESSION_SAVE_EVERY_REQUEST)
                and response.status_code < 500
            )
            if deletes or sets:
                add_never_cache_headers(response)
        if (
            getattr(request, "sessionkit_signed_out", False)
            and conf.CLEAR_SITE_DATA_ON_LOGOUT
        ):
            response.headers["Clear-Site-Data"] = '"cache", "cookies", "storage"'
        set_device_cookie(request, response)
        return response

    def process_exception(
        self, request: HttpRequest, exception: Exception
    ) -> HttpResponseBase | None:
        # A sign-in refused by the session limit after its form said yes.
        return limits.refused_response(request, exception)

    # -- Sync path ---------------------------------------------------------------

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        store = store_of(request)
        if store is None:
            return self.get_response(request)
        token = current_session.set(store)
        try:
            response = self._before(request, store)
            if response is None:
                response = self.get_response(request)  # type: ignore[assignment]
                self._after(request, store)
                _expired_after(request)
        finally:
            current_session.reset(token)
        assert response is not None
        return self._hygiene(request, response)

    def _before(
        self, request: HttpRequest, store: SessionStore
    ) -> HttpResponseBase | None:
        accessed = store.accessed
        store._get_session()  # type: ignore[attr-defined]
        ended = store.ended_record
        if ended is not None:
            return self._ended(request, store, ended, store.ended_reason or "idle")
        state = self._live_state(request, store, accessed)
        if state is None:
            return None
        reason = state.expiry_reason()
        if reason is not None:
            expire_session(state.record, reason=reason, request=request)
            _forget(request, store)
            return _expired_answer(request, reason)
        request.sessionkit_state = state  # type: ignore[attr-defined]
        return None

    def _ended(
        self, request: HttpRequest, store: SessionStore, record: Session, reason: str
    ) -> HttpResponseBase | None:
        if reason == STALE_KEY:
            revoke = conf.ON_STALE_KEY == "revoke"
            # Only logged, the copy can come back on every request: one event
            # per interval says as much without a row per request.
            if revoke or not _stale_key_events(record).exists():
                subject = Subject.of(record)
                emit(Kind.ANOMALY, [subject], reason=reason, request=request)
            if revoke:
                revoke_session(record, reason=reason, request=request)
            return None
        if record.user_id is None:
            return None  # an anonymous session simply ends
        expire_session(record, reason=reason, request=request)
        _forget(request, store)
        return _expired_answer(request, reason)

    def _after(self, request: HttpRequest, store: SessionStore) -> None:
        state = request_state(request)
        if state is None:
            return
        rotation = self._plan_response(request, state)
        if rotation == "privilege":
            rotate_session(request, reason=rotation)
        elif rotation == "interval":
            rotate_at_save(store)
        elif not store.modified and store._active_at is not None:
            store.touch()

    # -- Async path --------------------------------------------------------------

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        store = store_of(request)
        if store is None:
            return await self.get_response(request)  # type: ignore[misc, no-any-return]
        token = current_session.set(store)
        try:
            response = await self._abefore(request, store)
            if response is None:
                response = await self.get_response(request)  # type: ignore[misc]
                await self._aafter(request, store)
                _expired_after(request)
        finally:
            current_session.reset(token)
        assert response is not None
        return self._hygiene(request, response)

    async def _abefore(
        self, request: HttpRequest, store: SessionStore
    ) -> HttpResponseBase | None:
        accessed = store.accessed
        await store._aget_session()  # type: ignore[attr-defined]
        ended = store.ended_record
        if ended is not None:
            return await self._aended(
                request, store, ended, store.ended_reason or "idle"
            )
        if policy.get_policy_callable() is policy.default_policy:
            state = self._live_state(request, store, accessed)
        else:
            # A site's policy may read the user from the database.
            state = await sync_to_async(self._live_state)(request, store, accessed)
        if state is None:
            return None
        reason = state.expiry_reason()
        if reason is not None:
            await aexpire_session(state.record, reason=reason, request=request)
            _forget(request, store)
            return _expired_answer(request, reason)
        request.sessionkit_state = state  # type: ignore[attr-defined]
        return None

    async def _aended(
        self, request: HttpRequest, store: SessionStore, record: Session, reason: str
    ) -> HttpResponseBase | None:
        if reason == STALE_KEY:
            revoke = conf.ON_STALE_KEY == "revoke"
            if revoke or not await _stale_key_events(record).aexists():
                subject = await Subject.aof(record)
                await aemit(Kind.ANOMALY, [subject], reason=reason, request=request)
            if revoke:
                await arevoke_session(record, reason=reason, request=request)
            return None
        if record.user_id is None:
            return None
        await aexpire_session(record, reason=reason, request=request)
        _forget(request, store)
        return _expired_answer(request, reason)

    async def _aafter(self, request: HttpRequest, store: SessionStore) -> None:
        state = request_state(request)
        if state is None:
            return
        rotation = self._plan_response(request, state)
        if rotation == "privilege":
            # Shielded: a cancelled request must not leave the new key
            # without its event and signal.
            await arotate_session(request, reason=rotation)
        elif rotation == "interval":
            rotate_at_save(store)
        elif not store.modified and store._active_at is not None:
            await store.atouch()


class ConsentMiddleware(_Middleware):
    """Set ``request.consent`` and gate the response's cookies by it; sync
    and async.

    Needs no session (and works without :class:`SessionKitMiddleware`): the
    consent is read from its own cookie, so browsing writes nothing. Place it
    above any middleware that sets cookies needing consent, so that it sees
    their ``Set-Cookie`` on the way out. See
    :mod:`django_sessionkit.consent.gating` for what it removes and expires.
    """

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        before = gating.begin(request)
        response: HttpResponseBase = self.get_response(request)  # type: ignore[assignment]
        return gating.finish(request, response, before)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        before = gating.begin(request)
        response: HttpResponseBase = await self.get_response(request)  # type: ignore[misc]
        return gating.finish(request, response, before)
