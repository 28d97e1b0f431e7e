"""The consent template tags (``{% load sessionkit_consent %}``), rendered by
views of this module for real requests through the middleware.

The pages are template strings, so no template directory is needed; this
module is also the URLconf of its tests (``ROOT_URLCONF``).
"""

from __future__ import annotations

import copy
import json
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.template import Context, RequestContext, Template, TemplateSyntaxError
from django.test import Client, RequestFactory
from django.urls import include, path

from django_sessionkit.conf import conf
from django_sessionkit.consent import state
from tests.consent.helpers import djangos_csp

pytestmark = pytest.mark.django_db


BANNER = "{% load sessionkit_consent %}<main>Page</main>{% consent_banner %}"
CACHEABLE = "{% load sessionkit_consent %}{% consent_banner cacheable=True %}"
IFCONSENT = (
    "{% load sessionkit_consent %}"
    '{% ifconsent "analytics" %}[granted]{% else %}[refused]{% endifconsent %}'
)
PLAIN = "{% load sessionkit_consent %}<p>Nothing that depends on consent</p>"
GOOGLE = "{% load sessionkit_consent %}{% google_consent_mode %}"
LINKS = (
    "{% load sessionkit_consent %}{% consent_preferences_link %}|"
    '{% consent_preferences_link "Privacy choices" %}'
)
DECLARATION = "{% load sessionkit_consent %}{% cookie_declaration %}"


def page(source: str) -> Any:
    template = Template(source)

    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse(template.render(RequestContext(request)))

    return view


urlpatterns = [
    path("banner/", page(BANNER)),
    path("cacheable/", page(CACHEABLE)),
    path("ifconsent/", page(IFCONSENT)),
    path("plain/", page(PLAIN)),
    path("google/", page(GOOGLE)),
    path("links/", page(LINKS)),
    path("declaration/", page(DECLARATION)),
    path("sk/", include("django_sessionkit.urls")),
]

#: Only what these tests need, so that Vary comes from the tags alone.
MIDDLEWARE = [
    "django.middleware.csrf.CsrfViewMiddleware",
    "django_sessionkit.middleware.ConsentMiddleware",
]


@pytest.fixture(autouse=True)
def _site(settings: Any) -> None:
    settings.ROOT_URLCONF = __name__
    settings.STATIC_URL = "/static/"
    settings.MIDDLEWARE = MIDDLEWARE


def decide(client: Client, *granted: str, gpc: bool = False) -> state.Consent:
    """Give ``client`` the cookie of a decision granting ``granted``."""
    headers = {"Sec-GPC": "1"} if gpc else {}
    request = RequestFactory().get("/", headers=headers)
    consent = state.decide(request, granted, explicit=True)
    client.cookies[conf.CONSENT_COOKIE_NAME] = state.cookie_value(consent)
    return consent


class Elements(HTMLParser):
    """The start tags of a page, each as (tag, attributes)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))

    def all(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [
            found
            for name, found in self.found
            if name == tag and all(found.get(k) == v for k, v in attrs.items())
        ]

    def one(self, tag: str, **attrs: str) -> dict[str, str | None]:
        matches = self.all(tag, **attrs)
        assert len(matches) == 1, (tag, attrs, matches)
        return matches[0]


def vary(response: HttpResponse) -> set[str]:
    return {v.strip().lower() for v in response.get("Vary", "").split(",") if v.strip()}


# -- {% consent_banner %} ----------------------------------------------------------


def test_banner_undecided_is_a_labelled_region_with_a_form(client: Client) -> None:
    response = client.get("/banner/?page=2")
    html = response.content.decode()
    elements = Elements(html)
    region = elements.one("div", role="region")
    assert region["aria-labelledby"] == "sessionkit-consent-title"
    assert "hidden" not in region
    assert 'id="sessionkit-consent-title">Cookies on this site</h2>' in html
    form = elements.one("form", **{"data-sessionkit-consent": "form"})
    assert form["method"] == "post"
    assert form["action"] == "/sk/consent/"
    assert elements.one("input", name="source")["value"] == "banner"
    assert elements.one("input", name="next")["value"] == "/banner/?page=2"
    assert elements.all("input", name="csrfmiddlewaretoken")
    assert elements.one("a", href="/sk/consent/preferences/")
    # The toggles of consent_choices.html, off except the required one.
    boxes = elements.all("input", type="checkbox", name="granted")
    assert [b["value"] for b in boxes] == [
        "necessary",
        "preferences",
        "analytics",
        "marketing",
    ]
    assert ["checked" in b for b in boxes] == [True, False, False, False]
    assert elements.one("button", value="save")["name"] == "action"
    assert re.search(r"<details[^>]*>\s*<summary>Choose</summary>", html)


def test_banner_accept_and_reject_have_equal_prominence(client: Client) -> None:
    html = client.get("/banner/").content.decode()
    elements = Elements(html)
    accept = elements.one("button", value="accept_all")
    reject = elements.one("button", value="reject_all")
    # The same element, class and field: nothing makes one stand out.
    assert accept == {**reject, "value": "accept_all"}
    # Side by side, in one container, before "Choose".
    actions = re.search(
        r'<div class="sessionkit-consent__actions">\s*'
        r"(<button[^>]*>Accept all</button>)\s*"
        r"(<button[^>]*>Reject all</button>)\s*</div>",
        html,
    )
    assert actions is not None
    assert html.index("Reject all") < html.index("<summary>Choose</summary>")


def test_banner_stylesheet_and_deferred_script_are_files(client: Client) -> None:
    html = client.get("/banner/").content.decode()
    elements = Elements(html)
    link = elements.one("link", rel="stylesheet")
    assert link["href"] == "/static/django_sessionkit/consent.css"
    script = elements.one("script")
    assert script["src"] == "/static/django_sessionkit/consent.js"
    assert "defer" in script
    config = json.loads(script["data-sessionkit-consent-config"] or "")
    assert config == {
        "cookie": "sessionkit_consent",
        "revision": 1,
        "required": ["necessary"],
        "gpc": ["marketing"],
        "google": {
            "analytics": ["analytics_storage"],
            "marketing": ["ad_storage", "ad_user_data", "ad_personalization"],
        },
    }
    # No inline script or style anywhere.
    assert "<style" not in html
    assert " style=" not in html
    assert re.search(r"<script(?![^>]*\bsrc=)", html) is None
    assert "nonce" not in html


def test_banner_decided_is_not_rendered_but_script_is(client: Client) -> None:
    decide(client, "analytics")
    html = client.get("/banner/").content.decode()
    assert "sessionkit-consent__actions" not in html
    assert "consent.css" not in html
    assert Elements(html).one("script")["src"] == "/static/django_sessionkit/consent.js"


def test_banner_reject_all_is_a_decision_too(client: Client) -> None:
    decide(client)
    assert "Accept all" not in client.get("/banner/").content.decode()


@pytest.mark.parametrize("change", ["revision", "tampered", "expired"])
def test_banner_shown_again_without_a_valid_decision(
    client: Client, settings: Any, change: str
) -> None:
    decide(client, "analytics")
    if change == "revision":
        settings.SESSIONKIT_CONSENT_REVISION = 2
    elif change == "tampered":
        value = client.cookies[conf.CONSENT_COOKIE_NAME].value
        client.cookies[conf.CONSENT_COOKIE_NAME] = value[:-2] + "xx"
    else:
        settings.SESSIONKIT_CONSENT_MAX_AGE = -1
    assert "Accept all" in client.get("/banner/").content.decode()


def test_banner_without_consent_middleware_reads_the_cookie(
    client: Client, settings: Any
) -> None:
    settings.MIDDLEWARE = ["django.middleware.csrf.CsrfViewMiddleware"]
    assert "Accept all" in client.get("/banner/").content.decode()
    decide(client)
    assert "Accept all" not in client.get("/banner/").content.decode()


def test_banner_varies_by_cookie(client: Client) -> None:
    # Decided: no form, so no CSRF token adds the header; the tag does.
    decide(client)
    assert "cookie" in vary(client.get("/banner/"))
    assert "cookie" not in vary(client.get("/plain/"))


def test_banner_says_when_gpc_was_honoured(client: Client) -> None:
    html = client.get("/banner/", headers={"Sec-GPC": "1"}).content.decode()
    note = Elements(html).one("p", **{"data-sessionkit-consent": "gpc"})
    assert "hidden" not in note
    assert "Global Privacy Control signal, which we honour" in html
    assert "Global Privacy Control" not in client.get("/banner/").content.decode()


def test_banner_not_over_the_preferences_page(client: Client, settings: Any) -> None:
    settings.TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "OPTIONS": {
                "loaders": [
                    (
                        "django.template.loaders.locmem.Loader",
                        {
                            "django_sessionkit/base.html": BANNER
                            + "{% block sessionkit_content %}{% endblock %}"
                        },
                    ),
                    "django.template.loaders.app_directories.Loader",
                ],
                "context_processors": ["django.template.context_processors.request"],
            },
        }
    ]
    html = client.get("/sk/consent/preferences/").content.decode()
    assert "<main>Page</main>" in html
    assert 'data-sessionkit-consent="banner"' not in html
    # The page's own toggles, once (no duplicate ids).
    assert html.count('id="sessionkit-consent-analytics"') == 1
    assert "consent.js" in html
    assert 'data-sessionkit-consent="banner"' in client.get("/banner/").content.decode()


def test_banner_without_request_in_context_fails_clearly() -> None:
    from django.core.exceptions import ImproperlyConfigured

    template = Template(BANNER)
    with pytest.raises(ImproperlyConfigured, match=r"context_processors\.request"):
        template.render(Context({}))


def test_banner_template_can_be_overridden(client: Client, settings: Any) -> None:
    settings.TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "OPTIONS": {
                "loaders": [
                    (
                        "django.template.loaders.locmem.Loader",
                        {
                            "django_sessionkit/consent_banner.html": (
                                "{% if show %}<aside>Our own banner, "
                                "revision {{ consent.revision }}</aside>{% endif %}"
                            )
                        },
                    ),
                    "django.template.loaders.app_directories.Loader",
                ],
                "context_processors": ["django.template.context_processors.request"],
            },
        }
    ]
    html = client.get("/banner/").content.decode()
    assert "<aside>Our own banner, revision 1</aside>" in html
    assert "Accept all" not in html


# -- The CSP nonce -----------------------------------------------------------------


@djangos_csp
def test_banner_nonce_of_djangos_csp_middleware(client: Client, settings: Any) -> None:
    from django.utils.csp import CSP

    settings.MIDDLEWARE = [
        "django.middleware.csp.ContentSecurityPolicyMiddleware",
        *MIDDLEWARE,
    ]
    settings.SECURE_CSP = {
        "script-src": [CSP.SELF, CSP.NONCE],
        "style-src": [CSP.SELF, CSP.NONCE],
    }
    response = client.get("/banner/")
    nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"])
    assert nonce is not None
    elements = Elements(response.content.decode())
    assert elements.one("script")["nonce"] == nonce.group(1)
    assert elements.one("link", rel="stylesheet")["nonce"] == nonce.group(1)


@djangos_csp
def test_banner_nonce_of_csp_context_processor(client: Client, settings: Any) -> None:
    from django.utils.csp import CSP

    settings.MIDDLEWARE = [
        "django.middleware.csp.ContentSecurityPolicyMiddleware",
        *MIDDLEWARE,
    ]
    settings.SECURE_CSP = {"script-src": [CSP.SELF, CSP.NONCE]}
    # A new list: the fixture restores settings, not dicts changed in place.
    templates = copy.deepcopy(settings.TEMPLATES)
    templates[0]["OPTIONS"]["context_processors"] = [
        "django.template.context_processors.request",
        "django.template.context_processors.csp",
    ]
    settings.TEMPLATES = templates
    response = client.get("/google/")
    nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"])
    assert nonce is not None
    assert Elements(response.content.decode()).one("script")["nonce"] == nonce.group(1)


def set_django_csp_nonce(get_response: Any) -> Any:
    """A middleware giving ``request.csp_nonce``, as django-csp's does."""

    def middleware(request: HttpRequest) -> HttpResponse:
        request.csp_nonce = "from-django-csp"  # type: ignore[attr-defined]
        response: HttpResponse = get_response(request)
        return response

    return middleware


def test_banner_nonce_of_django_csp(client: Client, settings: Any) -> None:
    settings.MIDDLEWARE = [f"{__name__}.set_django_csp_nonce", *MIDDLEWARE]
    elements = Elements(client.get("/banner/").content.decode())
    assert elements.one("script")["nonce"] == "from-django-csp"
    assert elements.one("link", rel="stylesheet")["nonce"] == "from-django-csp"


# -- {% consent_banner cacheable=True %} -------------------------------------------


def test_cacheable_banner_is_the_same_for_everyone_and_hidden(client: Client) -> None:
    undecided = client.get("/cacheable/")
    html = undecided.content.decode()
    elements = Elements(html)
    region = elements.one("div", role="region")
    assert "hidden" in region
    assert "data-cacheable" in region
    assert region["data-revision"] == "1"
    assert region["data-preferences-url"] == "/sk/consent/preferences/"
    # The GPC note is there for the script to show.
    assert "hidden" in elements.one("p", **{"data-sessionkit-consent": "gpc"})
    # No CSRF token: it would differ per visitor (and vary the page).
    assert "csrfmiddlewaretoken" not in html
    decide(client, "analytics", "marketing")
    assert client.get("/cacheable/").content == undecided.content
    gpc = client.get("/cacheable/", headers={"Sec-GPC": "1"})
    assert gpc.content == undecided.content


def test_cacheable_banner_does_not_vary(client: Client) -> None:
    assert vary(client.get("/cacheable/")) == set()
    decide(client)
    assert vary(client.get("/cacheable/")) == set()


def test_cacheable_banner_follows_the_revision(client: Client, settings: Any) -> None:
    settings.SESSIONKIT_CONSENT_REVISION = 3
    html = client.get("/cacheable/").content.decode()
    assert Elements(html).one("div", role="region")["data-revision"] == "3"


# -- {% ifconsent %} ---------------------------------------------------------------


def test_ifconsent_refused_until_granted(client: Client) -> None:
    assert client.get("/ifconsent/").content == b"[refused]"
    decide(client, "preferences")
    assert client.get("/ifconsent/").content == b"[refused]"
    decide(client, "analytics")
    assert client.get("/ifconsent/").content == b"[granted]"


def test_ifconsent_gpc_refuses_without_explicit_grant(client: Client) -> None:
    template = (
        "{% load sessionkit_consent %}"
        "{% ifconsent key %}yes{% else %}no{% endifconsent %}"
    )
    request = RequestFactory().get("/", headers={"Sec-GPC": "1"})
    granted = state.decide(RequestFactory().get("/"), ["marketing"], explicit=True)
    request.COOKIES[conf.CONSENT_COOKIE_NAME] = state.cookie_value(granted)
    rendered = Template(template).render(
        Context({"request": request, "key": "marketing"})
    )
    assert rendered == "no"
    assert getattr(request, "consent_varies", False) is True


def test_ifconsent_required_category_is_always_granted(client: Client) -> None:
    template = Template(
        "{% load sessionkit_consent %}{% ifconsent 'necessary' %}yes{% endifconsent %}"
    )
    request = RequestFactory().get("/")
    assert template.render(Context({"request": request})) == "yes"


def test_ifconsent_varies_by_cookie(client: Client) -> None:
    assert "cookie" in vary(client.get("/ifconsent/"))


def test_ifconsent_needs_one_argument() -> None:
    with pytest.raises(TemplateSyntaxError, match="one argument"):
        Template("{% load sessionkit_consent %}{% ifconsent %}x{% endifconsent %}")
    with pytest.raises(TemplateSyntaxError, match="one argument"):
        Template(
            "{% load sessionkit_consent %}{% ifconsent 'a' 'b' %}x{% endifconsent %}"
        )


# -- Links and the declaration -----------------------------------------------------


def test_preferences_link(client: Client) -> None:
    html = client.get("/links/").content.decode()
    assert html == (
        '<a href="/sk/consent/preferences/" class="sessionkit-consent-link">'
        "Cookie settings</a>|"
        '<a href="/sk/consent/preferences/" class="sessionkit-consent-link">'
        "Privacy choices</a>"
    )


def test_cookie_declaration_lists_categories_and_cookies(client: Client) -> None:
    html = client.get("/declaration/").content.decode()
    rows = re.findall(r'<tr id="cookies-(\w+)">(.*?)</tr>', html, re.DOTALL)
    assert [key for key, _ in rows] == [
        "necessary",
        "preferences",
        "analytics",
        "marketing",
    ]
    cells = dict(rows)
    assert '<th scope="row">Analytics</th>' in cells["analytics"]
    assert "<code>_ga_*</code>" in cells["analytics"]
    assert "Count visits" in cells["analytics"]
    assert "Not needed (always on)" in cells["necessary"]
    assert "<code>sessionkit_consent</code>" in cells["necessary"]
    assert "<code>csrftoken</code>" in cells["necessary"]
    assert "None" in cells["preferences"]
    assert "cookie" not in vary(client.get("/declaration/"))


# -- {% google_consent_mode %} -----------------------------------------------------


def test_google_consent_mode_defaults_deny_every_mapped_type(client: Client) -> None:
    response = client.get("/google/")
    html = response.content.decode()
    script = Elements(html).one("script")
    assert script["src"] == "/static/django_sessionkit/consent-gcm.js"
    # Run at once, before gtag.js: neither deferred nor async.
    assert "defer" not in script
    assert "async" not in script
    assert json.loads(script["data-defaults"] or "") == {
        "analytics_storage": "denied",
        "ad_storage": "denied",
        "ad_user_data": "denied",
        "ad_personalization": "denied",
    }
    assert script["data-wait-for-update"] == "500"
    assert json.loads(script["data-sessionkit-consent-config"] or "")["revision"] == 1
    assert re.search(r"<script(?![^>]*\bsrc=)", html) is None
    # The same for everyone: the script updates from the cookie.
    assert "cookie" not in vary(response)
    decide(client, "analytics")
    assert client.get("/google/").content == response.content


def test_google_consent_mode_types_of_required_category_are_granted(
    client: Client, settings: Any
) -> None:
    settings.SESSIONKIT_CONSENT_CATEGORIES = [
        {"key": "necessary", "required": True, "google": ["security_storage"]},
        {"key": "ads", "google": ["ad_storage", "security_storage"]},
    ]
    script = Elements(client.get("/google/").content.decode()).one("script")
    assert json.loads(script["data-defaults"] or "") == {
        "security_storage": "granted",
        "ad_storage": "denied",
    }
