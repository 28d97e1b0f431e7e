"""The sessions page's views (``sessions_page/views.py``): the page itself and
its actions (sign out a session, a device, every other session; rename a
device), with what every action checks: ownership, CSRF, a recent sign-in.

Every request goes through the real middleware stack with the test
``Client``; several signed-in browsers are several clients.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.auth.signals import user_logged_out
from django.core import mail
from django.test import Client, RequestFactory, override_settings

from django_sessionkit import devices
from django_sessionkit.events import Kind
from django_sessionkit.models import Device, Session
from tests.helpers import COOKIE, FIREFOX, IPHONE, PASSWORD, captured, events
from tests.sessions_page.helpers import (
    ACTIONS,
    DEVICE_COOKIE,
    ID_ACTIONS,
    JSON,
    LOGIN_URL,
    OTHERS,
    PAGE,
    REAUTH_URL,
    action_urls,
    browser,
    controls,
    device_of,
    device_url,
    listing,
    rename_url,
    row_of,
    session_url,
    stale,
    state,
    text,
    url_of,
    whoami,
)

pytestmark = [
    pytest.mark.django_db,
    # See tests/test_devices.py: Django 6.1's warning about MAILERS.
    pytest.mark.filterwarnings("ignore:Django 2028 will not have a default mailer"),
]


# -- The page -------------------------------------------------------------------------


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


# -- Signing out one session ----------------------------------------------------------


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


# -- Signing out a device -------------------------------------------------------------


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


# -- Signing out everywhere else ------------------------------------------------------


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


# -- Renaming a device ----------------------------------------------------------------


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


# -- What every action checks ---------------------------------------------------------


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


# -- The new-device email's link to the page ------------------------------------------


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
