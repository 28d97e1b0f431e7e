"""The user's own sessions page: listing, JSON, actions, ownership, export.

Every request goes through the real middleware stack with the test
``Client``; several signed-in browsers are several clients. Time is moved by
writing the rows' columns in the past.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.auth.signals import user_logged_out
from django.core import mail
from django.http import HttpResponseBase
from django.test import Client, RequestFactory, override_settings
from django.utils import timezone, translation

from django_sessionkit import devices, pages
from django_sessionkit.events import Kind
from django_sessionkit.keys import hash_key
from django_sessionkit.models import Device, Session, SessionEvent
from django_sessionkit.revocation import revoke_session
from tests.helpers import CHROME, FIREFOX, IPHONE, captured, events, user_of

pytestmark = [
    pytest.mark.django_db,
    # See tests/test_devices.py: Django 6.1's warning about MAILERS.
    pytest.mark.filterwarnings("ignore:Django 2028 will not have a default mailer"),
]

PASSWORD = "correct horse"
COOKIE = settings.SESSION_COOKIE_NAME
DEVICE_COOKIE = "sessionkit_device"
PAGE = "/sessions/"
EXPORT = "/sessions/export/"
OTHERS = "/sessions/sign-out-others/"
REAUTH_URL = "/sessions/reauthenticate/"
LOGIN_URL = "/accounts/login/"
JSON = {"Accept": "application/json"}
STALE = timedelta(minutes=11)

#: The addresses the location resolver of these tests was asked about.
LOOKUPS: list[str] = []


def locate(ip: str) -> str | None:
    """The location resolver of these tests."""
    LOOKUPS.append(ip)
    return "Testville" if ip == "127.0.0.1" else f"Elsewhere {ip}"


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", "alice@example.com", PASSWORD)


@pytest.fixture
def bob() -> User:
    return User.objects.create_user("bob", "bob@example.com", PASSWORD)


# -- Helpers ------------------------------------------------------------------------


def browser(username: str = "alice", user_agent: str = CHROME, **kwargs: Any) -> Client:
    """A new browser, signed in as ``username``."""
    client = Client(**kwargs)
    response = client.post(
        "/login/",
        {"username": username, "password": PASSWORD},
        headers={"user-agent": user_agent},
    )
    assert response.status_code == 200, response.content
    return client


def key_of(client: Client) -> str:
    return str(client.cookies[COOKIE].value)


def row_of(client: Client) -> Session:
    return Session.objects.get(key_hash=hash_key(key_of(client)))


def device_of(client: Client) -> Device:
    device = row_of(client).device
    assert device is not None
    return device


def whoami(client: Client) -> str:
    return user_of(client.get("/peek/"))


def stale(client: Client) -> None:
    """Make the client's sign-in older than ``SESSIONKIT_REAUTH_MAX_AGE``."""
    rows = Session.objects.filter(pk=row_of(client).pk)
    assert rows.update(authenticated_at=timezone.now() - STALE) == 1


def state() -> tuple[Any, ...]:
    """Everything an action could change."""
    return (
        list(Session.objects.order_by("pk").values_list("pk", "key_hash", "user_id")),
        list(Device.objects.order_by("pk").values_list("pk", "name", "token_hash")),
        SessionEvent.objects.filter(kind=Kind.REVOKE).count(),
    )


def listing(client: Client) -> dict[str, Any]:
    response = client.get(PAGE, headers=JSON)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    data: dict[str, Any] = response.json()
    return data


def text(response: HttpResponseBase) -> str:
    assert response.status_code == 200, response.content
    return response.content.decode()  # type: ignore[attr-defined]


def session_url(pk: int) -> str:
    return f"/sessions/{pk}/sign-out/"


def device_url(pk: int) -> str:
    return f"/sessions/devices/{pk}/sign-out/"


def rename_url(pk: int) -> str:
    return f"/sessions/devices/{pk}/rename/"


def action_urls(session_pk: int, device_pk: int) -> dict[str, str]:
    return {
        "sign_out_session": session_url(session_pk),
        "sign_out_device": device_url(device_pk),
        "rename_device": rename_url(device_pk),
    }


#: The actions that name a session or a device by its id.
ID_ACTIONS = ["sign_out_session", "sign_out_device", "rename_device"]
ACTIONS = [*ID_ACTIONS, "sign_out_others"]


def url_of(action: str, client: Client) -> str:
    if action == "sign_out_others":
        return OTHERS
    return action_urls(row_of(client).pk, device_of(client).pk)[action]


def parse_iso(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    assert moment.tzinfo is not None
    return moment


class Controls(HTMLParser):
    """The forms, buttons, inputs and labels of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.buttons: list[dict[str, Any]] = []
        self.inputs: list[dict[str, str | None]] = []
        self.label_for: set[str] = set()
        self._button: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.forms.append({"attrs": values, "inputs": []})
        elif tag == "input":
            self.inputs.append(values)
            if self.forms:
                self.forms[-1]["inputs"].append(values)
        elif tag == "label" and values.get("for"):
            self.label_for.add(str(values["for"]))
        elif tag == "button":
            self._button = {"attrs": values, "text": ""}
            self.buttons.append(self._button)

    def handle_endtag(self, tag: str) -> None:
        if tag == "button":
            self._button = None

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button["text"] += data


def controls(html: str) -> Controls:
    parser = Controls()
    parser.feed(html)
    return parser


# -- The page ---------------------------------------------------------------------


def test_page_lists_own_devices_and_marks_current(
    alice: User, bob: User, engine: str
) -> None:
    here = browser(user_agent=CHROME)
    phone = browser(user_agent=IPHONE)
    bobs = browser("bob", user_agent=FIREFOX)
    html = text(here.get(PAGE))
    assert "Chrome 120.0.0 on Windows 10" in html
    assert "Mobile Safari 17.1 on iOS 17.1" in html
    # Bob's browser, session and device appear nowhere.
    assert "Firefox" not in html
    assert session_url(row_of(bobs).pk) not in html
    assert device_url(device_of(bobs).pk) not in html
    assert session_url(row_of(here).pk) in html
    assert session_url(row_of(phone).pk) in html
    assert html.count("This device") == 1
    assert html.count("This session") == 1
    # This device first, with this session marked.
    first, second = html.split('<section class="sessionkit-device')[1:]
    assert "This device" in first and "This session" in first
    assert device_url(device_of(here).pk) in first
    assert device_url(device_of(phone).pk) in second
    assert "This device" not in second
    assert 'aria-current="true"' in first
    assert 'aria-current="true"' not in second
    assert "127.0.0.1" in second
    # The type in words; the icon beside it is decorative.
    assert "<dt>Type</dt><dd>Mobile</dd>" in second
    assert 'class="sessionkit-icon sessionkit-icon--mobile" aria-hidden="true"' in (
        second
    )
    assert "<svg" in second
    assert "just now" in second


def test_page_json_lists_devices_with_their_sessions(
    alice: User, bob: User, engine: str
) -> None:
    here = browser(user_agent=CHROME)
    phone = browser(user_agent=IPHONE)
    browser("bob", user_agent=FIREFOX)
    data = listing(here)
    assert set(data) == {
        "devices",
        "sessions",
        "page",
        "pages",
        "count",
        "previous",
        "next",
    }
    assert (data["page"], data["pages"], data["count"]) == (1, 1, 2)
    assert (data["previous"], data["next"]) == (None, None)
    assert data["sessions"] == []
    mine, other = data["devices"]
    device = device_of(here)
    record = row_of(here)
    assert mine == {
        "id": device.pk,
        "name": "",
        "label": "Chrome 120.0.0 on Windows 10",
        "browser": "Chrome 120.0.0",
        "os": "Windows 10",
        "device_family": None,
        "kind": "desktop",
        "ip": "127.0.0.1",
        "location": None,
        "created_at": mine["created_at"],
        "last_seen_at": mine["last_seen_at"],
        "current": True,
        "sessions": [
            {
                "id": record.pk,
                "device_id": device.pk,
                "created_at": mine["sessions"][0]["created_at"],
                "authenticated_at": mine["sessions"][0]["authenticated_at"],
                "last_seen_at": mine["sessions"][0]["last_seen_at"],
                "expire_date": mine["sessions"][0]["expire_date"],
                "absolute_expire_date": mine["sessions"][0]["absolute_expire_date"],
                "ip": "127.0.0.1",
                "location": None,
                "current": True,
            }
        ],
    }
    assert parse_iso(mine["created_at"]) == device.created_at
    session = mine["sessions"][0]
    assert parse_iso(session["authenticated_at"]) == record.authenticated_at
    assert parse_iso(session["expire_date"]) == record.expire_date
    assert other["id"] == device_of(phone).pk
    assert (other["kind"], other["device_family"], other["current"]) == (
        "mobile",
        "iPhone",
        False,
    )
    assert [s["id"] for s in other["sessions"]] == [row_of(phone).pk]
    assert other["sessions"][0]["current"] is False


def test_page_never_shows_keys_or_tokens(alice: User, engine: str) -> None:
    here = browser()
    other = browser(user_agent=IPHONE)
    html = text(here.get(PAGE))
    body = here.get(PAGE, headers=JSON).content.decode()
    exported = here.get(EXPORT).content.decode()
    secrets = []
    for client in (here, other):
        key = key_of(client)
        token = client.cookies[DEVICE_COOKIE].value
        secrets += [key, hash_key(key), token, hash_key(token)]
    for content in (html, body, exported):
        for secret in secrets:
            assert secret not in content


def test_page_anonymous_goes_to_sign_in() -> None:
    response = Client().get(PAGE)
    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN_URL}?next={PAGE}"


def test_page_anonymous_json_gets_401() -> None:
    response = Client().get(PAGE, headers=JSON)
    assert response.status_code == 401
    assert response.json() == {"error": "not_signed_in", "login_url": LOGIN_URL}


def test_page_varies_on_accept_and_is_not_cached(alice: User) -> None:
    response = browser().get(PAGE)
    assert "Accept" in response["Vary"]
    assert "no-store" in response["Cache-Control"]


def test_page_post_not_allowed(alice: User) -> None:
    assert browser().post(PAGE).status_code == 405


def test_page_orders_this_device_first_then_by_activity(alice: User) -> None:
    first = browser(user_agent=CHROME)
    second = browser(user_agent=FIREFOX)
    here = browser(user_agent=IPHONE)
    now = timezone.now()
    # Within the idle timeout (30 minutes).
    ages = {first: timedelta(minutes=20), second: timedelta(minutes=5)}
    ages[here] = timedelta(minutes=25)
    for client, age in ages.items():
        Session.objects.filter(pk=row_of(client).pk).update(last_seen_at=now - age)
    ids = [device["id"] for device in listing(here)["devices"]]
    assert ids == [device_of(c).pk for c in (here, second, first)]


def test_page_groups_sessions_of_one_device_current_first(alice: User) -> None:
    here = browser()
    # A second browser profile presenting the same device cookie.
    twin = Client()
    twin.cookies[DEVICE_COOKIE] = here.cookies[DEVICE_COOKIE].value
    twin.post("/login/", {"username": "alice", "password": PASSWORD})
    assert device_of(twin) == device_of(here)
    Session.objects.filter(pk=row_of(here).pk).update(
        last_seen_at=timezone.now() - timedelta(minutes=10)
    )
    [device] = listing(here)["devices"]
    assert [s["id"] for s in device["sessions"]] == [
        row_of(here).pk,
        row_of(twin).pk,
    ]
    assert [s["current"] for s in device["sessions"]] == [True, False]


def test_page_lists_sessions_without_device_on_their_own(alice: User) -> None:
    here = browser()
    loose = browser(user_agent=FIREFOX)
    Session.objects.filter(pk=row_of(loose).pk).update(device=None)
    data = listing(here)
    assert [d["id"] for d in data["devices"]] == [device_of(here).pk]
    [session] = data["sessions"]
    assert (session["id"], session["device_id"], session["current"]) == (
        row_of(loose).pk,
        None,
        False,
    )
    html = text(here.get(PAGE))
    section = html.split('<section class="sessionkit-device')[2]
    assert "Unknown device" in section
    assert session_url(row_of(loose).pk) in section
    assert "/rename/" not in section


def test_page_leaves_out_expired_sessions(alice: User) -> None:
    here = browser()
    gone = browser(user_agent=FIREFOX)
    Session.objects.filter(pk=row_of(gone).pk).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    late = browser(user_agent=IPHONE)
    Session.objects.filter(pk=row_of(late).pk).update(
        absolute_expire_date=timezone.now() - timedelta(seconds=1)
    )
    ids = [d["id"] for d in listing(here)["devices"]]
    assert ids == [device_of(here).pk]
    assert "Firefox" not in text(here.get(PAGE))


def test_page_shows_activity_as_time_ago(alice: User) -> None:
    here = browser()
    other = browser(user_agent=FIREFOX)
    seen = timezone.now() - timedelta(minutes=3, seconds=5)
    Session.objects.filter(pk=row_of(other).pk).update(last_seen_at=seen)
    html = text(here.get(PAGE))
    assert "3\xa0minutes ago" in html
    assert f'<time datetime="{seen.isoformat()}"' in html


@override_settings(SESSIONKIT_STORE_IP="none", SESSIONKIT_STORE_USER_AGENT=False)
def test_page_without_stored_ip_or_user_agent(alice: User) -> None:
    here = browser()
    html = text(here.get(PAGE))
    assert "127.0.0.1" not in html
    assert "not stored" in html
    assert "Unknown on Unknown" in html
    [device] = listing(here)["devices"]
    assert (device["ip"], device["browser"], device["os"]) == (None, None, None)
    assert device["sessions"][0]["ip"] is None


def test_page_shows_location_resolved_once_per_address(
    alice: User, settings: Any
) -> None:
    settings.SESSIONKIT_LOCATION_RESOLVER = "tests.test_pages.locate"
    here = browser()
    browser(user_agent=FIREFOX)
    far = browser(user_agent=IPHONE)
    Session.objects.filter(pk=row_of(far).pk).update(ip="203.0.113.7")
    LOOKUPS.clear()
    html = text(here.get(PAGE))
    assert sorted(LOOKUPS) == ["127.0.0.1", "203.0.113.7"]
    assert html.count("Testville") == 2
    assert "Elsewhere 203.0.113.7" in html
    LOOKUPS.clear()
    data = listing(here)
    assert sorted(LOOKUPS) == ["127.0.0.1", "203.0.113.7"]
    locations = {s["id"]: s["location"] for d in data["devices"] for s in d["sessions"]}
    assert locations[row_of(far).pk] == "Elsewhere 203.0.113.7"
    assert locations[row_of(here).pk] == "Testville"
    assert data["devices"][0]["location"] == "Testville"


def test_page_without_resolver_shows_no_location(alice: User) -> None:
    here = browser()
    html = text(here.get(PAGE))
    assert "sessionkit-location" not in html


def test_page_controls_are_labelled_forms_with_csrf(alice: User) -> None:
    here = browser()
    browser(user_agent=IPHONE)
    found = controls(text(here.get(PAGE)))
    # Sign out everywhere else; per device: rename, sign out; per session.
    assert len(found.forms) == 1 + 2 * 2 + 2
    for form in found.forms:
        assert form["attrs"]["method"] == "post"
        names = [i.get("name") for i in form["inputs"]]
        assert "csrfmiddlewaretoken" in names
    for button in found.buttons:
        visible = " ".join(button["text"].split())
        assert visible
        label = button["attrs"].get("aria-label")
        # The accessible name contains the visible text (WCAG 2.5.3).
        assert label is None or visible in label
    labels = [b["attrs"].get("aria-label") or "" for b in found.buttons]
    assert "Sign out device Mobile Safari 17.1 on iOS 17.1" in labels
    assert "Rename Mobile Safari 17.1 on iOS 17.1" in labels
    assert any(
        label.startswith("Sign out the session on Mobile Safari 17.1 on iOS 17.1")
        for label in labels
    )
    for field in found.inputs:
        if field.get("type") != "hidden":
            assert field.get("id") in found.label_for


def test_page_renders_in_another_language(alice: User) -> None:
    here = browser()
    other = browser(user_agent=FIREFOX)
    seen = timezone.now() - timedelta(minutes=5, seconds=5)
    Session.objects.filter(pk=row_of(other).pk).update(last_seen_at=seen)
    with translation.override("de"):
        html = text(here.get(PAGE))
    assert '<html lang="de">' in html
    # Django's own catalogue translates the time since.
    assert "5\xa0Minuten" in html


def test_page_template_can_be_replaced(
    alice: User, settings: Any, tmp_path: Any
) -> None:
    folder = tmp_path / "django_sessionkit"
    folder.mkdir()
    (folder / "base.html").write_text(
        "<div id=site>{% block sessionkit_content %}{% endblock %}</div>"
    )
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [str(tmp_path)]}]
    html = text(browser().get(PAGE))
    assert html.startswith("<div id=site>")
    assert "Sessions and devices" in html


# -- Signing out one session --------------------------------------------------------


def test_sign_out_session_ends_only_that_session(
    alice: User, bob: User, engine: str
) -> None:
    here = browser()
    other = browser(user_agent=IPHONE)
    bobs = browser("bob")
    target = row_of(other)
    response = here.post(session_url(target.pk))
    assert response.status_code == 302
    assert response["Location"] == PAGE
    assert whoami(other) == ""
    assert whoami(here) == "alice"
    assert whoami(bobs) == "bob"
    assert not Session.objects.filter(pk=target.pk).exists()
    [event] = events(Kind.REVOKE)
    assert (event.session_id, event.reason, event.actor, event.user) == (
        target.pk,
        "user_signed_out",
        alice,
        alice,
    )
    # The device stays, as do the listing's other entries.
    assert Device.objects.filter(pk=target.device_id).exists()
    assert [d["id"] for d in listing(here)["devices"]] == [device_of(here).pk]


def test_sign_out_session_shows_message(alice: User) -> None:
    here = browser()
    other = browser(user_agent=IPHONE)
    response = here.post(session_url(row_of(other).pk), follow=True)
    assert "The session was signed out." in text(response)
    assert 'role="status"' in text(response)


def test_sign_out_session_without_messages_app(alice: User, settings: Any) -> None:
    settings.MIDDLEWARE = [
        m
        for m in settings.MIDDLEWARE
        if m != "django.contrib.messages.middleware.MessageMiddleware"
    ]
    here = browser()
    other = browser(user_agent=IPHONE)
    response = here.post(session_url(row_of(other).pk))
    assert response.status_code == 302
    assert whoami(other) == ""
    assert "sessionkit-messages" not in text(here.get(PAGE))


def test_sign_out_session_json(alice: User) -> None:
    here = browser()
    other = browser(user_agent=IPHONE)
    response = here.post(session_url(row_of(other).pk), headers=JSON)
    assert response.status_code == 200
    assert response.json() == {"revoked": 1}
    assert whoami(other) == ""


def test_sign_out_current_session_signs_out_here(alice: User, engine: str) -> None:
    here = browser()
    other = browser(user_agent=IPHONE)
    record = row_of(here)
    with captured(user_logged_out) as signed_out:
        response = here.post(session_url(record.pk))
    assert response.status_code == 302
    assert response["Location"] == LOGIN_URL
    # The cookie is deleted; nothing new is stored.
    assert response.cookies[COOKIE].value == ""
    assert whoami(here) == ""
    assert whoami(other) == "alice"
    assert [s["user"] for s in signed_out] == [alice]
    assert not Session.objects.filter(pk=record.pk).exists()
    assert Session.objects.filter(user=None).count() == 0
    [event] = events(Kind.REVOKE)
    assert (event.session_id, event.reason) == (record.pk, "user_signed_out")
    assert events(Kind.LOGOUT) == []


def test_sign_out_current_session_json(alice: User) -> None:
    here = browser()
    response = here.post(session_url(row_of(here).pk), headers=JSON)
    assert response.status_code == 200
    assert response.json() == {
        "revoked": 1,
        "signed_out": True,
        "login_url": LOGIN_URL,
    }
    assert whoami(here) == ""


@override_settings(SESSIONKIT_CLEAR_SITE_DATA_ON_LOGOUT=True)
def test_sign_out_current_session_clears_site_data(alice: User) -> None:
    here = browser()
    response = here.post(session_url(row_of(here).pk))
    assert response["Clear-Site-Data"] == '"cache", "cookies", "storage"'


# -- Signing out a device -----------------------------------------------------------


def test_sign_out_device_ends_its_sessions(alice: User, engine: str) -> None:
    here = browser()
    other = browser(user_agent=IPHONE)
    twin = Client()
    twin.cookies[DEVICE_COOKIE] = other.cookies[DEVICE_COOKIE].value
    twin.post(
        "/login/",
        {"username": "alice", "password": PASSWORD},
        headers={"user-agent": IPHONE},
    )
    device = device_of(other)
    assert device_of(twin) == device
    response = here.post(device_url(device.pk), follow=True)
    assert "Signed out Mobile Safari 17.1 on iOS 17.1 (2 sessions)." in text(response)
    assert whoami(other) == ""
    assert whoami(twin) == ""
    assert whoami(here) == "alice"
    device.refresh_from_db()
    assert device.token_hash is None
    assert {e.reason for e in events(Kind.REVOKE)} == {"user_signed_out_device"}
    assert {e.actor for e in events(Kind.REVOKE)} == {alice}
    assert len(events(Kind.REVOKE)) == 2


def test_sign_out_device_json(alice: User) -> None:
    here = browser()
    other = browser(user_agent=IPHONE)
    response = here.post(device_url(device_of(other).pk), headers=JSON)
    assert response.json() == {"revoked": 1}


def test_sign_out_this_device_signs_out_here(alice: User) -> None:
    here = browser()
    other = browser(user_agent=IPHONE)
    response = here.post(device_url(device_of(here).pk))
    assert response.status_code == 302
    assert response["Location"] == LOGIN_URL
    assert whoami(here) == ""
    assert whoami(other) == "alice"


# -- Signing out everywhere else ----------------------------------------------------


def test_sign_out_others_keeps_current(alice: User, bob: User, engine: str) -> None:
    here = browser()
    others = [browser(user_agent=IPHONE), browser(user_agent=FIREFOX)]
    bobs = browser("bob")
    response = here.post(OTHERS, follow=True)
    assert "Signed out 2 other sessions." in text(response)
    assert [whoami(c) for c in others] == ["", ""]
    assert whoami(here) == "alice"
    assert whoami(bobs) == "bob"
    assert {e.reason for e in events(Kind.REVOKE)} == {"user_signed_out_others"}
    assert [d["id"] for d in listing(here)["devices"]] == [device_of(here).pk]


def test_sign_out_others_json(alice: User) -> None:
    here = browser()
    other = browser(user_agent=IPHONE)
    response = here.post(OTHERS, headers=JSON)
    assert response.json() == {"revoked": 1}
    assert whoami(other) == ""
    assert here.post(OTHERS, headers=JSON).json() == {"revoked": 0}


def test_sign_out_others_button_only_with_others(alice: User) -> None:
    here = browser()
    assert OTHERS not in text(here.get(PAGE))
    browser(user_agent=IPHONE)
    assert OTHERS in text(here.get(PAGE))


# -- Renaming a device --------------------------------------------------------------


def test_device_name_is_escaped_everywhere(alice: User) -> None:
    here = browser()
    browser(user_agent=IPHONE)  # a second session: every button is shown
    device = device_of(here)
    hostile = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    assert here.post(rename_url(device.pk), {"name": hostile}).status_code == 302
    html = text(here.get(PAGE))
    assert "<script>alert(1)" not in html
    assert "<img src=x" not in html
    escaped = "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"
    # The heading, the caption, the labels and the input's value.
    assert html.count(escaped) >= 5
    assert listing(here)["devices"][0]["name"] == hostile


def test_rename_device_strips_and_saves(alice: User) -> None:
    here = browser()
    device = device_of(here)
    response = here.post(rename_url(device.pk), {"name": "  Work laptop  "})
    assert response.status_code == 302
    assert response["Location"] == PAGE
    device.refresh_from_db()
    assert device.name == "Work laptop"
    html = text(here.get(PAGE))
    assert "The device was renamed." in html
    assert ">Work laptop</h2>" in html


def test_rename_device_empty_restores_automatic_name(alice: User) -> None:
    here = browser()
    device = device_of(here)
    Device.objects.filter(pk=device.pk).update(name="Old name")
    response = here.post(rename_url(device.pk), {"name": "   "}, headers=JSON)
    assert response.status_code == 200
    data = response.json()["device"]
    assert (data["id"], data["name"], data["label"]) == (
        device.pk,
        "",
        "Chrome 120.0.0 on Windows 10",
    )
    assert data["current"] is True
    device.refresh_from_db()
    assert device.name == ""


def test_rename_device_longest_name(alice: User) -> None:
    here = browser()
    device = device_of(here)
    assert here.post(rename_url(device.pk), {"name": "x" * 100}).status_code == 302
    device.refresh_from_db()
    assert device.name == "x" * 100


def test_rename_device_too_long_shows_error(alice: User) -> None:
    here = browser()
    device = device_of(here)
    response = here.post(rename_url(device.pk), {"name": "y" * 101})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Ensure this value has at most 100 characters (it has 101)." in html
    field = f"sessionkit-device-{device.pk}-name"
    assert f'id="{field}" value="{"y" * 101}"' in html
    assert 'aria-invalid="true"' in html
    assert f'id="{field}-errors"' in html
    device.refresh_from_db()
    assert device.name == ""


def test_rename_device_too_long_json(alice: User) -> None:
    here = browser()
    device = device_of(here)
    response = here.post(rename_url(device.pk), {"name": "y" * 101}, headers=JSON)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_name"
    assert [e["code"] for e in body["errors"]["name"]] == ["max_length"]
    device.refresh_from_db()
    assert device.name == ""


# -- What every action checks -------------------------------------------------------


@pytest.mark.parametrize("action", ID_ACTIONS)
def test_action_on_another_users_id_is_404(alice: User, bob: User, action: str) -> None:
    here = browser()
    bobs = browser("bob")
    before = state()
    response = here.post(url_of(action, bobs), {"name": "mine now"})
    assert response.status_code == 404
    assert state() == before
    assert whoami(bobs) == "bob"
    response = here.post(url_of(action, bobs), {"name": "mine now"}, headers=JSON)
    assert response.status_code == 404
    assert state() == before


@pytest.mark.parametrize("action", ID_ACTIONS)
def test_action_on_unknown_id_is_404(alice: User, action: str) -> None:
    here = browser()
    before = state()
    url = action_urls(10**9, 10**9)[action]
    assert here.post(url, {"name": "x"}).status_code == 404
    assert state() == before


@pytest.mark.parametrize("action", ACTIONS)
def test_action_get_not_allowed(alice: User, action: str) -> None:
    here = browser()
    before = state()
    assert here.get(url_of(action, here)).status_code == 405
    assert state() == before


@pytest.mark.parametrize("action", ACTIONS)
def test_action_without_csrf_token_is_403(alice: User, action: str) -> None:
    here = browser(enforce_csrf_checks=True)
    browser(user_agent=IPHONE)
    before = state()
    response = here.post(url_of(action, here), {"name": "x"})
    assert response.status_code == 403
    assert b"CSRF" in response.content
    assert state() == before
    assert whoami(here) == "alice"


@pytest.mark.parametrize("action", ACTIONS)
def test_action_without_csrf_token_json_403(alice: User, action: str) -> None:
    here = browser(enforce_csrf_checks=True)
    browser(user_agent=IPHONE)
    before = state()
    response = here.post(url_of(action, here), {"name": "x"}, headers=JSON)
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "csrf_failed"}
    assert state() == before
    assert whoami(here) == "alice"


@pytest.mark.parametrize("action", ID_ACTIONS)
def test_action_unknown_id_json_404(alice: User, bob: User, action: str) -> None:
    here = browser(enforce_csrf_checks=True)
    text(here.get(PAGE))
    token = {"X-CSRFToken": here.cookies[settings.CSRF_COOKIE_NAME].value}
    for url in (url_of(action, browser("bob")), action_urls(10**9, 10**9)[action]):
        response = here.post(url, {"name": "x"}, headers={**JSON, **token})
        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"
        assert response.json() == {"error": "not_found"}
        # A page still gets the site's own 404 page.
        response = here.post(url, {"name": "x"}, headers=token)
        assert response.status_code == 404
        assert response["Content-Type"].startswith("text/html")


def test_action_with_csrf_token_from_page(alice: User) -> None:
    here = browser(enforce_csrf_checks=True)
    other = browser(user_agent=IPHONE)
    text(here.get(PAGE))
    token = here.cookies[settings.CSRF_COOKIE_NAME].value
    response = here.post(OTHERS, {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert whoami(other) == ""


@pytest.mark.parametrize("action", ACTIONS)
def test_action_stale_authentication_asks_again(alice: User, action: str) -> None:
    here = browser()
    browser(user_agent=IPHONE)
    stale(here)
    before = state()
    response = here.post(
        url_of(action, here),
        {"name": "x"},
        headers={"referer": f"http://testserver{PAGE}"},
    )
    assert response.status_code == 302
    assert response["Location"] == f"{REAUTH_URL}?next={PAGE}"
    response = here.post(url_of(action, here), {"name": "x"}, headers=JSON)
    assert response.status_code == 403
    assert response.json() == {
        "error": "reauthentication_required",
        "reauth_url": REAUTH_URL,
    }
    assert state() == before
    # After confirming the password, the action goes through.
    assert here.post(REAUTH_URL, {"password": PASSWORD}).status_code == 302
    assert here.post(url_of(action, here), {"name": "x"}).status_code == 302


@pytest.mark.parametrize("action", ACTIONS)
def test_action_anonymous(alice: User, action: str) -> None:
    owner = browser()
    url = url_of(action, owner)
    before = state()
    response = Client().post(url)
    assert response.status_code == 302
    # No way back to a POST: the sign-in page without "next".
    assert response["Location"] == LOGIN_URL
    response = Client().post(url, headers=JSON)
    assert response.status_code == 401
    assert response.json()["error"] == "not_signed_in"
    assert state() == before


# -- Export -------------------------------------------------------------------------


def test_export_downloads_stored_data(alice: User, bob: User) -> None:
    here = browser()
    other = browser(user_agent=IPHONE)
    browser("bob")
    here.post(session_url(row_of(other).pk))
    response = here.get(EXPORT)
    assert response.status_code == 200
    day = timezone.localdate().isoformat()
    assert response["Content-Disposition"] == (
        f'attachment; filename="sessionkit-{day}.json"'
    )
    assert "no-store" in response["Cache-Control"]
    data = json.loads(response.content)
    assert data["format"] == "django-sessionkit-export"
    assert data["version"] == 1
    assert data["user"] == {"id": alice.pk, "username": "alice"}
    assert [d["id"] for d in data["devices"]] == [
        d.pk for d in Device.objects.filter(user=alice).order_by("pk")
    ]
    [session] = data["sessions"]
    record = row_of(here)
    assert session["id"] == record.pk
    assert session["user_agent"] == CHROME
    assert session["ip"] == "127.0.0.1"
    assert (session["current"], session["live"]) == (True, True)
    assert parse_iso(session["authenticated_at"]) == record.authenticated_at
    assert data["devices"][1]["user_agent"] == IPHONE
    kinds = [(e["kind"], e["reason"], e["actor"]) for e in data["events"]]
    assert ("revoke", "user_signed_out", "self") in kinds
    assert ("login", "login", None) in kinds
    bob_events = SessionEvent.objects.filter(user__username="bob")
    assert bob_events.exists()
    assert not {e["id"] for e in data["events"]} & {e.pk for e in bob_events}
    for forbidden in ("key_hash", "previous_key_hash", "token_hash", "session_data"):
        assert forbidden not in response.content.decode()


def test_export_leaves_out_other_peoples_addresses(alice: User) -> None:
    staff = User.objects.create_user("staff", password=PASSWORD, is_staff=True)
    here = browser()
    other = browser(user_agent=IPHONE)
    revoke_session(
        row_of(other), reason="admin", by=staff, request=from_ip("198.51.100.77")
    )
    revoke_session(
        row_of(browser()),
        reason="user_signed_out",
        by=alice,
        request=from_ip("203.0.113.9"),
    )
    data = json.loads(here.get(EXPORT).content)
    revokes = {e["actor"]: e["ip"] for e in data["events"] if e["kind"] == "revoke"}
    assert revokes == {"other": None, "self": "203.0.113.9"}
    assert "198.51.100.77" not in json.dumps(data)
    # The staff member's address stays in the audit trail.
    assert SessionEvent.objects.filter(actor=staff, ip="198.51.100.77").exists()


def from_ip(address: str) -> Any:
    return RequestFactory().post("/", REMOTE_ADDR=address)


def test_export_covers_every_field_but_secrets() -> None:
    exported = {
        Device: pages.EXPORT_DEVICE_FIELDS,
        Session: pages.EXPORT_SESSION_FIELDS,
        SessionEvent: pages.EXPORT_EVENT_FIELDS,
    }
    for model, fields in exported.items():
        names = {f.attname for f in model._meta.concrete_fields}
        excluded = pages.EXPORT_EXCLUDED[model]
        assert names == set(fields) | excluded, model
        assert not set(fields) & excluded


def test_export_marks_expired_sessions(alice: User) -> None:
    here = browser()
    gone = browser(user_agent=IPHONE)
    Session.objects.filter(pk=row_of(gone).pk).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    data = json.loads(here.get(EXPORT).content)
    live = {s["id"]: s["live"] for s in data["sessions"]}
    assert live == {row_of(here).pk: True, row_of(gone).pk: False}


@override_settings(SESSIONKIT_STORE_IP="none", SESSIONKIT_STORE_USER_AGENT=False)
def test_export_respects_storage_settings(alice: User) -> None:
    here = browser()
    content = here.get(EXPORT).content.decode()
    assert "127.0.0.1" not in content
    assert "Mozilla" not in content
    data = json.loads(content)
    [device] = data["devices"]
    [session] = data["sessions"]
    assert (device["ip"], device["user_agent"], device["browser"]) == (None, "", "")
    assert (session["ip"], session["user_agent"]) == (None, "")
    assert {e["ip"] for e in data["events"]} == {None}


def test_export_anonymous() -> None:
    assert Client().get(EXPORT).status_code == 302
    assert Client().get(EXPORT, headers=JSON).status_code == 401


def test_export_stale_authentication_asks_again(alice: User) -> None:
    here = browser()
    stale(here)
    response = here.get(EXPORT)
    assert response.status_code == 302
    assert response["Location"] == f"{REAUTH_URL}?next={EXPORT}"
    response = here.get(EXPORT, headers=JSON)
    assert response.status_code == 403
    assert response.json()["error"] == "reauthentication_required"
    assert b"127.0.0.1" not in response.content
    response = here.post(REAUTH_URL, {"password": PASSWORD, "next": EXPORT})
    assert response["Location"] == EXPORT
    response = here.get(EXPORT)
    assert response.status_code == 200
    assert json.loads(response.content)["user"]["username"] == "alice"


def test_export_post_not_allowed(alice: User) -> None:
    assert browser().post(EXPORT).status_code == 405


# -- The new-device email's link ----------------------------------------------------


@pytest.mark.parametrize("path", ["/login/", "/alogin/"])
@override_settings(SESSIONKIT_NOTIFY_NEW_DEVICE=True)
def test_new_device_email_links_sessions_page(alice: User, path: str) -> None:
    client = Client()
    client.post(path, {"username": "alice", "password": PASSWORD})
    [message] = mail.outbox
    assert "Your sessions and devices: http://testserver/sessions/\n" in message.body


@pytest.mark.urls("tests.urls_without_app")
@override_settings(SESSIONKIT_NOTIFY_NEW_DEVICE=True)
def test_new_device_email_without_app_urls_has_no_link(alice: User) -> None:
    client = Client()
    assert client.post("/login/", {"username": "alice", "password": PASSWORD})
    [message] = mail.outbox
    assert "Your sessions and devices" not in message.body
    assert "http" not in message.body
    assert message.subject == "New sign-in to your account"


@pytest.mark.parametrize(
    ("referer", "location"),
    [
        (f"http://testserver{PAGE}", f"{LOGIN_URL}?next={PAGE}"),
        ("", LOGIN_URL),
        (f"https://evil.example{PAGE}", LOGIN_URL),
    ],
)
def test_anonymous_action_returns_to_the_page_after_sign_in(
    alice: User, referer: str, location: str
) -> None:
    # The session ended while the page was open: a POST cannot be repeated
    # by a redirect, so the sign-in sends the user back to the form's page.
    here = browser()
    pk = row_of(here).pk
    headers = {"Referer": referer} if referer else {}
    response = Client().post(session_url(pk), headers=headers)
    assert response.status_code == 302
    assert response["Location"] == location
    assert Session.objects.filter(pk=pk).exists()


@override_settings(ALLOWED_HOSTS=["testserver"])
def test_sessions_page_url_never_uses_a_disallowed_host() -> None:
    factory = RequestFactory()
    allowed = factory.get("/login/")
    assert devices.sessions_page_url(allowed) == "http://testserver/sessions/"
    evil = factory.get("/login/", HTTP_HOST="evil.example")
    assert devices.sessions_page_url(evil) is None


@override_settings(ALLOWED_HOSTS=["*"])
def test_sessions_page_url_left_out_when_any_host_is_allowed() -> None:
    request = RequestFactory().get("/login/", HTTP_HOST="evil.example")
    assert devices.sessions_page_url(request) is None


@override_settings(SESSIONKIT_NOTIFY_NEW_DEVICE=True)
def test_new_device_email_without_request_has_no_link(alice: User) -> None:
    device = Device.objects.create(user=alice)
    assert devices.notify_new_device(device, alice)
    [message] = mail.outbox
    assert "Your sessions and devices" not in message.body


# -- Bounded: many devices and sessions ---------------------------------------------


def many_sessions(user: User, devices: int, unlinked: int = 0) -> set[int]:
    """``devices`` devices of ``user`` with one live session each, and
    ``unlinked`` sessions with no device, in bulk; return the sessions' ids."""
    now = timezone.now()
    made = Device.objects.bulk_create(
        Device(user=user, user_agent=FIREFOX, browser="Firefox 133", os="Linux")
        for _ in range(devices)
    )
    rows = [
        Session(
            key_hash=f"{n:064x}",
            session_data="",
            user=user,
            device=device,
            authenticated_at=now,
            last_seen_at=now - timedelta(seconds=n + 1),
            expire_date=now + timedelta(hours=1),
        )
        for n, device in enumerate([*made, *[None] * unlinked])
    ]
    Session.objects.bulk_create(rows)
    return set(
        Session.objects.filter(key_hash__in=[r.key_hash for r in rows]).values_list(
            "pk", flat=True
        )
    )


def json_sessions(data: dict[str, Any]) -> list[int]:
    ids = [s["id"] for d in data["devices"] for s in d["sessions"]]
    return ids + [s["id"] for s in data["sessions"]]


def test_page_json_bounded_rest_reachable(alice: User) -> None:
    here = browser()
    made = many_sessions(alice, 2 * pages.PAGE_SIZE + 7, unlinked=5)
    data = listing(here)
    assert len(json_sessions(data)) == pages.PAGE_SIZE
    assert data["devices"][0]["current"] is True
    assert (data["page"], data["pages"]) == (1, 3)
    assert data["count"] == len(made) + 1
    assert data["previous"] is None
    seen = json_sessions(data)
    while data["next"] is not None:
        response = here.get(data["next"], headers=JSON)
        assert response.status_code == 200
        data = response.json()
        assert len(json_sessions(data)) <= pages.PAGE_SIZE
        seen += json_sessions(data)
    assert data["page"] == 3
    assert sorted(seen) == sorted(made | {row_of(here).pk})


def test_page_html_bounded_with_link_to_more(alice: User) -> None:
    here = browser()
    made = many_sessions(alice, pages.PAGE_SIZE + 3)
    html = text(here.get(PAGE))
    forms = controls(html).forms
    actions = [f["attrs"]["action"] for f in forms]
    signed_out = [a for a in actions if a.endswith("/sign-out/") and "devices" not in a]
    assert len(signed_out) == pages.PAGE_SIZE
    assert 'href="?page=2"' in html
    assert "<script" not in html
    html = text(here.get(f"{PAGE}?page=2"))
    rest = {
        int(a.split("/")[2])
        for a in (f["attrs"]["action"] for f in controls(html).forms)
        if a.endswith("/sign-out/") and "devices" not in a
    }
    assert len(rest) == 4
    assert rest < made
    assert 'href="?page=1"' in html
    # The other sessions of the user are still counted on the last page.
    assert "Sign out everywhere else" in html


@pytest.mark.parametrize("page", ["0", "abc", "99", "-1"])
def test_page_out_of_range_shows_a_page(alice: User, page: str) -> None:
    here = browser()
    many_sessions(alice, pages.PAGE_SIZE + 1)
    data = here.get(PAGE, {"page": page}, headers=JSON).json()
    assert data["page"] in (1, 2)
    assert 0 < len(json_sessions(data)) <= pages.PAGE_SIZE
