"""The "Sessions & devices" page in a real browser (Debian's headless Chromium).

The same user signs in through the sign-in form of ``tests.urls_browser`` in
several browser contexts (each its own cookie jar: several browsers or
devices); one of them signs the others out from the page. The page is served
under the strict Content-Security-Policy of the other browser tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User

from django_sessionkit.keys import hash_key
from django_sessionkit.models import Session
from tests.browser import LiveServer, Tab, chromium, new_context, open_tab
from tests.test_browser import assert_clean, sign_in
from tests.test_demo import (  # noqa: F401 - fixtures
    DemoServer,
    demo_server,
    migrated_db,
    workdir,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Locator, Response

PAGE = "/sessions/"
SESSION_BUTTONS = re.compile(r"^Sign out (this session|the session on )")
OTHER_SESSION_BUTTON = re.compile(r"^Sign out the session on ")


@pytest.fixture
def server(transactional_db: None, settings: Any) -> Iterator[LiveServer]:
    settings.ROOT_URLCONF = "tests.urls_browser"
    settings.STATIC_URL = "/static/"
    settings.LOGIN_URL = "/signin/"
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "tests.urls_browser.content_security_policy",
    ]
    User.objects.create_user("alice", password="pw")
    live = LiveServer()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def browser(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    with chromium(monkeypatch) as launched:
        yield launched


@pytest.fixture
def problems() -> list[str]:
    """Console errors and failed responses of the test's tabs (but the
    favicon's 404: the test site has none)."""
    return []


def signed_in(browser: Browser, server: LiveServer, problems: list[str]) -> Tab:
    """A new browser context (cookie jar) signed in as alice, on the page."""
    tab = open_tab(new_context(browser))

    def on_response(response: Response) -> None:
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            problems.append(f"{response.status} {response.url}")

    def on_console(message: ConsoleMessage) -> None:
        # A failed resource is reported (with its URL) by on_response.
        if message.type == "error" and "Failed to load resource" not in message.text:
            problems.append(message.text)

    tab.page.on("response", on_response)
    tab.page.on("console", on_console)
    sign_in(tab, server)
    open_page(tab, server)
    return tab


def open_page(tab: Tab, server: LiveServer) -> None:
    response = tab.page.goto(server.url + PAGE)
    assert response is not None
    assert response.status == 200
    assert tab.page.url == server.url + PAGE
    heading = tab.page.get_by_role("heading", level=1, name="Sessions and devices")
    assert heading.is_visible()


def session_pk(tab: Tab, server: LiveServer) -> int:
    """The id of the session row of the tab's session cookie."""
    keys = [c["value"] for c in tab.page.context.cookies() if c["name"] == "sessionid"]
    assert len(keys) == 1
    with server.lock:
        pk: int = Session.objects.get(key_hash=hash_key(keys[0])).pk
    return pk


def live_pks(server: LiveServer) -> set[int]:
    with server.lock:
        return set(Session.objects.values_list("pk", flat=True))


def session_buttons(tab: Tab) -> Locator:
    """The "Sign out" button of every session listed."""
    return tab.page.get_by_role("button", name=SESSION_BUTTONS)


def action(button: Locator) -> str | None:
    """Where the form of ``button`` posts."""
    return button.locator("xpath=ancestor::form").get_attribute("action")


def assert_lists_current(tab: Tab, server: LiveServer, *, count: int) -> None:
    """The page lists ``count`` sessions, the tab's own marked "This session"."""
    page = tab.page
    assert session_buttons(tab).count() == count
    current = page.get_by_role("row").filter(has_text="This session")
    assert current.count() == 1
    assert current.get_attribute("aria-current") == "true"
    mine = current.get_by_role("button", name=SESSION_BUTTONS)
    assert mine.get_attribute("aria-label") == (
        "Sign out this session (you will be signed out here)"
    )
    assert action(mine) == f"{PAGE}{session_pk(tab, server)}/sign-out/"
    assert page.get_by_text("This device", exact=True).count() == 1


def assert_anonymous(tab: Tab, server: LiveServer) -> None:
    """At its next request the tab is sent to the sign-in page."""
    tab.page.reload()
    assert tab.page.url == f"{server.url}/signin/?next={PAGE}"
    assert tab.page.get_by_role("button", name="Sign in").is_visible()
    assert [c for c in tab.page.context.cookies() if c["name"] == "sessionid"] == []


# -- Signing out another browser -----------------------------------------------


def test_sign_out_another_session(
    server: LiveServer, browser: Browser, problems: list[str]
) -> None:
    first = signed_in(browser, server, problems)
    second = signed_in(browser, server, problems)
    first_pk, second_pk = session_pk(first, server), session_pk(second, server)
    assert first_pk != second_pk
    assert live_pks(server) == {first_pk, second_pk}

    open_page(first, server)
    assert_lists_current(first, server, count=2)
    other = first.page.get_by_role("button", name=OTHER_SESSION_BUTTON)
    assert other.count() == 1
    assert action(other) == f"{PAGE}{second_pk}/sign-out/"

    other.click()
    first.page.wait_for_url(server.url + PAGE)
    status = first.page.get_by_role("status")
    assert status.inner_text() == "The session was signed out."
    assert_lists_current(first, server, count=1)
    assert not first.page.get_by_role("button", name=OTHER_SESSION_BUTTON).count()
    assert live_pks(server) == {first_pk}

    assert_anonymous(second, server)
    # The first browser is untouched: still signed in, in the same session.
    response = first.page.goto(f"{server.url}/page/")
    assert response is not None
    assert first.page.url == f"{server.url}/page/"
    assert session_pk(first, server) == first_pk
    assert_clean(first, second)
    assert problems == []


def test_sign_out_everywhere_else(
    server: LiveServer, browser: Browser, problems: list[str]
) -> None:
    first, second, third = (signed_in(browser, server, problems) for _ in range(3))
    first_pk = session_pk(first, server)
    assert len(live_pks(server)) == 3

    open_page(first, server)
    assert_lists_current(first, server, count=3)
    first.page.get_by_role("button", name="Sign out everywhere else").click()
    first.page.wait_for_url(server.url + PAGE)
    status = first.page.get_by_role("status")
    assert status.inner_text() == "Signed out 2 other sessions."
    assert_lists_current(first, server, count=1)
    # Nothing else to sign out: the button is gone.
    assert not first.page.get_by_role("button", name="Sign out everywhere else").count()
    assert live_pks(server) == {first_pk}

    assert_anonymous(second, server)
    assert_anonymous(third, server)
    open_page(first, server)
    assert_lists_current(first, server, count=1)
    assert session_pk(first, server) == first_pk
    assert_clean(first, second, third)
    assert problems == []


# -- Keyboard only -------------------------------------------------------------


def test_sign_out_by_keyboard_with_visible_focus(
    server: LiveServer, browser: Browser, problems: list[str]
) -> None:
    first = signed_in(browser, server, problems)
    second = signed_in(browser, server, problems)
    first_pk, second_pk = session_pk(first, server), session_pk(second, server)
    open_page(first, server)
    page = first.page
    target = page.get_by_role("button", name=OTHER_SESSION_BUTTON)
    unfocused = target.evaluate("(el) => getComputedStyle(el).outlineStyle")

    for _ in range(40):
        page.keyboard.press("Tab")
        if target.evaluate("(el) => el === document.activeElement"):
            break
    else:
        pytest.fail("Tab never reached the other session's sign-out button")
    style = target.evaluate(
        "(el) => { const s = getComputedStyle(el); return {outline: s.outlineStyle,"
        " width: parseFloat(s.outlineWidth), shadow: s.boxShadow}; }"
    )
    assert unfocused == "none"
    ring = style["outline"] != "none" and style["width"] >= 2
    assert ring or style["shadow"] != "none", style

    page.keyboard.press("Enter")
    page.wait_for_url(server.url + PAGE)
    assert page.get_by_role("status").inner_text() == "The session was signed out."
    assert_lists_current(first, server, count=1)
    assert live_pks(server) == {first_pk}
    assert second_pk not in live_pks(server)
    assert_anonymous(second, server)
    assert_clean(first, second)
    assert problems == []


# -- The demo ------------------------------------------------------------------


@pytest.fixture
def demo_browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    with chromium(monkeypatch) as launched:
        yield launched


def test_demo_header_links_styled_page(
    demo_server: DemoServer,  # noqa: F811
    demo_browser: Browser,
) -> None:
    tab = open_tab(new_context(demo_browser))
    page = tab.page
    page.goto(demo_server.base_url + "accounts/login/")
    page.get_by_label("Username").fill("demo")
    page.get_by_label("Password").fill(demo_server.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(demo_server.base_url)

    page.get_by_role("link", name="Sessions & devices").click()
    page.wait_for_url(demo_server.base_url + "sessions/")
    heading = page.get_by_role("heading", level=1, name="Sessions and devices")
    assert heading.is_visible()
    link = page.get_by_role("link", name="Sessions & devices")
    assert link.get_attribute("aria-current") == "page"
    current = page.get_by_role("row").filter(has_text="This session")
    assert current.count() == 1
    assert current.get_attribute("aria-current") == "true"
    # Both stylesheets apply under the demo's strict policy: the package's
    # cards, lined up with the demo's header rather than centred.
    card = page.locator(".sessionkit-device").first
    assert card.evaluate("(el) => getComputedStyle(el).borderTopLeftRadius") != "0px"
    title, site_name = heading.bounding_box(), page.locator(".site-name").bounding_box()
    assert title is not None
    assert site_name is not None
    assert abs(title["x"] - site_name["x"]) < 1
    assert_clean(tab)
