"""Helpers for the tests in a real browser: Debian's headless Chromium, driven
by Playwright, against a live Django server on the loopback interface.

Chromium is never downloaded: ``scripts/ensure-chromium`` installs Debian's
package (``/usr/bin/chromium``; ``SESSIONKIT_CHROMIUM`` names another binary),
and the tests fail, not skip, without it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import ThreadedWSGIServer
from django.db import connections
from django.test.testcases import QuietWSGIRequestHandler

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("SESSIONKIT_CHROMIUM", "/usr/bin/chromium")
# Playwright adds --headless and a fresh, empty --user-data-dir of its own.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# Collects Content-Security-Policy violations; Playwright injects it through
# the DevTools protocol, which the page's CSP does not govern.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


def require_chromium() -> None:
    """Fail with the way to install what the browser tests need."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"The browser tests need Chromium at {CHROMIUM}, which is missing. "
            "Install it with: sudo scripts/ensure-chromium (Debian/Ubuntu: "
            "apt-get install --no-install-recommends chromium), or set "
            "SESSIONKIT_CHROMIUM to a Chromium binary. Never `playwright "
            "install`: the tests use the system's Chromium.",
            pytrace=False,
        )
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.fail(
            "The browser tests need Playwright's Python package: "
            'pip install -e ".[test]" (or pip install playwright). Its browser '
            "download (`playwright install`) is not needed.",
            pytrace=False,
        )


@contextmanager
def chromium(monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    """A headless Chromium for one test.

    Playwright's synchronous API keeps an event loop running in this thread,
    which makes Django refuse ORM calls here; the test's own database checks
    run while no coroutine touches the database, so they are allowed for the
    test's duration only. The browser is closed before the test database is
    cleaned up.
    """
    require_chromium()
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


class LiveServer:
    """Django on a free loopback port, in a thread of this process, so that
    ``settings`` overrides apply to it.

    Like ``LiveServerTestCase`` it shares an in-memory SQLite database with the
    test; requests are handled one at a time (connections are still accepted
    in parallel, so an idle browser socket blocks nothing), and the test reads
    the database under the same lock.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._overrides = {
            conn.alias: conn
            for conn in connections.all()
            if conn.vendor == "sqlite" and conn.is_in_memory_db()
        }
        for conn in self._overrides.values():
            conn.inc_thread_sharing()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._httpd: ThreadedWSGIServer | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._ready.wait(timeout=30)
        if self._httpd is None:
            raise RuntimeError(f"The live server did not start: {self._error!r}")
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def _serve(self) -> None:
        for alias, conn in self._overrides.items():
            connections[alias] = conn
        try:
            handler = WSGIHandler()

            def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
                with self.lock:
                    return handler(environ, start_response)

            httpd = ThreadedWSGIServer(
                ("127.0.0.1", 0),
                QuietWSGIRequestHandler,
                allow_reuse_address=False,
                connections_override=self._overrides,
            )
            httpd.set_app(app)
            self._httpd = httpd
        except BaseException as exc:  # reported by __init__
            self._error = exc
            return
        finally:
            self._ready.set()
        httpd.serve_forever(poll_interval=0.1)

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        self._thread.join(timeout=10)
        for conn in self._overrides.values():
            conn.dec_thread_sharing()


@dataclass
class Tab:
    """A page, with what its console and the CSP reported."""

    page: Page
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def violations(self) -> list[str]:
        """CSP violations of the current document and any logged before."""
        logged = [text for text in self.console if "Content Security Policy" in text]
        recorded: list[str] = self.page.evaluate("window.__cspViolations || []")
        return logged + recorded


def open_tab(context: BrowserContext) -> Tab:
    page = context.new_page()
    page.set_default_timeout(15_000)
    tab = Tab(page)

    def on_console(message: ConsoleMessage) -> None:
        tab.console.append(f"{message.type}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: tab.errors.append(str(error)))
    return tab


def new_context(browser: Browser, *, init_script: str = "") -> BrowserContext:
    context = browser.new_context(locale="en-US")
    context.add_init_script(RECORD_VIOLATIONS + init_script)
    return context
