"""The sessions page's export (``sessions_page/export.py``): everything stored
about the user's devices, sessions and events, and nothing secret.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, RequestFactory, override_settings
from django.utils import timezone

from django_sessionkit.models import Device, Session, SessionEvent
from django_sessionkit.revocation import revoke_session
from django_sessionkit.sessions_page import export
from tests.helpers import CHROME, IPHONE, PASSWORD
from tests.sessions_page.helpers import (
    EXPORT,
    JSON,
    REAUTH_URL,
    browser,
    parse_iso,
    row_of,
    session_url,
    stale,
)

pytestmark = [
    pytest.mark.django_db,
    # See tests/test_devices.py: Django 6.1's warning about MAILERS.
    pytest.mark.filterwarnings("ignore:Django 2028 will not have a default mailer"),
]


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


def test_export_leaves_out_other_peoples_addresses(alice: User, staff: User) -> None:
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
        Device: export.EXPORT_DEVICE_FIELDS,
        Session: export.EXPORT_SESSION_FIELDS,
        SessionEvent: export.EXPORT_EVENT_FIELDS,
    }
    for model, fields in exported.items():
        names = {f.attname for f in model._meta.concrete_fields}
        excluded = export.EXPORT_EXCLUDED[model]
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
