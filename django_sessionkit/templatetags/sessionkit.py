"""Template tags of django-sessionkit: ``{% load sessionkit %}``.

``{% sessionkit_idle_warning %}`` renders the idle warning of
:mod:`django_sessionkit.idle_warning` with its script and stylesheet (no
inline script or style, so it works under a strict Content-Security-Policy);
``{% sessionkit_deadlines as deadlines %}`` gives a template the session's
deadlines (:func:`django_sessionkit.http.session_deadlines`). Both are thin
wrappers: the behaviour lives in those functions.
"""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString

from django_sessionkit import policy
from django_sessionkit.http import context_request, session_deadlines
from django_sessionkit.idle_warning import render_idle_warning

register = template.Library()


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
    request = context_request(context, "sessionkit_idle_warning")
    return SafeString(render_idle_warning(request, logout_url=logout_url))


@register.simple_tag(takes_context=True)
def sessionkit_deadlines(context: template.Context) -> policy.Deadlines | None:
    """The session's deadlines (``.idle``, ``.absolute``), or ``None``.

    ``{% sessionkit_deadlines as deadlines %}``; elements with
    ``data-sessionkit-countdown="idle"`` or ``"absolute"`` on a page with the
    idle warning show a live countdown to them.
    """
    return session_deadlines(context_request(context, "sessionkit_deadlines"))
