"""The idle warning (``idle_warning.py``): when it shows, what it carries, and
the keep-alive and status endpoints its script calls.

The warning is rendered by ``{% sessionkit_idle_warning %}`` on pages of
``tests.urls_browser``, for requests that went through the whole middleware
stack, so the deadlines are the real ones.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from django_sessionkit.idle_warning import csrf_header_name, idle_warning_context
from django_sessionkit.models import Session
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db


class Elements(HTMLParser):
    """Every start tag of a page, with its attributes."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))

    def first(self, tag: str, **attrs: str | None) -> dict[str, str | None]:
        for name, found in self.found:
            if name == tag and all(found.get(k) == v for k, v in attrs.items()):
                return found
        raise AssertionError(f"no <{tag} {attrs}> in {self.found}")


@pytest.fixture(autouse=True)
def _urls(settings: Any) -> None:
    settings.ROOT_URLCONF = "tests.urls_browser"
    settings.STATIC_URL = "/static/"
    settings.LOGIN_URL = "/signin/"


def sign_in(client: Client) -> Session:
    """Sign ``client`` in as alice (of ``tests/conftest.py``)."""
    response = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    return Session.objects.get()


def signed_in() -> Client:
    """A new browser, signed in as alice."""
    client = Client()
    sign_in(client)
    return client


def warning_of(html: str) -> dict[str, str | None]:
    return Elements(html).first("div", id="sessionkit-idle-warning")


def idle_deadline_shown(client: Client) -> datetime:
    return when(warning_of(client.get("/tag/").content.decode())["data-idle-deadline"])


def when(value: str | None) -> datetime:
    assert value
    return datetime.fromisoformat(value)


# -- Nothing to warn about ------------------------------------------------------------


def test_idle_warning_anonymous_renders_nothing(client: Client) -> None:
    response = client.get("/tag/")
    assert response.status_code == 200
    assert response.content == b""
    assert not Session.objects.exists()


def test_idle_warning_setting_none_renders_nothing(
    client: Client, alice: User, settings: Any
) -> None:
    sign_in(client)
    settings.SESSIONKIT_IDLE_WARNING = None
    assert client.get("/tag/").content == b""


def test_idle_warning_without_limits_renders_nothing(
    client: Client, alice: User, settings: Any
) -> None:
    settings.SESSIONKIT_IDLE_TIMEOUT = None
    settings.SESSIONKIT_ABSOLUTE_TIMEOUT = None
    sign_in(client)
    assert client.get("/tag/").content == b""


def test_idle_warning_signed_out_renders_nothing(client: Client, alice: User) -> None:
    sign_in(client)
    client.post("/logout/")
    assert client.get("/tag/").content == b""


def test_idle_warning_context_is_plain_function(rf: Any) -> None:
    request = rf.get("/")
    assert idle_warning_context(request) is None


# -- The warning ----------------------------------------------------------------------


def test_idle_warning_signed_in_carries_deadlines_of_session(
    client: Client, alice: User
) -> None:
    sign_in(client)
    response = client.get("/tag/")
    attrs = warning_of(response.content.decode())
    record = Session.objects.get()
    assert when(attrs["data-idle-deadline"]) == record.expire_date
    assert when(attrs["data-absolute-deadline"]) == record.absolute_expire_date
    assert record.absolute_expire_date is not None
    now = when(attrs["data-now"])
    assert now.utcoffset() == timedelta(0)
    assert record.last_seen_at <= now < record.expire_date
    assert record.expire_date == record.last_seen_at + timedelta(minutes=30)


def test_idle_warning_idle_deadline_never_past_absolute(
    client: Client, alice: User, settings: Any
) -> None:
    settings.SESSIONKIT_ABSOLUTE_TIMEOUT = timedelta(minutes=5)
    sign_in(client)
    attrs = warning_of(client.get("/tag/").content.decode())
    assert attrs["data-idle-deadline"] == attrs["data-absolute-deadline"]


def test_idle_warning_without_absolute_timeout_leaves_it_empty(
    client: Client, alice: User, settings: Any
) -> None:
    settings.SESSIONKIT_ABSOLUTE_TIMEOUT = None
    sign_in(client)
    attrs = warning_of(client.get("/tag/").content.decode())
    assert attrs["data-absolute-deadline"] == ""
    assert when(attrs["data-idle-deadline"]) == Session.objects.get().expire_date


def test_idle_warning_is_hidden_accessible_dialog(client: Client, alice: User) -> None:
    sign_in(client)
    html = client.get("/tag/").content.decode()
    attrs = warning_of(html)
    assert "hidden" in attrs
    assert attrs["role"] == "alertdialog"
    assert attrs["aria-labelledby"] == "sessionkit-idle-warning-title"
    assert attrs["aria-describedby"] == "sessionkit-idle-warning-message"
    elements = Elements(html)
    elements.first("h2", id="sessionkit-idle-warning-title")
    elements.first("div", id="sessionkit-idle-warning-message")
    button = elements.first("button", **{"data-sessionkit-action": "keep-alive"})
    assert button["type"] == "button"
    assert "Stay signed in" in html
    elements.first("a", href="/signin/?next=/tag/")


def test_idle_warning_focuses_card_and_carries_words_of_script(
    client: Client, alice: User
) -> None:
    """The card itself takes the focus (never a button); the script's words
    are translated in the template, and said through a live region outside
    the hidden card."""
    sign_in(client)
    html = client.get("/tag/").content.decode()
    attrs = warning_of(html)
    assert attrs["tabindex"] == "-1"
    assert attrs["data-announce-time"] == "You will be signed out in {time}."
    assert "end of the page" in (attrs["data-announce-typing"] or "")
    assert attrs["data-hide-countdown"] == "Hide countdown"
    assert attrs["data-show-countdown"] == "Show countdown"
    (region,) = [
        attrs
        for _, attrs in Elements(html).found
        if "data-sessionkit-announce" in attrs
    ]
    assert region["role"] == "status"
    assert "hidden" not in region
    assert html.index("data-sessionkit-announce") > html.index("</div>")


def test_idle_warning_warns_setting_seconds_before(
    client: Client, alice: User, settings: Any
) -> None:
    sign_in(client)
    assert warning_of(client.get("/tag/").content.decode())["data-warn-before"] == "120"
    settings.SESSIONKIT_IDLE_WARNING = 2.5
    assert warning_of(client.get("/tag/").content.decode())["data-warn-before"] == "2.5"


def test_idle_warning_urls(client: Client, alice: User) -> None:
    sign_in(client)
    attrs = warning_of(client.get("/tag/?a=1&b=2").content.decode())
    assert attrs["data-keep-alive-url"] == "/sessions/keep-alive/"
    assert attrs["data-status-url"] == "/sessions/status/"
    assert attrs["data-login-url"] == "/signin/?next=/tag/%3Fa%3D1%26b%3D2"


def test_idle_warning_login_url_keeps_its_query(
    client: Client, alice: User, settings: Any
) -> None:
    settings.LOGIN_URL = "/signin/?lang=en"
    sign_in(client)
    attrs = warning_of(client.get("/tag/").content.decode())
    assert attrs["data-login-url"] == "/signin/?lang=en&next=/tag/"


def test_idle_warning_csrf_token_is_accepted_by_keep_alive(
    alice: User, settings: Any
) -> None:
    client = Client(enforce_csrf_checks=True)
    sign_in(client)
    attrs = warning_of(client.get("/tag/").content.decode())
    assert attrs["data-csrf-header"] == "X-Csrftoken"
    token = attrs["data-csrf-token"]
    assert token
    refused = client.post("/sessions/keep-alive/")
    assert refused.status_code == 403
    response = client.post("/sessions/keep-alive/", headers={"X-CSRFToken": token})
    assert response.status_code == 200
    assert set(json.loads(response.content)) == {
        "now",
        "idle_deadline",
        "absolute_deadline",
    }


def test_csrf_header_name_follows_setting(settings: Any) -> None:
    assert csrf_header_name() == "X-Csrftoken"
    settings.CSRF_HEADER_NAME = "HTTP_X_XSRF_TOKEN"
    assert csrf_header_name() == "X-Xsrf-Token"


def test_idle_warning_script_and_style_are_files(client: Client, alice: User) -> None:
    sign_in(client)
    html = client.get("/tag/").content.decode()
    elements = Elements(html)
    script = elements.first("script")
    assert script["src"] == "/static/django_sessionkit/idle-warning.js"
    assert "defer" in script
    link = elements.first("link", rel="stylesheet")
    assert link["href"] == "/static/django_sessionkit/idle-warning.css"
    # Nothing a strict CSP (script-src 'self'; style-src 'self') would block.
    assert re.findall(r"<script[^>]*>(.*?)</script>", html, re.DOTALL) == [""]
    assert "<style" not in html
    assert " style=" not in html
    assert re.search(r"\son[a-z]+=", html) is None


def test_idle_warning_logout_url_adds_sign_out_form(
    client: Client, alice: User
) -> None:
    sign_in(client)
    plain = client.get("/tag/").content.decode()
    assert "Sign out" not in plain
    html = client.get("/page/").content.decode()
    form = Elements(html).first("form", action="/logout/")
    assert form["method"] == "post"
    token = Elements(html).first("input", name="csrfmiddlewaretoken")
    assert token["value"] == warning_of(html)["data-csrf-token"]
    assert "Sign out" in html


def test_idle_warning_is_passive_for_status_but_not_for_page(
    client: Client, alice: User, settings: Any
) -> None:
    """The page's deadline is the one the page's own request leaves behind."""
    settings.SESSIONKIT_ACTIVITY_RESOLUTION = 0
    sign_in(client)
    first = idle_deadline_shown(client)
    second = idle_deadline_shown(client)
    assert second > first
    assert Session.objects.get().expire_date == second
    status = json.loads(client.get("/sessions/status/").content)
    assert datetime.fromisoformat(status["idle_deadline"]) == second


# -- Keep-alive and status: the JSON the warning's script reads -----------------------


@pytest.mark.parametrize("use_tz", [True, False])
@pytest.mark.parametrize("method", ["post", "get"])
def test_deadlines_json_is_utc_whatever_use_tz(
    alice: User, settings: Any, use_tz: bool, method: str
) -> None:
    settings.USE_TZ = use_tz
    client = signed_in()
    url = "/sessions/keep-alive/" if method == "post" else "/sessions/status/"
    body = getattr(client, method)(url).json()
    values = [
        datetime.fromisoformat(body[k])
        for k in ("now", "idle_deadline", "absolute_deadline")
    ]
    assert all(v.utcoffset() == timedelta(0) for v in values)
    now, idle, absolute = values
    assert now < idle <= absolute
    row = Session.objects.get()
    assert absolute.replace(tzinfo=None) == (
        row.absolute_expire_date.replace(tzinfo=None)  # type: ignore[union-attr]
    )


def test_deadlines_json_when_signed_out() -> None:
    client = Client()
    assert client.get("/sessions/status/").status_code == 401
    assert client.post("/sessions/keep-alive/").json() == {"error": "not_signed_in"}


def test_keep_alive_without_csrf_token_json_403(alice: User) -> None:
    client = signed_in()
    checked = Client(enforce_csrf_checks=True)
    checked.cookies = client.cookies
    # The idle warning's script, and any client: these views only speak JSON.
    for headers in ({}, {"Accept": "text/html"}, {"Accept": "application/json"}):
        response = checked.post("/sessions/keep-alive/", headers=headers)
        assert response.status_code == 403
        assert response["Content-Type"] == "application/json"
        assert response.json() == {"error": "csrf_failed"}


def test_keep_alive_with_csrf_token_passes(alice: User) -> None:
    client = signed_in()
    checked = Client(enforce_csrf_checks=True)
    checked.cookies = client.cookies
    assert checked.get("/sessions/status/").status_code == 200
    token = checked.cookies[settings.CSRF_COOKIE_NAME].value
    response = checked.post("/sessions/keep-alive/", headers={"X-CSRFToken": token})
    assert response.status_code == 200
    assert "idle_deadline" in response.json()


def test_keep_alive_csrf_from_other_origin_json_403(alice: User) -> None:
    client = signed_in()
    checked = Client(enforce_csrf_checks=True)
    checked.cookies = client.cookies
    checked.get("/sessions/status/")
    token = checked.cookies[settings.CSRF_COOKIE_NAME].value
    response = checked.post(
        "/sessions/keep-alive/",
        headers={"X-CSRFToken": token, "Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert response.json() == {"error": "csrf_failed"}
