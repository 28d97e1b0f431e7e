"""The consent system checks (E031-E039), each with a case that triggers it
and one that does not."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from django.core import checks
from django.test import override_settings

from django_sessionkit.checks.consent import check_consent_settings
from django_sessionkit.consent.categories import DEFAULT_CATEGORIES

NECESSARY = {"key": "necessary", "required": True}


def ids(messages: Sequence[checks.CheckMessage]) -> list[str]:
    return sorted(str(message.id) for message in messages)


def found(**settings: Any) -> list[str]:
    with override_settings(**{f"SESSIONKIT_{k}": v for k, v in settings.items()}):
        return ids(check_consent_settings())


def test_defaults_ok() -> None:
    assert found() == []
    assert found(CONSENT_CATEGORIES=list(DEFAULT_CATEGORIES)) == []


def test_checks_registered() -> None:
    assert check_consent_settings in checks.registry.registry.get_checks()


@pytest.mark.parametrize("value", [{"key": "x"}, "necessary", 3])
def test_categories_not_a_list_e031(value: Any) -> None:
    assert found(CONSENT_CATEGORIES=value) == ["sessionkit.E031"]


@pytest.mark.parametrize(
    "entry",
    [
        "analytics",
        ["key", "analytics"],
        {"key": "a", "cookies": "_ga"},
        {"key": "a", "cookies": [1]},
        {"key": "a", "required": "yes"},
        {"key": "a", "gpc": 1},
        {"key": "a", "label": 3},
        {"key": "a", "google": "ad_storage"},
    ],
)
def test_category_malformed_e032(entry: Any) -> None:
    assert found(CONSENT_CATEGORIES=[NECESSARY, entry]) == ["sessionkit.E032"]


def test_category_unknown_key_e033() -> None:
    entry = {"key": "a", "cookie": ["_ga"]}
    assert found(CONSENT_CATEGORIES=[NECESSARY, entry]) == ["sessionkit.E033"]


@pytest.mark.parametrize(
    "entries",
    [
        [NECESSARY, {"label": "No key"}],
        [NECESSARY, {"key": ""}],
        [NECESSARY, {"key": "with space"}],
        [NECESSARY, {"key": 3}],
        [NECESSARY, {"key": "a"}, {"key": "a"}],
        [NECESSARY, {"key": "necessary"}],
    ],
)
def test_category_key_missing_or_duplicate_e034(entries: list[Any]) -> None:
    assert found(CONSENT_CATEGORIES=entries) == ["sessionkit.E034"]


@pytest.mark.parametrize(
    "entries",
    [
        [],
        [{"key": "a"}],
        [{"key": "a", "required": False}],
        [{"key": "a", "required": 1}],
    ],
)
def test_no_required_category_e035(entries: list[Any]) -> None:
    assert "sessionkit.E035" in found(CONSENT_CATEGORIES=entries)


@pytest.mark.parametrize(
    "cookies", [["*"], ["session*"], ["csrftoken"], ["sessionkit_*"], ["*_language"]]
)
def test_refusable_category_claims_own_cookies_e036(cookies: list[str]) -> None:
    entries = [NECESSARY, {"key": "analytics", "cookies": cookies}]
    assert found(CONSENT_CATEGORIES=entries) == ["sessionkit.E036"]


def test_required_category_may_claim_own_cookies() -> None:
    entries = [{**NECESSARY, "cookies": ["*"]}, {"key": "a", "cookies": ["_ga*"]}]
    assert found(CONSENT_CATEGORIES=entries) == []


@pytest.mark.parametrize("value", [0, -1, "2", 1.5, True, None])
def test_revision_not_positive_int_e037(value: Any) -> None:
    assert found(CONSENT_REVISION=value) == ["sessionkit.E037"]


def test_revision_valid_ok() -> None:
    assert found(CONSENT_REVISION=7) == []


@pytest.mark.parametrize("value", [timedelta(days=396), 396 * 24 * 3600, None])
def test_max_age_over_13_months_e038(value: Any) -> None:
    assert found(CONSENT_MAX_AGE=value) == ["sessionkit.E038"]


@pytest.mark.parametrize("value", [timedelta(days=395), 3600])
def test_max_age_valid_ok(value: Any) -> None:
    assert found(CONSENT_MAX_AGE=value) == []


def test_max_age_and_retention_not_durations_are_e007() -> None:
    from django_sessionkit.checks.policy import check_policy_settings

    with override_settings(
        SESSIONKIT_CONSENT_MAX_AGE="6 months", SESSIONKIT_CONSENT_RETENTION="3y"
    ):
        assert ids(check_policy_settings()) == ["sessionkit.E007"] * 2
        assert ids(check_consent_settings()) == []


@pytest.mark.parametrize(
    "value", ["", "has space", "semi;colon", 3, "sessionid", "csrftoken"]
)
def test_cookie_name_invalid_e039(value: Any) -> None:
    assert found(CONSENT_COOKIE_NAME=value) == ["sessionkit.E039"]


def test_cookie_name_valid_ok() -> None:
    assert found(CONSENT_COOKIE_NAME="__Host-consent") == []
