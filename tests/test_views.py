"""Keep-alive and status: the JSON the idle warning script reads."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from django_sessionkit.models import Session

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse"


def signed_in() -> Client:
    User.objects.create_user("alice", password=PASSWORD)
    client = Client()
    assert (
        client.post("/login/", {"username": "alice", "password": PASSWORD}).status_code
        == 200
    )
    return client


@pytest.mark.parametrize("use_tz", [True, False])
@pytest.mark.parametrize("method", ["post", "get"])
def test_deadlines_json_is_utc_whatever_use_tz(
    settings: Any, use_tz: bool, method: str
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


def test_keep_alive_without_csrf_token_json_403() -> None:
    client = signed_in()
    checked = Client(enforce_csrf_checks=True)
    checked.cookies = client.cookies
    # The idle warning's script, and any client: these views only speak JSON.
    for headers in ({}, {"Accept": "text/html"}, {"Accept": "application/json"}):
        response = checked.post("/sessions/keep-alive/", headers=headers)
        assert response.status_code == 403
        assert response["Content-Type"] == "application/json"
        assert response.json() == {"error": "csrf_failed"}


def test_keep_alive_with_csrf_token_passes() -> None:
    client = signed_in()
    checked = Client(enforce_csrf_checks=True)
    checked.cookies = client.cookies
    assert checked.get("/sessions/status/").status_code == 200
    token = checked.cookies[settings.CSRF_COOKIE_NAME].value
    response = checked.post("/sessions/keep-alive/", headers={"X-CSRFToken": token})
    assert response.status_code == 200
    assert "idle_deadline" in response.json()


def test_keep_alive_csrf_from_other_origin_json_403() -> None:
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
