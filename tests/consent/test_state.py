"""The foundation: categories and their cookies (wildcards), the signed
consent cookie, and the rules of GPC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core import signing
from django.test import RequestFactory, override_settings

from django_sessionkit.consent import state
from django_sessionkit.consent.categories import (
    Category,
    categories,
    category,
    category_of_cookie,
)
from django_sessionkit.consent.state import Consent
from tests.consent.helpers import decision, payload, signed_at


def carrying(value: str, *, gpc: bool = False) -> Consent:
    headers = {"Sec-GPC": "1"} if gpc else {}
    request = RequestFactory().get("/", headers=headers)
    request.COOKIES["sessionkit_consent"] = value
    return state.read(request)


def test_categories_default_order_and_required() -> None:
    assert [c.key for c in categories()] == [
        "necessary",
        "preferences",
        "analytics",
        "marketing",
    ]
    assert [c.key for c in categories() if c.required] == ["necessary"]


def test_categories_required_declares_own_cookies() -> None:
    necessary = category("necessary")
    assert necessary is not None
    for name in ("sessionid", "csrftoken", "django_language", "sessionkit_device"):
        assert necessary.matches(name)
    assert category_of_cookie("sessionkit_consent") is necessary


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("_ga", "analytics"),
        ("_ga_ABC123", "analytics"),
        ("_ga_", "analytics"),
        ("_pk_id.1.1fff", "analytics"),
        ("_gcl_au", "marketing"),
        ("IDE", "marketing"),
        ("_gax", None),
        ("x_ga", None),
        ("site_theme", None),
    ],
)
def test_category_of_cookie_wildcards(name: str, key: str | None) -> None:
    found = category_of_cookie(name)
    assert (found.key if found else None) == key


def test_category_matches_escapes_and_inner_wildcards() -> None:
    probe = Category("x", "x", "", False, ("a.b", "pre*post"), False, ())
    assert probe.matches("a.b")
    assert not probe.matches("axb")
    assert probe.matches("prepost")
    assert probe.matches("pre-anything-post")
    assert not probe.matches("pre-anything-postfix")


@override_settings(
    SESSIONKIT_CONSENT_CATEGORIES=[
        {"key": "analytics", "cookies": ["_ga"]},
        {"key": "core", "required": True, "cookies": ["app"]},
    ]
)
def test_categories_configured_first_required_declares_own_cookies() -> None:
    core = category("core")
    assert core is not None and core.matches("sessionid") and core.matches("app")
    assert category("marketing") is None
    assert not decision(["marketing"]).granted("marketing")


def test_cookie_round_trip() -> None:
    made = decision(["analytics", "unknown", "necessary"])
    read = carrying(state.cookie_value(made))
    assert read.given
    assert read.id == made.id
    assert read.granted_keys == frozenset({"analytics"})
    assert read.choices == {
        "necessary": True,
        "preferences": False,
        "analytics": True,
        "marketing": False,
    }
    assert read.decided_at == made.decided_at


def test_granted_required_always_unknown_never() -> None:
    consent = state.undecided(RequestFactory().get("/"))
    assert not consent.given and consent.id is None
    assert consent.granted("necessary")
    assert not consent.granted("analytics")
    assert not consent.granted("nope")


def test_decide_keeps_the_consent_id() -> None:
    first = decision(["analytics"])
    request = RequestFactory().get("/")
    again = state.decide(request, [], explicit=True, previous=first)
    assert again.id == first.id


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        "",
        signing.dumps({"v": 1}, salt=state.SALT),  # signed, malformed
        signing.dumps({"v": 2, "i": "x", "r": 1, "t": 0, "g": []}, salt=state.SALT),
        signing.dumps([1, 2], salt=state.SALT),
        signing.dumps(
            {"v": 1, "i": "not-a-uuid", "r": 1, "t": 0, "g": []}, salt=state.SALT
        ),
        signing.dumps(
            {"v": 1, "i": "0" * 32, "r": 1, "t": 10**20, "g": []}, salt=state.SALT
        ),
        # Signed for another purpose.
        signing.dumps({"v": 1, "i": "0" * 32, "r": 1, "t": 0, "g": []}),
    ],
)
def test_read_malformed_is_undecided(value: str) -> None:
    assert not carrying(value).given


def test_read_tampered_is_undecided() -> None:
    value = state.cookie_value(decision(["analytics"]))
    signature = value.rpartition(":")[2]
    forged = signing.dumps(
        payload(decision(["analytics", "marketing"])), salt=state.SALT
    ).rpartition(":")[0]
    assert not carrying(f"{forged}:{signature}").given
    assert not carrying(value[:-1] + ("A" if value[-1] != "A" else "B")).given
    assert carrying(value).given


def test_read_other_revision_is_undecided() -> None:
    value = state.cookie_value(decision(["analytics"]))
    with override_settings(SESSIONKIT_CONSENT_REVISION=2):
        assert not carrying(value).given
        assert carrying(state.cookie_value(decision(["analytics"]))).given


def test_read_expired_is_undecided() -> None:
    data = payload(decision(["analytics"]))
    old = datetime.now(tz=UTC) - timedelta(days=183)
    assert not carrying(signed_at(data, old)).given
    recent = datetime.now(tz=UTC) - timedelta(days=181)
    assert carrying(signed_at(data, recent)).given
    with override_settings(SESSIONKIT_CONSENT_MAX_AGE=timedelta(days=30)):
        assert not carrying(signed_at(data, recent)).given


def test_gpc_refuses_flagged_category_granted_without_it() -> None:
    value = state.cookie_value(decision(["analytics", "marketing"]))
    without = carrying(value)
    assert without.granted("marketing") and not without.gpc_honoured
    signalled = carrying(value, gpc=True)
    assert signalled.gpc
    assert signalled.granted("analytics")
    assert not signalled.granted("marketing")
    assert signalled.gpc_honoured
    assert signalled.google_consent()["ad_storage"] == "denied"


def test_gpc_accept_all_grants_no_flagged_category() -> None:
    request = RequestFactory().post("/", headers={"Sec-GPC": "1"})
    keys = ["preferences", "analytics", "marketing"]
    accepted = state.decide(request, keys, explicit=False)
    assert accepted.granted_keys == frozenset({"preferences", "analytics"})


def test_gpc_explicit_choice_overrides_the_signal() -> None:
    chosen = decision(["marketing"], gpc=True)
    assert chosen.gpc_overrides == frozenset({"marketing"})
    read = carrying(state.cookie_value(chosen), gpc=True)
    assert read.granted("marketing")
    assert not read.gpc_honoured
    # A later "Accept all" under the signal keeps the explicit grant.
    request = RequestFactory().post("/", headers={"Sec-GPC": "1"})
    keys = ["preferences", "analytics", "marketing"]
    again = state.decide(request, keys, explicit=False, previous=read)
    assert again.granted("marketing")
    # A later choice without it refusing the category drops the override.
    dropped = state.decide(RequestFactory().post("/"), [], explicit=True, previous=read)
    assert dropped.gpc_overrides == frozenset()


def test_google_consent_maps_types() -> None:
    assert decision(["analytics"]).google_consent() == {
        "analytics_storage": "granted",
        "ad_storage": "denied",
        "ad_user_data": "denied",
        "ad_personalization": "denied",
    }


def test_as_json_and_choices_context() -> None:
    made = decision(["analytics"])
    data = state.as_json(made)
    assert data["id"] == str(made.id)
    assert data["given"] is True
    assert data["choices"]["analytics"] is True
    context = state.choices_context(made)
    assert [(c.key, checked) for c, checked in context] == [
        ("necessary", True),
        ("preferences", False),
        ("analytics", True),
        ("marketing", False),
    ]
