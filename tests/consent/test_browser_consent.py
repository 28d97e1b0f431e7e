"""The consent banner in a real browser (Debian's headless Chromium).

Pages of this module (it is also their URLconf) are served by a live server
in this process under a strict Content-Security-Policy (scripts and styles
from the site only, no inline ones). A page carries a deferred "analytics"
script, a file that sets the ``_ga`` cookie and writes a line into the page
when it runs, and sets a ``_pk_id.1`` analytics cookie from the server.

Screenshots at 1280 and 360 px are saved under pytest's temporary
directory (``consent-screenshots``; the path is printed with ``-s``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.conf import settings as django_settings
from django.http import HttpRequest, HttpResponse
from django.template import RequestContext, Template
from django.urls import include, path
from django.views.static import serve

import django_sessionkit
from django_sessionkit.models import ConsentRecord
from tests.browser import LiveServer, Tab, chromium, new_context, open_tab
from tests.test_demo import (  # noqa: F401 - fixtures
    DemoServer,
    demo_server,
    migrated_db,
    workdir,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
STATIC_ROOT = Path(django_sessionkit.__file__).resolve().parent / "static"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

PAGE = """{% load sessionkit_consent %}<!DOCTYPE html><html lang="en"><head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Consent</title>{% google_consent_mode %}</head><body>
<header><a href="/page/" id="home">Home</a></header>
<main><h1>A page</h1>
<p><label for="text">Text</label> <input id="text"></p>
<ol id="log" aria-label="Log"></ol>
<script type="text/plain" data-consent="analytics" src="/analytics.js"></script>
<script type="text/plain" data-consent="marketing" src="/marketing.js"></script>
</main>
<footer>{% consent_preferences_link %}</footer>
{% consent_banner CACHEABLE %}</body></html>"""

# What a real analytics script does: a cookie, and something to see.
ANALYTICS = """
document.cookie = "_ga=GA1.1.42; path=/";
window.analyticsRuns = (window.analyticsRuns || 0) + 1;
var line = document.createElement("li");
line.className = "analytics";
line.textContent = "Analytics ran";
document.getElementById("log").appendChild(line);
"""
MARKETING = """
window.marketingRuns = (window.marketingRuns || 0) + 1;
"""


def page_view(cacheable: bool) -> Any:
    argument = "cacheable=True" if cacheable else ""
    template = Template(PAGE.replace("CACHEABLE", argument))

    def view(request: HttpRequest) -> HttpResponse:
        response = HttpResponse(template.render(RequestContext(request)))
        # Stripped by ConsentMiddleware until analytics is granted.
        response.set_cookie("_pk_id.1", "server-side")
        return response

    return view


def script(source: str) -> Any:
    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse(source, content_type="text/javascript")

    return view


def static(request: HttpRequest, path: str) -> HttpResponse:
    response: HttpResponse = serve(request, path, document_root=STATIC_ROOT)
    return response


def content_security_policy(get_response: Any) -> Any:
    """A middleware: the strict policy on every response."""

    def middleware(request: HttpRequest) -> HttpResponse:
        response: HttpResponse = get_response(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        return response

    return middleware


urlpatterns = [
    path("page/", page_view(cacheable=False)),
    path("cached/", page_view(cacheable=True)),
    path("analytics.js", script(ANALYTICS)),
    path("marketing.js", script(MARKETING)),
    path("static/<path:path>", static),
    path("favicon.ico", lambda request: HttpResponse(status=204)),
    path("sessions/", include("django_sessionkit.urls")),
]


@pytest.fixture
def server(transactional_db: None, settings: Any) -> Iterator[LiveServer]:
    settings.ROOT_URLCONF = __name__
    settings.STATIC_URL = "/static/"
    settings.MIDDLEWARE = [
        f"{__name__}.content_security_policy",
        "django_sessionkit.middleware.ConsentMiddleware",
        *django_settings.MIDDLEWARE,
    ]
    live = LiveServer()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def browser(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    with chromium(monkeypatch) as launched:
        yield launched


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("consent-screenshots", numbered=False)
    print(f"\nConsent screenshots: {folder}")
    return folder


def open_page(browser: Browser, server: LiveServer, url: str = "/page/") -> Tab:
    tab = open_tab(new_context(browser))
    response = tab.page.goto(server.url + url)
    assert response is not None and response.ok
    # A marker that a reload would lose.
    tab.page.evaluate("window.samePage = true")
    return tab


def banner(tab: Tab) -> Locator:
    return tab.page.get_by_role("region", name="Cookies on this site")


def cookies(tab: Tab) -> dict[str, str]:
    return {c["name"]: c["value"] for c in tab.page.context.cookies()}


def analytics_ran(tab: Tab) -> int:
    return int(tab.page.evaluate("window.analyticsRuns || 0"))


def assert_clean(tab: Tab) -> None:
    assert tab.violations() == []
    assert [t for t in tab.console if t.startswith("error")] == []
    assert tab.errors == []


def records(server: LiveServer) -> list[ConsentRecord]:
    with server.lock:
        return list(ConsentRecord.objects.order_by("pk"))


def wait_until(tab: Tab, condition: str, seconds: float = 5) -> None:
    """Poll ``condition`` (``wait_for_function`` evaluates a string, which
    the page's CSP refuses)."""
    for _ in range(int(seconds * 20)):
        if tab.page.evaluate(f"() => {condition}"):
            return
        tab.page.wait_for_timeout(50)
    raise AssertionError(f"never true: {condition}")


def wait_for_decision(tab: Tab) -> None:
    from playwright.sync_api import expect

    expect(banner(tab)).to_be_hidden()


# -- Deciding ----------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/page/", "/cached/"])
def test_reject_all_sets_no_analytics_cookie_and_never_runs_script(
    server: LiveServer, browser: Browser, url: str
) -> None:
    from playwright.sync_api import expect

    tab = open_page(browser, server, url)
    expect(banner(tab)).to_be_visible()
    tab.page.get_by_role("button", name="Reject all").click()
    wait_for_decision(tab)
    assert tab.page.evaluate("window.samePage") is True
    [record] = records(server)
    assert record.source == "banner"
    assert "sessionkit_consent" in cookies(tab)
    tab.page.reload()
    expect(tab.page.get_by_role("heading", name="A page")).to_be_visible()
    expect(banner(tab)).to_be_hidden()
    tab.page.wait_for_timeout(300)
    assert analytics_ran(tab) == 0
    assert tab.page.locator("li.analytics").count() == 0
    found = cookies(tab)
    assert "_ga" not in found
    assert "_pk_id.1" not in found
    assert_clean(tab)


@pytest.mark.parametrize("url", ["/page/", "/cached/"])
def test_choosing_analytics_runs_its_script_without_reload(
    server: LiveServer, browser: Browser, url: str
) -> None:
    from playwright.sync_api import expect

    tab = open_page(browser, server, url)
    assert analytics_ran(tab) == 0
    tab.page.get_by_text("Choose", exact=True).click()
    tab.page.get_by_label("Analytics").check()
    tab.page.get_by_role("button", name="Save my choices").click()
    wait_for_decision(tab)
    expect(tab.page.locator("li.analytics")).to_have_text("Analytics ran")
    assert tab.page.evaluate("window.samePage") is True
    assert analytics_ran(tab) == 1
    assert tab.page.evaluate("window.marketingRuns || 0") == 0
    assert cookies(tab)["_ga"] == "GA1.1.42"
    # Google Consent Mode: denied by default, then updated.
    layer = tab.page.evaluate("window.dataLayer.map((a) => Array.from(a))")
    assert layer[0] == [
        "consent",
        "default",
        {
            "analytics_storage": "denied",
            "ad_storage": "denied",
            "ad_user_data": "denied",
            "ad_personalization": "denied",
            "wait_for_update": 500,
        },
    ]
    assert layer[-1][:2] == ["consent", "update"]
    assert layer[-1][2]["analytics_storage"] == "granted"
    assert layer[-1][2]["ad_storage"] == "denied"
    # Next page: from the cookie, once, and no banner.
    tab.page.reload()
    expect(tab.page.locator("li.analytics")).to_have_count(1)
    expect(banner(tab)).to_be_hidden()
    assert cookies(tab)["_pk_id.1"] == "server-side"
    layer = tab.page.evaluate("window.dataLayer.map((a) => Array.from(a))")
    assert [entry[:2] for entry in layer] == [
        ["consent", "default"],
        ["consent", "update"],
    ]
    assert layer[1][2]["analytics_storage"] == "granted"
    assert_clean(tab)


def test_accept_all_runs_every_deferred_script(
    server: LiveServer, browser: Browser
) -> None:
    tab = open_page(browser, server)
    tab.page.get_by_role("button", name="Accept all").click()
    wait_for_decision(tab)
    wait_until(tab, "window.marketingRuns === 1")
    assert analytics_ran(tab) == 1
    assert_clean(tab)


def test_gpc_refuses_marketing_on_accept_all(
    server: LiveServer, browser: Browser
) -> None:
    """With the signal (header and navigator.globalPrivacyControl), "Accept
    all" leaves marketing off, and the banner says so."""
    from playwright.sync_api import expect

    tab = open_tab(
        new_context(
            browser,
            init_script=(
                "Object.defineProperty(Navigator.prototype, "
                "'globalPrivacyControl', {get: () => true});"
            ),
        )
    )
    tab.page.context.set_extra_http_headers({"Sec-GPC": "1"})
    tab.page.goto(f"{server.url}/cached/")
    expect(tab.page.get_by_text("Global Privacy Control signal")).to_be_visible()
    tab.page.get_by_role("button", name="Accept all").click()
    wait_for_decision(tab)
    wait_until(tab, "window.analyticsRuns === 1")
    tab.page.wait_for_timeout(300)
    assert tab.page.evaluate("window.marketingRuns || 0") == 0
    assert_clean(tab)


def test_without_javascript_the_form_posts_and_comes_back(
    server: LiveServer, browser: Browser
) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(locale="en-US", java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{server.url}/page/")
    page.get_by_role("button", name="Reject all").click()
    page.wait_for_url(f"{server.url}/page/")
    expect(page.get_by_role("heading", name="A page")).to_be_visible()
    expect(page.get_by_role("region", name="Cookies on this site")).to_have_count(0)
    assert "sessionkit_consent" in {c["name"] for c in context.cookies()}
    context.close()


# -- Keyboard, focus, accessibility, looks -----------------------------------------


def focused(page: Page) -> str:
    return str(
        page.evaluate(
            "document.activeElement.id || document.activeElement.textContent.trim()"
        )
    )


def tab_to(page: Page, name: str, limit: int = 30) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if focused(page) == name:
            return
    raise AssertionError(f"Tab never reached {name!r}")


def test_banner_by_keyboard_alone(server: LiveServer, browser: Browser) -> None:
    from playwright.sync_api import expect

    tab = open_page(browser, server)
    page = tab.page
    page.locator("#text").focus()
    # No trap: Tab goes through the banner and on, back to the page.
    tab_to(page, "Accept all")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    tab_to(page, "Reject all")
    tab_to(page, "Choose")
    page.keyboard.press("Enter")
    tab_to(page, "sessionkit-consent-analytics")
    page.keyboard.press("Space")
    assert page.locator("#sessionkit-consent-analytics").is_checked()
    tab_to(page, "Save my choices")
    page.keyboard.press("Enter")
    wait_for_decision(tab)
    expect(page.locator("li.analytics")).to_have_count(1)
    # The focus goes back where it was before the banner (the footer's link,
    # last before the banner at the end of <body>).
    assert focused(page) == "Cookie settings"
    expect(page.get_by_role("status")).to_have_text(re.compile("Your choice was saved"))
    assert_clean(tab)


def test_tab_goes_past_the_banner(server: LiveServer, browser: Browser) -> None:
    tab = open_page(browser, server)
    page = tab.page
    tab_to(page, "Reject all")
    # A non-modal region: Tab leaves it.
    for _ in range(20):
        page.keyboard.press("Tab")
        inside = page.evaluate(
            "!!document.activeElement.closest('#sessionkit-consent')"
        )
        if not inside:
            break
    assert not inside


def axe_violations(
    page: Page, within: str = "#sessionkit-consent"
) -> list[tuple[str, list[Any]]]:
    """WCAG 2.1 A/AA violations axe-core finds in ``within`` (a selector; the
    banner by default). Axe is evaluated through the DevTools protocol, which
    the CSP does not govern."""
    import axe_playwright_python

    axe = Path(axe_playwright_python.__file__).with_name("axe.min.js")
    page.evaluate(axe.read_text(encoding="utf-8"))
    result = page.evaluate(
        "([within, tags]) => axe.run(within, {runOnly: {type: 'tag', values: tags}})",
        [within, AXE_TAGS],
    )
    return [
        (v["id"], [node["target"] for node in v["nodes"]]) for v in result["violations"]
    ]


@pytest.mark.parametrize("width", [1280, 360])
def test_banner_accessible_and_tidy(
    server: LiveServer, browser: Browser, screenshots: Path, width: int
) -> None:
    tab = open_page(browser, server)
    page = tab.page
    page.set_viewport_size({"width": width, "height": 800})
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
        assert axe_violations(page) == [], scheme
        page.screenshot(path=screenshots / f"banner-{width}-{scheme}.png")
    page.get_by_text("Choose", exact=True).click()
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
        assert axe_violations(page) == [], f"{scheme}, choose open"
        page.screenshot(path=screenshots / f"banner-{width}-{scheme}-choose.png")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    box = banner(tab).bounding_box()
    assert box is not None
    assert box["x"] >= 0 and box["x"] + box["width"] <= width
    accept = page.get_by_role("button", name="Accept all").bounding_box()
    reject = page.get_by_role("button", name="Reject all").bounding_box()
    assert accept is not None and reject is not None
    # Equal prominence: the same size, side by side.
    assert accept["width"] == pytest.approx(reject["width"], abs=1)
    assert accept["height"] == pytest.approx(reject["height"], abs=1)
    assert accept["y"] == pytest.approx(reject["y"], abs=1)
    same = page.evaluate(
        """() => {
          const [a, r] = [...document.querySelectorAll('.sessionkit-consent__button')]
            .map((b) => getComputedStyle(b));
          return ['backgroundColor', 'color', 'fontSize', 'fontWeight', 'borderColor']
            .every((k) => a[k] === r[k]);
        }"""
    )
    assert same is True
    assert_clean(tab)


def test_cacheable_page_does_not_vary_and_decides_with_a_fetched_token(
    server: LiveServer, browser: Browser
) -> None:
    tab = open_tab(new_context(browser))
    response = tab.page.goto(f"{server.url}/cached/")
    assert response is not None
    assert "cookie" not in response.headers.get("vary", "").lower()
    assert "csrftoken" not in cookies(tab)
    tab.page.get_by_role("button", name="Reject all").click()
    wait_for_decision(tab)
    value = cookies(tab)["sessionkit_consent"]
    payload = json.loads(_b64(value.split(":")[0]))
    assert payload["g"] == []
    assert_clean(tab)


def _b64(part: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


# -- The preferences page ------------------------------------------------------------

PREFERENCES = "/sessions/consent/preferences/"


def test_withdrawing_on_preferences_deletes_the_cookies(
    server: LiveServer, browser: Browser
) -> None:
    """Analytics granted on the banner (its script sets ``_ga``, the server
    ``_pk_id.1``), then withdrawn on the preferences page: both cookies go."""
    from playwright.sync_api import expect

    tab = open_page(browser, server)
    page = tab.page
    page.get_by_text("Choose", exact=True).click()
    page.get_by_label("Analytics").check()
    page.get_by_role("button", name="Save my choices").click()
    wait_for_decision(tab)
    expect(page.locator("li.analytics")).to_have_count(1)
    page.reload()
    assert {"_ga", "_pk_id.1"} <= set(cookies(tab))
    page.get_by_role("link", name="Cookie settings").click()
    expect(page.get_by_role("heading", name="Cookie preferences")).to_be_visible()
    analytics = page.get_by_label("Analytics")
    expect(analytics).to_be_checked()
    analytics.uncheck()
    page.get_by_role("button", name="Save my choices").click()
    expect(page.get_by_role("status")).to_have_text("Your choices were saved.")
    expect(page.get_by_label("Analytics")).not_to_be_checked()
    found = cookies(tab)
    assert "_ga" not in found
    assert "_pk_id.1" not in found
    assert "sessionkit_consent" in found
    first, withdrawal = records(server)
    assert (withdrawal.source, withdrawal.action) == ("preferences", "withdrawal")
    assert withdrawal.consent_id == first.consent_id
    assert withdrawal.choices["analytics"] is False
    # Back on the page: the deferred script stays off, the server's cookie
    # is stripped again.
    page.get_by_role("link", name="Back to the site").click()
    expect(page.get_by_role("heading", name="A page")).to_be_visible()
    page.wait_for_timeout(300)
    assert analytics_ran(tab) == 0
    assert not {"_ga", "_pk_id.1"} & set(cookies(tab))
    assert_clean(tab)


def test_preferences_by_keyboard_alone(server: LiveServer, browser: Browser) -> None:
    from playwright.sync_api import expect

    tab = open_page(browser, server, PREFERENCES + "?next=/page/")
    page = tab.page
    tab_to(page, "sessionkit-consent-analytics")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    page.keyboard.press("Space")
    tab_to(page, "Save my choices")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("Your choices were saved.")
    expect(page.get_by_label("Analytics")).to_be_checked()
    expect(page.get_by_label("Marketing")).not_to_be_checked()
    [record] = records(server)
    assert (record.source, record.action) == ("preferences", "custom")
    # Reject all, by keyboard too, then away: Tab reaches the link back.
    tab_to(page, "Reject all")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("Your choices were saved.")
    expect(page.get_by_label("Analytics")).not_to_be_checked()
    tab_to(page, "Back to the site")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="A page")).to_be_visible()
    assert [r.action for r in records(server)] == ["custom", "reject_all"]
    assert_clean(tab)


@pytest.mark.parametrize("width", [1280, 360])
def test_preferences_accessible_and_tidy(
    server: LiveServer, browser: Browser, screenshots: Path, width: int
) -> None:
    tab = open_page(browser, server, PREFERENCES)
    page = tab.page
    page.set_viewport_size({"width": width, "height": 800})
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
        assert axe_violations(page, "html") == [], scheme
        page.screenshot(
            path=screenshots / f"preferences-{width}-{scheme}.png", full_page=True
        )
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    # After a decision: the consent id and the saved note are there too.
    page.get_by_role("button", name="Accept all").click()
    page.get_by_role("status").wait_for()
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
        assert axe_violations(page, "html") == [], f"{scheme}, saved"
        page.screenshot(
            path=screenshots / f"preferences-{width}-{scheme}-saved.png",
            full_page=True,
        )
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert_clean(tab)


# -- The demo ---------------------------------------------------------------------


@pytest.fixture
def demo_browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    with chromium(monkeypatch) as launched:
        yield launched


def test_demo_banner_runs_analytics_after_accepting(
    demo_server: DemoServer,  # noqa: F811
    demo_browser: Browser,
) -> None:
    from playwright.sync_api import expect

    tab = open_tab(new_context(demo_browser))
    page = tab.page
    page.goto(demo_server.base_url)
    log = page.locator("#analytics-log")
    expect(log).to_contain_text("has not run")
    page.get_by_role("button", name="Accept all").click()
    expect(banner(tab)).to_be_hidden()
    expect(log).to_contain_text("Analytics script ran")
    assert "_ga" in cookies(tab)
    # The footer's link leads to the preferences page, in the demo's layout.
    page.get_by_role("link", name="Cookie settings").click()
    expect(page.get_by_role("heading", name="Cookie preferences")).to_be_visible()
    expect(log).to_contain_text("Analytics script ran")
    # The demo has no favicon (a 404 in the console); nothing else.
    assert tab.violations() == []
    assert tab.errors == []
