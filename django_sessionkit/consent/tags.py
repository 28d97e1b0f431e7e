"""What the consent template tags render (``{% load sessionkit_consent %}``).

The tags of :mod:`django_sessionkit.templatetags.sessionkit_consent` are thin
wrappers over these functions: the banner (:func:`render_banner`), the
Google Consent Mode defaults (:func:`render_google_consent_mode`), the
preferences link and the cookie declaration.

Nothing here writes inline script or style, so a strict
Content-Security-Policy allows it; ``<script>`` and ``<link>`` elements get
the CSP nonce of django-csp or of Django's own CSP middleware when there is
one (:func:`csp_nonce`).

A page whose HTML depends on the visitor's decision marks the request with
:func:`~django_sessionkit.consent.gating.vary_on_consent`, so that
``ConsentMiddleware`` sends ``Vary: Cookie``; the cacheable banner renders
the same HTML for everyone and does not.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse

from django_sessionkit.conf import conf
from django_sessionkit.consent import gating, state
from django_sessionkit.consent.categories import categories
from django_sessionkit.consent.state import Consent

#: The template of :func:`render_banner`; override it to change the banner.
BANNER_TEMPLATE = "django_sessionkit/consent_banner.html"
#: The template of :func:`render_google_consent_mode`.
GOOGLE_TEMPLATE = "django_sessionkit/consent_google.html"
#: The template of :func:`render_cookie_declaration`.
DECLARATION_TEMPLATE = "django_sessionkit/consent_declaration.html"


def csp_nonce(request: HttpRequest, context_nonce: Any = None) -> str:
    """The CSP nonce of the response to ``request``, or "" without one.

    django-csp's ``request.csp_nonce`` first, then Django's own (the
    ``csp_nonce`` context variable or ``django.middleware.csp``'s request
    attribute). Reading a lazy nonce generates it, which puts it into the
    policy header.
    """
    for nonce in (
        getattr(request, "csp_nonce", None),
        context_nonce,
        _django_nonce(request),
    ):
        if nonce is not None:
            return str(nonce)
    return ""


def _django_nonce(request: HttpRequest) -> Any:
    try:
        from django.middleware.csp import get_nonce
    except ImportError:  # Django < 6.0
        return None
    return get_nonce(request)


def script_config(request: HttpRequest) -> str:
    """The settings ``consent.js`` needs, as JSON for a ``data-`` attribute:
    the cookie to read, the current revision, which categories are required
    (always granted) and which a GPC signal refuses."""
    found = categories()
    return json.dumps(
        {
            "cookie": conf.CONSENT_COOKIE_NAME,
            "revision": conf.CONSENT_REVISION,
            "required": [c.key for c in found if c.required],
            "gpc": [c.key for c in found if c.gpc],
            "google": {c.key: list(c.google) for c in found if c.google},
        },
        separators=(",", ":"),
    )


def banner_context(
    request: HttpRequest, *, cacheable: bool = False, nonce: str = ""
) -> dict[str, Any]:
    """The context of ``consent_banner.html`` for ``request``.

    ``show`` is whether the banner's HTML is rendered at all: always when
    ``cacheable`` (hidden; the script shows it when the cookie holds no
    decision for the current revision), otherwise only until the visitor
    decides; never on the preferences page, which holds the same choices.
    The script is always included: it runs the deferred scripts of granted
    categories.
    """
    if cacheable:
        # The same HTML for everyone: no decision, no GPC, no CSRF token
        # (the script fetches one when the visitor decides).
        consent = Consent(
            id=None,
            revision=conf.CONSENT_REVISION,
            given=False,
            decided_at=None,
            gpc=False,
        )
    else:
        consent = gating.consent_of(request)
        gating.vary_on_consent(request)
    return {
        "request": request,
        "show": (cacheable or not consent.given) and not _on_preferences(request),
        "cacheable": cacheable,
        "consent": consent,
        "consent_choices": state.choices_context(consent),
        "consent_gpc": consent.gpc,
        "gpc_honoured": consent.gpc_honoured,
        "action_url": reverse("sessionkit:consent"),
        "preferences_url": reverse("sessionkit:consent_preferences"),
        "next_url": request.get_full_path(),
        "config": script_config(request),
        "nonce": nonce,
    }


def _on_preferences(request: HttpRequest) -> bool:
    # The preferences page holds the same choices: no banner over it.
    match = request.resolver_match
    return match is not None and match.view_name == "sessionkit:consent_preferences"


def render_banner(
    request: HttpRequest, *, cacheable: bool = False, nonce: str = ""
) -> str:
    """The HTML of the consent banner, its stylesheet and its script."""
    context = banner_context(request, cacheable=cacheable, nonce=nonce)
    return render_to_string(BANNER_TEMPLATE, context, request=request)


def google_defaults() -> dict[str, str]:
    """Every Google Consent Mode type of the categories, ``"denied"``: the
    state before any decision (required categories' types are granted)."""
    defaults: dict[str, str] = {}
    for c in categories():
        for kind in c.google:
            if c.required or defaults.get(kind) == "granted":
                defaults[kind] = "granted"
            else:
                defaults[kind] = "denied"
    return defaults


def render_google_consent_mode(
    request: HttpRequest, *, nonce: str = "", wait_for_update: int = 500
) -> str:
    """The ``<script>`` that sets Google Consent Mode's defaults and updates
    them from the visitor's decision; put it in ``<head>`` before gtag.js."""
    context = {
        "defaults": json.dumps(google_defaults(), separators=(",", ":")),
        "config": script_config(request),
        "wait_for_update": wait_for_update,
        "nonce": nonce,
    }
    return render_to_string(GOOGLE_TEMPLATE, context, request=request)


def preferences_url() -> str:
    """The URL of the page where a visitor changes or withdraws consent."""
    return reverse("sessionkit:consent_preferences")


def render_cookie_declaration(request: HttpRequest | None = None) -> str:
    """A table of the categories, what each is for and its cookies."""
    return render_to_string(
        DECLARATION_TEMPLATE, {"categories": categories()}, request=request
    )
