"""Management commands."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client

from django_sessionkit.models import Session, SessionEvent
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db


def sign_in(username: str) -> Client:
    client = Client()
    response = client.post("/login/", {"username": username, "password": PASSWORD})
    assert response.status_code == 200
    return client


def revoke(*args: str) -> str:
    out = StringIO()
    call_command("sessionkit_revoke", *args, stdout=out)
    return out.getvalue()


def test_revoke_user_sessions(alice: User, bob: User) -> None:
    alice1, alice2, bob = sign_in("alice"), sign_in("alice"), sign_in("bob")
    assert revoke("--user", "alice") == "Revoked 2 sessions.\n"
    assert alice1.get("/peek/").json()["user"] == ""
    assert alice2.get("/peek/").json()["user"] == ""
    assert bob.get("/peek/").json()["user"] == "bob"
    assert set(
        SessionEvent.objects.filter(kind="revoke").values_list("reason", flat=True)
    ) == {"command"}


def test_revoke_one_session_by_id_with_reason(alice: User) -> None:
    sign_in("alice")
    pk = Session.objects.get().pk
    assert (
        revoke("--session", str(pk), "--reason", "stolen laptop")
        == "Revoked 1 session.\n"
    )
    assert SessionEvent.objects.get(kind="revoke").reason == "stolen laptop"
    # Unknown and already revoked ids are ignored.
    assert (
        revoke("--session", str(pk), "--session", "999999") == "Revoked 0 sessions.\n"
    )


def test_revoke_all(alice: User, bob: User) -> None:
    sign_in("alice")
    sign_in("bob")
    assert revoke("--all") == "Revoked 2 sessions.\n"
    assert not Session.objects.exists()


def test_revoke_unknown_user_is_an_error() -> None:
    with pytest.raises(CommandError, match="No user 'nobody'"):
        revoke("--user", "nobody")


def test_revoke_needs_exactly_one_target() -> None:
    with pytest.raises(CommandError):
        revoke()
    with pytest.raises(CommandError):
        revoke("--all", "--user", "alice")


@pytest.mark.parametrize("reason", ["", "x" * 65])
def test_revoke_reason_length_checked(reason: str) -> None:
    with pytest.raises(CommandError, match="--reason"):
        revoke("--all", "--reason", reason)
