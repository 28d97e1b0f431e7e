"""The admin door: staff sign sessions out through the revocation API."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission, User
from django.http import HttpRequest
from django.test import Client, RequestFactory

from django_sessionkit.admin import (
    HIDDEN_FIELDS,
    ConsentRecordAdmin,
    DeviceAdmin,
    SessionAdmin,
    SessionEventAdmin,
)
from django_sessionkit.models import Device, Session, SessionEvent
from django_sessionkit.signals import session_revoked
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db


def signed_in(user: User) -> tuple[Client, str]:
    """A new browser signed in as ``user``, and its session key."""
    client = Client()
    data = {"username": user.get_username(), "password": PASSWORD}
    assert client.post("/login/", data).status_code == 200
    return client, client.cookies["sessionid"].value


@pytest.fixture
def root_client(root: User) -> Client:
    """The admin, as the superuser ``root`` signed in through the sign-in page."""
    return signed_in(root)[0]


def test_admin_action_revokes_selected(
    root_client: Client, alice: User, bob: User
) -> None:
    victim, key = signed_in(alice)
    other, _ = signed_in(bob)
    target = Session.objects.get(user__username="alice")
    received: list[dict[str, object]] = []

    def receiver(**kwargs: object) -> None:
        received.append(kwargs)

    session_revoked.connect(receiver)
    try:
        response = root_client.post(
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


def test_admin_delete_goes_through_revocation(root_client: Client, alice: User) -> None:
    signed_in(alice)
    target = Session.objects.get(user__username="alice")
    response = root_client.post(
        f"/admin/sessionkit/session/{target.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302
    assert not Session.objects.filter(pk=target.pk).exists()
    assert SessionEvent.objects.filter(
        kind="revoke", reason="admin", session_id=target.pk
    ).exists()


def test_admin_bulk_delete_goes_through_revocation(
    root_client: Client, alice: User, bob: User
) -> None:
    signed_in(alice)
    signed_in(bob)
    ids = list(
        Session.objects.exclude(user__username="root").values_list("pk", flat=True)
    )
    response = root_client.post(
        "/admin/sessionkit/session/",
        {"action": "delete_selected", "_selected_action": ids, "post": "yes"},
    )
    assert response.status_code == 302
    assert Session.objects.filter(user__username="root").count() == 1
    assert SessionEvent.objects.filter(kind="revoke", reason="admin").count() == 2


def test_admin_pages_never_show_keys(root_client: Client, alice: User) -> None:
    _, key = signed_in(alice)
    target = Session.objects.get(user__username="alice")
    for url in (
        "/admin/sessionkit/session/",
        f"/admin/sessionkit/session/{target.pk}/change/",
    ):
        page = root_client.get(url).content.decode()
        assert key not in page
        assert target.key_hash not in page


# -- Devices -------------------------------------------------------------------


@pytest.mark.parametrize("how", ["action", "delete", "bulk_delete"])
def test_admin_device_sign_out_goes_through_revocation(
    root_client: Client, alice: User, bob: User, how: str
) -> None:
    victim, _ = signed_in(alice)
    signed_in(bob)
    device = Device.objects.get(user__username="alice")
    if how == "action":
        data = {"action": "revoke_selected", "_selected_action": [device.pk]}
        response = root_client.post("/admin/sessionkit/device/", data, follow=True)
        assert "1 session was signed out." in response.content.decode()
        assert Device.objects.get(pk=device.pk).token_hash is None
    elif how == "delete":
        response = root_client.post(
            f"/admin/sessionkit/device/{device.pk}/delete/", {"post": "yes"}
        )
        assert not Device.objects.filter(pk=device.pk).exists()
    else:
        data = {
            "action": "delete_selected",
            "_selected_action": [device.pk],
            "post": "yes",
        }
        response = root_client.post("/admin/sessionkit/device/", data)
        assert not Device.objects.filter(pk=device.pk).exists()
    assert response.status_code in (200, 302)
    assert not Session.objects.filter(user__username="alice").exists()
    assert Session.objects.filter(user__username="bob").exists()
    event = SessionEvent.objects.get(kind="revoke")
    assert (event.reason, event.actor.username) == ("admin", "root")
    assert victim.get("/peek/").json()["user"] == ""


def test_admin_device_page_shows_no_token_hash(
    root_client: Client, alice: User
) -> None:
    signed_in(alice)
    device = Device.objects.get(user__username="alice")
    assert device.token_hash
    page = root_client.get(f"/admin/sessionkit/device/{device.pk}/change/")
    assert page.status_code == 200
    assert device.token_hash not in page.content.decode()
    listing = root_client.get("/admin/sessionkit/device/")
    assert device.token_hash not in listing.content.decode()


# -- Hidden columns: no lookup reaches them ----------------------------------------


@pytest.fixture
def viewer(staff: User) -> Client:
    """A staff user who may only view the app's rows."""
    staff.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="sessionkit", codename__startswith="view_"
        )
    )
    return signed_in(staff)[0]


# What a guess at the first characters of each hidden column looks like.
def _prefixes() -> dict[str, str]:
    session = Session.objects.get(user__username="alice")
    device = Device.objects.get(user__username="alice")
    assert device.token_hash
    return {
        "session_data": session.session_data[:2],
        "key_hash": session.key_hash[:2],
        "previous_key_hash": "",
        "token_hash": device.token_hash[:2],
    }


HIDDEN_LOOKUPS = [
    ("session", "session_data__startswith", "session_data"),
    ("session", "session_data", "session_data"),
    ("session", "key_hash__startswith", "key_hash"),
    ("session", "key_hash__regex", "key_hash"),
    ("session", "previous_key_hash__isnull", "previous_key_hash"),
    ("session", "device__token_hash__startswith", "token_hash"),
    ("session", "user__sessionkit_sessions__session_data__startswith", "session_data"),
    ("device", "token_hash__startswith", "token_hash"),
    ("device", "token_hash", "token_hash"),
    ("device", "sessions__session_data__startswith", "session_data"),
    ("device", "sessions__key_hash__startswith", "key_hash"),
    ("device", "user__sessionkit_devices__token_hash__startswith", "token_hash"),
    ("sessionevent", "device__token_hash__startswith", "token_hash"),
    ("sessionevent", "device__sessions__session_data__startswith", "session_data"),
    ("sessionevent", "user__sessionkit_sessions__key_hash__startswith", "key_hash"),
]


@pytest.mark.parametrize(
    ("model", "lookup", "column"), HIDDEN_LOOKUPS, ids=[c[1] for c in HIDDEN_LOOKUPS]
)
def test_admin_lookup_on_hidden_column_refused(
    viewer: Client, alice: User, model: str, lookup: str, column: str
) -> None:
    signed_in(alice)
    value = "True" if lookup.endswith("__isnull") else _prefixes()[column]
    changelist = f"/admin/sessionkit/{model}/"
    assert viewer.get(changelist).status_code == 200
    response = viewer.get(changelist, {lookup: value})
    # Django answers DisallowedModelAdminLookup with 400.
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("model", "lookup", "value"),
    [
        ("session", "expire_date__isnull", "False"),
        ("session", "user__id__exact", "1"),
        ("device", "kind__exact", "desktop"),
        ("sessionevent", "kind__exact", "login"),
    ],
)
def test_admin_lookup_on_shown_column_allowed(
    viewer: Client, alice: User, model: str, lookup: str, value: str
) -> None:
    signed_in(alice)
    response = viewer.get(f"/admin/sessionkit/{model}/", {lookup: value})
    assert response.status_code == 200


def test_admin_lookup_on_hidden_column_refused_even_when_listed() -> None:
    # Django itself refuses a lookup across relations unless list_filter
    # names it; a project's subclass that does must still not open a
    # hidden column.
    class WideSessionAdmin(SessionAdmin):
        def get_list_filter(self, request: HttpRequest) -> tuple[str, ...]:
            return ("device__token_hash", "user__sessionkit_sessions__key_hash")

    model_admin = WideSessionAdmin(Session, admin.AdminSite())
    request = RequestFactory().get("/")
    for lookup in ("device__token_hash", "user__sessionkit_sessions__key_hash"):
        assert not model_admin.lookup_allowed(lookup, "ab", request)
    assert model_admin.lookup_allowed("device__id__exact", "1", request)


def test_admin_hidden_columns_never_listed_searched_or_shown(viewer: Client) -> None:
    request = RequestFactory().get("/")
    request.user = User.objects.get(username="staff")
    names = {field.name for field in HIDDEN_FIELDS}
    assert names == {"session_data", "key_hash", "previous_key_hash", "token_hash"}
    registered = [
        model_admin
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label == "sessionkit"
    ]
    admins = {SessionAdmin, DeviceAdmin, SessionEventAdmin, ConsentRecordAdmin}
    assert {type(a) for a in registered} == admins
    for model_admin in registered:
        shown = {
            *model_admin.get_list_display(request),
            *model_admin.get_list_filter(request),
            *model_admin.get_search_fields(request),
            *model_admin.get_fields(request),
        }
        assert not shown & names, type(model_admin)
