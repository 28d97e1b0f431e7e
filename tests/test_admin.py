"""The admin door: staff sign sessions out through the revocation API."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from django_sessionkit.models import Device, Session, SessionEvent
from django_sessionkit.signals import session_revoked

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse"


def signed_in(username: str) -> tuple[Client, str]:
    User.objects.create_user(username, password=PASSWORD)
    client = Client()
    assert (
        client.post("/login/", {"username": username, "password": PASSWORD}).status_code
        == 200
    )
    return client, client.cookies["sessionid"].value


@pytest.fixture
def staff() -> Client:
    User.objects.create_superuser("root", password=PASSWORD)
    client = Client()
    client.post("/login/", {"username": "root", "password": PASSWORD})
    return client


def test_admin_action_revokes_selected(staff: Client) -> None:
    victim, key = signed_in("alice")
    other, _ = signed_in("bob")
    target = Session.objects.get(user__username="alice")
    received: list[dict[str, object]] = []

    def receiver(**kwargs: object) -> None:
        received.append(kwargs)

    session_revoked.connect(receiver)
    try:
        response = staff.post(
            "/admin/sessionkit/session/",
            {"action": "revoke_selected", "_selected_action": [target.pk]},
            follow=True,
        )
    finally:
        session_revoked.disconnect(receiver)
    assert response.status_code == 200
    assert "1 session was signed out." in response.content.decode()
    assert not Session.objects.filter(pk=target.pk).exists()
    event = SessionEvent.objects.get(kind="revoke")
    assert (event.session_id, event.reason, event.actor.username) == (
        target.pk,
        "admin",
        "root",
    )  # type: ignore[union-attr]
    assert [r["session_id"] for r in received] == [target.pk]
    assert victim.get("/peek/").json()["user"] == ""
    assert other.get("/peek/").json()["user"] == "bob"
    assert key not in response.content.decode()


def test_admin_delete_goes_through_revocation(staff: Client) -> None:
    signed_in("alice")
    target = Session.objects.get(user__username="alice")
    response = staff.post(
        f"/admin/sessionkit/session/{target.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302
    assert not Session.objects.filter(pk=target.pk).exists()
    assert SessionEvent.objects.filter(
        kind="revoke", reason="admin", session_id=target.pk
    ).exists()


def test_admin_bulk_delete_goes_through_revocation(staff: Client) -> None:
    signed_in("alice")
    signed_in("bob")
    ids = list(
        Session.objects.exclude(user__username="root").values_list("pk", flat=True)
    )
    response = staff.post(
        "/admin/sessionkit/session/",
        {"action": "delete_selected", "_selected_action": ids, "post": "yes"},
    )
    assert response.status_code == 302
    assert Session.objects.filter(user__username="root").count() == 1
    assert SessionEvent.objects.filter(kind="revoke", reason="admin").count() == 2


def test_admin_pages_never_show_keys(staff: Client) -> None:
    _, key = signed_in("alice")
    target = Session.objects.get(user__username="alice")
    for url in (
        "/admin/sessionkit/session/",
        f"/admin/sessionkit/session/{target.pk}/change/",
    ):
        page = staff.get(url).content.decode()
        assert key not in page
        assert target.key_hash not in page


# -- Devices -------------------------------------------------------------------


@pytest.mark.parametrize("how", ["action", "delete", "bulk_delete"])
def test_admin_device_sign_out_goes_through_revocation(staff: Client, how: str) -> None:
    victim, _ = signed_in("alice")
    signed_in("bob")
    device = Device.objects.get(user__username="alice")
    if how == "action":
        data = {"action": "revoke_selected", "_selected_action": [device.pk]}
        response = staff.post("/admin/sessionkit/device/", data, follow=True)
        assert "1 session was signed out." in response.content.decode()
        assert Device.objects.get(pk=device.pk).token_hash is None
    elif how == "delete":
        response = staff.post(
            f"/admin/sessionkit/device/{device.pk}/delete/", {"post": "yes"}
        )
        assert not Device.objects.filter(pk=device.pk).exists()
    else:
        data = {
            "action": "delete_selected",
            "_selected_action": [device.pk],
            "post": "yes",
        }
        response = staff.post("/admin/sessionkit/device/", data)
        assert not Device.objects.filter(pk=device.pk).exists()
    assert response.status_code in (200, 302)
    assert not Session.objects.filter(user__username="alice").exists()
    assert Session.objects.filter(user__username="bob").exists()
    event = SessionEvent.objects.get(kind="revoke")
    assert (event.reason, event.actor.username) == ("admin", "root")
    assert victim.get("/peek/").json()["user"] == ""


def test_admin_device_page_shows_no_token_hash(staff: Client) -> None:
    signed_in("alice")
    device = Device.objects.get(user__username="alice")
    assert device.token_hash
    page = staff.get(f"/admin/sessionkit/device/{device.pk}/change/")
    assert page.status_code == 200
    assert device.token_hash not in page.content.decode()
    listing = staff.get("/admin/sessionkit/device/")
    assert device.token_hash not in listing.content.decode()
