"""``ConsentMiddleware``: ``request.consent``, the cookies a response may set,
withdrawal, ``Vary: Cookie``, and no database for browsing; sync and async."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import iscoroutinefunction
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client, RequestFactory, override_settings
from django.test.utils import CaptureQueriesContext

from django_sessionkit.consent import state
from django_sessionkit.middleware import ConsentMiddleware
from django_sessionkit.models import ConsentRecord, Session
from tests.consent.helpers import (
    CONSENT,
    MIDDLEWARE,
    browser,
    decision,
    payload,
    set_cookies,
    signed_at,
)

ANALYTICS = {"_ga", "_ga_ABC123"}
ALWAYS = {"django_language", "site_theme"}


@pytest.mark.parametrize("url", ["/show/", "/ashow/"])
def test_sets_request_consent(url: str) -> None:
    assert Client().get(url).json()["given"] is False
    made = browser(["analytics"]).get(url).json()
    assert made["given"] is True
    assert made["choices"]["analytics"] is True


async def test_sets_request_consent_async() -> None:
    client = AsyncClient()
    client.cookies["sessionkit_consent"] = state.cookie_value(decision(["analytics"]))
    response = await client.get("/ashow/")
    assert response.json()["choices"]["analytics"] is True


@pytest.mark.parametrize("url", ["/cookies/", "/acookies/"])
def test_strips_declared_cookies_without_consent(url: str) -> None:
    assert set(set_cookies(Client().get(url))) == ALWAYS


async def test_strips_declared_cookies_async() -> None:
    response = await AsyncClient().get("/acookies/")
    assert set(set_cookies(response)) == ALWAYS


@pytest.mark.parametrize("url", ["/cookies/", "/acookies/"])
def test_keeps_granted_categories_cookies(url: str) -> None:
    response = browser(["analytics"]).get(url)
    assert set(set_cookies(response)) == ALWAYS | ANALYTICS
    response = browser(["analytics", "marketing"]).get(url)
    assert set(set_cookies(response)) == ALWAYS | ANALYTICS | {"_fbp"}


def test_gpc_refuses_flagged_cookies() -> None:
    client = browser(["analytics", "marketing"])
    response = client.get("/cookies/", headers={"Sec-GPC": "1"})
    assert set(set_cookies(response)) == ALWAYS | ANALYTICS


def test_keeps_deletions_without_consent() -> None:
    assert set_cookies(Client().get("/delete-ga/")) == {"_ga": ""}


@pytest.mark.django_db
def test_decision_of_this_request_counts() -> None:
    granted = Client().post("/decide-and-set/", {"action": "accept_all"})
    assert ANALYTICS | {"_fbp"} <= set(set_cookies(granted))
    refused = Client().post("/decide-and-set/", {"action": "reject_all"})
    assert not (ANALYTICS | {"_fbp"}) & set(set_cookies(refused))
    assert "sessionkit_consent" in set_cookies(refused)


@pytest.mark.django_db
def test_withdrawal_expires_carried_cookies() -> None:
    client = browser(["analytics"], _ga="1", _ga_XYZ="2", _fbp="3", site_theme="dark")
    response = client.post(
        "/decide-and-set/", {"action": "save", "granted": ["preferences"]}
    )
    cookies = set_cookies(response)
    # Carried and withdrawn: expired, the wildcard one by its exact name.
    assert cookies["_ga_XYZ"] == ""
    # Set by the view after the withdrawal: stripped, then expired.
    assert cookies["_ga"] == ""
    # Marketing was never granted, but a decision refusing it expires the
    # cookies it carries all the same; undeclared and required cookies are
    # left alone.
    assert cookies["_fbp"] == ""
    assert cookies["site_theme"] == "1"
    assert cookies["django_language"] == "1"


@pytest.mark.django_db
def test_no_withdrawal_no_expiry() -> None:
    client = browser(["analytics"], _ga="1")
    response = client.post("/sessions/consent/", {"action": "accept_all"})
    assert "_ga" not in set_cookies(response)


def test_vary_cookie_only_when_flagged() -> None:
    response = Client().get("/banner/")
    assert response.content == b"banner"
    assert "Cookie" in response["Vary"]
    assert not Client().get("/show/").has_header("Vary")


@pytest.mark.django_db
def test_anonymous_browsing_writes_nothing() -> None:
    client = browser(["analytics"])
    with CaptureQueriesContext(connection) as queries:
        for url in ("/show/", "/cookies/", "/banner/"):
            assert client.get(url).status_code == 200
        assert Client().get("/cookies/").status_code == 200
    assert len(queries) == 0
    assert not Session.objects.exists()


@pytest.mark.django_db
def test_anonymous_decision_creates_no_session() -> None:
    client = Client()
    response = client.post(CONSENT, {"action": "accept_all"})
    assert response.status_code == 303
    assert "sessionid" not in response.cookies
    assert not Session.objects.exists()
    assert ConsentRecord.objects.count() == 1


def test_works_without_session_middleware(settings: Any) -> None:
    settings.MIDDLEWARE = [MIDDLEWARE[0]]
    assert set(set_cookies(Client().get("/cookies/"))) == ALWAYS
    assert browser(["analytics"]).get("/show/").json()["given"] is True


def test_revision_bump_asks_again() -> None:
    client = browser(["analytics"])
    assert client.get("/show/").json()["given"] is True
    with override_settings(SESSIONKIT_CONSENT_REVISION=2):
        assert client.get("/show/").json()["given"] is False
        assert set(set_cookies(client.get("/cookies/"))) == ALWAYS


def test_age_expiry_asks_again() -> None:
    old = datetime.now(tz=UTC) - timedelta(days=200)
    client = Client()
    client.cookies["sessionkit_consent"] = signed_at(
        payload(decision(["analytics"])), old
    )
    assert client.get("/show/").json()["given"] is False
    assert set(set_cookies(client.get("/cookies/"))) == ALWAYS


async def test_async_mode_gates_the_response() -> None:
    async def view(request: HttpRequest) -> HttpResponse:
        response = HttpResponse("page")
        response.set_cookie("_ga", "1")
        response.set_cookie("site_theme", "dark")
        return response

    middleware = ConsentMiddleware(view)
    assert iscoroutinefunction(middleware)
    request = RequestFactory().get("/")
    response = await middleware(request)
    assert set(set_cookies(response)) == {"site_theme"}
    assert request.consent.given is False  # type: ignore[attr-defined]


def test_sync_mode_gates_the_response() -> None:
    def view(request: HttpRequest) -> HttpResponse:
        response = HttpResponse("page")
        response.set_cookie("_ga", "1")
        return response

    middleware = ConsentMiddleware(view)
    assert not iscoroutinefunction(middleware)
    assert set_cookies(middleware(RequestFactory().get("/"))) == {}
