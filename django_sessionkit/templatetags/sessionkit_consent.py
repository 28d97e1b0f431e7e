"""Consent template tags: ``{% load sessionkit_consent %}``.

- ``{% consent_banner %}`` (or ``{% consent_banner cacheable=True %}``): the
  banner, its stylesheet and its script;
- ``{% ifconsent "analytics" %}...{% else %}...{% endifconsent %}``;
- ``{% consent_preferences_link %}`` and ``{% cookie_declaration %}``;
- ``{% google_consent_mode %}``: Google Consent Mode v2, in ``<head>``
  before gtag.js.

Thin wrappers over :mod:`django_sessionkit.consent.tags`, where the
behaviour lives. The consent is ``request.consent`` (set by
``ConsentMiddleware``), or read from the cookie without the middleware.
"""

from __future__ import annotations

from django import template
from django.http import HttpRequest
from django.template.base import FilterExpression, NodeList, Parser, Token
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext

from django_sessionkit.consent import gating, tags
from django_sessionkit.http import context_request

register = template.Library()


def _nonce(context: template.Context, request: HttpRequest) -> str:
    return tags.csp_nonce(request, context.get("csp_nonce"))


@register.simple_tag(takes_context=True)
def consent_banner(context: template.Context, cacheable: bool = False) -> SafeString:
    """Render the consent banner until the visitor decides, with its script.

    Put it once per page, at the start or end of ``<body>``. The page then
    varies by the consent cookie (``Vary: Cookie``). With ``cacheable=True``
    the HTML is the same for everyone (hidden; the script shows it when the
    cookie holds no decision), so the page can sit in a shared cache.
    """
    request = context_request(context, "consent_banner")
    return SafeString(
        tags.render_banner(request, cacheable=cacheable, nonce=_nonce(context, request))
    )


@register.simple_tag(takes_context=True)
def google_consent_mode(
    context: template.Context, wait_for_update: int = 500
) -> SafeString:
    """Render the script that sets Google Consent Mode's defaults (denied)
    and updates them from the visitor's decision.

    Put it in ``<head>`` before the Google tag (gtag.js or Tag Manager), so
    that the defaults are set before any Google tag runs.
    """
    request = context_request(context, "google_consent_mode")
    return SafeString(
        tags.render_google_consent_mode(
            request,
            nonce=_nonce(context, request),
            wait_for_update=wait_for_update,
        )
    )


@register.simple_tag
def consent_preferences_link(text: str | None = None) -> SafeString:
    """Render a link to the consent preferences page, for every page's footer
    (withdrawing must be as easy as consenting)."""
    return format_html(
        '<a href="{}" class="sessionkit-consent-link">{}</a>',
        tags.preferences_url(),
        text if text is not None else gettext("Cookie settings"),
    )


@register.simple_tag(takes_context=True)
def cookie_declaration(context: template.Context) -> SafeString:
    """Render the table of the categories and their cookies, for the privacy
    page."""
    return SafeString(tags.render_cookie_declaration(context.get("request")))


class IfConsentNode(template.Node):
    """``{% ifconsent key %}``: the consent is read at render time, never kept
    on the node (one node serves every request)."""

    def __init__(
        self, key: FilterExpression, granted: NodeList, refused: NodeList
    ) -> None:
        self.key = key
        self.granted = granted
        self.refused = refused
        self.nodelist = granted + refused

    def render(self, context: template.Context) -> SafeString:
        request = context_request(context, "ifconsent")
        gating.vary_on_consent(request)
        key = str(self.key.resolve(context))
        granted = gating.consent_of(request).granted(key)
        branch = self.granted if granted else self.refused
        return SafeString(branch.render(context))


@register.tag
def ifconsent(parser: Parser, token: Token) -> IfConsentNode:
    """Render the block only when the visitor granted the category:
    ``{% ifconsent "analytics" %}...{% else %}...{% endifconsent %}``.

    The page then varies by the consent cookie (``Vary: Cookie``).
    """
    bits = token.split_contents()
    if len(bits) != 2:
        raise template.TemplateSyntaxError(
            f"{bits[0]} takes one argument, a category key: "
            '{% ifconsent "analytics" %}'
        )
    key = parser.compile_filter(bits[1])
    granted = parser.parse(("else", "endifconsent"))
    refused = NodeList()
    if parser.next_token().contents == "else":
        refused = parser.parse(("endifconsent",))
        parser.delete_first_token()
    return IfConsentNode(key, granted, refused)
