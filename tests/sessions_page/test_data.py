"""What the sessions page shows (``sessions_page/data.py``): the user's own
devices and live sessions, their order, labels, times and locations, as HTML
and as JSON, a page at a time.

Every request goes through the real middleware stack with the test
``Client``; several signed-in browsers are several clients. Time is moved by
writing the rows' columns in the past.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.utils import timezone, translation

from django_sessionkit.keys import hash_key
from django_sessionkit.models import Session
from django_sessionkit.sessions_page.data import PAGE_SIZE
from tests.helpers import CHROME, FIREFOX, IPHONE, PASSWORD
from tests.sessions_page.helpers import (
    DEVICE_COOKIE,
    EXPORT,
    JSON,
    LOOKUPS,
    PAGE,
    browser,
    controls,
    device_of,
    device_url,
    json_sessions,
    key_of,
    listing,
    many_sessions,
    parse_iso,
    row_of,
    session_url,
    text,
)

pytestmark = [
    pytest.mark.django_db,
    # See tests/test_devices.py: Django 6.1's warning about MAILERS.
    pytest.mark.filterwarnings("ignore:Django 2028 will not have a default mailer"),
]


# -- The page's rows ------------------------------------------------------------------


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
    settings.SESSIONKIT_LOCATION_RESOLVER = "tests.sessions_page.helpers.locate"
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


# -- Bounded: many devices and sessions -----------------------------------------------


def test_page_json_bounded_rest_reachable(alice: User) -> None:
    here = browser()
    made = many_sessions(alice, 2 * PAGE_SIZE + 7, unlinked=5)
    data = listing(here)
    assert len(json_sessions(data)) == PAGE_SIZE
    assert data["devices"][0]["current"] is True
    assert (data["page"], data["pages"]) == (1, 3)
    assert data["count"] == len(made) + 1
    assert data["previous"] is None
    seen = json_sessions(data)
    while data["next"] is not None:
        response = here.get(data["next"], headers=JSON)
        assert response.status_code == 200
        data = response.json()
        assert len(json_sessions(data)) <= PAGE_SIZE
        seen += json_sessions(data)
    assert data["page"] == 3
    assert sorted(seen) == sorted(made | {row_of(here).pk})


def test_page_html_bounded_with_link_to_more(alice: User) -> None:
    here = browser()
    made = many_sessions(alice, PAGE_SIZE + 3)
    html = text(here.get(PAGE))
    forms = controls(html).forms
    actions = [f["attrs"]["action"] for f in forms]
    signed_out = [a for a in actions if a.endswith("/sign-out/") and "devices" not in a]
    assert len(signed_out) == PAGE_SIZE
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
    many_sessions(alice, PAGE_SIZE + 1)
    data = here.get(PAGE, {"page": page}, headers=JSON).json()
    assert data["page"] in (1, 2)
    assert 0 < len(json_sessions(data)) <= PAGE_SIZE
