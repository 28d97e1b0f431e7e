"""Server-side gating: the cookies a response may set, given the consent.

:class:`~django_sessionkit.middleware.ConsentMiddleware` calls :func:`begin`
before the view and :func:`finish` on its response; the consent view calls
:func:`expire_withdrawn` itself, so that it also works without the
middleware. Only declared cookies (a category lists their name or a
wildcard matching it) are touched, and never those of a required category.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.utils.cache import patch_vary_headers

from django_sessionkit.consent import state
from django_sessionkit.consent.categories import categories, category_of_cookie
from django_sessionkit.consent.state import Consent

#: The request attribute that says the response's HTML depends on the
#: visitor's consent (a banner shown or not, an ``ifconsent`` branch): the
#: middleware then adds ``Vary: Cookie``. Set it with :func:`vary_on_consent`.
VARIES_ATTRIBUTE = "consent_varies"


def vary_on_consent(request: HttpRequest) -> None:
    """Mark the response of ``request`` as depending on the consent cookie,
    so that a shared cache keeps one copy per decision, not one for all."""
    setattr(request, VARIES_ATTRIBUTE, True)


def consent_of(request: HttpRequest) -> Consent:
    """The consent of ``request``: the middleware's (or a view's newer
    decision), else read from the cookie."""
    found = getattr(request, "consent", None)
    return found if isinstance(found, Consent) else state.read(request)


def begin(request: HttpRequest) -> Consent:
    """Set ``request.consent`` from the cookie; return it, the consent the
    request came with (a view may replace ``request.consent`` by a new
    decision)."""
    consent = state.read(request)
    request.consent = consent  # type: ignore[attr-defined]
    return consent


def withdrawn(before: Consent, after: Consent) -> list[str]:
    """The keys of the categories granted in ``before`` and refused in
    ``after``, in the categories' order."""
    return [
        c.key
        for c in categories()
        if not c.required and before.granted(c.key) and not after.granted(c.key)
    ]


def _is_deletion(response: HttpResponseBase, name: str) -> bool:
    morsel = response.cookies[name]
    return str(morsel["max-age"]) == "0" or morsel["expires"].startswith(
        "Thu, 01 Jan 1970"
    )


def strip_refused(response: HttpResponseBase, consent: Consent) -> list[str]:
    """Remove from ``response`` the cookies it sets whose category
    ``consent`` does not grant; return their names. Deletions stay: expiring
    a cookie never needs consent."""
    removed = []
    for name in list(response.cookies):
        found = category_of_cookie(name)
        if found is None or found.required or consent.granted(found.key):
            continue
        if _is_deletion(response, name):
            continue
        del response.cookies[name]
        removed.append(name)
    return removed


def expire_withdrawn(
    request: HttpRequest, response: HttpResponseBase, keys: list[str]
) -> list[str]:
    """Expire on ``response`` the cookies of the categories ``keys`` that
    ``request`` carries (the exact names it sent, wildcard ones too); return
    their names.

    Path ``/`` and the session cookie's domain: a cookie set elsewhere (a
    script's cookie on the parent domain, say) is one the browser keeps.
    """
    if not keys:
        return []
    expired = []
    for name in request.COOKIES:
        found = category_of_cookie(name)
        if found is None or found.required or found.key not in keys:
            continue
        response.delete_cookie(
            name,
            path="/",
            domain=settings.SESSION_COOKIE_DOMAIN,
            samesite=settings.SESSION_COOKIE_SAMESITE,
        )
        expired.append(name)
    return expired


def finish(
    request: HttpRequest, response: HttpResponseBase, before: Consent
) -> HttpResponseBase:
    """Gate ``response`` by the consent as it stands after the view: strip
    the cookies it may not set, expire those of withdrawn categories, and
    add ``Vary: Cookie`` when the view said its HTML depends on consent."""
    after = consent_of(request)
    strip_refused(response, after)
    expire_withdrawn(request, response, withdrawn(before, after))
    if getattr(request, VARIES_ATTRIBUTE, False):
        patch_vary_headers(response, ("Cookie",))
    return response
