"""The consent endpoints: the decision (POST) and the preferences page."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings

from django_sessionkit.models import ConsentRecord, Session
from tests.consent.helpers import (
    CONSENT,
    JSON,
    MIDDLEWARE,
    PREFERENCES,
    browser,
    consent_id,
    djangos_csp,
    set_cookies,
)
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db


def last() -> ConsentRecord:
    record = ConsentRecord.objects.order_by("-pk").first()
    assert record is not None
    return record


def test_accept_all_redirects_to_next_and_records() -> None:
    response = Client().post(
        CONSENT, {"action": "accept_all", "source": "banner", "next": "/page/?a=1"}
    )
    assert response.status_code == 303
    assert response["Location"] == "/page/?a=1"
    cookie = response.cookies["sessionkit_consent"]
    assert cookie["max-age"] == 182 * 24 * 3600
    assert cookie["samesite"] == "Lax"
    assert not cookie["httponly"]
    assert "no-cache" in response["Cache-Control"]
    record = last()
    assert (record.source, record.action) == ("banner", "accept_all")
    assert record.consent_id == consent_id(response)
    assert record.choices == {
        "necessary": True,
        "preferences": True,
        "analytics": True,
        "marketing": True,
    }
    assert (record.revision, record.gpc, record.user) == (1, False, None)
    assert record.ip == "127.0.0.1"


def test_reject_all_json() -> None:
    response = Client().post(CONSENT, {"action": "reject_all"}, headers=JSON)
    assert response.status_code == 200
    data = response.json()
    assert data["given"] is True
    assert data["choices"]["analytics"] is False
    assert data["withdrawn"] == []
    assert data["id"] == str(consent_id(response))
    assert data["google"]["analytics_storage"] == "denied"
    # A JSON client that names no source is an API client.
    assert (last().source, last().action) == ("api", "reject_all")
    Client().post(CONSENT, {"action": "reject_all"})
    assert last().source == "banner"


def test_save_custom_then_withdrawal_keeps_the_id() -> None:
    client = Client()
    first = client.post(
        CONSENT,
        {"action": "save", "granted": ["analytics"], "source": "preferences"},
        headers=JSON,
    )
    assert first.json()["choices"]["analytics"] is True
    assert (last().source, last().action) == ("preferences", "custom")
    client.cookies["_ga"] = "1"
    second = client.post(
        CONSENT,
        {"action": "save", "granted": ["preferences"], "source": "preferences"},
        headers=JSON,
    )
    assert second.json()["withdrawn"] == ["analytics"]
    assert set_cookies(second)["_ga"] == ""
    assert last().action == "withdrawal"
    assert consent_id(first) == consent_id(second) == last().consent_id
    assert ConsentRecord.objects.count() == 2


def test_reject_all_after_granting_expires_cookies() -> None:
    client = browser(["analytics", "marketing"], _ga="1", _gcl_au="2")
    response = client.post(CONSENT, {"action": "reject_all"}, headers=JSON)
    assert response.json()["withdrawn"] == ["analytics", "marketing"]
    cookies = set_cookies(response)
    assert (cookies["_ga"], cookies["_gcl_au"]) == ("", "")
    assert last().action == "reject_all"


@pytest.mark.parametrize("revision", [1, 2])
def test_reject_all_expires_cookies_of_an_outdated_decision(
    settings: Any, revision: int
) -> None:
    # Granted under revision 1; asked again under 2, the visitor refuses: the
    # cookies the old decision let in go as well.
    client = browser(["analytics"], _ga="1")
    settings.SESSIONKIT_CONSENT_REVISION = revision
    response = client.post(CONSENT, {"action": "reject_all"}, headers=JSON)
    assert set_cookies(response)["_ga"] == ""
    expected = ["analytics"] if revision == 1 else []
    assert response.json()["withdrawn"] == expected


def test_json_body_without_source_is_api() -> None:
    response = Client().post(
        CONSENT,
        json.dumps({"action": "save", "granted": ["analytics", "bogus"]}),
        content_type="application/json",
    )
    assert response.status_code == 200
    assert response.json()["choices"]["analytics"] is True
    assert (last().source, last().action) == ("api", "custom")


def test_unknown_source_is_banner() -> None:
    Client().post(CONSENT, {"action": "reject_all", "source": "evil"}, headers=JSON)
    assert last().source == "banner"


def test_gpc_is_recorded_and_honoured() -> None:
    response = Client().post(
        CONSENT, {"action": "accept_all"}, headers={**JSON, "Sec-GPC": "1"}
    )
    data = response.json()
    assert data["choices"]["marketing"] is False
    assert data["gpc_honoured"] is True
    assert last().gpc is True
    assert last().choices["marketing"] is False


@pytest.mark.parametrize("action", ["", "grant_everything", None])
def test_unknown_action_is_400(action: str | None) -> None:
    fields = {"action": action} if action is not None else {}
    html = Client().post(CONSENT, fields)
    assert html.status_code == 400
    assert b"accept_all, reject_all or save" in html.content
    answer = Client().post(CONSENT, fields, headers=JSON)
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad_action"
    assert not ConsentRecord.objects.exists()


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '{"granted": 3}'])
def test_malformed_json_body_is_400(body: str) -> None:
    response = Client().post(CONSENT, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "bad_action"


def test_get_is_405() -> None:
    assert Client().get(CONSENT).status_code == 405


def test_csrf_refused_without_token() -> None:
    client = Client(enforce_csrf_checks=True)
    assert client.post(CONSENT, {"action": "accept_all"}).status_code == 403
    refused = client.post(CONSENT, {"action": "accept_all"}, headers=JSON)
    assert refused.status_code == 403
    assert refused.json() == {"error": "csrf_failed"}
    assert not ConsentRecord.objects.exists()


def test_csrf_accepted_with_token() -> None:
    client = Client(enforce_csrf_checks=True)
    page = client.get(PREFERENCES)
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content)
    assert token is not None
    response = client.post(
        CONSENT,
        {"action": "reject_all", "csrfmiddlewaretoken": token[1].decode()},
    )
    assert response.status_code == 303


@pytest.mark.parametrize(
    ("next_url", "referer", "location"),
    [
        ("//evil.example", "", "/"),
        ("https://evil.example/x", "", "/"),
        ("//evil.example", "http://testserver/from/?q=1", "/from/?q=1"),
        ("", "http://evil.example/from/", "/"),
        ("http://testserver/ok/", "", "http://testserver/ok/"),
    ],
)
def test_next_is_safe(next_url: str, referer: str, location: str) -> None:
    headers = {"Referer": referer} if referer else {}
    response = Client().post(
        CONSENT, {"action": "reject_all", "next": next_url}, headers=headers
    )
    assert response["Location"] == location


def test_signed_in_user_is_recorded(alice: User) -> None:
    client = Client()
    client.login(username="alice", password=PASSWORD)
    client.post(CONSENT, {"action": "accept_all"})
    assert last().user == alice


@override_settings(SESSIONKIT_STORE_IP="truncated")
def test_ip_follows_store_ip() -> None:
    Client(REMOTE_ADDR="198.51.100.77").post(CONSENT, {"action": "accept_all"})
    assert last().ip == "198.51.100.0"
    with override_settings(SESSIONKIT_STORE_IP="none"):
        Client().post(CONSENT, {"action": "accept_all"})
        assert last().ip is None


def test_preferences_page_undecided() -> None:
    response = Client().get(PREFERENCES, headers={"Referer": "http://testserver/a/"})
    assert response.status_code == 200
    content = response.content.decode()
    assert "You have not made a choice yet" in content
    for action in ("accept_all", "reject_all", "save"):
        assert f'name="action" value="{action}"' in content
    assert 'name="source" value="preferences"' in content
    assert 'href="http://testserver/a/"' in content
    assert 'value="analytics" id="sessionkit-consent-analytics"' in content
    assert "Cookie" in response["Vary"]
    assert "no-cache" in response["Cache-Control"]
    assert not Session.objects.exists()


def test_preferences_page_shows_the_decision() -> None:
    client = browser(["analytics"])
    content = client.get(PREFERENCES).content.decode()
    consent_value = client.cookies["sessionkit_consent"].value
    assert consent_value
    match = re.search(r"Your consent id is <code>([0-9a-f-]{36})</code>", content)
    assert match is not None
    checked = re.findall(r'value="(\w+)" id="[^"]+"\s+aria-[^>]*checked', content)
    assert checked == ["necessary", "analytics"]
    assert "Global Privacy Control signal, so" not in content


def test_preferences_page_gpc_note() -> None:
    content = Client().get(PREFERENCES, headers={"Sec-GPC": "1"}).content.decode()
    assert "Global Privacy Control signal, so" in content


def test_preferences_page_back_link_is_safe() -> None:
    content = Client().get(PREFERENCES + "?next=//evil.example").content.decode()
    assert "evil.example" not in content
    assert 'href="/"' in content
    back = Client().get(PREFERENCES + "?next=/shop/").content.decode()
    assert 'href="/shop/"' in back


def test_preferences_save_comes_back_saved() -> None:
    client = Client()
    page = client.get(PREFERENCES + "?next=/shop/").content.decode()
    match = re.search(r'name="next" value="([^"]+)"', page)
    assert match is not None
    target = match[1].replace("&amp;", "&")
    response = client.post(
        CONSENT,
        {
            "action": "save",
            "granted": ["preferences"],
            "next": target,
            "source": "preferences",
        },
    )
    assert response.status_code == 303
    again = client.get(response["Location"]).content.decode()
    assert "Your choices were saved." in again
    assert 'href="/shop/"' in again
    assert last().source == "preferences"


def set_django_csp_nonce(get_response: Any) -> Any:
    """A middleware giving ``request.csp_nonce``, as django-csp's does."""

    def middleware(request: HttpRequest) -> HttpResponse:
        request.csp_nonce = "from-django-csp"  # type: ignore[attr-defined]
        response: HttpResponse = get_response(request)
        return response

    return middleware


def stylesheet_nonces(content: str) -> list[str | None]:
    links = re.findall(r'<link rel="stylesheet"[^>]*>', content)
    assert len(links) == 2
    return [
        found[1] if (found := re.search(r'nonce="([^"]+)"', link)) else None
        for link in links
    ]


@djangos_csp
def test_preferences_stylesheets_carry_djangos_csp_nonce(settings: Any) -> None:
    from django.utils.csp import CSP

    settings.MIDDLEWARE = [
        "django.middleware.csp.ContentSecurityPolicyMiddleware",
        *MIDDLEWARE,
    ]
    settings.SECURE_CSP = {"style-src": [CSP.SELF, CSP.NONCE]}
    response = Client().get(PREFERENCES)
    nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"])
    assert nonce is not None
    assert stylesheet_nonces(response.content.decode()) == [nonce[1], nonce[1]]


def test_preferences_stylesheets_carry_django_csp_nonce(settings: Any) -> None:
    settings.MIDDLEWARE = [f"{__name__}.set_django_csp_nonce", *MIDDLEWARE]
    content = Client().get(PREFERENCES).content.decode()
    assert stylesheet_nonces(content) == ["from-django-csp", "from-django-csp"]


def test_preferences_stylesheets_without_csp_have_no_nonce() -> None:
    content = Client().get(PREFERENCES).content.decode()
    assert stylesheet_nonces(content) == [None, None]
