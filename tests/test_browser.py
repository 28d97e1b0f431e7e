"""The idle warning in a real browser (Debian's headless Chromium).

Pages of ``tests.urls_browser`` are served by a live server in this process
under a strict Content-Security-Policy, with timeouts of a few seconds; the
demo site is checked the same way through its own ``runserver``.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User

from django_sessionkit.models import Session
from tests.browser import LiveServer, Tab, chromium, new_context, open_tab
from tests.test_demo import (  # noqa: F401 - fixtures
    DemoServer,
    demo_server,
    migrated_db,
    workdir,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator

IDLE = 6.0
WARN = 3.0
STRICT_CSP = ("script-src 'self'", "style-src 'self'", "default-src 'self'")


@pytest.fixture
def server(transactional_db: None, settings: Any) -> Iterator[LiveServer]:
    settings.ROOT_URLCONF = "tests.urls_browser"
    settings.STATIC_URL = "/static/"
    settings.LOGIN_URL = "/signin/"
    settings.SESSIONKIT_IDLE_TIMEOUT = IDLE
    settings.SESSIONKIT_IDLE_WARNING = WARN
    settings.SESSIONKIT_ACTIVITY_RESOLUTION = 0
    # Files and the favicon are not the visitor's activity.
    settings.SESSIONKIT_PASSIVE_URLS = [r"^/static/", r"^/favicon\.ico$"]
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


def sign_in(tab: Tab, server: LiveServer) -> None:
    """Sign in through the form, from the page that asked for it."""
    response = tab.page.goto(f"{server.url}/page/")
    assert response is not None
    assert tab.page.url == f"{server.url}/signin/?next=/page/"
    tab.page.get_by_label("Username").fill("alice")
    tab.page.get_by_label("Password").fill("pw")
    tab.page.get_by_role("button", name="Sign in").click()
    tab.page.wait_for_url(f"{server.url}/page/")


def row(server: LiveServer) -> Session:
    with server.lock:
        return Session.objects.get()


def warning(tab: Tab, name: str = "Are you still there?") -> Locator:
    return tab.page.get_by_role("alertdialog", name=name)


def stay_button(tab: Tab) -> Locator:
    return tab.page.get_by_role("button", name="Stay signed in")


def seconds_left(tab: Tab, kind: str = "idle") -> int:
    text = tab.page.locator(f"#{kind}").inner_text()
    match = re.fullmatch(r"(\d+):(\d\d)", text)
    assert match, f"countdown shows {text!r}"
    return int(match.group(1)) * 60 + int(match.group(2))


def assert_clean(*tabs: Tab) -> None:
    for tab in tabs:
        if not tab.page.is_closed():
            assert tab.violations() == []
        assert [t for t in tab.console if "Content Security Policy" in t] == []
        assert tab.errors == []


# -- One tab -------------------------------------------------------------------


def test_page_has_strict_csp_and_hidden_warning(
    server: LiveServer, browser: Browser
) -> None:
    tab = open_tab(new_context(browser))
    sign_in(tab, server)
    response = tab.page.goto(f"{server.url}/page/")
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert all(directive in csp for directive in STRICT_CSP)
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    expect_hidden(tab.page.locator("#sessionkit-idle-warning"))
    # Both deadlines count down: idle from the last request, absolute from
    # the sign-in (12 hours by default).
    first = seconds_left(tab)
    assert IDLE - 2 <= first <= IDLE
    absolute = tab.page.locator("#absolute").inner_text()
    assert re.fullmatch(r"1[12]:\d\d:\d\d", absolute), absolute
    tab.page.wait_for_timeout(1200)
    assert seconds_left(tab) < first
    assert_clean(tab)


def test_warning_shows_before_expiry_and_stay_signed_in_extends(
    server: LiveServer, browser: Browser
) -> None:
    tab = open_tab(new_context(browser))
    sign_in(tab, server)
    before = row(server)
    tab.page.locator("#text").focus()
    expect_visible(warning(tab), timeout=IDLE)
    assert 0 < seconds_left(tab) <= WARN
    # Focus stays in the field being typed in; the warning is announced.
    assert tab.page.evaluate("document.activeElement.id") == "text"
    expect_text(announcer(tab), "Are you still there?")
    # Still signed in: the warning came before the deadline.
    assert row(server).pk == before.pk

    stay_button(tab).click()
    expect_hidden(warning(tab), timeout=3)
    after = row(server)
    assert after.pk == before.pk
    assert after.expire_date > before.expire_date
    assert after.absolute_expire_date is not None
    assert after.expire_date <= after.absolute_expire_date
    assert seconds_left(tab) > WARN
    # The focus went back where it was.
    assert tab.page.evaluate("document.activeElement.id") == "text"
    assert tab.page.url == f"{server.url}/page/"
    assert_clean(tab)


def test_no_action_moves_to_sign_in_after_expiry(
    server: LiveServer, browser: Browser
) -> None:
    tab = open_tab(new_context(browser))
    sign_in(tab, server)
    expect_visible(warning(tab), timeout=IDLE)
    started = time.monotonic()
    signin = f"{server.url}/signin/?next=/page/"
    tab.page.wait_for_url(signin, timeout=(IDLE + 5) * 1000)
    assert time.monotonic() - started <= WARN + 3
    with server.lock:
        assert not Session.objects.exists()
    assert tab.page.get_by_role("button", name="Sign in").is_visible()
    assert_clean(tab)


def test_keep_alive_never_passes_absolute_deadline(
    server: LiveServer, browser: Browser, settings: Any
) -> None:
    settings.SESSIONKIT_IDLE_TIMEOUT = 5
    settings.SESSIONKIT_IDLE_WARNING = 4
    settings.SESSIONKIT_ABSOLUTE_TIMEOUT = 6
    tab = open_tab(new_context(browser))
    sign_in(tab, server)
    expect_visible(warning(tab), timeout=5)
    stay_button(tab).click()
    ending = warning(tab, "Your session is ending")
    expect_visible(ending, timeout=5)
    record = row(server)
    assert record.absolute_expire_date is not None
    assert record.expire_date == record.absolute_expire_date
    # "Stay signed in" cannot help any more; the countdown is the absolute one.
    assert not stay_button(tab).is_visible()
    assert "maximum length" in ending.inner_text()
    tab.page.wait_for_url(f"{server.url}/signin/?next=/page/", timeout=8000)
    assert_clean(tab)


def test_keep_alive_after_sign_out_moves_to_sign_in(
    server: LiveServer, browser: Browser
) -> None:
    context = new_context(browser)
    tab = open_tab(context)
    sign_in(tab, server)
    expect_visible(warning(tab), timeout=IDLE)
    # Signed out meanwhile (another tab, or an administrator).
    with server.lock:
        Session.objects.all().delete()
    stay_button(tab).click()
    tab.page.wait_for_url(f"{server.url}/signin/?next=/page/", timeout=5000)
    assert_clean(tab)


# -- Accessibility -------------------------------------------------------------

AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
ACTIVE = "document.activeElement"
DURATION = r"PT(1M|1M\d+S|\d+S)"  # 0 to 1:59, as <time datetime> writes it
# Computed colours of an element's text and of the background behind it.
COLOURS = """(element) => {
  let behind = element;
  while (behind && getComputedStyle(behind).backgroundColor === "rgba(0, 0, 0, 0)") {
    behind = behind.parentElement;
  }
  return [getComputedStyle(element).color, getComputedStyle(behind).backgroundColor];
}"""


def contrast(colours: list[str]) -> float:
    """WCAG 2 contrast ratio of two opaque ``rgb()`` colours."""

    def luminance(colour: str) -> float:
        rgb = [int(c) / 255 for c in re.findall(r"\d+", colour)[:3]]
        linear = [
            c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb
        ]
        r, g, b = linear
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    light, dark = sorted(map(luminance, colours), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def open_form(tab: Tab, server: LiveServer) -> None:
    """Sign in and open the form page (fields high and low, a header countdown)."""
    sign_in(tab, server)
    tab.page.goto(f"{server.url}/form/")


def announcer(tab: Tab) -> Locator:
    return tab.page.locator("[data-sessionkit-announce]")


def card(tab: Tab) -> Locator:
    return tab.page.locator("#sessionkit-idle-warning")


def signed_in(tab: Tab, server: LiveServer) -> bool:
    """Asked of the server: the status endpoint, and the session's row."""
    status = tab.page.evaluate("fetch('/sessions/status/').then((r) => r.status)")
    with server.lock:
        return status == 200 and Session.objects.count() == 1


def final_state_soon(settings: Any) -> None:
    """The session ends at its absolute deadline, warned about from the start."""
    settings.SESSIONKIT_ABSOLUTE_TIMEOUT = 9
    settings.SESSIONKIT_IDLE_TIMEOUT = 60
    settings.SESSIONKIT_IDLE_WARNING = 7


def test_final_state_focuses_card_and_keys_never_sign_out(
    server: LiveServer, browser: Browser, settings: Any
) -> None:
    final_state_soon(settings)
    tab = open_tab(new_context(browser))
    sign_in(tab, server)
    expect_visible(warning(tab, "Your session is ending"), timeout=5)
    assert tab.page.evaluate(f"{ACTIVE}.id") == "sessionkit-idle-warning"
    assert tab.page.evaluate(f"{ACTIVE}.tagName") != "BUTTON"
    # The keys a person typing would press next.
    tab.page.keyboard.press("Space")
    tab.page.keyboard.press("Enter")
    tab.page.keyboard.type("still typing")
    assert tab.page.url == f"{server.url}/page/"
    assert signed_in(tab, server)
    assert_clean(tab)


@pytest.mark.parametrize("field", ["top", "notes", "editor"])
def test_warning_keeps_focus_in_field_being_typed_in(
    server: LiveServer, browser: Browser, field: str
) -> None:
    tab = open_tab(new_context(browser))
    open_form(tab, server)
    tab.page.locator(f"#{field}").focus()
    tab.page.keyboard.type("abc")
    expect_visible(warning(tab), timeout=IDLE)
    assert tab.page.evaluate(f"{ACTIVE}.id") == field
    expect_text(announcer(tab), "Are you still there?")
    expect_text(announcer(tab), "end of the page")
    tab.page.keyboard.type("def")
    typed = tab.page.locator(f"#{field}")
    value = typed.inner_text() if field == "editor" else typed.input_value()
    assert value == "abcdef"
    assert_clean(tab)


def test_final_state_keeps_focus_in_field_being_typed_in(
    server: LiveServer, browser: Browser, settings: Any
) -> None:
    final_state_soon(settings)
    tab = open_tab(new_context(browser))
    open_form(tab, server)
    tab.page.locator("#notes").focus()
    expect_visible(warning(tab, "Your session is ending"), timeout=5)
    tab.page.keyboard.type("a b\nc")
    assert tab.page.evaluate(f"{ACTIVE}.id") == "notes"
    assert tab.page.locator("#notes").input_value() == "a b\nc"
    expect_text(announcer(tab), "Your session is ending")
    assert signed_in(tab, server)
    assert_clean(tab)


@pytest.mark.parametrize("start", ["page", "field"])
def test_escape_closes_warning(
    server: LiveServer, browser: Browser, start: str
) -> None:
    tab = open_tab(new_context(browser))
    open_form(tab, server)
    if start == "field":
        tab.page.locator("#top").focus()
    expect_visible(warning(tab), timeout=IDLE)
    tab.page.keyboard.press("Escape")
    expect_hidden(card(tab), timeout=2)
    if start == "field":
        assert tab.page.evaluate(f"{ACTIVE}.id") == "top"
    else:
        assert tab.page.evaluate(f"{ACTIVE} === document.body")
    # Closing is not "Stay signed in": the session still ends on time.
    tab.page.wait_for_url(re.compile(r"/signin/"), timeout=(IDLE + 5) * 1000)
    assert_clean(tab)


@pytest.mark.parametrize("field", ["top", "notes", "bottom", "button"])
def test_warning_never_covers_focused_element_at_320(
    server: LiveServer, browser: Browser, field: str
) -> None:
    context = new_context(browser)
    tab = open_tab(context)
    tab.page.set_viewport_size({"width": 320, "height": 568})
    open_form(tab, server)
    tab.page.locator(f"#{field}").focus()
    expect_visible(warning(tab), timeout=IDLE)
    focused = tab.page.locator("*:focus")
    box = focused.bounding_box()
    shown = card(tab).bounding_box()
    assert box is not None and shown is not None
    assert shown["y"] >= 0 and shown["y"] + shown["height"] <= 568
    assert shown["x"] >= 0 and shown["x"] + shown["width"] <= 320
    if field != "button":  # a button is left: the card itself takes the focus
        overlap_y = min(box["y"] + box["height"], shown["y"] + shown["height"]) - max(
            box["y"], shown["y"]
        )
        assert overlap_y <= 0, (box, shown)
        assert tab.page.evaluate(f"{ACTIVE}.id") == field
    else:
        assert tab.page.evaluate(f"{ACTIVE}.id") == "sessionkit-idle-warning"
    assert_clean(tab)


def test_countdown_is_a_duration_and_screen_readers_hear_thresholds(
    server: LiveServer, browser: Browser, settings: Any
) -> None:
    settings.SESSIONKIT_IDLE_TIMEOUT = 63
    context = new_context(
        browser,
        init_script="""
        window.__announced = [];
        new MutationObserver((changes) => {
          const region = document.querySelector("[data-sessionkit-announce]");
          const said = region ? region.textContent.trim() : "";
          if (said && changes.some((change) => region.contains(change.target))) {
            window.__announced.push(said);
          }
        }).observe(document, {subtree: true, childList: true, characterData: true});
        """,
    )
    tab = open_tab(context)
    open_form(tab, server)
    header = tab.page.locator("#header-countdown")
    assert re.fullmatch(DURATION, header.get_attribute("datetime") or "")
    assert header.get_attribute("aria-hidden") == "true"
    # What a screen reader reads instead changes only at minutes.
    spoken = tab.page.locator("#header-countdown + [data-sessionkit-countdown-text]")
    assert spoken.inner_text() == "2 minutes"
    expect_text(announcer(tab), "You will be signed out in 1 minute.", timeout=8)
    assert spoken.inner_text() == "1 minute"
    assert re.fullmatch(DURATION, header.get_attribute("datetime") or "")
    tab.page.wait_for_timeout(2000)
    assert tab.page.evaluate("window.__announced") == [
        "You will be signed out in 1 minute."
    ]
    assert_clean(tab)


def test_countdown_toggle_hides_and_shows_ticking(
    server: LiveServer, browser: Browser
) -> None:
    tab = open_tab(new_context(browser))
    open_form(tab, server)
    header = tab.page.locator("#header-countdown")
    hide = tab.page.get_by_role("button", name="Hide countdown")
    expect_visible(hide)
    expect_visible(header)
    hide.click()
    expect_hidden(header)
    show = tab.page.get_by_role("button", name="Show countdown")
    expect_visible(show)
    # The choice is kept for the next page.
    tab.page.reload()
    expect_hidden(header)
    show.click()
    expect_visible(header)
    expect_visible(hide)
    assert_clean(tab)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("state", ["warning", "final"])
def test_idle_warning_has_no_axe_violations(
    server: LiveServer, browser: Browser, settings: Any, scheme: str, state: str
) -> None:
    """axe-core's WCAG 2.1 A/AA rules, run with ``page.evaluate`` (DevTools
    evaluation, which the page's Content-Security-Policy does not govern)."""
    from axe_playwright_python.sync_playwright import Axe

    if state == "final":
        final_state_soon(settings)
    tab = open_tab(new_context(browser))
    tab.page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
    open_form(tab, server)
    title = "Are you still there?" if state == "warning" else "Your session is ending"
    expect_visible(warning(tab, title), timeout=IDLE)
    if state == "warning":
        # The error line too: the server cannot be reached.
        tab.page.route("**/sessions/keep-alive/", lambda route: route.abort())
        stay_button(tab).click()
        expect_visible(tab.page.locator("[data-sessionkit-error]"))
    background = tab.page.evaluate(
        "getComputedStyle(document.querySelector('#sessionkit-idle-warning'))"
        ".backgroundColor"
    )
    assert (background == "rgb(255, 255, 255)") is (scheme == "light"), background
    # axe leaves text on a fixed card "incomplete" at times: measured here too.
    for element in tab.page.locator(
        "#sessionkit-idle-warning :is(h2, p, button):visible"
    ).all():
        colours = element.evaluate(COLOURS)
        assert contrast(colours) >= 4.5, (element.inner_text(), colours)
    results = Axe().run(
        tab.page,
        options={"runOnly": {"type": "tag", "values": AXE_TAGS}},
    )
    assert results.violations_count == 0, results.generate_report()
    tab.errors.clear()  # the aborted keep-alive is logged as failed
    assert tab.violations() == []


# -- Several tabs --------------------------------------------------------------


@pytest.mark.parametrize(
    "init_script",
    ["", "delete window.BroadcastChannel;"],
    ids=["broadcast_channel", "storage_event_fallback"],
)
def test_tabs_agree_stay_signed_in_in_one_hides_warning_in_other(
    server: LiveServer, browser: Browser, init_script: str
) -> None:
    context = new_context(browser, init_script=init_script)
    first, second = open_tab(context), open_tab(context)
    sign_in(first, server)
    second.page.goto(f"{server.url}/page/")
    has_channel = second.page.evaluate("typeof BroadcastChannel !== 'undefined'")
    assert has_channel is (init_script == "")
    # The second page load moved the deadline; the first tab learnt it.
    assert abs(seconds_left(first) - seconds_left(second)) <= 1
    expect_visible(warning(first), timeout=IDLE)
    expect_visible(warning(second), timeout=2)

    stay_button(first).click()
    expect_hidden(warning(first), timeout=3)
    expect_hidden(warning(second), timeout=3)
    assert abs(seconds_left(first) - seconds_left(second)) <= 1
    assert seconds_left(second) > WARN
    assert_clean(first, second)


def test_activity_elsewhere_postpones_warning(
    server: LiveServer, browser: Browser
) -> None:
    """A request the tab never heard of (no idle warning on that page) counts:
    the tab asks the server before it warns."""
    context = new_context(browser)
    tab, other = open_tab(context), open_tab(context)
    sign_in(tab, server)
    tab.page.wait_for_timeout(1500)
    other.page.goto(f"{server.url}/nothing/")
    active = time.monotonic()
    expect_visible(warning(tab), timeout=IDLE + 2)
    assert time.monotonic() - active >= IDLE - WARN - 0.5
    assert_clean(tab)


def test_expiry_in_one_tab_signs_out_the_other(
    server: LiveServer, browser: Browser
) -> None:
    context = new_context(browser)
    first, second = open_tab(context), open_tab(context)
    sign_in(first, server)
    second.page.goto(f"{server.url}/page/")
    first.page.wait_for_url(re.compile(r"/signin/"), timeout=(IDLE + 5) * 1000)
    second.page.wait_for_url(re.compile(r"/signin/"), timeout=5000)
    assert_clean(first, second)


# -- The demo ------------------------------------------------------------------


@pytest.fixture
def demo_browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    with chromium(monkeypatch) as launched:
        yield launched


@pytest.mark.parametrize("remember", [False, True], ids=["session", "remember_me"])
def test_demo_shows_both_deadlines_counting_down(
    demo_server: DemoServer,  # noqa: F811
    demo_browser: Browser,
    remember: bool,
) -> None:
    tab = open_tab(new_context(demo_browser))
    page = tab.page
    response = page.goto(demo_server.base_url + "accounts/login/")
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert all(directive in csp for directive in STRICT_CSP)
    page.get_by_label("Username").fill("demo")
    page.get_by_label("Password").fill(demo_server.password)
    if remember:
        page.get_by_label("Remember me").check()
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(demo_server.base_url)

    idle = page.locator('.session-clock [data-sessionkit-countdown="idle"]')
    absolute = page.locator('.session-clock [data-sessionkit-countdown="absolute"]')
    first = idle.inner_text(), absolute.inner_text()
    page.wait_for_timeout(1500)
    assert idle.inner_text() != first[0]
    assert absolute.inner_text() != first[1]
    if remember:
        assert "days" in absolute.inner_text()
    else:
        assert re.fullmatch(r"\d+:\d\d(:\d\d)?", absolute.inner_text())
    assert page.locator("#sessionkit-idle-warning").is_hidden()
    page.goto(demo_server.base_url + "admin/")
    assert page.get_by_role("heading", name="Site administration").is_visible()
    assert_clean(tab)
    with sqlite3.connect(demo_server.db_path) as conn:
        newest = conn.execute(
            "SELECT remember_me FROM sessionkit_session ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert newest == (int(remember),)


# -- Expectations with timeouts in seconds -------------------------------------


def expect_visible(locator: Locator, *, timeout: float = 5) -> None:
    from playwright.sync_api import expect

    expect(locator).to_be_visible(timeout=timeout * 1000)


def expect_text(locator: Locator, text: str, *, timeout: float = 5) -> None:
    from playwright.sync_api import expect

    expect(locator).to_contain_text(text, timeout=timeout * 1000)


def expect_hidden(locator: Locator, *, timeout: float = 5) -> None:
    from playwright.sync_api import expect

    expect(locator).to_be_hidden(timeout=timeout * 1000)
