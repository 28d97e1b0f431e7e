"""The "Sessions & devices" page in a real browser (Debian's headless Chromium).

The same user signs in through the sign-in form of ``tests.urls_browser`` in
several browser contexts (each its own cookie jar: several browsers or
devices); one of them signs the others out from the page. The page is served
under the strict Content-Security-Policy of the other browser tests.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User

from django_sessionkit.keys import hash_key
from django_sessionkit.models import Device, Session
from django_sessionkit.sessions_page.data import device_label
from tests.browser import LiveServer, Tab, chromium, new_context, open_tab
from tests.test_browser import assert_clean, sign_in
from tests.test_demo import (  # noqa: F401 - fixtures
    DemoServer,
    demo_server,
    migrated_db,
    workdir,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, Response

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

    page.get_by_role("link", name="Sessions and devices").click()
    page.wait_for_url(demo_server.base_url + "sessions/")
    heading = page.get_by_role("heading", level=1, name="Sessions and devices")
    assert heading.is_visible()
    # The menu and the page's title say the same.
    assert page.title().startswith("Sessions and devices")
    link = page.get_by_role("link", name="Sessions and devices")
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


# -- Accessibility (issue 11) --------------------------------------------------

AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
IPV6 = "2001:0db8:85a3:0000:0000:8a2e:0370:7334"
LONG_NAME = "Workstation-" + "x" * 80


def axe_violations(page: Page) -> list[tuple[str, list[Any]]]:
    """WCAG 2.1 A/AA violations axe-core finds on ``page`` (axe is evaluated
    through the DevTools protocol, which the page's CSP does not govern)."""
    import axe_playwright_python

    script = Path(axe_playwright_python.__file__).with_name("axe.min.js")
    page.evaluate(script.read_text(encoding="utf-8"))
    result = page.evaluate(
        "(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}})",
        AXE_TAGS,
    )
    return [
        (v["id"], [node["target"] for node in v["nodes"]]) for v in result["violations"]
    ]


def assert_accessible(page: Page) -> None:
    """No axe violation, light and dark, and nothing scrolls sideways."""
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        assert axe_violations(page) == [], scheme
        assert no_sideways_scroll(page), scheme
    page.emulate_media(color_scheme="light")


def no_sideways_scroll(page: Page) -> bool:
    return bool(
        page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    )


def crowded(browser: Browser, server: LiveServer, problems: list[str]) -> Tab:
    """Three devices signed in, one with an IPv6 address and each with a long
    name; the first tab, on the page."""
    first, *others = (signed_in(browser, server, problems) for _ in range(3))
    with server.lock:
        Session.objects.filter(pk=session_pk(others[0], server)).update(ip=IPV6)
        for number, device in enumerate(Device.objects.all()):
            device.name = f"{LONG_NAME}{number}"
            device.save(update_fields=["name"])
    open_page(first, server)
    return first


def focused_status(page: Page) -> str:
    """The text of the status region, which must have the focus."""
    status = page.get_by_role("status")
    assert status.evaluate("(el) => el === document.activeElement")
    assert status.evaluate("(el) => el.tagName") != "UL"
    return status.inner_text()


def test_narrow_page_does_not_scroll_sideways(
    server: LiveServer, browser: Browser, problems: list[str]
) -> None:
    tab = crowded(browser, server, problems)
    page = tab.page
    page.set_viewport_size({"width": 320, "height": 640})
    page.reload()
    assert session_buttons(tab).count() == 3
    assert no_sideways_scroll(page)
    for button in session_buttons(tab).all():
        box = button.bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= 320
    assert_accessible(page)
    assert_clean(tab)
    assert problems == []


@pytest.mark.parametrize("width", [None, 320], ids=["wide", "320px"])
def test_page_accessible_light_dark_and_after_each_action(
    server: LiveServer, browser: Browser, problems: list[str], width: int | None
) -> None:
    tab = crowded(browser, server, problems)
    page = tab.page
    if width is not None:
        page.set_viewport_size({"width": width, "height": 640})
        page.reload()
    assert_accessible(page)
    # The device icons keep their contrast in the dark.
    page.emulate_media(color_scheme="dark")
    icon = page.locator(".sessionkit-icon").first
    colours = icon.evaluate(
        "(el) => [getComputedStyle(el).color, getComputedStyle(el).backgroundColor]"
    )
    assert colours[0] != "rgb(11, 92, 173)", colours
    page.emulate_media(color_scheme="light")

    field = page.get_by_role("textbox").nth(1)
    field.fill("Laptop")
    page.get_by_role("button", name=re.compile("^Rename ")).nth(1).click()
    page.wait_for_url(server.url + PAGE)
    assert focused_status(page) == "The device was renamed."
    assert_accessible(page)

    page.get_by_role("button", name=OTHER_SESSION_BUTTON).first.click()
    page.wait_for_url(server.url + PAGE)
    assert focused_status(page) == "The session was signed out."
    assert_accessible(page)

    page.get_by_role("button", name=re.compile("^Sign out device ")).nth(1).click()
    page.wait_for_url(server.url + PAGE)
    assert focused_status(page).startswith("Signed out ")
    assert_accessible(page)

    signed_in(browser, server, problems)
    open_page(tab, server)
    assert_accessible(page)
    page.get_by_role("button", name="Sign out everywhere else").click()
    page.wait_for_url(server.url + PAGE)
    assert focused_status(page) == "Signed out 1 other session."
    assert_accessible(page)
    assert_clean(tab)
    assert problems == []


def test_invalid_rename_titles_error_and_links_summary_to_field(
    server: LiveServer, browser: Browser, problems: list[str]
) -> None:
    tab = signed_in(browser, server, problems)
    page = tab.page
    field = page.get_by_role("textbox").first
    # Past the field's maxlength, as a script or an old browser could send.
    field.evaluate("(el) => el.removeAttribute('maxlength')")
    field.fill("x" * 101)
    page.get_by_role("button", name=re.compile("^Rename ")).first.click()
    page.wait_for_load_state()
    assert page.title().startswith("Error: ")
    summary = page.get_by_role("alert")
    assert summary.evaluate("(el) => el === document.activeElement")
    link = summary.get_by_role("link")
    field_id = field.get_attribute("id")
    assert link.get_attribute("href") == f"#{field_id}"
    link.click()
    assert field.evaluate("(el) => el === document.activeElement")
    assert axe_violations(page) == []
    assert_clean(tab)
    assert problems == [
        f"400 {server.url}{PAGE}devices/{device_pk(tab, server)}/rename/"
    ]


def device_pk(tab: Tab, server: LiveServer) -> int:
    pk = session_pk(tab, server)
    with server.lock:
        device_id: int = Session.objects.get(pk=pk).device_id
    return device_id


def test_page_parts_are_named_in_text(
    server: LiveServer, browser: Browser, problems: list[str]
) -> None:
    tab = signed_in(browser, server, problems)
    page = tab.page
    with server.lock:
        device = Device.objects.get()
    heading = page.get_by_role("heading", level=2)
    # The heading is the device's name; the badge is not read into it.
    assert heading.inner_text() == device_label(device)
    assert page.get_by_text("This device", exact=True).is_visible()
    # The type of the device is said in words, not only by the icon.
    facts = page.locator(".sessionkit-device__facts")
    assert "Type" in facts.inner_text()
    assert str(device.get_kind_display()).capitalize() in facts.inner_text()
    # Each session's row has a row header, and times carry their zone.
    row_header = page.get_by_role("rowheader")
    assert row_header.count() == 1
    assert "UTC" in row_header.inner_text()
    assert_clean(tab)
    assert problems == []


def test_reauthenticate_page_announces_intro_first(
    server: LiveServer, browser: Browser, problems: list[str]
) -> None:
    tab = signed_in(browser, server, problems)
    page = tab.page
    page.goto(f"{server.url}{PAGE}reauthenticate/?next={PAGE}")
    intro = page.get_by_text("For your security, please enter your password again")
    assert intro.evaluate("(el) => el === document.activeElement")
    password = page.get_by_label("Password")
    described = password.get_attribute("aria-describedby") or ""
    assert intro.get_attribute("id") in described.split()
    assert_accessible(page)
    page.keyboard.press("Tab")
    assert password.evaluate("(el) => el === document.activeElement")

    # A wrong password: the title says so, the field has the focus and is
    # described by its error.
    password.fill("wrong")
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_load_state()
    assert page.title().startswith("Error: ")
    assert password.evaluate("(el) => el === document.activeElement")
    assert password.get_attribute("aria-invalid") == "true"
    error_id = (password.get_attribute("aria-describedby") or "").split()[0]
    assert "incorrectly" in page.locator(f"#{error_id}").inner_text()
    assert_accessible(page)
    assert_clean(tab)
    assert problems == []


def demo_sign_in(page: Page, demo_server: DemoServer) -> None:  # noqa: F811
    page.get_by_label("Username").fill("demo")
    page.get_by_label("Password").fill(demo_server.password)
    page.get_by_role("button", name="Sign in").click()


def test_demo_sign_in_after_timeout_reads_message_first(
    demo_server: DemoServer,  # noqa: F811
    demo_browser: Browser,
) -> None:
    tab = open_tab(new_context(demo_browser))
    page = tab.page
    page.goto(demo_server.base_url + "accounts/login/")
    demo_sign_in(page, demo_server)
    page.wait_for_url(demo_server.base_url)
    # Idle for longer than the demo's five minutes.
    key = next(c["value"] for c in page.context.cookies() if c["name"] == "sessionid")
    with sqlite3.connect(demo_server.db_path) as conn:
        conn.execute(
            "UPDATE sessionkit_session SET last_seen_at = ? WHERE key_hash = ?",
            (
                (datetime.now(UTC) - timedelta(minutes=6)).strftime(
                    "%Y-%m-%d %H:%M:%S.%f"
                ),
                hash_key(key),
            ),
        )
    page.goto(demo_server.base_url + "sessions/")
    assert page.url.startswith(demo_server.base_url + "accounts/login/")
    # The demo's page has other live regions (the consent banner's).
    status = page.get_by_role("status").filter(
        has_text="signed out after a period of inactivity"
    )
    # Read first: the message has the focus, not the username field.
    assert status.evaluate("(el) => el === document.activeElement")
    page.set_viewport_size({"width": 320, "height": 640})
    assert_accessible(page)
    page.keyboard.press("Tab")
    assert page.get_by_label("Username").evaluate(
        "(el) => el === document.activeElement"
    )
    assert_clean(tab)


def test_demo_language_switch_and_dark_colours(
    demo_server: DemoServer,  # noqa: F811
    demo_browser: Browser,
) -> None:
    tab = open_tab(new_context(demo_browser))
    page = tab.page
    page.goto(demo_server.base_url + "accounts/login/")
    # A fresh sign-in page: the username field has the focus.
    assert page.get_by_label("Username").evaluate(
        "(el) => el === document.activeElement"
    )
    assert_accessible(page)
    demo_sign_in(page, demo_server)
    page.wait_for_url(demo_server.base_url)
    page.goto(demo_server.base_url + "sessions/")
    page.emulate_media(color_scheme="dark")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background != "rgb(255, 255, 255)"
    assert_accessible(page)

    page.get_by_label("Language").select_option("de")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(demo_server.base_url + "sessions/")
    assert page.locator("html").get_attribute("lang") == "de"
    # Each language is offered under its own name (and its own lang).
    language = page.locator("select[name=language]")
    assert language.input_value() == "de"
    assert language.locator("option[value=fr]").get_attribute("lang") == "fr"
    language.select_option("en")
    page.locator(".language-form button").click()
    page.wait_for_url(demo_server.base_url + "sessions/")
    assert page.locator("html").get_attribute("lang") == "en"
    assert_clean(tab)


def test_labels_french_colon_has_no_break_space(
    server: LiveServer, browser: Browser, problems: list[str]
) -> None:
    tab = signed_in(browser, server, problems)
    page = tab.page
    colon = "(el) => getComputedStyle(el, '::after').content"
    label = page.locator(".sessionkit-device__facts dt").first
    assert label.evaluate(colon) == '":"'
    page.evaluate("document.documentElement.lang = 'fr'")
    assert label.evaluate(colon) == '"\u00a0:"'
    assert problems == []
